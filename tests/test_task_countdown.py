"""The ``countdown`` task: verifier table, solver against brute force, generator, splits, raw corpus,
records, the shipped config, and property-based fuzzing of the verifier."""

from __future__ import annotations

import ast
import doctest
import json
import random
import re
from collections import Counter
from fractions import Fraction
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import selfplay.tasks.countdown as countdown
from selfplay.config import ConfigError, config_from_dict, load_config
from selfplay.tasks import TASKS, make_task, split_of
from selfplay.tasks.countdown import (
    MAX_CHARS,
    MAX_NUMBER_CHARS,
    MAX_NUMBERS,
    MIN_NUMBERS,
    NUMBER_MAX,
    TARGET_RANGES,
    CountdownTask,
    apply_op,
    render_chain,
    solution_expression,
    solve,
    split_key,
    verify_countdown,
)
from selfplay.verify import STATUSES, Verdict

REPO = Path(__file__).resolve().parents[1]
TASK = CountdownTask()
P = TASK.make_problem([3, 7, 25, 50], 118)
GOLD = "25*3=75\n50-7=43\n75+43=118\n118"
FUZZ = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_registered():
    assert TASKS["countdown"] is CountdownTask


def test_worked_example():
    assert P.id == "3,7,25,50->118" and P.prompt == "Q:3,7,25,50->118=" and P.answer == "118"
    assert P.difficulty == 4
    assert TASK.gold_chain(P) == GOLD
    assert TASK.hint_prompt(P) == "H:25*3+50-7 Q:3,7,25,50->118="


def test_doctests():
    assert doctest.testmod(countdown).failed == 0


# ------------------------------------------------------------------------------------------------
# Verifier table

S = TASK.make_problem([2, 3, 4], 5)
Z = TASK.make_problem([0, 6, 9], 9)
PROBLEMS = {"p": P, "s": S, "z": Z}

