"""``selfplay report DIR`` -> ``DIR/report.html``: one self-contained page (no server, no CDN).

For a run directory: the per-iteration summary, plots, and a sample browser (filter by iteration,
status, difficulty and filter decision; free-text search; per-step marks; a problem's history across
iterations; paginated, so 50,000 samples stay responsive). For a frontier run: the per-round
frontier table, a heatmap of test accuracy (difficulty x round), the frontier against training
tokens and FLOPs, and its rounds' labels in the same browser. For a bench directory: the arms'
tables and plots. Model text is data, never markup: it travels as JSON (with ``<``, ``>``, ``&``
escaped) and is put on the page with ``textContent`` only. The bench summary's own prose (its
verdict, warnings and section texts) is written in a small Markdown subset, rendered by
:func:`prose_html`; everything else on the page is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from selfplay.config import ConfigError
from selfplay.engine import artifacts
from selfplay.plots import pyplot
from selfplay.views.chains import (
    finished_iterations,
    group_reasons,
    load_eval_samples,
    load_samples,
    reason_group,
    rejection_reasons,
)

FIELDS = [
    "iteration",
    "problem_id",
    "difficulty",
    "sample_idx",
    "status",
    "answer",
    "gold",
    "tokens",
    "finish_reason",
    "kept",
    "filter_reason",
    "text",
    "steps",
    "prompt",
    "origin",  # sampled / adaptive / rationalized: the card labels the latter two
    "generation_prompt",  # what the model saw (with a hint, for a rationalized sample)
    "reward",
    "advantage",
    "valid",
    "set",
]
"""A browser row's fields; ``set``: ``generated`` (a round's samples) or ``eval`` (a checkpoint's
greedy generations on the held-out test problems)."""


def _safe_json(obj) -> str:
    """JSON that can sit inside a <script> element: no character can close it or open a comment."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


MARKERS = "osD^vP*X"
"""One marker (and dash pattern) per series, so lines that coincide (e.g. all at 0) stay visible."""


def _line_plot(
    title: str,
    xs: list,
    series: dict[str, list],
    xlabel: str,
    ylabel: str,
    reference: tuple[str, float] | None = None,
) -> tuple[str, str]:
    """Rates against rounds: integer round ticks, a 0-1 axis, an optional horizontal reference."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, ys) in enumerate(series.items()):
        ax.plot(
            xs, ys, marker=MARKERS[i % len(MARKERS)], markersize=7 - (i % 3), linewidth=1.6,
            linestyle=["-", "--", "-.", ":"][i % 4], label=label, alpha=0.9,
        )  # fmt: skip
    if reference is not None:
        ax.axhline(reference[1], color="grey", linestyle=":", linewidth=1.2, label=reference[0])
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks(sorted(set(xs)))  # rounds are whole numbers
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return title, _png(fig)


def _run_plots(rows: list[dict]) -> list[tuple[str, str]]:
    diffs = sorted({d for r in rows for d in r["eval"]["accuracy"] if d != "all"}, key=int)
    acc = {f"{d} digits": [r["eval"]["accuracy"].get(d) for r in rows] for d in diffs}
    seed = next((r for r in rows if r["iteration"] == 0), None)
    ref = None
    if seed is not None and seed["eval"].get("accuracy_in") is not None:
        ref = ("seed model, mean over U's difficulties", seed["eval"]["accuracy_in"])
    out = [
        _line_plot(
            "Greedy accuracy on held-out problems, by difficulty, after each round",
            [r["iteration"] for r in rows],
            acc,
            "round (0 = seed model)",
            "greedy accuracy",
            reference=ref,
        )
    ]
    its = [r for r in rows if "generate" in r]
    if its:
        ds = sorted({d for r in its for d in r["generate"]["pass_rate_by_difficulty"]}, key=int)
        rates = {
            f"{d} digits": [r["generate"]["pass_rate_by_difficulty"].get(d) for r in its]
            for d in ds
        }
        out.append(
            _line_plot(
                "Fraction of each round's samples with the right final answer, by difficulty",
                [r["iteration"] for r in its],
                rates,
                "round",
                "sample pass rate",
            )
        )
    return out


def _summary_html(rows: list[dict], final: dict | None = None) -> str:
    """Any run's per-stage table (:func:`selfplay.views.run.stage_table`), accuracy cells
    shaded by value so that a climb's table doubles as a heatmap; a climb's final model last."""
    from selfplay.views.run import OUT_OF_RANGE, stage_table, stage_values

    columns, table = stage_table(rows, compact=False)
    names, values = stage_values(rows)
    body = []
    for row, raw in zip(table, values, strict=True):
        raw = dict(zip(names, raw, strict=True))
        cells = []
        for col, cell in zip(columns, row, strict=True):
            if col.startswith("acc d"):
                cells.append(_acc_td(raw[col]))
            elif OUT_OF_RANGE in cell:
                cells.append(f'<td class="bad" title="{BAD_TITLE}">{html.escape(cell)}</td>')
            else:
                cells.append(f"<td>{html.escape(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if final:
        acc = final["eval"]["accuracy"]
        cells = [f"<td>final ({html.escape(final['model'])})</td>"]
        for col in columns[1:]:
            if col.startswith("acc d"):
                cells.append(_acc_td(acc.get(col[5:])))
            elif col == "test frontier":
                cells.append(f"<td>{_cell(final['eval']['solved'])}</td>")
            else:
                cells.append("<td></td>")
        body.append('<tr class="final">' + "".join(cells) + "</tr>")
    return (  # a wide table (a climb over many difficulties) scrolls sideways, not past the page
        '<div class="wide"><table id="stages"><thead><tr>'
        + "".join(f"<th>{html.escape(h)}</th>" for h in columns)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


def _cell(c) -> str:
    if c is None:
        return "–"
    if isinstance(c, float):
        return f"{c:.0f}" if c > 10 else f"{c:.3f}"
    if isinstance(c, int):
        return f"{c:,}"
    return html.escape(str(c))


_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\[\]\n]+)\]\(([^()\s]+)\)")
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EM = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])")
_HELD = re.compile("\x00(\\d+)\x00")
_URL = re.compile(r"[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+")
"""What a link's address may hold: printable ASCII, no spaces, quotes or brackets."""


