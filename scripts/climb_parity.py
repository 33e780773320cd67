"""Compare two runs of one climb config (e.g. the same ``configs/arith/climb.yaml`` at two
commits, run side by side on one machine): per round, each run's cumulative CPU seconds, its
test accuracy per length and its solved lengths, whether the two agree, and where each first
solves every length up to a target. Writes the numbers to a JSON file.

    python scripts/climb_parity.py RUN_A RUN_B --target 16 --out benchmarks/results/climb/parity.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path


def rounds(run: Path) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        acc = {int(d): a for d, a in r["eval"]["accuracy"].items() if d != "all"}
        c = r["cumulative"]
        out.append({
            "stage": r["stage"], "accuracy": acc, "cpu_seconds": c.get("cpu_seconds"),
            "seconds": c["seconds"], "train_tokens": c["train_tokens"],
        })  # fmt: skip
    return out


def solved(acc: dict[int, float], threshold: float) -> int:
    d = 0
    while acc.get(d + 1, 0.0) >= threshold:
        d += 1
    return d


def first_reaching(rs: list[dict], target: int, threshold: float) -> dict | None:
    return next((r for r in rs if solved(r["accuracy"], threshold) >= target), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--target", type=int, default=16)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--label-a", default="a")
    ap.add_argument("--label-b", default="b")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    ra, rb = rounds(args.a), rounds(args.b)
    n = min(len(ra), len(rb))
    per_round = [
        {
            "stage": ra[i]["stage"],
            f"cpu_seconds_{args.label_a}": ra[i]["cpu_seconds"],
            f"cpu_seconds_{args.label_b}": rb[i]["cpu_seconds"],
            "cpu_ratio": rb[i]["cpu_seconds"] / ra[i]["cpu_seconds"],
            "same_test_accuracy": ra[i]["accuracy"] == rb[i]["accuracy"],
            "solved": solved(rb[i]["accuracy"], args.threshold),
        }
        for i in range(n)
    ]
    fa, fb = (first_reaching(r, args.target, args.threshold) for r in (ra, rb))
    out = {
        "runs": {args.label_a: str(args.a), args.label_b: str(args.b)},
        "machine": {"cpus": __import__("os").cpu_count(), "processor": platform.processor()},
        "target": args.target,
        "threshold": args.threshold,
        "rounds_compared": n,
        "every_round_same_test_accuracy": all(r["same_test_accuracy"] for r in per_round),
        "first_reaching_target": {
            args.label_a: fa and {"stage": fa["stage"], "cpu_seconds": fa["cpu_seconds"]},
            args.label_b: fb and {"stage": fb["stage"], "cpu_seconds": fb["cpu_seconds"]},
        },
        "per_round": per_round,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    last = per_round[-1]
    print(
        f"{n} rounds; same test accuracy every round: {out['every_round_same_test_accuracy']}; "
        f"last CPU ratio {last['cpu_ratio']:.3f}; first to 1..{args.target}: "
        f"{out['first_reaching_target']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
