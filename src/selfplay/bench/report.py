"""The bench's report: results rows -> a summary (``summary.json``, tables as data), rendered as
report.md (and by :mod:`selfplay.views.html` as report.html), and the plots."""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import replace
from pathlib import Path

from selfplay.bench.config import COMPUTE_SUFFIX, BenchConfig
from selfplay.config import RunConfig
from selfplay.plots import pyplot
from selfplay.stats import (
    clean,
    effective_data,
    format_ci,
    holm,
    isotonic,
    mean_ci,
    paired,
    verdict_word,
)


def _final(rows: list[dict]) -> dict[tuple[str, int], dict]:
    out = {}
    for r in rows:
        key = (r["arm"], r["seed"])
        if key not in out or r["iteration"] > out[key]["iteration"]:
            out[key] = r
    return out


CHANCE = 0.05
"""A seed model below this in-distribution accuracy is "near chance" (exact-match tasks)."""


def _mean(values) -> float:
    vals = clean(values)
    return statistics.fmean(vals) if vals else math.nan


def comparison_pairs(bench: BenchConfig, arms: list[str]) -> list[tuple[str, str]]:
    """(arm, against) for every comparison of a bench: each arm against the reference, then
    each arm but the reference against every arm of ``also_against``."""
    ref = bench.reference
    pairs = [(a, ref) for a in arms if a != ref]
    for other in bench.also_against:
        pairs += [(a, other) for a in arms if a not in (ref, other)]
    return pairs


def compare_arms(
    bench: BenchConfig,
    arms: list[str],
    final: dict,
    key: str = "acc_in",
    margin: float | None = None,
) -> list[dict]:
    """Every arm against the reference (and against each arm of ``also_against``) on a final
    metric (default: in-distribution accuracy), paired over seeds: the difference, its 95%
    interval, Holm-corrected p-values of "no difference" and of "inside the margin" (default
    ``bench.margin``), and the verdict word."""
    margin = bench.margin if margin is None else margin
    out = []
    for name, other in comparison_pairs(bench, arms):
        diffs = [
            final[(name, s)][key] - final[(other, s)][key]
            for s in bench.seeds
            if (name, s) in final and (other, s) in final
        ]
        out.append({"arm": name, "against": other, "diffs": diffs, "test": paired(diffs, margin)})
    return judge(bench, out)


def judge(bench: BenchConfig, comparisons: list[dict]) -> list[dict]:
    """Holm-correct a family of comparisons (each with a paired ``test``) at once, for "no
    difference" and for "inside the margin", and give each its verdict word (in place; returned
    for convenience)."""
    p_adj = holm([c["test"].p for c in comparisons])
    eq_adj = holm([c["test"].p_equivalent for c in comparisons])
    for c, p, q in zip(comparisons, p_adj, eq_adj, strict=True):
        c["p_holm"], c["p_equivalent_holm"] = p, q
        c["verdict"] = (
            verdict_word(c["test"].mean, p, q, bench.alpha)
            if bench.verdict and c["test"].n >= 2
            else "no verdict"
        )
    return comparisons


def comparison_records(bench: BenchConfig, comparisons: list[dict]) -> list[dict]:
    """The comparisons as summary.json stores them."""
    return [
        {
            "arm": c["arm"],
            "reference": c["against"],
            "mean": c["test"].mean,
            "half_width": c["test"].half_width,
            "p_holm": c["p_holm"],
            "p_equivalent_holm": c["p_equivalent_holm"],
            "verdict": c["verdict"],
            "per_seed": c["diffs"],
        }
        for c in comparisons
    ]


def against_text(bench: BenchConfig, c: dict) -> str:
    """ " against `X`" for a comparison with an arm other than the reference, else ""."""
    return "" if c["against"] == bench.reference else f" against `{c['against']}`"


def references_text(bench: BenchConfig) -> str:
    """The arms a bench's comparisons are made against: "`ref`", or "`ref` and `other`"."""
    return " and ".join(f"`{a}`" for a in [bench.reference, *bench.also_against])


