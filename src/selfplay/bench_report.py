"""The bench's report: results rows -> a summary (``summary.json``, tables as data), rendered as
report.md (and by :mod:`selfplay.html_report` as report.html), and the plots."""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

from selfplay.bench_config import BenchConfig
from selfplay.config import RunConfig
from selfplay.stats import format_ci, mean_ci


def _final(rows: list[dict]) -> dict[tuple[str, int], dict]:
    out = {}
    for r in rows:
        key = (r["arm"], r["seed"])
        if key not in out or r["iteration"] > out[key]["iteration"]:
            out[key] = r
    return out


def effective_multiplier(acc: float, fresh: list[tuple[float, float]]) -> str:
    """How much fresh raw data (in multiples of U) reaches accuracy ``acc``: piecewise-linear
    interpolation in log(multiplier) over the raw-fresh arms' (multiplier, accuracy) points."""
    pts = sorted(fresh)
    if not pts or acc is None or math.isnan(acc):
        return "-"
    if acc < pts[0][1]:
        return f"< {pts[0][0]:g}x"
    if acc > max(a for _, a in pts):
        return f"> {pts[-1][0]:g}x"
    for (m0, a0), (m1, a1) in zip(pts, pts[1:], strict=False):
        if min(a0, a1) <= acc <= max(a0, a1) and a1 != a0:
            t = (acc - a0) / (a1 - a0)
            return f"{math.exp(math.log(m0) + t * (math.log(m1) - math.log(m0))):.2f}x"
    best = min(pts, key=lambda p: abs(p[1] - acc))
    return f"~{best[0]:g}x"


