"""The ``arith`` verifier: every kind of slip, the task's own slips, gold chains, bounded behaviour."""

from __future__ import annotations

import random
import time

import pytest

from selfplay.config import config_from_dict
from selfplay.tasks.arith import MAX_NUMBER_CHARS, ArithTask, add_chain, mul_chain, verify_arith
from selfplay.verify import STATUSES, Verdict

TASK = ArithTask(["add", "mul"])
ADD = TASK.make_problem(4729, "+", 386)
MUL = TASK.make_problem(47, "*", 36)
MUL3 = TASK.make_problem(123, "*", 456)
PROBLEMS = {"add": ADD, "mul": MUL, "mul3": MUL3}

ADD_GOLD = "9+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5115"
MUL_GOLD = "47*6=282|47*30=1410|282+1410=1692|1692"
MUL3_GOLD = "123*6=738|123*50=6150|123*400=49200|738+6150=6888|6888+49200=56088|56088"


def test_worked_examples_are_the_gold_chains():
    assert TASK.gold_chain(ADD) == ADD_GOLD
    assert TASK.gold_chain(MUL) == MUL_GOLD
    assert TASK.gold_chain(MUL3) == MUL3_GOLD


# (id, problem, completion, status, valid, index of the first bad step or None, substring of its why)
CASES = [
    # --- correct chains
    ("add-correct", "add", ADD_GOLD, "correct", True, None, None),
    ("mul-correct", "mul", MUL_GOLD, "correct", True, None, None),
    ("mul3-correct", "mul3", MUL3_GOLD, "correct", True, None, None),
    (
        "leading-zeros-answer",
        "add",
        "9+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|0005115",
        "correct",
        True,
        None,
        None,
    ),
    (
        "whitespace-around-segments",
        "add",
        "  9+6=15 c1 | 2+8+1=11 c1 |7+3+1=11 c1|\t4+0+1=5 c0 | 5115 \n",
        "correct",
        True,
        None,
        None,
    ),
    (
        "mul-whitespace",
        "mul",
        " 47*6=282 |47*30=1410| 282+1410=1692 |1692\n",
        "correct",
        True,
        None,
        None,
    ),
    # --- addition slips
    (
        "dropped-carry",
        "add",
        "9+6=15 c1|2+8+0=10 c1|7+3+1=11 c1|4+0+1=5 c0|5105",
        "wrong",
        False,
        1,
        "dropped carry",
    ),
    (
        "dropped-carry-late",
        "add",
        "9+6=15 c1|2+8+1=11 c1|7+3+0=10 c1|4+0+1=5 c0|5015",
        "wrong",
        False,
        2,
        "dropped carry",
    ),
    (
        "wrong-digit-sum",
        "add",
        "9+6=14 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5114",
        "wrong",
        False,
        0,
        "wrong sum: 9+6=15, not 14",
    ),
    (
        "wrong-digit-sum-with-carry",
        "add",
        "9+6=15 c1|2+8+1=12 c1|7+3+1=11 c1|4+0+1=5 c0|5125",
        "wrong",
        False,
        1,
        "wrong sum: 2+8+1=11, not 12",
    ),
    (
        "wrong-carry-out",
        "add",
        "9+6=15 c0|2+8+0=10 c1|7+3+1=11 c1|4+0+1=5 c0|5105",
        "wrong",
        False,
        0,
        "wrong carry out: 15 carries 1, not 0",
    ),
    (
        "wrong-operand-digit-a",
        "add",
        "9+6=15 c1|3+8+1=12 c1|7+3+1=11 c1|4+0+1=5 c0|5125",
        "wrong",
        False,
        1,
        "wrong digit: column 2 of 4729 is 2, not 3",
    ),
    (
        "wrong-operand-digit-b",
        "add",
        "9+5=14 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5114",
        "wrong",
        False,
        0,
        "wrong digit: column 1 of 386 is 6, not 5",
    ),
    (
        "carry-in-on-first-column",
        "add",
        "9+6+0=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5115",
        "correct",
        False,
        0,
        "the first column has no carry in",
    ),
    (
        "missing-carry-in",
        "add",
        "9+6=15 c1|2+8=10 c1|7+3+1=11 c1|4+0+1=5 c0|5105",
        "wrong",
        False,
        1,
        "missing carry in (should be 1)",
    ),
    (
        "wrong-carry-in",
        "add",
        "9+6=15 c1|2+8+2=12 c1|7+3+1=11 c1|4+0+1=5 c0|5125",
        "wrong",
        False,
        1,
        "wrong carry in: should be 1, not 2",
    ),
    (
        "unparseable-step",
        "add",
        "9+6=15c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5115",
        "correct",
        False,
        0,
        "unparseable step",
    ),
    (
        "number-too-long",
        "add",
        "9+" + "0" * 200 + "6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5115",
        "correct",
        False,
        0,
        "number too long",
    ),
    # --- multiplication slips
    (
        "wrong-partial-product",
        "mul",
        "47*6=283|47*30=1410|283+1410=1693|1693",
        "wrong",
        False,
        0,
        "wrong product: 47*6=282, not 283",
    ),
    (
        "wrong-partial-factor-shift",
        "mul",
        "47*6=282|47*3=141|282+141=423|423",
        "wrong",
        False,
        1,
        "wrong partial factor: digit 2 of 36 shifted is 30, not 3",
    ),
    (
        "wrong-factor",
        "mul",
        "48*6=288|47*30=1410|288+1410=1698|1698",
        "wrong",
        False,
        0,
        "wrong factor: 48, not 47",
    ),
    (
        "wrong-running-total",
        "mul",
        "47*6=282|47*30=1410|283+1410=1693|1693",
        "wrong",
        False,
        2,
        "wrong running total: 282, not 283",
    ),
    (
        "wrong-running-total-3",
        "mul3",
        "123*6=738|123*50=6150|123*400=49200|738+6150=6888|6887+49200=56087|56087",
        "wrong",
        False,
        4,
        "wrong running total: 6888, not 6887",
    ),
    (
        "wrong-addend",
        "mul",
        "47*6=282|47*30=1410|282+1400=1682|1682",
        "wrong",
        False,
        2,
        "wrong addend: partial product 2 is 1410, not 1400",
    ),
    (
        "mul-wrong-sum",
        "mul",
        "47*6=282|47*30=1410|282+1410=1702|1702",
        "wrong",
        False,
        2,
        "wrong sum: 282+1410=1692, not 1702",
    ),
    (
        "mul-unparseable-partial",
        "mul",
        "47x6=282|47*30=1410|282+1410=1692|1692",
        "correct",
        False,
        0,
        "unparseable step (expected a partial product)",
    ),
    (
        "mul-unparseable-sum",
        "mul",
        "47*6=282|47*30=1410|282+1410|1692",
        "correct",
        False,
        2,
        "unparseable step (expected a running sum)",
    ),
    # --- answer against the chain
    (
        "answer-does-not-follow",
        "add",
        "9+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5116",
        "wrong",
        False,
        4,
        "answer does not follow from the chain (it gives 5115)",
    ),
    (
        "mul-answer-does-not-follow",
        "mul",
        "47*6=282|47*30=1410|282+1410=1692|1693",
        "wrong",
        False,
        3,
        "answer does not follow from the chain (it gives 1692)",
    ),
    (
        "right-answer-wrong-steps",
        "add",
        "9+6=14 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5115",
        "correct",
        False,
        0,
        "wrong sum",
    ),
    (
        "mul-right-answer-wrong-steps",
        "mul",
        "47*6=283|47*30=1410|282+1410=1692|1692",
        "correct",
        False,
        0,
        "wrong product",
    ),
    # --- chain shape
    (
        "missing-steps",
        "add",
        "9+6=15 c1|2+8+1=11 c1|5115",
        "correct",
        False,
        2,
        "missing steps: the chain has 2 of 4 columns",
    ),
    (
        "mul-missing-steps",
        "mul",
        "47*6=282|47*30=1410|1692",
        "correct",
        False,
        2,
        "missing steps: the chain has 2 of 3",
    ),
    (
        "extra-steps",
        "add",
        "9+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|0+0+0=0 c0|5115",
        "correct",
        False,
        4,
        "extra step: the problem has 4 columns",
    ),
    (
        "mul-extra-steps",
        "mul",
        "47*6=282|47*30=1410|282+1410=1692|1692+0=1692|1692",
        "correct",
        False,
        3,
        "extra step: the problem has 2 partial products",
    ),
    # --- answer only
    ("answer-only", "add", "5115", "correct", False, None, None),
    ("answer-only-wrong", "add", "5116", "wrong", False, None, None),
    ("mul-answer-only", "mul", " 1692\n", "correct", False, None, None),
    # --- unparseable
    (
        "no-final-number",
        "add",
        "9+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0",
        "unparseable",
        False,
        None,
        None,
    ),
    ("trailing-bar", "add", ADD_GOLD + "|", "unparseable", False, None, None),
    ("garbage", "add", "the answer is five thousand", "unparseable", False, None, None),
    ("empty", "add", "", "unparseable", False, None, None),
    ("whitespace-only", "mul", " \n\t ", "unparseable", False, None, None),
    ("signed-answer", "add", "-5115", "unparseable", False, None, None),
    ("arabic-indic-answer", "add", "٥١١٥", "unparseable", False, None, None),
    # Steps in another script's digits are not the task's chain (answer in ASCII, steps not).
    (
        "arabic-indic-step",
        "add",
        "٩+٦=١٥ c١|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5115",
        "correct",
        False,
        0,
        "unparseable step",
    ),
    (
        "fullwidth-mul-step",
        "mul",
        "47*６=282|47*30=1410|282+1410=1692|1692",
        "correct",
        False,
        0,
        "unparseable step",
    ),
]


