"""The ``math`` task: records, the last ``\\boxed{}``, math-verify in a bounded worker process."""

from __future__ import annotations

import json
import pickle
import random
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfplay.config import config_from_dict
from selfplay.tasks import TASKS, make_task, mathforms, mathtask
from selfplay.tasks.mathforms import judge_forms, number_form
from selfplay.tasks.mathtask import (
    MathJudge,
    MathTask,
    as_number,
    fast_judge,
    last_boxed,
    normalize_latex,
    verify_math,
)
from selfplay.verify import STATUSES

FIXTURE = Path(__file__).parent / "fixtures" / "math_problems.jsonl"
RECORDS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
TIMEOUT = 2.0
FUZZ = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def task():
    t = MathTask.verifier(timeout=TIMEOUT)
    yield t
    t.close()


@pytest.fixture(scope="module")
def problems():
    return [MathTask.problem_from_record(r, i) for i, r in enumerate(RECORDS)]


# ------------------------------------------------------------------------------------------------
# Records


def test_problem_from_record(problems):
    assert TASKS["math"] is MathTask
    assert [p.difficulty for p in problems] == [1, 1, 2, 3, 4, 2, 2, 2, 2, 3, 3, 5]  # "Level ?": 3
    p = problems[0]
    assert p.prompt == f"Problem: {RECORDS[0]['problem']}\nSolution: "
    assert p.id.startswith("math-") and p.id == MathTask.problem_from_record(RECORDS[0], 7).id
    assert p.answer == "\\frac{1}{2}" and p.meta["gold"] == RECORDS[0]["solution"]
    assert p.meta["subject"] == "Prealgebra" and p.meta["level"] == "Level 1"
    assert "answer" not in RECORDS[4] and problems[4].answer == "\\frac{\\sqrt{3}}{2}"
    assert len({p.id for p in problems}) == len(problems)


@pytest.mark.parametrize(
    "record, message",
    [
        ({"solution": "\\boxed{1}"}, "'problem'"),
        ({"problem": "", "solution": "\\boxed{1}"}, "'problem'"),
        ({"problem": "p"}, "'solution'"),
        ({"problem": "p", "solution": "no box here"}, "no 'answer'"),
        ({"problem": "p", "solution": "\\boxed{}", "answer": " "}, "no 'answer'"),
    ],
)
def test_bad_records(record, message):
    with pytest.raises(ValueError, match=message):
        MathTask.problem_from_record(record, 0)


def test_gold_solutions_verify(task, problems):
    for p in problems:
        v = task.verify(p, task.gold_chain(p))
        assert v.status == "correct" and v.valid, (p.answer, v)
        assert task.verify(p, task.answer_only(p)).status == "correct"
    assert task.answer_only(problems[1]) == "\\boxed{4}"


def test_from_config(tmp_path):
    cfg = config_from_dict(
        {
            "task": {"name": "math", "data": str(FIXTURE), "timeout": 3},
            "raw": {"size": 4, "difficulties": [1, 2, 3, 4, 5]},
            "loop": {"pool_difficulties": [1, 2]},
            "eval": {"difficulties": [1, 2]},
        }
    )
    task = make_task(cfg)
    assert isinstance(task, MathTask) and len(task.problems) == 12 and task.timeout == 3
    assert len(task.raw_corpus(cfg.raw, random.Random(0))) == 4
    with pytest.raises(ValueError, match="go up to 5"):
        config_from_dict({"task": {"name": "math"}, "eval": {"difficulties": [6]}})


# ------------------------------------------------------------------------------------------------
# The last \boxed{}


@pytest.mark.parametrize(
    "text, boxed",
    [
        ("so \\boxed{4}.", "4"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),  # nested braces
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces do not count
        ("\\boxed {7}", "7"),
        ("\\fbox{7}", "7"),
        ("first \\boxed{3}, then \\boxed{6}", "6"),
        ("\\boxed{\\boxed{6}}", "\\boxed{6}"),
        ("\\boxed{3} and a truncated \\boxed{\\frac{1}{", "3"),
        ("} { \\boxed{2} }", "2"),
        ("no box", None),
        ("\\boxed{", None),
        ("\\boxed", None),
        ("", None),
    ],
)
def test_last_boxed(text, boxed):
    assert last_boxed(text) == boxed


