"""Step plans: matched budgets in supervised tokens, and max_epochs as a hard cap."""

from __future__ import annotations

from selfplay.engine.models import build_char_tokenizer
from selfplay.tasks import Example
from selfplay.training import (
    count_supervised_tokens,
    count_tokens,
    plan_matched,
    plan_order,
    plan_steps,
)


def test_supervised_tokens_are_the_completion_and_its_end():
    tok = build_char_tokenizer()
    ex = [Example("Q:12+3=", "2+3=5 c0|15", "12+3", 2, "raw")]
    assert count_supervised_tokens(tok, ex) == [len("2+3=5 c0|15") + 1]
    assert count_tokens(tok, ex) == [len("Q:12+3=") + len("2+3=5 c0|15") + 1]


def test_two_data_sets_with_one_budget_train_the_same_steps_and_tokens():
    short, long = [10] * 500, [25] * 500
    a, b = plan_matched(short, 64_000, 640), plan_matched(long, 64_000, 640)
    assert a.steps == b.steps == 100
    assert (a.batch_size, b.batch_size) == (64, 26)
    # Supervised tokens match to within half an example per step (here < 1.6%; < 1% at 64).
    assert a.steps * a.batch_size * 10 == 64_000
    assert abs(b.steps * b.batch_size * 25 - 64_000) <= b.steps * 25 / 2


def test_max_epochs_is_never_exceeded():
    plan = plan_matched([10] * 100, 64_000, 640, max_epochs=4)
    assert plan.capped and plan.steps * plan.batch_size <= 4 * 100
    tiny = plan_matched([10] * 10, 64_000, 640, max_epochs=4)
    assert tiny.capped and tiny.steps * tiny.batch_size <= 40  # one small step, not 128 examples
    assert plan_steps([10] * 10, 10_000, 4, max_epochs=4) * 4 <= 40
    assert plan_steps([10] * 10, 10_000, 64, max_epochs=4) == 0
    assert plan_matched([10] * 100, 2_560, 640, max_epochs=4).capped is False
    assert plan_matched([10] * 100, 6_400, 640, multiple_of=8).batch_size % 8 == 0


def test_plan_order_is_whole_passes():
    order = plan_order(10, 3, 8, seed=1)
    assert len(order) == 24 and sorted(order[:10]) == list(range(10))
    assert order == plan_order(10, 3, 8, seed=1)
