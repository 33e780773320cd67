"""Verifier throughput per task on this machine: chains/s on gold solutions and on altered ones
(the last digit of the text changed: usually wrong, but a change the verifier does not check, such
as a number in prose or a constant a test never reaches, stays valid).

Medians over repeats, a fresh verifier each repeat (no cache carried over); writes JSON. Rows
not run (``--tasks``) keep what the file held.

    python scripts/verifier_bench.py --out benchmarks/results/verifier_bench.json [--repeats 3]

Data: arith and countdown are generated; gsm8k reads GSM8K train, code reads HumanEval, math reads
the hand-written fixture in tests/fixtures (paths below; a task whose data is absent is skipped).
``math`` times the 24 gold and altered chains from a cold start (math-verify's worker processes
start inside the timing); ``math-round`` times a round's worth of samples (see ``MATH_MIX``) on
workers already started, and reports the start-up apart.
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
    row = {
        "chains_per_s": statistics.median(rates),
        "runs": rates,
        "chains": 2 * len(problems),
        "gold_valid": accepted[0],
        "altered_valid": accepted[1],
    }
    if name == "code":
        from selfplay.sandbox import run_python

        # the jail the chains ran in: its layers, as a trivial program reports them
        row["sandbox_layers"] = list(run_python("pass").layers)
    row["load_average"] = os.getloadavg()
    row["commit"] = _commit()
    return row


def _commit() -> str:
    """The commit the row was measured at (``+dirty`` with uncommitted changes)."""
    from selfplay.engine.rundir import git

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


# ------------------------------------------------------------------------------------------------
# math: a round's worth of samples

MATH_SAMPLES = 256
"""Samples per fixture problem in the math round mix (12 problems: 3,072 chains)."""
MATH_MIX = {
    "gold": 0.30,  # the reference solution, its answer spelled as the gold
    "respelled": 0.15,  # the gold answer spelled another way (0.5 for 1/2, \left(...\right))
    "altered": 0.15,  # the reference solution with its last digit changed
    "wrong number": 0.20,  # a boxed integer 0-99 (a guess)
    "wrong expression": 0.10,  # a plausible wrong answer of the gold's kind
    "no answer": 0.10,  # the solution cut before its \boxed{}
}
"""What the math row's samples are, by share. Made up, not measured on a model: a round at
mid training, a third right. The fixture has 7 non-numeric answers out of 12 (MATH-500 has
fewer), and wrong guesses against them are what math-verify must judge."""
RESPELLINGS = json.loads((ROOT / "tests" / "fixtures" / "math_respellings.json").read_text())
"""The fixture's golds spelled other ways (the same answer); shared with the agreement tests."""
WRONG_EXPRESSIONS = ["\\frac{1}{3}", "x^2+1", "\\sqrt{2}", "(1, 5)", "-3", "2\\pi", "\\text{(B)}"]


def math_round(problems, task, rng: random.Random) -> tuple[list, list[str]]:
    """``MATH_SAMPLES`` samples per problem drawn from :data:`MATH_MIX`; the kinds alongside."""
    kinds, weights = zip(*MATH_MIX.items(), strict=True)
    items, drawn = [], []
    for p in problems:
        gold = task.gold_chain(p)
        for kind in rng.choices(kinds, weights, k=MATH_SAMPLES):
            if kind == "gold":
                text = gold
            elif kind == "respelled":
                text = f"so the answer is $\\boxed{{{rng.choice(RESPELLINGS.get(p.answer, [p.answer]))}}}$."
            elif kind == "altered":
                text = _break(gold)
            elif kind == "wrong number":
                text = f"The answer is \\boxed{{{rng.randrange(100)}}}."
            elif kind == "wrong expression":
                text = f"Thus \\boxed{{{rng.choice(WRONG_EXPRESSIONS)}}}."
            else:
                text = gold[: gold.rfind("\\boxed")]
            items.append((p, text))
            drawn.append(kind)
    return items, drawn


def bench_math_round(repeats: int) -> dict | None:
    """The math verifier on a round's mix: a fresh task each repeat (workers started, and timed,
    apart; no cache carried over), ``verify_many`` over every sample."""
    from collections import Counter

    from selfplay.tasks import TASKS
    from selfplay.tasks.mathtask import fast_judge, read_answer

    problems = problems_for("math", random.Random(0))
    if problems is None:
        return None
    rates, startups, waits, verdicts, task = [], [], [], [], None
    task = TASKS["math"].verifier()
    items, kinds = math_round(problems, task, random.Random(0))
    for _ in range(repeats):
        task = TASKS["math"].verifier()
        t0 = time.perf_counter()
        task.start_workers()
        startups.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        verdicts = task.verify_many(items)
        rates.append(len(items) / (time.perf_counter() - t0))
        waits.append(task.worker_seconds)
        task.close()
    assert task is not None
    pairs = Counter((p.answer, a) for p, c in items if isinstance(a := read_answer(c), str))
    slow = [pair for pair in pairs if fast_judge(*pair) is None]
    answered = sum(pairs.values())
    return {
        "what": "verify_many over a round's mix, workers already started (startup apart)",
        "chains_per_s": statistics.median(rates),
        "runs": rates,
        "chains": len(items),
        "workers": task.workers,
        "worker_startup_s": statistics.median(startups),
        "seconds": len(items) / statistics.median(rates),
        "waiting_for_workers_s": statistics.median(waits),
        "mix": dict(Counter(kinds)),
        "valid": sum(v.valid for v in verdicts),
        "statuses": dict(Counter(v.status for v in verdicts)),
        "distinct_answers": len(pairs),
        "decided_by_text_or_number": 1 - sum(pairs[k] for k in slow) / len(items),
        # of the chains with a boxed answer: decided without math-verify (text, number, forms)
        "decided_without_math_verify": 1 - task.decided["math-verify"] / answered,
        "decided_by": dict(task.decided),
        "describe_calls": task.calls["describe"],
        "math_verify_calls": task.calls["math-verify"],
        "load_average": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/verifier_bench.json")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--tasks",
        nargs="*",
        default=["arith", "countdown", "gsm8k", "math", "math-round", "code"],
    )
    args = ap.parse_args()
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "tasks": {},
    }
    for name in args.tasks:
        if name == "math-round":
            r = bench_math_round(args.repeats)
            result["tasks"][name] = r
            if r is not None:
                print(
                    f"{name:<10} {r['chains_per_s']:>10,.0f} chains/s   {r['chains']} samples,"
                    f" {r['distinct_answers']} distinct answers,"
                    f" {r['decided_without_math_verify']:.1%} decided without math-verify;"
                    f" {r['describe_calls']} answers read, {r['math_verify_calls']} pairs for"
                    f" math-verify on {r['workers']} workers (started in"
                    f" {r['worker_startup_s']:.1f} s)"
                )
            continue
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
    if out.is_file():  # rows not run this time are kept as they were
        old = json.loads(out.read_text())
        result["tasks"] = {**old.get("tasks", {}), **result["tasks"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
