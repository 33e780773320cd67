"""Finding failures: inspect by validity, by reason, right answer with wrong steps, eval samples."""

from __future__ import annotations

import pytest

from selfplay.cli import main
from selfplay.engine import artifacts
from selfplay.views.chains import reason_counts, select
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
    assert reason_counts(samples) == {
        "wrong: wrong answer": 1,
        "unparseable: no final answer": 1,
        "invalid chain: step 1": 1,
    }


def test_inspect_failure_views(tmp_path, capsys):
    d, _ = _run_with_failures(tmp_path)
    assert main(["inspect", str(d), "--iter", "1", "--wrong-steps"]) == 0
    out = capsys.readouterr().out
    assert "right answer, wrong steps" in out and "1 of 1 matching" in out
    assert main(["inspect", str(d), "--iter", "1", "--valid"]) == 0
    assert "1 of 1 matching" in capsys.readouterr().out
    assert main(["inspect", str(d), "--iter", "1", "--invalid", "--reason", "duplicate"]) == 0
    out = capsys.readouterr().out
    assert "0 of 0 matching" in out and "rejection reasons: wrong: wrong answer (1)" in out
    # The held-out evaluation's generations, with their step marks.
    assert main(["inspect", str(d), "--eval", "--iter", "1", "--difficulty", "4"]) == 0
    out = capsys.readouterr().out
    assert "wrong sum at column 3" in out and "checkpoint 1 evaluation" in out
    assert "rejected" not in out
    assert main(["inspect", str(d), "--eval", "--iter", "2"]) == 2
    assert "no evaluation samples" in capsys.readouterr().err


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
