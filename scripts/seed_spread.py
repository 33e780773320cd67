"""How much do a bench's seed models differ across seeds? Trains only the seed model (no round) of a
bench config's ``run`` section for each seed and seed recipe, and writes each model's greedy
accuracy on held-out problems at U's difficulties, with the mean, SD and range per recipe.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/seed_spread.py configs/arith/bench.yaml \\
        --seeds 0 1 2 3 4 5 --recipe 600k:seed_train.tokens=600000 \\
        --recipe 1200k:seed_train.tokens=1200000 --jobs 2 --out benchmarks/results/seed_spread.json

Each (recipe, seed) is ``selfplay run`` with ``loop.iterations=0`` and ``eval.difficulties`` set to
U's difficulties at ``--per-difficulty`` problems each, in ``--runs DIR/<recipe>-s<seed>`` (a
finished one is read back, not run again). Rows already in ``--out`` for other recipes are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from selfplay.views.publish import run_commit

ROOT = Path(__file__).resolve().parents[1]


def run_config(bench_path: Path, per_difficulty: int) -> dict:
    """The bench's ``run`` section as a run config: the seed stage and its evaluation only."""
    bench = yaml.safe_load(bench_path.read_text())
    run = dict(bench["run"])
    difficulties = list(run["raw"]["difficulties"])
    run["name"] = f"{bench.get('name', bench_path.stem)}-seed-spread"
    run["loop"] = {**run.get("loop", {}), "iterations": 0}
    run["eval"] = {"difficulties": difficulties, "n_per_difficulty": per_difficulty, "k": 0}
    return run


def one(config: Path, runs: Path, recipe: str, overrides: list[str], seed: int) -> dict:
    out = runs / f"{recipe}-s{seed}"
    metrics = out / "seed" / "metrics.json"
    if not metrics.exists():
        cmd = [sys.executable, "-m", "selfplay.cli", "run", str(config), f"seed={seed}",
               f"output_dir={out}", *overrides, "--no-progress"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise SystemExit(f"{recipe} seed {seed}: selfplay run failed: {tail}")
    m = json.loads(metrics.read_text())
    acc = m["eval"]["accuracy"]
    return {
        "recipe": recipe,
        "overrides": overrides,
        "seed": seed,
        "accuracy": {k: v for k, v in acc.items() if k != "all"},
        "acc_in": acc.get("all"),
        "train_seconds": (m.get("train") or {}).get("seconds"),
        "commit": run_commit(out / "config.yaml"),
    }


def summary(rows: list[dict]) -> dict:
    out = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        accs = [r["acc_in"] for r in rows if r["recipe"] == recipe]
        out[recipe] = {
            "seeds": [r["seed"] for r in rows if r["recipe"] == recipe],
            "mean": statistics.fmean(accs),
            "sd": statistics.stdev(accs) if len(accs) > 1 else None,
            "min": min(accs),
            "max": max(accs),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--recipe",
        action="append",
        required=True,
        help="NAME:key=value[,key=value...] (overrides of the run section)",
    )
    ap.add_argument("--per-difficulty", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "seed-spread")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "seed_spread.json"
    )
    args = ap.parse_args()
    recipes = {}
    for spec in args.recipe:
        name, _, rest = spec.partition(":")
        if not name or ("/" in name):
            raise SystemExit(f"--recipe {spec!r}: NAME:key=value[,key=value...]")
        recipes[name] = [o for o in rest.split(",") if o]
    args.runs.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=".yaml", dir=args.runs)
    config = Path(name)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(run_config(args.bench, args.per_difficulty), f, sort_keys=False)
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            jobs = [
                pool.submit(one, config, args.runs, r, o, s)
                for s in args.seeds
                for r, o in recipes.items()
            ]
            rows = [j.result() for j in jobs]
    finally:
        config.unlink()
    old = json.loads(args.out.read_text()).get("rows", []) if args.out.is_file() else []
    rows = [r for r in old if r["recipe"] not in recipes] + rows
    result = {
        "bench": str(args.bench),
        "run": run_config(args.bench, args.per_difficulty),
        "rows": rows,
        "recipes": summary(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for recipe, s in result["recipes"].items():
        sd = "-" if s["sd"] is None else f"{s['sd']:.3f}"
        print(f"{recipe:<12} acc in {s['mean']:.3f} sd {sd} range {s['min']:.3f}-{s['max']:.3f}"
              f"  seeds {s['seeds']}")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