def _verdict_sentence(bench: BenchConfig, comparisons: list[dict], n_seeds: int) -> str:
    if not bench.verdict or n_seeds < 2:
        return "No verdict: " + ("one seed." if n_seeds < 2 else "verdict: false in the config.")
    parts = []
    for c in comparisons:
        t = c["test"]
        who = c["arm"] + against_text(bench, c)
        parts.append(
            f"{who} is **{c['verdict']}** ({t.mean:+.3f} ± {t.half_width:.3f})"
            if not math.isnan(t.mean)
            else f"{who}: no paired seeds"
        )
    return (
        f"Against `{bench.reference}` on final in-distribution accuracy ({n_seeds} seeds, paired; "
        f"Holm-corrected at {bench.alpha:g}; equivalent = within ±{bench.margin:g}): "
        + "; ".join(parts)
        + "."
    )


def bench_warnings(
    bench: BenchConfig, rows: list[dict], final: dict, curve_monotone: bool | None
) -> list[str]:
    """What makes the comparison weaker than it looks."""
    out = []
    if bench.quick:
        out.append("quick: not a result (a smoke-size bench; read nothing into its numbers).")
    seeds = {s for _, s in final}
    if len(seeds) < 2:
        out.append(f"{len(seeds)} seed: no interval over seeds, no verdict.")
    seed_acc = _mean(r["acc_in"] for r in rows if r["iteration"] == 0)
    if not math.isnan(seed_acc) and seed_acc < CHANCE:
        out.append(
            f"The seed model is near chance (acc in {seed_acc:.3f}): with so little to build on, "
            "the comparison says little about self-play."
        )
    if curve_monotone is False:
        out.append(
            "The fresh-data curve (accuracy vs multiplier) is not monotone in its means: the "
            "effective-data multiplier reads a monotone fit of it, and its interval is wide."
        )
    short = {a: why for a in {a for a, _ in final} if (why := budget_status(rows, a)) != "met"}
    if short:
        out.append(
            "Short of the budget: "
            + ", ".join(
                f"{a} ({why.removeprefix('short ').strip('()')})"
                for a, why in sorted(short.items())
            )
            + "; their steps and supervised tokens are below the others' (see the table)."
        )
    return out


def _lr_warnings(lr_search: dict | None) -> list[str]:
    if not lr_search:
        return []
    from selfplay.bench.lr_search import edge_warning

    w = edge_warning(lr_search)
    return [w] if w else []


def budget_status(rows: list[dict], arm: str) -> str:
    """``met``, or why a round of the arm (any seed) trained less than its budget: ``short
    (nothing kept)`` when a round had no data at all, ``short (max_epochs)`` when
    ``train.max_epochs`` capped the repeats of a thin set."""
    rounds = [r for r in rows if r["arm"] == arm and r["iteration"] > 0]
    if any(r.get("round_budget") and not r.get("round_steps") for r in rounds):
        return "short (nothing kept)"
    if any(r.get("capped_by_max_epochs") for r in rounds):
        return "short (max_epochs)"
    return "met"


def time_line(run: dict | float) -> str:
    """How long a bench took and where, from its provenance (``wall_seconds``: the runs' recorded
    times summed, each seed model once; ``elapsed_seconds``: the invocation that finished it;
    ``machine``; ``jobs``), or from a plain number of seconds."""
    import platform

    run = run if isinstance(run, dict) else {"wall_seconds": run}
    m = run.get("machine") or {"processor": platform.machine(), "cpus": os.cpu_count()}
    where = f"on {m.get('processor')} ({m.get('cpus')} CPUs)"
    summed = run["wall_seconds"] / 60
    jobs = run.get("jobs", 1)
    if jobs > 1:
        text = f"Run time {summed:.1f} min summed over the arm x seed runs, {jobs} at a time"
        if run.get("invocations", 1) > 1 and run.get("elapsed_total_seconds"):
            text += (
                f"; {run['elapsed_total_seconds'] / 60:.1f} min elapsed over "
                f"{run['invocations']} invocations (commits "
                + ", ".join(c[:7] for c in run.get("commits", []))
                + ")"
            )
        elif run.get("elapsed_seconds"):
            text += f"; {run['elapsed_seconds'] / 60:.1f} min elapsed"
        return f"{text}, {where}."
    return f"Wall time {summed:.1f} min {where}."


def final_rows(final: dict, arm: str, seeds: list[int]) -> list[dict]:
    """An arm's final-checkpoint rows, one per seed that has one, in the seeds' order."""
    return [final[(arm, s)] for s in seeds if (arm, s) in final]


