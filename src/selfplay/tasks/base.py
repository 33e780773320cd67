"""Records, the Task protocol every task implements, and the helpers every task uses.

A new task is one class that implements :class:`Task` below (each method says what it must do),
registered by name in ``selfplay.tasks.TASKS``. Its ``check_config`` holds
:func:`configured_difficulties` against the difficulties it has. Its verifier is a pure function
of a problem and a completion that never raises and never hangs: wrap it in
:func:`bounded_verify`; the answer-reading rules tasks share (the last ``\\boxed{}``, integers
without leading zeros, text cut for a verdict) are in :mod:`selfplay.tasks.answers`. A task that
generates its problems draws them with :func:`selfplay.tasks.generated.draw_distinct` and builds
U with :func:`selfplay.tasks.generated.generated_corpus`; a task that reads a dataset can start
from :class:`selfplay.tasks.dataset.DatasetTask`, which does both from its records.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from selfplay.verify import Deadline, Verdict

if TYPE_CHECKING:
    from selfplay.sections import RawConfig, RunConfig, TaskConfig


@dataclass
class Problem:
    id: str
    """Stable identifier, unique within the task (e.g. ``'4729+386'``)."""
    difficulty: int
    prompt: str
    answer: str
    """Gold final answer, as text."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Whatever the verifier needs beyond the answer (operands, numbers, tests)."""


@dataclass
class Example:
    """One training item: the prompt and the completion the loss is taken on."""

    prompt: str
    completion: str
    problem_id: str
    difficulty: int
    source: str
    """Where it came from: ``raw``, ``raw-slip``, ``raw-answer-only``, ``raw-hinted``, ``selfplay``."""


