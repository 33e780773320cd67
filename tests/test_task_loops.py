"""Every task's loop runs end to end on the tiny from-scratch model: seed, generate, verify,
filter, train, evaluate, with the task's own verdicts in the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfplay.config import config_from_dict, load_config
from selfplay.engine import artifacts
from selfplay.engine.loop import run

from .shared_data import GSM8K_TRAIN as GSM8K
from .shared_data import HUMANEVAL

FIXTURES = Path(__file__).parent / "fixtures"

MICRO = {
    "seed_train": {"tokens": 3000},
    "loop": {"iterations": 1, "problems_per_iter": 6},
    "generation": {"n": 2, "batch_size": 16, "max_new_tokens": 40},
    # Keep every sample so the round trains on self-generated text even from a weak model.
    "filters": {"verified": False, "max_per_problem": 0},
    "train": {"tokens": 2000, "batch_size": 8, "max_length": 256},
    "eval": {"n_per_difficulty": 2, "k": 2},
}

CASES = {
    "countdown": ({"name": "countdown"}, [2, 3], [2, 3, 4], None),
    "gsm8k": ({"name": "gsm8k", "data": str(GSM8K)}, [2], [2, 3], GSM8K),
    "math": ({"name": "math", "data": str(FIXTURES / "math_problems.jsonl")}, [1, 2], [1, 2], None),
    "code": ({"name": "code", "data": str(HUMANEVAL)}, [1, 2], [1, 2], HUMANEVAL),
}


def micro(tmp_path, task: dict, raw_d: list[int], eval_d: list[int]):
    data = json.loads(json.dumps(MICRO))
    data |= {"task": task, "output_dir": str(tmp_path / task["name"])}
    data["raw"] = {"size": 30, "difficulties": raw_d}
    data["loop"]["pool_difficulties"] = eval_d
    data["eval"]["difficulties"] = eval_d
    return config_from_dict(data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_task_loop_end_to_end(tmp_path, name):
    task, raw_d, eval_d, needs = CASES[name]
    if needs is not None and not needs.exists():
        pytest.skip(f"{needs} not present")
    cfg = micro(tmp_path, task, raw_d, eval_d)
    rows = run(cfg, progress=False)
    assert [r["stage"] for r in rows] == ["seed", "iter_001"]
    samples = artifacts.read_parquet(cfg.run_dir / "iter_001" / "samples.parquet")
    assert samples and all(
        s["status"] in {"correct", "wrong", "unparseable", "timeout", "error"} for s in samples
    )
    assert rows[1]["train"]["tokens"] > 0  # it trained on its own (unverified) samples
    raw = artifacts.read_parquet(cfg.run_dir / "seed" / "raw.parquet")
    assert len(raw) == 30 and {r["difficulty"] for r in raw} <= set(raw_d)


RUN_CONFIGS = [
    p
    for p in sorted(Path("configs").glob("*/*.yaml"))
    if p.parent.name != "accelerate" and "arms:" not in p.read_text()  # bench configs: test_bench
]


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=str)
def test_every_shipped_run_config_loads(path):
    cfg = load_config(path)
    assert cfg.task.name == path.parent.name
