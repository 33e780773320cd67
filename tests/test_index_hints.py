"""``arith`` with index hints: labelled prompts and steps, verified column by column."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfplay.config import ConfigError, config_from_dict
from selfplay.tasks.arith import LETTERS, ArithTask, hinted, index_offset

TASK = ArithTask(["add"], index_hints=True)


def test_prompt_and_chain_carry_column_letters():
    p = TASK.make_problem(4729, "+", 386)
    o = p.meta["offset"]
    units, tens = LETTERS[o], LETTERS[o + 1]
    assert p.prompt == f"Q:{hinted(4729, o)}+{hinted(386, o)}="
    assert p.prompt.endswith(f"{units}9+{LETTERS[o + 2]}3{tens}8{units}6=")
    chain = TASK.gold_chain(p)
    assert chain.split("|")[0] == f"{units}:9+6=15 c1"
    assert chain.endswith("|5115")
    assert p.id == "4729+386"  # same id (and split) as without hints


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**8), st.integers(0, 10**8))
def test_gold_chains_are_valid_at_every_length(a, b):
    p = TASK.make_problem(a, "+", b)
    v = TASK.verify(p, TASK.gold_chain(p))
    assert v.valid and v.answer == str(a + b)
    assert TASK.parse_prompt(p.prompt) == p
    assert len(TASK.gold_chain(p)) <= TASK.max_new_tokens(p.difficulty)


def test_offsets_cover_the_alphabet():
    rng = random.Random(0)
    seen = {index_offset(f"{rng.randrange(1000)}+{rng.randrange(1000)}", 3) for _ in range(2000)}
    assert seen == set(range(len(LETTERS) - 3 + 1))


@pytest.mark.parametrize(
    "edit, why",
    [
        (lambda s: s[0].replace(s[0][0], "z" if s[0][0] != "z" else "y", 1), "wrong column"),
        (lambda s: s[0][2:], "unparseable step"),  # label dropped
    ],
)
def test_wrong_or_missing_labels_are_marked(edit, why):
    p = TASK.make_problem(4729, "+", 386)
    segs = TASK.gold_chain(p).split("|")
    segs[0] = edit(segs)
    v = TASK.verify(p, "|".join(segs))
    assert v.status == "correct" and not v.valid  # the answer is right, the chain is not
    assert why in v.steps[0].why


def test_plain_chain_is_not_valid_for_a_hinted_problem_and_vice_versa():
    plain = ArithTask(["add"])
    p_hint, p_plain = TASK.make_problem(57, "+", 68), plain.make_problem(57, "+", 68)
    assert not TASK.verify(p_hint, plain.gold_chain(p_plain)).valid
    assert not plain.verify(p_plain, TASK.gold_chain(p_hint)).valid


def test_parse_rejects_mismatched_letters():
    p = TASK.make_problem(12, "+", 34)
    o = p.meta["offset"]
    shifted = f"Q:{hinted(12, (o + 1) % 20)}+{hinted(34, (o + 1) % 20)}="
    with pytest.raises(ValueError, match="index letters"):
        TASK.parse_prompt(shifted)


def test_index_hints_is_addition_only():
    with pytest.raises(ConfigError, match="task.index_hints"):
        config_from_dict({"task": {"ops": ["add", "mul"], "index_hints": True}})
    cfg = config_from_dict({"task": {"index_hints": True}})
    assert ArithTask.from_config(cfg.task).index_hints
