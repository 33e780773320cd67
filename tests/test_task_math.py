"""The ``math`` task: records, the last ``\\boxed{}``, math-verify in a bounded worker process."""

from __future__ import annotations

import json
import pickle
import random
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfplay.config import config_from_dict
from selfplay.tasks import TASKS, make_task, mathtask
from selfplay.tasks.mathtask import MathJudge, MathTask, last_boxed, verify_math
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
    v = verify_math(problems[7], "\\boxed{12/2}", judge)
    assert v.status == "timeout" and "killed" in v.why, v
    assert time.monotonic() - start < 1.0 + 0.5
    monkeypatch.undo()
    judge.close()  # the replacement started at once is also the stuck one
    assert verify_math(problems[7], "\\boxed{12/2}", judge).status == "correct"
    assert verify_math(problems[7], "\\boxed{12/3}", judge).status == "wrong"
    judge.close()


def test_worker_that_cannot_start(monkeypatch, problems):
    monkeypatch.setattr(mathtask, "_WORKER_CODE", "raise SystemExit(3)")
    judge = MathJudge(timeout=1.0)
    v = verify_math(problems[7], "\\boxed{12/2}", judge)
    assert v.status == "error" and "did not start (exit code 3)" in v.why
    judge.close()


def test_threads(task, problems):
    out: list = []

    def work(k: int) -> None:
        out.append(task.verify(problems[7], f"\\boxed{{{k * 6}/{k}}}").status)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["correct"] * 6


def test_pickle_leaves_worker_behind(task, problems):
    task.verify(problems[0], "\\boxed{0.5}")
    copy = pickle.loads(pickle.dumps(task))
    assert copy._judge is None and copy.timeout == task.timeout
    assert copy.verify(problems[0], "\\boxed{0.5}").status == "correct"
    copy.close()


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text(task, problems, text):
    for completion in (text, "\\boxed{" + text + "}"):
        v = task.verify(problems[0], completion)
        assert v.status in STATUSES and v.status != "error", v.why
