"""``selfplay report DIR`` -> ``DIR/report.html``: one self-contained page (no server, no CDN).

For a run directory: the per-iteration summary, plots, and a sample browser (filter by iteration,
status, difficulty and filter decision; free-text search; per-step marks; a problem's history across
iterations; paginated, so 50,000 samples stay responsive). For a bench directory: the arms' tables
and plots. Model text is data, never markup: it travels as JSON (with ``<``, ``>``, ``&`` escaped)
and is put on the page with ``textContent`` only.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from selfplay import artifacts
from selfplay.config import ConfigError
from selfplay.view import finished_iterations, load_samples

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
]


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


def _line_plot(
    title: str, xs: list, series: dict[str, list], xlabel: str, ylabel: str
) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for label, ys in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return title, _png(fig)


def _run_plots(rows: list[dict]) -> list[tuple[str, str]]:
    diffs = sorted({d for r in rows for d in r["eval"]["accuracy"] if d != "all"}, key=int)
    acc = {f"{d} digits": [r["eval"]["accuracy"].get(d) for r in rows] for d in diffs}
    out = [
        _line_plot(
            "Accuracy by difficulty",
            [r["iteration"] for r in rows],
            acc,
            "iteration (0 = seed model)",
            "greedy accuracy (held-out)",
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
                "Sample pass rate by difficulty",
                [r["iteration"] for r in its],
                rates,
                "iteration",
                "sample pass rate",
            )
        )
    return out


def _summary_html(rows: list[dict]) -> str:
    diffs = sorted({d for r in rows for d in r["eval"]["accuracy"] if d != "all"}, key=int)
    head = [
        "stage",
        "pass rate",
        "valid rate",
        "kept",
        *[f"acc d{d}" for d in diffs],
        "train tokens",
        "generated tokens",
        "seconds",
    ]
    body = []
    for r in rows:
        g, f = r.get("generate", {}), r.get("filter", {})
        cells = [
            r["stage"],
            g.get("pass_rate"),
            g.get("valid_rate"),
            f.get("kept"),
            *[r["eval"]["accuracy"].get(d) for d in diffs],
            r["train"]["tokens"],
            g.get("generated_tokens", 0),
            r["seconds"]["total"],
        ]
        body.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def _cell(c) -> str:
    if c is None:
        return "–"
    if isinstance(c, float):
        return f"{c:.0f}" if c > 10 else f"{c:.3f}"
    if isinstance(c, int):
        return f"{c:,}"
    return html.escape(str(c))


def _section_html(sec: dict) -> str:
    """One section of a bench or sweep summary (``summary.json``): heading, text, table."""
    out = [f"<h2>{html.escape(sec['heading'])}</h2>"]
    out += [f"<p>{html.escape(t)}</p>" for t in sec.get("text", [])]
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
    out += [f"<p>{html.escape(t)}</p>" for t in sec.get("after", [])]
    return "\n".join(out)


def build_report(path: str | Path) -> Path:
    """Write ``report.html`` into a run or bench directory; return its path."""
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
    page = TEMPLATE.replace("__TITLE__", html.escape(title)).replace("__BODY__", body)
    out = d / "report.html"
    artifacts.write_text(out, page)
    return out


def _bench_body(d: Path) -> str:
    path = d / "summary.json"
    if not path.exists():
        raise ConfigError(f"{d}: the bench has not finished (no summary.json)")
    summary = artifacts.read_json(path)  # a damaged file: a one-line error naming it
    parts = [f"<h2>{html.escape(summary['title'])}</h2>"]
    parts += [f"<p>{html.escape(t)}</p>" for t in summary.get("intro", [])]
    parts += [_section_html(sec) for sec in summary["sections"]]
    for png in sorted(d.glob("*.png")):
        parts.append(
            f'<figure><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"><figcaption>{html.escape(png.stem)}</figcaption></figure>'
        )
    return "\n".join(parts)


def _run_body(d: Path) -> str:
    from selfplay.rundir import read_metrics

    rows = read_metrics(d)
    if not rows:
        raise ConfigError(f"{d}: no finished stage yet")
    samples = []
    for it in finished_iterations(d):
        for s in load_samples(d, it):
            s["steps"] = [[st["text"], bool(st["ok"]), st["why"]] for st in (s.get("steps") or [])]
            samples.append([s.get(f) for f in FIELDS])
    plots = "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{b}"><figcaption>{html.escape(t)}</figcaption></figure>'
        for t, b in _run_plots(rows)
    )
    data = _safe_json({"fields": FIELDS, "rows": samples})
    return f"""
