"""Property-based checks of the ``arith`` verifier: total on any text, and never fooled by a mutation."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfplay.tasks.arith import ArithTask, verify_arith
from selfplay.verify import STATUSES

TASK = ArithTask(["add", "mul"])
FUZZ = settings(
    max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

problems = st.builds(
    TASK.make_problem,
    st.integers(min_value=0, max_value=10**8 - 1),
    st.sampled_from(["+", "*"]),
    st.integers(min_value=0, max_value=10**8 - 1),
)


def _norm(s: str) -> str:
    return s.lstrip("0") or "0"


def _check_total(problem, text):
    v = verify_arith(problem, text)
    assert v.status in STATUSES
    assert v.status != "error", v.why  # an error verdict means the verifier itself broke
    if v.valid:
        assert v.status == "correct"
    if v.status == "correct":
        assert v.answer is not None and _norm(v.answer) == problem.answer
    return v


@FUZZ
@given(problems, st.text())
def test_arbitrary_text(problem, text):
    _check_total(problem, text)


@FUZZ
@given(problems, st.from_regex(r"[0-9+*=c| ]*", fullmatch=True))
def test_chain_alphabet(problem, text):
    _check_total(problem, text)


@FUZZ
@given(
    problems,
    st.lists(
        st.from_regex(r"[0-9]{1,3}[+*][0-9]{1,3}(\+[0-9])?=[0-9]{1,4}( c[01])?", fullmatch=True),
        max_size=8,
    ),
    st.from_regex(r"[0-9]{1,9}", fullmatch=True),
)
def test_chain_shaped_text(problem, steps, answer):
    """Well-formed but arbitrary steps: they parse, so this reaches the arithmetic checks."""
    _check_total(problem, "|".join([*steps, answer]))


_NUMBER = re.compile(r"[0-9]+")


def _semantic(text: str) -> list[str]:
    """What a chain says: segments without surrounding whitespace, numbers without leading zeros.

    Only ASCII digits count as digits: a chain written in another script says something else.
    """
    return [_NUMBER.sub(lambda m: str(int(m.group())), s.strip()) for s in text.strip().split("|")]


MUTATION_CHARS = "0123456789+*=c| \n\tx-٣５"


@st.composite
def mutated(draw):
    problem = draw(problems)
    gold = TASK.gold_chain(problem)
    kind = draw(st.sampled_from(["delete", "insert", "replace", "script"]))
    if kind == "script":
        # The same digit in another script (Arabic-Indic or full-width): same value, not the chain.
        where = [i for i, ch in enumerate(gold) if ch.isdigit()]
        i = draw(st.sampled_from(where))
        base = draw(st.sampled_from([0x0660, 0xFF10]))
        return problem, gold, gold[:i] + chr(base + int(gold[i])) + gold[i + 1 :]
    i = draw(st.integers(min_value=0, max_value=len(gold) - (kind != "insert")))
    ch = draw(st.sampled_from(MUTATION_CHARS))
    if kind == "delete":
        return problem, gold, gold[:i] + gold[i + 1 :]
    if kind == "insert":
        return problem, gold, gold[:i] + ch + gold[i:]
    return problem, gold, gold[:i] + ch + gold[i + 1 :]


@FUZZ
@given(mutated())
def test_mutated_gold_chain(case):
    problem, gold, text = case
    v = _check_total(problem, text)
    if v.valid:
        # Valid only if the mutation did not change what the chain says (whitespace at a segment
        # boundary, a leading zero, replacing a character by itself).
        assert _semantic(text) == _semantic(gold), (gold, text, v)
    if _semantic(text) != _semantic(gold):
        assert not v.valid, (gold, text, v)


@FUZZ
@given(problems, st.sampled_from([" ", "\n", "\t", "  "]), st.data())
def test_whitespace_at_segment_boundaries_keeps_valid(problem, ws, data):
    gold = TASK.gold_chain(problem)
    segs = gold.split("|")
    pads = data.draw(st.lists(st.booleans(), min_size=2 * len(segs), max_size=2 * len(segs)))
    text = "|".join(
        (ws if pads[2 * i] else "") + s + (ws if pads[2 * i + 1] else "")
        for i, s in enumerate(segs)
    )
    assert verify_arith(problem, text).valid
