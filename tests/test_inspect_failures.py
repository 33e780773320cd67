"""Finding failures: inspect by validity, by reason, right answer with wrong steps, eval samples;
rejection reasons counted by kind in inspect, report.html and verify alike."""

from __future__ import annotations

import pytest

from selfplay.cli import main
from selfplay.engine import artifacts
from selfplay.views.chains import group_reasons, rejection_reasons, select
from tests.test_report import _sample, make_run, page  # noqa: F401  (page: fixture)


def _run_with_failures(tmp_path):
    d = make_run(tmp_path)
    lucky = _sample(
        "1+4", 2, "correct", "1+4=6 c0|5", False, "invalid chain: step 1",
        [("1+4=6 c0", False, "wrong sum: 1+4=5, not 6"), ("5", True, "")],
    )  # fmt: skip
    samples = artifacts.read_parquet(d / "iter_001" / "samples.parquet") + [lucky]
    artifacts.write_parquet(d / "iter_001" / "samples.parquet", samples)
    ev = [
        {**_sample("4729+386", 0, "wrong", "4729+386=5005 c1|5005", None, None,
                   [("4729+386=5005 c1", False, "wrong sum at column 3")]), "origin": "eval-greedy"}
    ]  # fmt: skip
    for r in ev:
        r.pop("kept"), r.pop("filter_reason")
    artifacts.write_parquet(d / "iter_001" / "eval_samples.parquet", ev)
    return d, samples


def test_select_by_validity_reason_and_wrong_steps(tmp_path):
    _, samples = _run_with_failures(tmp_path)
    assert [s["problem_id"] for s in select(samples, valid=True)] == ["2+3"]
    assert len(select(samples, valid=False)) == 3
    assert [s["sample_idx"] for s in select(samples, right_answer_wrong_steps=True)] == [2]
    # A reason matches the filter's, the verdict's or any step's reason, in any case.
    assert [s["problem_id"] for s in select(samples, reason="NO FINAL")] == ["14+1"]
    assert [s["problem_id"] for s in select(samples, reason="1+4=5, not 6")] == ["1+4"]
    assert rejection_reasons(samples) == [
        "wrong: wrong answer",
        "unparseable: no final answer",
        "invalid chain: step 1",
    ]


def test_inspect_failure_views(tmp_path, capsys):
    d, _ = _run_with_failures(tmp_path)
    assert main(["inspect", str(d), "--iter", "1", "--wrong-steps"]) == 0
    out = capsys.readouterr().out
    assert "right answer, wrong steps" in out and "1 of 1 matching" in out
    assert main(["inspect", str(d), "--iter", "1", "--valid"]) == 0
    assert "1 of 1 matching" in capsys.readouterr().out
    assert main(["inspect", str(d), "--iter", "1", "--invalid", "--reason", "duplicate"]) == 0
    out = capsys.readouterr().out
    assert "0 of 0 matching" in out and "rejection reasons in iteration 1, by kind" in out
    assert "1  wrong: wrong answer" in out
    # The held-out evaluation's generations, with their step marks.
    assert main(["inspect", str(d), "--eval", "--iter", "1", "--difficulty", "4"]) == 0
    out = capsys.readouterr().out
    assert "wrong sum at column 3" in out and "checkpoint 1 evaluation" in out
    assert "rejected" not in out
    assert main(["inspect", str(d), "--eval", "--iter", "2"]) == 2
    assert "no evaluation samples" in capsys.readouterr().err


