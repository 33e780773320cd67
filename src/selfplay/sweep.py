"""Regime sweeps: the same arms in every combination of data regimes (``sweep:`` in a bench config).

A regime is one level of each axis, e.g. corpus size ``u1000`` x quality ``slips``; each regime is
an ordinary bench in ``<bench>/<regime>/`` (resumable, with its own report), and the sweep report
says, per regime and budget checkpoint, which arm wins and by how much (paired over seeds, 95% CI).

    sweep:
      size: {u300: [raw.size=300], u1000: [raw.size=1000]}
      quality: {clean: [], slips: [raw.slip_rate=0.3], answer-only: [raw.answer_only_rate=0.7]}
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import asdict
from pathlib import Path

import yaml

from selfplay import artifacts
from selfplay.bench import run_bench, write_provenance, write_summary
from selfplay.bench_config import BenchConfig, arm_config, arm_configs, regimes, sub_bench
from selfplay.bench_report import render_markdown, time_line
from selfplay.progress import bench_seconds, format_duration
from selfplay.stats import format_ci, mean_ci


def run_sweep(bench: BenchConfig, console=None, progress: bool = True) -> list[dict]:
    """Run (or resume) every regime's bench; write results.parquet, report.md and sweep.png."""
    bench.bench_dir.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(
        bench.bench_dir / "bench.yaml", yaml.safe_dump(asdict(bench), sort_keys=False)
    )
    rows: list[dict] = []
    all_regimes = regimes(bench)
    seconds = 0.0  # the stages' recorded times: a resumed sweep reports its whole time
    for i, (name, levels, overrides) in enumerate(all_regimes, start=1):
        sub = sub_bench(bench, name, overrides)
        arms = arm_configs(sub, bench.seeds[0])
        dirs = [[arm_config(sub, a, s).run_dir for a in arms] for s in bench.seeds]
        if console is not None:
            console.print(
                f"[bold]sweep[/] regime {i}/{len(all_regimes)}: [magenta]{name}[/]  "
                f"({format_duration(seconds)} recorded so far)"
            )
        for r in run_bench(sub, arms, console=console, progress=progress):
            rows.append({**r, "regime": name, **{f"axis_{a}": lv for a, lv in levels.items()}})
        seconds += bench_seconds(dirs)
    artifacts.write_parquet(bench.bench_dir / "results.parquet", rows)
    plots = [write_sweep_plot(bench, rows)]
    prov = write_provenance(bench.bench_dir, seconds, jobs=bench.jobs)
    write_summary(bench.bench_dir, summarize_sweep(bench, rows, plots, prov))
    return rows


def _checkpoints(rows: list[dict], regime: str) -> dict[int, dict[tuple[str, int], dict]]:
    """iteration -> (arm, seed) -> row, for one regime."""
    out: dict[int, dict] = {}
    for r in rows:
        if r["regime"] == regime:
            out.setdefault(r["iteration"], {})[(r["arm"], r["seed"])] = r
    return out


def winner(
    at: dict[tuple[str, int], dict], arms: list[str], seeds: list[int], metric: str = "acc_in"
) -> tuple[str, str, list[float]] | None:
    """The arm with the best mean, the runner-up, and the paired per-seed differences between them."""
    means = {}
    for a in arms:
        vals = [
            at[(a, s)][metric] for s in seeds if (a, s) in at and at[(a, s)][metric] is not None
        ]
        if vals:
            means[a] = statistics.fmean(vals)
    if len(means) < 2:
        return None
    best, second = sorted(means, key=means.get, reverse=True)[:2]
    diffs = [
        at[(best, s)][metric] - at[(second, s)][metric]
        for s in seeds
        if (best, s) in at and (second, s) in at
    ]
    return best, second, diffs


def _verdict(best: str, second: str, diffs: list[float]) -> str:
    m, h = mean_ci(diffs)
    if all(d == 0 for d in diffs):
        return "tie (equal on every seed)"
    if math.isnan(h):
        return f"{best} (+{m:.3f} over {second}, one seed)"
    if m - h > 0:
        return f"**{best}** by {m:+.3f} ± {h:.3f} over {second}"
    return f"tie: {best} {m:+.3f} ± {h:.3f} over {second} (CI includes 0)"


