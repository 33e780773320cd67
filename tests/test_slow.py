"""Heavier checks (marked slow; `make test-slow`, run by .ci/run): a real SIGKILL mid-run, and the
shipped smoke bench config end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from selfplay.engine import artifacts

pytestmark = pytest.mark.slow
REPO = Path(__file__).parents[1]

MICRO = {
    "name": "killed",
    "raw": {"size": 300, "difficulties": [1, 2]},
    "seed_train": {"tokens": 20000},
    "loop": {"iterations": 2, "pool_difficulties": [1, 2], "problems_per_iter": 60},
    "generation": {"n": 4, "batch_size": 64},
    "filters": {"verified": False},
    "train": {"tokens": 15000, "batch_size": 16},
    "eval": {"difficulties": [1, 2], "n_per_difficulty": 20, "k": 2},
}


def _cli(*args, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "selfplay.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **kw,
    )


@pytest.mark.parametrize("kill_after", [4.0, 9.0, 14.0])
def test_sigkill_then_rerun_matches_an_uninterrupted_run(tmp_path, kill_after):
    cfg = tmp_path / "killed.yaml"
    cfg.write_text(yaml.safe_dump(MICRO))
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert _cli("run", str(cfg), f"output_dir={ref}", "--no-progress").wait(timeout=600) == 0

    proc = _cli("run", str(cfg), f"output_dir={out}", "--no-progress", start_new_session=True)
    time.sleep(kill_after)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    rerun = _cli("run", str(cfg), f"output_dir={out}", "--no-progress")
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err.decode()[-2000:]

    for rel in ["iter_001/samples.parquet", "iter_002/samples.parquet", "iter_002/kept.parquet"]:
        assert artifacts.read_parquet(ref / rel) == artifacts.read_parquet(out / rel), rel
    ref_rows = [artifacts.read_json(p) for p in sorted(ref.glob("iter_*/metrics.json"))]
    out_rows = [artifacts.read_json(p) for p in sorted(out.glob("iter_*/metrics.json"))]
    assert [r["eval"] for r in ref_rows] == [r["eval"] for r in out_rows]
    assert not list(out.rglob("*.tmp-*"))


def test_quick_bench_config_runs(tmp_path):
    from selfplay.bench.config import load_bench_config
    from selfplay.bench.runner import run_bench

    bench, arms = load_bench_config(
        REPO / "configs" / "arith" / "bench-quick.yaml",
        ["seeds=[0]", "verdict=false", f"output_dir={tmp_path / 'b'}"],
    )
    rows = run_bench(bench, arms, progress=False)
    assert {r["arm"] for r in rows} == set(arms)
    # Every kind of arm is there and trains: the seed model solves enough of its pool that every
    # self-play filter keeps chains.
    kinds = {"raw-repeat", "raw-fresh-1x", "selfplay-verified", "selfplay-unverified"}
    assert kinds | {"selfplay-majority", "selfplay-grpo"} <= set(arms)
    final = {r["arm"]: r for r in rows if r["iteration"] == max(x["iteration"] for x in rows)}
    assert all(final[a]["steps"] > 0 for a in arms), {a: final[a]["steps"] for a in arms}
    report = (tmp_path / "b" / "report.md").read_text()
    for arm in arms:
        assert f"| {arm} |" in report


def test_small_sweep_end_to_end(tmp_path):
    """Two sizes x two qualities x three arms, one seed: every regime is a bench of its own and the
    sweep report has one line per regime and budget checkpoint."""
    from selfplay.bench.config import load_bench_config
    from selfplay.bench.sweep import run_sweep

    sweep = {
        "name": "sweep-smoke",
        "output_dir": str(tmp_path / "s"),
        "seeds": [0],
        "verdict": False,  # one seed: a smoke run, no verdict
        "reference": "raw-fresh",
        "run": {
            "raw": {"size": 100, "difficulties": [1, 2]},
            "seed_train": {"epochs": 2},
            "loop": {"iterations": 2, "pool_difficulties": [1, 2, 3], "problems_per_iter": 30},
            "generation": {"n": 2, "batch_size": 128},
            "train": {"budget_epochs": [1, 2], "lr": 0.0005, "batch_size": 16},
            "eval": {"difficulties": [1, 2, 3], "n_per_difficulty": 8, "k": 0},
        },
        "arms": {
            "raw-repeat": ["loop.data_source=raw-repeat"],
            "raw-fresh": ["loop.data_source=raw-fresh", "loop.fresh_multiplier=3"],
            "selfplay-fill": ["loop.fill_budget=true", "loop.fill_max_draws=2"],
        },
        "sweep": {
            "size": {"u100": [], "u200": ["raw.size=200"]},
            "quality": {"clean": [], "slips": ["raw.slip_rate=0.5"]},
        },
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))  # axis order names the regimes
    bench, _ = load_bench_config(path)
    rows = run_sweep(bench, progress=False)
    regimes = {"u100-clean", "u100-slips", "u200-clean", "u200-slips"}
    assert {r["regime"] for r in rows} == regimes
    assert len(rows) == 4 * 3 * 3  # regimes x arms x (seed model + 2 rounds)
    for regime in regimes:
        assert (tmp_path / "s" / regime / "report.md").exists()
    report = (tmp_path / "s" / "report.md").read_text()
    if all(r["acc_in"] == 0 for r in rows):
        # Nothing learned at this size: the report says so in one line instead of a zero table.
        assert "Accuracy in-distribution: 0 for every arm, regime and budget." in report
    else:  # the in-distribution table: one row per regime and round (2 rounds)
        table = report.split("## Accuracy in-distribution", 1)[1].split("\n## ", 1)[0]
        for regime in regimes:
            assert sum(line.startswith(f"| {regime} |") for line in table.splitlines()) == 2
    assert (tmp_path / "s" / "sweep.png").stat().st_size > 1000
    # U's size decides the budgets: the u200 arms train about twice the u100 arms' tokens.
    final = {(r["regime"], r["arm"]): r for r in rows if r["iteration"] == 2}
    ratio = (
        final[("u200-clean", "raw-repeat")]["train_tokens"]
        / final[("u100-clean", "raw-repeat")]["train_tokens"]
    )
    assert 1.6 < ratio < 2.4
