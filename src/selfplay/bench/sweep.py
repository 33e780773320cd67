"""Regime sweeps: the same arms in every combination of data regimes (``sweep:`` in a bench config).

A regime is one level of each axis, e.g. corpus size ``u1000`` x quality ``slips``; each regime is
an ordinary bench in ``<bench>/<regime>/`` (resumable, with its own report), and the sweep report
gives every arm's accuracy per regime and budget checkpoint, and compares every arm with the
reference at the final budget in every regime: paired over seeds, Holm-corrected over all the
sweep's comparisons, each ending *better*, *worse*, *equivalent* or *inconclusive*.

    sweep:
      size: {u300: [raw.size=300], u1000: [raw.size=1000]}
      quality: {clean: [], slips: [raw.slip_rate=0.3], answer-only: [raw.answer_only_rate=0.7]}
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import asdict
from pathlib import Path

import yaml

from selfplay.bench.config import BenchConfig, arm_config, arm_configs, regimes, sub_bench
from selfplay.bench.progress import bench_seconds, format_duration
from selfplay.bench.report import (
    CHANCE,
    against_text,
    budget_status,
    comparison_pairs,
    comparison_records,
    judge,
    paired_notes,
    paired_rows,
    references_text,
    render_markdown,
    time_line,
)
from selfplay.bench.runner import run_bench, write_provenance, write_summary
from selfplay.engine import artifacts
from selfplay.plots import line_style, pyplot
from selfplay.stats import format_ci, mean_ci, paired


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


def _arm_at_budget(bench: BenchConfig, rows: list[dict], regime: str, at: dict, arm: str) -> dict:
    """An arm's own side of its comparisons in a regime: mean reuse, the seeds where it fell
    short of its budget (and why), and how many seeds ran."""
    mine = [at[(arm, s)] for s in bench.seeds if (arm, s) in at]
    reuse = [r["reuse"] for r in mine if r.get("reuse") is not None]
    short = [
        why
        for s in bench.seeds
        if (arm, s) in at
        and (why := budget_status(
            [r for r in rows if r["regime"] == regime and r["seed"] == s], arm
        )) != "met"
    ]  # fmt: skip
    return {
        "reuse": sum(reuse) / len(reuse) if reuse else None,
        "short": short,
        "n_runs": len(mine),
    }


def sweep_comparisons(bench: BenchConfig, rows: list[dict], metric: str = "acc_in") -> list[dict]:
    """Every arm against the reference (and against each arm of ``also_against``) in every
    regime, at the regime's final checkpoint (the full evaluation set), paired over seeds.
    Holm's correction runs over all of the sweep's comparisons at once (regimes x pairs), for
    "no difference" and for "inside the margin", so no regime is called on its own: each ends
    *better*, *worse*, *equivalent* or *inconclusive*."""
    out = []
    for name, _, _ in regimes(bench):
        cps = _checkpoints(rows, name)
        last = max((k for k in cps if k > 0), default=None)
        if last is None:
            continue
        at = cps[last]
        budget = max(r["epochs_of_U"] for r in at.values())
        own = {arm: _arm_at_budget(bench, rows, name, at, arm) for arm in bench.arms}
        for arm, other in comparison_pairs(bench, list(bench.arms)):
            diffs = [
                at[(arm, s)][metric] - at[(other, s)][metric]
                for s in bench.seeds
                if (arm, s) in at
                and (other, s) in at
                and at[(arm, s)][metric] is not None
                and at[(other, s)][metric] is not None
            ]
            out.append(
                {"regime": name, "arm": arm, "against": other, "budget": budget, "diffs": diffs,
                 "test": paired(diffs, bench.margin), **own[arm]}
            )  # fmt: skip
    return judge(bench, out)


def _short_text(short: list[str], runs: int) -> str:
    if not short:
        return "met"
    why = ", ".join(sorted({w.removeprefix("short ").strip("()") for w in short}))
    return f"short ({why}) on {len(short)} of {runs} seeds"


def sweep_warnings(bench: BenchConfig, rows: list[dict]) -> list[str]:
    """Regimes whose seed models are near chance: their verdicts compare models that learned
    almost nothing (an *equivalent* there is equivalence at the floor)."""
    low = []
    for name, _, _ in regimes(bench):
        seed_acc = [
            r["acc_in"]
            for r in rows
            if r["regime"] == name and r["iteration"] == 0 and r["acc_in"] is not None
        ]
        if seed_acc and statistics.fmean(seed_acc) < CHANCE:
            low.append(f"{name} ({statistics.fmean(seed_acc):.3f})")
    if not low:
        return []
    return [
        f"Seed models near chance (acc in < {CHANCE:g}) in {', '.join(low)}: their comparisons "
        "say little about self-play (an *equivalent* there is equivalence at the floor)."
    ]


def _verdict_text(bench: BenchConfig, comparisons: list[dict]) -> str:
    if not bench.verdict or len(bench.seeds) < 2:
        return "No verdict: " + (
            "one seed." if len(bench.seeds) < 2 else "verdict: false in the config."
        )
    words = ["better", "worse", "equivalent", "inconclusive"]
    counts = {w: sum(c["verdict"] == w for c in comparisons) for w in words}
    called = "; ".join(
        f"{c['arm']}{against_text(bench, c)} in {c['regime']} is **{c['verdict']}** "
        f"({format_ci(c['test'].mean, c['test'].half_width)})"
        for c in comparisons
        if c["verdict"] in ("better", "worse", "equivalent")
    )
    return (
        f"Against {references_text(bench)} at the final budget, on in-distribution accuracy "
        f"({len(bench.seeds)} seeds, paired; Holm-corrected over all {len(comparisons)} "
        f"comparisons at {bench.alpha:g}; equivalent = within ±{bench.margin:g}): "
        + ", ".join(f"{counts[w]} {w}" for w in words)
        + "."
        + (f" {called}." if called else "")
    )


def summarize_sweep(
    bench: BenchConfig, rows: list[dict], plots: list[str], wall: dict | float
) -> dict:
    """The sweep's report as data (``summary.json``), in the shape of a bench summary."""
    arms = list(bench.arms)
    names = [name for name, _, _ in regimes(bench)]
    axes = {axis: list(levels) for axis, levels in bench.sweep.items()}
    axes_text = " x ".join(f"{a} ({', '.join(lv)})" for a, lv in axes.items())
    comparisons = sweep_comparisons(bench, rows)
    against = bool(bench.also_against)
    lead = 2 if against else 1  # the paired rows' leading cells: arm (and the arm against)
    intro = [
        f"Regimes: {axes_text}; "
        f"arms {', '.join(arms)}; seeds {bench.seeds}. Each regime is a bench of its own "
        "(`<regime>/report.md`); all arms of a seed start from the same seed model. Budget = "
        "training tokens after the seed model, in passes over U's tokens (epochs). Accuracy is "
        "greedy exact match on one fixed evaluation set per regime (the checkpoints before the "
        "last on its subset); mean ± 95% CI over seeds. The verdicts compare every arm with "
        f"`{bench.reference}`"
        + "".join(
            f" (and every arm but `{bench.reference}` with `{o}`)" for o in bench.also_against
        )
        + " at the final budget only, where the full set is measured.",
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
                table.append([name, f"{budget:.1f}", format_ci(*seed_acc), *cells])
        sections.append(
            {
                "heading": f"Accuracy {title}",
                "columns": ["regime", "budget (epochs of U)", "seed model", *arms],
                "rows": table,
            }
        )
    sections.append(
        {
            "heading": f"Paired with {references_text(bench)} (final budget, in-distribution)",
            "text": [
                "Per-seed differences of final in-distribution accuracy; p-values Holm-corrected "
                f"over all {len(comparisons)} comparisons of the sweep; equivalence by two "
                f"one-sided tests against ±{bench.margin:g}; *p sign-flip*: the exact sign-flip "
                "(permutation) test of no difference.",
                *paired_notes(comparisons),
            ],
            "columns": [
                "regime", "arm", *(["against"] if against else []), "budget", "reuse",
                "budget met", "Δ acc in", "p (Holm)", "p sign-flip (Holm)", "p equiv (Holm)",
                "verdict", "per seed",
            ],
            "rows": [
                [c["regime"], *row[:lead], f"{c['budget']:.1f}",
                 "-" if c["reuse"] is None else f"{c['reuse']:.1f}",
                 _short_text(c["short"], c["n_runs"]),
                 *row[lead:]]
                for c, row in zip(comparisons, paired_rows(comparisons, against), strict=True)
            ],
        }
    )  # fmt: skip
    return {
        "kind": "sweep",
        "title": f"Sweep `{bench.name}`",
        "verdict": _verdict_text(bench, comparisons),
        "warnings": sweep_warnings(bench, rows),
        "comparisons": [
            {
                "regime": c["regime"],
                **record,
                "budget_epochs": c["budget"],
                "reuse": c["reuse"],
                "short_seeds": len(c["short"]),
            }
            for c, record in zip(comparisons, comparison_records(bench, comparisons), strict=True)
        ],
        "intro": intro,
        "sections": sections,
        "plots": plots,
    }


def sweep_report(bench: BenchConfig, rows: list[dict], plots: list[str], wall: dict | float) -> str:
    """The sweep's report.md."""
    return render_markdown(summarize_sweep(bench, rows, plots, wall))


def write_sweep_plot(bench: BenchConfig, rows: list[dict], metric: str = "acc_in") -> str:
    """Accuracy vs budget per arm, one panel per regime (columns: the first axis' levels): each
    seed a thin line beside the arm's mean."""
    plt = pyplot()

    axes = list(bench.sweep.items())
    cols = [str(lv) for lv in axes[0][1]]
    row_keys = ["-".join(map(str, c)) for c in itertools.product(*(list(lv) for _, lv in axes[1:]))]
    row_keys = row_keys or [""]
    fig, grid = plt.subplots(
        len(row_keys),
        len(cols),
        figsize=(3.4 * len(cols), 2.8 * len(row_keys) + 0.8),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    styles = {arm: line_style(k) for k, arm in enumerate(bench.arms)}
    for i, rk in enumerate(row_keys):
        for j, col in enumerate(cols):
            regime = col + (f"-{rk}" if rk else "")
            ax = grid[i][j]
            cps = _checkpoints(rows, regime)
            budget = {it: max(r["epochs_of_U"] for r in cps[it].values()) for it in cps}
            for arm in bench.arms:
                mine = {
                    it: [r for (a, _), r in cps[it].items() if a == arm and r[metric] is not None]
                    for it in sorted(cps)
                }
                lines: dict[int, list[tuple[float, float]]] = {}
                for it, rs in mine.items():
                    for r in rs:
                        lines.setdefault(r["seed"], []).append((budget[it], r[metric]))
                for pts in lines.values():  # each seed thin and light, over the arm's mean
                    x, y = zip(*pts, strict=True)
                    seed = {"lw": 0.7, "alpha": 0.5, "marker": ".", "ms": 2.5, "zorder": 4}
                    ax.plot(x, y, color=styles[arm]["color"], clip_on=False, **seed)
                means = [
                    (budget[it], statistics.fmean(r[metric] for r in rs))
                    for it, rs in mine.items()
                    if rs
                ]
                if means:
                    x, y = zip(*means, strict=True)
                    look = dict(styles[arm], ms=styles[arm]["ms"] * 0.7)
                    ax.plot(x, y, lw=2, label=arm, clip_on=False, **look)
            ax.set_title(regime, fontsize=9)
            ax.set_ylim(0, 1)  # accuracy's whole range
            ax.grid(alpha=0.3)
            if i == len(row_keys) - 1:
                ax.set_xlabel("budget (epochs of U)")
            if j == 0:
                ax.set_ylabel(metric.replace("_", " "))
    fig.suptitle("Thin lines are seeds, bold lines their mean", fontsize=10)
    handles, labels = grid[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)
    name = "sweep.png"
    fig.savefig(Path(bench.bench_dir) / name, dpi=110)
    plt.close(fig)
    return name
