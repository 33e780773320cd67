"""The climb bench: ``selfplay bench`` whose arms all run the frontier schedule.

Every arm of a seed starts from the same seed model trained on U (difficulties 1..N) and trains
the same tokens per round; they differ in what a round trains on: the model's own answers one
difficulty past its frontier kept by the verifier, by a majority vote (no ground truth) or by no
filter at all, or raw data at U's difficulties (fresh problems, or U again). The question is the
one place self-generated data can beat more raw data: difficulties no corpus of U's kind holds.

    results.parquet   one row per arm x seed x stage (seed, rounds) plus a ``final`` row: the last
                      model on every evaluation difficulty
    summary.json      the report as data; report.md and the plots render it
"""

from __future__ import annotations

import math
from pathlib import Path

from selfplay.bench.config import BenchConfig, arm_config
from selfplay.bench.report import (
    against_text,
    compare_arms,
    comparison_records,
    final_rows,
    time_line,
)
from selfplay.config import RunConfig
from selfplay.engine import artifacts
from selfplay.engine.rundir import read_metrics
from selfplay.schedules import LABELLED, supports
from selfplay.stats import format_ci, mean_ci


def is_climb_bench(arms: dict[str, RunConfig]) -> bool:
    """All arms share ``loop.schedule`` (a seed key), so the first arm decides."""
    return supports(next(iter(arms.values())).loop.schedule, "climb_report")


def arm_kind(cfg: RunConfig) -> str:
    """What an arm's rounds train on, in the report's words."""
    if cfg.loop.data_source == "oracle":
        return "gold labels of the practised problems (oracle)"
    if cfg.loop.data_source != "selfplay":
        return cfg.loop.data_source
    if not LABELLED[cfg.loop.method]:
        return f"GRPO ({cfg.grpo.max_steps} steps x {cfg.grpo.batch_size}, verifier reward)"
    f = cfg.filters
    name = "verified" if f.verified else "majority" if f.majority else "unfiltered"
    n = cfg.generation.n
    if f.majority and not f.verified and f.majority_models > 1:
        each = f" x {n} samples" if n > 1 else ""
        name = f"committee ({f.majority_min_votes} of {f.majority_models} models{each})"
    elif f.majority and not f.verified:
        name += f" ({f.majority_min_votes} of {n} samples)"
    if cfg.loop.frontier.length_filter and cfg.task.reversed:  # the width check needs the format
        name += " + length"
    if cfg.loop.frontier.probe == "agreement":
        name += "; label-free probe"
    return name


def _row(name: str, seed: int, st: dict, seed_row: dict, steps: int, final: dict | None) -> dict:
    cum, ev, fr = st["cumulative"], (final or st)["eval"], st.get("frontier", {})
    label = st.get("filter", {})
    row = {
        "arm": name,
        "seed": seed,
        "stage": "final" if final else st["stage"],
        "iteration": st["iteration"],
        "train_tokens": cum["train_tokens"] - seed_row["cumulative"]["train_tokens"],
        "generated_tokens": cum["generated_tokens"],
        "flops": float(cum["flops"] - seed_row["cumulative"]["flops"]),
        "steps": steps,
        "cpu_seconds": cum.get("cpu_seconds", cum["seconds"])
        - seed_row["cumulative"].get("cpu_seconds", seed_row["cumulative"]["seconds"]),
        "solved": ev["solved"],
        "acc_in": ev.get("accuracy_in"),
        "probe_solved": fr.get("probe_solved"),
        "trained_max": fr.get("trained_max"),
        "practice": ",".join(str(d) for d in fr.get("practice") or []),
        "labelled": label.get("problems"),
        "kept": label.get("kept"),
        "label_accuracy": label.get("label_accuracy"),
        "kept_accuracy": label.get("kept_accuracy"),
        "method": st.get("method"),
        "probe_kind": fr.get("probe_kind", "verifier" if fr else None),
        "probe_accuracy_solved": fr.get("probe_accuracy_solved"),
        "wrong_kept": _wrong_kept(label),
    }
    for d, v in ev["accuracy"].items():
        if d != "all":
            row[f"acc_{d}"] = v
    return row


def _wrong_kept(label: dict) -> int | None:
    """Wrong labels a round trained on (its kept labels times the share of them that is wrong):
    the error avalanche, round by round."""
    kept, right = label.get("kept"), label.get("kept_accuracy")
    if kept == 0 and label.get("label_accuracy") is not None:  # labelled, and kept nothing
        return 0
    return None if kept is None or right is None else round(kept * (1 - right))