def test_last_boxed_is_linear():
    start = time.monotonic()
    assert last_boxed("\\boxed{" * 150_000) is None
    assert last_boxed("{" * 500_000 + "\\boxed{1}") == "1"
    assert time.monotonic() - start < 5  # quadratic would take minutes


# ------------------------------------------------------------------------------------------------
# The verifier

# (problem index, completion, status); problems: 0 \frac{1}{2}, 2 "-3, 3", 3 [1,5),
# 4 \frac{\sqrt{3}}{2}, 6 x^2+2x+1, 7 6, 8 (3, \pi/2), 9 \text{(C)}, 11 \dfrac{3}{4}
CASES = [
    (0, "Half: $\\boxed{0.5}$", "correct"),
    (0, "\\boxed{1/2}", "correct"),
    (0, "\\boxed{\\dfrac12}", "correct"),
    (0, "\\boxed{\\frac{2}{4}}", "correct"),
    (0, "\\boxed{\\frac{1}{2}\\text{ cups}}", "correct"),
    (0, "\\boxed{\\frac13}", "wrong"),
    (0, "The answer is 1/2.", "unparseable"),
    (0, "\\boxed{\\frac{1}{2}", "unparseable"),  # unclosed
    (0, "\\boxed{}", "unparseable"),
    (0, "\\boxed{%$#@!}}}{{", "wrong"),
    (0, "\\boxed{\\frac{}{}}", "wrong"),
    (0, "\\boxed{\\left(\\right.}", "wrong"),
    (2, "\\boxed{3, -3}", "correct"),
    (2, "\\boxed{\\{-3,3\\}}", "correct"),
    (2, "\\boxed{3}", "wrong"),
    (2, "\\boxed{-3,3,4}", "wrong"),
    (3, "\\boxed{[1, 5)}", "correct"),
    (3, "\\boxed{[1,5]}", "wrong"),
    (3, "\\boxed{(1,5)}", "wrong"),
    (4, "\\boxed{\\dfrac{\\sqrt3}{2}}", "correct"),
    (4, "\\boxed{\\frac{1}{2}\\sqrt{3}}", "correct"),
    (4, "\\boxed{0.866}", "wrong"),
    (6, "\\boxed{(x+1)^2}", "correct"),
    (6, "\\boxed{x^2+1}", "wrong"),
    (7, "first \\boxed{3}, finally \\boxed{6}", "correct"),
    (7, "\\boxed{6.0}", "correct"),
    (7, "\\boxed{six}", "wrong"),
    (8, "\\boxed{(3, \\pi/2)}", "correct"),
    (8, "\\boxed{(3,\\pi)}", "wrong"),
    (9, "\\boxed{C}", "correct"),
    (9, "\\boxed{\\text{(A)}}", "wrong"),
    (11, "\\boxed{0.75}", "correct"),
    (11, "\\boxed{3/4}", "correct"),
]


@pytest.mark.parametrize("i, completion, status", CASES)
def test_verify(task, problems, i, completion, status):
    v = task.verify(problems[i], completion)
    assert v.status == status, v
    if status in ("correct", "wrong"):
        assert len(v.steps) == 1 and v.steps[0].ok == (status == "correct")
        assert v.valid == (status == "correct") and v.answer == last_boxed(completion).strip()
    else:
        assert not v.valid


def test_bounded_on_garbage(task, problems):
    p = problems[0]
    assert task.verify(p, 12).status == "error"
    v = task.verify(p, "\\boxed{1/2}" * 20_000)
    assert v.status == "unparseable" and "too long" in v.why
    v = task.verify(p, "\\boxed{" + "1+" * 400 + "1}")
    assert v.status == "unparseable" and "boxed answer too long" in v.why


def test_pathological_expression_times_out(task, problems):
    start = time.monotonic()
    v = task.verify(problems[7], "\\boxed{9^{9^{9^{9}}}}")
    elapsed = time.monotonic() - start
    assert v.status == "timeout" and v.answer == "9^{9^{9^{9}}}", v
    assert elapsed < TIMEOUT + 0.5
    assert task.verify(problems[7], "\\boxed{12/2}").status == "correct"  # the worker goes on