<h2>Per stage</h2>
{_summary_html(rows)}
<div class="plots">{plots}</div>
<h2>Samples</h2>
{BROWSER}
<script type="application/json" id="samples-data">{data}</script>
<script>{BROWSER_JS}</script>
"""


BROWSER = """
<div id="controls">
  <label>iteration <select id="f-iter"><option value="">all</option></select></label>
  <label>status <select id="f-status"><option value="">all</option></select></label>
  <label>difficulty <select id="f-diff"><option value="">all</option></select></label>
  <label>filter <select id="f-kept"><option value="">all</option><option value="kept">kept</option><option value="rejected">rejected</option></select></label>
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
    shown = rows.filter(r => (!it || String(r[F.iteration]) === it) && (!st || r[F.status] === st) && (!df || String(r[F.difficulty]) === df)
      && (!kp || (kp === 'kept') === r[F.kept]) && (!problem || r[F.problem_id] === problem)
      && (!q || (r[F.problem_id] + '\n' + r[F.text] + '\n' + r[F.filter_reason]).toLowerCase().includes(q)));
    if (problem) shown = shown.slice().sort((a, b) => a[F.iteration] - b[F.iteration] || a[F.sample_idx] - b[F.sample_idx]);
    page = 0; render();
  }
  function card(r) {
    const c = el('div', 'sample ' + r[F.status] + (r[F.kept] ? ' kept' : ' rejected'));
    const h = el('div', 'head');
    const pid = el('a', 'pid', r[F.problem_id]); pid.href = '#'; pid.title = 'history of this problem across iterations';
    pid.addEventListener('click', (ev) => { ev.preventDefault(); problem = r[F.problem_id]; $('f-problem').textContent = problem; $('f-problem-box').hidden = false; apply(); });
    h.append(el('span', 'iter', 'iter ' + r[F.iteration]), pid, el('span', 'meta', '#' + r[F.sample_idx] + ' · d' + r[F.difficulty] + ' · ' + r[F.tokens] + ' tok' + (r[F.finish_reason] === 'length' ? ' · TRUNCATED' : '')),
      el('span', 'status ' + r[F.status], r[F.status]), el('span', 'origin', r[F.origin] && r[F.origin] !== 'sampled' ? r[F.origin] + (r[F.origin] === 'rationalized' ? ' from ' + r[F.generation_prompt] : '') : ''), el('span', 'ans', 'answer ' + (r[F.answer] === null ? '–' : r[F.answer]) + ' · gold ' + r[F.gold]));
    c.appendChild(h);
    const steps = r[F.steps] || [];
    const ol = el('ol', 'steps');
    steps.forEach(s => { const li = el('li', s[1] ? 'ok' : 'bad'); li.append(el('span', 'mark', s[1] ? '✓' : '✗'), el('code', '', s[0] || '(missing)')); if (s[2]) li.appendChild(el('span', 'why', s[2])); ol.appendChild(li); });
    if (!steps.length) c.appendChild(el('pre', 'text', r[F.text])); else c.appendChild(ol);
    c.appendChild(el('div', 'decision', r[F.kept] ? 'kept' : 'rejected: ' + r[F.filter_reason]));
    return c;
  }
  function render() {
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    $('count').textContent = shown.length.toLocaleString('en-US') + ' of ' + rows.length.toLocaleString('en-US') + ' samples';
    $('page').textContent = 'page ' + (page + 1) + ' of ' + pages;
    const box = $('samples'); box.replaceChildren(...shown.slice(page * PAGE, (page + 1) * PAGE).map(card));
  }
  ['f-iter', 'f-status', 'f-diff', 'f-kept'].forEach(id => $(id).addEventListener('change', apply));
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
figure { display: inline-block; margin: .5em 1em .5em 0; } figure img { max-width: 560px; } figcaption { font-size: 12px; color: #555; }
#controls { display: flex; flex-wrap: wrap; gap: .8em; align-items: center; margin: .5em 0; } #count { font-weight: 600; margin: .4em 0; }
.sample { border: 1px solid #ddd; border-left: 5px solid #bbb; border-radius: 4px; padding: .4em .7em; margin: .45em 0; }
.sample.correct { border-left-color: #2a9d4a; } .sample.wrong { border-left-color: #d33; } .sample.unparseable { border-left-color: #e0a100; }
.head { display: flex; flex-wrap: wrap; gap: .9em; font-size: 13px; } .pid { font-weight: 600; } .status.correct { color: #2a9d4a; } .status.wrong { color: #d33; } .status.unparseable { color: #b07d00; }
.steps { margin: .3em 0; padding-left: 2.2em; font-size: 13px; } .steps li.bad { background: #fde8e8; } .steps .mark { display: inline-block; width: 1.3em; } li.ok .mark { color: #2a9d4a; } li.bad .mark { color: #d33; font-weight: 700; }
.why { color: #b22; margin-left: 1em; font-style: italic; } .decision { font-size: 12px; color: #555; } .kept .decision { color: #2a9d4a; }
pre.text { white-space: pre-wrap; word-break: break-all; background: #f8f8f8; padding: .3em; margin: .3em 0; }
</style></head><body>
<h1>__TITLE__</h1>
__BODY__
</body></html>
"""
