"""One run's results as a table: the per-stage rows that ``selfplay summary`` prints, and the
summary a published run (``benchmarks/results/<name>/``, see :mod:`selfplay.views.publish`) renders
its tables from."""

from __future__ import annotations

STAGES = "Stages"
"""The heading of a run summary's per-stage table."""


def _fmt(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


COMPACT_AFTER = 8
"""More evaluated difficulties than this: accuracy in one column of whole percents."""


def is_climb(rows: list[dict]) -> bool:
    """Whether the rows carry a climb's per-round frontier (probe, practised, trained lengths)."""
    return any(isinstance(r.get("frontier"), dict) for r in rows)


def span(ds) -> str:
    """``[3, 4, 5]`` -> ``3-5``; ``[2, 4]`` -> ``2, 4``; none -> ``-``.

    >>> span([3, 4, 5]), span([2, 4]), span([])
    ('3-5', '2, 4', '-')
    """
    if not ds:
        return "-"
    if len(ds) > 2 and list(ds) == list(range(ds[0], ds[-1] + 1)):
        return f"{ds[0]}-{ds[-1]}"
    return ", ".join(map(str, ds))


def compact_accuracy(acc: dict, diffs: list) -> str:
    """Accuracies as whole percents in fixed-width columns; ``·`` where not measured.

    >>> compact_accuracy({1: 1.0, 2: 0.625}, [1, 2, 3])
    '100  62   ·'
    """
    return " ".join("  ·" if acc.get(d) is None else f"{round(100 * acc[d]):>3d}" for d in diffs)


def stage_table(rows: list[dict], compact: bool | None = None) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the per-stage table (seed, iter_001, ...) of any run's metrics rows:
    the samples' pass and valid rates, chains kept, accuracy per difficulty, in and beyond U's
    difficulties, tokens trained on and generated, and seconds. A climb's rows add what its
    schedule planned (the probe's frontier, the lengths practised), its labels' accuracy and
    the test frontier; beyond :data:`COMPACT_AFTER` difficulties the accuracies share one column
    (whole percents, ``·``: not measured)."""
    diffs = sorted({d for r in rows for d in r["eval"]["accuracy"] if d != "all"}, key=int)
    climb = is_climb(rows)
    labels = any(r.get("filter", {}).get("label_accuracy") is not None for r in rows)
    compact = len(diffs) > COMPACT_AFTER if compact is None else compact
    acc_cols = [f"test % d{diffs[0]}..d{diffs[-1]}"] if compact and diffs else []
    if not compact:
        acc_cols = [f"acc d{d}" for d in diffs]
    columns = [
        "stage", *(["probe frontier", "practised"] if climb else []), "pass", "valid", "kept",
        *(["labels correct"] if labels else []), *acc_cols, "in", "harder",
        *(["test frontier"] if climb else []), "train tok", "gen tok", "sec",
    ]  # fmt: skip
    table = []
    for r in rows:
        g, f, ev = r.get("generate", {}), r.get("filter", {}), r["eval"]
        fr = r.get("frontier") if isinstance(r.get("frontier"), dict) else {}
        acc = ev["accuracy"]
        kept = f.get("kept", "-")
        if "problems" in f and climb:
            kept = f"{f['kept']}/{f['problems']}"
        row = [r["stage"]]
        if climb:
            solved = fr.get("probe_solved")
            row += ["" if solved is None else str(solved)]
            row += [span(fr["practice"]) if "practice" in fr else ""]
        row += [_fmt(g.get("pass_rate")), _fmt(g.get("valid_rate")), str(kept)]
        if labels:
            row += [_fmt(f.get("label_accuracy")) if f.get("label_accuracy") is not None else ""]
        row += [compact_accuracy(acc, diffs)] if compact else [_fmt(acc.get(d)) for d in diffs]
        row += [_fmt(ev.get("accuracy_in")), _fmt(ev.get("accuracy_harder"))]
        if climb:
            row += ["" if ev.get("solved") is None else str(ev["solved"])]
        row += [
            f"{r['train']['tokens']:,}",
            f"{g.get('generated_tokens', 0):,}",
            f"{r['seconds']['total']:.0f}",
        ]
        table.append(row)
    return columns, table


def run_warnings(rows: list[dict]) -> list[str]:
    """What makes a finished-looking run a broken one, each in a line that says what to change:
    a seed model that solves nothing, evaluations or samples mostly cut at ``max_new_tokens``,
    rounds that kept or trained nothing."""
    out = []
    seed = next((r for r in rows if r["iteration"] == 0), None)
    if seed is not None:
        acc = [a for d, a in seed["eval"]["accuracy"].items() if d != "all"]
        if acc and max(acc) == 0.0:
            out.append(
                "the seed model solves nothing (greedy accuracy 0.00 at every difficulty): the "
                "rounds have no foothold; train it longer (seed_train.tokens) or check the format"
            )
    for r in rows:
        cut = r["eval"].get("truncated", {}).get("all")
        if cut is not None and cut >= 0.5:
            most = "every" if cut >= 1.0 else f"{cut:.0%} of the"
            out.append(
                f"{r['stage']}: {most} evaluation generation{'s were' if cut < 1 else ' was'} cut "
                "at max_new_tokens (raise generation.max_new_tokens)"
            )
        gen = r.get("generate", {})
        if gen.get("samples") and gen.get("truncated", 0) / gen["samples"] >= 0.5:
            out.append(
                f"{r['stage']}: {gen['truncated'] / gen['samples']:.0%} of the round's samples "
                "were cut at max_new_tokens (raise generation.max_new_tokens)"
            )
        selfplay = r.get("source", "selfplay") == "selfplay"
        if r["iteration"] and selfplay and "filter" in r and not r["filter"].get("kept"):
            out.append(f"{r['stage']}: the filter kept nothing, so the round learned nothing new")
        if r["iteration"] and not r.get("train", {}).get("tokens"):
            out.append(f"{r['stage']}: trained 0 tokens (the model is unchanged)")
    return out


def summarize_run(name: str, config: dict, rows: list[dict], provenance: dict) -> dict:
    """A published run's summary (``kind: run``): what ran, where, and its per-stage table."""
    columns, table = stage_table(rows)
    machine = provenance.get("machine", {})
    seconds = sum(r["seconds"]["total"] for r in rows)
    intro = [
        f"`{config.get('name')}`, seed {config.get('seed')}, {len(rows) - 1} rounds after the "
        f"seed stage: {seconds / 60:.1f} min summed over the stages, on "
        f"{machine.get('cpus', '?')} CPUs ({machine.get('processor', '?')}), commit "
        f"{str(provenance.get('commit', 'unknown'))[:10]}."
    ]
    return {
        "kind": "run",
        "title": f"Run `{name}`",
        "intro": intro,
        "sections": [
            {
                "heading": STAGES,
                "text": [
                    "pass / valid: the round's samples with the right answer / a valid chain; "
                    "kept: chains trained on; acc d<k>: greedy accuracy on the evaluation set "
                    "at difficulty k; in / harder: at U's difficulties / beyond them; train tok: "
                    "tokens the stage trained on (prompts and completions); sec: the stage's seconds."
                ],
                "columns": columns,
                "rows": table,
            }
        ],
        "plots": [],
    }