def test_stuck_worker_is_killed_and_replaced(monkeypatch, problems):
    # A worker that says it is ready and then never answers (as if stuck in C code).
    stuck = "import sys, time; print('{\"ready\": true}', flush=True); sys.stdin.readline(); time.sleep(60)"
    judge = MathJudge(timeout=1.0)
    monkeypatch.setattr(mathtask, "_WORKER_CODE", stuck)
    start = time.monotonic()
    v = verify_math(problems[7], "\\boxed{3+3}", judge)
    assert v.status == "timeout" and "killed" in v.why, v
    assert time.monotonic() - start < 1.0 + 0.5
    monkeypatch.undo()
    judge.close()  # the replacement started at once is also the stuck one
    assert verify_math(problems[7], "\\boxed{3+3}", judge).status == "correct"
    assert verify_math(problems[7], "\\boxed{3+4}", judge).status == "wrong"
    judge.close()


def test_worker_that_cannot_start(monkeypatch, problems):
    monkeypatch.setattr(mathtask, "_WORKER_CODE", "raise SystemExit(3)")
    judge = MathJudge(timeout=1.0)
    v = verify_math(problems[7], "\\boxed{3+3}", judge)
    assert v.status == "error" and "did not start (exit code 3)" in v.why
    judge.close()


def test_threads(task, problems):
    out: list = []

    def work(k: int) -> None:
        # not decided by the fast path: math-verify, from six threads at once
        out.append(task.verify(problems[6], f"\\boxed{{(x+1)^2 + {k} - {k}}}").status)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["correct"] * 6


def test_pickle_leaves_worker_behind(task, problems):
    task.verify(problems[0], "\\boxed{0.5}")
    copy = pickle.loads(pickle.dumps(task))
    assert copy._judges == [] and copy._cache == {} and copy.timeout == task.timeout
    assert copy.verify(problems[0], "\\boxed{0.5}").status == "correct"
    copy.close()


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text(task, problems, text):
    for completion in (text, "\\boxed{" + text + "}"):
        v = task.verify(problems[0], completion)
        assert v.status in STATUSES and v.status != "error", v.why


# ------------------------------------------------------------------------------------------------
# The fast path, held against math-verify