def summarize_bench(
    bench: BenchConfig, arms: dict[str, RunConfig], rows: list[dict], plots: list[str], wall: float
) -> dict:
    """The bench's report as data (``summary.json``): a title, intro paragraphs and sections of
    text and tables (cells as printed); report.md, report.html and the README tables render it."""
    import platform

    final = _final(rows)
    any_cfg = next(iter(arms.values()))
    budget = statistics.fmean(r["train_tokens"] for r in final.values()) if final else 0
    diffs = _difficulties(rows)
    ks = sorted({k for r in rows for k in r if k.startswith(("pass@", "maj@"))})
    intro = [
        f"Seeds {bench.seeds}; every arm of a seed starts from that seed's model_0 (trained on U: "
        f"{any_cfg.raw.size} problems, difficulties {any_cfg.raw.difficulties}, "
        f"{rows[0]['seed_train_tokens'] if rows else 0:,} tokens) "
        f"and trains a budget of {budget:,.0f} tokens in {any_cfg.loop.iterations} rounds. "
        f"Accuracy is greedy exact match on held-out problems; *in* = difficulties "
        f"{any_cfg.raw.difficulties}, *harder* = the rest of {any_cfg.eval.difficulties}. "
        "Mean ± 95% CI over seeds (t distribution).",
        f"Wall time {wall / 60:.1f} min on {platform.machine()} ({os.cpu_count()} CPUs).",
    ]
    sections = []

    columns = [
        "arm", "train tokens", "acc in", "acc harder", *[f"d{d}" for d in diffs], "valid", *ks,
        "gen tokens", "FLOPs", "wall s", "budget in epochs of U",
        "distinct correct chains / problem",
    ]  # fmt: skip
    table = []
    for name in arms:
        rs = [final[(name, s)] for s in bench.seeds if (name, s) in final]
        if not rs:
            continue

        def col(k, rs=rs):
            return format_ci(*mean_ci([r.get(k) for r in rs]))

        table.append(
            [
                name,
                f"{statistics.fmean(r['train_tokens'] for r in rs):,.0f}",
                col("acc_in"),
                col("acc_harder"),
                *[col(f"acc_{d}") for d in diffs],
                col("valid"),
                *[col(k) for k in ks],
                f"{statistics.fmean(r['generated_tokens'] for r in rs):,.0f}",
                f"{statistics.fmean(r['flops'] for r in rs):.2e}",
                f"{statistics.fmean(r['seconds'] for r in rs):.0f}",
                f"{statistics.fmean(r['epochs_of_U'] for r in rs):.1f}",
                format_ci(*mean_ci([r.get("distinct_correct_chains") for r in rs]), digits=2),
            ]
        )
    seed_rows = [r for r in rows if r["iteration"] == 0 and r["arm"] == next(iter(arms))]
    sections.append(
        {
            "heading": "At equal training tokens (final checkpoint)",
            "columns": columns,
            "rows": table,
            "text": [
                "Seed model (every arm's start): acc in "
                f"{format_ci(*mean_ci([r['acc_in'] for r in seed_rows]))}, acc harder "
                f"{format_ci(*mean_ci([r['acc_harder'] for r in seed_rows]))}."
            ],
        }
    )

    # Paired differences against the reference arm.
    ref = bench.reference
    table = []
    for name in arms:
        if name == ref:
            continue
        pairs = [
            (final[(name, s)], final[(ref, s)])
            for s in bench.seeds
            if (name, s) in final and (ref, s) in final
        ]
        d_in = [a["acc_in"] - b["acc_in"] for a, b in pairs]
        d_h = [
            a["acc_harder"] - b["acc_harder"]
            for a, b in pairs
            if a["acc_harder"] is not None and b["acc_harder"] is not None
        ]
        table.append(
            [
                name,
                format_ci(*mean_ci(d_in)),
                format_ci(*mean_ci(d_h)),
                ", ".join(f"{d:+.3f}" for d in d_in),
            ]
        )
    sections.append(
        {
            "heading": f"Paired with `{ref}` (same seed model; difference of final accuracy)",
            "columns": ["arm", "Δ acc in", "Δ acc harder", "per-seed Δ acc in"],
            "rows": table,
        }
    )

    # Effective-data multiplier.
    fresh = {}
    for r in final.values():
        if r["source"] == "raw-fresh":
            fresh.setdefault(r["fresh_multiplier"], []).append(r["acc_in"])
    curve = [(m, statistics.fmean(v)) for m, v in fresh.items()]
    if curve:
        table = []
        for name in arms:
            rs = [final[(name, s)] for s in bench.seeds if (name, s) in final]
            if rs and rs[0]["source"] != "raw-fresh":
                m = statistics.fmean(r["acc_in"] for r in rs)
                table.append([name, f"{m:.3f}", effective_multiplier(m, curve)])
        sections.append(
            {
                "heading": "Effective-data multiplier",
                "text": [
                    "How much fresh raw data (multiples of U, at the same token budget) reaches "
                    "the same in-distribution accuracy:"
                ],
                "columns": ["arm", "acc in", "worth"],
                "rows": table,
                "after": [
                    "raw-fresh curve: " + ", ".join(f"{m:g}x → {a:.3f}" for m, a in sorted(curve))
                ],
            }
        )

    # Equal total compute.
    raw_arms = [n for n in arms if arms[n].loop.data_source != "selfplay"]
    curves = {n: _mean_curve(rows, n, "flops", "acc_in") for n in arms}
    table = []
    for name in arms:
        if arms[name].loop.data_source != "selfplay":
            continue
        for it, (x, y) in enumerate(curves[name][1:], start=1):
            cells = []
            for rn in raw_arms:
                v = _interp(curves[rn], x)
                cells.append("beyond its budget" if v is None else f"{v:.3f}")
            table.append([name, f"round {it}", f"{x:.2e}", f"{y:.3f}", *cells])
    sections.append(
        {
            "heading": "At equal total compute (training + generation FLOPs)",
            "text": [
                "Self-play spends compute on generation; each self-play checkpoint is compared "
                "with each raw arm's accuracy interpolated at the same FLOPs, where the raw arm's "
                "curve reaches that far."
            ],
            "columns": ["self-play arm", "checkpoint", "FLOPs", "acc in", *raw_arms],
            "rows": table,
        }
    )
    return {
        "kind": "bench",
        "title": f"Bench `{bench.name}`",
        "intro": intro,
        "sections": sections,
        "plots": plots,
    }


def render_markdown(summary: dict) -> str:
    """A report summary (bench or sweep) as Markdown: report.md."""
    lines = [f"# {summary['title']}", ""]
    for para in summary.get("intro", []):
        lines += [para, ""]
    for sec in summary["sections"]:
        lines += [f"## {sec['heading']}", ""]
        for para in sec.get("text", []):
            lines += [para, ""]
        if sec.get("columns"):
            lines += [markdown_table(sec["columns"], sec["rows"]), ""]
        for para in sec.get("after", []):
            lines += [para, ""]
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in summary.get("plots", [])]
    return "\n".join(lines) + "\n"


