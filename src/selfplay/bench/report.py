"""The bench's report: results rows -> a summary (``summary.json``, tables as data), rendered as
report.md (and by :mod:`selfplay.views.html` as report.html), and the plots."""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import replace
from pathlib import Path

from selfplay.bench.config import COMPUTE_SUFFIX, BenchConfig, comparison_pairs, primary_pairs
from selfplay.config import RunConfig
from selfplay.plots import COLOURS, HATCHES, clipped_interval, line_style, pyplot
from selfplay.stats import (
    clean,
    effective_data,
    fit_line,
    format_ci,
    holm,
    isotonic,
    mean_ci,
    paired,
    sign_flip_floor,
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
        seeds = [s for s in bench.seeds if (name, s) in final and (other, s) in final]
        diffs = [final[(name, s)][key] - final[(other, s)][key] for s in seeds]
        out.append(
            {
                "arm": name,
                "against": other,
                "seeds": seeds,
                "diffs": diffs,
                "test": paired(diffs, margin),
            }
        )
    return judge(bench, out)


def withhold_at_edge(comparisons: list[dict], lr_search: dict | None) -> list[dict]:
    """No verdict for a comparison with an arm whose learning rate the search chose at the
    grid's edge (its best rate may lie outside the grid, so the comparison may measure the
    grid rather than the arm): its ``verdict`` becomes "no verdict" and ``no_verdict`` says why
    (in place; returned for convenience). A ``@compute`` arm has its arm's rate."""
    from selfplay.bench.lr_search import edge_choices

    edge = edge_choices(lr_search)
    for c in comparisons:
        names = [a.removesuffix(COMPUTE_SUFFIX) for a in (c["arm"], c["against"])]
        at = [a for a in dict.fromkeys(names) if a in edge]
        if not at:
            continue
        c["verdict"] = "no verdict"
        if len(at) == 1:
            why = f"{at[0]}'s learning rate is at the grid's edge (x{edge[at[0]]:g})"
        else:
            why = (
                "the learning rates of "
                + " and ".join(f"{a} (x{edge[a]:g})" for a in at)
                + " are at the grid's edge"
            )
        c["no_verdict"] = why + ", widen lr_factors"
    return comparisons


def judge(bench: BenchConfig, comparisons: list[dict]) -> list[dict]:
    """Holm-correct each family of comparisons (each with a paired ``test``) at once, for "no
    difference" (t and sign-flip) and for "inside the margin", and give each its verdict word (in
    place; returned for convenience). With ``bench.primary`` the primary comparisons are one
    family and the rest another (each comparison's ``family``); without, all are one."""
    primary = set(primary_pairs(bench))
    for c in comparisons:
        c["family"] = (
            ("primary" if (c["arm"], c["against"]) in primary else "secondary") if primary else None
        )
    for family in dict.fromkeys(c["family"] for c in comparisons):
        members = [c for c in comparisons if c["family"] == family]
        p_adj = holm([c["test"].p for c in members])
        flip_adj = holm([c["test"].p_sign_flip for c in members])
        eq_adj = holm([c["test"].p_equivalent for c in members])
        for c, p, f, q in zip(members, p_adj, flip_adj, eq_adj, strict=True):
            c["p_holm"], c["p_sign_flip_holm"], c["p_equivalent_holm"] = p, f, q
            c["family_size"] = len(members)
            c["verdict"] = (
                verdict_word(c["test"].mean, p, q, bench.alpha)
                if bench.verdict and c["test"].n >= 2
                else "no verdict"
            )
    return comparisons


def comparison_records(bench: BenchConfig, comparisons: list[dict]) -> list[dict]:
    """The comparisons as summary.json stores them (``family`` where the bench has a primary
    family)."""
    return [
        {
            "arm": c["arm"],
            "reference": c["against"],
            **({"family": c["family"]} if c.get("family") else {}),
            "mean": c["test"].mean,
            "half_width": c["test"].half_width,
            "p_holm": c["p_holm"],
            "p_sign_flip_holm": c["p_sign_flip_holm"],
            "p_equivalent_holm": c["p_equivalent_holm"],
            "verdict": c["verdict"],
            **({"no_verdict": c["no_verdict"]} if c.get("no_verdict") else {}),
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


def _verdict_sentence(
    bench: BenchConfig, comparisons: list[dict], n_seeds: int, final: dict | None = None
) -> str:
    """The verdict line: every comparison it reads (the primary family's, with ``primary``)
    with its verdict and difference, what weakens it (a t test without spread, an arm short of
    the budget: ``final``'s rows say so where they record ``budget_steps``) and why a comparison
    gets no verdict."""
    if not bench.verdict or n_seeds < 2:
        return "No verdict: " + ("one seed." if n_seeds < 2 else "verdict: false in the config.")
    if bench.primary:
        comparisons = [c for c in comparisons if c["family"] == "primary"]
    parts = []
    for c in comparisons:
        t = c["test"]
        who = c["arm"] + against_text(bench, c)
        if math.isnan(t.mean):
            parts.append(f"{who}: no paired seeds")
            continue
        notes = (
            ["the same difference on every seed: the t test is undefined"] if t.undefined else []
        )
        for arm in (c["arm"], c["against"]):
            short = budget_shortfall(final or {}, arm, c.get("seeds", bench.seeds))
            notes += [short] if short else []
        stated = f"{t.mean:+.3f} ± {t.half_width:.3f}" + "".join(f"; {n}" for n in notes)
        if c.get("no_verdict"):
            parts.append(f"{who}: **no verdict** ({stated}): {c['no_verdict']}")
        else:
            parts.append(f"{who} is **{c['verdict']}** ({stated})")
    which = (
        f"The pre-registered primary comparisons ({len(comparisons)}, Holm-corrected on their own "
        f"at {bench.alpha:g}), against `{bench.reference}` unless named"
        if bench.primary
        else f"Against `{bench.reference}`"
    )
    holm_text = "" if bench.primary else f"Holm-corrected at {bench.alpha:g}; "
    return (
        f"{which} on final in-distribution accuracy ({n_seeds} seeds, paired; "
        f"{holm_text}equivalent = within ±{bench.margin:g}): " + "; ".join(parts) + "."
    )


def budget_shortfall(final: dict, arm: str, seeds: list[int]) -> str | None:
    """The verdict line's "<arm> trained 97% of the budget (143 of 147 steps)" when the arm's
    final checkpoints (over ``seeds``; means) trained fewer optimizer steps than its rounds'
    budgets ask for (``budget_steps``); ``None`` when it met them or its rows do not say."""
    rs = [final[(arm, s)] for s in seeds if (arm, s) in final]
    if not rs or any(r.get("budget_steps") is None for r in rs):
        return None
    steps = statistics.fmean(r["steps"] for r in rs)
    budget = statistics.fmean(r["budget_steps"] for r in rs)
    if budget <= 0 or steps >= budget:
        return None
    share = math.floor(100 * steps / budget)  # never rounded up to "100%"
    return f"{arm} trained {share}% of the budget ({_count(steps)} of {_count(budget)} steps)"


def _count(x: float) -> str:
    """A mean count: whole where it is, else to one decimal (19.7 of 20, never 20 of 20)."""
    return f"{x:,.0f}" if x == round(x) else f"{x:,.1f}"


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
    comparisons = withhold_at_edge(compare_arms(bench, list(arms), final), lr_search)
    sections = [
        _equal_steps_section(bench, arms, rows, final, comparisons),
        *_paired_section(bench, comparisons),
        *_seed_models_section(bench, arms, rows, comparisons),
    ]
    effective, monotone = _effective_data_section(arms, final)
    sections += effective
    sections += _clean_baselines_section(bench, arms, final)
    sections.append(_by_difficulty_section(bench, arms, rows, final))
    sections.append(_equal_compute_section(arms, rows))
    extra, compute_records = compute_matched_sections(bench, arms, rows, final, lr_search)
    sections += extra
    if lr_search:
        from selfplay.bench.lr_search import lr_section

        sections.append(lr_section(lr_search))
    return {
        "kind": "bench",
        "title": f"Bench `{bench.name}`",
        "verdict": _verdict_sentence(bench, comparisons, len(seeds), final),
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


def _paired_section(bench, comparisons) -> list[dict]:
    """The paired comparisons' table: one, or with ``primary`` the primary family first and the
    secondary family after it, each under its own heading."""
    against = bool(bench.also_against or bench.primary)
    columns = [
        "arm", *(["against"] if against else []), "Δ acc in", "p (Holm)", "p sign-flip (Holm)",
        "p equiv (Holm)", "verdict", "per seed",
    ]  # fmt: skip
    families = (
        [("primary", "Primary comparisons, pre-registered"), ("secondary", "Secondary comparisons")]
        if bench.primary
        else [(None, f"Paired with {references_text(bench)}")]
    )
    sections = []
    for family, heading in families:
        members = [c for c in comparisons if c["family"] == family]
        if not members:
            continue
        sections.append(
            {
                "heading": f"{heading} (final acc in)",
                "text": [
                    "Per-seed differences from the same seed model; *p*: paired t test of no "
                    "difference, *p sign-flip*: the exact sign-flip (permutation) test of no "
                    "difference, *p equiv*: two one-sided tests of a difference within "
                    f"±{bench.margin:g}; each Holm-corrected over the {len(members)} comparisons"
                    + (" of this family." if bench.primary else "."),
                    *paired_notes(members),
                ],
                "columns": columns,
                "rows": paired_rows(members, against=against),
            }
        )
    return sections


STRENGTH_R = 0.7
"""A correlation of a comparison's per-seed differences with the seed models' accuracy beyond
this (either sign) is said to make the effect follow the seed model's strength."""


def _seed_models_section(bench, arms, rows, comparisons) -> list[dict]:
    """With ``primary``: each seed's model_0 accuracy beside that seed's difference in every
    primary comparison, the least-squares slope and the correlation of the difference on it,
    and the seed models' spread."""
    primary = [c for c in comparisons if c["family"] == "primary" and c["diffs"]]
    seed_acc = {
        r["seed"]: r["acc_in"] for r in _seed_rows(arms, rows) if r.get("acc_in") is not None
    }
    if not primary or len(seed_acc) < 2:
        return []
    seeds = [s for s in bench.seeds if s in seed_acc]
    per_seed = [dict(zip(c["seeds"], c["diffs"], strict=True)) for c in primary]
    table = [
        [str(s), f"{seed_acc[s]:.3f}", *[f"{d[s]:+.3f}" if s in d else "-" for d in per_seed]]
        for s in seeds
    ]
    accs = [seed_acc[s] for s in seeds]
    after = []
    for c, d in zip(primary, per_seed, strict=True):
        both = [s for s in seeds if s in d]
        line = fit_line([seed_acc[s] for s in both], [d[s] for s in both])
        name = f"{c['arm']} − {c['against']}"
        if math.isnan(line.slope):
            after.append(f"{name}: the seed models' accuracy does not vary; no slope.")
            continue
        r = "undefined (the difference does not vary)" if math.isnan(line.r) else f"{line.r:+.2f}"
        text = (
            f"{name}: slope {line.slope:+.3f} (least squares: difference per unit of seed-model "
            f"accuracy), r = {r} over {line.n} seeds"
        )
        if not math.isnan(line.r) and abs(line.r) > STRENGTH_R:
            text += ": the effect follows the seed model's strength"
        after.append(text + ".")
    return [
        {
            "heading": "Seed models and the primary comparisons",
            "text": [
                "Each seed's model_0 (every arm of that seed starts from it) and the paired "
                "difference (final acc in) of each primary comparison on that seed. Seed models' "
                f"acc in over {len(accs)} seeds: {min(accs):.3f}–{max(accs):.3f} (range "
                f"{max(accs) - min(accs):.3f}), SD {statistics.stdev(accs):.3f}."
            ],
            "columns": [
                "seed", "seed model acc in", *[f"Δ {c['arm']} − {c['against']}" for c in primary],
            ],
            "rows": table,
            "after": after,
        }
    ]  # fmt: skip


def paired_notes(comparisons: list[dict]) -> list[str]:
    """What limits a table of paired comparisons: the sign-flip test's floor where a comparison
    sits on it, and comparisons whose t test is undefined."""
    notes = []
    floored = sorted(
        {c["test"].n for c in comparisons if c["test"].p_sign_flip == sign_flip_floor(c["test"].n)}
    )
    for n in floored:
        notes.append(
            f"With {n} seeds the smallest two-sided sign-flip p is 2/{2**n} = "
            f"{sign_flip_floor(n):.4g} (every seed's difference of one sign), before Holm's "
            "correction; a comparison at that floor is as significant as the sign-flip test "
            "can say with these seeds."
        )
    undefined = [c for c in comparisons if c["test"].undefined]
    if undefined:
        notes.append(
            "The same difference on every seed leaves the t test undefined (no spread): "
            + ", ".join(f"{c['arm']} vs {c['against']}" for c in undefined)
            + "; its p counts in Holm's family as 1 and the verdict is inconclusive."
        )
    return notes


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


def _p_text(p: float, undefined: bool = False) -> str:
    if math.isnan(p):
        return "undefined" if undefined else "-"
    return f"{p:.3f}"


def paired_rows(comparisons: list[dict], against: bool = False) -> list[list[str]]:
    """A paired-comparisons table's rows: arm (with the arm it is compared with, if
    ``against``), difference ± 95% interval, Holm p-values (t, sign-flip, equivalence), verdict,
    per-seed differences."""
    rows = []
    for c in comparisons:
        t = c["test"]
        rows.append(
            [
                c["arm"],
                *([c["against"]] if against else []),
                format_ci(t.mean, t.half_width),
                _p_text(c["p_holm"], t.undefined),
                _p_text(c["p_sign_flip_holm"]),
                _p_text(c["p_equivalent_holm"], t.undefined),
                c["verdict"],
                ", ".join(f"{d:+.3f}" for d in c["diffs"]),
            ]
        )
    return rows


def compute_matched_sections(
    bench: BenchConfig,
    arms: dict[str, RunConfig],
    rows: list[dict],
    final: dict,
    lr_search: dict | None = None,
) -> tuple[list[dict], list[dict]]:
    """With ``compute_match``: the raw arms continued to the self-play arms' compute, and every
    self-play arm paired with the reference continued (``<reference>@compute``), Holm-corrected
    over those comparisons (no verdict where ``lr_search`` chose an arm's rate at the grid's
    edge). Returns (sections, comparison records)."""
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
    at_compute = replace(bench, reference=ref, also_against=[], primary=[])
    comparisons = withhold_at_edge(compare_arms(at_compute, sp, final), lr_search)
    sections.append(
        {
            "heading": f"Paired with `{ref}` (final acc in, raw given at least the compute)",
            "text": [
                "Each self-play arm's final checkpoint against the reference continued to the "
                "compute of the most expensive self-play arm, so the raw side never has less "
                f"compute; equivalence margin ±{bench.margin:g}; Holm-corrected over the "
                f"{len(comparisons)} comparisons.",
                *paired_notes(comparisons),
            ],
            "columns": [
                "arm",
                "Δ acc in",
                "p (Holm)",
                "p sign-flip (Holm)",
                "p equiv (Holm)",
                "verdict",
                "per seed",
            ],
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


# ------------------------------------------------------------------------------------------------
# Plots


def paired_differences(
    bench: BenchConfig, arms: dict[str, RunConfig], rows: list[dict], lr_search: dict | None = None
) -> list[dict]:
    """The paired differences the verdicts read, as summary.json stores them (``comparisons``,
    then, with ``compute_match``, ``comparisons_at_compute``), each with the ``seeds`` its
    ``per_seed`` differences (final in-distribution accuracy, arm minus the arm it is compared
    with) come from, in the same order."""
    final = _final(rows)
    comparisons = withhold_at_edge(compare_arms(bench, list(arms), final), lr_search)
    records = comparison_records(bench, comparisons)
    records += compute_matched_sections(bench, arms, rows, final, lr_search)[1]
    for rec in records:
        rec["seeds"] = [
            s for s in bench.seeds if (rec["arm"], s) in final and (rec["reference"], s) in final
        ]
    return records


FLAT = 0.01
"""An accuracy that stays below this everywhere (every arm, seed and checkpoint) gets no panel: it
would be a line along the axis. The title gives its largest value instead."""


def flat_top(rows: list[dict], key: str) -> float | None:
    """The largest value of ``key`` when every value is below ``FLAT`` (a panel of it would be
    a line along the axis), else ``None``."""
    vals = clean(r.get(key) for r in rows)
    return max(vals) if vals and max(vals) < FLAT else None


def _flat_text(top: float) -> str:
    return "every arm at 0" if top == 0 else f"every arm at or below {top:.3g}"


def _seed_lines(rows: list[dict], arm: str, x: str, y: str) -> dict[int, list[tuple]]:
    """seed -> an arm's (x, y) per checkpoint, in order (checkpoints without a y left out)."""
    out: dict[int, list[tuple]] = {}
    for r in sorted(rows, key=lambda r: r["iteration"]):
        if r["arm"] == arm and r.get(y) is not None:
            out.setdefault(r["seed"], []).append((r[x], r[y]))
    return out


def _draw_arm(ax, rows: list[dict], arm: str, x: str, y: str, style: dict, seeds: bool) -> None:
    """An arm's mean over seeds as a bold line (its ``style``); with ``seeds``, each seed as a
    thin, light line of the same colour, dotted at its checkpoints and drawn over the mean, so a
    seed that runs along the mean still shows. Points on the axis' edge are drawn whole."""
    if seeds:
        for pts in _seed_lines(rows, arm, x, y).values():
            x_, y_ = zip(*pts, strict=True)
            seed = {"lw": 0.8, "alpha": 0.5, "marker": ".", "ms": 3, "zorder": style["zorder"] + 1}
            ax.plot(x_, y_, color=style["color"], clip_on=False, **seed)
    pts = _mean_curve([r for r in rows if r.get(y) is not None], arm, x, y)
    ax.plot(*zip(*pts, strict=True), lw=2.2, label=arm, clip_on=False, **style)


def _seed_level(rows: list[dict], key: str) -> float:
    """The seed model's mean (every arm's checkpoint 0): the level an arm has to clear."""
    return _mean(r.get(key) for r in rows if r["iteration"] == 0)


def _thousands(ax) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v else "0"))


def bench_figures(
    rows: list[dict], bench: BenchConfig, arms: dict[str, RunConfig], lr_search: dict | None = None
) -> dict:
    """The bench's plots as matplotlib figures, by file name, in the report's order. Every arm
    has one look (colour, marker, line style) in all of them."""
    plt = pyplot()
    order = list(dict.fromkeys(r["arm"] for r in rows))
    styles = {arm: line_style(i) for i, arm in enumerate(order)}
    figs = {}
    records = paired_differences(bench, arms, rows, lr_search)
    if records:
        figs["paired_differences.png"] = plot_paired_differences(plt, bench, records)
    figs["accuracy_vs_tokens.png"] = _plot_accuracy_vs_tokens(plt, bench, rows, order, styles)
    figs["accuracy_by_difficulty.png"] = _plot_by_difficulty(plt, rows, order, styles)
    sp = [a for a in order if any(r["arm"] == a and r["pass_rate"] is not None for r in rows)]
    if sp:
        figs["selfplay_yield.png"] = _plot_yield(plt, rows, sp, styles)
    rep = [a for a in order if any(r["arm"] == a and r["source"] == "raw-repeat" for r in rows)]
    if rep:
        figs["raw_repeat_epochs.png"] = _plot_data_wall(plt, rows, rep, styles)
    return figs


def write_plots(
    bench_dir: Path,
    rows: list[dict],
    bench: BenchConfig,
    arms: dict[str, RunConfig],
    lr_search: dict | None = None,
) -> list[str]:
    """The bench's plots (:func:`bench_figures`) written to ``bench_dir``; their file names."""
    plt = pyplot()
    figs = bench_figures(rows, bench, arms, lr_search)
    for name, fig in figs.items():
        tmp = bench_dir / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, bench_dir / name)
    return list(figs)


def plot_paired_differences(plt, bench: BenchConfig, records: list[dict]):
    """One row per comparison (:func:`paired_differences`): each seed's difference a dot (one
    colour per seed in every row), the mean with the 95% interval the report's tables give
    (cut at ±1, the range a difference of accuracies can take), zero and the equivalence
    margin."""
    n = len(records)
    fig, ax = plt.subplots(figsize=(10, 1.9 + 0.55 * n), layout="constrained")
    seeds = sorted({s for rec in records for s in rec["seeds"]})
    colour = {s: COLOURS[i % len(COLOURS)] for i, s in enumerate(seeds)}
    ax.axvspan(
        -bench.margin,
        bench.margin,
        color="0.85",
        zorder=0,
        label=f"equivalence margin ±{bench.margin:g}",
    )
    ax.axvline(0, color="black", lw=0.8, zorder=1)
    reach = [bench.margin]
    labels = []
    for i, rec in enumerate(records):
        y = n - 1 - i  # the first comparison on top
        k = len(rec["seeds"])
        for j, (s, d) in enumerate(zip(rec["seeds"], rec["per_seed"], strict=True)):
            # The seeds a little above the row, spread so equal differences stay apart.
            dy = 0.12 + (0.22 * j / (k - 1) if k > 1 else 0.11)
            ax.plot(d, y + dy, "o", color=colour[s], ms=5, zorder=3, label=f"seed {s}")
            reach.append(abs(d))
        m, h = rec["mean"], rec["half_width"]
        if not math.isnan(m):
            below, above = clipped_interval(m, h, -1.0, 1.0)
            ax.errorbar(
                m,
                y - 0.12,
                xerr=[[below], [above]],
                fmt="D",
                color="black",
                ms=6,
                capsize=4,
                lw=1.6,
                zorder=4,
                label="mean, 95% interval",
            )
            reach += [abs(m - below), abs(m + above)]
        ci = (
            "no paired seeds"
            if math.isnan(m)
            else f"{m:+.3f}" + ("" if math.isnan(h) else f" ± {h:.3f}")
        )
        labels.append(f"{rec['arm']} − {rec['reference']}\n{ci}, {rec['verdict']}")
        continued = [
            r["reference"].endswith(COMPUTE_SUFFIX) for r in records[max(i - 1, 0) : i + 1]
        ]
        if continued == [False, True]:  # the first comparison at self-play's compute
            ax.axhline(y + 0.5, color="0.4", ls="--", lw=0.8)
    ax.set_yticks(range(n - 1, -1, -1), labels, fontsize=8)
    ax.set_ylim(-0.6, n - 0.4)
    lim = min(1.05, 1.12 * max(reach) + 0.01)
    ax.set_xlim(-lim, lim)
    ax.set_xlabel(
        "difference in final in-distribution accuracy (arm − the arm it is compared with)"
    )
    ax.grid(axis="x", alpha=0.3)
    at_compute = sum(rec["reference"].endswith(COMPUTE_SUFFIX) for rec in records)
    family = (
        f"over the {n - at_compute} comparisons above the dashed line and over the {at_compute}"
        " below it\n(below it: against the reference continued to self-play's compute)"
        if at_compute
        else f"over the {n} comparisons"
    )
    fig.suptitle(
        "Paired by seed: each dot one seed's difference, ◆ the mean with its 95% interval (t)\n"
        f"each interval is its own comparison's; the verdicts are Holm-corrected {family}",
        fontsize=9,
    )
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    order = [n for n in unique if not n.startswith("seed ")] + [f"seed {s}" for s in seeds]
    fig.legend(
        [unique[n] for n in order if n in unique],
        [n for n in order if n in unique],
        loc="outside lower center",
        ncol=min(len(unique), 8),
        fontsize=8,
    )
    return fig


def _plot_accuracy_vs_tokens(plt, bench, rows, order, styles):
    """Accuracy against training tokens: a panel of every arm's mean, then one per arm with its
    seeds (thin) with their mean (bold) and the reference's mean. A metric that stays below
    ``FLAT`` (the harder difficulties, often) gets no panels; the title says so."""
    metrics = [("acc_in", "in-distribution"), ("acc_harder", "harder than U")]
    metrics = [(k, w) for k, w in metrics if clean(r.get(k) for r in rows)] or metrics[:1]
    drawn = [(k, w) for k, w in metrics if flat_top(rows, k) is None] or metrics[:1]
    ncols = min(4, len(order) + 1)
    per_metric = math.ceil((len(order) + 1) / ncols)
    fig, grid = plt.subplots(
        per_metric * len(drawn),
        ncols,
        figsize=(3.3 * ncols, 2.6 * per_metric * len(drawn) + 1.4),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    ref = bench.reference
    for m, (key, what) in enumerate(drawn):
        cells = [grid[m * per_metric + i // ncols][i % ncols] for i in range(per_metric * ncols)]
        seed = _seed_level(rows, key)
        for ax, arm in zip(cells, [None, *order], strict=False):
            if not math.isnan(seed):
                ax.axhline(seed, color="grey", ls=":", lw=1, label="seed model")
            if arm is None:
                for a in order:
                    _draw_arm(ax, rows, a, "train_tokens", key, styles[a], seeds=False)
                ax.set_title(f"{what}: every arm's mean", fontsize=9)
            else:
                if arm != ref and ref in order:
                    pts = _mean_curve(
                        [r for r in rows if r.get(key) is not None], ref, "train_tokens", key
                    )
                    ax.plot(
                        *zip(*pts, strict=True),
                        color="black",
                        ls="--",
                        lw=1.0,
                        label=f"{ref} (reference), mean",
                    )
                _draw_arm(ax, rows, arm, "train_tokens", key, styles[arm], seeds=True)
                ax.set_title(f"{what}: {arm}", fontsize=9)
            ax.grid(alpha=0.3)
        for ax in cells[len(order) + 1 :]:
            ax.set_visible(False)
        for ax in cells[::ncols]:
            ax.set_ylabel("greedy accuracy")
    for ax in grid.flat:
        ax.set_ylim(0, 1)  # accuracy's whole range
        _thousands(ax)
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in grid[-1]:
        ax.set_xlabel("training tokens after the seed model")
    legend = {}
    for ax in grid.flat:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(name, handle)
    fig.legend(
        legend.values(),
        legend.keys(),
        loc="outside lower center",
        ncol=min(len(legend), 6),
        fontsize=8,
    )
    notes = [
        f"{what}: {_flat_text(top)} at every checkpoint"
        + ("" if (key, what) in drawn else " (not drawn)")
        for key, what in metrics
        if (top := flat_top(rows, key)) is not None
    ]
    fig.suptitle(
        "Greedy accuracy on the held-out set: thin lines are seeds, bold lines their mean"
        + "".join(f"\n{n}" for n in notes),
        fontsize=10,
    )
    return fig


def _plot_by_difficulty(plt, rows, order, styles):
    """Final accuracy by difficulty: a bar per arm (mean over seeds), its seeds as dots and the
    95% interval cut at [0, 1]; difficulties where every arm stays below ``FLAT`` are named, not
    drawn."""
    final = _final(rows)
    diffs = _difficulties(rows)
    finals = list(final.values())
    tops = {d: flat_top(finals, f"acc_{d}") for d in diffs}
    shown = [d for d in diffs if tops[d] is None] or diffs
    fig, ax = plt.subplots(figsize=(11, 4.6), layout="constrained")
    width = 0.8 / max(len(order), 1)
    for i, arm in enumerate(order):
        rs = [r for (a, _), r in final.items() if a == arm]
        xs = [j + i * width for j in range(len(shown))]
        stats = [mean_ci([r.get(f"acc_{d}") for r in rs]) for d in shown]
        cut = [clipped_interval(m, h) for m, h in stats]
        below, above = [c[0] for c in cut], [c[1] for c in cut]
        ax.bar(
            xs,
            [m for m, _ in stats],
            width,
            color=styles[arm]["color"],
            hatch=HATCHES[i // len(COLOURS) % len(HATCHES)],  # past the colours: a pattern
            edgecolor="white",
            label=arm,
            yerr=[below, above],
            capsize=2,
            error_kw={"lw": 0.9},
        )
        for x, d in zip(xs, shown, strict=True):
            vals = clean(r.get(f"acc_{d}") for r in rs)
            ax.plot(
                [x] * len(vals),
                vals,
                ".",
                color="black",
                ms=3,
                alpha=0.7,
                zorder=3,
                label="a seed" if (i, d) == (0, shown[0]) else None,
            )
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shown))], [f"{d} digits" for d in shown])
    ax.set_ylabel("final greedy accuracy")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(
        "Final checkpoint: bar = mean over seeds, dots = seeds, line = 95% interval (t, cut at "
        "[0, 1])"
        + "".join(
            f"\n{d} digits: {_flat_text(top)} on every seed"
            + ("" if d in shown else " (not drawn)")
            for d, top in tops.items()
            if top is not None
        ),
        fontsize=10,
    )
    fig.legend(loc="outside right upper", fontsize=7)
    return fig


def _plot_yield(plt, rows, sp, styles):
    """Self-play arms per round: the samples' pass rate and the chains kept, seeds thin beside
    their mean."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for arm in sp:
        for ax, key in [(axes[0], "pass_rate"), (axes[1], "kept")]:
            _draw_arm(ax, rows, arm, "iteration", key, styles[arm], seeds=True)
    axes[0].set_ylabel("sample pass rate")
    axes[0].set_ylim(0, 1)
    axes[1].set_ylabel("kept samples")
    axes[1].set_ylim(bottom=0)  # counts from zero: no truncated axis
    for ax in axes:
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    fig.suptitle("Self-play per round: thin lines are seeds, bold lines their mean", fontsize=10)
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="outside lower center",
        ncol=min(len(sp), 6),
        fontsize=8,
    )
    return fig


def _plot_data_wall(plt, rows, rep, styles):
    """The data wall: raw-repeat's accuracy against epochs of U, seeds thin beside their mean."""
    fig, ax = plt.subplots(figsize=(6.5, 4.4), layout="constrained")
    for arm in rep:
        _draw_arm(ax, rows, arm, "epochs_of_U", "acc_in", styles[arm], seeds=True)
    ax.set_xlabel("epochs of U after the seed model")
    ax.set_ylabel("in-distribution accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title("Thin lines are seeds, bold lines their mean", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return fig