def summarize_bench(
    bench: BenchConfig,
    arms: dict[str, RunConfig],
    rows: list[dict],
    plots: list[str],
    wall: dict | float,
    lr_search: dict | None = None,
) -> dict:
    """The bench's report as data (``summary.json``): the verdict, warnings, intro paragraphs and
    sections of text and tables (cells as printed); report.md, report.html and the published
    tables render it."""
    final = _final(rows)
    seeds = sorted({s for _, s in final})
    comparisons = compare_arms(bench, list(arms), final)
    sections = [
        _equal_steps_section(bench, arms, rows, final, comparisons),
        _paired_section(bench, comparisons),
    ]
    effective, monotone = _effective_data_section(arms, final)
    sections += effective
    sections += _clean_baselines_section(bench, arms, final)
    sections.append(_by_difficulty_section(bench, arms, rows, final))
    sections.append(_equal_compute_section(arms, rows))
    extra, compute_records = compute_matched_sections(bench, arms, rows, final)
    sections += extra
    if lr_search:
        from selfplay.bench.lr_search import lr_section

        sections.append(lr_section(lr_search))
    return {
        "kind": "bench",
        "title": f"Bench `{bench.name}`",
        "verdict": _verdict_sentence(bench, comparisons, len(seeds)),
        "warnings": bench_warnings(bench, rows, final, monotone) + _lr_warnings(lr_search),
        "comparisons": comparison_records(bench, comparisons),
        **({"comparisons_at_compute": compute_records} if compute_records else {}),
        "intro": _bench_intro(bench, arms, rows, wall),
        "sections": sections,
        "plots": plots,
    }


def _col(rs: list[dict], k: str, digits: int = 3) -> str:
    return format_ci(*mean_ci([r.get(k) for r in rs]), digits=digits)


def _seed_rows(arms: dict, rows: list[dict]) -> list[dict]:
    """The seed model's rows (every arm starts from them; the first arm's stand for all)."""
    first = next(iter(arms))
    return [r for r in rows if r["iteration"] == 0 and r["arm"] == first]


def _bench_intro(bench: BenchConfig, arms: dict, rows: list[dict], wall) -> list[str]:
    any_cfg = next(iter(arms.values()))
    diffs = _difficulties(rows)
    seed_rows = _seed_rows(arms, rows)
    n_eval = {d: seed_rows[0].get(f"n_{d}") for d in diffs} if seed_rows else {}
    asked = any_cfg.eval.n_per_difficulty
    return [
        f"Seeds {bench.seeds}; every arm of a seed starts from that seed's model_0 (trained on U: "
        f"{any_cfg.raw.size} problems, difficulties {any_cfg.raw.difficulties}) and trains, in "
        f"{any_cfg.loop.iterations} rounds, the same optimizer steps on the same supervised "
        "(completion) tokens; prompts and padding do not count. Accuracy is greedy exact match "
        f"on one fixed held-out set (the same problems for every seed, arm and checkpoint); "
        f"*in* = difficulties {any_cfg.raw.difficulties}, *harder* = the rest of "
        f"{any_cfg.eval.difficulties}, each a micro-average over problems. ± is a 95% interval "
        "over seeds (t); *SE* the binomial standard error of one model's accuracy.",
        "Evaluation set: "
        + ", ".join(
            f"d{d} {n_eval[d]}" + (" (all there are)" if (n_eval[d] or 0) < asked else "")
            for d in diffs
            if n_eval.get(d) is not None
        )
        + " problems.",
        time_line(wall),
    ]


