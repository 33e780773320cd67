"""What each arm trains on: the raw streams, the self-play set and its raw mix, the budgets."""

from __future__ import annotations

from selfplay.config import config_from_dict
from selfplay.models import build_char_tokenizer
from selfplay.sources import mix_raw, raw_stream_slice, round_budget, seed_budget
from selfplay.tasks import Example


def test_raw_stream_uses_all_data_before_repeating():
    tok = build_char_tokenizer()
    data = [Example(f"Q:{i}+0=", f"{i}", str(i), 1, "raw") for i in range(100, 150)]  # 50 examples
    # Each example is 12 tokens (8 prompt + 3 completion + end of sequence): 30 per round.
    cfg = config_from_dict({"train": {"tokens": 30 * 12}})
    r1, r2, r3 = (raw_stream_slice(cfg, k, data, tok) for k in (1, 2, 3))
    assert len(r1) == len(r2) == len(r3) == 30
    assert len({e.problem_id for e in r1}) == 30  # no repeat inside a round
    first_pass = r1 + r2[:20]
    assert len({e.problem_id for e in first_pass}) == 50  # the first 50 drawn are all distinct
    assert r1 != r2


def test_budgets_in_epochs_of_u():
    cfg = config_from_dict(
        {"seed_train": {"epochs": 2}, "loop": {"iterations": 2}, "train": {"budget_epochs": [1, 3]}}
    )
    assert seed_budget(cfg, 1000) == 2000
    assert [round_budget(cfg, k, 1000) for k in (1, 2)] == [1000, 3000]
    assert round_budget(config_from_dict({"train": {"tokens": 77}}), 1, 1000) == 77


def test_raw_mix_is_a_share_of_the_kept_set_never_a_set_of_its_own():
    cfg = config_from_dict({"train": {"raw_mix": 0.5}})
    raw = [Example(f"Q:{i}+0=", f"{i}", f"r{i}", 1, "raw") for i in range(10)]
    kept = [Example("Q:1+1=", "2", "1+1", 1, "selfplay")] * 4
    mixed = mix_raw(cfg, 1, kept, raw)
    assert len(mixed) == 8 and sum(e.source == "raw" for e in mixed) == 4
    assert mix_raw(cfg, 1, [], raw) == []  # nothing kept: nothing to train on
