"""Helpers for tasks that generate their problems (countdown; arith keeps its own for now): the raw
corpus U with its slipped, answer-only and hinted items."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from selfplay.tasks.base import Example, Problem, Task, corpus_problems

if TYPE_CHECKING:
    from selfplay.config import RawConfig


def generated_corpus(
    task: Task,
    raw: RawConfig,
    rng: random.Random,
    slip: Callable[[Problem, random.Random], str],
) -> list[Example]:
    """U as ``raw`` describes it: ``raw.size`` train problems (:func:`corpus_problems`), each
    with its gold chain, or its answer alone (``answer_only_rate``), or a chain with a slip that
    propagates (``slip_rate``; ``slip(problem, rng)`` names the kind for ``task.gold_chain``), or
    (``hint_rate`` of the clean rest) shown with ``task.hint_prompt`` so a model learns to read
    a hint. Deterministic given ``rng``."""
    out = []
    for p in corpus_problems(task, raw.size, raw.difficulties, rng):
        u = rng.random()
        if u < raw.answer_only_rate:
            out.append(Example(p.prompt, p.answer, p.id, p.difficulty, "raw-answer-only"))
        elif u < raw.answer_only_rate + raw.slip_rate:
            chain = task.gold_chain(p, slip(p, rng), rng)
            out.append(Example(p.prompt, chain, p.id, p.difficulty, "raw-slip"))
        elif raw.hint_rate and rng.random() < raw.hint_rate:
            hinted = task.hint_prompt(p)
            out.append(Example(hinted, task.gold_chain(p), p.id, p.difficulty, "raw-hinted"))
        else:
            out.append(Example(p.prompt, task.gold_chain(p), p.id, p.difficulty, "raw"))
    return out
