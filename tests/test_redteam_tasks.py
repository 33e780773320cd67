"""Red team for the text tasks (arith, countdown, gsm8k, math): completions written to be judged
``correct`` without the answer (hedges, relations, look-alike digits, control characters, a second
answer), to stall the verifier (huge numbers, deep nesting, power towers) or to break what comes
after it (lone surrogates and markup in a verdict written to Parquet). Each kind asserts the
verdict (never ``correct``, never valid), the bound (within the task's limit + 2 s) and that
nothing is left behind (no process but the math task's own workers, no file in /tmp).

The code task's kinds are in ``tests/test_redteam.py`` (programs) and ``tests/test_code_values.py``
(forged replies); :func:`test_at_least_eighty_kinds_across_five_tasks` counts them all.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from selfplay.engine.artifacts import clean_text, read_parquet, write_parquet
from selfplay.engine.sampling import verdict_fields
from selfplay.tasks import TASKS
from selfplay.tasks.data import read_records

FIXTURES = Path(__file__).parent / "fixtures"
MATH_SECONDS = 3.0

ARITH = "71*4=284|71*10=710|71*500=35500|284+710=994|994+35500=36494|"  # + answer: 71*514
COUNTDOWN = "14*13=182\n182-25="  # + answer: 13,25,14 -> 157
GSM8K_Q = "Natalia sold 48 clips in April and half as many in May. How many in all?"

# (task, kind) -> completion. Golds: arith 36494, countdown 157, gsm8k 72, math 4 and 1/2.
HOSTILE: dict[tuple[str, str], str] = {
    # arith: the answer must be the number the chain ends with, written plainly
    ("arith", "fullwidth digits"): ARITH + "３６４９４",
    ("arith", "arabic-indic digits"): ARITH + "٣٦٤٩٤",
    ("arith", "NUL in the answer"): ARITH + "36494\x00",
    ("arith", "lone surrogate after the answer"): ARITH + "36494\ud800",
    ("arith", "two answers"): ARITH + "36494|36495",
    ("arith", "answer or another"): ARITH + "36494 or 36495",
    ("arith", "signed answer"): ARITH + "+36494",
    ("arith", "digit groups"): ARITH + "36 494",
    ("arith", "python underscores"): ARITH + "36_494",
    ("arith", "float spelling"): ARITH + "36494.0",
    ("arith", "exponent spelling"): ARITH + "36494e0",
    ("arith", "answer behind markup"): "[bold]36494[/x]",
    ("arith", "a million characters"): "1" * 1_000_000,
    ("arith", "two hundred thousand steps"): "|".join(["1+1=2"] * 200_000) + "|36494",
    ("arith", "a 10,000-digit step"): "9" * 10_000 + "+1=1" + "0" * 10_000 + "|36494",
    # countdown: every step uses what is held, once; the answer is the target
    ("countdown", "a number used twice"): "14*14=196\n196-39=157\n157",
    ("countdown", "a number not given"): "157=157\n157",
    ("countdown", "power"): "13**2=169\n169-12=157\n157",
    ("countdown", "power tower"): "9**9**9=1\n157",
    ("countdown", "python expression"): "__import__('os').system('true')=157\n157",
    ("countdown", "lambda"): "(lambda:157)()=157\n157",
    ("countdown", "fraction"): "25/14=1\n157",
    ("countdown", "answer only"): "157",
    ("countdown", "fullwidth answer"): COUNTDOWN + "157\n１５７",
    ("countdown", "surrogate answer"): COUNTDOWN + "157\n157\ud800",
    ("countdown", "bitwise or"): "13|25=29\n157",
    ("countdown", "100,000 parentheses"): "(" * 100_000 + "13" + ")" * 100_000 + "=13\n157",
    ("countdown", "a 100-digit operand"): "1" * 100 + "*0=0\n157",
    # gsm8k: one plain number after '####', nothing guessed out of a hedge
    ("gsm8k", "exponent after the answer"): "#### 72e0",
    ("gsm8k", "a second final answer"): "#### 1\n#### 72",
    ("gsm8k", "right answer then another"): "#### 72\n#### 1",
    ("gsm8k", "answer or another"): "#### 72 or 73",
    ("gsm8k", "a range"): "#### 72-73",
    ("gsm8k", "plus or minus"): "#### 72 ± 1",
    ("gsm8k", "a list"): "#### 72, 73",
    ("gsm8k", "two numbers boxed"): "so \\boxed{73, 72}",
    ("gsm8k", "a fraction and more boxed"): "so \\boxed{\\frac{144}{2} + 1}",
    ("gsm8k", "fullwidth digits"): "#### ７２",
    ("gsm8k", "a million digits"): "#### " + "7" * 1_000_000,
    ("gsm8k", "a thousand numbers"): "#### " + " ".join(str(i) for i in range(1000)),
    ("gsm8k", "negated"): "#### -72",
    # math: a boxed value, not a relation, a hedge or a control character around one
    ("math", "an equation"): "\\boxed{5 = 4}",
    ("math", "at least"): "\\boxed{\\ge 4}",
    ("math", "approximately"): "\\boxed{\\approx 4}",
    ("math", "plus or minus"): "\\boxed{\\pm 4}",
    ("math", "x greater than"): "\\boxed{x > 3}",
    ("math", "logical or"): "\\boxed{x = 4 \\lor x = 5}",
    ("math", "tends to"): "\\boxed{\\to 4}",
    ("math", "NUL in the answer"): "\\boxed{4\x00}",
    ("math", "NUL after a fraction"): "\\boxed{\\frac{1}{2}\x00}",
    ("math", "lone surrogate"): "\\boxed{4\ud800}",
    ("math", "a set of guesses"): "\\boxed{\\{4, 5\\}}",
    ("math", "a list of guesses"): "\\boxed{4, 5}",
    ("math", "text or"): "\\boxed{4 \\text{ or } 5}",
    ("math", "10,000 braces"): "\\boxed{" + "{" * 5000 + "4" + "}" * 5000 + "}",
    ("math", "power tower"): "\\boxed{10^{10^{10^{10}}}}",
    ("math", "a 10000 factorial"): "\\boxed{10000!}",
    ("math", "unclosed box"): "\\boxed{4",
    ("math", "markup in the box"): "\\boxed{[/x]4}",
}
HALF = {("math", "NUL after a fraction")}
"""Kinds judged against the gold 1/2 (the rest of math's against 4)."""


def _problems():
    arith = TASKS["arith"].verifier()
    countdown = TASKS["countdown"].verifier()
    gsm8k = TASKS["gsm8k"].from_records([{"question": GSM8K_Q, "answer": "48+24=72\n#### 72"}])
    math = TASKS["math"].from_records(read_records(FIXTURES / "math_problems.jsonl"))
    math.timeout = MATH_SECONDS
    by_answer = {p.answer: p for p in math.problems}
    cd = countdown.problem_from_record({"numbers": [13, 25, 14], "target": 157}, 0)
    return {
        "arith": (arith, arith.problem_from_record({"a": 71, "op": "*", "b": 514}, 0), 1.0),
        "countdown": (countdown, cd, 1.0),
        "gsm8k": (gsm8k, gsm8k.problems[0], 1.0),
        "math": (math, by_answer["4"], MATH_SECONDS),
        "math-half": (math, by_answer["\\frac{1}{2}"], MATH_SECONDS),
    }


@pytest.fixture(scope="module")
def tasks():
    made = _problems()
    yield made
    made["math"][0].close()


def _children() -> set[int]:
    me = os.getpid()
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] not in "ZX":
            found.add(int(pid))
    return found