def collect_climb_results(bench: BenchConfig, arms: dict[str, RunConfig]) -> list[dict]:
    """One row per arm x seed x stage, and a ``final`` row per arm x seed (every evaluation
    difficulty; rounds evaluate only up to their longest practised difficulty + probe_ahead).
    Costs are totals since the seed model."""
    rows = []
    for seed in bench.seeds:
        for name in arms:
            run_dir = arm_config(bench, name, seed).run_dir
            if not (run_dir / "metrics.jsonl").exists():
                continue
            stages = read_metrics(run_dir)
            steps = 0
            for st in stages:
                if st["iteration"]:
                    steps += st["train"].get("steps", 0)
                rows.append(_row(name, seed, st, stages[0], steps, None))
            if (run_dir / "final.json").exists():
                final = artifacts.read_json(run_dir / "final.json")
                rows.append(_row(name, seed, stages[-1], stages[0], steps, final))
    return rows


def _finals(rows: list[dict]) -> dict[tuple[str, int], dict]:
    return {(r["arm"], r["seed"]): r for r in rows if r["stage"] == "final"}


def _beyond(row: dict, above: int) -> float | None:
    """The best accuracy at any difficulty above ``above``."""
    vs = [
        v for k, v in row.items() if k.startswith("acc_") and k[4:].isdigit() and int(k[4:]) > above
    ]
    vs = [v for v in vs if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return max(vs) if vs else None


def _ci(values, digits: int = 2) -> str:
    vals = [v for v in values if v is not None]
    return format_ci(*mean_ci(vals), digits=digits) if vals else "–"


def summarize_climb(
    bench: BenchConfig, arms: dict[str, RunConfig], rows: list[dict], plots: list[str], prov
) -> dict:
    """The climb bench's report as data (``summary.json``), rendered like a bench's."""
    any_cfg = next(iter(arms.values()))
    top = max(any_cfg.raw.difficulties)
    final = _finals(rows)
    seeds = sorted({s for _, s in final})
    comparisons = compare_arms(bench, list(arms), final, key="solved", margin=bench.frontier_margin)
    sections = [_final_models_section(bench, arms, final, comparisons, top)]
    # One seed (a demonstration): the round-by-round table is the one to read first.
    sections.insert(0 if len(seeds) == 1 else 1, _rounds_section(bench, arms, rows))
    sections += _labels_by_round_section(arms, rows)
    sections.append(_goal_section(bench, arms, final, top))
    intro = [_climb_intro(any_cfg, seeds), time_line(prov)]
    if bench.quick:
        intro.insert(0, "A smoke-size bench: it checks that the pipeline runs, not a result.")
    return {
        "kind": "climb-bench",
        "title": f"Climb bench `{bench.name}`",
        "verdict": _climb_verdict(bench, comparisons, seeds, final, top),
        "warnings": [],
        "comparisons": comparison_records(bench, comparisons),
        "intro": intro,
        "sections": sections,
        "plots": plots,
    }


def _final_models_section(bench, arms, final, comparisons, top: int) -> dict:
    by_arm = {c["arm"]: c for c in comparisons if c["against"] == bench.reference}
    table = []
    for name in arms:
        rs = final_rows(final, name, bench.seeds)
        if not rs:
            continue
        c = by_arm.get(name)
        vs = "reference" if c is None else f"{c['test'].mean:+.1f} ({c['verdict']})"
        table.append(
            [
                name,
                arm_kind(arms[name]),
                _ci([r["solved"] for r in rs], 1),
                " ".join(str(r["solved"]) for r in rs),
                vs,
                _ci([r.get(f"acc_{top + 1}") for r in rs]),
                _ci([_beyond(r, top + 1) for r in rs]),
                f"{max(r['iteration'] for r in rs)}",
                f"{sum(r['train_tokens'] for r in rs) / len(rs):,.0f}",
                f"{sum(r['generated_tokens'] for r in rs) / len(rs):,.0f}",
                f"{sum(r['flops'] for r in rs) / len(rs):.2e}",
                f"{sum(r['cpu_seconds'] for r in rs) / len(rs) / 60:.1f}",
            ]
        )
    threshold = next(iter(arms.values())).loop.frontier.threshold
    return {
        "heading": "Final models (every evaluation difficulty)",
        "text": [
            f"**solved**: the largest difficulty d such that every length 1..d is at >= "
            f"{threshold:g} greedy test accuracy (mean ± 95% CI over seeds, then per seed). "
            f"**d{top + 1}**: accuracy one past U; **best beyond {top + 1}**: the highest "
            "accuracy at any longer difficulty. Costs since the seed model, means over seeds."
        ],
        "columns": [
            "arm", "trains on", "solved", "per seed", f"vs {bench.reference}", f"d{top + 1}",
            f"best beyond {top + 1}", "rounds", "train tokens", "generated tokens", "FLOPs",
            "CPU min",
        ],
        "rows": table,
    }  # fmt: skip


def _labels_by_round_section(arms, rows) -> list[dict]:
    """Label accuracy of what each self-play arm trained on, round by round (GRPO keeps no
    labels: its rows count its samples and the groups with a gradient)."""
    play = [n for n in arms if arms[n].loop.data_source == "selfplay"]
    by_round: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if r["stage"] != "final" and r["iteration"]:
            by_round.setdefault((r["arm"], r["iteration"]), []).append(r)
    rounds = sorted({k for _, k in by_round})
    table = []
    for name in play:
        # Rows say which practice step made them (older results: the arm's config says).
        mine = [r for (a, _), rs in by_round.items() if a == name for r in rs]
        method = next((r["method"] for r in mine if r.get("method")), arms[name].loop.method)
        labelled = LABELLED[method]
        pairs = (
            (("label_accuracy", "labels correct"), ("kept_accuracy", "kept correct"))
            if labelled
            else (("label_accuracy", "samples correct"),)
        )
        for key, what in pairs:
            cells = [_ci([r[key] for r in by_round.get((name, k), [])]) for k in rounds]
            table.append([name, what, *cells])
        kept = []
        for k in rounds:
            vals = [r["kept"] for r in by_round.get((name, k), [])]
            kept.append(f"{sum(vals) / len(vals):,.0f}" if vals else "–")
        table.append([name, "kept (of labelled)" if labelled else "groups with signal", *kept])
        if labelled and any(r.get("wrong_kept") is not None for r in mine):
            wrong = [_mean_cell([r.get("wrong_kept") for r in by_round.get((name, k), [])], ",.0f")
                     for k in rounds]  # fmt: skip
            table.append([name, "wrong labels kept", *wrong])
    if not play:
        return []
    return [
        {
            "heading": "What self-play trained on, by round",
            "text": [
                "Greedy (or sampled) answers to the round's practice problems: the share that "
                "is correct before the filter, the share correct among those kept (1.00 for "
                "the verifier; without ground truth, what a majority or no filter lets "
                "through), and how many were kept; for GRPO, the share of its samples that "
                "is correct and the groups whose rewards differed (the ones with a "
                "gradient). Means over seeds."
            ],
            "columns": ["arm", "", *[f"round {k}" for k in rounds]],
            "rows": table,
        }
    ]


def _longest(row: dict, threshold: float) -> int | None:
    """The longest evaluated difficulty at >= ``threshold`` (whether or not shorter ones are)."""
    measured = {
        int(k[4:]): v
        for k, v in row.items()
        if k.startswith("acc_") and k[4:].isdigit() and v is not None and not math.isnan(v)
    }
    if row.get("solved") and row["solved"] > max(measured, default=0):
        return None  # rows that lost their longer lengths (results written before every column was kept)
    return max((d for d, v in measured.items() if v >= threshold), default=None)


def _mean_cell(values: list, fmt: str) -> str:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    if len(vals) == 1:
        return format(vals[0], fmt)
    return format(sum(vals) / len(vals), ".1f" if fmt == "d" else fmt)


def _rounds_section(bench: BenchConfig, arms: dict[str, RunConfig], rows: list[dict]) -> dict:
    """Every arm round by round: where its probe put the frontier, what it practised, what its
    model solves on the test split, its labels (self-play) and the tokens it has trained."""
    t = next(iter(arms.values())).loop.frontier.threshold
    by: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if r["stage"] != "final":
            by.setdefault((r["arm"], r["iteration"]), []).append(r)
    table = []
    label_free = [n for n in arms if arms[n].loop.frontier.probe == "agreement"]
    for name in arms:
        for k in sorted(i for a, i in by if a == name):
            rs = by[(name, k)]
            labels = arms[name].loop.data_source in ("selfplay", "oracle") and k > 0
            kept = labels and all(r.get("method") != "grpo" for r in rs)
            checked = [r.get("probe_accuracy_solved") for r in rs] if name in label_free else []
            table.append(
                [
                    name,
                    "seed" if k == 0 else str(k),
                    _mean_cell([r["probe_solved"] for r in rs], "d") if k else "",
                    *([_mean_cell(checked, "d") if k and checked else ""] if label_free else []),
                    rs[0]["practice"] if len(rs) == 1 else "",
                    _mean_cell([r["solved"] for r in rs], "d"),
                    _mean_cell([_longest(r, t) for r in rs], "d"),
                    _mean_cell([r["label_accuracy"] for r in rs], ".2f") if labels else "",
                    _mean_cell([r["kept"] for r in rs], ",.0f") if kept else "",
                    _mean_cell([r["train_tokens"] for r in rs], ",.0f"),
                ]
            )
    seeds = "one seed" if len(bench.seeds) == 1 else f"means over {len(bench.seeds)} seeds"
    return {
        "heading": "The climb, round by round",
        "terminal": True,
        "text": [
            f"**probe**: the frontier the round's validation probe found for the model it starts "
            f"from (every length 1..d at >= {t:g}), which sets what it practises; **solved**: "
            f"the round's model on the test split, the same rule; **longest >= {t:g}**: its "
            "longest test length at that accuracy (–: not in the results); **labels correct**: "
            "the model's own answers before the filter (GRPO: its samples); **kept**: the "
            "labels it trained on; **train tokens**: since the seed model "
            f"({seeds}). Rounds evaluate up to the practised length and a little past it; the "
            "final table covers every evaluation length."
            + (
                " **probe checked**: for an arm whose probe scores agreement (no ground truth), "
                "the frontier the verifier would have given its probe's greedy answers; "
                "measured for this report only."
                if label_free
                else ""
            )
        ],
        "columns": [
            "arm", "round", "probe", *(["probe checked"] if label_free else []), "practised",
            "solved", f"longest >= {t:g}", "labels correct", "kept", "train tokens",
        ],
        "rows": table,
    }  # fmt: skip


def _demonstration(bench: BenchConfig, final: dict, seeds: list[int], top: int) -> str:
    """What one seed shows, each arm against the reference, in words; and what it does not."""
    (seed,) = seeds
    ref = final.get((bench.reference, seed))
    parts = []
    for (arm, _), row in final.items():
        if arm == bench.reference or ref is None:
            continue
        parts.append(
            f"`{arm}` solves every length 1..{row['solved']} where `{bench.reference}` solves "
            f"1..{ref['solved']} ({row['train_tokens']:,} and {ref['train_tokens']:,} training "
            "tokens since their shared seed model)"
        )
    text = (
        f"One seed, a demonstration and not a test (U holds lengths up to {top}): "
        + ("; ".join(parts) if parts else "no arm to set against the reference")
        + ". A seed's runs differ from the next seed's; a claim needs several seeds and the "
        "paired test."
    )
    return text + (f" {bench.see_also}" if bench.see_also else "")


def _climb_verdict(
    bench: BenchConfig, comparisons: list[dict], seeds: list[int], final: dict, top: int
) -> str:
    if len(seeds) == 1:
        return _demonstration(bench, final, seeds, top)
    parts = [
        f"{c['arm']}{against_text(bench, c)} **{c['verdict']}** "
        f"({c['test'].mean:+.1f} ± {c['test'].half_width:.1f})"
        for c in comparisons
        if not math.isnan(c["test"].mean)
    ]
    if bench.verdict and len(seeds) >= 2:
        return (
            f"Against `{bench.reference}` on the final frontier (largest difficulty solved, "
            f"{len(seeds)} seeds, paired; Holm-corrected at {bench.alpha:g}; equivalent = within "
            f"±{bench.frontier_margin:g}): " + "; ".join(parts) + "."
        )
    return "No verdict: " + ("fewer than 2 seeds." if len(seeds) < 2 else "verdict: false.")


def _climb_intro(cfg: RunConfig, seeds: list[int]) -> str:
    top = max(cfg.raw.difficulties)
    fr = cfg.loop.frontier
    return (
        f"U: {cfg.raw.size:,} problems of difficulties {min(cfg.raw.difficulties)}-{top} "
        f"({cfg.task.name}, {'reversed' if cfg.task.reversed else 'forward'}, ops "
        f"{', '.join(cfg.task.ops)}); seed model: {cfg.model.preset} "
        f"({cfg.model.position}), {cfg.seed_train.tokens:,} tokens. Each round trains "
        f"{cfg.train.tokens:,} tokens from the previous checkpoint on {fr.mix_new:g} newest "
        f"round / {fr.mix_old:g} older rounds / {fr.mix_raw:g} U (a raw arm's rounds hold raw "
        f"data); at most {cfg.loop.iterations} rounds; seeds {', '.join(map(str, seeds))}."
    )


def _goal_section(bench: BenchConfig, arms: dict[str, RunConfig], final: dict, top: int) -> dict:
    """The climb's claims, each checked against the numbers above."""
    kinds = {n: arm_kind(a) for n, a in arms.items()}

    def solved(name):
        return [final[(name, s)]["solved"] for s in bench.seeds if (name, s) in final]

    lines = []
    verified = next((n for n, k in kinds.items() if k.startswith("verified")), None)
    for name, kind in kinds.items():
        label_free = arms[name].loop.frontier.probe == "agreement"
        no_truth = kind.startswith(("majority", "committee")) or (
            label_free and kind.startswith("unfiltered")
        )
        # Labels chosen without ground truth; the whole climb only if the probe is label-free.
        what = "no ground truth" if label_free else "labels without ground truth, verifier's probe"
        if no_truth and verified and solved(name) and solved(verified):
            m, v = (sum(x) / len(x) for x in (solved(name), solved(verified)))
            if v == 0:  # nothing to reach a share of
                lines.append(
                    f"{name} ({what}) against {verified}: {verified} solves no length "
                    f"({m:.1f} vs 0.0), so there is no share to state (goal >= 80%)."
                )
                continue
            ratio = m / v
            lines.append(
                f"{name} ({what}) reaches {ratio:.0%} of {verified}'s frontier "
                f"({m:.1f} vs {v:.1f}; goal >= 80%): {'met' if ratio >= 0.8 else 'missed'}."
            )
    oracle = next((n for n, a in arms.items() if a.loop.data_source == "oracle"), None)
    raw = bench.reference if arms[bench.reference].loop.data_source.startswith("raw") else None
    players = [n for n, a in arms.items() if a.loop.data_source == "selfplay"]
    for arm in players if oracle and raw and solved(oracle) and solved(raw) else []:
        if not solved(arm):
            continue
        o, v, r = (sum(x) / len(x) for x in (solved(oracle), solved(arm), solved(raw)))
        share = f"{(v - r) / (o - r):.0%}" if o > r else "undefined (the oracle gains nothing)"
        top_eval = max(arms[oracle].eval.difficulties)
        censored = any(x >= top_eval for x in solved(oracle))
        if censored and o > r:  # the oracle solves every evaluated length: its frontier is a floor
            share = f"at most {share}"
        lines.append(
            f"{arm} captures {share} of the oracle's gain over {raw} (solved {v:.1f}, "
            f"oracle {o:.1f}, {raw} {r:.1f}): gold labels for the same practised problems."
            + (
                f" The oracle solves every evaluated length on some seed (up to {top_eval}), "
                "so its frontier may be higher than measured."
                if censored
                else ""
            )
        )
    for name, a in arms.items():
        if a.loop.data_source in ("raw-fresh", "raw-repeat"):
            best = [_beyond(final[(name, s)], top + 1) for s in bench.seeds if (name, s) in final]
            best = [b for b in best if b is not None]
            if best:
                lines.append(
                    f"{name}: best accuracy beyond {top + 1} digits {max(best):.2f} (max over "
                    f"seeds; goal < 0.10): {'met' if max(best) < 0.10 else 'missed'}."
                )
    return {"heading": "The climb's claims", "text": lines or ["No arm to check."]}


# ------------------------------------------------------------------------------------------------
# Plots


def write_climb_plots(bench_dir: Path, rows: list[dict], threshold: float) -> list[str]:
    """``climb_heatmaps.png`` (difficulty x round per arm, mean over seeds) and
    ``climb_frontier.png`` (solved difficulty against training tokens and total FLOPs)."""
    if not rows:
        return []
    import numpy as np

    from selfplay.plots import pyplot

    plt = pyplot()
    names = list(dict.fromkeys(r["arm"] for r in rows))
    diffs = sorted(
        {int(k[4:]) for r in rows for k in r if k.startswith("acc_") and k[4:].isdigit()}
    )
    out = []
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.2 * len(names) + 1, 1.8 + 0.28 * len(diffs)), squeeze=False
    )
    cmap = plt.get_cmap("viridis").with_extremes(bad="#e4e4e4")
    for ax, name in zip(axes[0], names, strict=True):
        mine = [r for r in rows if r["arm"] == name]
        stages = sorted({r["iteration"] for r in mine if r["stage"] != "final"}) + ["final"]
        grid = np.full((len(diffs), len(stages)), np.nan)
        for j, st in enumerate(stages):
            at = [
                r
                for r in mine
                if (
                    r["stage"] == "final"
                    if st == "final"
                    else r["iteration"] == st and r["stage"] != "final"
                )
            ]
            for i, d in enumerate(diffs):
                vals = [r.get(f"acc_{d}") for r in at]
                vals = [v for v in vals if v is not None and not math.isnan(v)]
                if vals and len(vals) == len(at):
                    grid[i, j] = sum(vals) / len(vals)
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=1)
        ax.set_xticks(range(len(stages)), [str(s) if s != "final" else "F" for s in stages])
        ax.set_yticks(range(len(diffs)), [str(d) for d in diffs], fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("round (F: final, all difficulties)", fontsize=8)
    axes[0][0].set_ylabel("difficulty (digits)")
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02, pad=0.01)
    fig.suptitle("Greedy test accuracy, mean over seeds (grey: not measured)", fontsize=10)
    fig.savefig(bench_dir / "climb_heatmaps.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    out.append("climb_heatmaps.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in names:
        per_seed = {}
        for r in rows:
            if r["arm"] == name and r["stage"] != "final":
                per_seed.setdefault(r["seed"], []).append(r)
        for ax, x in zip(axes, ("train_tokens", "flops"), strict=True):
            curves = [sorted(rs, key=lambda r: r["iteration"]) for rs in per_seed.values()]
            n = min(len(c) for c in curves)
            xs = [sum(c[i][x] for c in curves) / len(curves) for i in range(n)]
            ys = [sum(c[i]["solved"] for c in curves) / len(curves) for i in range(n)]
            ax.plot(xs, ys, marker="o", label=name)
    for ax, what in zip(
        axes,
        ("training tokens since the seed model", "total FLOPs (train + generate)"),
        strict=True,
    ):
        ax.set_xlabel(what)
        ax.set_ylabel(f"largest difficulty solved (>= {threshold:g}, test)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Frontier by training spent, mean over seeds", fontsize=10)
    fig.savefig(bench_dir / "climb_frontier.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    out.append("climb_frontier.png")
    if _avalanche_plot(plt, bench_dir, rows, names):
        out.append("climb_wrong_labels.png")
    return out


def _avalanche_plot(plt, bench_dir: Path, rows: list[dict], names: list[str]) -> bool:
    """``climb_wrong_labels.png``: the wrong labels each arm has trained on, cumulated over its
    rounds (mean over seeds), and the share of its kept labels that is right; nothing for
    results without the count (written before it was recorded) or without labelling arms."""
    have = [r for r in rows if r["stage"] != "final" and r.get("wrong_kept") is not None]
    arms = [n for n in names if any(r["arm"] == n for r in have)]
    if not arms:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in arms:
        by_seed: dict[int, dict[int, dict]] = {}
        for r in have:
            if r["arm"] == name:
                by_seed.setdefault(r["seed"], {})[r["iteration"]] = r
        rounds = sorted(set.intersection(*(set(v) for v in by_seed.values())))
        cum = [
            sum(sum(v[j]["wrong_kept"] for j in rounds if j <= k) for v in by_seed.values())
            / len(by_seed)
            for k in rounds
        ]
        right = [
            sum(v[k].get("kept_accuracy") or 0.0 for v in by_seed.values()) / len(by_seed)
            for k in rounds
        ]
        axes[0].plot(rounds, cum, marker="o", label=name)
        axes[1].plot(rounds, right, marker="o", label=name)
    axes[0].set_ylabel("wrong labels trained on, cumulative")
    axes[1].set_ylabel("share of kept labels that is right")
    axes[1].set_ylim(0, 1.02)
    for ax in axes:
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    axes[0].set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.suptitle("The error avalanche: wrong labels kept, mean over seeds", fontsize=10)
    fig.savefig(bench_dir / "climb_wrong_labels.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True
