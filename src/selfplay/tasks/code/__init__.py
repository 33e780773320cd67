"""``code``: complete a Python function from its signature and docstring (HumanEval), judged by
calling it from the problem's tests, with the candidate in the sandbox (:mod:`selfplay.sandbox`)
and the tests in the verifier's own process.

The prompt is the problem's code up to and including the docstring; the completion is the body::

    def add(x: int, y: int):
        \"\"\"Add two numbers x and y ... \"\"\"      ->      return x + y

The candidate program is ``prompt + completion``. Models often rewrite the whole function
(``def add(x, y): ...`` at column 0) or wrap it in a Markdown fence; both work: the first fenced
block of a completion that has one is what is run, and a function defined again at column 0
simply replaces the prompt's (which then has only its docstring as a body). If ``prompt +
completion`` does not compile but the completion defines the entry point at column 0, the
completion is run alone, after the prompt's ``import`` lines.

Where what runs (the parts are modules of this package):

* :mod:`~selfplay.tasks.code.driver`: the only code in the sandbox besides the candidate's: it
  compiles the program and calls the entry point with the arguments it is sent, answering with
  the return value as data. It never sees the tests or the expected values.
* :mod:`~selfplay.tasks.code.rewrite`: every ``assert`` of ``check`` is rewritten (AST) to record
  its own outcome and carry on, so a verdict has one :class:`StepMark` per assertion, with its
  source text; a failed one says what came back (``got [1, 2]``) or what was raised. An assertion
  inside a loop is one step that fails if any of its runs fails. A ``check`` without assertions
  is one step, which holds if ``check`` returns; a test without ``check`` is an ``error``.
* :mod:`~selfplay.tasks.code.judge`: the prompt's helpers and the rewritten tests run here, with
  the entry point replaced by a proxy; every value the tests see from the candidate is rebuilt
  from data as an exact built-in type (or the standard library's ``Counter``, ``OrderedDict``,
  ``Fraction``, ``Decimal``; a subclass as its base value), so comparisons and truth tests are
  this process's own. The candidate can return wrong values, or stop; it cannot make a test pass
  any other way. A reply is at most 1 MiB, and one that would cost the verifier more than linear
  time to rebuild (a set of members sharing a hash) ends the run.

Statuses: ``correct``: every assertion held, the tests ran to the end and the program exited
cleanly; ``wrong``: an assertion failed, the solution or ``check`` raised, the entry point is
missing or returned something that is not a plain value, or the program stopped before the tests
finished (e.g. ``exit()``, a forged reply); ``unparseable``: ``prompt + completion`` does not
compile (or the completion is longer than ``MAX_CHARS``); ``timeout``: the wall-clock
(``task.timeout``, for the whole run) or CPU limit; ``error``: the memory limit
(``task.memory_mb``), a crash or a kill, or a problem whose test cannot run.

Differences from running the tests in one process with the solution: arguments are copies (a
test that looks at an argument the candidate changed in place sees it unchanged), and the tests
cannot reach the solution's own helpers (only the prompt's).

There is no single final answer: ``Problem.answer`` is ``""`` and verdicts carry ``answer=None``,
so majority voting does not apply to code. Difficulty is the length of the canonical solution in
code lines (not blank, not comments): 1 line -> 1, 2-4 -> 2, 5-7 -> 3, 8-11 -> 4, 12+ -> 5 (for
HumanEval 37/28/44/33/22 problems); 1 for a record without one. There is no answer-only form and
no slip generator, so ``raw.answer_only_rate`` and ``raw.slip_rate`` must be 0.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from selfplay.errors import ConfigError
from selfplay.sandbox import Limits
from selfplay.tasks.base import Problem, bounded_verify
from selfplay.tasks.code.judge import judge_completion
from selfplay.tasks.code.rewrite import CheckPlan, plan_tests
from selfplay.tasks.dataset import DatasetTask
from selfplay.verify import Deadline, Verdict

if TYPE_CHECKING:
    from selfplay.sections import RawConfig, TaskConfig

__all__ = ["MAX_CHARS", "CheckPlan", "CodeTask", "difficulty_of", "extract_code", "plan_tests"]

MAX_CHARS = 100_000
"""Completions longer than this are judged unparseable without being run."""
DIFFICULTY_LINES = (1, 4, 7, 11)
"""Difficulty is 1 + the number of these a canonical solution's code-line count exceeds."""


# ------------------------------------------------------------------------------------------------
# Verdicts


def extract_code(completion: str) -> str:
    """The first Markdown-fenced block of a completion that has one (its language tag dropped),
    else the completion as is."""
    start = completion.find("```")
    if start < 0:
        return completion
    body_start = completion.find("\n", start)
    if body_start < 0:
        return ""
    end = completion.find("```", body_start)
    return completion[body_start + 1 : end if end >= 0 else len(completion)]


# ------------------------------------------------------------------------------------------------
# The task


