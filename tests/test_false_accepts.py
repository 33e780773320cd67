"""Answers that must never be judged correct: each was once a false accept (a reward the loop
would learn to hack)."""

from __future__ import annotations

import pytest

from selfplay.tasks.arith import ArithTask
from selfplay.tasks.base import Problem
from selfplay.tasks.gsm8k import GSM8KTask, verify_gsm8k
from selfplay.tasks.mathtask import fast_judge


@pytest.mark.parametrize("completion", ["#### 1e20", "#### 1x", "#### 1.5", "#### 1e-5"])
def test_gsm8k_reads_no_number_out_of_a_longer_one(completion):
    gold_one = GSM8KTask.problem_from_record({"question": "q", "answer": 1}, 0)
    assert verify_gsm8k(gold_one, completion).status == "wrong"
    assert verify_gsm8k(gold_one, "#### 1").status == "correct"
    assert verify_gsm8k(gold_one, "#### 1 apple").status == "correct"


@pytest.mark.parametrize("number,gold", [(1e20, "100000000000000000000"), (5e-05, "0.00005")])
def test_gsm8k_json_number_golds_are_read_whole(number, gold):
    assert GSM8KTask.problem_from_record({"question": "q", "answer": number}, 0).answer == gold
    with pytest.raises(ValueError, match="not a plain number"):
        GSM8KTask.problem_from_record({"question": "q", "answer": f"#### {number}"}, 0)


@pytest.mark.parametrize("pred", ["4 = 3", "x = 2 = 3", "1 + 2 = 3"])
def test_math_an_equation_is_not_its_right_side(pred):
    assert fast_judge("3", pred) == "different"
    assert fast_judge("x = 3", "x = 3") == "equal"  # an equation for an equation is judged


def test_arith_json_true_is_no_operand():
    with pytest.raises(ValueError):
        ArithTask(["add"]).problem_from_record({"a": True, "op": "+", "b": 1}, 0)
    p = ArithTask(["add"]).problem_from_record({"a": 1, "op": "+", "b": 1}, 0)
    assert isinstance(p, Problem) and p.answer == "2"


def test_model_text_is_inert_on_a_terminal():
    """Markup and terminal escapes in model text are shown, never interpreted."""
    import io

    from rich.console import Console

    from selfplay.views.chains import inert, render_sample

    hostile = "[/x] [bold]\x1b]0;pwned\x07\x1b[2J"
    s = {
        "prompt": hostile, "sample_idx": 0, "difficulty": 1, "status": "wrong", "answer": hostile,
        "gold": "1", "tokens": 3, "finish_reason": "stop", "origin": "sampled",
        "steps": [{"text": hostile, "ok": False, "why": hostile}], "why": hostile,
        "valid": False, "kept": False, "filter_reason": hostile, "iteration": 1,
        "problem_id": hostile, "text": hostile,
    }  # fmt: skip
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    console.print(render_sample(s))
    console.print("reasons: " + inert(hostile))
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "[/x]" in text and "\\x1b]0;pwned" in text


@pytest.mark.parametrize(
    "gold,pred,judged",
    [
        ("4", "\\ge 4", "different"),
        ("4", "x > 3", "different"),
        ("4", "\\approx 4", "different"),
        ("(-\\infty,3)", "\\le 3", "different"),  # no left side: no set either
        ("(-\\infty,3)", "\\pm 3", "different"),
        ("(-\\infty,3)", "x<3", None),  # an inequality for an interval: math-verify's to judge
        ("x \\ge 4", "x \\ge 4", "equal"),  # the gold's own relation
    ],
)
def test_math_a_relation_is_no_value(gold, pred, judged):
    assert fast_judge(gold, pred) == judged