def _equal_steps_section(bench, arms, rows, final, comparisons) -> dict:
    names = list(arms)
    by_arm = {c["arm"]: c for c in comparisons if c["against"] == bench.reference}
    seed_rows = _seed_rows(arms, rows)

    def rs_of(name):
        return final_rows(final, name, bench.seeds)

    table = []
    for name in names:
        rs = rs_of(name)
        if not rs:
            continue
        c = by_arm.get(name)
        table.append(
            [
                name,
                _col(rs, "acc_in"),
                f"{_mean(r.get('acc_in_se') for r in rs):.3f}",
                _col(rs, "acc_harder"),
                f"{_mean(r['steps'] for r in rs):,.0f}",
                f"{_mean(r['supervised_tokens'] for r in rs):,.0f}",
                f"{_mean(r['unique_examples'] for r in rs):,.0f}",
                f"{_mean(r['reuse'] for r in rs):.1f}",
                f"{_mean(r['generated_tokens'] for r in rs):,.0f}",
                f"{_mean(r['verifier_calls'] for r in rs):,.0f}",
                f"{_mean(r['flops'] for r in rs):.2e}",
                budget_status(rows, name),
                "reference" if name == bench.reference else (c["verdict"] if c else "-"),
            ]
        )
    return (
        {
            "heading": "At equal steps and supervised tokens (final checkpoint)",
            "columns": [
                "arm", "acc in", "SE", "acc harder", "steps", "supervised tokens",
                "unique examples", "reuse", "generated tokens", "verifier calls", "FLOPs",
                "budget", f"vs {bench.reference}",
            ],
            "rows": table,
            "text": [
                "Seed model (every arm's start): acc in "
                f"{format_ci(*mean_ci([r['acc_in'] for r in seed_rows]))}, acc harder "
                f"{format_ci(*mean_ci([r['acc_harder'] for r in seed_rows]))}. *reuse*: how "
                "often the average unique example was trained on; *budget*: whether the arm "
                "spent it (an arm stops short rather than repeat its data beyond "
                "`train.max_epochs`)."
            ],
        }
    )  # fmt: skip


def _paired_section(bench, comparisons) -> dict:
    table = paired_rows(comparisons, against=bool(bench.also_against))
    return (
        {
            "heading": f"Paired with {references_text(bench)} (final acc in)",
            "text": [
                "Per-seed differences from the same seed model; *p*: paired t test of no "
                "difference, *p equiv*: two one-sided tests of a difference within "
                f"±{bench.margin:g}; both Holm-corrected over the {len(comparisons)} comparisons."
            ],
            "columns": [
                "arm", *(["against"] if bench.also_against else []), "Δ acc in", "p (Holm)",
                "p equiv (Holm)", "verdict", "per seed",
            ],
            "rows": table,
        }
    )  # fmt: skip


def _effective_data_section(arms, final) -> tuple[list[dict], bool | None]:
    """How much fresh raw data each arm is worth, where the bench has a fresh-data curve."""
    names = list(arms)
    sections = []
    fresh_arms = [n for n in names if arms[n].loop.data_source == "raw-fresh"]
    curve = {}
    for n in fresh_arms:
        curve.setdefault(arms[n].loop.fresh_multiplier, {}).update(
            {s: r["acc_in"] for (a, s), r in final.items() if a == n}
        )
    monotone = None
    if len(curve) >= 2:
        table = []
        for name in names:
            if name in fresh_arms:
                continue
            arm_acc = {s: r["acc_in"] for (a, s), r in final.items() if a == name}
            eff = effective_data(arm_acc, curve)
            monotone = eff["monotone"]
            if eff["estimate"] is None:
                worth = "outside the measured range"
            elif eff["low"] is None:
                worth = f"{eff['estimate']:.2f}x (interval leaves the measured range)"
            else:
                worth = f"{eff['estimate']:.2f}x [{eff['low']:.2f}, {eff['high']:.2f}]"
            table.append([name, f"{_mean(arm_acc.values()):.3f}", worth])
        xs = sorted(curve)
        means = [_mean(curve[x].values()) for x in xs]
        sections.append(
            {
                "heading": "Effective-data multiplier",
                "text": [
                    "How much fresh raw data (multiples of U, same steps and supervised tokens) "
                    "reaches the arm's final acc in: a monotone (isotonic) fit of the fresh-data "
                    "curve, inverted, with a 95% bootstrap interval over seeds."
                ],
                "columns": ["arm", "acc in", "worth (fresh data)"],
                "rows": table,
                "after": [
                    "raw-fresh curve (means; fit): "
                    + ", ".join(
                        f"{x:g}x → {m:.3f} ({f:.3f})"
                        for x, m, f in zip(xs, means, isotonic(means), strict=True)
                    )
                ],
            }
        )
    return sections, monotone


