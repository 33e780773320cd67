"""``countdown``: reach a target from given numbers with ``+ - * /``, one equation per line.

The prompt lists the numbers and the target; the completion writes one equation per line, each
combining two numbers it holds into a new one, and ends with the number reached::

    Q:3,7,25,50->118=  ->  25*3=75
                           50-7=43
                           75+43=118
                           118

Rules (the Countdown game's, with the integer convention of Countdown datasets such as the Stream
of Search generator behind TinyZero's data):

- Every given number, and every result, can be used at most once; numbers may be left unused.
  (TinyZero's reward also demands that every number is used; the game does not, and neither do we.)
- Integer arithmetic: ``a-b`` only when ``a >= b`` (no negative intermediates), ``a/b`` only when
  ``b > 0`` divides ``a`` exactly. Everything stays a non-negative integer, so a strict regex
  parses every line, and the character model never writes a sign or a decimal point.

Difficulty is the count of given numbers, 2 to :data:`MAX_NUMBERS`. The generator draws the
numbers from ``1..NUMBER_MAX`` and makes the target by combining all of them at random, so every
problem it emits is solvable; it keeps targets in :data:`TARGET_RANGES` and never one that is
itself a given number. Gold chains come from :func:`solve`, an exact search for a *shortest*
solution (fewest equations), which may leave numbers unused.

Verdicts. Each equation is a step, and so is the answer line (the number must be one the chain
holds at its end). The status is ``correct`` only when the answer is the target *and* every step
checks out. This is stricter than ``arith``, whose status judges the answer alone: here the
target is printed in the prompt, so a matching answer proves nothing by itself, and a target
reached through a wrong equation is ``wrong`` (with the bad step marked). Hence ``Verdict.valid``
equals ``status == "correct"`` for this task, and ``maj@k`` says little (the target is given).

Raw corpus. Slips are one wrong result (off by one or ten, or a product with one factor too many
or too few) carried through the later equations to a wrong final number. An answer-only item is
the target alone, which the verifier rejects: it teaches nothing but skipping the work. A hinted
item shows the solution as one expression (``H:(50-7)*3 Q:3,7,25,50->129=``), since the target
is already in the prompt; rationalization then asks the model to spell it out as equations.
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from selfplay.errors import ConfigError
from selfplay.tasks.answers import clip, strip_zeros
from selfplay.tasks.base import Example, Problem, bounded_verify
from selfplay.tasks.generated import draw_distinct, generated_corpus
from selfplay.verify import Deadline, StepMark, Verdict

if TYPE_CHECKING:
    from selfplay.sections import RawConfig, TaskConfig

MIN_NUMBERS, MAX_NUMBERS = 2, 6
"""Difficulties (counts of given numbers) the generator emits."""
NUMBER_MAX = 25
"""Given numbers are drawn from ``1..NUMBER_MAX`` (small enough for a tiny model's products)."""
TARGET_RANGES: dict[int, tuple[int, int]] = {
    2: (10, 99),
    3: (10, 199),
    4: (10, 299),
    5: (100, 499),
    6: (100, 999),
}
"""Inclusive target range per difficulty."""
MAX_CHARS = 20_000
"""Completions longer than this are judged unparseable without being read."""
MAX_NUMBER_CHARS = 100
"""A number longer than this is never right (records hold at most 10 numbers of 9 digits)."""
MAX_RECORD_NUMBERS, MAX_RECORD_DIGITS = 10, 9
"""Limits on problems read from a user's records."""
MAX_STEP_CHARS = 200
"""Step text kept in a verdict (a longer line is cut)."""
SOLVER_NODES = 1_000_000
"""Moves the solver tries before giving up (bounds its time at about a second)."""

Step = tuple[int, str, int, int]
"""One equation ``a op b = c``."""

_PROMPT_RE = re.compile(r"^Q:(\d{1,9}(?:,\d{1,9})*)->(\d{1,18})=?$", re.ASCII)
# re.ASCII: ``\d`` is 0-9 only; Unicode digits (e.g. '٣') are not numbers here.
_EQ_RE = re.compile(r"^(\d+)[ \t]*([-+*/])[ \t]*(\d+)[ \t]*=[ \t]*(\d+)$", re.ASCII)
_NUMBER_RE = re.compile(r"^\d+$", re.ASCII)
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def apply_op(a: int, op: str, b: int) -> int | None:
    """``a op b`` under the task's rules, or None where the rules forbid it.

    >>> apply_op(7, "-", 3), apply_op(3, "-", 7), apply_op(12, "/", 5), apply_op(12, "/", 4)
    (4, None, None, 3)
    """
    if op == "+":
        return a + b
    if op == "*":
        return a * b
    if op == "-":
        return a - b if a >= b else None
    if op == "/":
        return a // b if b and a % b == 0 else None
    raise ValueError(f"unknown operation {op!r}")


# ------------------------------------------------------------------------------------------------
# Solver


class _OutOfBudget(Exception):
    pass


def _moves(state: tuple[int, ...], target: int):
    """``(a, op, b, c, rest)`` for every useful move from a sorted state; ``a >= b``.

    A move whose result equals one of its operands (``x*1``, ``x/1``, ``2x-x``, ``x*x/x``) only
    discards the other operand, which leaving it unused does as well: it is never in a shortest
    solution. Zero is useless unless it is the target.
    """
    seen = set()
    n = len(state)
    for i in range(n):
        for j in range(i + 1, n):
            b, a = state[i], state[j]
            if (a, b) in seen:
                continue
            seen.add((a, b))
            rest = state[:i] + state[i + 1 : j] + state[j + 1 :]
            for op in "+-*/":
                c = apply_op(a, op, b)
                if c is None or c in (a, b) or (c == 0 and target != 0):
                    continue
                yield a, op, b, c, rest


def _finish(c: int, rest: tuple[int, ...], target: int) -> Step | None:
    """An equation that makes ``target`` from ``c`` and one number of ``rest``, found by looking
    up the partner ``c`` would need instead of trying every number and operation."""
    partners = [(target - c, "+"), (c - target, "-"), (c + target, "-"), (c * target, "/")]
    if c and target % c == 0:
        partners.append((target // c, "*"))
    if target and c % target == 0:
        partners.append((c // target, "/"))
    for y, op in partners:
        if y >= 0 and y in rest:
            a, b = max(c, y), min(c, y)
            if apply_op(a, op, b) == target and target not in (a, b):
                return a, op, b, target
    return None


@functools.lru_cache(maxsize=1 << 16)
def _solve_sorted(state: tuple[int, ...], target: int, max_nodes: int) -> tuple[Step, ...] | None:
    if target in state:
        return ()
    failed: dict[tuple[int, ...], int] = {}  # state -> deepest search known to fail from it
    nodes = 0

    def search(s: tuple[int, ...], depth: int) -> list[Step] | None:
        nonlocal nodes
        if failed.get(s, 0) >= depth:
            return None
        for a, op, b, c, rest in _moves(s, target):
            nodes += 1
            if nodes > max_nodes:
                raise _OutOfBudget
            if c == target:
                return [(a, op, b, c)]
            if depth == 2 and rest:
                # The last equation must use c: one that does not would have been found by the
                # previous, shallower round of the deepening.
                last = _finish(c, rest, target)
                if last is not None:
                    return [(a, op, b, c), last]
            elif depth > 2 and rest:
                sub = search(tuple(sorted((*rest, c))), depth - 1)
                if sub is not None:
                    return [(a, op, b, c), *sub]
        failed[s] = depth
        return None

    try:
        # Iterative deepening: the first solution found is a shortest one.
        for depth in range(1, len(state)):
            found = search(state, depth)
            if found is not None:
                return tuple(found)
    except _OutOfBudget:
        return None
    return None


def solve(numbers: list[int], target: int, max_nodes: int = SOLVER_NODES) -> list[Step] | None:
    """A shortest list of equations that reaches ``target`` from ``numbers`` (each used at most
    once), or None if there is none or the search gave up after ``max_nodes`` moves.

    >>> solve([3, 7, 25, 50], 129)
    [(50, '-', 7, 43), (43, '*', 3, 129)]
    >>> solve([3, 7, 25, 50], 115) is None
    True
    """
    found = _solve_sorted(tuple(sorted(numbers)), target, max_nodes)
    return None if found is None else list(found)


# ------------------------------------------------------------------------------------------------
# Chains


def _link(numbers: list[int], steps: list[Step]) -> list[tuple[tuple[str, int], tuple[str, int]]]:
    """For each step, where its two operands come from: ``("given", i)`` or ``("step", k)``."""
    held: list[tuple[int, tuple[str, int]]] = [(v, ("given", i)) for i, v in enumerate(numbers)]
    links = []
    for k, (a, _, b, c) in enumerate(steps):
        pair = []
        for x in (a, b):
            # Prefer the latest result over a given number of the same value.
            i = max(i for i, (v, _) in enumerate(held) if v == x)
            pair.append(held.pop(i)[1])
        links.append((pair[0], pair[1]))
        held.append((c, ("step", k)))
    return links


def render_chain(steps: list[Step], answer: int) -> str:
    """``a op b = c`` per line, then the answer.

    >>> print(render_chain([(50, '-', 7, 43), (43, '*', 3, 129)], 129))
    50-7=43
    43*3=129
    129
    """
    return "\n".join([f"{a}{op}{b}={c}" for a, op, b, c in steps] + [str(answer)])


def solution_expression(numbers: list[int], steps: list[Step]) -> str:
    """The solution as one expression with the fewest parentheses.

    >>> solution_expression([3, 7, 25, 50], [(50, '-', 7, 43), (43, '*', 3, 129)])
    '(50-7)*3'
    """
    if not steps:
        raise ValueError("a solution without equations has no expression")
    links = _link(numbers, steps)

    def show(ref: tuple[str, int]) -> tuple[str, int]:
        kind, i = ref
        if kind == "given":
            return str(numbers[i]), 3
        _, op, _, _ = steps[i]
        (left, lp), (right, rp) = show(links[i][0]), show(links[i][1])
        if lp < _PREC[op]:
            left = f"({left})"
        if rp < _PREC[op] or (rp == _PREC[op] and op in "-/"):
            right = f"({right})"
        return f"{left}{op}{right}", _PREC[op]

    return show(("step", len(steps) - 1))[0]


def slip_steps(numbers: list[int], steps: list[Step], rng: random.Random) -> list[Step]:
    """The steps with one realistic slip, a wrong result, carried through every later equation
    (which stay right given it), so the chain ends on a wrong number. Slips: off by one, off by
    ten, and for products one operand too many or too few."""
    if not steps:
        raise ValueError("a chain without equations has no result to slip")
    links = _link(numbers, steps)
    target = steps[-1][3]
    order = list(range(len(steps)))
    rng.shuffle(order)
    for k in order:
        a, op, b, c = steps[k]
        wrong = [c + 1, c - 1, c + 10, c - 10] + ([c + a, c - a, c + b, c - b] if op == "*" else [])
        rng.shuffle(wrong)
        for w in wrong:
            if w < 1 or w == c:
                continue
            out = _replay(numbers, steps, links, k, w)
            if out is not None and out[-1][3] != target:
                return out
    # Off by one in the last equation never breaks a later one: there is none.
    a, op, b, c = steps[-1]
    return [*steps[:-1], (a, op, b, c + 1)]


def _replay(numbers, steps, links, k: int, wrong: int) -> list[Step] | None:
    """The steps recomputed with step ``k``'s result replaced by ``wrong``; None if a later
    equation breaks a rule (a negative difference, an inexact division)."""
    values: list[int] = []
    out = []
    for i, ((_, op, _, c), refs) in enumerate(zip(steps, links, strict=True)):
        a, b = (numbers[j] if kind == "given" else values[j] for kind, j in refs)
        r = wrong if i == k else (c if i < k else apply_op(a, op, b))
        if r is None:
            return None
        out.append((a, op, b, r))
        values.append(r)
    return out


# ------------------------------------------------------------------------------------------------
# Verifier


def _taken(held: Counter, seen: set, a: int, b: int) -> str:
    """Take ``a`` and ``b`` from ``held``; why not, for any that is not there."""
    whys = []
    for x in (a, b):
        if held[x] > 0:
            held[x] -= 1
        else:
            whys.append(
                f"{x} is not available: "
                + ("already used" if x in seen else "neither given nor computed")
            )
    return "; ".join(whys)


def _verify_equation(line: str, held: Counter, seen: set) -> StepMark:
    shown = clip(line, MAX_STEP_CHARS)
    m = _EQ_RE.match(line)
    if not m:
        return StepMark(shown, False, "not an equation (one operation per line, like 50+25=75)")
    xs, op, ys, cs = m.groups()
    if max(len(xs), len(ys), len(cs)) > MAX_NUMBER_CHARS:
        return StepMark(shown, False, "number too long")
    a, b, c = int(xs), int(ys), int(cs)
    whys = [w] if (w := _taken(held, seen, a, b)) else []
    true = apply_op(a, op, b)
    if true is None:
        whys.append(
            f"{a}-{b} is negative"
            if op == "-"
            else (f"{a}/0 divides by zero" if b == 0 else f"{a}/{b} is not a whole number")
        )
    elif true != c:
        whys.append(f"{a}{op}{b} is {true}, not {c}")
    # The claimed result is held from here on, right or not: a later line is judged on its own,
    # so a slip marks its own line and not every line after it.
    held[c] += 1
    seen.add(c)
    return StepMark(shown, not whys, "; ".join(whys))


def verify_countdown(problem: Problem, completion: str, seconds: float = 1.0) -> Verdict:
    """Judge a ``countdown`` completion: every equation against the rules and the arithmetic, the
    answer line against the numbers held at the end and the target."""
    return bounded_verify(_judge, problem, completion, max_chars=MAX_CHARS, seconds=seconds)


def _judge(problem: Problem, completion: str, deadline: Deadline) -> Verdict:
    numbers, target = problem.meta["numbers"], problem.meta["target"]
    lines = [s for s in (line.strip() for line in completion.split("\n")) if s]
    if not lines:
        return Verdict("unparseable", why="empty completion")
    answer = lines[-1]
    if not _NUMBER_RE.match(answer):
        return Verdict("unparseable", why="no final answer (the last line is not a number)")
    held, seen = Counter(numbers), set(numbers)
    marks = []
    for line in lines[:-1]:
        if deadline.expired():
            raise TimeoutError
        marks.append(_verify_equation(line, held, seen))
    if len(answer) > MAX_NUMBER_CHARS:
        marks.append(StepMark(clip(answer, MAX_STEP_CHARS), False, "number too long"))
    else:
        value = int(answer)
        why = (
            ""
            if held[value] > 0
            else f"{value} is not held at the end: "
            + ("already used" if value in seen else "neither given nor computed")
        )
        marks.append(StepMark(answer, not why, why))
    bad = next((i for i, s in enumerate(marks) if not s.ok), None)
    if strip_zeros(answer) != str(target):
        status, why = "wrong", f"wrong answer (the target is {target})"
    elif bad is not None:
        status, why = "wrong", f"invalid step {bad + 1}: {marks[bad].why}"
    else:
        status, why = "correct", ""
    return Verdict(status, answer=clip(answer, MAX_NUMBER_CHARS), steps=tuple(marks), why=why)


# ------------------------------------------------------------------------------------------------
# The task


def split_key(numbers: list[int], target: int) -> str:
    """What the train/test split hashes: the numbers as a multiset, so a problem and its
    reordering never land in different splits."""
    return ",".join(map(str, sorted(numbers))) + f"->{target}"


class CountdownTask:
    name = "countdown"
    min_difficulty = MIN_NUMBERS
    """The easiest problem has two numbers (the frontier counts solved difficulties from here)."""

    def __init__(self, timeout: float = 1.0):
        self.timeout = timeout

    @classmethod
    def check_config(
        cls, task: TaskConfig, raw: RawConfig, asked: list[tuple[str, list[int]]]
    ) -> None:
        if task.data is not None:
            raise ConfigError("task.data: countdown generates its problems; leave it unset")
        for key, ds in asked:
            if min(ds) < MIN_NUMBERS or max(ds) > MAX_NUMBERS:
                raise ConfigError(
                    f"{key}: countdown difficulties (counts of given numbers) are "
                    f"{MIN_NUMBERS}..{MAX_NUMBERS}"
                )

    @classmethod
    def from_config(cls, task: TaskConfig) -> CountdownTask:
        return cls(task.timeout)

    @classmethod
    def verifier(cls, timeout: float = 10.0, memory_mb: int = 1024) -> CountdownTask:
        return cls(timeout)

    # -- problems -------------------------------------------------------------------------------

    def make_problem(self, numbers: list[int], target: int) -> Problem:
        pid = ",".join(map(str, numbers)) + f"->{target}"
        return Problem(
            id=pid,
            difficulty=len(numbers),
            prompt=f"Q:{pid}=",
            answer=str(target),
            meta={"numbers": list(numbers), "target": target},
        )

    def parse_prompt(self, prompt: str) -> Problem:
        m = _PROMPT_RE.match(prompt.strip())
        if not m:
            raise ValueError(f"not a countdown prompt (like 'Q:3,7,25->46='): {prompt[:40]!r}")
        parts = m.group(1).split(",")
        return self._checked([int(x) for x in parts], int(m.group(2)))

    def problem_from_record(self, record: dict[str, Any], index: int) -> Problem:
        """``{"numbers": [3, 7, 25], "target": 46}`` (``nums`` as in TinyZero's data also works)
        or ``{"prompt": "Q:3,7,25->46="}``."""
        if isinstance(record.get("prompt"), str):
            return self.parse_prompt(record["prompt"])
        numbers = record.get("numbers", record.get("nums"))
        target = record.get("target")
        if not isinstance(numbers, list) or not _is_count(target):
            raise ValueError(
                "needs 'prompt' (e.g. 'Q:3,7,25->46=') or a list 'numbers' and an integer 'target'"
            )
        if not all(_is_count(x) for x in numbers):
            raise ValueError("'numbers' must be non-negative integers")
        return self._checked(numbers, target)

    def _checked(self, numbers: list[int], target: int) -> Problem:
        if not 1 <= len(numbers) <= MAX_RECORD_NUMBERS:
            raise ValueError(f"needs 1 to {MAX_RECORD_NUMBERS} numbers, got {len(numbers)}")
        if any(x >= 10**MAX_RECORD_DIGITS for x in numbers):
            raise ValueError(f"numbers have at most {MAX_RECORD_DIGITS} digits")
        if target >= 10 ** (2 * MAX_RECORD_DIGITS):
            raise ValueError(f"the target has at most {2 * MAX_RECORD_DIGITS} digits")
        return self.make_problem(numbers, target)

    def _draw(self, difficulty: int, rng: random.Random) -> Problem | None:
        """Random numbers combined at random into a target; None if it is out of range."""
        numbers = [rng.randint(1, NUMBER_MAX) for _ in range(difficulty)]
        pool = list(numbers)
        while len(pool) > 1:
            x, y = (pool.pop(rng.randrange(len(pool))) for _ in range(2))
            a, b = max(x, y), min(x, y)
            # No zero and no identity (x*1, x/1): every number shapes the target. '+' always
            # qualifies, since every value stays >= 1.
            ops = [op for op in "+-*/" if apply_op(a, op, b) not in (None, 0, a, b)]
            pool.append(apply_op(a, rng.choice(ops), b))
        lo, hi = TARGET_RANGES[difficulty]
        target = pool[0]
        if not lo <= target <= hi or target in numbers:
            return None
        return self.make_problem(numbers, target)

    def sample_problems(
        self, split: str, difficulty: int, n: int, rng: random.Random
    ) -> list[Problem]:
        if difficulty not in TARGET_RANGES:
            raise ValueError(f"countdown difficulties are {MIN_NUMBERS}..{MAX_NUMBERS}")
        return draw_distinct(
            lambda: self._draw(difficulty, rng),
            split,
            n,
            200 * n + 2000,
            lambda p: split_key(p.meta["numbers"], p.meta["target"]),
        )

    # -- chains ---------------------------------------------------------------------------------

    def solution(self, problem: Problem) -> list[Step]:
        """A shortest solution; ``ValueError`` if there is none (or none within the budget)."""
        steps = solve(problem.meta["numbers"], problem.meta["target"])
        if steps is None:
            raise ValueError(f"no solution found for {problem.id}")
        return steps

    def gold_chain(
        self, problem: Problem, slip: str | None = None, rng: random.Random | None = None
    ) -> str:
        """The chain of a shortest solution; with ``slip="wrong_result"``, one wrong result that
        propagates to a wrong final number."""
        steps = self.solution(problem)
        if slip is not None:
            if slip != "wrong_result":
                raise ValueError(f"unknown slip {slip!r}; valid: wrong_result")
            steps = slip_steps(problem.meta["numbers"], steps, rng or random.Random(problem.id))
        answer = steps[-1][3] if steps else problem.meta["target"]
        return render_chain(steps, answer)

    def hint_prompt(self, problem: Problem) -> str:
        """The prompt with the solution as one expression, e.g. ``H:(50-7)*3 Q:3,7,25,50->129=``:
        the target is already in the prompt, so the hint is how to reach it (STaR's rationalization
        then asks the model to spell it out as equations)."""
        steps = self.solution(problem)
        expr = solution_expression(problem.meta["numbers"], steps) if steps else problem.answer
        return f"H:{expr} {problem.prompt}"

    def raw_corpus(
        self, raw: RawConfig, rng: random.Random, exclude: frozenset[str] = frozenset()
    ) -> list[Example]:
        return generated_corpus(self, raw, rng, slip=lambda p, rng: "wrong_result", exclude=exclude)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        return verify_countdown(problem, completion, self.timeout)

    def max_new_tokens(self, difficulty: int) -> int:
        """A bound on any correct chain: at most ``difficulty - 1`` equations (each one uses up a
        number), and no value above ``(NUMBER_MAX + 1) ** difficulty`` (by induction: ``a+b`` and
        ``a*b`` are at most ``(a+1)(b+1) - 1``)."""
        width = len(str((NUMBER_MAX + 1) ** difficulty))
        return (difficulty - 1) * (3 * width + 4) + width + 1


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