# (id, problem, completion, status, valid, index of the first bad step or None, substring of a why)
CASES = [
    # --- correct
    ("gold", "p", GOLD, "correct", True, None, None),
    ("other-solution", "p", "25*3=75\n75+50=125\n125-7=118\n118", "correct", True, None, None),
    ("operands-swapped", "p", "3*25=75\n50-7=43\n43+75=118\n118", "correct", True, None, None),
    (
        "spaces-and-blank-lines",
        "p",
        "  25 * 3 = 75 \n\n50-7=43\r\n\t75+43 =118\n 118 \n",
        "correct",
        True,
        None,
        None,
    ),
    ("leading-zeros", "p", "25*3=075\n50-7=43\n75+43=118\n0118", "correct", True, None, None),
    ("extra-valid-step", "s", "2+3=5\n5\n", "correct", True, None, None),
    ("target-is-given", "z", "9", "correct", True, None, None),
    # --- wrong arithmetic, propagated (the task's own slip shape)
    (
        "wrong-product",
        "p",
        "25*3=76\n50-7=43\n76+43=119\n119",
        "wrong",
        False,
        0,
        "25*3 is 75, not 76",
    ),
    # --- the target reached through a bad equation: wrong, the step marked
    (
        "target-via-wrong-sum",
        "p",
        "25*3=75\n50-7=43\n75+43=119\n119-1=118\n118",
        "wrong",
        False,
        2,
        "75+43 is 118, not 119",
    ),
    ("target-via-bad-last-step", "p", "50+25=118\n118", "wrong", False, 0, "50+25 is 75"),
    # --- availability
    (
        "reused-number",
        "p",
        "50+50=100\n100+25=125\n125-7=118\n118",
        "wrong",
        False,
        0,
        "50 is not available: already used",
    ),
    (
        "reused-result",
        "p",
        "25*3=75\n75+50=125\n75+43=118\n118",
        "wrong",
        False,
        2,
        "75 is not available: already used",
    ),
    (
        "unknown-number",
        "p",
        "60+58=118\n118",
        "wrong",
        False,
        0,
        "60 is not available: neither given nor computed",
    ),
    (
        "answer-only",
        "p",
        "118",
        "wrong",
        False,
        0,
        "118 is not held at the end: neither given nor computed",
    ),
    ("answer-used-up", "s", "2+3=5\n5*4=20\n5", "wrong", False, 2, "5 is not held at the end"),
    # --- the rules
    ("division-not-exact", "p", "50/3=16\n16\n", "wrong", False, 0, "50/3 is not a whole number"),
    ("negative", "p", "7-50=43\n43\n", "wrong", False, 0, "7-50 is negative"),
    ("division-by-zero", "z", "6/0=0\n0", "wrong", False, 0, "6/0 divides by zero"),
    # --- a valid chain to the wrong number
    ("wrong-answer", "p", "25*3=75\n75+50=125\n125", "wrong", False, None, "target is 118"),
    (
        "answer-not-last-result",
        "p",
        "25*3=75\n75+50=125\n118",
        "wrong",
        False,
        2,
        "118 is not held",
    ),
    # --- not equations
    ("two-ops", "p", "25*3+43=118\n118", "wrong", False, 0, "not an equation"),
    ("no-result", "p", "25*3\n75", "wrong", False, 0, "not an equation"),
    ("arabic-indic", "p", "٢٥*3=75\n75", "wrong", False, 0, "not an equation"),
    ("x-for-times", "p", "25x3=75\n75", "wrong", False, 0, "not an equation"),
    ("huge-number-in-step", "p", "9" * 5000 + "+1=2\n2", "wrong", False, 0, "number too long"),
    # --- unparseable
    ("empty", "p", "", "unparseable", False, None, "empty"),
    ("blank", "p", " \n\t\n ", "unparseable", False, None, "empty"),
    ("garbage", "p", "the answer is 118!", "unparseable", False, None, "no final answer"),
    ("no-answer-line", "p", "25*3=75\n50-7=43\n75+43=118", "unparseable", False, None, "no final"),
    ("answer-with-words", "p", GOLD + " done", "unparseable", False, None, "no final answer"),
    ("too-long", "p", "1+1=2\n" * (MAX_CHARS // 6 + 1) + "2", "unparseable", False, None, "long"),
]


@pytest.mark.parametrize(
    "pkey, completion, status, valid, bad, why", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_verdict_table(pkey, completion, status, valid, bad, why):
    v = verify_countdown(PROBLEMS[pkey], completion)
    assert v.status == status, v
    assert v.valid == valid, v
    assert v.first_bad_step == bad, v
    if why is not None:
        assert why in v.why + " | " + " | ".join(s.why for s in v.steps), v
    if status != "unparseable":
        assert v.steps, v  # the answer line is always a step
    # For this task a correct status means a valid chain (the target is printed in the prompt).
    assert (v.status == "correct") == v.valid


def test_invalid_step_names_the_step():
    v = verify_countdown(P, "25*3=75\n50-7=44\n75+44=118\n118")
    assert v.status == "wrong" and v.why == "invalid step 2: 50-7 is 43, not 44"
    # Later lines are judged on the values the chain claims: 75+44 is wrong arithmetic on its own.
    assert [s.ok for s in v.steps] == [True, False, False, True]


def test_both_reasons_are_given():
    v = verify_countdown(P, "7+7=15\n15")
    assert v.steps[0].why == "7 is not available: already used; 7+7 is 14, not 15"


def test_answer_is_reported_verbatim_and_truncated():
    assert verify_countdown(P, GOLD.replace("\n118", "\n0118")).answer == "0118"
    v = verify_countdown(P, "9" * 10_000)
    assert v.status == "wrong" and v.answer == "9" * MAX_NUMBER_CHARS + "..."
    assert v.steps[-1].why == "number too long"


def test_no_time_left_is_a_timeout():
    v = verify_countdown(P, GOLD, seconds=-1.0)
    assert v.status == "timeout" and not v.valid


@pytest.mark.parametrize(
    "completion", [None, b"118", 118, ["118"]], ids=["None", "bytes", "int", "list"]
)
def test_non_str_completion(completion):
    v = verify_countdown(P, completion)
    assert v.status == "error" and "not text" in v.why


HOSTILE = {
    "megabyte-garbage": "".join(chr(random.Random(0).randrange(32, 127)) for _ in range(1 << 20)),
    "megabyte-digits": "7" * (1 << 20),
    "megabyte-newlines": "\n" * (1 << 20),
    "3000-equations": "25*3=75\n" * 3000 + "118",
    "3000-growing-equations": "".join(f"{i}+1={i + 1}\n" for i in range(1, 1500)) + "118",
    "long-number-lines": ("9" * 150 + "*" + "9" * 150 + "=1\n") * 60 + "118",
    "regex-bait": "1" * 10_000 + "+" + "\t" * 9000 + "\n118",
    "nul-bytes": "\x00" * 10_000,
    "surrogates": "\ud800\udfff\n118",
}


@pytest.mark.parametrize("completion", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_completion_gets_a_verdict(completion):
    v = verify_countdown(P, completion)
    assert isinstance(v, Verdict) and v.status in STATUSES and v.status != "error", v.why
    assert not v.valid
    assert v.answer is None or len(v.answer) <= MAX_NUMBER_CHARS + 3
    assert all(len(s.text) <= countdown.MAX_STEP_CHARS + 3 for s in v.steps)


# ------------------------------------------------------------------------------------------------
# Solver


@cache
def _fewest_steps(state: tuple[int, ...]) -> dict[int, int]:
    """Every value reachable from ``state`` with the fewest equations: plain exhaustive search."""
    best = dict.fromkeys(state, 0)
    for i in range(len(state)):
        for j in range(len(state)):
            if i == j:
                continue
            rest = tuple(x for k, x in enumerate(state) if k not in (i, j))
            for op in "+-*/":
                c = apply_op(state[i], op, state[j])
                if c is None:
                    continue
                for v, n in _fewest_steps(tuple(sorted((*rest, c)))).items():
                    if best.get(v, 99) > n + 1:
                        best[v] = n + 1
    return best


@FUZZ
@given(
    st.lists(st.integers(min_value=0, max_value=15), min_size=1, max_size=4),
    st.integers(min_value=0, max_value=200),
)
def test_solver_matches_brute_force(numbers, target):
    want = _fewest_steps(tuple(sorted(numbers))).get(target)
    got = solve(numbers, target)
    assert (got is None) == (want is None), (numbers, target, got, want)
    if got is not None:
        assert len(got) == want  # a shortest solution
        assert verify_countdown(TASK.make_problem(numbers, target), render_chain(got, target)).valid


def test_solver_examples():
    assert solve([3, 7, 25, 50], 129) == [(50, "-", 7, 43), (43, "*", 3, 129)]
    assert solve([3, 7, 25, 50], 115) is None
    assert solve([5, 5], 5) == []  # the target is given: nothing to do
    assert solve([4, 4], 0) == [(4, "-", 4, 0)]
    assert solve([25, 24, 23, 22, 21, 19], 10**9 + 7) is None  # an exhaustive miss, bounded


def test_solver_gives_up_within_its_budget():
    assert solve([3, 7, 11, 13, 17, 19], 997, max_nodes=10) is None
    assert solve([3, 7, 11, 13, 17, 19], 997) is not None


def _eval(expr: str) -> Fraction:
    """Evaluate a solution expression exactly (test oracle; only numbers and + - * /)."""

    def walk(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.BinOp):
            a, b = walk(node.left), walk(node.right)
            ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
            return ops[type(node.op)] if type(node.op) in ops else a / b
        raise AssertionError(f"unexpected node in {expr!r}")

    return walk(ast.parse(expr, mode="eval").body)


# ------------------------------------------------------------------------------------------------
# Generator, splits, gold chains


@pytest.mark.parametrize("d", range(MIN_NUMBERS, MAX_NUMBERS + 1))
def test_generator_ranges_and_gold_chains(d):
    rng = random.Random(d)
    problems = TASK.sample_problems("train", d, 150, rng)
    assert len(problems) == 150 and len({p.id for p in problems}) == 150
    lo, hi = TARGET_RANGES[d]
    for p in problems:
        numbers, target = p.meta["numbers"], p.meta["target"]
        assert p.difficulty == len(numbers) == d
        assert all(1 <= x <= NUMBER_MAX for x in numbers)
        assert lo <= target <= hi and target not in numbers
        assert p.prompt == f"Q:{p.id}=" and TASK.parse_prompt(p.prompt).id == p.id
        chain = TASK.gold_chain(p)
        v = TASK.verify(p, chain)
        assert v.valid, (p.id, chain, v)
        assert 1 <= chain.count("\n") <= d - 1
        assert len(chain) <= TASK.max_new_tokens(d)
        hint = TASK.hint_prompt(p)
        expr = hint[2 : hint.index(" Q:")]
        assert hint.endswith(" " + p.prompt) and _eval(expr) == target
        used = Counter(int(x) for x in re.findall(r"\d+", expr))
        assert not used - Counter(numbers)  # each number at most once


def test_targets_spread_over_the_range():
    problems = TASK.sample_problems("train", 4, 300, random.Random(0))
    lo, hi = TARGET_RANGES[4]
    targets = [p.meta["target"] for p in problems]
    assert min(targets) < lo + (hi - lo) // 4 and max(targets) > hi - (hi - lo) // 4


def test_splits_are_deterministic_and_disjoint():
    for d in (2, 3, 5):
        a = TASK.sample_problems("test", d, 60, random.Random(1))
        b = TASK.sample_problems("test", d, 60, random.Random(1))
        assert [p.id for p in a] == [p.id for p in b]
        train = TASK.sample_problems("train", d, 300, random.Random(2))
        key = lambda p: split_key(p.meta["numbers"], p.meta["target"])  # noqa: E731
        assert all(split_of(key(p)) == "test" for p in a)
        assert all(split_of(key(p)) == "train" for p in train)
        assert not {key(p) for p in a} & {key(p) for p in train}


def test_reordered_numbers_share_a_split():
    assert split_key([7, 3, 25], 46) == split_key([25, 7, 3], 46) == "3,7,25->46"
    assert TASK.make_problem([7, 3], 10).id != TASK.make_problem([3, 7], 10).id


def test_small_difficulty_has_enough_test_problems():
    assert len(TASK.sample_problems("test", 2, 100, random.Random(0))) == 100


def test_unsupported_difficulty():
    with pytest.raises(ValueError, match="2..6"):
        TASK.sample_problems("train", 7, 5, random.Random(0))


@pytest.mark.parametrize("d", range(MIN_NUMBERS, MAX_NUMBERS + 1))
def test_slips_propagate_to_a_wrong_number(d):
    rng = random.Random(10 + d)
    for p in TASK.sample_problems("train", d, 40, rng):
        chain = TASK.gold_chain(p, "wrong_result", rng)
        v = TASK.verify(p, chain)
        assert v.status == "wrong" and not v.valid, (p.id, chain)
        bad = [i for i, s in enumerate(v.steps) if not s.ok]
        assert len(bad) == 1 and bad[0] < len(v.steps) - 1, (chain, v)  # one wrong equation
        assert v.steps[bad[0]].why.startswith(tuple("0123456789"))  # an arithmetic slip
        assert len(chain) <= TASK.max_new_tokens(d)


def test_unknown_slip_and_unsolvable_gold():
    with pytest.raises(ValueError, match="unknown slip"):
        TASK.gold_chain(P, "dropped_carry")
    with pytest.raises(ValueError, match="no solution"):
        TASK.gold_chain(TASK.make_problem([3, 7, 25, 50], 115))


def test_solution_expression_parenthesizes_only_where_needed():
    assert solution_expression([3, 7, 25, 50], solve([3, 7, 25, 50], 129)) == "(50-7)*3"
    steps = [(10, "-", 4, 6), (12, "/", 6, 2)]
    assert solution_expression([10, 4, 12], steps) == "12/(10-4)"
    assert TASK.hint_prompt(Z) == "H:9 Q:0,6,9->9="  # the target is given: nothing to do


# ------------------------------------------------------------------------------------------------
# Raw corpus and config


def _cfg(**raw):
    return config_from_dict(
        {
            "task": {"name": "countdown"},
            "raw": {"size": 400, "difficulties": [2, 3, 4], **raw},
            "loop": {"pool_difficulties": [2, 3, 4, 5]},
            "eval": {"difficulties": [2, 3, 4, 5, 6]},
        }
    )


def test_raw_corpus_composition():
    cfg = _cfg(slip_rate=0.25, answer_only_rate=0.25, hint_rate=0.5)
    out = TASK.raw_corpus(cfg.raw, random.Random(0))
    assert len(out) == 400
    assert out == TASK.raw_corpus(cfg.raw, random.Random(0))  # deterministic
    sources = Counter(e.source for e in out)
    assert 60 <= sources["raw-slip"] <= 140 and 60 <= sources["raw-answer-only"] <= 140
    assert 50 <= sources["raw-hinted"] <= 150 and sources["raw"] >= 50
    assert set(sources) == {"raw", "raw-slip", "raw-answer-only", "raw-hinted"}
    assert {e.difficulty for e in out} == {2, 3, 4}
    for e in out:
        p = TASK.parse_prompt(e.prompt.split(" ")[-1])
        assert split_of(split_key(p.meta["numbers"], p.meta["target"])) == "train"
        v = TASK.verify(p, e.completion)
        if e.source == "raw-answer-only":
            assert e.completion == p.answer and not v.valid
        elif e.source == "raw-slip":
            assert v.status == "wrong" and v.answer != p.answer
        else:
            assert v.valid, (e, v)
        if e.source == "raw-hinted":
            assert e.prompt == TASK.hint_prompt(p)


def test_raw_corpus_clean():
    out = TASK.raw_corpus(_cfg().raw, random.Random(3))
    assert {e.source for e in out} == {"raw"}
    assert all(TASK.verify(TASK.parse_prompt(e.prompt), e.completion).valid for e in out)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["raw.difficulties=[1,2]"], "raw.difficulties: countdown difficulties"),
        (["eval.difficulties=[2,7]"], "eval.difficulties: countdown difficulties"),
        (["loop.pool_difficulties=[9]"], "loop.pool_difficulties"),
        (["task.data=problems.jsonl"], "task.data: countdown generates its problems"),
    ],
)
def test_config_errors(overrides, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(REPO / "configs/countdown/default.yaml", overrides)


def test_shipped_config_fits():
    cfg = load_config(REPO / "configs/countdown/default.yaml")
    assert cfg.task.name == "countdown" and cfg.model.preset == "tiny"
    task = make_task(cfg)
    assert isinstance(task, CountdownTask)
    # Every raw example, and the gold chain of every evaluated difficulty, fits the training length.
    examples = task.raw_corpus(cfg.raw, random.Random(cfg.seed))
    assert len(examples) == cfg.raw.size
    longest = max(len(e.prompt) + len(e.completion) + 1 for e in examples)
    rng = random.Random(0)
    for d in cfg.eval.difficulties:
        for p in task.sample_problems("test", d, 30, rng):
            longest = max(longest, len(p.prompt) + len(task.gold_chain(p)) + 1)
    assert longest <= cfg.train.max_length


# ------------------------------------------------------------------------------------------------
# Records


def test_records():
    assert TASK.problem_from_record({"numbers": [3, 7, 25], "target": 46}, 0).id == "3,7,25->46"
    assert TASK.problem_from_record({"nums": [3, 7], "target": 21}, 0).meta["target"] == 21
    for prompt in ["Q:3,7,25->46=", " Q:3,7,25->46 \n"]:
        p = TASK.problem_from_record({"prompt": prompt}, 0)
        assert p.id == "3,7,25->46" and p.difficulty == 3 and p.answer == "46"


@pytest.mark.parametrize(
    "record, fragment",
    [
        ({}, "needs 'prompt'"),
        ({"numbers": "3,7", "target": 10}, "needs 'prompt'"),
        ({"numbers": [3, 7]}, "needs 'prompt'"),
        ({"numbers": [3, 7], "target": 10.0}, "needs 'prompt'"),
        ({"numbers": [3, 7], "target": True}, "needs 'prompt'"),
        ({"numbers": [3, 7], "target": -1}, "needs 'prompt'"),
        ({"numbers": [3, -7], "target": 10}, "non-negative integers"),
        ({"numbers": [3, True], "target": 10}, "non-negative integers"),
        ({"numbers": [3, "7"], "target": 10}, "non-negative integers"),
        ({"numbers": [], "target": 10}, "1 to 10 numbers"),
        ({"numbers": list(range(11)), "target": 10}, "1 to 10 numbers"),
        ({"numbers": [10**9, 7], "target": 10}, "at most 9 digits"),
        ({"numbers": [3, 7], "target": 10**18}, "at most 18 digits"),
        ({"prompt": "Q:3+4="}, "not a countdown prompt"),
        ({"prompt": "Q:3,7->"}, "not a countdown prompt"),
        ({"prompt": "Q:" + "1" * 5000 + "->3="}, "not a countdown prompt"),
        ({"prompt": "Q:" + "1," * 20 + "1->3="}, "1 to 10 numbers"),
    ],
)
def test_bad_records(record, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        TASK.problem_from_record(record, 0)


def test_verify_file(tmp_path):
    from selfplay.views.verify_file import verify_file

    path = tmp_path / "chains.jsonl"
    lines = [
        {"numbers": [3, 7, 25, 50], "target": 118, "completion": GOLD},
        {"numbers": [3, 7, 25, 50], "target": 118, "completion": "118"},
        {"prompt": "Q:3,7,25,50->129=", "completion": "50-7=43\n43*3=129\n129"},
        {"numbers": [3, 7, 25, 50], "target": 115, "completion": "115"},
        {"numbers": "nope", "target": 1},
    ]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    got = verify_file("countdown", path, progress=False)
    assert [(r.verdict.status, r.verdict.valid) for r in got] == [
        ("correct", True),
        ("wrong", False),
        ("correct", True),
        ("wrong", False),
        ("error", False),
    ]
    gold = verify_file("countdown", path, gold=True, progress=False)
    assert [r.verdict.status for r in gold] == ["correct", "correct", "correct", "error", "error"]
    assert "no gold solution" in gold[3].verdict.why


# ------------------------------------------------------------------------------------------------
# Fuzzing


def _reference_valid(problem, text: str) -> bool:
    """An independent check of a chain (test oracle): replay it on a list of held numbers."""
    lines = [s.strip() for s in text.split("\n") if s.strip()]
    if not lines or not re.fullmatch(r"[0-9]+", lines[-1]):
        return False
    held = list(problem.meta["numbers"])
    for line in lines[:-1]:
        m = re.fullmatch(r"([0-9]+)[ \t]*([-+*/])[ \t]*([0-9]+)[ \t]*=[ \t]*([0-9]+)", line)
        if not m or any(len(g) > MAX_NUMBER_CHARS for g in m.groups()):
            return False
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        for x in (a, b):
            if x not in held:
                return False
            held.remove(x)
        if op == "-" and a < b or op == "/" and (b == 0 or a % b):
            return False
        if c != {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else None}[op]:
            return False
        held.append(c)
    return int(lines[-1]) == problem.meta["target"] and int(lines[-1]) in held


problems = st.builds(
    lambda d, seed: TASK.sample_problems("train", d, 1, random.Random(seed))[0],
    st.integers(min_value=MIN_NUMBERS, max_value=MAX_NUMBERS),
    st.integers(min_value=0, max_value=10**6),
)


def _check(problem, text) -> Verdict:
    v = verify_countdown(problem, text)
    assert v.status in STATUSES and v.status != "error", v.why
    assert (v.status == "correct") == v.valid
    assert v.valid == _reference_valid(problem, text), (problem.id, text, v)
    if v.status == "correct":
        assert v.answer is not None and (v.answer.lstrip("0") or "0") == problem.answer
    return v


@FUZZ
@given(problems, st.text())
def test_fuzz_arbitrary_text(problem, text):
    _check(problem, text)


@FUZZ
@given(problems, st.from_regex(r"[0-9+\-*/= \n]*", fullmatch=True))
def test_fuzz_chain_alphabet(problem, text):
    _check(problem, text)


@FUZZ
@given(
    problems,
    st.lists(st.from_regex(r"[0-9]{1,3}[-+*/][0-9]{1,3}=[0-9]{1,4}", fullmatch=True), max_size=6),
    st.from_regex(r"[0-9]{1,4}", fullmatch=True),
)
def test_fuzz_chain_shaped(problem, lines, answer):
    _check(problem, "\n".join([*lines, answer]))


@FUZZ
@given(problems, st.data())
def test_fuzz_gold_chains_verify_and_mutations_are_judged_right(problem, data):
    gold = TASK.gold_chain(problem)
    assert verify_countdown(problem, gold).valid
    i = data.draw(st.integers(min_value=0, max_value=len(gold)))
    ch = data.draw(st.sampled_from("0123456789+-*/=\n x٣"))
    kind = data.draw(st.sampled_from(["insert", "replace", "delete"]))
    j = i + (kind != "insert")
    mutated = gold[:i] + ("" if kind == "delete" else ch) + gold[j:]
    _check(problem, mutated)