def summarize_sweep(
    bench: BenchConfig, rows: list[dict], plots: list[str], wall: dict | float
) -> dict:
    """The sweep's report as data (``summary.json``), in the shape of a bench summary."""
    arms = list(bench.arms)
    names = [name for name, _, _ in regimes(bench)]
    axes = {axis: list(levels) for axis, levels in bench.sweep.items()}
    axes_text = " x ".join(f"{a} ({', '.join(lv)})" for a, lv in axes.items())
    intro = [
        f"Regimes: {axes_text}; "
        f"arms {', '.join(arms)}; seeds {bench.seeds}. Each regime is a bench of its own "
        "(`<regime>/report.md`); all arms of a seed start from the same seed model. Budget = "
        "training tokens after the seed model, in passes over U's tokens (epochs). Accuracy is "
        "greedy exact match on held-out problems; mean ± 95% CI over seeds; the winner's margin "
        "is paired over seeds against the runner-up.",
        time_line(wall),
    ]
    sections = []
    for metric, title in [("acc_in", "in-distribution"), ("acc_harder", "harder than U")]:
        if not any(r.get(metric) for r in rows):
            intro.append(f"Accuracy {title}: 0 for every arm, regime and budget.")
            continue
        table = []
        for name in names:
            cps = _checkpoints(rows, name)
            seed_rows = {s: r for (_, s), r in cps.get(0, {}).items()}  # one seed model per seed
            seed_acc = mean_ci([r[metric] for r in seed_rows.values()])
            for it in sorted(k for k in cps if k > 0):
                at = cps[it]
                # The budget the round gave (an arm that kept nothing trains less).
                budget = max(r["epochs_of_U"] for r in at.values())
                cells = [
                    format_ci(*mean_ci([at[(a, s)][metric] for s in bench.seeds if (a, s) in at]))
                    for a in arms
                ]
                w = winner(at, arms, bench.seeds, metric)
                table.append(
                    [
                        name,
                        f"{budget:.1f}",
                        format_ci(*seed_acc),
                        *cells,
                        _verdict(*w) if w else "-",
                    ]
                )
        sections.append(
            {
                "heading": f"Accuracy {title}",
                "columns": ["regime", "budget (epochs of U)", "seed model", *arms, "winner"],
                "rows": table,
            }
        )
    return {
        "kind": "sweep",
        "title": f"Sweep `{bench.name}`",
        "intro": intro,
        "sections": sections,
        "plots": plots,
    }


def sweep_report(bench: BenchConfig, rows: list[dict], plots: list[str], wall: dict | float) -> str:
    """The sweep's report.md."""
    return render_markdown(summarize_sweep(bench, rows, plots, wall))


def write_sweep_plot(bench: BenchConfig, rows: list[dict], metric: str = "acc_in") -> str:
    """Accuracy vs budget per arm, one panel per regime (columns: the first axis' levels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = list(bench.sweep.items())
    cols = [str(lv) for lv in axes[0][1]]
    row_keys = ["-".join(map(str, c)) for c in itertools.product(*(list(lv) for _, lv in axes[1:]))]
    row_keys = row_keys or [""]
    fig, grid = plt.subplots(
        len(row_keys),
        len(cols),
        figsize=(3.4 * len(cols), 2.8 * len(row_keys)),
        squeeze=False,
        sharey=True,
    )
    for i, rk in enumerate(row_keys):
        for j, col in enumerate(cols):
            regime = col + (f"-{rk}" if rk else "")
            ax = grid[i][j]
            cps = _checkpoints(rows, regime)
            for arm in bench.arms:
                xs, ys, hs = [], [], []
                for it in sorted(cps):
                    vals = [r for (a, _), r in cps[it].items() if a == arm]
                    if vals:
                        xs.append(max(r["epochs_of_U"] for r in cps[it].values()))
                        m, h = mean_ci([r[metric] for r in vals])
                        ys.append(m)
                        hs.append(0 if math.isnan(h) else h)
                if xs:
                    ax.errorbar(xs, ys, yerr=hs, marker="o", ms=3, capsize=2, label=arm)
            ax.set_title(regime, fontsize=9)
            ax.set_ylim(-0.02, 1.02)  # accuracy; a 2-seed interval can reach past [0, 1]
            ax.grid(alpha=0.3)
            if i == len(row_keys) - 1:
                ax.set_xlabel("budget (epochs of U)")
            if j == 0:
                ax.set_ylabel(metric.replace("_", " "))
    grid[0][0].legend(fontsize=7)
    fig.tight_layout()
    name = "sweep.png"
    fig.savefig(Path(bench.bench_dir) / name, dpi=110)
    plt.close(fig)
    return name
