"""``scripts/seed_spread.py``: the seed models of a bench's run section, across seeds and recipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.test_loop import MICRO

REPO = Path(__file__).resolve().parents[1]


def test_spread_per_recipe_from_the_seed_stage_alone(tmp_path):
    bench = tmp_path / "bench.yaml"
    bench.write_text(yaml.safe_dump({"name": "b", "run": MICRO, "arms": {"a": []}}))
    out = tmp_path / "spread.json"
    cmd = [sys.executable, str(REPO / "scripts/seed_spread.py"), str(bench), "--seeds", "0", "1",
           "--recipe", "short:seed_train.tokens=2000", "--recipe", "long:seed_train.tokens=4000",
           "--per-difficulty", "5", "--jobs", "2", "--runs", str(tmp_path / "runs"),
           "--out", str(out)]  # fmt: skip
    env = {"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [(r["recipe"], r["seed"]) for r in result["rows"]] == [
        ("short", 0), ("long", 0), ("short", 1), ("long", 1),
    ]  # fmt: skip
    for r in result["rows"]:
        assert set(r["accuracy"]) == {"1", "2"} and 0 <= r["acc_in"] <= 1
        metrics = tmp_path / "runs" / f"{r['recipe']}-s{r['seed']}" / "seed" / "metrics.json"
        assert json.loads(metrics.read_text())["eval"]["accuracy"]["all"] == r["acc_in"]
        assert not (metrics.parent.parent / "iter_001").exists()  # the seed stage only
    long = [r["acc_in"] for r in result["rows"] if r["recipe"] == "long"]
    assert result["recipes"]["long"]["min"] == min(long)
    assert result["run"]["eval"]["difficulties"] == [1, 2]
    # a second call reads the finished runs back (the same numbers) and keeps the other rows
    i = cmd.index("--recipe")
    del cmd[i : i + 2]
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    by = {"short": 0, "long": 1}
    want = sorted(result["rows"], key=lambda r: by[r["recipe"]])
    assert json.loads(out.read_text())["rows"] == want