# (gold, pred): the fast path must never call a pair "equal" that math-verify calls different,
# nor "different" one it calls equal; where it is not sure it answers None.
TRICKY = [
    ("\\frac{1}{2}", "0.5"),
    ("\\frac{1}{2}", "\\frac12"),
    ("\\frac{1}{2}", "\\dfrac{1}{2}"),
    ("\\frac{1}{2}", "\\tfrac{2}{4}"),
    ("\\frac{1}{2}", "1/2"),
    ("\\frac{1}{2}", ".5"),
    ("\\frac{1}{2}", "0.50"),
    ("\\frac{1}{2}", "\\frac{1}{2}\\text{ cups}"),
    ("\\frac{1}{2}", "$\\frac{1}{2}$"),
    ("\\frac{1}{2}", "\\frac{1}{3}"),
    ("\\frac{1}{2}", "0.4"),
    ("\\frac{1}{2}", "0.5000001"),
    ("\\frac{1}{2}", "0.50001"),
    ("\\frac{1}{2}", "50\\%"),
    ("\\frac{1}{3}", "0.333333"),
    ("\\frac{1}{3}", "0.33333"),
    ("\\frac{1}{3}", "0.3333"),
    ("-\\frac{1}{2}", "\\frac{-1}{2}"),
    ("-\\frac{1}{2}", "-0.5"),
    ("-\\frac{1}{2}", "\\frac{1}{2}"),
    ("6", "6.0"),
    ("6", "6.00"),
    ("6", "6.0000001"),
    ("6", "6.00001"),
    ("6", "+6"),
    ("6", "06"),
    ("6", "6."),
    ("6", "6\\%"),
    ("6", "6^\\circ"),
    ("6", "6^{\\circ}"),
    ("6", "6\\text{ cm}"),
    ("6", "6 \\text{ cm}^2"),
    ("6", "6\\mbox{ feet}"),
    ("6", "\\text{6 feet}"),
    ("6", "\\$6"),
    ("6", "\\$6.00"),
    ("6", "7"),
    ("6", "-6"),
    ("6", "12/2"),
    ("6", "\\frac{12}{2}"),
    ("6", "x=6"),
    ("6", "6, 7"),
    ("6", "6\\text{ and }7"),
    ("1000", "1,000"),
    ("1000", "1{,}000"),
    ("1000", "1000.0"),
    ("1000", "1,001"),
    ("1,000", "1000"),
    ("1000000", "1,000,000"),
    ("1,5", "1.5"),
    ("1,5", "15"),
    ("-3, 3", "3, -3"),
    ("-3, 3", "-3,3"),
    ("-3, 3", "3"),
    ("[1, 5)", "[1,5)"),
    ("[1, 5)", "\\left[1, 5\\right)"),
    ("[1, 5)", "[1,5]"),
    ("(3, \\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("(3, \\pi/2)", "(3,\\pi/2)"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}"),
    ("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt{3}}{2}"),
    ("\\frac{\\sqrt{3}}{2}", "0.866"),
    ("\\frac{\\sqrt{3}}{2}", "0.8660254"),
    ("x^2 + 2x + 1", "x^2+2x+1"),
    ("x^2 + 2x + 1", "(x+1)^2"),
    ("x^2 + 2x + 1", "x^{2} + 2x + 1"),
    ("\\text{(C)}", "\\text{(C)}"),
    ("\\text{(C)}", "C"),
    ("\\text{(C)}", "\\text{ (C) }"),
    ("\\text{Monday}", "\\text{ Monday}"),
    ("\\pi", "3.14159"),
    ("\\infty", "\\infty"),
    ("2", "\\sqrt{4}"),
    ("12345678901234567890", "12345678901234567891"),
    ("0.1", "0.10000001"),
    ("10^{10}", "10000000000"),
    ("5", "5.0.0"),
    ("x^2 + 2x + 1", "x^{2}+2x+1"),
    ("x^2", "x^{2}3"),
    ("x^{23}", "x^23"),
    ("a_{1}", "a_1"),
]
# Near misses, each group compared all against all (both ways round): the shortcuts must agree
# with math-verify on every pair, whichever way it goes.
NEAR_MISS_GROUPS = [
    ["1/2", "0.5", "0.50", "\\frac{1}{2}", "\\frac12", ".5", "\\frac{2}{4}", "50\\%"],
    ["12", "1.2", "12.0", "120", "1,2", "\\frac{12}{1}", "12\\text{ cm}"],
    ["(1,2)", "(2,1)", "[1,2)", "[1,2]", "(1,2]", "1,2", "\\{1,2\\}", "\\{2,1\\}", "\\{1,1,2\\}"],
    ["(1, 2, 3)", "(3, 2, 1)", "1, 2, 3", "\\{1, 2, 3\\}", "(1, 2)", "1, 2, 4"],
    ["10^3", "1000", "1,000", "10^{3}", "1000.0", "10^4"],
    ["-0", "0", "+0", "0.0", "-0.0"],
    ["3\\sqrt{2}", "3\\sqrt2", "\\sqrt{18}", "3 \\sqrt{2}", "3\\sqrt{3}", "4.242641", "4.2426"],
    ["\\text{(C)}", "C", "(C)", "\\text{C}", "c", "\\text{(D)}", "\\textbf{(C)}", "\\mathrm{C}"],
    ["e", "\\text{e}", "E", "e^1", "2.718282", "\\exp(1)"],
    ["ab", "\\text{ab}", "a b", "ba", "\\text{AB}"],
    ["x = 4", "4", "x=5", "y = 4", "x^2 = 16"],
    ["[1, 5)", "x \\in [1, 5)", "[1,5)", "1 \\le x < 5", "(1, 5)"],
    ["(-\\infty, 2]", "(-\\infty, 2)", "(-\\infty, 3]", "x \\le 2", "\\infty", "-\\infty"],
    ["x - x + 2", "2", "3", "x + 2 - x"],
    ["x^2 + 2x + 1", "(x+1)^2", "x^2 + 2x + 2", "1 + 2x + x^2", "x^2+1", "2x + 1 + x^2"],
    [
        "\\frac{\\sqrt{3}}{2}",
        "\\frac{1}{2}\\sqrt{3}",
        "\\sqrt{3}/2",
        "0.866025",
        "0.866",
        "\\frac{\\sqrt{3}}{3}",
    ],
    ["\\pi", "3.14159", "3.141593", "3.1416", "\\frac{22}{7}", "2\\pi"],
    [
        "\\left( 3, \\frac{\\pi}{2} \\right)",
        "(3, \\pi/2)",
        "(3, \\frac{\\pi}{3})",
        "(\\frac{\\pi}{2}, 3)",
        "3, \\frac{\\pi}{2}",
    ],
    ["\\frac{1}{3}", "0.333333", "0.3333333", "0.33333", "0.3\\overline{3}"],
    ["1", "1 + 10^{-40}", "1 + 10^{-8}", "0.9999999"],
    [
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "(1, 2)",
        "\\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix}",
    ],
    ["y = 2x + 3", "2x + 3", "y = 3 + 2x", "y=2x+4"],
    ["\\sqrt{-1}", "i", "\\frac{1}{0}", "\\infty"],
]
NEAR_MISSES = [(g, p) for group in NEAR_MISS_GROUPS for g in group for p in group if g != p]


