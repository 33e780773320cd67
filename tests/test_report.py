"""The terminal view and the HTML report, on synthetic run directories (no model needed).

Tests marked ``browser`` open the page in Debian's headless Chromium through Playwright."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from selfplay.cli import main
from selfplay.config import ConfigError
from selfplay.engine import artifacts
from selfplay.views.html import _safe_json, build_report

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'


def _sample(pid, idx, status, text, kept, reason, steps=()):
    return {
        "problem_id": pid, "difficulty": len(pid.split("+")[0]), "prompt": f"Q:{pid}=", "gold": "5", "sample_idx": idx,
        "text": text, "tokens": len(text) + 1, "finish_reason": "stop", "status": status, "answer": text.split("|")[-1][:10],
        "valid": status == "correct" and all(s[1] for s in steps), "why": "" if status == "correct" else "wrong answer",
        "first_bad_step": None, "steps": [{"text": t, "ok": ok, "why": why} for t, ok, why in steps],
        "kept": kept, "filter_reason": reason,
    }  # fmt: skip


def make_run(root: Path, n_extra: int = 0) -> Path:
    d = root / "run"
    (d / "iter_001").mkdir(parents=True)
    (d / "iter_002").mkdir()
    (d / "config.yaml").write_text("name: run\n")
    ev = {"accuracy": {"1": 0.5, "2": 0.25, "all": 0.375}}
    base = {"train": {"tokens": 100}, "seconds": {"total": 1.0}, "cumulative": {}}
    artifacts.write_json(
        d / "seed" / "metrics.json", {"stage": "seed", "iteration": 0, "eval": ev, **base}
    )
    for k in (1, 2):
        gen = {
            "pass_rate": 0.5,
            "valid_rate": 0.4,
            "generated_tokens": 50,
            "pass_rate_by_difficulty": {"1": 0.5},
        }
        artifacts.write_json(
            d / f"iter_{k:03d}" / "metrics.json",
            {
                "stage": f"iter_{k:03d}",
                "iteration": k,
                "eval": ev,
                "generate": gen,
                "filter": {"kept": 1},
                **base,
            },
        )
    # The same problem solved the same way in both iterations: its history spans them.
    good = _sample(
        "2+3", 0, "correct", "2+3=5 c0|5", True, "kept", [("2+3=5 c0", True, ""), ("5", True, "")]
    )
    it1 = [
        good,
        _sample(
            "2+3",
            1,
            "wrong",
            "2+3=6 c0|6",
            False,
            "wrong: wrong answer",
            [("2+3=6 c0", False, "wrong sum: 2+3=5, not 6"), ("6", True, "")],
        ),
        _sample("14+1", 0, "unparseable", HOSTILE, False, "unparseable: no final answer"),
    ]
    it2 = [dict(good)]
    it2 += [
        _sample(f"{i % 9}+{i % 7}", i, "wrong", f"x|{i}", False, "wrong: wrong answer")
        for i in range(n_extra)
    ]
    artifacts.write_parquet(d / "iter_001" / "samples.parquet", it1)
    artifacts.write_parquet(d / "iter_002" / "samples.parquet", it2)
    return d


def test_safe_json_cannot_close_the_script_element():
    text = _safe_json({"t": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"t": "</script><!-- & \u2028"}


def test_report_is_self_contained_and_escapes_model_text(tmp_path):
    out = build_report(make_run(tmp_path))
    page = out.read_text()
    assert HOSTILE not in page and "<script>window.__pwned" not in page
    assert "http://" not in page and "https://" not in page  # no CDN, no network
    assert page.count("<script") == 2  # the data island and the page's own code
    assert "data:image/png;base64," in page


def test_report_labels_rationalized_samples_and_writes_nothing_else(tmp_path):
    d = make_run(tmp_path)
    rows = artifacts.read_parquet(d / "iter_002" / "samples.parquet")
    rows[0] |= {"origin": "rationalized", "generation_prompt": "H:5 Q:2+3="}
    artifacts.write_parquet(d / "iter_002" / "samples.parquet", rows)
    before = {p for p in d.rglob("*")}
    page = build_report(d).read_text()
    data = json.loads(page.split('id="samples-data">')[1].split("</script>")[0])
    f = data["fields"]
    labelled = [r for r in data["rows"] if r[f.index("origin")] == "rationalized"]
    assert len(labelled) == 1 and labelled[0][f.index("generation_prompt")] == "H:5 Q:2+3="
    assert {p for p in d.rglob("*")} - before == {d / "report.html"}  # no metrics.jsonl written
    assert ".steps code { white-space: pre-wrap; overflow-wrap: anywhere; }" in page


def test_report_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="neither a run directory"):
        build_report(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["inspect", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_inspect_terminal_view(tmp_path, capsys):
    d = make_run(tmp_path)
    assert main(["inspect", str(d), "--iter", "1", "--status", "wrong"]) == 0
    out = capsys.readouterr().out
    assert "wrong sum: 2+3=5, not 6" in out and "rejected: wrong: wrong answer" in out
    assert "1 of 1 matching samples" in out
    assert main(["inspect", str(d), "--problem", "2+3", "--compare"]) == 0
    out = capsys.readouterr().out
    assert "iter 1" in out and "iter 2" in out
    assert main(["inspect", str(d), "--iter", "7"]) == 2


# ------------------------------------------------------------------------------------------------
# In a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def page():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed (make test-browser installs it)"
    )
    if not CHROMIUM:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        args = [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        pg = browser.new_page()
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg
        browser.close()
        assert not errors, errors


@pytest.mark.browser
def test_browser_filters_search_and_history(tmp_path, page):
    out = build_report(make_run(tmp_path))
    page.goto(out.as_uri())
    assert page.inner_text("#count") == "4 of 4 samples"
    page.select_option("#f-status", "wrong")
    assert page.inner_text("#count") == "1 of 4 samples"
    card = page.locator(".sample").first
    assert "wrong sum: 2+3=5, not 6" in card.inner_text()
    assert page.locator(".sample li.bad").count() == 1  # the failed step is marked
    page.select_option("#f-status", "")
    page.select_option("#f-kept", "kept")
    assert page.inner_text("#count") == "2 of 4 samples"
    page.select_option("#f-kept", "")
    page.fill("#f-search", "14+1")
    assert page.inner_text("#count") == "1 of 4 samples"
    page.fill("#f-search", "")
    # A problem's history across iterations.
    page.locator(".sample a.pid", has_text="2+3").first.click()
    assert page.inner_text("#count") == "3 of 4 samples"
    iters = page.locator(".sample .iter").all_inner_texts()
    assert iters == ["iter 1", "iter 1", "iter 2"]
    page.click("#f-problem-clear")
    assert page.inner_text("#count") == "4 of 4 samples"


@pytest.mark.browser
def test_browser_model_text_is_inert(tmp_path, page):
    out = build_report(make_run(tmp_path))
    page.goto(out.as_uri())
    page.fill("#f-search", "pwned")
    assert page.inner_text("#count") == "1 of 4 samples"
    assert HOSTILE in page.locator(".sample pre.text").inner_text()  # shown as text
    assert page.evaluate("window.__pwned") is None  # and never run
    assert page.locator("img[src=x]").count() == 0


@pytest.mark.browser
def test_browser_paginates_fifty_thousand_samples(tmp_path, page):
    out = build_report(make_run(tmp_path, n_extra=50_000))
    page.goto(out.as_uri())
    assert page.inner_text("#count") == "50,004 of 50,004 samples"
    assert page.locator(".sample").count() == 50  # only one page is in the DOM
    page.select_option("#f-iter", "1")
    assert page.inner_text("#count") == "3 of 50,004 samples"
    page.select_option("#f-iter", "")
    page.click("#next")
    assert page.inner_text("#page").startswith("page 2 of")


def test_bench_directory_report_shows_the_arms_table(tmp_path):
    d = tmp_path / "bench"
    d.mkdir()
    (d / "bench.yaml").write_text("name: b\n")
    summary = {
        "kind": "bench",
        "title": "Bench `b`",
        "intro": ["Seeds [0]."],
        "sections": [
            {
                "heading": "At equal training tokens",
                "columns": ["arm", "acc in"],
                "rows": [["raw-repeat", "0.705 ± 0.145"], ["<b>x</b>", "1"]],
            }
        ],
        "plots": [],
    }
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "accuracy_vs_tokens.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    page = build_report(d).read_text()
    # The page renders the bench's summary (data), the same one report.md is rendered from.
    assert "<td>raw-repeat</td><td>0.705 ± 0.145</td>" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert page.count("data:image/png;base64,") == 1
    from selfplay.bench.report import render_markdown

    assert "| raw-repeat | 0.705 ± 0.145 |" in render_markdown(summary)
    (d / "summary.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        build_report(d)
    (d / "summary.json").unlink()
    with pytest.raises(ConfigError, match="has not finished"):
        build_report(d)


def test_bench_prose_renders_its_markdown_and_escapes_everything_else(tmp_path):
    d = tmp_path / "bench"
    d.mkdir()
    (d / "bench.yaml").write_text("name: b\n")
    summary = {
        "title": "Bench `b`",
        "verdict": "selfplay-verified is **x** against `raw<1>` <script>alert(1)</script>",
        "warnings": [
            "see [the results](docs/results.md#bench) and [this](javascript:alert%281%29)"
        ],
        "intro": ["*p*: a paired test; 2 * 3 * 4 stays as it is"],
        "sections": [
            {
                "heading": "Paired with `raw-fresh`",
                "text": ["**solved**: <img src=x onerror=alert(1)>"],
                "columns": ["arm", "verdict"],
                "rows": [["**arm**", "`cell`"]],  # table cells are data: shown as written
            }
        ],
    }
    (d / "summary.json").write_text(json.dumps(summary))
    page = build_report(d).read_text()
    assert "<h2>Bench <code>b</code></h2>" in page
    assert "selfplay-verified is <strong>x</strong> against <code>raw&lt;1&gt;</code>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert '<a href="docs/results.md#bench">the results</a>' in page
    assert "[this](javascript:alert%281%29)" in page and 'href="javascript' not in page
    assert "<em>p</em>: a paired test; 2 * 3 * 4 stays as it is" in page
    assert "<h2>Paired with <code>raw-fresh</code></h2>" in page
    assert "<strong>solved</strong>: &lt;img src=x onerror=alert(1)&gt;" in page
    assert "<td>**arm**</td><td>`cell`</td>" in page and "<img src=x" not in page


def test_a_broken_run_says_so():
    """A run that looks finished but learned nothing ends with warnings that say what to change."""
    from selfplay.views.run import run_warnings

    seed = {
        "stage": "seed", "iteration": 0, "train": {"tokens": 100},
        "eval": {"accuracy": {"1": 0.0, "2": 0.0, "all": 0.0}, "truncated": {"all": 1.0}},
    }  # fmt: skip
    round1 = {
        "stage": "iter_001", "iteration": 1, "source": "selfplay", "filter": {"kept": 0},
        "train": {"tokens": 0}, "eval": {"accuracy": {"1": 0.0, "all": 0.0}},
    }  # fmt: skip
    warnings = run_warnings([seed, round1])
    assert len(warnings) == 4
    assert warnings[0].startswith("the seed model solves nothing")
    assert "seed: every evaluation generation was cut" in warnings[1]
    assert warnings[2].startswith("iter_001: the filter kept nothing")
    assert warnings[3].startswith("iter_001: trained 0 tokens")
    healthy = dict(seed, eval={"accuracy": {"1": 0.5, "all": 0.5}, "truncated": {"all": 0.1}})
    assert run_warnings([healthy]) == []


def test_out_of_range_metrics_are_flagged_in_summary_and_report(tmp_path, capsys):
    d = make_run(tmp_path)

    def edit(stage, change):
        m = artifacts.read_json(d / stage / "metrics.json")
        change(m)
        (d / stage / "metrics.json").write_text(json.dumps(m))  # NaN as Python writes it

    edit("seed", lambda m: m["eval"]["accuracy"].update({"1": 1e308}))
    edit("iter_001", lambda m: (m["eval"]["accuracy"].update({"2": -3}), m["train"].update(tokens=-5)))  # fmt: skip
    edit("iter_002", lambda m: m["eval"].update(accuracy_in=float("nan")))
    assert main(["summary", str(d)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the warnings wrap where they like
    for stage, values in [
        ("seed", "eval.accuracy.1 = 1e+308"),
        ("iter_001", "eval.accuracy.2 = -3, train.tokens = -5"),
        ("iter_002", "eval.accuracy_in = nan"),
    ]:
        assert f"warning: {stage}: metrics.json holds values out of range ({values};" in out
        assert f"with --redo {stage} redoes the stage" in out
    assert "1e+308 (out of range)" in out and "-5 (out of range)" in out
    assert "nan (out of range)" in out
    page = build_report(d).read_text()
    flagged = page.index("seed: metrics.json holds values out of range")
    assert flagged < page.index("<h2>Per stage</h2>")  # at the top
    assert page.count("metrics.json holds values out of range") == 3  # once each
    table = page.split('<table id="stages">')[1].split("</table>")[0]
    assert '<td class="acc bad"' in table and "1e+308 (out of range)" in table
    assert '<td class="bad"' in table and "-5 (out of range)" in table
    # --format json keeps the values as recorded.
    assert main(["summary", str(d), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["acc d1"] == 1e308 and rows[1]["train tok"] == -5
