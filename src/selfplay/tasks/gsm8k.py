"""``gsm8k``: grade-school word problems, with every calculator annotation of the chain checked.

Prompt and completion (the GSM8K solution format)::

    Question: A baker fills 48 jars with cookies in the morning and half as many in the
    afternoon. How many jars does she fill in all?
    Answer:  ->  In the afternoon she fills 48/2 = <<48/2=24>>24 jars.
                 In all she fills 48+24 = <<48+24=72>>72 jars.
                 #### 72

The prompt is ``f"Question: {question}\\nAnswer: "``, the completion the gold solution as GSM8K
writes it, so a model fine-tuned on GSM8K's train split meets the format it was trained on.

The final answer is the number after the first ``####``; without one, the number in the last
``\\boxed{}``; without that, the last number in the text. It is compared to the gold answer as an
exact number: ``1,000``, ``$1000``, ``1000.0`` and ``2000/2`` are all 1000.

Steps are the lines before the final answer. A line's ``<<expression=value>>`` annotations are
checked by a small exact evaluator (``+ - * / //``, parentheses, decimals, unary minus and postfix
``%`` meaning "per cent"; no ``eval``): the value must be the expression's exact value, or that
value rounded to the decimals shown (``<<10/3=3.33>>``); a number written right after the
annotation must be the same value. This is the check the RFT paper (Yuan et al., 2023) applies to
sampled GSM8K chains. A line without an annotation carries no checkable claim: it is a step marked
ok with ``why="unchecked"``, so :attr:`Verdict.valid` means "right answer and no calculation is
wrong". Text on lines after the ``#### N`` line is one bad step ("text after the final answer"),
so a chain that runs on into another question is not kept as training data. An answer-only
completion (``#### 72``) has no steps.

Difficulty is the number of calculator annotations in the gold solution (its steps), 1-8.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from selfplay.tasks.base import Problem
from selfplay.tasks.dataset import DatasetTask
from selfplay.tasks.mathtask import last_boxed
from selfplay.verify import Deadline, StepMark, Verdict

MAX_CHARS = 100_000
"""Completions longer than this are judged unparseable without being read."""
MAX_EXPR_CHARS = 200
"""A calculator expression longer than this is not evaluated (GSM8K's longest is ~60)."""
MAX_DEPTH = 32
"""Nesting bound of the evaluator (parentheses and unary signs)."""
MAX_NUMBER_DIGITS = 40
"""A number with more digits than this is never a GSM8K answer and is not converted."""
VERIFY_SECONDS = 1.0

_NUMBER = (
    r"(?<![\w.,])(-)?\$?\s?(-)?"
    r"((?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:\s?/\s?(\d+)(?![\d.]))?"
)
_NUMBER_RE = re.compile(_NUMBER, re.ASCII)
_ANSWER_RE = re.compile(r"####[ \t]*" + _NUMBER, re.ASCII)
_ANNOTATION_RE = re.compile(r"<<([^<>\n]*)>>")
_AFTER_RE = re.compile(
    r"\s?\$?\s?(-?(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?|-?\.\d+)", re.ASCII
)
_VALUE_RE = re.compile(
    r"^\s*-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?\s*$|^\s*-?\.\d+\s*$", re.ASCII
)
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d{1,40})\s*\}\s*\{\s*(\d{1,40})\s*\}", re.ASCII)
_TOKEN_RE = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|(//|\S))", re.ASCII)


# ------------------------------------------------------------------------------------------------
# Numbers


def _to_fraction(digits: str) -> Fraction | None:
    """``'1,234.50'`` -> 1234.5; None if it has more than MAX_NUMBER_DIGITS digits."""
    digits = digits.replace(",", "")
    if sum(c.isdigit() for c in digits) > MAX_NUMBER_DIGITS:
        return None
    return Fraction(digits)


def _number_of(m: re.Match) -> Fraction | None:
    """The value of a :data:`_NUMBER` match (sign, ``$``, commas, ``a/b``)."""
    neg = bool(m.group(1)) != bool(m.group(2))
    value = _to_fraction(m.group(3))
    if value is None:
        return None
    if m.group(4) is not None:
        den = _to_fraction(m.group(4))
        if not den:
            return None
        value /= den
    return -value if neg else value


def format_number(x: Fraction) -> str:
    """Integers as integers, terminating decimals as decimals, the rest as ``p/q``.

    >>> format_number(Fraction(24)), format_number(Fraction(-5, 4)), format_number(Fraction(1, 3))
    ('24', '-1.25', '1/3')
    """
    if x.denominator == 1:
        return str(x.numerator)
    d, twos, fives = x.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d != 1:
        return f"{x.numerator}/{x.denominator}"
    places = max(twos, fives)
    scaled = abs(x.numerator) * 10**places // x.denominator
    sign = "-" if x < 0 else ""
    return f"{sign}{scaled // 10**places}.{scaled % 10**places:0{places}d}"


def _describe(x: Fraction) -> str:
    s = format_number(x)
    return f"{s} (~{float(x):.6g})" if "/" in s else s


# ------------------------------------------------------------------------------------------------
# The calculator


class CalcError(ValueError):
    """An expression the calculator cannot evaluate; the message says why."""


def evaluate(expr: str) -> Fraction:
    """The exact value of a calculator expression.

    ``+ - * /``, ``//`` (floor division, as in Python, which wrote GSM8K's annotations),
    parentheses, decimals, unary ``+``/``-`` and postfix ``%`` (per cent: ``20%`` is 1/5, not a
    remainder). No names, no powers, no ``eval``; bounded in length and nesting.

    >>> evaluate("48/2"), evaluate("-(3 + .5) * 2"), evaluate("20%*50"), evaluate("7//2")
    (Fraction(24, 1), Fraction(-7, 1), Fraction(10, 1), Fraction(3, 1))
    """
    if len(expr) > MAX_EXPR_CHARS:
        raise CalcError(f"expression longer than {MAX_EXPR_CHARS} characters")
    tokens: list[str | Fraction] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if m is None:  # only trailing whitespace is left
            break
        pos = m.end()
        if m.group(1) is not None:
            tokens.append(Fraction(m.group(1)))
        elif m.group(2) in ("+", "-", "*", "/", "//", "%", "(", ")"):
            tokens.append(m.group(2))
        else:
            raise CalcError(f"unexpected {m.group(2)!r}")
    if not tokens:
        raise CalcError("empty expression")
    return _Parser(tokens).parse()


class _Parser:
    """Recursive descent over ``expr := term (±term)*;
    term := unary ((* | / | //) unary)*; unary := ±unary | atom %*; atom := number | ( expr )``."""

    def __init__(self, tokens: list[str | Fraction]):
        self.tokens, self.i, self.depth = tokens, 0, 0

    def parse(self) -> Fraction:
        value = self.expr()
        if self.i != len(self.tokens):
            raise CalcError(f"unexpected {self._show(self.tokens[self.i])!r}")
        return value

    @staticmethod
    def _show(tok: str | Fraction) -> str:
        return format_number(tok) if isinstance(tok, Fraction) else tok

    def _peek(self) -> str | Fraction | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CalcError(f"nested deeper than {MAX_DEPTH}")

    def expr(self) -> Fraction:
        value = self.term()
        while self._peek() in ("+", "-"):
            op = self.tokens[self.i]
            self.i += 1
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self) -> Fraction:
        value = self.unary()
        while self._peek() in ("*", "/", "//"):
            op = self.tokens[self.i]
            self.i += 1
            rhs = self.unary()
            if op == "*":
                value *= rhs
            elif rhs == 0:
                raise CalcError("division by zero")
            else:
                value = value / rhs if op == "/" else Fraction(value // rhs)
        return value

    def unary(self) -> Fraction:
        tok = self._peek()
        if tok in ("+", "-"):
            self.i += 1
            self._enter()
            value = self.unary()
            self.depth -= 1
            return -value if tok == "-" else value
        value = self.atom()
        while self._peek() == "%":
            self.i += 1
            value /= 100
        return value

    def atom(self) -> Fraction:
        tok = self._peek()
        if isinstance(tok, Fraction):
            self.i += 1
            return tok
        if tok == "(":
            self.i += 1
            self._enter()
            value = self.expr()
            self.depth -= 1
            if self._peek() != ")":
                raise CalcError("unclosed '('")
            self.i += 1
            return value
        raise CalcError("unexpected end" if tok is None else f"unexpected {self._show(tok)!r}")


# ------------------------------------------------------------------------------------------------
# Verifier


def _check_annotation(content: str, after: str) -> str:
    """Why the annotation ``<<content>>`` (followed on its line by ``after``) is wrong; '' if right."""
    if content.count("=") != 1:
        return f"unparseable calculation: <<{content[:60]}>> is not <<expression=value>>"
    expr, shown = (s.strip() for s in content.split("="))
    if not _VALUE_RE.match(shown):
        return f"unparseable calculation: the value {shown[:30]!r} is not a number"
    value = _to_fraction(shown.replace("$", "").replace(",", ""))
    if value is None:
        return f"unparseable calculation: the value has more than {MAX_NUMBER_DIGITS} digits"
    try:
        exact = evaluate(expr)
    except CalcError as exc:
        return f"unparseable calculation: {expr[:60]!r}: {exc}"
    if exact != value:
        decimals = len(shown.split(".")[1]) if "." in shown else 0
        if not decimals or abs(exact - value) * 2 * 10**decimals > 1:
            return f"wrong calculation: {expr} is {_describe(exact)}, not {shown}"
    m = _AFTER_RE.match(after)
    if m is not None:
        written = _to_fraction(m.group(1))
        if written is not None and written != value:
            return f"wrong copy: <<{content}>> is followed by {m.group(1)}"
    return ""


def check_line(line: str) -> StepMark:
    """One line of reasoning as a step: bad if any of its calculator annotations is."""
    found = list(_ANNOTATION_RE.finditer(line))
    if not found:
        if "<<" in line:
            return StepMark(line, False, "unclosed calculation: '<<' without '>>'")
        return StepMark(line, True, "unchecked")
    for m in found:
        why = _check_annotation(m.group(1), line[m.end() : m.end() + 40])
        if why:
            return StepMark(line, False, why)
    if line.count("<<") != len(found):
        return StepMark(line, False, "unclosed calculation: '<<' without '>>'")
    return StepMark(line, True, "")


def extract_answer(text: str) -> tuple[str | None, Fraction | None, int, int]:
    """``(answer text, value, end of the reasoning, start of any text after the answer line)``.

    The answer is the number after the first ``####``; else the number in the last ``\\boxed{}``
    (``\\frac{a}{b}`` allowed); else the last number in the text. Value None: no number, or one
    too long to be an answer.
    """
    m = _ANSWER_RE.search(text)
    if m is not None:
        line_end = text.find("\n", m.end())
        return (
            m.group(0)[4:].strip(),
            _number_of(m),
            m.start(),
            len(text) if line_end < 0 else line_end,
        )
    boxed = last_boxed(text)
    if boxed is not None:
        if (f := _FRAC_RE.search(boxed)) is not None and int(f.group(2)) != 0:
            return f.group(0), Fraction(int(f.group(1)), int(f.group(2))), len(text), len(text)
        nums = list(_NUMBER_RE.finditer(boxed))
        if nums:
            return nums[-1].group(0).strip(), _number_of(nums[-1]), len(text), len(text)
    last = None
    for last in _NUMBER_RE.finditer(text):  # noqa: B007 - the last match is what we want
        pass
    if last is None:
        return None, None, len(text), len(text)
    return last.group(0).strip(), _number_of(last), len(text), len(text)


def _gold_value(problem: Problem) -> Fraction:
    return Fraction(problem.answer.replace(",", "").replace("$", "").strip())


def verify_gsm8k(problem: Problem, completion: str, seconds: float = VERIFY_SECONDS) -> Verdict:
    """Judge a ``gsm8k`` completion: final answer against the gold, each annotation by the calculator."""
    try:
        if not isinstance(completion, str):
            return Verdict("error", why=f"completion is {type(completion).__name__}, not text")
        if len(completion) > MAX_CHARS:
            return Verdict("unparseable", why=f"completion too long ({len(completion)} characters)")
        deadline = Deadline(seconds)
        shown, value, body_end, rest_start = extract_answer(completion)
        steps: list[StepMark] = []
        for line in completion[:body_end].splitlines():
            if deadline.expired():
                return Verdict("timeout", why=f"verifier exceeded {seconds:g}s")
            if line.strip():
                steps.append(check_line(line.strip()))
        rest = completion[rest_start:].strip()
        if rest:
            steps.append(StepMark(rest[:200], False, "text after the final answer"))
        if shown is None:
            return Verdict("unparseable", steps=tuple(steps), why="no number in the completion")
        answer = format_number(value) if value is not None else shown[:MAX_NUMBER_DIGITS] + "..."
        ok = value is not None and value == _gold_value(problem)
        return Verdict(
            "correct" if ok else "wrong",
            answer=answer,
            steps=tuple(steps),
            why="" if ok else "wrong answer",
        )
    except Exception as exc:  # a verifier never crashes the loop: the sample gets an error verdict
        return Verdict("error", why=f"{type(exc).__name__}: {exc}"[:200])


# ------------------------------------------------------------------------------------------------
# The task


class GSM8KTask(DatasetTask):
    name = "gsm8k"
    default_data = "openai/gsm8k"
    default_subset = "main"
    default_split = "train"
    required_fields = ("question", "answer")
    max_difficulty = 8

    @classmethod
    def problem_from_record(cls, record: dict[str, Any], index: int) -> Problem:
        """``{"question": ..., "answer": "<solution>\\n#### 72"}``; a bare number (``72``) is
        accepted as the answer, with ``#### 72`` as the gold chain."""
        question, gold = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise ValueError("needs a non-empty 'question' string")
        if isinstance(gold, (int, float)) and not isinstance(gold, bool):
            gold = f"#### {gold}"
        if not isinstance(gold, str):
            raise ValueError(
                "needs an 'answer' string: the gold solution ending in '#### <number>'"
            )
        m = _ANSWER_RE.search(gold)
        if m is None:
            if _NUMBER_RE.fullmatch(gold.strip()) is None:
                raise ValueError("'answer' has no '#### <number>' line")
            gold = f"#### {gold.strip()}"
            m = _ANSWER_RE.search(gold)
        value = _number_of(m)
        if value is None:
            raise ValueError(f"'answer' number longer than {MAX_NUMBER_DIGITS} digits")
        steps = len(_ANNOTATION_RE.findall(gold))
        question = question.strip()
        return Problem(
            id="gsm8k-" + hashlib.blake2b(question.encode(), digest_size=6).hexdigest(),
            difficulty=min(max(steps, 1), cls.max_difficulty),
            prompt=f"Question: {question}\nAnswer: ",
            answer=format_number(value),
            meta={"gold": gold},
        )

    def answer_only(self, problem: Problem) -> str:
        return f"#### {problem.answer}"

    def verify(self, problem: Problem, completion: str) -> Verdict:
        return verify_gsm8k(problem, completion)


# ------------------------------------------------------------------------------------------------
# Audit: the verifier on the gold solutions


def rejection_reason(verdict: Verdict) -> str | None:
    """Why a verdict falls short of a valid chain, without particulars (None if it is valid):
    the status for a wrong/unparseable/... answer, else the kind of the first bad step."""
    if verdict.status != "correct":
        return {"wrong": "final answer mismatch", "unparseable": "no final answer"}.get(
            verdict.status, verdict.status
        )
    if not verdict.steps:
        return "no steps (answer only)"
    bad = verdict.first_bad_step
    return None if bad is None else verdict.steps[bad].why.split(":")[0]


def audit_gold(records: Iterable[dict[str, Any]]) -> dict[str, Counter]:
    """Run the verifier on every record's gold solution as the completion.

    Returns ``{"chains": Counter(accepted | <reason>), "steps": Counter(checked | unchecked |
    <reason>), "mutated": Counter(<mutation> caught | missed)}``. The mutations check that the
    verifier can reject at all: each gold chain again with its last calculator value increased by
    one (inside the annotation only; chains without annotations are skipped), and with its final
    answer increased by one.
    """
    chains, steps, mutated = Counter(), Counter(), Counter()
    for i, rec in enumerate(records):
        p = GSM8KTask.problem_from_record(rec, i)
        gold = p.meta["gold"]
        v = verify_gsm8k(p, gold)
        chains[rejection_reason(v) or "accepted"] += 1
        for s in v.steps:
            steps[("checked" if not s.why else s.why) if s.ok else s.why.split(":")[0]] += 1
        bumped = format_number(Fraction(p.answer) + 1)
        wrong = verify_gsm8k(p, _ANSWER_RE.sub(f"#### {bumped}", gold, count=1))
        mutated["answer " + ("caught" if wrong.status == "wrong" else "missed")] += 1
        last = None
        for last in _ANNOTATION_RE.finditer(gold):  # noqa: B007 - the last one
            pass
        if last is not None and last.group(1).count("=") == 1:
            expr, shown = last.group(1).split("=")
            try:
                bumped = format_number(Fraction(shown.replace(",", "")) + 1)
            except ValueError:
                continue
            text = gold[: last.start()] + f"<<{expr}={bumped}>>" + gold[last.end() :]
            caught = rejection_reason(verify_gsm8k(p, text)) == "wrong calculation"
            mutated["calculation " + ("caught" if caught else "missed")] += 1
    return {"chains": chains, "steps": steps, "mutated": mutated}
