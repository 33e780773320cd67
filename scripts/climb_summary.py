"""Summarise a frontier-schedule run into small result files: JSON, a Markdown table and two
figures (``<out>_heatmap.png``: test accuracy by difficulty x round; ``<out>_frontier.png``: the
frontier against cumulative training tokens and FLOPs).

python scripts/climb_summary.py runs/arith-climb benchmarks/results/climb/n5-seed0
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path


def summarise(run_dir: Path) -> dict:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    final_path = run_dir / "final.json"
    final = json.loads(final_path.read_text()) if final_path.exists() else None
    header = (run_dir / "config.yaml").read_text().splitlines()[0]
    rounds = []
    for r in rows:
        fr = r.get("frontier", {})
        rounds.append(
            {
                "stage": r["stage"],
                "probe_solved": fr.get("probe_solved"),
                "practice": fr.get("practice"),
                "label_accuracy": r.get("filter", {}).get("label_accuracy"),
                "kept": r.get("filter", {}).get("kept"),
                "kept_accuracy": r.get("filter", {}).get("kept_accuracy"),
                "test_solved": r["eval"].get("solved"),
                "test_accuracy": {k: v for k, v in r["eval"]["accuracy"].items() if k != "all"},
                "train_tokens": r["train"]["tokens"],
                "seconds": r["seconds"]["total"],
                "cumulative_seconds": r["cumulative"]["seconds"],
                "cumulative_cpu_seconds": r["cumulative"].get("cpu_seconds"),
            }
        )
    return {
        "run_dir": str(run_dir),
        "environment": header.lstrip("# "),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_summary": os.getloadavg(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "config": (run_dir / "config.yaml").read_text(),
        "rounds": rounds,
        "final": final,
    }


def to_markdown(s: dict) -> str:
    diffs = sorted({int(d) for r in s["rounds"] for d in r["test_accuracy"]})
    if s["final"]:
        diffs = sorted(set(diffs) | {int(d) for d in s["final"]["eval"]["accuracy"] if d != "all"})
    lines = [
        f"# {s['run_dir']}",
        "",
        s["environment"],
        "",
        "| stage | probe frontier | practised | labels correct | kept | test solved 1..d | wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda x: "" if x is None else (f"{x:.2f}" if isinstance(x, float) else str(x))  # noqa: E731
    for r in s["rounds"]:
        lines.append(
            f"| {r['stage']} | {fmt(r['probe_solved'])} | {fmt(r['practice'])} | "
            f"{fmt(r['label_accuracy'])} | {fmt(r['kept'])} | {fmt(r['test_solved'])} | "
            f"{r['cumulative_seconds']:.0f} | {fmt(r['cumulative_cpu_seconds'] and round(r['cumulative_cpu_seconds']))} |"
        )
    lines += ["", "Test accuracy (greedy, held-out) by digits:", ""]
    lines.append("| stage | " + " | ".join(str(d) for d in diffs) + " |")
    lines.append("|---|" + "---|" * len(diffs))
    table = [(r["stage"], r["test_accuracy"]) for r in s["rounds"]]
    if s["final"]:
        table.append(("final (" + s["final"]["model"] + ")", s["final"]["eval"]["accuracy"]))
    for name, acc in table:
        lines.append(f"| {name} | " + " | ".join(fmt(acc.get(str(d))) for d in diffs) + " |")
    if s["final"]:
        lines += [
            "",
            f"Stopped: {s['final']['stop']}. Solved 1..{s['final']['eval']['solved']} on the test split.",
        ]
    return "\n".join(lines) + "\n"


def write_figures(run_dir: Path, out: Path) -> list[Path]:
    """The heatmap and the frontier-against-compute figure, next to the JSON and Markdown."""
    from selfplay.engine.rundir import read_metrics
    from selfplay.views.chains import frontier_threshold
    from selfplay.views.climb import read_final, write_figures

    rows = read_metrics(run_dir)
    return write_figures(rows, frontier_threshold(run_dir), read_final(run_dir), out)


def main(argv: list[str]) -> int:
    run_dir, out = Path(argv[0]), Path(argv[1])
    s = summarise(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    figures = write_figures(run_dir, out.with_suffix(""))
    s["figures"] = [p.name for p in figures]
    md = to_markdown(s) + "".join(f"\n![{p.stem}]({p.name})\n" for p in figures)
    out.with_suffix(".json").write_text(json.dumps(s, indent=1) + "\n")
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
