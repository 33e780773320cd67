"""What each arm trains on: the raw streams, the self-play set and its raw mix, the budgets."""

from __future__ import annotations

from selfplay.config import config_from_dict
from selfplay.engine import artifacts
from selfplay.engine.evaluation import test_problems as eval_problems
from selfplay.engine.models import build_char_tokenizer
from selfplay.engine.sources import (
    fresh_corpus,
    mix_raw,
    raw_stream_slice,
    round_budget,
    seed_budget,
)
from selfplay.tasks import Example, make_task
from selfplay.tasks.generated import overlap_key


def test_raw_stream_uses_all_data_before_repeating():
    tok = build_char_tokenizer()
    data = [Example(f"Q:{i}+0=", f"{i}", str(i), 1, "raw") for i in range(100, 150)]  # 50 examples
    # Each example has 4 supervised tokens (3 of completion + end of sequence): 30 per round.
    cfg = config_from_dict({"train": {"tokens": 30 * 4}})
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


def test_the_fresh_corpus_shares_no_problem_with_u_its_twins_or_the_eval_set(tmp_path):
    import random

    cfg = config_from_dict(
        {
            "output_dir": str(tmp_path / "run"),
            "raw": {"size": 300, "difficulties": [1, 2]},
            "loop": {"data_source": "raw-fresh", "fresh_multiplier": 2},
            "eval": {"difficulties": [1, 2, 3], "n_per_difficulty": 50},
        }
    )
    task = make_task(cfg)
    raw = task.raw_corpus(cfg.raw, random.Random(0))
    tests = eval_problems(task, cfg)
    fresh = fresh_corpus(cfg, task, raw, tests)
    banned = {overlap_key(e.problem_id) for e in raw} | {overlap_key(p.id) for p in tests}
    assert fresh and not {overlap_key(e.problem_id) for e in fresh} & banned
    report = artifacts.read_json(tmp_path / "run" / "fresh.json")
    assert report["overlap_u"] == report["overlap_u_twins"] == report["overlap_eval"] == 0
    assert report["size"] == len(fresh) == 600 and report["removed_as_overlap"] > 0
    assert fresh_corpus(cfg, task, raw, tests) == fresh  # stored once, read back


def test_overlap_key_joins_commutative_twins():
    assert overlap_key("386+4729") == overlap_key("4729+386") != overlap_key("4729*386")
    assert overlap_key("7,3,25->10") == overlap_key("3,7,25->10")
    assert overlap_key("HumanEval/3") == "HumanEval/3"


def test_the_evaluation_set_is_the_same_for_every_seed():
    a = config_from_dict({"seed": 0, "eval": {"n_per_difficulty": 30}})
    b = config_from_dict({"seed": 7, "eval": {"n_per_difficulty": 30}})
    task = make_task(a)
    assert [p.id for p in eval_problems(task, a)] == [p.id for p in eval_problems(task, b)]


def test_u_holds_no_evaluation_problem_nor_its_twin(tmp_path):
    """Every arm trains on U (the seed model, raw-repeat): U excludes what the fresh corpus and the
    practice pool exclude. Without the exclusion the same draw holds twins (the check can fail);
    with it, only the excluded places change."""
    import random

    from selfplay.engine.sampling import evaluation_keys
    from selfplay.engine.sources import raw_corpus

    cfg = config_from_dict(
        {
            "output_dir": str(tmp_path / "run"),
            "raw": {"size": 1000, "difficulties": [1, 2, 3]},
            "eval": {"difficulties": [1, 2, 3, 4], "n_per_difficulty": 1000},
        }
    )
    task = make_task(cfg)
    banned = evaluation_keys(task, cfg)
    plain = task.raw_corpus(cfg.raw, random.Random(f"raw-{cfg.seed}"))
    assert sum(overlap_key(e.problem_id) in banned for e in plain) > 50  # ~10% of this U
    u = raw_corpus(cfg, task)
    assert len(u) == len(plain) and not {overlap_key(e.problem_id) for e in u} & banned
    wide = [(a, b) for a, b in zip(plain, u, strict=True) if a.difficulty == 3]
    # 3 digits: far more problems than U asks, so only the twins' places are drawn again
    assert sum(a != b for a, b in wide) == sum(overlap_key(a.problem_id) in banned for a, _ in wide)
    assert [e.difficulty for e in u] == [e.difficulty for e in plain]
