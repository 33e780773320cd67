"""A frontier run's views: ``selfplay inspect``, ``summary``, ``report.html`` and the figures of
``scripts/climb_summary.py``, on one tiny real climb (two rounds, the verifier as the filter)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from selfplay.cli import main
from selfplay.engine import artifacts
from selfplay.views.climb import write_figures
from selfplay.views.html import build_report
from tests.test_frontier import TINY
from tests.test_report import page  # noqa: F401  (page: fixture)

REPO = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def climb(tmp_path_factory) -> Path:
    """Threshold 0.9 and a barely trained seed: both rounds practise 1 digit, and the verifier
    keeps the few right labels and rejects the rest (``not verified``)."""
    data = json.loads(json.dumps(TINY))
    data["output_dir"] = str(tmp_path_factory.mktemp("climb") / "run")
    data["loop"]["problems_per_iter"] = 40
    data["loop"]["frontier"]["threshold"] = 0.9
    # A barely trained model with the answer loss writes digits (wrong ones), so labels carry
    # digit marks; with the sequence loss it may write prompt characters (unparseable).
    data["train"]["loss"] = "answer"
    data["filters"]["verified"] = True
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a ~1M-parameter model: more threads only contend on a small box
    path = Path(data["output_dir"]).parent / "climb.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        assert main(["run", str(path), "--no-progress"]) == 0  # ends with the frontier table
    finally:
        torch.set_num_threads(threads)
    return Path(data["output_dir"])


def _labels(d: Path, k: int) -> list[dict]:
    """Round ``k``'s labels: the samples chosen, one per practised problem (here every sample:
    one greedy answer per problem)."""
    return [
        r for r in artifacts.read_parquet(d / f"iter_{k:03d}" / "samples.parquet") if r["label"]
    ]


def _matching(out: str) -> int:
    return int(re.search(r"(\d+) matching samples shown", out).group(1))


def test_labels_carry_their_verdict(climb):
    for k in (1, 2):
        for r in _labels(climb, k):
            assert r["status"] in ("correct", "wrong", "unparseable") and r["gold"]
            if r["status"] != "unparseable":  # one mark per answer digit (reversed, answer only)
                assert r["steps"]
            assert r["kept"] == (r["status"] == "correct")  # filters.verified


def test_inspect_shows_a_rounds_labels_with_marks_and_filters(climb, capsys):
    d = str(climb)
    metrics = artifacts.read_json(climb / "iter_002" / "metrics.json")
    label = metrics["filter"]
    labels = _labels(climb, 2)
    n_correct = sum(r["status"] == "correct" for r in labels)
    assert main(["inspect", d, "--limit", "3"]) == 0  # the last round by default
    out = capsys.readouterr().out
    fr = metrics["frontier"]
    header = out.splitlines()[0]
    assert header.startswith(
        f"round 2 (labels by the model of round 1): probe frontier {fr['probe_solved']} "
    )
    assert f"practised {', '.join(map(str, fr['practice']))};" in header
    assert (
        f"labels correct {label['label_accuracy']:.2f} ({n_correct} of 40), kept {label['kept']}"
        in header
    )
    assert "✗" in out and "gold " in out  # the digit marks
    assert "3 of 40 matching samples shown (round 2: 40 samples)" in out

    def count(*args) -> int:
        assert main(["inspect", d, "--limit", "1", *args]) == 0
        return _matching(capsys.readouterr().out)

    assert count("--decision", "kept") == label["kept"] == sum(r["kept"] for r in labels)
    assert count("--decision", "rejected") == 40 - label["kept"]
    assert count("--valid") == n_correct and count("--invalid") == 40 - n_correct
    assert count("--reason", "not verified") == label["rejected"]["not verified"]
    wrong_digit = sum(any("wrong digit" in s["why"] for s in r["steps"]) for r in labels)
    assert count("--reason", "wrong digit") == wrong_digit > 0
    assert count("--wrong-steps") == 0  # an answer-only label is right iff every digit is
    assert count("--iter", "1") == len(_labels(climb, 1))
    assert count("--status", "correct", "--iter", "1") == sum(
        r["status"] == "correct" for r in _labels(climb, 1)
    )
    pid = labels[0]["problem_id"]
    assert main(["inspect", d, "--problem", pid, "--compare"]) == 0
    assert f"iter 2 · {pid}" in capsys.readouterr().out
    assert main(["inspect", d, "--iter", "9"]) == 2
    capsys.readouterr()
    # The round's greedy test generations are kept as in any run: the test accuracy can be read.
    assert main(["inspect", d, "--eval", "--limit", "1"]) == 0
    assert "matching samples shown (checkpoint 2 evaluation" in capsys.readouterr().out


def test_summary_prints_the_frontier_per_round(climb, capsys):
    assert main(["summary", str(climb)]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(x) for x in (climb / "metrics.jsonl").read_text().splitlines()]
    final = artifacts.read_json(climb / "final.json")
    lines = out.splitlines()
    assert "probe frontier" in out and "labels correct" in out and "test frontier" in out
    for r in rows:
        line = next(x for x in lines if f" {r['stage']} " in x)
        assert f"{r['train']['tokens']:,}" in line  # the stage's own tokens
        acc = [f"{a:.2f}" for k, a in r["eval"]["accuracy"].items() if k != "all"]
        assert re.search(r"\s+\S*\s*".join(re.escape(a) for a in acc), line)
        if r["iteration"]:
            assert (
                f"{r['filter']['kept']}/40" in line
                and f"{r['filter']['label_accuracy']:.2f}" in line
            )
    last = lines[-1]
    assert last.startswith(f"final ({final['model']}): stopped: {final['stop']}; test frontier")


def test_report_has_the_frontier_section_and_browses_the_labels(climb, tmp_path):
    before = {p for p in climb.rglob("*")}
    page_ = build_report(climb, tmp_path / "report.html").read_text()
    assert {p for p in climb.rglob("*")} == before
    table = page_.split('<table id="stages">')[1].split("</table>")[0]
    rows = [json.loads(x) for x in (climb / "metrics.jsonl").read_text().splitlines()]
    final = artifacts.read_json(climb / "final.json")
    assert table.count("<tr") == 1 + len(rows) + 1  # header, the stages, the final model
    measured = (
        sum(len(r["eval"]["accuracy"]) - 1 for r in rows) + len(final["eval"]["accuracy"]) - 1
    )
    assert table.count('<td class="acc"') == measured
    assert page_.count("data:image/png;base64,") == 2  # the heatmap, the frontier vs compute
    assert "Per stage" in page_ and "probe frontier" in table  # one table, a climb's columns
    data = json.loads(page_.split('id="samples-data">')[1].split("</script>")[0])
    f = data["fields"]
    labels = _labels(climb, 1) + _labels(climb, 2)
    generated = [r for r in data["rows"] if r[f.index("set")] == "generated"]
    assert len(generated) == len(labels) == 80
    got = [(r[f.index("problem_id")], r[f.index("kept")], r[f.index("status")]) for r in generated]
    assert got == [(r["problem_id"], r["kept"], r["status"]) for r in labels]
    assert all(r[f.index("steps")] for r in data["rows"])  # the digit marks travel


def _synthetic_climb(rounds: int, top: int) -> list[dict]:
    """A long climb's metrics rows: one more digit solved per round, up to ``top``."""
    rows = []
    for k in range(rounds + 1):
        reach = min(top, 4 + k + 2)
        acc = {str(d): (1.0 if d <= 4 + k else 0.3) for d in range(1, reach + 1)}
        rows.append({
            "stage": "seed" if k == 0 else f"iter_{k:03d}", "iteration": k,
            "eval": {"accuracy": {**acc, "all": 0.8}, "solved": 4 + k},
            "frontier": {"trained_max": 4 + k, **({"probe_solved": 3 + k, "practice": [4 + k]} if k else {})},
            "cumulative": {"train_tokens": 10**6 * (k + 3), "flops": 6e12 * (k + 3)},
        })  # fmt: skip
    return rows


