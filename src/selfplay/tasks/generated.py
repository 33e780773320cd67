"""What tasks that generate their problems (arith, countdown) share: distinct problems of a
split drawn from a generator, the raw corpus U with its slipped, answer-only and hinted items, and
the key that tells when two problems are the same one (for baselines that must not share problems
with U or the evaluation set)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from selfplay.tasks.base import Example, Problem, Task, corpus_problems, split_of

if TYPE_CHECKING:
    from selfplay.sections import RawConfig


def draw_distinct(
    draw: Callable[[], Problem | None],
    split: str,
    n: int,
    max_draws: int,
    split_key: Callable[[Problem], str] = lambda p: p.id,
) -> list[Problem]:
    """Up to ``n`` problems of ``split`` with distinct ids, in the order ``draw()`` first makes
    them, from at most ``max_draws`` draws (a split with fewer problems, like 1-digit addition,
    gives what it has). ``draw`` may return None for a draw it rejects; a problem's split is
    :func:`split_of` its ``split_key``."""
    seen: dict[str, Problem] = {}
    draws = 0
    while len(seen) < n and draws < max_draws:
        draws += 1
        p = draw()
        if p is not None and p.id not in seen and split_of(split_key(p)) == split:
            seen[p.id] = p
    return list(seen.values())


def generated_corpus(
    task: Task,
    raw: RawConfig,
    rng: random.Random,
    slip: Callable[[Problem, random.Random], str],
    hints_last: bool = False,
    exclude: frozenset[str] = frozenset(),
) -> list[Example]:
    """U as ``raw`` describes it: ``raw.size`` train problems (:func:`corpus_problems`), each
    with its gold chain, or its answer alone (``answer_only_rate``), or a chain with a slip that
    propagates (``slip_rate``; ``slip(problem, rng)`` names the kind for ``task.gold_chain``), or
    (``hint_rate`` of the clean rest) shown with ``task.hint_prompt`` so a model learns to read
    a hint. Deterministic given ``rng``.

    ``hints_last`` draws which clean items are hinted in a second pass over U, after the rest:
    the same distribution, other draws. It is arith's order, kept so that a seed gives the U
    (and so the results) it always gave. ``exclude``: overlap keys U must not hold
    (:func:`selfplay.tasks.base.corpus_problems`)."""
    key = overlap_key_of(task)
    problems = corpus_problems(task, raw.size, raw.difficulties, rng, exclude, key)
    out = []
    for p in problems:
        u = rng.random()
        if u < raw.answer_only_rate:
            out.append(Example(p.prompt, p.answer, p.id, p.difficulty, "raw-answer-only"))
        elif u < raw.answer_only_rate + raw.slip_rate:
            chain = task.gold_chain(p, slip(p, rng), rng)
            out.append(Example(p.prompt, chain, p.id, p.difficulty, "raw-slip"))
        elif not hints_last and raw.hint_rate and rng.random() < raw.hint_rate:
            out.append(_hinted(task, p))
        else:
            out.append(Example(p.prompt, task.gold_chain(p), p.id, p.difficulty, "raw"))
    if hints_last and raw.hint_rate:
        for i, p in enumerate(problems):
            # One draw for every item, clean or not: the order the seeds depend on.
            if rng.random() < raw.hint_rate and out[i].source == "raw":
                out[i] = _hinted(task, p, out[i].completion)
    return out


def _hinted(task: Task, p: Problem, chain: str | None = None) -> Example:
    hinted = task.hint_prompt(p)
    chain = task.gold_chain(p) if chain is None else chain
    return Example(hinted, chain, p.id, p.difficulty, "raw-hinted")


_BINARY = re.compile(r"(\d+)([+*])(\d+)")
_TARGET = re.compile(r"(\d+(?:,\d+)*)->(\d+)")


def overlap_key(problem_id: str) -> str:
    """What makes two problems the same for a clean baseline: ``a+b`` and ``b+a`` (also ``*``),
    or the same numbers in another order (``3,7->10`` and ``7,3->10``), share a key; any other id
    is its own key. A task may define its own ``overlap_key``."""
    m = _BINARY.fullmatch(problem_id)
    if m:
        a, op, b = m.groups()
        return op.join(sorted((a, b), key=int))
    m = _TARGET.fullmatch(problem_id)
    if m:
        return ",".join(sorted(m.group(1).split(","), key=int)) + "->" + m.group(2)
    return problem_id


def overlap_key_of(task) -> Callable[[str], str]:
    """The task's own ``overlap_key`` where it has one, else :func:`overlap_key`."""
    return getattr(task, "overlap_key", overlap_key)
