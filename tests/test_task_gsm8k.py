"""The ``gsm8k`` task: records, the exact calculator, the verifier, the audit on the real gold."""

from __future__ import annotations

import json
import random
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfplay.config import config_from_dict
from selfplay.tasks import TASKS, make_task
from selfplay.tasks.gsm8k import (
    CalcError,
    GSM8KTask,
    audit_gold,
    evaluate,
    rejection_reason,
    verify_gsm8k,
)
from selfplay.verify import STATUSES

FIXTURE = Path(__file__).parent / "fixtures" / "gsm8k_problems.jsonl"
from .shared_data import GSM8K_TRAIN  # noqa: E402

RECORDS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
JARS = GSM8KTask.problem_from_record(RECORDS[0], 0)  # gold: 72, two annotated lines
FUZZ = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


# ------------------------------------------------------------------------------------------------
# Records


def test_problem_from_record():
    p = JARS
    assert TASKS["gsm8k"] is GSM8KTask
    assert p.id.startswith("gsm8k-") and p.id == GSM8KTask.problem_from_record(RECORDS[0], 9).id
    assert p.prompt == f"Question: {RECORDS[0]['question']}\nAnswer: "
    assert p.answer == "72" and p.difficulty == 2 and p.meta["gold"] == RECORDS[0]["answer"]
    trees = GSM8KTask.problem_from_record(RECORDS[2], 2)
    assert trees.answer == "1320" and trees.difficulty == 3  # "#### 1,320": commas removed
    assert GSM8KTask.problem_from_record(RECORDS[3], 3).difficulty == 1  # no annotation: 1
    assert GSM8KTask.problem_from_record(RECORDS[4], 4).answer == "2.5"
    many = {"question": "q", "answer": "<<1+1=2>>\n" * 12 + "#### 2"}
    assert GSM8KTask.problem_from_record(many, 0).difficulty == 8  # clipped
    bare = GSM8KTask.problem_from_record({"question": "q", "answer": 7}, 0)
    assert bare.answer == "7" and bare.meta["gold"] == "#### 7"


@pytest.mark.parametrize(
    "record, message",
    [
        ({"answer": "#### 3"}, "question"),
        ({"question": "  ", "answer": "#### 3"}, "question"),
        ({"question": "q"}, "'answer' string"),
        ({"question": "q", "answer": ["#### 3"]}, "'answer' string"),
        ({"question": "q", "answer": "no final line"}, "'#### <number>'"),
        ({"question": "q", "answer": "#### " + "9" * 50}, "longer than"),
    ],
)
def test_bad_records(record, message):
    with pytest.raises(ValueError, match=message):
        GSM8KTask.problem_from_record(record, 0)


def test_dataset_task_from_config(tmp_path):
    cfg = config_from_dict(
        {
            "task": {"name": "gsm8k", "data": str(FIXTURE)},
            "raw": {"size": 6, "difficulties": [1, 2, 3], "answer_only_rate": 0.5},
            "loop": {"pool_difficulties": [1, 2]},
            "eval": {"difficulties": [1, 2]},
        }
    )
    task = make_task(cfg)
    assert isinstance(task, GSM8KTask) and len(task.problems) == len(RECORDS)
    raw = task.raw_corpus(cfg, random.Random(0))
    assert len(raw) == 6 and {e.source for e in raw} <= {"raw", "raw-answer-only"}
    by_id = {p.id: p for p in task.problems}
    for e in raw:  # every raw item verifies as correct, and a full gold chain as valid
        v = task.verify(by_id[e.problem_id], e.completion)
        assert v.status == "correct"
        assert v.valid == (e.source == "raw")
    assert task.answer_only(JARS) == "#### 72"
    assert "72" in task.hint_prompt(JARS) and JARS.prompt in task.hint_prompt(JARS)
    assert task.max_new_tokens(2) >= len(JARS.meta["gold"])


# ------------------------------------------------------------------------------------------------
# The calculator


