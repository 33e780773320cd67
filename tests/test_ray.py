"""``executor: ray`` on a real Ray cluster of two nodes on this machine, started and stopped by the
tests: a bench gives the local executor's results, and survives losing a node mid-bench.
Slow (``make test-slow`` installs the ``ray`` extra)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfplay.bench.config import load_bench_config
from selfplay.bench.runner import run_bench
from selfplay.engine import artifacts
from tests.ray_cluster import Cluster, free_port

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")

TIMING = {"cpu_seconds", "seconds", "wall_seconds", "elapsed_seconds"}


@pytest.fixture
def cluster():
    c = Cluster(1)  # two nodes of one CPU: two runs at once, one thread each
    yield c
    c.stop()


RUN = {
    "raw": {"size": 200, "difficulties": [1, 2]},
    "seed_train": {"tokens": 60000, "lr": 0.002},
    "loop": {"iterations": 2, "pool_difficulties": [1, 2, 3], "problems_per_iter": 40},
    "generation": {"n": 2, "batch_size": 64},
    "train": {"tokens": 8000, "batch_size": 16},
    "eval": {"difficulties": [1, 2, 3], "n_per_difficulty": 10, "k": 0},
}
ARMS = {
    "raw-fresh": ["loop.data_source=raw-fresh"],
    "raw-repeat": ["loop.data_source=raw-repeat"],
    "selfplay": [],
}


def _config(tmp_path: Path, name: str, **extra) -> Path:
    data = {
        "name": name,
        "output_dir": str(tmp_path / name),
        "seeds": [0, 1],
        "verdict": False,
        "reference": "raw-fresh",
        "run": RUN,
        "arms": ARMS,
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(data))
    return path


def _rows(bench_dir: Path) -> list[dict]:
    rows = artifacts.read_parquet(bench_dir / "results.parquet")
    return sorted(
        ({k: v for k, v in r.items() if k not in TIMING} for r in rows),
        key=lambda r: (r["arm"], r["seed"], r.get("iteration") or 0, str(r.get("stage"))),
    )


def test_a_bench_on_two_ray_nodes_gives_the_local_executors_results(tmp_path, cluster):
    run_bench(*load_bench_config(_config(tmp_path, "local", jobs=2)), progress=False)
    overrides = ["executor=ray", f"ray.address={cluster.address}"]
    bench, arms = load_bench_config(_config(tmp_path, "ray"), overrides)
    run_bench(bench, arms, progress=False)
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local")
    assert {r["arm"] for r in _rows(tmp_path / "ray")} == set(ARMS)
    prov = json.loads((tmp_path / "ray" / "provenance.json").read_text())
    assert prov["executor"] == "Ray: 2 runs at once (1 CPU each)"
    # Each run reported its bars to its run directory, which the driver read.
    for arm in ARMS:
        state = json.loads((tmp_path / "ray" / "seed_1" / arm / "progress.json").read_text())
        assert state["done"] and state["n"] > 0


def test_a_bench_that_loses_a_node_mid_run_finishes_with_the_same_results(tmp_path, cluster):
    path = _config(tmp_path, "lost", executor="ray", ray={"address": cluster.address})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "selfplay.cli", "bench", str(path), "--no-progress"]
    log = tmp_path / "driver.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    out = tmp_path / "lost"
    deadline = time.monotonic() + 600
    # Wait until both nodes run an arm (each seed model done, arms going), then lose one.
    while time.monotonic() < deadline and proc.poll() is None:
        started = [d for d in out.glob("seed_*/*/iter_001") if d.is_dir()]
        if len(started) >= 2:
            break
        time.sleep(0.5)
    assert proc.poll() is None, log.read_text()[-2000:]
    assert cluster.kill_second_node() == 1
    assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    # The same bench with nothing lost, on the local executor (one thread per run, as on Ray).
    local = _config(tmp_path, "local", jobs=2)
    bench, arms = load_bench_config(local)
    run_bench(bench, arms, progress=False)
    assert _rows(out) == _rows(tmp_path / "local")
    assert not list(out.rglob("*.tmp-*"))  # nothing a killed attempt left half-written


def test_an_unreachable_cluster_is_a_one_line_error(tmp_path):
    path = _config(tmp_path, "nowhere", executor="ray", ray={"address": f"127.0.0.1:{free_port()}"})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "selfplay.cli", "bench", str(path), "--no-progress"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "ray.address: cannot reach 127.0.0.1:" in done.stderr + done.stdout
