"""``arith``: multi-digit addition and multiplication with a scratchpad whose every step is checkable.

Addition works column by column from the right; each step names the two digits, the carry in (from
the second column on), the column sum and the carry out; the last segment is the answer::

    Q:4729+386=  ->  9+6=15 c1|2+8+1=11 c1|7+3+1=11 c1|4+0+1=5 c0|5115

Multiplication writes one partial product per digit of the second factor (the digit already
shifted), then the running sums::

    Q:47*36=  ->  47*6=282|47*30=1410|282+1410=1692|1692

Difficulty is the digit count of the longer operand. The raw corpus can carry realistic slips (a
dropped carry, a wrong column sum, a wrong partial product) that propagate to a wrong answer, and
answer-only items.

With ``task.index_hints`` (addition only), every digit of the prompt carries a letter naming its
column, and each step of the chain names the column it works on (index hints, as in Zhou et al.
2023, "What Algorithms can Transformers Learn?")::

    Q:g4f7e2d9+f3e8d6=  ->  d:9+6=15 c1|e:2+8+1=11 c1|f:7+3+1=11 c1|g:4+0+1=5 c0|5115

The units column's letter starts at an offset drawn per problem (a hash of its id), so a model
trained on 1-3 digits has seen every letter in every role; finding a column's digits becomes a
match on its letter rather than a count of positions, and the chain ends where the prompt's
letters end, whatever the length.

With ``task.reversed``, operands and answer are written least-significant digit first and the
answer is zero-padded to a fixed width (the longer operand's digits + 1 for addition, the sum of
the operands' digits for multiplication), as in Lee et al. 2025 ("Self-Improving Transformers
Overcome Easy-to-Hard and Length Generalization Challenges"): the model emits each answer digit
right after it has read the operand digits it depends on, and the answer length follows from the
prompt. Addition operands are zero-padded to one width, so digit i of both sits at the same offset
whatever their lengths. Addition keeps its column steps (already least-significant first); every number of the
multiplication chain is written reversed::

    Q:9274+6830=  ->  51150                                 (answer-only)
    Q:74*63=     ->  74*6=282|74*03=0141|282+0141=2961|2961

An answer-only reversed completion is judged digit by digit: each digit is a step, so the verdict
shows where a long answer first goes wrong.
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

from selfplay.errors import ConfigError
from selfplay.tasks.answers import clip, strip_zeros
from selfplay.tasks.base import Example, Problem, bounded_verify
from selfplay.tasks.generated import draw_distinct, generated_corpus
from selfplay.verify import Deadline, StepMark, Verdict

if TYPE_CHECKING:
    from selfplay.sections import RawConfig, TaskConfig

OPS = {"add": "+", "mul": "*"}
MAX_DIGITS = 40
"""Largest difficulty the task generates (length generalization climbs well past U's)."""
MAX_CHARS = 20_000
"""Completions longer than this are judged unparseable without being read."""
MAX_NUMBER_CHARS = 128
"""A number longer than this in a step is never right for problems of at most MAX_DIGITS digits."""
VERIFY_SECONDS = 1.0

_PROMPT_RE = re.compile(rf"^Q:(\d{{1,{MAX_DIGITS}}})([+*])(\d{{1,{MAX_DIGITS}}})=$", re.ASCII)
_HINTED_PROMPT_RE = re.compile(r"^Q:((?:[a-z]\d){1,26})\+((?:[a-z]\d){1,26})=$", re.ASCII)
_LABEL_RE = re.compile(r"^([a-z]):(.*)$", re.ASCII | re.DOTALL)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
# re.ASCII: ``\d`` must mean 0-9 only, as for the answer; Unicode digits (e.g. '٣') are not steps.
_ADD_STEP_RE = re.compile(r"^(\d+)\+(\d+)(?:\+(\d+))?=(\d+) c(\d+)$", re.ASCII)
_MUL_STEP_RE = re.compile(r"^(\d+)\*(\d+)=(\d+)$", re.ASCII)
_SUM_STEP_RE = re.compile(r"^(\d+)\+(\d+)=(\d+)$", re.ASCII)
_NUM_RE = re.compile(r"\d+")


def _num(digits: int, rng: random.Random) -> int:
    return rng.randrange(10) if digits == 1 else rng.randrange(10 ** (digits - 1), 10**digits)


def _digit(n: int, i: int) -> int:
    return (n // 10**i) % 10


def reversed_answer(a: int, b: int, op: str) -> str:
    """The answer of ``a op b`` least-significant digit first, zero-padded to the format's width:
    ``4729 + 386`` -> ``51150``, ``47 * 36`` -> ``2961``."""
    la, lb = len(str(a)), len(str(b))
    value, width = (a + b, max(la, lb) + 1) if op == "+" else (a * b, la + lb)
    return str(value).zfill(width)[::-1]


def _rev(n: int) -> str:
    return str(n)[::-1]


def _unrev(text: str) -> int:
    """A number written least-significant digit first (``'0141'`` -> 1410)."""
    return int(text[::-1])


def index_offset(problem_id: str, cols: int) -> int:
    """The letter of a problem's units column: stable per problem, spread over all offsets."""
    import hashlib

    h = int.from_bytes(hashlib.blake2b(problem_id.encode(), digest_size=4).digest(), "big")
    return h % (len(LETTERS) - cols + 1)


def hinted(n: int, offset: int) -> str:
    """``4729`` at offset 3 -> ``g4f7e2d9``: each digit after the letter of its column."""
    digits = str(n)
    return "".join(LETTERS[offset + len(digits) - 1 - i] + d for i, d in enumerate(digits))


# ------------------------------------------------------------------------------------------------
# Chains


def add_chain(
    a: int,
    b: int,
    slip: str | None = None,
    rng: random.Random | None = None,
    offset: int | None = None,
) -> str:
    """The column-addition chain for ``a + b``; with ``slip``, one realistic error that propagates;
    with ``offset``, each step labelled with its column's letter (index hints)."""
    cols = max(len(str(a)), len(str(b)))
    slip_col = None
    if slip == "dropped_carry":
        # Drop a carry that should be there: a column (from the 2nd) whose true carry-in is 1.
        carries, c = [], 0
        for i in range(cols):
            carries.append(c)
            c = (_digit(a, i) + _digit(b, i) + c) // 10
        candidates = [i for i in range(1, cols) if carries[i] == 1]
        if not candidates:
            slip = "wrong_sum"
        else:
            slip_col = rng.choice(candidates)
    if slip == "wrong_sum":
        slip_col = rng.randrange(cols)
    steps, digits, c = [], [], 0
    for i in range(cols):
        x, y = _digit(a, i), _digit(b, i)
        if slip == "dropped_carry" and i == slip_col:
            c = 0
        s = x + y + c
        if slip == "wrong_sum" and i == slip_col:
            s = s + 1 if s < 19 and (s == 0 or rng.random() < 0.5) else s - 1
        carry_in = "" if i == 0 else f"+{c}"
        c = s // 10
        label = "" if offset is None else f"{LETTERS[offset + i]}:"
        steps.append(f"{label}{x}+{y}{carry_in}={s} c{c}")
        digits.append(str(s % 10))
    answer = (str(c) if c else "") + "".join(reversed(digits))
    return "|".join(steps + [strip_zeros(answer)])


def mul_chain(a: int, b: int, slip: str | None = None, rng: random.Random | None = None) -> str:
    """The partial-product chain for ``a * b``; with ``slip``, one wrong partial product."""
    b_digits = len(str(b))
    slip_at = rng.randrange(b_digits) if slip else None
    partials = []
    for j in range(b_digits):
        factor = _digit(b, j) * 10**j
        p = a * factor
        if j == slip_at:
            # A slipped digit in a partial product: off by one in the digit above the shift.
            p = p + 10**j if (p // 10**j) % 10 < 9 else p - 10**j
        partials.append((factor, p))
    steps = [f"{a}*{factor}={p}" for factor, p in partials]
    total = partials[0][1]
    for _, p in partials[1:]:
        steps.append(f"{total}+{p}={total + p}")
        total += p
    return "|".join(steps + [str(total)])


def reverse_mul_chain(chain: str, a: int, b: int) -> str:
    """A forward multiplication chain with every number written least-significant digit first and
    the answer padded to the reversed format's width."""
    *steps, answer = chain.split("|")
    out = [_NUM_RE.sub(lambda m: m.group(0)[::-1], s) for s in steps]
    width = len(str(a)) + len(str(b))
    return "|".join(out + [answer.zfill(width)[::-1]])


# ------------------------------------------------------------------------------------------------
# Verifiers


def _too_long(*nums: str) -> bool:
    return any(len(n) > MAX_NUMBER_CHARS for n in nums)


def _verify_add(
    a: int, b: int, segs: list[str], deadline: Deadline, offset: int | None = None
) -> tuple[list[StepMark], str | None]:
    """Marks for each step, and the result the chain computes (None if any step is off). With
    ``offset`` (index hints) each step must start with its column's letter."""
    cols = max(len(str(a)), len(str(b)))
    marks: list[StepMark] = []
    prev_carry: int | None = 0
    digits: list[str] = []
    chain_ok = True
    for i, seg in enumerate(segs):
        if deadline.expired():
            raise TimeoutError
        body = seg
        if offset is not None:
            lab = _LABEL_RE.match(seg)
            if i < cols and lab and lab.group(1) != LETTERS[offset + i]:
                marks.append(
                    StepMark(
                        seg,
                        False,
                        f"wrong column: step {i + 1} is column {LETTERS[offset + i]}, not {lab.group(1)}",
                    )
                )
                prev_carry, chain_ok = None, False
                continue
            body = lab.group(2) if lab else ""
        m = _ADD_STEP_RE.match(body)
        if i >= cols:
            marks.append(StepMark(seg, False, f"extra step: the problem has {cols} columns"))
            chain_ok = False
            continue
        if not m:
            marks.append(StepMark(seg, False, "unparseable step"))
            prev_carry, chain_ok = None, False
            continue
        xs, ys, cs, ss, cos = m.groups()
        if _too_long(xs, ys, cs or "", ss, cos):
            marks.append(StepMark(seg, False, "number too long"))
            prev_carry, chain_ok = None, False
            continue
        x, y, s, co = int(xs), int(ys), int(ss), int(cos)
        c = int(cs) if cs is not None else None
        why = ""
        if x != _digit(a, i):
            why = f"wrong digit: column {i + 1} of {a} is {_digit(a, i)}, not {x}"
        elif y != _digit(b, i):
            why = f"wrong digit: column {i + 1} of {b} is {_digit(b, i)}, not {y}"
        elif i == 0 and c is not None:
            why = "the first column has no carry in"
        elif i > 0 and c is None:
            why = (
                f"missing carry in (should be {prev_carry})"
                if prev_carry is not None
                else "missing carry in"
            )
        elif i > 0 and prev_carry is not None and c != prev_carry:
            why = (
                "dropped carry"
                if (prev_carry == 1 and c == 0)
                else f"wrong carry in: should be {prev_carry}, not {c}"
            )
        elif s != x + y + (c or 0):
            why = (
                f"wrong sum: {x}+{y}{'' if c is None else '+' + str(c)}={x + y + (c or 0)}, not {s}"
            )
        elif co != s // 10:
            why = f"wrong carry out: {s} carries {s // 10}, not {co}"
        marks.append(StepMark(seg, not why, why))
        chain_ok = chain_ok and not why
        prev_carry = co
        digits.append(str(s % 10))
    if len(segs) < cols:
        marks.append(
            StepMark("", False, f"missing steps: the chain has {len(segs)} of {cols} columns")
        )
        chain_ok = False
    if not chain_ok:
        return marks, None
    return marks, strip_zeros((str(prev_carry) if prev_carry else "") + "".join(reversed(digits)))


def _verify_mul(
    a: int, b: int, segs: list[str], deadline: Deadline
) -> tuple[list[StepMark], str | None]:
    b_digits = len(str(b))
    marks: list[StepMark] = []
    partials: list[int | None] = []
    chain_ok = True
    for j, seg in enumerate(segs[:b_digits]):
        if deadline.expired():
            raise TimeoutError
        m = _MUL_STEP_RE.match(seg)
        if not m:
            marks.append(StepMark(seg, False, "unparseable step (expected a partial product)"))
            partials.append(None)
            chain_ok = False
            continue
        xs, fs, ps = m.groups()
        if _too_long(xs, fs, ps):
            marks.append(StepMark(seg, False, "number too long"))
            partials.append(None)
            chain_ok = False
            continue
        x, f, p = int(xs), int(fs), int(ps)
        want_f = _digit(b, j) * 10**j
        why = ""
        if x != a:
            why = f"wrong factor: {x}, not {a}"
        elif f != want_f:
            why = f"wrong partial factor: digit {j + 1} of {b} shifted is {want_f}, not {f}"
        elif p != x * f:
            why = f"wrong product: {x}*{f}={x * f}, not {p}"
        marks.append(StepMark(seg, not why, why))
        chain_ok = chain_ok and not why
        partials.append(p)
    total = partials[0] if partials else None
    sum_segs = segs[b_digits:]
    for j, seg in enumerate(sum_segs, start=1):
        if deadline.expired():
            raise TimeoutError
        if j >= b_digits:
            marks.append(
                StepMark(seg, False, f"extra step: the problem has {b_digits} partial products")
            )
            chain_ok = False
            continue
        m = _SUM_STEP_RE.match(seg)
        if not m or _too_long(*m.groups()):
            marks.append(StepMark(seg, False, "unparseable step (expected a running sum)"))
            total, chain_ok = None, False
            continue
        r, p, s = (int(g) for g in m.groups())
        why = ""
        if total is not None and r != total:
            why = f"wrong running total: {total}, not {r}"
        elif j < len(partials) and partials[j] is not None and p != partials[j]:
            why = f"wrong addend: partial product {j + 1} is {partials[j]}, not {p}"
        elif s != r + p:
            why = f"wrong sum: {r}+{p}={r + p}, not {s}"
        marks.append(StepMark(seg, not why, why))
        chain_ok = chain_ok and not why
        total = s
    expected_steps = 2 * b_digits - 1
    if len(segs) < expected_steps:
        marks.append(
            StepMark("", False, f"missing steps: the chain has {len(segs)} of {expected_steps}")
        )
        chain_ok = False
    return marks, (str(total) if chain_ok and total is not None else None)


def verify_arith(problem: Problem, completion: str, seconds: float = VERIFY_SECONDS) -> Verdict:
    """Judge an ``arith`` completion: answer against the gold, every step against the arithmetic
    (inside :func:`bounded_verify`: text only, size cap, deadline, never raises)."""
    return bounded_verify(_judge, problem, completion, max_chars=MAX_CHARS, seconds=seconds)


def _judge(problem: Problem, completion: str, deadline: Deadline) -> Verdict:
    a, b, op = problem.meta["a"], problem.meta["b"], problem.meta["op"]
    segs = [s.strip() for s in completion.strip().split("|")]
    answer = segs[-1]
    if not answer.isascii() or not answer.isdigit():
        return Verdict("unparseable", why="no final answer (the last segment is not a number)")
    if problem.meta.get("reversed"):
        return _verify_reversed(problem, segs, deadline)
    marks: list[StepMark] = []
    if len(segs) > 1:
        if op == "+":
            marks, result = _verify_add(a, b, segs[:-1], deadline, problem.meta.get("offset"))
        else:
            marks, result = _verify_mul(a, b, segs[:-1], deadline)
        if result is not None:
            # The answer itself is a step: it must be what the chain computed.
            follows = strip_zeros(answer) == result
            why = "" if follows else f"answer does not follow from the chain (it gives {result})"
            marks.append(StepMark(answer, follows, why))
    ok = strip_zeros(answer) == strip_zeros(problem.answer)
    return Verdict(
        "correct" if ok else "wrong",
        answer=clip(answer, MAX_NUMBER_CHARS),
        steps=tuple(marks),
        why="" if ok else "wrong answer",
    )


def _digit_marks(answer: str, gold: str) -> list[StepMark]:
    """One mark per answer digit (least significant first), then one for missing or extra digits."""
    marks = [
        StepMark(ch, ch == g, "" if ch == g else f"wrong digit {i + 1}: {g}, not {ch}")
        for i, (ch, g) in enumerate(zip(answer, gold, strict=False))
    ]
    if len(answer) < len(gold):
        marks.append(StepMark("", False, f"missing digits: {len(answer)} of {len(gold)}"))
    elif len(answer) > len(gold):
        marks.append(StepMark(answer[len(gold) :], False, f"extra digits: {len(gold)} expected"))
    return marks


def _verify_reversed(problem: Problem, segs: list[str], deadline: Deadline) -> Verdict:
    """The reversed format: the answer is compared digit for digit (fixed width, no stripping of
    zeros); a chain's steps are checked as in the forward format, its numbers read reversed."""
    a, b, op = problem.meta["a"], problem.meta["b"], problem.meta["op"]
    answer, steps = segs[-1], segs[:-1]
    if steps:
        if op == "+":
            marks, result = _verify_add(a, b, steps, deadline)
        else:
            forward = [_NUM_RE.sub(lambda m: m.group(0)[::-1], seg) for seg in steps]
            marks, result = _verify_mul(a, b, forward, deadline)
            # The marks name the steps as written (reversed), not as checked.
            marks = [
                StepMark(steps[i], m.ok, m.why) if i < len(steps) else m
                for i, m in enumerate(marks)
            ]
        if result is not None:
            width = len(problem.answer)
            follows = len(answer) == width and strip_zeros(answer[::-1]) == result
            want = result.zfill(width)[::-1]
            marks.append(
                StepMark(
                    answer,
                    follows,
                    "" if follows else f"answer does not follow from the chain (it gives {want})",
                )
            )
    else:
        marks = _digit_marks(answer, problem.answer)
    ok = answer == problem.answer
    why = ""
    if not ok:
        why = (
            f"wrong answer width: {len(answer)} digits, not {len(problem.answer)}"
            if len(answer) != len(problem.answer)
            else "wrong answer"
        )
    return Verdict(
        "correct" if ok else "wrong",
        answer=clip(answer, MAX_NUMBER_CHARS),
        steps=tuple(marks),
        why=why,
    )


# ------------------------------------------------------------------------------------------------
# The task


def _slip(problem: Problem, rng: random.Random) -> str:
    """The kind of slip a raw chain gets: a wrong partial product, or a dropped carry or a wrong
    column sum."""
    if problem.meta["op"] == "*":
        return "wrong_product"
    return rng.choice(["dropped_carry", "wrong_sum"])


class ArithTask:
    name = "arith"

    def __init__(
        self, ops: list[str] = ("add",), index_hints: bool = False, reversed_: bool = False
    ):
        self.ops = list(ops)
        self.index_hints = index_hints
        self.reversed = reversed_

    @classmethod
    def check_config(
        cls, task: TaskConfig, raw: RawConfig, asked: list[tuple[str, list[int]]]
    ) -> None:
        bad = [op for op in task.ops if op not in OPS]
        if bad or not task.ops:
            raise ConfigError(
                f"task.ops: unknown operation {bad[0] if bad else '(none)'!r}; valid: {', '.join(OPS)}"
            )
        for key, ds in asked:
            if max(ds) > MAX_DIGITS:
                raise ConfigError(f"{key}: arith supports at most {MAX_DIGITS} digits")
        if task.index_hints and task.ops != ["add"]:
            raise ConfigError("task.index_hints: only for addition (task.ops: [add])")
        if task.index_hints and task.reversed:
            raise ConfigError("task.index_hints: not combined with task.reversed")

    @classmethod
    def from_config(cls, task: TaskConfig) -> ArithTask:
        return cls(task.ops, task.index_hints, task.reversed)

    @classmethod
    def verifier(cls, timeout: float = 10.0, memory_mb: int = 1024) -> ArithTask:
        return cls(list(OPS))

    def problem_from_record(self, record: dict, index: int) -> Problem:
        """``{"prompt": "Q:12+345="}`` or ``{"a": 12, "op": "+", "b": 345}``."""
        if isinstance(record.get("prompt"), str):
            return self.parse_prompt(record["prompt"], record.get("reversed") is True)
        a, op, b = record.get("a"), record.get("op"), record.get("b")
        # bool is an int in Python: JSON true must not become the operand 1.
        if not (
            all(isinstance(x, int) and not isinstance(x, bool) for x in (a, b))
            and op in ("+", "*")
            and a >= 0
            and b >= 0
        ):
            raise ValueError(
                "needs 'prompt' (e.g. 'Q:12+34=') or integer 'a', 'b' and 'op' '+'/'*'"
            )
        if max(len(str(a)), len(str(b))) > MAX_DIGITS:
            raise ValueError(f"operands longer than {MAX_DIGITS} digits")
        return self.make_problem(a, op, b, reversed_=record.get("reversed") is True or None)

    def make_problem(
        self,
        a: int,
        op: str,
        b: int,
        index_hints: bool | None = None,
        reversed_: bool | None = None,
    ) -> Problem:
        answer = a + b if op == "+" else a * b
        pid = f"{a}{op}{b}"
        cols = max(len(str(a)), len(str(b)))
        meta = {"a": a, "b": b, "op": op}
        prompt = f"Q:{pid}="
        if self.reversed if reversed_ is None else reversed_:
            # The id stays the forward one, so a problem lands in the same split in both formats.
            meta["reversed"] = True
            xs, ys = _rev(a), _rev(b)
            if op == "+":
                # Zero-padded to one width: digit i of both operands sits at the same offset from
                # its operand's start, whatever the lengths (the answer's digit i needs both).
                xs, ys = xs.ljust(cols, "0"), ys.ljust(cols, "0")
            prompt = f"Q:{xs}{op}{ys}="
            return Problem(pid, cols, prompt, reversed_answer(a, b, op), meta)
        if (self.index_hints if index_hints is None else index_hints) and op == "+":
            meta["offset"] = offset = index_offset(pid, cols)
            prompt = f"Q:{hinted(a, offset)}+{hinted(b, offset)}="
        return Problem(id=pid, difficulty=cols, prompt=prompt, answer=str(answer), meta=meta)

    def parse_prompt(self, prompt: str, reversed_: bool = False) -> Problem:
        """A plain (``Q:12+34=``) or index-hinted (``Q:e1d2+e3d4=``) prompt as a problem; with
        ``reversed_`` (or a reversed task) the operands are read least-significant digit first."""
        text = prompt.strip()
        if m := _PROMPT_RE.match(text):
            if reversed_ or self.reversed:
                p = self.make_problem(
                    _unrev(m.group(1)), m.group(2), _unrev(m.group(3)), False, True
                )
                if p.prompt != text:
                    raise ValueError(
                        f"not a reversed arith prompt as written: expected {p.prompt!r}"
                    )
                return p
            return self.make_problem(int(m.group(1)), m.group(2), int(m.group(3)), False)
        if m := _HINTED_PROMPT_RE.match(text):
            a, b = (int(re.sub("[a-z]", "", g)) for g in m.groups())
            p = self.make_problem(a, "+", b, True)
            if p.prompt != text:
                raise ValueError(f"index letters do not match the task's: expected {p.prompt!r}")
            return p
        raise ValueError(f"not an arith prompt: {prompt[:40]!r}")

    def _draw(self, difficulty: int, rng: random.Random) -> Problem:
        op = OPS[rng.choice(self.ops)]
        a = _num(difficulty, rng)
        b = _num(rng.randint(1, difficulty), rng)
        if rng.random() < 0.5:
            a, b = b, a
        return self.make_problem(a, op, b)

    def sample_problems(
        self, split: str, difficulty: int, n: int, rng: random.Random
    ) -> list[Problem]:
        return draw_distinct(lambda: self._draw(difficulty, rng), split, n, 50 * n + 1000)

    def gold_chain(
        self, problem: Problem, slip: str | None = None, rng: random.Random | None = None
    ) -> str:
        a, b, op = problem.meta["a"], problem.meta["b"], problem.meta["op"]
        if op == "+":
            chain = add_chain(a, b, slip, rng, problem.meta.get("offset"))
            if problem.meta.get("reversed"):
                *steps, answer = chain.split("|")
                chain = "|".join([*steps, answer.zfill(len(problem.answer))[::-1]])
            return chain
        chain = mul_chain(a, b, slip, rng)
        return reverse_mul_chain(chain, a, b) if problem.meta.get("reversed") else chain

    def raw_corpus(
        self, raw: RawConfig, rng: random.Random, exclude: frozenset[str] = frozenset()
    ) -> list[Example]:
        return generated_corpus(self, raw, rng, slip=_slip, hints_last=True, exclude=exclude)

    def hint_prompt(self, problem: Problem) -> str:
        """The prompt with the answer given as a hint (STaR's rationalization)."""
        return f"H:{problem.answer} {problem.prompt}"

    def verify(self, problem: Problem, completion: str) -> Verdict:
        return verify_arith(problem, completion)

    def answer_tokens(self, difficulty: int) -> int:
        """A completion budget for answer-only data: the longest answer of this difficulty (any
        of the task's operations) and its end-of-sequence token."""
        worst = 10**difficulty - 1
        return max(len(self.make_problem(worst, OPS[op], worst).answer) for op in self.ops) + 1

    def answer_width(self, problem: Problem) -> int | None:
        """The answer width the prompt implies when the format fixes it (reversed answers are
        written to full width, leading zeros included); None otherwise. A label-free check."""
        m = problem.meta
        if not m.get("reversed"):
            return None
        la, lb = len(str(m["a"])), len(str(m["b"]))
        return max(la, lb) + 1 if m["op"] == "+" else la + lb

    def max_new_tokens(self, difficulty: int) -> int:
        worst = 10**difficulty - 1
        longest = max(
            len(self.gold_chain(self.make_problem(worst, OPS[op], worst))) for op in self.ops
        )
        return longest + 8
