"""One run's results as a table: the per-stage rows that ``selfplay summary`` prints, and the
summary a published run (``benchmarks/results/<name>/``, see :mod:`selfplay.publish`) renders
its tables from."""

from __future__ import annotations

STAGES = "Stages"
"""The heading of a run summary's per-stage table."""


def _fmt(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def stage_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the per-stage table (seed, iter_001, ...) of a run's metrics rows:
    the samples' pass and valid rates, chains kept, accuracy per difficulty, in and beyond U's
    difficulties, tokens trained on and generated, and seconds."""
    diffs = sorted({d for r in rows for d in r["eval"]["accuracy"] if d != "all"}, key=int)
    columns = [
        "stage", "pass", "valid", "kept", *[f"acc d{d}" for d in diffs], "in", "harder",
        "train tok", "gen tok", "sec",
    ]  # fmt: skip
    table = []
    for r in rows:
        g = r.get("generate", {})
        acc = r["eval"]["accuracy"]
        table.append(
            [
                r["stage"],
                _fmt(g.get("pass_rate")),
                _fmt(g.get("valid_rate")),
                str(r.get("filter", {}).get("kept", "-")),
                *[_fmt(acc.get(d)) for d in diffs],
                _fmt(r["eval"].get("accuracy_in")),
                _fmt(r["eval"].get("accuracy_harder")),
                f"{r['train']['tokens']:,}",
                f"{g.get('generated_tokens', 0):,}",
                f"{r['seconds']['total']:.0f}",
            ]
        )
    return columns, table


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