@pytest.fixture(scope="module")
def judge():
    j = MathJudge(timeout=10.0)
    yield j
    j.close()


def shortcut(judge: MathJudge, pairs: list[tuple[str, str]]) -> list[str | None]:
    """What the paths before math-verify decide for each pair: the fast path, else the forms
    (a plain integer's or fraction's made in the parent, as :meth:`MathTask.verify_many` does)."""
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))
    forms = dict(zip(texts, judge.describe_many(texts), strict=True))
    for t in texts:
        forms[t] = number_form(t) or forms[t]
    return [fast_judge(g, p) or judge_forms(forms[g], forms[p]) for g, p in pairs]


def assert_agrees(judge: MathJudge, pairs: list[tuple[str, str]]) -> list[str | None]:
    """Every shortcut decision on ``pairs`` is math-verify's; the decisions."""
    decided = shortcut(judge, pairs)
    slow = judge.judge_many(pairs)
    for (gold, pred), fast, (result, why) in zip(pairs, decided, slow, strict=True):
        assert result in ("equal", "different"), (gold, pred, why)
        assert fast in (None, result), (gold, pred, fast, result)
    return decided


def test_fast_path_agrees_with_math_verify(judge):
    for gold, pred in TRICKY:
        fast = fast_judge(gold, pred)
        slow, why = judge.judge(gold, pred)
        assert slow in ("equal", "different"), why
        assert fast in (None, slow), (gold, pred, fast, slow)


def test_shortcuts_agree_with_math_verify_on_tricky_pairs(judge):
    decided = assert_agrees(judge, TRICKY)
    assert sum(d is not None for d in decided) >= 0.8 * len(TRICKY)


def test_shortcuts_agree_with_math_verify_on_near_misses(judge):
    decided = assert_agrees(judge, NEAR_MISSES)
    assert sum(d is not None for d in decided) >= 0.65 * len(NEAR_MISSES)


# The fixture's golds against the answers a round gives them (see scripts/verifier_bench.py):
# spelled another way, altered (last digit changed), wrong expressions of every kind, guesses.
RESPELLED = json.loads((FIXTURE.parent / "math_respellings.json").read_text())
ALTERED = ["\\frac{1}{3}", "5", "-3, 4", "[1, 6)", "\\frac{\\sqrt{3}}{3}", "2\\sqrt{4}"]
ALTERED += ["x^2 + 2x + 2", "7", "\\left( 3, \\frac{\\pi}{3} \\right)", "\\text{(D)}", "11"]
WRONG = ["\\frac{1}{3}", "x^2+1", "\\sqrt{2}", "(1, 5)", "-3", "2\\pi", "\\text{(B)}", "0", "37"]


def test_shortcuts_agree_with_math_verify_on_a_round(judge):
    pairs = [(gold, pred) for gold, spellings in RESPELLED.items() for pred in spellings + WRONG]
    pairs += [(gold, pred) for gold in RESPELLED for pred in ALTERED]
    decided = assert_agrees(judge, pairs)
    assert sum(d is not None for d in decided) >= 0.95 * len(pairs)