def prose_html(text: str) -> str:
    """The project's own prose (a bench summary's verdict, warnings and section texts) with its
    Markdown subset as HTML: ``**bold**``, ``*emphasis*``, `` `code` `` and ``[text](address)``
    (an address with no scheme, or http(s); any other link stays text). Everything else is
    escaped, so markup in the text is shown, never run.

    >>> prose_html("**worse** than `raw<1>`: [docs](docs/results.md) <b>")
    '<strong>worse</strong> than <code>raw&lt;1&gt;</code>: <a href="docs/results.md">docs</a> &lt;b&gt;'
    """
    held: list[str] = []  # rendered pieces, put back after the text around them is escaped

    def hold(piece: str) -> str:
        held.append(piece)
        return f"\x00{len(held) - 1}\x00"

    def link(m: re.Match) -> str:
        url = m[2]
        if not _URL.fullmatch(url) or urlsplit(url).scheme not in ("", "http", "https"):
            return hold(html.escape(m[0]))
        return hold(f'<a href="{html.escape(url)}">{_emphasis(html.escape(m[1]))}</a>')

    text = str(text).replace("\x00", "")
    text = _CODE.sub(lambda m: hold(f"<code>{html.escape(m[1])}</code>"), text)
    text = _emphasis(html.escape(_LINK.sub(link, text)))
    while _HELD.search(text):  # a link's text may hold code
        text = _HELD.sub(lambda m: held[int(m[1])], text)
    return text


def _emphasis(escaped: str) -> str:
    return _EM.sub(r"<em>\1</em>", _STRONG.sub(r"<strong>\1</strong>", escaped))


def _section_html(sec: dict) -> str:
    """One section of a bench or sweep summary (``summary.json``): heading, text, table; the
    prose in the Markdown subset, the table's cells escaped."""
    out = [f"<h2>{prose_html(sec['heading'])}</h2>"]
    out += [f"<p>{prose_html(t)}</p>" for t in sec.get("text", [])]
    if sec.get("columns"):
        out.append(
            "<table><thead><tr>"
            + "".join(f"<th>{html.escape(str(c))}</th>" for c in sec["columns"])
            + "</tr></thead><tbody>"
            + "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                for r in sec["rows"]
            )
            + "</tbody></table>"
        )
    out += [f"<p>{prose_html(t)}</p>" for t in sec.get("after", [])]
    return "\n".join(out)