def _clean_baselines_section(bench, arms, final) -> list[dict]:
    names = list(arms)
    fresh_arms = [n for n in names if arms[n].loop.data_source == "raw-fresh"]
    sections = []

    def rs_of(name):
        return final_rows(final, name, bench.seeds)

    table = []
    for n in fresh_arms:
        rs = rs_of(n)
        table.append(
            [
                n,
                f"{_mean(r.get('fresh_size') for r in rs):,.0f}",
                str(sum(r.get("overlap_u") or 0 for r in rs)),
                str(sum(r.get("overlap_u_twins") or 0 for r in rs)),
                str(sum(r.get("overlap_eval") or 0 for r in rs)),
            ]
        )
    if table:
        sections.append(
            {
                "heading": "Clean baselines",
                "text": [
                    "Problems a fresh corpus shares with U, with U's commutative twins (b+a for "
                    "a+b) and with the evaluation set, counted over all seeds after the corpus "
                    "was drawn (overlapping problems are left out before the arm trains)."
                ],
                "columns": ["arm", "corpus size", "shared with U", "twins of U", "in eval set"],
                "rows": table,
            }
        )
    return sections


def _by_difficulty_section(bench, arms, rows, final) -> dict:
    names = list(arms)
    diffs = _difficulties(rows)
    ks = sorted({k for r in rows for k in r if k.startswith(("pass@", "maj@"))})

    def rs_of(name):
        return final_rows(final, name, bench.seeds)

    table = []
    for name in names:
        rs = rs_of(name)
        if rs:
            table.append(
                [
                    name,
                    *[_col(rs, f"acc_{d}") for d in diffs],
                    _col(rs, "valid"),
                    *[_col(rs, k) for k in ks],
                ]
                + [format_ci(*mean_ci([r.get("distinct_correct_chains") for r in rs]), digits=2)]
            )
    return (
        {
            "heading": "By difficulty and other metrics (final checkpoint)",
            "columns": ["arm", *[f"d{d}" for d in diffs], "valid", *ks, "distinct correct chains / problem"],
            "rows": table,
        }
    )  # fmt: skip


def _equal_compute_section(arms, rows) -> dict:
    names = list(arms)
    raw_arms = [n for n in names if arms[n].loop.data_source != "selfplay"]
    curves = {n: _mean_curve(rows, n, "flops", "acc_in") for n in names}
    for n in raw_arms:  # a raw arm continued to self-play's compute reaches every checkpoint
        if any(r["arm"] == n + COMPUTE_SUFFIX for r in rows):
            curves[n] = _mean_curve(rows, n + COMPUTE_SUFFIX, "flops", "acc_in")
    continued = any(r["arm"].endswith(COMPUTE_SUFFIX) for r in rows)
    table = []
    for name in names:
        if arms[name].loop.data_source != "selfplay":
            continue
        for it, (x, y) in enumerate(curves[name][1:], start=1):
            cells = []
            for rn in raw_arms:
                v = _interp(curves[rn], x)
                cells.append("beyond its budget" if v is None else f"{v:.3f}")
            table.append([name, f"round {it}", f"{x:.2e}", f"{y:.3f}", *cells])
    return {
        "heading": "At equal total compute (training + generation FLOPs)",
        "text": [
            "Self-play spends compute on generation; each self-play checkpoint is compared "
            "with each raw arm's accuracy interpolated at the same FLOPs"
            + (
                " (the raw arms continued past their rounds, below)."
                if continued
                else ", where the raw arm's curve reaches that far (raw arms are not "
                "continued past their budget)."
            )
        ],
        "columns": ["self-play arm", "checkpoint", "FLOPs", "acc in", *raw_arms],
        "rows": table,
    }


def paired_rows(comparisons: list[dict], against: bool = False) -> list[list[str]]:
    """A paired-comparisons table's rows: arm (with the arm it is compared with, if
    ``against``), difference ± 95% interval, Holm p-values, verdict, per-seed differences."""
    rows = []
    for c in comparisons:
        t = c["test"]
        rows.append(
            [
                c["arm"],
                *([c["against"]] if against else []),
                format_ci(t.mean, t.half_width),
                "-" if math.isnan(c["p_holm"]) else f"{c['p_holm']:.3f}",
                "-" if math.isnan(c["p_equivalent_holm"]) else f"{c['p_equivalent_holm']:.3f}",
                c["verdict"],
                ", ".join(f"{d:+.3f}" for d in c["diffs"]),
            ]
        )
    return rows