class Task(Protocol):
    """What the loop, the bench and ``selfplay verify`` ask of a task."""

    name: str
    """The name in ``task.name`` and ``selfplay verify TASK``."""

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def check_config(
        cls, task: TaskConfig, raw: RawConfig, asked: list[tuple[str, list[int]]]
    ) -> None:
        """Raise a one-line :class:`selfplay.errors.ConfigError` naming the key if the run asks
        for something this task cannot do: ``task`` and ``raw`` are the run's sections, ``asked``
        every ``(key, difficulties)`` it asks problems at (:func:`configured_difficulties`), e.g.
        a difficulty the task lacks, a slip it has no generator for. Runs when the config is
        loaded and again when the task is made; reads no data."""

    @classmethod
    def from_config(cls, task: TaskConfig) -> Task:
        """The task a run uses (the ``task`` section: options, data source, verifier limits)."""

    @classmethod
    def verifier(cls, timeout: float = 10.0, memory_mb: int = 1024) -> Task:
        """An instance that can read records and verify, without loading any problem set."""

    # -- problems and data ------------------------------------------------------------------------

    def sample_problems(
        self, split: str, difficulty: int, n: int, rng: random.Random
    ) -> list[Problem]:
        """Up to ``n`` distinct problems of one difficulty from ``split`` (``train`` or ``test``,
        e.g. by :func:`split_of` of the id); deterministic given ``rng``."""

    def raw_corpus(
        self, raw: RawConfig, rng: random.Random, exclude: frozenset[str] = frozenset()
    ) -> list[Example]:
        """The raw corpus U described by the ``raw`` section (size, difficulties, slip /
        answer-only / hint rates), drawn from the train split; no problem whose overlap key
        (``overlap_key``) is in ``exclude`` (the evaluation set's, twins included)."""

    def gold_chain(self, problem: Problem) -> str:
        """A correct completion for ``problem``: one the verifier judges valid. A task whose U has
        slipped chains (``raw.slip_rate``) also takes ``slip`` (a kind it names) and ``rng``, and
        then returns the chain with that slip carried to a wrong answer."""

    def hint_prompt(self, problem: Problem) -> str:
        """The prompt with a hint to the answer (for rationalization); training uses the plain one."""

    def max_new_tokens(self, difficulty: int) -> int:
        """A completion-length bound that fits any correct chain of this difficulty (in characters)."""

    def problem_from_record(self, record: dict[str, Any], index: int) -> Problem:
        """A problem from one record of a user's file (``selfplay verify``); ``ValueError`` with a
        short reason if the record does not describe a problem of this task."""

    # -- verification -----------------------------------------------------------------------------

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Judge a completion, step by step: pure, bounded in time and size, never raising (see
        :func:`bounded_verify`)."""

    # Optional, looked up with getattr:
    # - ``verify_many(items: list[tuple[Problem, str]]) -> list[Verdict]``, verdicts in order, for
    #   a verifier that is slow per call (the code sandbox runs several at once); :func:`verify_all`
    #   uses it when present.
    # - ``overlap_key(problem_id: str) -> str``: what makes two problems the same one for the
    #   ``raw-fresh`` baseline, which shares none with U or the evaluation set
    #   (:func:`selfplay.engine.sources.fresh_corpus`); default
    #   :func:`selfplay.tasks.generated.overlap_key` (``a+b`` is ``b+a``).
    # - ``min_difficulty: int``: the easiest difficulty (default 1); the frontier counts "every
    #   difficulty up to d solved" from it.
    # - ``answer_tokens(difficulty: int) -> int``: a completion budget for answer-only data (the
    #   longest answer and its stop token); default :meth:`max_new_tokens`.
    # - ``answer_width(problem: Problem) -> int | None``: the answer width the prompt implies,
    #   where the format fixes it: the frontier's label-free length check.


def bounded_verify(
    check: Callable[[Problem, str, Deadline], Verdict],
    problem: Problem,
    completion: Any,
    *,
    max_chars: int,
    seconds: float,
) -> Verdict:
    """Run a task's ``check(problem, completion, deadline)`` inside the bounds every verifier
    keeps: the completion must be text of at most ``max_chars`` characters, ``check`` raises
    ``TimeoutError`` once ``deadline.expired()`` (tested between steps), and any exception becomes
    an ``error`` verdict, so a megabyte of garbage gets a verdict, not a hang or a crash."""
    try:
        screened = screen_completion(completion, max_chars)
        if screened is not None:
            return screened
        return check(problem, completion, Deadline(seconds))
    except TimeoutError:
        return Verdict("timeout", why=f"verifier exceeded {seconds:g}s")
    except Exception as exc:  # a verifier never crashes the loop: the sample gets an error verdict
        return Verdict("error", why=f"{type(exc).__name__}: {exc}"[:200])


def screen_completion(completion: Any, max_chars: int) -> Verdict | None:
    """The verdict for a completion no verifier reads: not text (``error``) or longer than
    ``max_chars`` (``unparseable``); None for one that may be read."""
    if not isinstance(completion, str):
        return Verdict("error", why=f"completion is {type(completion).__name__}, not text")
    if len(completion) > max_chars:
        return Verdict("unparseable", why=f"completion too long ({len(completion)} characters)")
    return None


def configured_difficulties(cfg: RunConfig) -> list[tuple[str, list[int]]]:
    """Every ``(key, difficulties)`` a run config asks problems at, for a task's
    :meth:`Task.check_config` to hold against the difficulties it has."""
    from selfplay.schedules import PRACTISED

    key, practised = PRACTISED[cfg.loop.schedule]
    return [
        ("raw.difficulties", cfg.raw.difficulties),
        (key, practised(cfg.loop)),
        ("eval.difficulties", cfg.eval.difficulties),
    ]


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
    task: Task,
    size: int,
    difficulties: list[int],
    rng: random.Random,
    exclude: frozenset[str] = frozenset(),
    key: Callable[[str], str] = str,
) -> list[Problem]:
    """``size`` train problems of a generated task, difficulties drawn uniformly from
    ``difficulties``, shuffled. A difficulty with fewer distinct problems than asked (1-digit
    addition has 100) repeats them rather than shrink U.

    A problem whose ``key`` (of its id) is in ``exclude`` (an evaluation problem's twin: ``b+a`` of
    a test problem ``a+b`` is in the train split) is replaced by another of its difficulty, drawn
    from a stream of its own, so every other problem, and every later draw of ``rng``, is the one
    it would be without the exclusion."""
    per_difficulty = {d: 0 for d in difficulties}
    for _ in range(size):
        per_difficulty[rng.choice(difficulties)] += 1
    problems = []
    for d, n in per_difficulty.items():
        drawn = task.sample_problems("train", d, n, rng)
        if exclude:
            drawn = _without(task, drawn, d, n, exclude, key)
        while drawn and len(drawn) < n:
            drawn += drawn[: n - len(drawn)]
        problems += drawn
    rng.shuffle(problems)
    return problems


def _without(task, drawn, d, n, exclude, key) -> list[Problem]:
    """``drawn`` with each problem of an excluded key replaced in place (the first distinct ones
    a stream seeded by the difficulty and the draw gives); dropped where none is left."""
    held = {p.id for p in drawn}
    if not any(key(p.id) in exclude for p in drawn):
        return drawn
    refill = random.Random(f"u-refill-{d}-{n}-{drawn[0].id}")
    spare: list[Problem] = []
    for _ in range(20):
        for p in task.sample_problems("train", d, n, refill):
            if p.id not in held and key(p.id) not in exclude:
                held.add(p.id)
                spare.append(p)
        if len(spare) >= n:
            break
    out = []
    for p in drawn:
        if key(p.id) not in exclude:
            out.append(p)
        elif spare:
            out.append(spare.pop(0))
    return out
