"""Tasks backed by a fixed set of problems read from a file or the hub (GSM8K, MATH, HumanEval).

A subclass says how one record becomes a :class:`Problem` (with its gold chain in
``meta['gold']`` and its difficulty), how to verify a completion, and what an answer-only training
item looks like. This class does the rest: reading the records once, a fixed hash-based train/test
split, problems grouped by difficulty, and the raw corpus U drawn from the train split's gold chains.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, ClassVar

from selfplay.errors import ConfigError
from selfplay.tasks.base import Example, Problem, split_of
from selfplay.tasks.data import read_records
from selfplay.tasks.generated import overlap_key_of
from selfplay.verify import Verdict

if TYPE_CHECKING:
    from selfplay.sections import RawConfig, TaskConfig


class DatasetTask:
    name: ClassVar[str]
    default_data: ClassVar[str]
    """Where the problems come from when ``task.data`` is not set (a hub name or a local path)."""
    default_subset: ClassVar[str | None] = None
    default_split: ClassVar[str] = "train"
    required_fields: ClassVar[tuple[str, ...]] = ()
    max_difficulty: ClassVar[int] = 8
    """Difficulties are clipped to ``1..max_difficulty`` (the top bucket holds everything above)."""

    def __init__(self, problems: list[Problem] = (), timeout: float = 10.0, memory_mb: int = 1024):
        self.timeout, self.memory_mb = timeout, memory_mb
        self.problems = problems
        self.by_split_difficulty: dict[tuple[str, int], list[Problem]] = {}
        for p in problems:
            self.by_split_difficulty.setdefault((split_of(p.id), p.difficulty), []).append(p)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def check_config(
        cls, task: TaskConfig, raw: RawConfig, asked: list[tuple[str, list[int]]]
    ) -> None:
        if raw.slip_rate:
            raise ConfigError(f"raw.slip_rate: the {cls.name} task has no slip generator; use 0")
        for key, ds in asked:
            if max(ds) > cls.max_difficulty:
                raise ConfigError(f"{key}: {cls.name} difficulties go up to {cls.max_difficulty}")

    @classmethod
    def from_config(cls, task: TaskConfig) -> DatasetTask:
        source = task.data or cls.default_data
        subset = task.data_subset if task.data else cls.default_subset
        split = task.data_split or cls.default_split
        records = read_records(source, subset, split, cls.required_fields)
        return cls.from_records(records, timeout=task.timeout, memory_mb=task.memory_mb)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], **kwargs) -> DatasetTask:
        problems, seen = [], set()
        for i, rec in enumerate(records):
            p = cls.problem_from_record(rec, i)
            if p.id in seen:  # duplicate records would leak across the split
                continue
            seen.add(p.id)
            p.difficulty = min(max(1, p.difficulty), cls.max_difficulty)
            problems.append(p)
        if not problems:
            raise ConfigError(f"task.data: no {cls.name} problems found")
        return cls(problems, **kwargs)

    @classmethod
    def verifier(cls, timeout: float = 10.0, memory_mb: int = 1024) -> DatasetTask:
        return cls([], timeout=timeout, memory_mb=memory_mb)

    @classmethod
    def problem_from_record(cls, record: dict[str, Any], index: int) -> Problem:
        """One record as a problem: id, difficulty, prompt, answer, ``meta['gold']``. Raises
        ``ValueError`` with a short reason for a record that is not a problem of this task."""
        raise NotImplementedError

    # -- the Task protocol ----------------------------------------------------------------------

    def sample_problems(
        self, split: str, difficulty: int, n: int, rng: random.Random
    ) -> list[Problem]:
        pool = self.by_split_difficulty.get((split, difficulty), [])
        return rng.sample(pool, min(n, len(pool)))

    def raw_corpus(
        self, raw: RawConfig, rng: random.Random, exclude: frozenset[str] = frozenset()
    ) -> list[Example]:
        """``raw.size`` train problems from ``raw.difficulties`` (all of them, repeated, if the split
        has fewer), each with its gold chain, or only its answer for ``raw.answer_only_rate``;
        none whose id is in ``exclude``."""
        key = overlap_key_of(self)
        pool = [p for d in raw.difficulties for p in self.by_split_difficulty.get(("train", d), [])]
        pool = [p for p in pool if key(p.id) not in exclude]
        if not pool:
            raise ConfigError(
                f"raw.difficulties: no {self.name} training problems at difficulties {raw.difficulties}"
            )
        pool.sort(key=lambda p: p.id)
        rng.shuffle(pool)
        chosen = [pool[i % len(pool)] for i in range(raw.size)]
        out = []
        for p in chosen:
            if rng.random() < raw.answer_only_rate:
                out.append(
                    Example(p.prompt, self.answer_only(p), p.id, p.difficulty, "raw-answer-only")
                )
            else:
                out.append(Example(p.prompt, self.gold_chain(p), p.id, p.difficulty, "raw"))
        return out

    def gold_chain(self, problem: Problem) -> str:
        return problem.meta["gold"]

    def answer_only(self, problem: Problem) -> str:
        """A training completion that states only the final answer."""
        raise NotImplementedError

    def hint_prompt(self, problem: Problem) -> str:
        return f"(The answer is {problem.answer}.)\n{problem.prompt}"

    def verify(self, problem: Problem, completion: str) -> Verdict:
        raise NotImplementedError

    def max_new_tokens(self, difficulty: int) -> int:
        """Longest gold chain (in characters, a bound on tokens) at this difficulty, with room."""
        lengths = [len(p.meta["gold"]) for p in self.problems if p.difficulty == difficulty] or [
            len(p.meta["gold"]) for p in self.problems
        ]
        return int(max(lengths) * 1.25) + 16