def build_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (or ``out``) for a run or bench directory; return its path."""
    d = Path(path)
    if (d / "bench.yaml").exists():
        body = _bench_body(d)
        title = f"selfplay bench · {d.name}"
    elif (d / "config.yaml").exists():
        body = _run_body(d)
        title = f"selfplay run · {d.name}"
    else:
        raise ConfigError(
            f"{d}: neither a run directory (config.yaml) nor a bench directory (bench.yaml)"
        )
    # One pass over the template: text put in for one key is never read for the other (a run
    # directory named ``__BODY__`` stays a title).
    fill = {"__TITLE__": html.escape(title), "__BODY__": body}
    page = re.sub("__TITLE__|__BODY__", lambda m: fill[m.group()], TEMPLATE)
    out = Path(out) if out else d / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(out, page)
    return out


def _bench_body(d: Path) -> str:
    path = d / "summary.json"
    if not path.exists():
        raise ConfigError(f"{d}: the bench has not finished (no summary.json)")
    summary = artifacts.read_json(path)  # a damaged file: a one-line error naming it
    parts = [f"<h2>{prose_html(summary['title'])}</h2>"]
    if summary.get("verdict"):
        verdict = prose_html(summary["verdict"])
        parts.append(f'<p class="verdict"><b>Verdict.</b> {verdict}</p>')
    parts += [
        f'<p class="warning"><b>Warning:</b> {prose_html(w)}</p>'
        for w in summary.get("warnings", [])
    ]
    parts += [f"<p>{prose_html(t)}</p>" for t in summary.get("intro", [])]
    parts += [_section_html(sec) for sec in summary["sections"]]
    for png in sorted(d.glob("*.png")):
        parts.append(
            f'<figure><img alt="{html.escape(_caption(png.stem))}" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"><figcaption>{html.escape(_caption(png.stem))}</figcaption></figure>'
        )
    return "\n".join(parts)


def _browser_row(s: dict, which: str) -> list:
    s = dict(s, set=which)
    s["steps"] = [[st["text"], bool(st["ok"]), st["why"]] for st in (s.get("steps") or [])]
    return [s.get(f) for f in FIELDS]


REASON_KINDS = 20
"""Kinds of rejection shown in the table; the rest are summed in one row."""


def _reasons_html(by_round: dict[int, list[str]]) -> str:
    """Rejection reasons by kind (rows, largest first) x rounds (columns), with a few of each
    kind's reasons as written: how many chains the filter dropped, and why."""
    groups = group_reasons(r for reasons in by_round.values() for r in reasons)
    if not groups:
        return "<p>No chain was rejected.</p>"
    per_round = {k: Counter(map(reason_group, reasons)) for k, reasons in by_round.items()}
    head = "".join(f"<th>iter {k}</th>" for k in by_round)
    rows = []
    for g in groups[:REASON_KINDS]:
        examples = "" if g.examples == [g.kind] else "<br>".join(map(html.escape, g.examples))
        rows.append(
            f"<tr><td>{html.escape(g.kind)}</td>"
            + "".join(f"<td>{c.get(g.kind, 0):,}</td>" for c in per_round.values())
            + f'<td>{g.count:,}</td><td class="examples">{examples}</td></tr>'
        )
    rest = groups[REASON_KINDS:]
    if rest:
        kinds = {g.kind for g in rest}
        rows.append(
            f"<tr><td>({len(rest)} other kinds)</td>"
            + "".join(
                f"<td>{sum(n for k, n in c.items() if k in kinds):,}</td>"
                for c in per_round.values()
            )
            + f"<td>{sum(g.count for g in rest):,}</td><td></td></tr>"
        )
    body = "".join(rows)
    return (
        '<table id="reasons"><thead><tr><th>rejected because (kind: numbers as N)</th>'
        f"{head}<th>total</th><th>e.g.</th></tr></thead><tbody>{body}</tbody></table>"
    )


CAPTIONS = {
    "paired_differences": "The paired differences the verdicts read: each compared arm's final "
    "in-distribution accuracy minus its reference's, one dot per seed, the mean with its 95% "
    "interval, zero and the equivalence margin",
    "accuracy_vs_tokens": "Greedy accuracy on held-out problems against training tokens spent after "
    "the seed model: every arm's mean, then each arm's seeds (thin) with their mean (bold)",
    "accuracy_by_difficulty": "Final greedy accuracy by difficulty, per arm (mean over seeds, each "
    "seed a dot, 95% interval cut at [0, 1])",
    "selfplay_yield": "Self-play arms per round: fraction of samples with the right answer (left) "
    "and chains kept for training (right)",
    "raw_repeat_epochs": "The data wall: in-distribution accuracy against passes over U",
}


def _caption(stem: str) -> str:
    return CAPTIONS.get(stem, stem.replace("_", " "))


