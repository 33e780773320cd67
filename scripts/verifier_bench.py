"""Verifier throughput per task on this machine: chains/s on gold solutions and on altered ones
(the last digit of the text changed: usually wrong, but a change the verifier does not check, such
as a number in prose or a constant a test never reaches, stays valid).

Medians over repeats, a fresh verifier each repeat (no cache carried over); writes JSON.

    python scripts/verifier_bench.py --out benchmarks/results/verifier_bench.json [--repeats 3]

Data: arith and countdown are generated; gsm8k reads GSM8K train, code reads HumanEval, math reads
the hand-written fixture in tests/fixtures (paths below; a task whose data is absent is skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = next(
    (
        Path(c)
        for c in (os.environ.get("SELFPLAY_SHARED_DATA"), ROOT.parent / "shared" / "data")
        if c and Path(c).is_dir()
    ),
    Path("/work/shared/data"),
)
DATA = {
    "gsm8k": SHARED / "gsm8k" / "train.jsonl",
    "code": SHARED / "humaneval" / "HumanEval.jsonl.gz",
    "math": ROOT / "tests" / "fixtures" / "math_problems.jsonl",
}


def _break(text: str) -> str:
    """A plausible wrong completion: the last digit in the text changed (or a line dropped)."""
    for i in range(len(text) - 1, -1, -1):
        if text[i].isdigit():
            return text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :]
    return "\n".join(text.splitlines()[:-1])


def problems_for(name: str, rng: random.Random):
    from selfplay.tasks import TASKS
    from selfplay.tasks.data import read_records

    cls = TASKS[name]
    if name in DATA:
        if not DATA[name].exists():
            return None
        task = cls.from_records(read_records(DATA[name]))
        return task.problems
    task = cls.verifier()
    ds = range(1, 6) if name == "arith" else range(2, 7)
    return [p for d in ds for p in task.sample_problems("train", d, 300, rng)]


def bench_task(name: str, repeats: int) -> dict | None:
    from selfplay.tasks import TASKS, verify_all

    problems = problems_for(name, random.Random(0))
    if problems is None:
        return None
    rates, accepted = [], None
    for _ in range(repeats):
        task = TASKS[name].verifier()
        items = [(p, task.gold_chain(p)) for p in problems]
        items += [(p, _break(c)) for p, c in items]
        t0 = time.perf_counter()
        verdicts = verify_all(task, items)
        rates.append(len(items) / (time.perf_counter() - t0))
        accepted = (
            sum(v.valid for v in verdicts[: len(problems)]),
            sum(v.valid for v in verdicts[len(problems) :]),
        )
        if hasattr(task, "close"):
            task.close()
    return {
        "chains_per_s": statistics.median(rates),
        "runs": rates,
        "chains": 2 * len(problems),
        "gold_valid": accepted[0],
        "altered_valid": accepted[1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/verifier_bench.json")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tasks", nargs="*", default=["arith", "countdown", "gsm8k", "math", "code"])
    args = ap.parse_args()
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "tasks": {},
    }
    for name in args.tasks:
        r = bench_task(name, args.repeats)
        result["tasks"][name] = r
        if r is None:
            print(f"{name:<10} skipped (data not found)")
        else:
            print(
                f"{name:<10} {r['chains_per_s']:>10,.0f} chains/s   gold valid {r['gold_valid']}/{r['chains'] // 2}"
                f"   altered valid {r['altered_valid']}/{r['chains'] // 2}"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
