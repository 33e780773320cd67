"""What one other CPU-bound job costs a training run, with torch's threads at every core (torch's
default) and sized to the cores left free (:func:`selfplay.threads.size_threads`, what
``selfplay run`` and the bench's workers do).

    python scripts/contention_bench.py --out benchmarks/results/contention_bench.json

Each measurement is a fresh process that trains the ``tiny`` preset (NoPE, 1.06M params) for a
fixed number of steps on a fixed batch of 16 sequences of 24 tokens, and reports its wall
seconds. Conditions: the machine idle, and beside one busy-looping process. Medians over
``--repeats``; the figure the issue asks about is each policy's contended / idle ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import sys, time, torch
from selfplay.engine.models import build_char_tokenizer, build_model
from selfplay.threads import size_threads
policy, steps = sys.argv[1], int(sys.argv[2])
threads = size_threads() if policy == "sized" else torch.get_num_threads()
tok = build_char_tokenizer()
m = build_model("tiny", tok, seed=0, position="nope")
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
x = torch.randint(5, 60, (16, 24), generator=torch.Generator().manual_seed(0))
t0 = time.perf_counter()
for _ in range(steps):
    loss = m(input_ids=x, labels=x).loss
    opt.zero_grad(); loss.backward(); opt.step()
print(threads, time.perf_counter() - t0)
"""


def measure(policy: str, steps: int) -> tuple[int, float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, policy, str(steps)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return int(out[0]), float(out[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = {}
    for contended in (False, True):
        hog = None
        if contended:
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for policy in ("all-cores", "sized"):
                runs = [measure(policy, args.steps) for _ in range(args.repeats)]
                key = f"{policy}, {'beside one busy job' if contended else 'idle'}"
                results[key] = {
                    "threads": [t for t, _ in runs],
                    "seconds": [round(s, 3) for _, s in runs],
                    "median_seconds": round(statistics.median(s for _, s in runs), 3),
                }
                print(key, results[key], flush=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    ratios = {
        p: round(
            results[f"{p}, beside one busy job"]["median_seconds"]
            / results[f"{p}, idle"]["median_seconds"],
            2,
        )
        for p in ("all-cores", "sized")
    }
    out = {
        "what": "wall seconds of one training process (tiny preset, fixed batch); medians",
        "steps": args.steps,
        "repeats": args.repeats,
        "machine": {"processor": platform.machine(), "cpus": os.cpu_count()},
        "results": results,
        "contended_over_idle": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print("contended / idle:", ratios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