@pytest.mark.parametrize(
    "expr, value",
    [
        ("48/2", 24),
        ("2+3*4", 14),
        ("(2+3)*4", 20),
        ("10-4-3", 3),
        ("100/10/5", 2),
        ("-5+2", -3),
        ("--5", 5),
        ("-(3 + .5) * 2", -7),
        ("1/3*3", 1),
        ("0.1+0.2", Fraction(3, 10)),
        ("5.", 5),
        ("20%*50", 10),
        ("50%", Fraction(1, 2)),
        ("7//2", 3),
        ("-7//2", -4),
        (" 12 * 2 ", 24),
    ],
)
def test_evaluate(expr, value):
    assert evaluate(expr) == value


@pytest.mark.parametrize(
    "expr, message",
    [
        ("5/0", "division by zero"),
        ("5//(2-2)", "division by zero"),
        ("2**3", "unexpected '\\*'"),
        ("__import__('os')", "unexpected '_'"),
        ("2(3)", "unexpected '\\('"),
        ("1+", "unexpected end"),
        ("(1+2", "unclosed"),
        ("1,000*2", "unexpected ','"),
        ("12 x 2", "unexpected 'x'"),
        ("", "empty"),
        ("(" * 40 + "1" + ")" * 40, "nested deeper"),
        ("-" * 40 + "1", "nested deeper"),
        ("1" * 300, "longer than"),
    ],
)
def test_evaluate_rejects(expr, message):
    with pytest.raises(CalcError, match=message):
        evaluate(expr)


# ------------------------------------------------------------------------------------------------
# The verifier

GOLD = RECORDS[0]["answer"]


@pytest.mark.parametrize(
    "completion, status, answer, valid, why",
    [
        (GOLD, "correct", "72", True, None),
        ("#### 72", "correct", "72", False, None),  # answer only: no steps
        ("#### 72.0", "correct", "72", False, None),
        ("#### $72", "correct", "72", False, None),
        ("#### 72 jars", "correct", "72", False, None),
        ("#### 144/2", "correct", "72", False, None),
        ("So she fills \\boxed{72} jars.", "correct", "72", True, None),
        ("So she fills \\boxed{\\frac{144}{2}} jars.", "correct", "72", True, None),
        ("She fills 24 and 48, which makes 72 jars.", "correct", "72", True, None),
        ("She fills 72 jars, not 73.", "wrong", "73", False, None),  # the last number counts
        ("#### 73", "wrong", "73", False, None),
        ("#### -72", "wrong", "-72", False, None),
        ("She fills many jars.", "unparseable", None, False, None),
        ("", "unparseable", None, False, None),
        ("#### " + "7" * 60, "wrong", None, False, None),  # too long to be a number
        (
            GOLD.replace("<<48/2=24>>", "<<48/2=23>>"),
            "correct",
            "72",
            False,
            "wrong calculation: 48/2 is 24, not 23",
        ),
        (
            GOLD.replace("<<48/2=24>>24", "<<48/2=24>>23"),
            "correct",
            "72",
            False,
            "wrong copy: <<48/2=24>> is followed by 23",
        ),
        (
            GOLD.replace("<<48/2=24>>", "<<48/2=24"),
            "correct",
            "72",
            False,
            "unclosed calculation: '<<' without '>>'",
        ),
        (
            GOLD.replace("<<48/2=24>>", "<<48/2>>"),
            "correct",
            "72",
            False,
            "unparseable calculation: <<48/2>> is not <<expression=value>>",
        ),
        (
            GOLD.replace("<<48/2=24>>", "<<48/2=twenty>>"),
            "correct",
            "72",
            False,
            "unparseable calculation: the value 'twenty' is not a number",
        ),
        (
            GOLD.replace("<<48/2=24>>", "<<48 x 2=24>>"),
            "correct",
            "72",
            False,
            "unparseable calculation: '48 x 2': unexpected 'x'",
        ),
        (GOLD + "\nQuestion: what next?", "correct", "72", False, "text after the final answer"),
        (GOLD + "\n\n  \n", "correct", "72", True, None),
        ("A third is 10/3 = <<10/3=3.33>>3.33 jars.\n#### 72", "correct", "72", True, None),
        ("A third is <<10/3=3.3>>3.3 jars.\n#### 72", "correct", "72", True, None),
        (
            "A third is <<10/3=3.34>>3.34 jars.\n#### 72",
            "correct",
            "72",
            False,
            "wrong calculation: 10/3 is 10/3 (~3.33333), not 3.34",
        ),
        (
            "A third is <<10/3=3>>3 jars.\n#### 72",
            "correct",
            "72",
            False,
            "wrong calculation: 10/3 is 10/3 (~3.33333), not 3",
        ),
        ("Half is <<5/2=2.5>>2.50 jars.\n#### 72", "correct", "72", True, None),
        ("Total <<1000+200=1200>>1,200 jars.\n#### 72", "correct", "72", True, None),
        (
            "<<1+1=2>> and <<2+2=5>>\n#### 72",
            "correct",
            "72",
            False,
            "wrong calculation: 2+2 is 4, not 5",
        ),
    ],
)
def test_verify(completion, status, answer, valid, why):
    v = verify_gsm8k(JARS, completion)
    assert (v.status, v.valid) == (status, valid), v
    if answer is not None:
        assert v.answer == answer
    if why is not None:
        assert v.steps[v.first_bad_step].why == why
    if status == "correct" and valid:
        assert rejection_reason(v) is None