@pytest.mark.parametrize(
    ("pkey", "completion", "status", "valid", "bad", "why"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_verdict_table(pkey, completion, status, valid, bad, why):
    v = verify_arith(PROBLEMS[pkey], completion)
    assert v.status == status, v
    assert v.valid is valid, v
    assert v.first_bad_step == bad, v
    if status in ("correct", "wrong"):
        assert v.answer is not None and v.answer.isdigit()
        assert (v.why == "") == (status == "correct")
    else:
        assert v.answer is None and v.steps == () and v.why
    if bad is None:
        assert v.steps_ok
    else:
        assert why in v.steps[bad].why, v.steps[bad]
        assert not v.steps[bad].ok
    if valid:
        assert all(s.ok and s.why == "" for s in v.steps)
        assert len(v.steps) == completion.count("|") + 1  # every step and the answer are marked


def test_answer_only_has_no_steps():
    v = verify_arith(ADD, "5115")
    assert v.status == "correct" and v.answer == "5115"
    assert v.steps == () and v.steps_ok and not v.valid


def test_answer_is_reported_verbatim():
    assert verify_arith(ADD, ADD_GOLD.replace("|5115", "|05115")).answer == "05115"


def test_no_time_left_is_a_timeout():
    v = verify_arith(ADD, ADD_GOLD, seconds=-1.0)
    assert v.status == "timeout" and not v.valid


# ------------------------------------------------------------------------------------------------
# The task's own slips


def _random_problem(rng: random.Random, op: str, digits: int):
    def num(d: int) -> int:
        return rng.randrange(10) if d == 1 else rng.randrange(10 ** (d - 1), 10**d)

    a, b = num(digits), num(rng.randint(1, digits))
    if rng.random() < 0.5:
        a, b = b, a
    return TASK.make_problem(a, op, b)


def _first_difference(x: list[str], y: list[str]) -> int:
    return next(i for i, (s, t) in enumerate(zip(x, y, strict=True)) if s != t)


SLIPS = [("+", "dropped_carry"), ("+", "wrong_sum"), ("*", "wrong_product")]


@pytest.mark.parametrize(("op", "slip"), SLIPS, ids=[s for _, s in SLIPS])
def test_task_slips_are_caught(op, slip):
    rng = random.Random(f"slips-{slip}")
    seen_dropped = 0
    for i in range(400):
        p = _random_problem(rng, op, 1 + i % 8)
        gold = TASK.gold_chain(p)
        slipped = TASK.gold_chain(p, slip, rng)
        v = verify_arith(p, slipped)
        assert v.status in ("correct", "wrong"), (p.id, slipped, v)
        assert not v.steps_ok and not v.valid, (p.id, slipped, v)
        slipped_answer = slipped.rsplit("|", 1)[1]
        if slipped_answer.lstrip("0") != p.answer.lstrip("0"):
            assert v.status == "wrong", (p.id, slipped, v)
        # Every slip the task makes changes the answer (it propagates).
        assert slipped_answer != p.answer, (p.id, slipped)
        # The first bad step is the step the slip changed, and it says what went wrong.
        at = _first_difference(gold.split("|"), slipped.split("|"))
        assert v.first_bad_step == at, (p.id, gold, slipped, v)
        why = v.steps[at].why
        if slip == "wrong_product":
            assert why.startswith("wrong product"), why
        elif why == "dropped carry":
            seen_dropped += 1
            assert "+1=" in gold.split("|")[at] and "+0=" in slipped.split("|")[at]
        else:
            # wrong_sum, or dropped_carry on a problem with no carry to drop (it falls back).
            assert why.startswith("wrong sum"), why
        # The rest of the slipped chain is consistent with the slip: only one bad step.
        assert sum(not s.ok for s in v.steps) == 1, v
    if slip == "dropped_carry":
        assert seen_dropped > 100


@pytest.mark.parametrize("op", ["+", "*"])
def test_chain_functions_with_slip(op):
    rng = random.Random(7)
    for _ in range(200):
        p = _random_problem(rng, op, rng.randint(1, 8))
        a, b = p.meta["a"], p.meta["b"]
        if op == "+":
            chain = add_chain(a, b, rng.choice(["dropped_carry", "wrong_sum"]), rng)
        else:
            chain = mul_chain(a, b, "wrong_product", rng)
        v = verify_arith(p, chain)
        assert v.status == "wrong" and not v.valid, (p.id, chain, v)


def _raw_cfg(**raw):
    return config_from_dict(
        {"task": {"ops": ["add", "mul"]}, "raw": {"size": 300, "difficulties": [1, 2, 3, 5], **raw}}
    )


def test_raw_corpus_all_slips_fail_verification():
    cfg = _raw_cfg(slip_rate=1.0)
    corpus = TASK.raw_corpus(cfg.raw, random.Random(0))
    assert len(corpus) == 300
    assert {ex.source for ex in corpus} == {"raw-slip"}
    ops = set()
    for ex in corpus:
        p = TASK.parse_prompt(ex.prompt)
        assert p.id == ex.problem_id
        ops.add(p.meta["op"])
        v = verify_arith(p, ex.completion)
        assert "|" in ex.completion
        assert not v.valid and v.status == "wrong", (ex, v)
    assert ops == {"+", "*"}


def test_raw_corpus_answer_only():
    cfg = _raw_cfg(answer_only_rate=1.0)
    corpus = TASK.raw_corpus(cfg.raw, random.Random(1))
    assert len(corpus) == 300
    for ex in corpus:
        assert ex.source == "raw-answer-only"
        p = TASK.parse_prompt(ex.prompt)
        assert ex.completion == p.answer and "|" not in ex.completion
        v = verify_arith(p, ex.completion)
        assert v.status == "correct" and v.steps == () and not v.valid


def test_raw_corpus_clean_is_all_valid():
    corpus = TASK.raw_corpus(_raw_cfg().raw, random.Random(2))
    assert {ex.source for ex in corpus} == {"raw"}
    assert all(verify_arith(TASK.parse_prompt(ex.prompt), ex.completion).valid for ex in corpus)


def test_sampled_ids_prompts_and_splits_are_pinned():
    # Runs are reproduced from their seeds: a change to how arith draws problems, names them,
    # writes their prompts or splits them changes every published arith result.
    train = TASK.sample_problems("train", 3, 4, random.Random(0))
    assert [(p.id, p.prompt, p.answer) for p in train] == [
        ("71*514", "Q:71*514=", "36494"),
        ("4+616", "Q:4+616=", "620"),
        ("733+78", "Q:733+78=", "811"),
        ("417+1", "Q:417+1=", "418"),
    ]
    test = TASK.sample_problems("test", 3, 4, random.Random(0))
    assert [p.id for p in test] == ["15*876", "17+440", "885+2", "7+345"]
    rev = ArithTask(reversed_=True).sample_problems("train", 2, 3, random.Random(1))
    assert [(p.id, p.prompt) for p in rev] == [
        ("4+82", "Q:40+28="),
        ("36+70", "Q:63+07="),
        ("59+87", "Q:95+78="),
    ]
    hinted = ArithTask(index_hints=True).sample_problems("train", 2, 3, random.Random(1))
    assert [p.prompt for p in hinted] == ["Q:p4+q8p2=", "Q:w3v6+w7v0=", "Q:k5j9+k8j7="]


def test_raw_corpus_is_pinned():
    # U for a seed, item by item: which problems, which are slipped, answer-only or hinted.
    rates = {"slip_rate": 0.25, "answer_only_rate": 0.25, "hint_rate": 0.5}
    cfg = config_from_dict(
        {"task": {"ops": ["add", "mul"]}, "raw": {"size": 10, "difficulties": [1, 2, 3], **rates}}
    )
    corpus = TASK.raw_corpus(cfg.raw, random.Random(0))
    assert [(e.problem_id, e.source, e.prompt, e.completion) for e in corpus] == [
        ("9*95", "raw", "Q:9*95=", "9*5=45|9*90=810|45+810=855|855"),
        ("8+40", "raw-answer-only", "Q:8+40=", "48"),
        ("23+50", "raw-answer-only", "Q:23+50=", "73"),
        ("17*1", "raw", "Q:17*1=", "17*1=17|17"),
        ("18*41", "raw-hinted", "H:738 Q:18*41=", "18*1=18|18*40=720|18+720=738|738"),
        ("4+8", "raw-slip", "Q:4+8=", "4+8=13 c1|13"),
        ("79*25", "raw-hinted", "H:1975 Q:79*25=", "79*5=395|79*20=1580|395+1580=1975|1975"),
        ("80+66", "raw-hinted", "H:146 Q:80+66=", "0+6=6 c0|8+6+0=14 c1|146"),
        ("772+133", "raw", "Q:772+133=", "2+3=5 c0|7+3+0=10 c1|7+1+1=9 c0|905"),
        ("5*70", "raw-slip", "Q:5*70=", "5*0=0|5*70=360|0+360=360|360"),
    ]


# ------------------------------------------------------------------------------------------------
# Gold chains


@pytest.mark.parametrize("op", ["+", "*"])
@pytest.mark.parametrize("digits", range(1, 9))
def test_gold_chains_verify(op, digits):
    rng = random.Random(f"gold-{op}-{digits}")
    for _ in range(60):
        p = _random_problem(rng, op, digits)
        v = verify_arith(p, TASK.gold_chain(p))
        assert v.status == "correct" and v.valid, (p.id, v)
        assert v.answer == p.answer


@pytest.mark.parametrize(
    ("a", "op", "b"),
    [
        (0, "+", 0),
        (9, "+", 1),
        (99999999, "+", 1),
        (1, "+", 99999999),
        (0, "*", 0),
        (7, "*", 0),
        (0, "*", 123),
        (99999999, "*", 99999999),
        (1000, "*", 1001),
    ],
)
def test_gold_chain_edge_problems(a, op, b):
    p = TASK.make_problem(a, op, b)
    v = verify_arith(p, TASK.gold_chain(p))
    assert v.valid and v.answer == str(a + b if op == "+" else a * b)


# ------------------------------------------------------------------------------------------------
# Bounded behaviour on hostile input

_rng = random.Random(3)
HOSTILE = [
    ("10k-digit-answer", "1" * 10_000),
    ("10k-digit-step", "1" * 10_000 + "+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5115"),
    ("10k-digit-mul-step", "47*" + "6" * 10_000 + "=282|1692"),
    ("megabyte-garbage", "".join(chr(_rng.randrange(32, 127)) for _ in range(1 << 20))),
    ("megabyte-bars", "|" * (1 << 20)),
    ("megabyte-digits", "7" * (1 << 20)),
    ("5000-steps", "|".join(["9+6=15 c1"] * 5000) + "|5115"),
    ("5000-short-steps", "1|" * 5000 + "5115"),
    ("5000-mul-steps", "|".join(["47*6=282"] * 5000) + "|1692"),
    ("5000-sum-steps", "47*6=282|47*30=1410|" + "1+1=2|" * 3000 + "1692"),
    ("arabic-indic", "٣+٤=٧ c٠|٣٣٣"),
    ("nul-bytes", "\x00" * 10_000),
    ("nul-in-chain", ADD_GOLD.replace("|", "\x00|")),
    ("nul-after-answer", ADD_GOLD + "\x00"),
    ("surrogates", "\ud800\udfff|5115"),
    ("nested-regex-bait", "+" * 5000 + "=" * 5000 + "|5115"),
]


@pytest.mark.parametrize("pkey", ["add", "mul"])
@pytest.mark.parametrize("completion", [c for _, c in HOSTILE], ids=[i for i, _ in HOSTILE])
def test_hostile_completion_is_bounded(pkey, completion):
    start = time.monotonic()
    v = verify_arith(PROBLEMS[pkey], completion)
    elapsed = time.monotonic() - start
    assert isinstance(v, Verdict)
    assert v.status in STATUSES
    assert v.status != "error", v.why
    assert not v.valid
    assert v.answer is None or len(v.answer) <= MAX_NUMBER_CHARS + 3
    assert elapsed < 2.0  # a hang guard, not a benchmark


@pytest.mark.parametrize(
    "completion",
    [None, b"5115", 5115, ["5115"], object()],
    ids=["None", "bytes", "int", "list", "object"],
)
def test_non_str_completion(completion):
    v = verify_arith(ADD, completion)
    assert isinstance(v, Verdict)
    assert v.status == "error" and "not text" in v.why
    assert not v.valid


def test_huge_answer_is_truncated_in_verdict():
    v = verify_arith(ADD, "9" * 10_000)
    assert v.status == "wrong"
    assert v.answer == "9" * MAX_NUMBER_CHARS + "..."