@pytest.mark.slow
def test_shortcuts_agree_with_math_verify_on_every_pairing(judge):
    answers = [a for group in NEAR_MISS_GROUPS for a in group] + ALTERED + WRONG
    answers = list(dict.fromkeys(answers + [a for s in RESPELLED.values() for a in s]))
    assert_agrees(judge, [(gold, pred) for gold in RESPELLED for pred in answers])
    assert_agrees(judge, [(g, p) for g in answers[::3] for p in answers if g != p])


def test_shortcuts_decide_the_common_cases(judge):
    """The pairs a round is full of are decided without math-verify."""
    decided = {
        ("\\frac{1}{2}", "0.5"): "equal",
        ("\\frac{1}{2}", "\\dfrac12"): "equal",
        ("\\frac{3}{4}", "3/4"): "equal",
        ("6", "6.0"): "equal",
        ("1000", "1,000"): "equal",
        ("6", "6\\text{ cm}"): "equal",
        ("(3, \\pi/2)", "\\left(3, \\pi/2\\right)"): "equal",
        ("x^2 + 2x + 1", "x^{2}+2x+1"): "equal",
        ("6", "7"): "different",
        ("\\frac{1}{2}", "\\frac{1}{3}"): "different",
        ("\\frac{1}{3}", "0.3333"): "different",
        # by the forms of gold and answer
        ("\\text{(C)}", "C"): "equal",
        ("\\text{(C)}", "\\text{(B)}"): "different",
        ("\\text{(C)}", "7"): "different",
        ("10", "\\text{10}"): "equal",
        ("4", "x = 4"): "equal",
        ("-3, 3", "3, -3"): "equal",
        ("-3, 3", "-3, 4"): "different",
        ("-3, 3", "(1, 5)"): "different",
        ("[1,5)", "x \\in [1, 5)"): "equal",
        ("[1,5)", "[1, 6)"): "different",
        ("[1,5)", "(1, 5)"): "different",
        ("[1,5)", "3"): "different",
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)"): "equal",
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\left( 3, \\frac{\\pi}{3} \\right)"): "different",
        ("2\\sqrt{3}", "2\\sqrt{4}"): "different",
        ("\\frac{\\sqrt{3}}{2}", "\\sqrt{3}/2"): "equal",
        ("\\frac{\\sqrt{3}}{2}", "1"): "different",
        ("x^2 + 2x + 1", "x^2 + 2x + 2"): "different",
        ("x^2 + 2x + 1", "7"): "different",
        ("x^2 + 2x + 1", "\\sqrt{2}"): "different",
    }
    assert shortcut(judge, list(decided)) == list(decided.values())
    # math-verify's to judge: the same value written another way, or too close to call
    left = [("2\\sqrt{3}", "\\sqrt{12}"), ("x^2 + 2x + 1", "(x+1)^2"), ("6", "6.0000001")]
    left += [("x - x + 2", "2"), ("6", "6\\%"), ("y = 2x + 3", "2x + 3")]
    assert shortcut(judge, left) == [None] * len(left)


def test_number_form_is_the_workers(judge):
    texts = [str(n) for n in range(-40, 41)] + ["123456789012345", "-99999999999999"]
    texts += [
        f"{s}\\frac{{{a}}}{{{b}}}" for s in ("", "-") for a in range(13) for b in range(1, 13)
    ]
    texts += ["\\frac{123456789}{1000000007}", "-\\frac{100}{10}"]
    assert [number_form(t) for t in texts] == judge.describe_many(texts)
    for text in ["-0", "04", "+4", "1,000", "4 ", "4.0", "1234567890123456", "\\frac{01}{2}"]:
        assert number_form(text) is None, text
    for text in ["\\frac{1}{0}", "\\frac{-1}{2}", "\\dfrac{1}{2}", "1/2", "\\frac12", "0.5"]:
        assert number_form(text) is None, text


def test_forms_leave_what_they_cannot_read():
    assert judge_forms(None, number_form("3")) is None
    assert judge_forms(number_form("3"), None) is None
    other = {"strs": ["x"], "exprs": [{"kind": "other"}]}
    assert judge_forms(other, number_form("3")) is None
    nothing = {"strs": [], "exprs": []}  # math-verify read nothing: equal to nothing
    assert judge_forms(nothing, number_form("3")) == "different"
    huge = {**number_form("3")["exprs"][0], "at": ["1.0e+100000"] * mathforms.POINTS, "key": ""}
    assert not mathforms.values_differ(huge, number_form("3")["exprs"][0])