def test_controls_are_correct(tasks):
    """The harness can say correct: each task's own gold, so every check below can fail."""
    for name, (task, problem, _) in tasks.items():
        v = task.verify(problem, task.gold_chain(problem))
        assert v.status == "correct" and v.valid, (name, v)
    arith, p, _ = tasks["arith"]
    assert arith.verify(p, ARITH + "36494").valid
    countdown, p, _ = tasks["countdown"]
    assert countdown.verify(p, COUNTDOWN + "157\n157").valid
    gsm8k, p, _ = tasks["gsm8k"]
    assert gsm8k.verify(p, "#### 72").status == "correct"
    math, p, _ = tasks["math"]
    assert math.verify(p, "\\boxed{x = 4}").status == "correct"


@pytest.mark.parametrize("key", list(HOSTILE), ids=[f"{t}: {k}" for t, k in HOSTILE])
def test_hostile_completion(key, tasks, tmp_path):
    name = "math-half" if key in HALF else key[0]
    task, problem, limit = tasks[name]
    workers = _children()
    shared = set(os.listdir("/tmp"))
    start = time.monotonic()
    v = task.verify(problem, HOSTILE[key])
    took = time.monotonic() - start
    assert v.status != "correct" and not v.valid, v
    assert v.why and "\n" not in v.why, v
    assert took <= limit + 2, f"{took:.1f} s"
    assert _children() <= workers, "a process was left behind"
    assert not {n for n in set(os.listdir("/tmp")) - shared if not n.startswith("pytest")}
    # the verdict goes through an artifact whole; a lone surrogate (which UTF-8 cannot hold)
    # is stored as U+FFFD, and the stored text is judged as its verdict says
    row = {"text": HOSTILE[key], **verdict_fields(v)}
    write_parquet(tmp_path / "verdicts.parquet", [row])
    back = read_parquet(tmp_path / "verdicts.parquet")[0]
    assert back["text"] == clean_text(HOSTILE[key])
    assert {k: back[k] for k in row} == clean_text(row)
    if back["text"] != HOSTILE[key]:
        assert task.verify(problem, back["text"]).status == v.status


def test_at_least_eighty_kinds_across_five_tasks():
    from .test_code_values import FORGED
    from .test_redteam import HACKS

    kinds = {("code", k) for k in HACKS} | {("code", f[0]) for f in FORGED} | set(HOSTILE)
    assert len(kinds) >= 80, len(kinds)
    assert {t for t, _ in kinds} == {"arith", "countdown", "gsm8k", "math", "code"}
