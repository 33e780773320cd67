"""One run's results as a table: the per-stage rows that ``selfplay summary`` prints, and the
summary a published run (``benchmarks/results/<name>/``, see :mod:`selfplay.views.publish`) renders
its tables from."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

from selfplay.bars import PROGRESS_FILE, describe, read_report

STAGES = "Stages"
"""The heading of a run summary's per-stage table."""


def _fmt(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


OUT_OF_RANGE = "(out of range)"
"""How a table shows a value no run writes (an accuracy above 1, a negative count, NaN)."""

RATE_FIELDS = (
    "eval.accuracy", "eval.accuracy_in", "eval.accuracy_harder", "eval.truncated",
    "generate.pass_rate", "generate.valid_rate", "generate.pass_rate_by_difficulty",
    "filter.label_accuracy",
)  # fmt: skip
"""Fields of a stage's metrics that are fractions (a mapping: one per difficulty)."""
COUNT_FIELDS = (
    "train.tokens", "generate.generated_tokens", "generate.samples", "filter.kept",
    "filter.problems", "seconds.total", "cumulative",
)  # fmt: skip
"""Fields of a stage's metrics that are counts, seconds or sums of them."""


def in_range(x, rate: bool) -> bool:
    """Whether ``x`` can be a rate (in [0, 1]) or a count (not negative); never NaN or
    infinite; ``None`` (not measured) is.

    >>> in_range(0.5, True), in_range(1e308, True), in_range(-3, False), in_range(None, True)
    (True, False, False, True)
    """
    if x is None:
        return True
    return math.isfinite(x) and (0 <= x <= 1 if rate else x >= 0)


def fmt_rate(x) -> str:
    """A rate or accuracy as a table shows it: ``0.25``; ``-`` not measured; out of [0, 1] its
    value and :data:`OUT_OF_RANGE`."""
    return _fmt(x) if in_range(x, rate=True) else f"{x:.3g} {OUT_OF_RANGE}"


def range_warnings(rows: list[dict]) -> list[str]:
    """One line per stage whose metrics hold a value out of its range (:func:`in_range`): no
    run writes one, so its ``metrics.json`` is damaged or was edited."""
    out = []
    for r in rows:
        bad = []
        for fields, rate in ((RATE_FIELDS, True), (COUNT_FIELDS, False)):
            for key in fields:
                value = r
                for part in key.split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                items = value.items() if isinstance(value, dict) else [("", value)]
                bad += [
                    f"{key}{'.' * bool(k)}{k} = {x:g}"
                    for k, x in items
                    if isinstance(x, int | float) and not in_range(x, rate)
                ]
        if bad:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            stage = r.get("stage", "?")
            out.append(
                f"{stage}: metrics.json holds values out of range ({shown}; a rate is in [0, 1], "
                "a count is not negative): the file is damaged or was edited; `selfplay run` "
                f"with --redo {stage} redoes the stage"
            )
    return out


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
    """Accuracies as whole percents in fixed-width columns; ``·`` where not measured, ``!``
    where out of range (:func:`range_warnings` says which).

    >>> compact_accuracy({1: 1.0, 2: 0.625, 4: 1e308}, [1, 2, 3, 4])
    '100  62   ·   !'
    """
    return " ".join(
        "  ·" if acc.get(d) is None
        else f"{round(100 * acc[d]):>3d}" if in_range(acc[d], rate=True) else "  !"
        for d in diffs
    )  # fmt: skip


def short_count(n: int) -> str:
    """A count in at most four characters, for a narrow table.

    >>> short_count(1_234_567), short_count(45_600), short_count(999_700), short_count(999)
    ('1.2M', '46k', '1.0M', '999')
    """
    for size, unit in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= 0.9995 * size:  # 999,700 reads 1.0M rather than 1000k
            v = n / size
            return f"{v:.1f}{unit}" if v < 9.95 else f"{v:.0f}{unit}"
    return str(n)


def stage_values(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Columns and rows of the per-stage table with the values as recorded: numbers at full
    precision, ``None`` where a stage measured nothing, one column per evaluated difficulty; a
    climb's ``kept`` is the labels trained on and ``problems`` the labels made. ``selfplay summary
    --format csv|json`` writes these; :func:`stage_table` formats them."""
    diffs = sorted({d for r in rows for d in r["eval"]["accuracy"] if d != "all"}, key=int)
    climb = is_climb(rows)
    labels = any(r.get("filter", {}).get("label_accuracy") is not None for r in rows)
    columns = [
        "stage", *(["probe frontier", "practised"] if climb else []), "pass", "valid", "kept",
        *(["problems"] if climb else []), *(["labels correct"] if labels else []),
        *(f"acc d{d}" for d in diffs), "in", "harder", *(["test frontier"] if climb else []),
        "train tok", "gen tok", "sec",
    ]  # fmt: skip
    table = []
    for r in rows:
        g, f, ev = r.get("generate", {}), r.get("filter", {}), r["eval"]
        fr = r.get("frontier") if isinstance(r.get("frontier"), dict) else {}
        row = [r["stage"]]
        if climb:
            row += [fr.get("probe_solved"), span(fr["practice"]) if "practice" in fr else None]
        row += [g.get("pass_rate"), g.get("valid_rate"), f.get("kept")]
        row += [f.get("problems")] if climb else []
        row += [f.get("label_accuracy")] if labels else []
        row += [ev["accuracy"].get(d) for d in diffs]
        row += [ev.get("accuracy_in"), ev.get("accuracy_harder")]
        row += [ev.get("solved")] if climb else []
        row += [r["train"]["tokens"], g.get("generated_tokens", 0), r["seconds"]["total"]]
        table.append(row)
    return columns, table


def stage_records(rows: list[dict], **first) -> list[dict]:
    """One dict per stage of :func:`stage_values` (column -> value), after the keys of ``first``
    (e.g. ``run="seed_0/arm"`` for a bench's rows)."""
    columns, values = stage_values(rows)
    return [first | dict(zip(columns, row, strict=True)) for row in values]


def write_records(records: list[dict], fmt: str, out) -> None:
    """``records`` (:func:`stage_records`) to ``out`` as ``csv`` (a header of every column, in
    order of first appearance; empty where a stage has no value) or ``json`` (a list of objects)."""
    if fmt == "json":
        json.dump(records, out, indent=1)
        out.write("\n")
        return
    columns = list(dict.fromkeys(c for r in records for c in r))
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)


def _cell(column: str, value, short: bool) -> str:
    """One value of :func:`stage_values` as the table shows it; a value out of its range
    (:func:`in_range`) whole, with :data:`OUT_OF_RANGE`."""
    if column in ("stage", "probe frontier", "practised", "test frontier"):
        return "" if value is None else str(value)
    if column == "labels correct":
        return "" if value is None else fmt_rate(value)
    if column in ("kept", "problems", "train tok", "gen tok", "sec") and not in_range(value, False):
        return f"{value:g} {OUT_OF_RANGE}"
    if column == "kept":
        return "-" if value is None else str(value)
    if column in ("train tok", "gen tok"):
        return short_count(value) if short else f"{value:,}"
    if column == "sec":
        return f"{value:.0f}"
    return fmt_rate(value)  # rates and accuracies


def stage_table(
    rows: list[dict], compact: bool | None = None, short: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the per-stage table (seed, iter_001, ...) of any run's metrics rows:
    the samples' pass and valid rates, chains kept, accuracy per difficulty, in and beyond U's
    difficulties, tokens trained on and generated, and seconds. A climb's rows add what its
    schedule planned (the probe's frontier, the lengths practised), its labels' accuracy and
    the test frontier; beyond :data:`COMPACT_AFTER` difficulties (or with ``compact``) the
    accuracies share one column (whole percents, ``·``: not measured). ``short``: token counts
    as ``1.2M`` (:func:`short_count`)."""
    columns, values = stage_values(rows)
    diffs = [c.removeprefix("acc d") for c in columns if c.startswith("acc d")]
    compact = len(diffs) > COMPACT_AFTER if compact is None else compact
    shown = [c for c in columns if c != "problems" and not (compact and c.startswith("acc d"))]
    folded = f"test % d{diffs[0]}..d{diffs[-1]}" if compact and diffs else None
    if folded:
        shown.insert(columns.index(f"acc d{diffs[0]}") - ("problems" in columns), folded)
    table = []
    for row in values:
        value = dict(zip(columns, row, strict=True))
        cells = {c: _cell(c, v, short) for c, v in value.items()}
        if value.get("problems") is not None and value["kept"] is not None:
            cells["kept"] = f"{value['kept']}/{value['problems']}"
        if folded:
            cells[folded] = compact_accuracy({d: value[f"acc d{d}"] for d in diffs}, diffs)
        table.append([cells[c] for c in shown])
    return shown, table


LOSS_STEPS = 20
"""Fewer optimizer steps than this are too few to tell whether a stage's loss fell."""
LOSS_FALL = 0.01
"""A stage whose training loss fell by less than this fraction of its first loss did not learn."""
LOSS_FIT = 0.05
"""A first loss below this (nats per token) means the data was already fit: nothing to fall."""


def loss_warning(row: dict) -> str | None:
    """Why a stage's training loss says its learning rate is wrong, or ``None``: a loss that
    became NaN or infinite, or (over at least :data:`LOSS_STEPS` steps) one that rose or fell by
    less than :data:`LOSS_FALL` from the first steps (``train.first_loss``) to the last
    (``final_loss``). A GRPO stage's loss is a policy-gradient objective and need not fall."""
    tr, stage = row.get("train") or {}, row["stage"]
    first, final = tr.get("first_loss"), tr.get("final_loss")
    key = "grpo.lr" if "grpo" in row else "train.lr" if row["iteration"] else "seed_train.lr"
    if final is None:
        return None
    if not math.isfinite(final):
        return f"{stage}: the training loss diverged (final loss {final}): lower {key}"
    if "grpo" in row or first is None or tr.get("steps", 0) < LOSS_STEPS or first < LOSS_FIT:
        return None
    moved = (
        f"from {first:.3f} over the first steps to {final:.3f} over the last of {tr['steps']} steps"
    )
    if final > first:
        return f"{stage}: the training loss rose {moved}: lower {key}"
    if final > (1 - LOSS_FALL) * first:
        return (
            f"{stage}: the training loss did not fall ({moved}): {key} is too low or too high "
            "to learn; try it 10x lower and 10x higher"
            + (" (a bench's lr_factors searches it)" if key == "train.lr" else "")
        )
    return None


def run_warnings(rows: list[dict]) -> list[str]:
    """What makes a finished-looking run a broken one, each in a line that says what to change:
    values out of range (:func:`range_warnings`), a seed model that solves nothing, evaluations
    or samples mostly cut at ``max_new_tokens``, rounds that kept or trained nothing, a
    training loss that did not fall (:func:`loss_warning`)."""
    out = range_warnings(rows)
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
        loss = loss_warning(r)
        if loss:
            out.append(loss)
    return out


def progress_line(run_dir: str | Path, now: float | None = None) -> str | None:
    """The stage a run is working on, from the bar it reports to ``progress.json`` (``selfplay run``
    and a bench's worker write one; :mod:`selfplay.bars`): what, done of total, rate, ETA and how long ago it
    was written (a killed run's last report grows old). ``None`` when it reports no unfinished
    bar."""
    state = read_report(Path(run_dir) / PROGRESS_FILE)
    if not isinstance(state, dict) or state.get("done"):
        return None
    try:
        text = describe(state)
    except (KeyError, TypeError, ValueError):  # written by another version, or torn
        return None
    if isinstance(state.get("time"), int | float):
        age = max(0.0, (time.time() if now is None else now) - state["time"])
        text += (
            f" (reported {age:.0f}s ago)" if age < 120 else f" (reported {age / 60:.0f} min ago)"
        )
    from selfplay.views.chains import printable

    return printable(f"in progress: {text}")  # read from a file: never terminal control


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