def test_huge_powers_are_not_evaluated(judge):
    (form,) = judge.describe_many(["9^{9^{9^{9}}}"])
    assert form is not None and form["exprs"][0]["at"] == [None] * mathforms.POINTS


@pytest.mark.parametrize(
    "text, number",
    [
        ("12", (12, False)),
        ("-0.5", (Fraction(-1, 2), True)),
        ("1,000", (1000, False)),
        ("\\frac{3}{4}", (Fraction(3, 4), False)),
        ("-\\frac{3}{4}", (Fraction(-3, 4), False)),
        ("-3/4", (Fraction(-3, 4), False)),
        ("5\\text{ cm}^2", (5, False)),
        ("1,5", None),
        ("2\\%", None),
        ("\\frac{1}{0}", None),
        ("\\text{5}", None),
        ("9" * 40, None),
    ],
)
def test_as_number(text, number):
    assert as_number(normalize_latex(text)) == number


NUMBER_SPELLINGS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.integers(0, 10**7).map(lambda n: f"{n:,}"),
    st.decimals(-1000, 1000, places=3, allow_nan=False).map(str),
    st.tuples(st.integers(-50, 50), st.integers(1, 12)).map(
        lambda t: f"\\frac{{{t[0]}}}{{{t[1]}}}"
    ),
    st.tuples(st.integers(0, 50), st.integers(1, 12)).map(lambda t: f"\\dfrac{{{t[0]}}}{{{t[1]}}}"),
    st.tuples(st.integers(-50, 50), st.integers(1, 12)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.integers(0, 99).map(lambda n: f"{n}\\text{{ cm}}"),
    st.integers(0, 99).map(lambda n: f"{n}^\\circ"),
    st.integers(0, 99).map(lambda n: f"{n}\\%"),
)


@FUZZ
@given(NUMBER_SPELLINGS, NUMBER_SPELLINGS)
def test_fuzz_fast_path_against_math_verify(judge, gold, pred):
    fast = fast_judge(gold, pred)
    if fast is not None:
        slow, why = judge.judge(gold, pred)
        assert slow == fast, (gold, pred, why)


SMALL = st.integers(-6, 6)
CONSTANTS = st.one_of(
    SMALL.map(str),
    st.tuples(SMALL, st.integers(1, 4)).map(lambda t: f"\\frac{{{t[0]}}}{{{t[1]}}}"),
    st.tuples(st.integers(1, 4), st.integers(2, 8)).map(lambda t: f"{t[0]}\\sqrt{{{t[1]}}}"),
    st.integers(1, 3).map(lambda n: f"{n}\\pi"),
    st.sampled_from(["0.5", "1.5", "0.25", "-\\infty", "\\infty", "e"]),
)
ANSWERS = st.one_of(
    CONSTANTS,
    st.lists(CONSTANTS, min_size=2, max_size=3).map(", ".join),
    st.lists(CONSTANTS, min_size=1, max_size=3).map(lambda xs: "\\{" + ", ".join(xs) + "\\}"),
    st.lists(CONSTANTS, min_size=2, max_size=3).map(lambda xs: "(" + ", ".join(xs) + ")"),
    st.tuples(st.sampled_from("[("), CONSTANTS, CONSTANTS, st.sampled_from("])")).map(
        lambda t: f"{t[0]}{t[1]}, {t[2]}{t[3]}"
    ),
    st.tuples(SMALL, SMALL).map(lambda t: f"x^2 + {t[0]}x + {t[1]}"),
    st.tuples(SMALL, SMALL).map(lambda t: f"(x + {t[0]})(x + {t[1]})"),
    st.sampled_from(["\\text{(A)}", "B", "(C)", "x", "y", "x = 2", "\\text{e}"]),
)


@FUZZ
@given(st.lists(st.tuples(ANSWERS, ANSWERS), min_size=1, max_size=8))
def test_fuzz_shortcuts_against_math_verify(judge, pairs):
    assert_agrees(judge, pairs)