def markdown_table(columns: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _difficulties(rows: list[dict]) -> list[str]:
    """The difficulties that have an ``acc_<d>`` column, in order."""
    return sorted(
        {k[4:] for r in rows for k in r if k.startswith("acc_") and k[4:].isdigit()}, key=int
    )


def _by_iteration(rows: list[dict], arm: str) -> list[list[dict]]:
    """An arm's rows (all seeds) grouped by checkpoint, in order."""
    by_it: dict[int, list[dict]] = {}
    for r in rows:
        if r["arm"] == arm:
            by_it.setdefault(r["iteration"], []).append(r)
    return [rs for _, rs in sorted(by_it.items())]


def _mean_curve(rows: list[dict], arm: str, x: str, y: str) -> list[tuple[float, float]]:
    return [
        (statistics.fmean(r[x] for r in rs), statistics.fmean(r[y] for r in rs if r[y] is not None))
        for rs in _by_iteration(rows, arm)
    ]


def _interp(curve: list[tuple[float, float]], x: float) -> float | None:
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (x - x0) / (x1 - x0) * (y1 - y0)
    return None


def write_plots(bench_dir: Path, rows: list[dict]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(r["arm"] for r in rows))
    names = []

    def save(fig, name):
        fig.tight_layout()
        tmp = bench_dir / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, bench_dir / name)
        names.append(name)

    # 1. Accuracy vs training tokens, per arm, mean with a 95% band.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in [
        (axes[0], "acc_in", "in-distribution"),
        (axes[1], "acc_harder", "harder than U"),
    ]:
        for arm in arms:
            xs, ms, hs = [], [], []
            for rs in _by_iteration(rows, arm):
                m, h = mean_ci([r[key] for r in rs])
                xs.append(statistics.fmean(r["train_tokens"] for r in rs))
                ms.append(m)
                hs.append(0.0 if math.isnan(h) else h)
            ax.plot(xs, ms, marker="o", label=arm)
            lo = [max(0.0, m - h) for m, h in zip(ms, hs, strict=True)]  # accuracy lives in [0, 1]
            hi = [min(1.0, m + h) for m, h in zip(ms, hs, strict=True)]
            ax.fill_between(xs, lo, hi, alpha=0.15)
        ax.set_xlabel("training tokens after the seed model")
        ax.set_ylabel("greedy accuracy")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    save(fig, "accuracy_vs_tokens.png")

    # 2. Final accuracy by difficulty.
    final = _final(rows)
    diffs = _difficulties(rows)
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        rs = [r for (a, _), r in final.items() if a == arm]
        stats = [mean_ci([r.get(f"acc_{d}") for r in rs]) for d in diffs]
        ax.bar(
            [j + i * width for j in range(len(diffs))],
            [m for m, _ in stats],
            width,
            yerr=[0 if math.isnan(h) else h for _, h in stats],
            label=arm,
            capsize=2,
        )
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(diffs))], [f"{d} digits" for d in diffs])
    ax.set_ylabel("final greedy accuracy")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    save(fig, "accuracy_by_difficulty.png")

    # 3. Self-play yield per round.
    sp = [a for a in arms if any(r["arm"] == a and r["pass_rate"] is not None for r in rows)]
    if sp:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for arm in sp:
            for ax, key in [(axes[0], "pass_rate"), (axes[1], "kept")]:
                pts = _mean_curve([r for r in rows if r[key] is not None], arm, "iteration", key)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=arm)
        axes[0].set_ylabel("sample pass rate")
        axes[1].set_ylabel("kept samples")
        for ax in axes:
            ax.set_xlabel("round")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        save(fig, "selfplay_yield.png")

    # 4. The data wall: raw-repeat accuracy against epochs of U.
    rep = [a for a in arms if any(r["arm"] == a and r["source"] == "raw-repeat" for r in rows)]
    if rep:
        fig, ax = plt.subplots(figsize=(6, 4))
        for arm in rep:
            pts = _mean_curve(rows, arm, "epochs_of_U", "acc_in")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=arm)
        ax.set_xlabel("epochs of U after the seed model")
        ax.set_ylabel("in-distribution accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "raw_repeat_epochs.png")
    return names