def _run_body(d: Path) -> str:
    from selfplay.engine.artifacts import REQUIRED
    from selfplay.engine.rundir import missing_samples, read_metrics, round_dir
    from selfplay.views.run import range_warnings

    rows = read_metrics(d, REQUIRED)
    if not rows:
        raise ConfigError(f"{d}: no finished stage yet")
    # Values no run writes, and files a finished stage lacks, come first.
    missing = [missing_samples(d, r["iteration"], r) for r in rows]
    missing = [m for m in missing if m]
    flags = "".join(
        f'<p class="warning"><b>Warning:</b> {html.escape(w)}</p>'
        for w in range_warnings(rows) + missing
    )
    samples, by_round = [], {}
    for it in finished_iterations(d):
        generated = load_samples(d, it)
        by_round[it] = rejection_reasons(generated)
        samples += [_browser_row(s, "generated") for s in generated]
    for r in rows:
        # A run written before evaluation samples were kept has none; a damaged file is an error.
        if (round_dir(d, r["iteration"]) / "eval_samples.parquet").exists():
            samples += [_browser_row(s, "eval") for s in load_eval_samples(d, r["iteration"])]
    data = _safe_json({"fields": FIELDS, "rows": samples})
    config = (d / "config.yaml").read_text(errors="replace")
    return f"""{flags}
{_stages_html(d, rows)}
<h2>Rejection reasons per round</h2>
{_reasons_html(by_round)}
<details id="config"><summary>Config of this run (config.yaml)</summary><pre>{html.escape(config)}</pre></details>
<h2>Samples</h2>
{BROWSER}
<script type="application/json" id="samples-data">{data}</script>
<script>{BROWSER_JS}</script>
"""


def _figure(title: str, b64: str) -> str:
    t = html.escape(title)
    return f'<figure><img alt="{t}" src="data:image/png;base64,{b64}"><figcaption>{t}</figcaption></figure>'


def _stages_html(d: Path, rows: list[dict]) -> str:
    """Any run's per-stage table and its plots; a climb's table adds its final model, and its
    plots are the climb's (test accuracy by difficulty and round, the frontier against spend)."""
    from selfplay.views import climb as fr
    from selfplay.views.chains import frontier_threshold
    from selfplay.views.run import is_climb, range_warnings, run_warnings

    shown = set(range_warnings(rows))  # at the top of the page
    warnings = "".join(
        f'<p class="warning"><b>Warning:</b> {html.escape(w)}</p>'
        for w in run_warnings(rows)
        if w not in shown
    )
    legend = (
        "<b>pass / valid</b>: the round's samples with the right answer / a valid chain; "
        "<b>kept</b>: chains the filter kept for training; <b>acc dN</b>: greedy accuracy on "
        "held-out problems of difficulty N (· not measured)."
    )
    if not is_climb(rows):
        plots = "".join(_figure(t, b) for t, b in _run_plots(rows))
        return f"""
<h2>Per stage</h2>
{warnings}
{_summary_html(rows)}
<p class="legend">{legend}</p>
<div class="plots">{plots}</div>"""
    t = frontier_threshold(d)
    final = fr.read_final(d)
    stop = (
        f"<p><b>Stopped:</b> {html.escape(final['stop'])}.</p>"
        if final
        else "<p>Not finished (no final.json yet).</p>"
    )
    heatmap = "Greedy test accuracy by difficulty after each round (red box: practised)"
    climb = (
        f"Largest d with every difficulty 1..d at >= {t:g}, against cumulative training tokens "
        "and FLOPs (6N per trained token + 2N per generated, prefilled or scored one)"
    )
    figures = [
        _figure(heatmap, _png(fr.heatmap_figure(rows, final))),
        _figure(climb, _png(fr.frontier_figure(rows, t, final))),
    ]
    return f"""
<h2>Per stage</h2>
{warnings}
{stop}
{_summary_html(rows, final)}
<p class="legend">{legend} {html.escape(fr.LEGEND.format(t=t))}. A round evaluates up to its
longest practised difficulty + probe_ahead; the final model every evaluation difficulty.</p>
<div class="plots">{"".join(figures)}</div>"""


BAD_TITLE = "out of range: no run writes this value; its metrics.json is damaged or was edited"


def _acc_td(a: float | None) -> str:
    """A test-accuracy cell, shaded by its value (the table doubles as a heatmap); one out of
    [0, 1] is marked so, with its value."""
    from selfplay.views.run import fmt_rate, in_range

    if a is None:
        return '<td class="na" title="not measured">·</td>'
    if not in_range(a, rate=True):
        return f'<td class="acc bad" title="{BAD_TITLE}">{html.escape(fmt_rate(a))}</td>'
    return f'<td class="acc" style="background: rgba(42, 157, 74, {0.85 * a:.2f})">{a:.2f}</td>'


