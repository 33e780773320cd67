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
from selfplay.tasks import TASKS, make_task, mathtask
from selfplay.tasks.mathtask import (
    MathJudge,
    MathTask,
    as_number,
    differs_by_profile,
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
    assert len(task.raw_corpus(cfg, random.Random(0))) == 4
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
]


@pytest.fixture(scope="module")
def judge():
    j = MathJudge(timeout=10.0)
    yield j
    j.close()


@pytest.mark.parametrize("gold, pred", TRICKY)
def test_fast_path_agrees_with_math_verify(judge, gold, pred):
    fast = fast_judge(gold, pred)
    slow, why = judge.judge(gold, pred)
    assert slow in ("equal", "different"), why
    assert fast in (None, slow), (fast, slow)


PROFILE_GOLDS = [
    "x^2 + 2x + 1",
    "-3, 3",
    "\\{1, 2\\}",
    "[1, 5)",
    "(1, 5)",
    "\\left( 3, \\frac{\\pi}{2} \\right)",
    "\\frac{\\sqrt{3}}{2}",
    "2\\sqrt{3}",
    "\\sqrt{4}",
    "2^{3}",
    "\\pi",
    "3\\pi",
    "\\text{(C)}",
    "C",
    "x = 2",
    "y",
    "9\\%",
    "0.5\\sqrt{2}",
    "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
    "\\infty",
    "e",
    "\\frac{1}{3} + \\frac{1}{6}",
    "10^{10}",
]
PROFILE_PREDS = ["0", "1", "2", "3", "8", "9", "-3", "\\frac{1}{2}", "10000000000", "3/1", "2,000"]


@pytest.mark.parametrize("gold", PROFILE_GOLDS)
def test_profile_path_agrees_with_math_verify(judge, gold):
    """A gold's profile settles a plain-number answer only where math-verify says different."""
    profile = judge.profile(gold)
    assert profile["kind"] in ("constant", "symbolic", "many", "interval", "other")
    for pred in PROFILE_PREDS + [p for g, p in TRICKY if g == gold]:
        if differs_by_profile(profile, pred):
            slow, why = judge.judge(gold, pred)
            assert slow == "different", (gold, pred, profile, why)


def test_profiles():
    assert differs_by_profile({"kind": "symbolic"}, "3")
    assert differs_by_profile({"kind": "many"}, "\\frac{1}{2}")
    assert not differs_by_profile({"kind": "symbolic"}, "3.0")  # floats compare rounded
    assert not differs_by_profile({"kind": "symbolic"}, "3\\%")
    assert not differs_by_profile({"kind": "other"}, "3")
    assert differs_by_profile({"kind": "constant", "value": "0.8660254037844386"}, "1")
    assert not differs_by_profile({"kind": "constant", "value": "2.0000000000000000"}, "2")
    assert not differs_by_profile({"kind": "constant", "value": "nan"}, "2")
    assert not differs_by_profile({}, "2")


def test_fast_path_decides_the_common_cases():
    """The pairs a round is full of are decided without math-verify."""
    decided = {
        ("\\frac{1}{2}", "0.5"): "equal",
        ("\\frac{1}{2}", "\\dfrac12"): "equal",
        ("\\frac{3}{4}", "3/4"): "equal",
        ("6", "6.0"): "equal",
        ("1000", "1,000"): "equal",
        ("6", "6\\text{ cm}"): "equal",
        ("(3, \\pi/2)", "\\left(3, \\pi/2\\right)"): "equal",
        ("6", "7"): "different",
        ("\\frac{1}{2}", "\\frac{1}{3}"): "different",
        ("\\frac{1}{3}", "0.3333"): "different",
    }
    for (gold, pred), want in decided.items():
        assert fast_judge(gold, pred) == want, (gold, pred)
    for gold, pred in [("6", "6.0000001"), ("6", "6\\%"), ("6", "6."), ("x^2", "x^{2}")]:
        assert fast_judge(gold, pred) is None, (gold, pred)


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


@FUZZ
@given(st.sampled_from(PROFILE_GOLDS), NUMBER_SPELLINGS)
def test_fuzz_profile_path_against_math_verify(judge, gold, pred):
    if differs_by_profile(judge.profile(gold), pred):
        slow, why = judge.judge(gold, pred)
        assert slow == "different", (gold, pred, why)


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
        assert len(many._judges) == 2  # the math-verify remainder was spread over two workers
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
        assert t.verify(problems[6], "fine, \\boxed{(x+1)^2}").status == "correct"
        assert t._judges[0]._proc is None
        assert t.verify(problems[0], "\\boxed{0.5}").status == "correct"  # the fast path
        assert t._cache[(problems[0].answer, "0.5")] == "equal"
        # a plain number against an expression: the gold's profile (one worker call) settles it
        assert t.verify(problems[6], "\\boxed{7}").status == "wrong"
        assert t._profiles[problems[6].answer] == {"kind": "symbolic"}
        assert t.verify(problems[6], "\\boxed{8}").status == "wrong"
    finally:
        t.close()
