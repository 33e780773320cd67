"""How well agreement finds right labels: for every round of a climb bench's self-play arms, the
share of practised problems whose most common answer has at least k of the n votes (the labels a
k-vote filter keeps) and the share of those labels that is right (its precision), for every k; the
best any filter over the same samples could do (pass@n: some sample is right); and, per
difficulty, the greedy probe's agreement against its accuracy where the probe was label-free.

Ground truth is read here to measure the filters, never by them.

    python scripts/agreement_precision.py runs/arith-climb-bench-labelfree \\
        benchmarks/results/climb-bench-labelfree/agreement

writes ``<out>.json`` (every arm x seed x round, every k) and ``<out>.md`` (means over seeds).
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from selfplay.engine import artifacts
from selfplay.engine.filters import label_answer


def round_rows(run_dir: Path) -> list[dict]:
    """One row per round of a run whose samples hold several answers or a label-free probe."""
    out = []
    for it in sorted(run_dir.glob("iter_*")):
        samples = it / "samples.parquet"
        if not samples.exists():
            continue
        by: dict[str, list[dict]] = defaultdict(list)
        for s in artifacts.read_parquet(samples):
            by[s["problem_id"]].append(s)
        if not by:
            continue
        n = max(len(g) for g in by.values())
        row = {"round": int(it.name.split("_")[1]), "problems": len(by), "votes": n}
        row["pass_at_n"] = sum(any(s["status"] == "correct" for s in g) for g in by.values()) / len(
            by
        )
        for k in range(1, n + 1):
            kept = right = 0
            for g in by.values():
                answers = [label_answer(s["text"]) for s in g]
                best, count = Counter(answers).most_common(1)[0]
                if count >= k:
                    kept += 1
                    right += g[answers.index(best)]["status"] == "correct"
            row[f"kept_{k}"] = kept / len(by)
            row[f"precision_{k}"] = right / kept if kept else None
        probe, checked = it / "probe.json", it / "probe_accuracy.json"
        if checked.exists():
            row["probe_agreement"] = artifacts.read_json(probe)
            row["probe_accuracy"] = artifacts.read_json(checked)["accuracy"]
        out.append(row)
    return out


def collect(bench_dir: Path) -> list[dict]:
    rows = []
    for seed_dir in sorted(bench_dir.glob("seed_*")):
        seed = int(seed_dir.name.split("_")[1])
        for arm_dir in sorted(p for p in seed_dir.iterdir() if p.is_dir()):
            for r in round_rows(arm_dir):
                rows.append({"arm": arm_dir.name, "seed": seed, **r})
    return rows


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _cell(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "# Agreement as a label filter",
        "",
        "Per arm and round, means over seeds: **pass@n**, the share of practised problems with "
        "at least one right answer among the n; for each k, **kept**: the share whose most "
        "common answer has >= k votes, and **right**: the share of those labels that is right.",
        "",
    ]
    by: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        by[(r["arm"], r["round"])].append(r)
    n = max((r["votes"] for r in rows), default=1)
    head = ["arm", "round", "seeds", "pass@n"]
    for k in range(1, n + 1):
        head += [f"kept >= {k}", f"right >= {k}"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (arm, k_round), rs in sorted(by.items()):
        cells = [arm, str(k_round), str(len(rs)), _cell(_mean([r["pass_at_n"] for r in rs]))]
        for k in range(1, n + 1):
            cells += [
                _cell(_mean([r.get(f"kept_{k}") for r in rs])),
                _cell(_mean([r.get(f"precision_{k}") for r in rs])),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    probes = [r for r in rows if "probe_accuracy" in r]
    if probes:
        lines += [
            "",
            "## The label-free probe: agreement against accuracy, per difficulty",
            "",
            "Each round's probe on its validation problems (means over seeds): the share whose "
            "answers all agree, which chose what to practise, and the share whose greedy answer "
            "is right, which nothing read.",
            "",
            "| arm | round | difficulty | agreement | accuracy |",
            "|---|---|---|---|---|",
        ]
        cells: dict[tuple[str, int, int], list[tuple[float, float]]] = defaultdict(list)
        for r in probes:
            for d, a in r["probe_agreement"].items():
                cells[(r["arm"], r["round"], int(d))].append((a, r["probe_accuracy"][d]))
        for (arm, k_round, d), vals in sorted(cells.items()):
            agree = _mean([v[0] for v in vals])
            acc = _mean([v[1] for v in vals])
            lines.append(f"| {arm} | {k_round} | {d} | {_cell(agree)} | {_cell(acc)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-4], file=sys.stderr)
        print("usage: agreement_precision.py BENCH_DIR OUT_PREFIX", file=sys.stderr)
        return 2
    bench_dir, out = Path(argv[0]), Path(argv[1])
    if not bench_dir.is_dir():
        print(f"error: {bench_dir} is not a directory", file=sys.stderr)
        return 2
    rows = collect(bench_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    out.with_suffix(".md").write_text(to_markdown(rows))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')} ({len(rows)} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