def difficulty_of(solution: str | None) -> int:
    """1 + how many of :data:`DIFFICULTY_LINES` the solution's code-line count exceeds."""
    if not solution:
        return 1
    lines = sum(1 for ln in solution.splitlines() if ln.strip() and not ln.strip().startswith("#"))
    return 1 + sum(lines > t for t in DIFFICULTY_LINES)


def default_workers(limits: Limits) -> int:
    """Four sandboxes per CPU (a run spends most of its wall time waiting on the kernel: starting
    the interpreter, moving it into its cgroups, tearing its namespaces down), but no more than
    the available memory holds at every run's cap (``memory_mb + disk_mb``); at least one."""
    cap = (limits.memory_mb + limits.disk_mb) << 20
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        available = int(info["MemAvailable"].split()[0]) << 10
    except (OSError, KeyError, ValueError):
        available = 4 * cap * (os.cpu_count() or 1)
    return max(1, min(4 * (os.cpu_count() or 1), available // cap))


class CodeTask(DatasetTask):
    name = "code"
    default_data = "openai/openai_humaneval"
    default_split = "test"
    required_fields = ("prompt", "test", "entry_point")
    max_difficulty = 1 + len(DIFFICULTY_LINES)

    @classmethod
    def check_config(
        cls, task: TaskConfig, raw: RawConfig, asked: list[tuple[str, list[int]]]
    ) -> None:
        super().check_config(task, raw, asked)
        if raw.answer_only_rate:
            raise ConfigError(
                "raw.answer_only_rate: the code task has no answer-only form (a program is the "
                "answer); use 0"
            )

    @classmethod
    def problem_from_record(cls, record: dict[str, Any], index: int) -> Problem:
        """A HumanEval record: ``prompt``, ``test`` (defining ``check(candidate)``) and
        ``entry_point``; ``task_id`` and ``canonical_solution`` if there are."""
        prompt, test, entry = (record.get(k) for k in ("prompt", "test", "entry_point"))
        for key, value in (("prompt", prompt), ("test", test), ("entry_point", entry)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"needs a non-empty {key!r} string")
        entry = entry.strip()
        if not entry.isidentifier():
            raise ValueError(f"'entry_point' {entry[:40]!r} is not a Python name")
        gold = record.get("canonical_solution")
        if gold is not None and not isinstance(gold, str):
            raise ValueError("'canonical_solution' must be a string")
        pid = record.get("task_id")
        return Problem(
            id=str(pid) if pid not in (None, "") else f"code-{index}",
            difficulty=min(difficulty_of(gold), cls.max_difficulty),
            prompt=prompt,
            answer="",
            meta={"gold": gold or "", "test": test, "entry_point": entry},
        )

    def gold_chain(self, problem: Problem) -> str:
        if not problem.meta.get("gold"):
            raise ValueError(f"{problem.id}: the record has no canonical_solution")
        return problem.meta["gold"]

    def answer_only(self, problem: Problem) -> str:
        raise ConfigError("raw.answer_only_rate: the code task has no answer-only form; use 0")

    def hint_prompt(self, problem: Problem) -> str:
        """The prompt after one of its tests as a comment (the first assertion of ``check``, with
        the function's own name for ``candidate``): the nearest thing code has to a given answer."""
        plan = plan_tests(problem.meta["test"])
        if not plan.asserts:
            return problem.prompt
        first = plan.asserts[0].replace("candidate", problem.meta["entry_point"])
        first = " ".join(first.split())
        return f"# It must pass: {first}\n{problem.prompt}"

    def max_new_tokens(self, difficulty: int) -> int:
        """Longest canonical solution at this difficulty (in characters), with room."""
        with_gold = [p for p in self.problems if p.meta.get("gold")]
        lengths = [len(p.meta["gold"]) for p in with_gold if p.difficulty == difficulty]
        lengths = lengths or [len(p.meta["gold"]) for p in with_gold] or [400]
        return int(max(lengths) * 1.25) + 16

    def limits(self) -> Limits:
        return Limits(timeout=self.timeout, memory_mb=self.memory_mb)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Run ``prompt + completion`` in the sandbox and the tests here; see the module docstring."""
        return bounded_verify(
            self._check, problem, completion, max_chars=MAX_CHARS, seconds=self.timeout
        )

    def _check(self, problem: Problem, completion: str, deadline: Deadline) -> Verdict:
        # The deadline goes unread: the jail is the clock. It holds the candidate's run to
        # ``task.timeout`` (wall clock and CPU), every call the tests make waits on that run,
        # and only the jail's own ending of the run leaves nothing of it behind; a run it cuts
        # off comes back as a ``timeout`` verdict.
        plan = plan_tests(problem.meta["test"])
        code = extract_code(completion)
        return judge_completion(
            plan, problem.prompt, code, problem.meta["entry_point"], self.limits()
        )

    def verify_many(
        self, items: list[tuple[Problem, str]], workers: int | None = None
    ) -> list[Verdict]:
        """:meth:`verify` for many ``(problem, completion)`` pairs, ``workers`` sandboxes at a time
        (default: :func:`default_workers`); verdicts in the order of ``items``."""
        workers = workers or default_workers(self.limits())
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda pc: self.verify(*pc), items))
