"""How much a training stage trains, fixed before it starts: tokens per example (all, or the
loss-bearing ones), optimizer steps for a token budget, and the order of the examples. Every
trainer (:mod:`selfplay.training.sft`, :mod:`selfplay.training.plain`) follows the same plan."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from selfplay.engine.models import user_turn
from selfplay.tasks import Example


@dataclass
class TrainResult:
    tokens: int
    """Tokens processed (prompt + completion, padding excluded)."""
    steps: int
    examples: int
    """Distinct training examples available."""
    epochs: float
    """How many times the data was gone through: > 1 means repeated data."""
    final_loss: float | None
    seconds: float
    batch_size: int = 0
    """Examples per optimizer step, over all processes."""
    first_loss: float | None = None
    """The loss over the first steps (as ``final_loss`` is over the last): whether it fell."""


@dataclass
class StepPlan:
    """A training stage's optimizer steps and examples per step, fixed before it starts."""

    steps: int
    batch_size: int
    capped: bool = False
    """``True`` when ``max_epochs`` cut the steps below what the budget asked for."""


def count_supervised_tokens(tokenizer, examples: list[Example], chat: bool = False) -> list[int]:
    """Loss-bearing tokens of each example: its completion and end-of-sequence token (with
    ``chat``: the rendered conversation minus the rendered prompt with its generation prompt)."""
    if not examples:
        return []
    if chat:
        full = count_tokens(tokenizer, examples, chat=True)
        prompts = [
            len(
                tokenizer.apply_chat_template(
                    user_turn(e.prompt), tokenize=True, add_generation_prompt=True, return_dict=True
                )["input_ids"]
            )
            for e in examples
        ]
        return [max(1, f - q) for f, q in zip(full, prompts, strict=True)]
    ids = tokenizer([e.completion for e in examples], add_special_tokens=False)["input_ids"]
    return [len(x) + 1 for x in ids]


def plan_matched(
    supervised: list[int],
    budget: int,
    tokens_per_step: float,
    max_epochs: float | None = None,
    multiple_of: int = 1,
) -> StepPlan:
    """Steps and examples per step that spend ``budget`` supervised tokens in steps of about
    ``tokens_per_step`` supervised tokens each, so two data sets with the same budget and step
    size train the same number of steps on the same number of supervised tokens (to within half
    an example per step: the batch is a whole number of examples), whatever their lengths. At most ``max_epochs`` passes over the data; the
    batch is a multiple of ``multiple_of`` (the number of processes)."""
    if not supervised or budget <= 0:
        return StepPlan(0, 0)
    mean = sum(supervised) / len(supervised)
    batch = max(multiple_of, round(tokens_per_step / mean / multiple_of) * multiple_of)
    steps = max(1, round(budget / tokens_per_step))
    most = math.inf if max_epochs is None else math.floor(max_epochs * len(supervised))
    if steps * batch <= most:
        return StepPlan(steps, batch)
    if most >= batch:
        return StepPlan(most // batch, batch, True)
    # Fewer examples than one batch may see: one step over what max_epochs allows.
    return StepPlan(1, max(multiple_of, most // multiple_of * multiple_of), True)


def plan_order(n: int, steps: int, batch_size: int, seed: int) -> list[int]:
    """The example indices a stage trains on, in order: exactly ``steps x batch_size`` of them as
    whole shuffled passes over the data, so every batch is full and repeats are exact."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < steps * batch_size:
        one_pass = list(range(n))
        rng.shuffle(one_pass)
        order += one_pass
    return order[: steps * batch_size]


def count_tokens(tokenizer, examples: list[Example], chat: bool = False) -> list[int]:
    """Sequence length of each example as trained: prompt + completion + end-of-sequence, or with
    ``chat`` the rendered user and assistant turns."""
    if not examples:
        return []
    if chat:
        convs = [[*r["prompt"], *r["completion"]] for r in map(chat_record, examples)]
        return [
            len(tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"])
            for c in convs
        ]
    texts = [e.prompt + e.completion for e in examples]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(x) + 1 for x in ids]


def plan_steps(
    lengths: list[int], budget_tokens: int, batch_size: int, max_epochs: float | None = None
) -> int:
    """Optimizer steps that spend ``budget_tokens`` on batches of ``batch_size`` examples, but
    never more than ``max_epochs`` passes over the data (0 steps when one batch would be more)."""
    if not lengths or budget_tokens <= 0:
        return 0
    mean = sum(lengths) / len(lengths)
    steps = max(1, math.ceil(budget_tokens / (mean * batch_size)))
    if max_epochs is not None:
        steps = min(steps, math.floor(max_epochs * len(lengths) / batch_size))
    return steps


def chat_record(e: Example) -> dict:
    """A conversational prompt/completion record: TRL renders it with the chat template and keeps
    the loss on the assistant turn."""
    return {
        "prompt": user_turn(e.prompt),
        "completion": [{"role": "assistant", "content": e.completion}],
    }
