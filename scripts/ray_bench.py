"""The Ray executor against the local one: the same bench on both, the same results, and what Ray
costs in elapsed time.

    python scripts/ray_bench.py --out benchmarks/results/ray_executor.json

For each config (default: the quick bench and the quick climb bench), runs ``selfplay bench`` on
the local executor (the config's ``jobs``) and on a Ray cluster of two nodes on this machine with
one CPU each (``executor=ray ray.cpus=1``: as many runs at once, one thread each, as ``jobs: 2``
gives on 2 cores), each from an empty bench directory, alone on the machine. Records each
bench's elapsed seconds (the cluster already up, as a cluster is; its start is recorded apart),
the overhead ratio, and whether every row of ``results.parquet`` is equal (timings aside).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.ray_cluster import Cluster  # noqa: E402

from selfplay.engine import artifacts  # noqa: E402

TIMING = {"cpu_seconds", "seconds", "wall_seconds", "elapsed_seconds"}


def bench(config: str, out: Path, *overrides: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "selfplay.cli", "bench", config, f"output_dir={out}", *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    done = subprocess.run([*cmd, "--no-progress"], env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def rows(bench_dir: Path) -> list[dict]:
    out = [
        {k: v for k, v in r.items() if k not in TIMING}
        for r in artifacts.read_parquet(bench_dir / "results.parquet")
    ]
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--configs",
        nargs="+",
        default=["configs/arith/bench-quick.yaml", "configs/arith/climb-bench-quick.yaml"],
    )
    ap.add_argument("--work", default="runs/ray-bench")
    ap.add_argument("--out", default="benchmarks/results/ray_executor.json")
    args = ap.parse_args()
    work = Path(args.work)
    t0 = time.perf_counter()
    cluster = Cluster(1)
    start = time.perf_counter() - t0
    results = []
    try:
        for config in args.configs:
            name = Path(config).stem
            local = bench(config, work / f"{name}-local")
            on_ray = bench(
                config, work / f"{name}-ray", "executor=ray", f"ray.address={cluster.address}"
            )
            a, b = rows(work / f"{name}-local"), rows(work / f"{name}-ray")
            differ = sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))
            results.append(
                {
                    "config": config,
                    "rows": len(a),
                    "rows_equal": a == b,
                    "rows_differing": differ,
                    "elapsed_local_s": round(local, 1),
                    "elapsed_ray_s": round(on_ray, 1),
                    "overhead": round(on_ray / local - 1, 4),
                }
            )
            print(json.dumps(results[-1]), flush=True)
    finally:
        cluster.stop()
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    out = {
        "what": "the same bench on the local executor (jobs: 2) and on a local two-node Ray "
        "cluster (1 CPU per node, ray.cpus=1), each alone on the machine, from empty directories",
        "commit": commit,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "cluster_start_s": round(start, 1),
        "benches": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
