"""The reversed ``arith`` format: prompts and answers least-significant digit first, fixed width."""

from __future__ import annotations

import random

import pytest

from selfplay.config import ConfigError, config_from_dict
from selfplay.tasks.arith import ArithTask, reversed_answer, verify_arith

TASK = ArithTask(["add", "mul"], reversed_=True)

# (a, op, b, prompt, answer)
FORMAT = [
    (4729, "+", 386, "Q:9274+6830=", "51150"),
    (5, "+", 7, "Q:5+7=", "21"),
    (0, "+", 0, "Q:0+0=", "00"),
    (10, "+", 90, "Q:01+09=", "001"),  # 100: the padding keeps the width, zeros are digits
    (999, "+", 1, "Q:999+100=", "0001"),
    (47, "*", 36, "Q:74*63=", "2961"),
    (9, "*", 9, "Q:9*9=", "18"),
    (100, "*", 3, "Q:001*3=", "0030"),
]


@pytest.mark.parametrize(
    "a,op,b,prompt,answer", FORMAT, ids=[f"{r[0]}{r[1]}{r[2]}" for r in FORMAT]
)
def test_format_round_trip(a, op, b, prompt, answer):
    p = TASK.make_problem(a, op, b)
    assert (p.prompt, p.answer, p.id) == (prompt, answer, f"{a}{op}{b}")
    assert reversed_answer(a, b, op) == answer
    # The answer read back most-significant first is the value; the prompt parses to the problem.
    assert int(answer[::-1]) == (a + b if op == "+" else a * b)
    back = TASK.parse_prompt(prompt)
    assert (back.meta["a"], back.meta["b"], back.answer) == (a, b, answer)
    assert verify_arith(p, TASK.gold_chain(p)).valid
    assert verify_arith(p, answer).valid  # answer-only: every digit is a step


def test_random_problems_verify_their_gold_and_reject_a_changed_digit():
    rng = random.Random(0)
    for d in (1, 3, 8, 20, 40):
        for p in TASK.sample_problems("train", d, 20, rng):
            assert verify_arith(p, p.answer).valid and verify_arith(p, TASK.gold_chain(p)).valid
            i = rng.randrange(len(p.answer))
            bad = p.answer[:i] + str((int(p.answer[i]) + 1) % 10) + p.answer[i + 1 :]
            v = verify_arith(p, bad)
            assert v.status == "wrong" and v.first_bad_step == i


ADD = TASK.make_problem(4729, "+", 386)
# (id, completion, status, index of the first bad step or None, substring of its why)
VERDICTS = [
    ("gold", "51150", "correct", None, None),
    ("first-digit", "61150", "wrong", 0, "wrong digit 1: 5, not 6"),
    ("last-digit", "51151", "wrong", 4, "wrong digit 5: 0, not 1"),
    ("forward-order", "05115", "wrong", 0, "wrong digit 1"),
    ("unpadded", "5115", "wrong", 4, "missing digits: 4 of 5"),
    ("extra-digit", "511500", "wrong", 5, "extra digits"),
    ("chain-gold", "9+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|51150", "correct", None, None),
    (
        "chain-bad-carry",
        "9+6=15 c1|2+8+0=10 c1|7+3+1=11 c1|4+0+1=5 c0|51150",
        "correct",
        1,
        "dropped carry",
    ),
    (
        "chain-answer-not-following",
        "9+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|51160",
        "wrong",
        4,
        "does not follow",
    ),
    ("not-a-number", "5115x", "unparseable", None, None),
]


@pytest.mark.parametrize("name,text,status,bad,why", VERDICTS, ids=[r[0] for r in VERDICTS])
def test_reversed_verdicts(name, text, status, bad, why):
    v = verify_arith(ADD, text)
    assert v.status == status
    assert v.first_bad_step == bad
    if why:
        assert why in v.steps[bad].why


def test_reversed_multiplication_chain():
    p = TASK.make_problem(47, "*", 36)
    assert TASK.gold_chain(p) == "74*6=282|74*03=0141|282+0141=2961|2961"
    v = verify_arith(p, "74*6=283|74*03=0141|282+0141=2961|2961")
    assert v.first_bad_step == 0 and v.steps[0].text == "74*6=283"  # marks name the text as written


def test_config_reversed():
    cfg = config_from_dict({"task": {"reversed": True}, "raw": {"difficulties": [1, 40]}})
    assert ArithTask.from_config(cfg.task).reversed
    with pytest.raises(ConfigError, match="not combined"):
        config_from_dict({"task": {"reversed": True, "index_hints": True}})
    with pytest.raises(ConfigError, match="at most 40"):
        config_from_dict({"task": {"reversed": True}, "raw": {"difficulties": [41]}})


def test_forward_parse_unchanged_and_reversed_leading_zero_rejected():
    fwd = ArithTask(["add"])
    assert fwd.parse_prompt("Q:12+34=").answer == "46"
    for bad in ("Q:10+3=", "Q:50+30=", "Q:3+10="):  # unequal widths, needless padding
        with pytest.raises(ValueError, match="as written"):
            TASK.parse_prompt(bad)
    assert fwd.problem_from_record({"prompt": "Q:21+43=", "reversed": True}, 0).answer == "640"
