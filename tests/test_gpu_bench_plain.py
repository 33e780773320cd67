"""The plain PyTorch training loop of scripts/gpu_bench.py, that TRL's overhead is measured against."""

import importlib.util
import random
from pathlib import Path

import pytest
import torch

from selfplay.config import TrainConfig, config_from_dict
from selfplay.engine.models import build_char_tokenizer, build_model
from selfplay.tasks import Example, make_task
from selfplay.training import build_trainer, count_tokens, plan_order

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def examples():
    task = make_task(config_from_dict({}))
    rng = random.Random(0)
    problems = [p for d in (1, 2, 3) for p in task.sample_problems("train", d, 8, rng)]
    return [Example(p.prompt, task.gold_chain(p), p.id, p.difficulty, "raw") for p in problems]


def test_train_plain_learns_and_counts_non_padding_tokens(bench, tok, examples):
    torch.manual_seed(0)
    model = build_model("tiny", tok, seed=0)
    steps, batch = 12, 8
    res = bench.train_plain(
        model, tok, examples, steps=steps, batch_size=batch, lr=3e-3, max_length=256
    )
    losses = res["losses"]
    assert len(losses) == steps and len(res["marks"]) == steps
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3
    # Tokens counted the way TRL counts them (prompt + completion + EOS, no padding), for the
    # examples of the same plan.
    lengths = count_tokens(tok, examples)
    expected = sum(lengths[i] for i in plan_order(len(examples), steps, batch, 0))
    assert res["tokens"] == expected == res["marks"][-1][1]
    seen = [n for _, n in res["marks"]]
    assert seen == sorted(seen) and seen[0] > 0
    assert not model.training


@pytest.mark.parametrize("max_length", [256, 12])
def test_plain_batches_are_trls(bench, tok, examples, tmp_path, max_length):
    model = build_model("tiny", tok, seed=0)
    cfg = TrainConfig(batch_size=4, lr=1e-3, max_length=max_length)
    trainer, seen = build_trainer(
        model, tok, examples, cfg, budget_tokens=2000, seed=0, work_dir=tmp_path
    )
    order = plan_order(len(examples), trainer.args.max_steps, cfg.batch_size, 0)
    assert seen == len(order) == len(trainer.train_dataset)
    rows = bench.encode_sft(tok, [examples[i] for i in order], max_length)
    trl_rows = trainer.train_dataset
    assert [ids for ids, _ in rows] == trl_rows["input_ids"]
    assert [labels for _, labels in rows] == trl_rows["labels"]
    assert any(label != -100 for _, labels in rows for label in labels)
    # Padding as TRL's collator pads a batch: right, to the longest row.
    ours = bench.pad_batch(rows[:5], tok.pad_token_id)
    theirs = trainer.data_collator([trl_rows[i] for i in range(5)])
    assert set(ours) == set(theirs)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def test_overhead_ratio_and_goal(bench):
    def row(preset, variant, tps):
        return {"preset": preset, "variant": variant, "tokens_per_s": tps, "mfu": None}

    rows = [
        row("tiny", "bf16", 100.0),
        row("tiny", "packing+compile", 300.0),
        row("tiny", "plain", 150.0),
        row("base", "bf16", 100.0),
        row("base", "plain", 105.0),
        row("small", "bf16", 100.0),  # no plain row: no ratio
    ]
    over = bench.training_overhead(rows)
    assert [(o["preset"], o["trl_variant"], o["plain_variant"]) for o in over] == [
        ("tiny", "bf16", "plain"),
        ("base", "bf16", "plain"),
    ]
    assert over[0]["trl_overhead"] == pytest.approx(0.5) and not over[0]["met"]
    assert over[1]["trl_overhead"] == pytest.approx(0.05) and over[1]["met"]
    result = {"generation": [], "training": rows, "training_overhead": over, "loop": None}
    goal = bench.goals(result)["training_trl_overhead"]
    assert goal["value"] == pytest.approx(0.5) and goal["met"] is False
    assert goal["preset"] == "tiny" and goal["target"] == 0.10
    result["training_overhead"] = over[1:]
    assert bench.goals(result)["training_trl_overhead"]["met"] is True
    result["training_overhead"] = []
    assert bench.goals(result)["training_trl_overhead"]["met"] is None