def test_climb_summary_writes_small_figures(climb, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "climb_summary", REPO / "scripts/climb_summary.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(climb), str(tmp_path / "tiny")]) == 0
    md = (tmp_path / "tiny.md").read_text()
    assert json.loads((tmp_path / "tiny.json").read_text())["figures"] == [
        "tiny_heatmap.png",
        "tiny_frontier.png",
    ]
    # A climb of 16 rounds over 24 digits stays small too.
    big = write_figures(_synthetic_climb(16, 24), 0.9, None, tmp_path / "big")
    for p in [tmp_path / "tiny_heatmap.png", tmp_path / "tiny_frontier.png", *big]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size < 100_000, p
    assert "](tiny_heatmap.png)" in md and "](tiny_frontier.png)" in md


@pytest.mark.browser
def test_browser_frontier_report(climb, tmp_path, page):  # noqa: F811
    out = build_report(climb, tmp_path / "report.html")
    page.goto(out.as_uri())
    data = out.read_text().split('id="samples-data">')[1].split("</script>")[0]
    total = len(json.loads(data)["rows"])  # the rounds' labels and every greedy evaluation
    assert page.inner_text("#count") == f"80 of {total} samples"
    kept = sum(r["kept"] for r in _labels(climb, 1) + _labels(climb, 2))
    page.select_option("#f-kept", "kept")
    assert page.inner_text("#count") == f"{kept} of {total} samples"
    page.select_option("#f-kept", "rejected")
    page.select_option("#f-iter", "2")
    card = page.locator(".sample").first
    assert "rejected: not verified" in card.inner_text() and "null" not in card.inner_text()
    assert card.locator("li.bad").count() >= 1  # the wrong digits are marked
    assert page.locator("#stages tr").count() == 5  # header, seed, two rounds, final


def test_a_climb_in_progress(climb, tmp_path, capsys):
    """Round 2 labelled but not trained yet, then only the seed: every view still answers."""
    d = tmp_path / "run"
    shutil.copytree(climb, d, ignore=shutil.ignore_patterns("model"))
    (d / "final.json").unlink()
    (d / "iter_002" / "metrics.json").unlink()
    assert main(["inspect", str(d), "--limit", "0"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    probe = artifacts.read_json(climb / "iter_002" / "metrics.json")["frontier"]["probe_solved"]
    assert header.startswith(f"round 2 (labels by the model of round 1): probe frontier {probe} ")
    assert header.endswith("(round not finished)")
    assert main(["summary", str(d)]) == 0
    out = capsys.readouterr().out
    assert "iter_001" in out and "iter_002" not in out and out.splitlines()[-1] == "final: not yet"
    assert "Not finished" in build_report(d).read_text()
    for it in ("iter_001", "iter_002"):
        shutil.rmtree(d / it)
    assert main(["inspect", str(d)]) == 2
    assert "no iteration has generated samples yet" in capsys.readouterr().err
    page_ = build_report(d).read_text()
    assert page_.split('<table id="stages">')[1].split("</table>")[0].count("<tr") == 2  # seed
    assert page_.count("data:image/png;base64,") == 2


def test_frontier_report_doctests():
    import doctest

    from selfplay.views import climb as frontier_report

    assert doctest.testmod(frontier_report).failed == 0