def compute_matched_sections(
    bench: BenchConfig, arms: dict[str, RunConfig], rows: list[dict], final: dict
) -> tuple[list[dict], list[dict]]:
    """With ``compute_match``: the raw arms continued to the self-play arms' compute, and every
    self-play arm paired with the reference continued (``<reference>@compute``), Holm-corrected
    over those comparisons. Returns (sections, comparison records)."""
    raw_names = [n for n in arms if arms[n].loop.data_source != "selfplay"]
    cont = [n + COMPUTE_SUFFIX for n in raw_names]
    cont = [n for n in cont if any(a == n for a, _ in final)]
    if not cont:
        return [], []

    def rs_of(name):
        return final_rows(final, name, bench.seeds)

    table = []
    for name in cont:
        rs = rs_of(name)
        table.append(
            [
                name,
                f"{_mean(r['iteration'] for r in rs):.1f}",
                f"{_mean(r['flops'] for r in rs):.2e}",
                format_ci(*mean_ci([r.get("acc_in") for r in rs])),
                f"{_mean(r.get('acc_in_se') for r in rs):.3f}",
                format_ci(*mean_ci([r.get("acc_harder") for r in rs])),
                f"{_mean(r['steps'] for r in rs):,.0f}",
                f"{_mean(r['supervised_tokens'] for r in rs):,.0f}",
                f"{_mean(r['reuse'] for r in rs):.1f}",
                budget_status(rows, name),
            ]
        )
    sp = [n for n in arms if arms[n].loop.data_source == "selfplay"]
    top = max(_mean(r["flops"] for r in rs_of(n)) for n in sp)
    which = (
        "Every raw arm"
        if len(cont) == len(raw_names)
        else f"{len(cont)} of the {len(raw_names)} raw arms (`compute_match_arms`)"
    )
    sections = [
        {
            "heading": "Raw arms continued to self-play's compute (final checkpoint)",
            "text": [
                f"{which} trained more rounds of its own data stream, from its last checkpoint, "
                "until its training FLOPs reached the most expensive self-play arm's training + "
                f"generation FLOPs of the same seed (mean {top:.2e}); whole rounds, so it ends "
                "at or just past that compute."
            ],
            "columns": [
                "arm", "rounds", "FLOPs", "acc in", "SE", "acc harder", "steps",
                "supervised tokens", "reuse", "budget",
            ],
            "rows": table,
        }
    ]  # fmt: skip
    ref = bench.reference + COMPUTE_SUFFIX
    if ref not in cont:
        return sections, []
    at_compute = replace(bench, reference=ref, also_against=[])
    comparisons = compare_arms(at_compute, sp, final)
    sections.append(
        {
            "heading": f"Paired with `{ref}` (final acc in, raw given at least the compute)",
            "text": [
                "Each self-play arm's final checkpoint against the reference continued to the "
                "compute of the most expensive self-play arm, so the raw side never has less "
                f"compute; equivalence margin ±{bench.margin:g}; Holm-corrected over the "
                f"{len(comparisons)} comparisons."
            ],
            "columns": ["arm", "Δ acc in", "p (Holm)", "p equiv (Holm)", "verdict", "per seed"],
            "rows": paired_rows(comparisons),
        }
    )
    return sections, comparison_records(at_compute, comparisons)


def render_markdown(summary: dict) -> str:
    """A report summary (bench or sweep) as Markdown: report.md."""
    lines = [f"# {summary['title']}", ""]
    if summary.get("verdict"):
        lines += [f"**Verdict.** {summary['verdict']}", ""]
    for w in summary.get("warnings", []):
        lines += [f"> **Warning:** {w}", ""]
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
    if summary.get("plots"):
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in summary["plots"]]
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
    plt = pyplot()

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
        seed = [r[key] for r in rows if r["iteration"] == 0 and r[key] is not None]
        if seed:  # the seed model, every arm's start: the line an arm has to clear
            ax.axhline(statistics.fmean(seed), color="grey", ls=":", label="seed model")
        ax.set_ylim(-0.03, 1.03)  # accuracy's whole range: no truncated axis turns 0.15 into a V
        ax.set_xlabel("training tokens after the seed model")
        ax.set_ylabel("greedy accuracy (held-out)")
        ax.set_title(f"{title}: mean over seeds, 95% band")
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
    ax.set_ylim(0, 1.05)
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
        axes[0].set_ylim(-0.03, 1.03)
        for ax in axes:
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
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