def test_steps_are_lines():
    v = verify_gsm8k(JARS, "We start.\n" + GOLD)
    assert [(s.ok, s.why) for s in v.steps] == [(True, "unchecked"), (True, ""), (True, "")]
    assert v.steps[1].text == GOLD.splitlines()[0]


def test_answers_compare_as_numbers():
    trees = GSM8KTask.problem_from_record(RECORDS[2], 2)  # gold "1,320"
    for text in ["#### 1320", "#### 1,320", "#### $1,320.00", "\\boxed{1,320}", "it is 1320."]:
        assert verify_gsm8k(trees, text).status == "correct", text
    fish = GSM8KTask.problem_from_record(RECORDS[4], 4)  # gold 2.5
    for text in ["#### 2.5", "#### 5/2", "#### 2.50", "\\boxed{\\frac{5}{2}}"]:
        assert verify_gsm8k(fish, text).status == "correct", text
    assert verify_gsm8k(fish, "#### 2").status == "wrong"


def test_bounded_on_garbage():
    assert verify_gsm8k(JARS, None).status == "error"
    start = time.monotonic()
    v = verify_gsm8k(JARS, "x" * 2_000_000)
    assert v.status == "unparseable" and "too long" in v.why
    huge = "1" * 5000  # past int()'s default limit of 4300 digits
    for text in [
        f"\\boxed{{\\frac{{{huge}}}{{2}}}}",
        f"#### {huge}",
        f"<<{huge}={huge}>>\n#### 72",
        "<<" * 49_000,
        "<<1+" * 24_000,
        "1" * 99_000,
        "(<<" + "(" * 90_000,
        "\\boxed{" * 14_000,
    ]:
        v = verify_gsm8k(JARS, text)
        assert v.status in ("wrong", "unparseable", "correct") and not v.valid, v.why
    assert time.monotonic() - start < 10  # a generous bound: each is a linear scan


@FUZZ
@given(st.text())
def test_fuzz_arbitrary_text(text):
    v = verify_gsm8k(JARS, text)
    assert v.status in STATUSES and v.status not in ("error", "timeout"), v.why
    if v.status == "correct":
        assert v.answer == "72"


@FUZZ
@given(st.from_regex(r"([0-9+\-*/%(). =$,<>#\n]|<<|>>|####){0,60}", fullmatch=True))
def test_fuzz_chain_alphabet(text):
    v = verify_gsm8k(JARS, text)
    assert v.status in STATUSES and v.status not in ("error", "timeout"), v.why
    assert all(s.ok == (s.why in ("", "unchecked")) for s in v.steps)


# ------------------------------------------------------------------------------------------------
# The audit: the verifier on all 7,473 GSM8K training solutions (docs/verifier-audit.md)


@pytest.mark.skipif(not GSM8K_TRAIN.is_file(), reason="GSM8K train.jsonl not present")
def test_audit_gold_counts():
    records = [json.loads(line) for line in GSM8K_TRAIN.read_text().splitlines() if line.strip()]
    result = audit_gold(records)
    assert dict(result["chains"]) == {"accepted": 7473}
    assert dict(result["steps"]) == {"checked": 23716, "unchecked": 3004}
    assert dict(result["mutated"]) == {"answer caught": 7473, "calculation caught": 7378}
