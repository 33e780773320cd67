"""Bench: statistics on known inputs, budget accounting, and a tiny two-arm bench end to end."""

from __future__ import annotations

import math
import random

import pytest
import yaml

from selfplay import artifacts
from selfplay.bench import run_bench
from selfplay.bench_config import load_bench_config
from selfplay.bench_report import effective_multiplier
from selfplay.config import ConfigError


def test_effective_multiplier_interpolates_in_log_space():
    curve = [(0.5, 0.50), (1.0, 0.60), (2.0, 0.70), (4.0, 0.75)]
    assert effective_multiplier(0.60, curve) == "1.00x"
    assert effective_multiplier(0.65, curve) == f"{math.sqrt(2):.2f}x"
    assert effective_multiplier(0.40, curve) == "< 0.5x"
    assert effective_multiplier(0.90, curve) == "> 4x"


def _bench_yaml(tmp_path, arms, seeds=(0,)):
    data = {
        "name": "tiny",
        "output_dir": str(tmp_path / "bench"),
        "seeds": list(seeds),
        "reference": next(iter(arms)),
        "run": {
            "raw": {"size": 150, "difficulties": [1, 2]},
            "seed_train": {"tokens": 3000},
            "loop": {"iterations": 2, "pool_difficulties": [1, 2], "problems_per_iter": 10},
            "generation": {"n": 2, "batch_size": 32},
            "filters": {"max_per_problem": 0},
            "train": {"tokens": 2500, "batch_size": 16},
            "eval": {"difficulties": [1, 2, 3], "n_per_difficulty": 4, "k": 2},
        },
        "arms": arms,
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bench_config_errors(tmp_path):
    path = _bench_yaml(tmp_path, {"a": [], "b": ["raw.size=300"]})
    with pytest.raises(ConfigError, match="arms.b: changes raw"):
        load_bench_config(path)
    path = _bench_yaml(tmp_path, {"a": [], "b": ["train.lrr=1"]})
    with pytest.raises(ConfigError, match="arms.b: train.lrr: unknown key"):
        load_bench_config(path)
    path = _bench_yaml(tmp_path, {"a": []})
    with pytest.raises(ConfigError, match="reference"):
        load_bench_config(path, ["reference=zzz"])
    with pytest.raises(ConfigError, match="not found"):
        load_bench_config(tmp_path / "nope.yaml")


def test_tiny_two_arm_bench_end_to_end(tmp_path):
    path = _bench_yaml(
        tmp_path,
        {
            "raw-repeat": ["loop.data_source=raw-repeat"],
            "selfplay-unverified": ["filters.verified=false"],
        },
    )
    bench, arms = load_bench_config(path)
    rows = run_bench(bench, arms, progress=False)
    d = bench.bench_dir
    assert (d / "results.parquet").exists() and (d / "report.md").exists()
    assert (d / "accuracy_vs_tokens.png").stat().st_size > 1000
    stored = artifacts.read_parquet(d / "results.parquet")
    assert len(stored) == len(rows) == 2 * 3  # 2 arms x (seed model + 2 rounds)
    # Both arms start from the very same seed model.
    a = (d / "seed_0" / "raw-repeat" / "seed" / "model" / "model.safetensors").read_bytes()
    b = (d / "seed_0" / "selfplay-unverified" / "seed" / "model" / "model.safetensors").read_bytes()
    assert a == b
    seed_rows = [r for r in rows if r["iteration"] == 0]
    assert seed_rows[0]["acc_in"] == seed_rows[1]["acc_in"]
    # Equal budgets: each arm trained its 2 x 2,500 tokens (to within a batch per round).
    final = {r["arm"]: r for r in rows if r["iteration"] == 2}
    for r in final.values():
        assert abs(r["train_tokens"] - 5000) <= 2 * 16 * 20
    assert final["raw-repeat"]["generated_tokens"] == 0
    assert final["selfplay-unverified"]["generated_tokens"] > 0
    assert final["selfplay-unverified"]["flops"] > final["raw-repeat"]["flops"]
    report = (d / "report.md").read_text()
    assert "## At equal training tokens" in report and "## Paired with `raw-repeat`" in report
    assert "selfplay-unverified" in report
    # Resuming a finished bench redoes nothing.
    mtime = (d / "seed_0" / "raw-repeat" / "iter_002" / "metrics.json").stat().st_mtime_ns
    run_bench(bench, arms, progress=False)
    assert (d / "seed_0" / "raw-repeat" / "iter_002" / "metrics.json").stat().st_mtime_ns == mtime


def test_shipped_bench_configs_load():
    from pathlib import Path

    root = Path(__file__).parents[1]
    paths = sorted(
        p
        for p in (root / "configs").glob("**/*.yaml")
        if "arms" in (yaml.safe_load(p.read_text()) or {})
    )
    assert len(paths) >= 3
    for p in paths:
        bench, arms = load_bench_config(p)
        assert bench.reference in arms and len(bench.seeds) >= 2


def test_majority_filter_keeps_the_winning_answer():
    from selfplay.config import FilterConfig
    from selfplay.filters import filter_samples

    def s(pid, ans, text):
        return {
            "problem_id": pid,
            "answer": ans,
            "text": text,
            "status": "wrong",
            "valid": False,
            "steps": [],
        }

    samples = [
        s("p", "12", "a|12"),
        s("p", "13", "b|13"),
        s("p", "12", "c|12"),
        s("q", "1", "x|1"),
        s("q", "2", "y|2"),
    ]
    kept = filter_samples(samples, FilterConfig(verified=False, majority=True, max_per_problem=0))
    assert [k["text"] for k in kept] == ["a|12", "c|12"]
    assert samples[1]["filter_reason"] == "not the majority answer"
    assert samples[3]["filter_reason"] == "no majority"
    random.seed(0)