@FUZZ
@given(st.text(max_size=80), st.text(max_size=80))
def test_fuzz_fast_path_arbitrary_text(gold, pred):
    assert fast_judge(gold, pred) in (None, "equal", "different")


# ------------------------------------------------------------------------------------------------
# Many at once: the fast path, the cache, math-verify on every core


def test_verify_many_matches_verify(problems):
    items = [(problems[i], c) for i, c, _ in CASES] * 2 + [(problems[0], None)]
    many = MathTask.verifier(timeout=20.0)  # fresh workers: sympy's first calls are slow
    many.workers = 2
    one = MathTask.verifier(timeout=20.0)
    try:
        got = many.verify_many(items)
        assert [v.status for v in got] == [s for _, _, s in CASES] * 2 + ["error"]
        assert got == [one.verify(p, c) for p, c in items]
        assert len(many._judges) == 2  # the worker requests were spread over two workers
        # the forms settled most of what the fast path left: few pairs reached math-verify
        assert 0 < many.calls["math-verify"] <= 8 and many.calls["describe"] > 0
        # every (gold, answer) pair is now cached: the same items again need no worker
        many.close()
        assert many.verify_many(items) == got
        assert all(j._proc is None for j in many._judges)
    finally:
        many.close()
        one.close()


def test_cache_is_per_pair(problems):
    t = MathTask.verifier(timeout=20.0)
    try:
        assert t.verify(problems[6], "\\boxed{(x+1)^2}").status == "correct"
        assert t._cache == {(problems[6].answer, "(x+1)^2"): "equal"}
        t.close()  # a cached pair needs no worker: none is started again
        assert t.verify(problems[6], "fine, \\boxed{(x + 1)^2}").status == "correct"
        assert t._judges[0]._proc is None
        assert t.verify(problems[0], "\\boxed{0.5}").status == "correct"  # the fast path
        assert t._cache[(problems[0].answer, "0.5")] == "equal"
    finally:
        t.close()


def test_forms_are_read_once_and_serve_later_pairs(problems):
    t = MathTask.verifier(timeout=20.0)
    t.workers = 1
    try:
        gold = problems[6]  # x^2 + 2x + 1
        got = t.verify_many(
            [(gold, "\\boxed{7}"), (gold, "\\boxed{\\sqrt{2}}"), (problems[9], "7")]
        )
        assert [v.status for v in got] == ["wrong", "wrong", "unparseable"]
        assert t.calls == {"describe": 2, "math-verify": 0}  # the gold and \sqrt{2}; 7 is made here
        t.close()
        # a later answer against a gold whose form is known: no worker unless the answer is new
        assert t.verify_many([(gold, "\\boxed{8}")])[0].status == "wrong"
        assert t._judges[0]._proc is None
        assert t.verify(gold, "\\boxed{\\sqrt{2}}").status == "wrong"  # the cache
        assert t._judges[0]._proc is None
    finally:
        t.close()


def test_batch_goes_on_after_a_timeout(problems):
    judge = MathJudge(timeout=2.0)
    try:
        pairs = [("6", "3+3"), ("6", "9^{9^{9^{9}}}"), ("6", "12/2"), ("6", "3+4")]
        got = judge.judge_many(pairs)
        assert [r for r, _ in got] == ["equal", "timeout", "equal", "different"], got
        assert judge.describe_many(["x^2", "9^{9^{9^{9}}}"])[0]["exprs"][0]["kind"] == "value"
    finally:
        judge.close()


def test_stuck_worker_in_a_batch(monkeypatch):
    stuck = "import sys, time; print('{\"ready\": true}', flush=True); sys.stdin.readline(); time.sleep(60)"
    judge = MathJudge(timeout=1.0)
    monkeypatch.setattr(mathtask, "_WORKER_CODE", stuck)
    start = time.monotonic()
    got = judge.judge_many([("6", "3+3"), ("6", "3+4")])
    assert [r for r, _ in got] == ["timeout", "timeout"] and "killed" in got[0][1]
    assert judge.describe_many(["3+3"]) == [None]
    assert time.monotonic() - start < 3 * 1.0 + 1.5  # each request bounded on its own
    monkeypatch.undo()
    judge.close()
    assert judge.judge_many([("6", "3+3"), ("6", "3+4")]) == [("equal", ""), ("different", "")]
    judge.close()