BROWSER = """
<div id="controls">
  <label>set <select id="f-set"><option value="generated">generated in rounds</option><option value="eval">evaluation (greedy, held-out)</option><option value="">all</option></select></label>
  <label>iteration <select id="f-iter"><option value="">all</option></select></label>
  <label>status <select id="f-status"><option value="">all</option></select></label>
  <label>difficulty <select id="f-diff"><option value="">all</option></select></label>
  <label>filter <select id="f-kept"><option value="">all</option><option value="kept">kept</option><option value="rejected">rejected</option></select></label>
  <label>chain <select id="f-chain"><option value="">all</option><option value="valid">valid</option><option value="invalid">invalid</option><option value="wrong-steps">right answer, wrong steps</option></select></label>
  <label>search <input id="f-search" type="search" placeholder="problem, text or reason"></label>
  <span id="f-problem-box" hidden>problem <b id="f-problem"></b> <button id="f-problem-clear">show all problems</button></span>
</div>
<div id="count"></div>
<div id="pager"><button id="prev">&larr; prev</button> <span id="page"></span> <button id="next">next &rarr;</button></div>
<div id="samples"></div>
"""

BROWSER_JS = r"""
(function () {
  const raw = JSON.parse(document.getElementById('samples-data').textContent);
  const F = {}; raw.fields.forEach((f, i) => F[f] = i);
  const rows = raw.rows, PAGE = 50;
  let page = 0, problem = null, shown = rows;
  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = String(text); return e; }
  function fill(sel, values) { [...new Set(values)].sort((a, b) => a > b ? 1 : -1).forEach(v => { const o = el('option', '', v); o.value = v; sel.appendChild(o); }); }
  fill($('f-iter'), rows.map(r => r[F.iteration])); fill($('f-status'), rows.map(r => r[F.status])); fill($('f-diff'), rows.map(r => r[F.difficulty]));
  function apply() {
    const it = $('f-iter').value, st = $('f-status').value, df = $('f-diff').value, kp = $('f-kept').value, q = $('f-search').value.toLowerCase();
    const set = $('f-set').value, ch = $('f-chain').value;
    shown = rows.filter(r => (!set || r[F.set] === set) && chainOk(r, ch) && (!it || String(r[F.iteration]) === it) && (!st || r[F.status] === st) && (!df || String(r[F.difficulty]) === df)
      && (!kp || (kp === 'kept') === r[F.kept]) && (!problem || r[F.problem_id] === problem)
      && (!q || (r[F.problem_id] + '\n' + r[F.text] + '\n' + r[F.filter_reason] + '\n' + (r[F.steps] || []).map(s => s[2]).join('\n')).toLowerCase().includes(q)));
    if (problem) shown = shown.slice().sort((a, b) => a[F.iteration] - b[F.iteration] || a[F.sample_idx] - b[F.sample_idx]);
    page = 0; render();
  }
  // Right answer, wrong steps: the final answer is correct but the chain is not valid.
  function lucky(r) { return r[F.status] === 'correct' && !r[F.valid]; }
  function chainOk(r, ch) { return !ch || (ch === 'wrong-steps' ? lucky(r) : (ch === 'valid') === !!r[F.valid]); }
  function card(r) {
    const c = el('div', 'sample ' + (lucky(r) ? 'lucky' : r[F.status]) + (r[F.kept] ? ' kept' : ' rejected'));
    const h = el('div', 'head');
    const pid = el('a', 'pid', r[F.problem_id]); pid.href = '#'; pid.title = 'history of this problem across iterations';
    pid.addEventListener('click', (ev) => { ev.preventDefault(); problem = r[F.problem_id]; $('f-problem').textContent = problem; $('f-problem-box').hidden = false; apply(); });
    h.append(el('span', 'iter', (r[F.set] === 'eval' ? 'eval of checkpoint ' : 'iter ') + r[F.iteration]), pid, el('span', 'meta', '#' + r[F.sample_idx] + ' · d' + r[F.difficulty] + (r[F.tokens] == null ? '' : ' · ' + r[F.tokens] + ' tok') + (r[F.finish_reason] === 'length' ? ' · TRUNCATED' : '')),
      el('span', 'status ' + r[F.status], r[F.status]), el('span', 'origin', r[F.origin] && r[F.origin] !== 'sampled' ? r[F.origin] + (r[F.origin] === 'rationalized' ? ' from ' + r[F.generation_prompt] : '') : ''), el('span', 'ans', 'answer ' + (r[F.answer] === null ? '–' : r[F.answer]) + ' · gold ' + r[F.gold]));
    if (lucky(r)) h.appendChild(el('span', 'flag', 'right answer, wrong steps'));
    c.appendChild(h);
    const steps = r[F.steps] || [];
    const ol = el('ol', 'steps');
    steps.forEach(s => { const li = el('li', s[1] ? 'ok' : 'bad'); li.append(el('span', 'mark', s[1] ? '✓' : '✗'), el('code', '', s[0] || '(missing)')); if (s[2]) li.appendChild(el('span', 'why', s[2])); ol.appendChild(li); });
    if (!steps.length) c.appendChild(el('pre', 'text', r[F.text])); else c.appendChild(ol);
    c.appendChild(el('div', 'decision', r[F.set] === 'eval' ? 'held-out evaluation (greedy); not trained on' : r[F.reward] != null ? 'reward ' + r[F.reward].toFixed(2) + ' · ' + r[F.filter_reason] : r[F.kept] ? 'kept' : 'rejected: ' + r[F.filter_reason]));
    return c;
  }
  function render() {
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    $('count').textContent = shown.length.toLocaleString('en-US') + ' of ' + rows.length.toLocaleString('en-US') + ' samples';
    $('page').textContent = 'page ' + (page + 1) + ' of ' + pages;
    const box = $('samples'); box.replaceChildren(...shown.slice(page * PAGE, (page + 1) * PAGE).map(card));
  }
  ['f-set', 'f-chain', 'f-iter', 'f-status', 'f-diff', 'f-kept'].forEach(id => $(id).addEventListener('change', apply));
  $('f-search').addEventListener('input', apply);
  $('f-problem-clear').addEventListener('click', () => { problem = null; $('f-problem-box').hidden = true; apply(); });
  $('prev').addEventListener('click', () => { page--; render(); });
  $('next').addEventListener('click', () => { page++; render(); });
  apply();
})();
"""

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>__TITLE__</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 13px; } th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; } th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: .5em 1em .5em 0; } figure img { max-width: 100%; } .legend { font-size: 12px; color: #555; max-width: 900px; } figcaption { font-size: 12px; color: #555; }
#controls { display: flex; flex-wrap: wrap; gap: .8em; align-items: center; margin: .5em 0; } #count { font-weight: 600; margin: .4em 0; }
.sample { border: 1px solid #ddd; border-left: 5px solid #bbb; border-radius: 4px; padding: .4em .7em; margin: .45em 0; }
.sample.correct { border-left-color: #2a9d4a; } .sample.lucky { border-left-color: #e07000; } .flag { color: #b35900; font-weight: 600; } .sample.wrong { border-left-color: #d33; } .sample.unparseable { border-left-color: #e0a100; }
.head { display: flex; flex-wrap: wrap; gap: .9em; font-size: 13px; } .pid { font-weight: 600; } .status.correct { color: #2a9d4a; } .status.wrong { color: #d33; } .status.unparseable { color: #b07d00; }
.steps { margin: .3em 0; padding-left: 2.2em; font-size: 13px; } .steps li.bad { background: #fde8e8; } .steps .mark { display: inline-block; width: 1.3em; } li.ok .mark { color: #2a9d4a; } li.bad .mark { color: #d33; font-weight: 700; }
.why { color: #b22; margin-left: 1em; font-style: italic; } .decision { font-size: 12px; color: #555; } .kept .decision { color: #2a9d4a; }
pre.text { white-space: pre-wrap; word-break: break-all; background: #f8f8f8; padding: .3em; margin: .3em 0; }
.steps code { white-space: pre-wrap; overflow-wrap: anywhere; } .sample { overflow-wrap: anywhere; }
td.na { color: #aaa; text-align: center; } td.examples { text-align: left; font-size: 12px; color: #555; } .wide { overflow-x: auto; } tr.final td { font-weight: 600; }
td.bad { background: #fde8e8; color: #b22; font-weight: 600; }
.verdict { background: #eef6ee; border-left: 4px solid #2a9d4a; padding: .4em .7em; } .warning { background: #fff4e0; border-left: 4px solid #e0a100; padding: .3em .7em; }
</style></head><body>
<h1>__TITLE__</h1>
__BODY__
</body></html>
"""