def test_compare_with_eval_shows_the_evaluation_generations_across_checkpoints(tmp_path, capsys):
    d, _ = _run_with_failures(tmp_path)
    artifacts.write_parquet(
        d / "seed" / "eval_samples.parquet",
        [dict(artifacts.read_parquet(d / "iter_001" / "eval_samples.parquet")[0], text="x|1")],
    )
    assert main(["inspect", str(d), "--eval", "--problem", "4729+386", "--compare"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint 0 eval" in out and "checkpoint 1 eval" in out
    assert "wrong sum at column 3" in out and "iter 1" not in out
    # A problem of the rounds' samples is not an evaluation problem, and the other way round.
    assert main(["inspect", str(d), "--eval", "--problem", "2+3", "--compare"]) == 2
    assert "not among the evaluation problems" in capsys.readouterr().err
    assert main(["inspect", str(d), "--problem", "4729+386", "--compare"]) == 2
    assert "was not practised" in capsys.readouterr().err
    # --eval alone reads the last evaluated checkpoint, the seed model's with --iter 0.
    assert main(["inspect", str(d), "--eval", "--iter", "0"]) == 0
    assert "checkpoint 0 evaluation: 1 samples" in capsys.readouterr().out


def _many_reasons() -> list[str]:
    """78 distinct reasons of 3 kinds, as a round of arithmetic chains would have them."""
    digits = [
        f"invalid step {i % 4 + 1}: wrong digit: column {i % 3 + 1} of {i} is {i % 10}, not {i % 7}"
        for i in range(60)
    ]
    sums = [f"invalid step 2: wrong sum: {i}+{i}={2 * i}, not {2 * i + 1}" for i in range(17)]
    return digits + sums + ["wrong: wrong answer"] * 5


def test_rejection_reasons_are_grouped_by_kind_with_examples(tmp_path, capsys):
    from selfplay.views import verify_file
    from selfplay.views.chains import reason_group

    reasons = _many_reasons()
    assert len(set(reasons)) == 78
    groups = group_reasons(reasons)
    assert [(g.kind, g.count) for g in groups] == [
        ("invalid step: wrong digit: column N of N is N, not N", 60),
        ("invalid step: wrong sum: N+N=N, not N", 17),
        ("wrong: wrong answer", 5),
    ]
    assert len(groups[0].examples) == 3 and groups[2].examples == ["wrong: wrong answer"]
    assert verify_file.reason_group is reason_group  # verify counts by the same kinds

    d = make_run(tmp_path)
    rows = artifacts.read_parquet(d / "iter_002" / "samples.parquet")
    rows += [
        {**rows[0], "sample_idx": i + 1, "kept": False, "filter_reason": r}
        for i, r in enumerate(reasons)
    ]
    artifacts.write_parquet(d / "iter_002" / "samples.parquet", rows)

    # inspect: one line per kind, largest first, with examples where the kind hides particulars
    assert main(["inspect", str(d), "--reason", "no such reason"]) == 0
    out = capsys.readouterr().out
    lines = out[out.index("rejection reasons in iteration 2") :].splitlines()
    assert "82 rejected" in lines[0] and len(lines) == 1 + 3 * 4 - 3
    assert lines[1] == "  60  invalid step: wrong digit: column N of N is N, not N"
    assert lines[2].startswith("        e.g. invalid step 1: wrong digit: column 1 of 0 is 0")
    assert lines[5].startswith("  17  invalid step: wrong sum")
    assert lines[9] == "   5  wrong: wrong answer"

    # report.html: one row per kind (not per reason), counts per round, total, examples
    from selfplay.views.html import build_report

    html = build_report(d).read_text()
    start = html.index('<table id="reasons">')
    table = html[start : html.index("</table>", start)]
    assert table.count("<tr>") == 1 + 4  # the header; the 3 kinds and iter 1's unparseable
    first = table.split("<tr>")[2]
    assert first.startswith("<td>invalid step: wrong digit: column N of N is N, not N</td>")
    assert "<td>0</td><td>60</td><td>60</td>" in first and "invalid step 1: wrong digit" in first
    assert table.index("wrong sum: N+N=N") < table.index("<td>wrong: wrong answer</td>")


@pytest.mark.browser
def test_browser_failure_views(tmp_path, page):  # noqa: F811
    from selfplay.views.html import build_report

    d, _ = _run_with_failures(tmp_path)
    page.goto(build_report(d).as_uri())
    assert page.inner_text("#count") == "5 of 6 samples"  # generated ones; one evaluation sample
    page.select_option("#f-chain", "wrong-steps")
    assert page.inner_text("#count") == "1 of 6 samples"
    card = page.locator(".sample").first
    assert "right answer, wrong steps" in card.inner_text() and "lucky" in card.get_attribute(
        "class"
    )
    page.select_option("#f-chain", "valid")
    assert page.inner_text("#count") == "2 of 6 samples"  # 2+3 in both rounds
    page.select_option("#f-chain", "")
    page.fill("#f-search", "1+4=5, not 6")  # a step's reason
    assert page.inner_text("#count") == "1 of 6 samples"
    page.fill("#f-search", "")
    page.select_option("#f-set", "eval")
    assert page.inner_text("#count") == "1 of 6 samples"
    text = page.locator(".sample").first.inner_text()
    assert "eval of checkpoint 1" in text and "wrong sum at column 3" in text
    assert "not trained on" in text
    reasons = page.inner_text("#reasons")
    assert "invalid chain: step 1" in reasons and "iter 1" in reasons and "iter 2" in reasons
    assert "name: run" in page.locator("#config pre").text_content()  # the run's config.yaml
