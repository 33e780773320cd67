"""Records and the Task protocol every task implements."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from selfplay.verify import Verdict

if TYPE_CHECKING:
    from selfplay.config import RunConfig


@dataclass
class Problem:
    id: str
    """Stable identifier, unique within the task (e.g. ``'4729+386'``)."""
    difficulty: int
    prompt: str
    answer: str
    """Gold final answer, as text."""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Example:
    """One training item: the prompt and the completion the loss is taken on."""

    prompt: str
    completion: str
    problem_id: str
    difficulty: int
    source: str
    """Where it came from: ``raw``, ``raw-slip``, ``raw-answer-only``, ``selfplay``."""


class Task(Protocol):
    name: str

    def sample_problems(
        self, split: str, difficulty: int, n: int, rng: random.Random
    ) -> list[Problem]:
        """Up to ``n`` distinct problems of one difficulty from ``split`` (``train`` or ``test``)."""

    def raw_corpus(self, cfg: RunConfig, rng: random.Random) -> list[Example]:
        """The raw corpus U described by ``cfg.raw``, drawn from the train split."""

    def gold_chain(self, problem: Problem) -> str:
        """A correct completion for ``problem``."""

    def hint_prompt(self, problem: Problem) -> str:
        """The prompt with the gold answer as a hint (for rationalization)."""

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Judge a completion; pure and bounded in time."""

    def max_new_tokens(self, difficulty: int) -> int:
        """A completion-length bound that fits any correct chain of this difficulty (in characters)."""

    def problem_from_record(self, record: dict[str, Any], index: int) -> Problem:
        """A problem from one record of a user's file (``selfplay verify``); ``ValueError`` with a
        short reason if the record does not describe a problem of this task."""

    @classmethod
    def verifier(cls, timeout: float = 10.0, memory_mb: int = 1024) -> Task:
        """An instance that can read records and verify, without loading any problem set."""


def split_of(problem_id: str, test_fraction: float = 0.2) -> str:
    """Deterministic train/test assignment by a hash of the id, stable across runs and machines."""
    h = int.from_bytes(hashlib.blake2b(problem_id.encode(), digest_size=8).digest(), "big")
    return "test" if (h % 10_000) < test_fraction * 10_000 else "train"


def verify_all(task: Task, items: list[tuple[Problem, str]]) -> list[Verdict]:
    """Verdicts for many ``(problem, completion)`` pairs, in order; a task whose verifier is slow
    per call (the code sandbox) may run them concurrently through its ``verify_many``."""
    many = getattr(task, "verify_many", None)
    if many is not None and len(items) > 1:
        return many(items)
    return [task.verify(p, c) for p, c in items]


def corpus_problems(
    task: Task, size: int, difficulties: list[int], rng: random.Random
) -> list[Problem]:
    """``size`` train problems of a generated task, difficulties drawn uniformly from
    ``difficulties``, shuffled. A difficulty with fewer distinct problems than asked (1-digit
    addition has 100) repeats them rather than shrink U."""
    per_difficulty = {d: 0 for d in difficulties}
    for _ in range(size):
        per_difficulty[rng.choice(difficulties)] += 1
    problems = []
    for d, n in per_difficulty.items():
        drawn = task.sample_problems("train", d, n, rng)
        while drawn and len(drawn) < n:
            drawn += drawn[: n - len(drawn)]
        problems += drawn
    rng.shuffle(problems)
    return problems
