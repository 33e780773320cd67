"""``gsm8k``: grade-school word problems, with every arithmetic claim of the chain checked.

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

Steps are the lines before the final answer. Two kinds of claim on a line are recomputed by a
small exact evaluator (``+ - * / //``, parentheses, decimals, unary minus and postfix ``%``
meaning "per cent"; no ``eval``):

- ``<<expression=value>>`` calculator annotations: the value must be the expression's exact
  value, or that value rounded to the decimals shown (``<<10/3=3.33>>``); a number written right
  after the annotation must be the same value (the check the RFT paper, Yuan et al. 2023, applies
  to sampled GSM8K chains).
- arithmetic written in prose (:func:`prose_claims`): ``48/2 = 24``, ``5 + 3 + 2 = 10``, ``4 x 5
  = 20``, ``4 times 5 is 20``, ``half of 48 is 24``, ``20% of $1,200 = $240``, ``3/4 of 12 =
  9``, with units after numbers (``40 cupcakes - 18 = 22``) and running totals (``4 + 5 = 9 + 1
  = 10``). The reader is conservative: text it cannot read for sure (algebra such as ``2x + 3 =
  11``, ``2(50+100)``, clock times, sums across units) is not a claim, so it costs a check, never
  a false rejection. The prose an annotation renders (``48/2 = <<48/2=24>>``) is left to the
  annotation.

A wrong claim makes its line a bad step, so the chain is not :attr:`Verdict.valid` whatever its
final answer (the status still follows the answer). A line with neither kind of claim is a step
marked ok with ``why="unchecked"``; ``filters.require_checked_steps`` drops chains that have one.
Text on lines after the ``#### N`` line is one bad step ("text after the final answer"), so a
chain that runs on into another question is not kept as training data. An answer-only
completion (``#### 72``) has no steps.

Difficulty is the number of calculator annotations in the gold solution (its steps), 1-8.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from selfplay.tasks.answers import last_boxed
from selfplay.tasks.base import Problem, bounded_verify
from selfplay.tasks.dataset import DatasetTask
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
# Arithmetic written in prose

_PROSE_TOKEN_RE = re.compile(
    r"(?P<ann>\x00)"
    # 1 1/2, 1 and 1/3, $3 and $1/3: one number
    r"|(?P<mixed>(?<![\w.,:/])\$?(?P<whole>\d+)(?:\s+and\s+\$?|\s+)(?P<mn>\d+)/(?P<md>\d+)(?![\w/.,:]))"
    # 3/4, 12/60 written tight: one quotient, so that 28 / 1/5 is 28 divided by a fifth
    r"|(?P<frac>(?<![\w.,:/])\$?(?P<fn>\d+(?:\.\d+)?)/(?P<fd>\d+(?:\.\d+)?)(?![\w/.,:]))"
    r"|(?P<num>(?:(?<![\w.,:])|(?<=\d[xX]))\$?(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?|(?<![\w.,:])\.\d+)"
    r"(?P<colon>:\d|\.\.)?(?P<pct>\s?%)?(?P<alpha>(?![xX]\s*[\d$.(])[A-Za-z]+)?"
    r"|(?P<op>[-+*/\u00d7\u00f7\u2212\u2013]|[xX](?=\s*[\d$.(]))"
    r"|(?P<eq>=)"
    r"|(?P<paren>[()])"
    r"|(?P<word>[A-Za-z]+(?:'[A-Za-z]+)?)"
    r"|(?P<other>\S)",
    re.ASCII,
)
_ANNOTATION_SPAN_RE = re.compile(r"\$?[ \t]*<<[^<>\n]*>>")
_LEAD_RE = re.compile(r"\(?\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?\))?|\.\d+", re.ASCII)
_PLAIN_RE = re.compile(r"\d+(?:\.\d+)?|\.\d+", re.ASCII)
_DIVIDED_FRACTION_RE = re.compile(r"/(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)(?![\d.])", re.ASCII)
_OPS = {"\u00d7": "*", "x": "*", "X": "*", "\u00f7": "/", "\u2212": "-", "\u2013": "-"}
_WORD_OPS = {"times": "*", "plus": "+", "minus": "-"}
_BY_OPS = {"multiplied": "*", "divided": "/"}
_WORD_FRACTIONS = {"half": "(1/2)", "third": "(1/3)", "quarter": "(1/4)", "fourth": "(1/4)"}
_NUMBER_UNITS = frozenset(
    [
        "kg",
        "km",
        "cm",
        "mm",
        "ft",
        "lb",
        "lbs",
        "oz",
        "mph",
        "hr",
        "hrs",
        "min",
        "mins",
        "ml",
        "mi",
        "yd",
        "gal",
        "sec",
        "secs",
    ]
)
_CENTS = frozenset(("cent", "cents"))
MAX_UNIT_WORDS = 2
"""Words a number may carry before the next operator (``40 cupcakes - 18``, ``$10 per hour x``)."""

Token = tuple[str, str, bool]


def _starts_number(m: re.Match | None) -> bool:
    """Whether a token starts a number (``times`` before one is a product, ``12 times.`` not)."""
    return m is not None and (
        m.group("num") is not None
        or m.group("frac") is not None
        or m.group("mixed") is not None
        or m.group() == "("
    )


def _prose_tokens(text: str) -> list[Token]:
    """``(kind, calculator text, attached)`` per token. Kinds: ``num`` (``1200``, ``20%``,
    ``(3/4)``), ``op``, ``eq`` (``=``, ``is``), ``(``, ``)``, ``of``, ``unit`` (a word a number
    may carry), ``ann`` (a calculator annotation), ``var`` (a letter or a number glued to one:
    ``x``, ``2x``, ``3rd``, ``09:30``, ``8.33...``: algebra, or not an exact quantity), ``brk``
    (punctuation and the
    like). ``attached``: an operator written right against the number after it (``-5``)."""
    out: list[Token] = []
    raw = list(_PROSE_TOKEN_RE.finditer(text))
    i = 0
    while i < len(raw):
        m, kind = raw[i], raw[i].lastgroup
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        after = nxt.group().lower() if nxt is not None else ""
        word = m.group().lower() if kind == "word" else ""
        if m.group("mixed") is not None:
            whole, num, den = m.group("whole", "mn", "md")
            out.append(("num", f"({whole}+{num}/{den})", False))
        elif m.group("frac") is not None:
            out.append(("num", f"({m.group('fn')}/{m.group('fd')})", False))
        elif m.group("num") is not None:
            digits = m.group("num").replace("$", "").replace(",", "")
            pct = m.group("pct") is not None
            if after == "percent":
                pct, i = True, i + 1
            alpha = m.group("alpha")
            glued = alpha is not None and alpha not in _NUMBER_UNITS
            leading_zero = digits.isdigit() and len(digits) > 1 and digits[0] == "0"
            clock = m.group("colon") is not None or leading_zero  # 6:00, 0930
            if glued or clock:
                out.append(("var", m.group(), False))
            else:
                out.append(("num", digits + ("%" if pct else ""), False))
                if alpha is not None:
                    out.append(("unit", alpha, False))
        elif kind == "op":
            op = _OPS.get(m.group(), m.group())
            glued = i > 0 and raw[i - 1].lastgroup == "word" and raw[i - 1].end() == m.start()
            if op == "/" and glued:
                out.append(("var", "/", False))  # "5 minutes/100 meters": a rate, not a quotient
            elif op == "/" and nxt is not None and nxt.lastgroup == "word":
                single = len(after) == 1 and after not in ("a", "i")
                out.append(("var", "/" + after, False) if single else ("unit", "per", False))
            else:
                attached = nxt is not None and nxt.start() == m.end() and nxt.lastgroup == "num"
                out.append(("op", op, attached))
        elif kind in ("eq", "ann"):
            out.append((kind, m.group(), False))
        elif kind == "paren":
            out.append((m.group(), m.group(), False))
        elif word in _WORD_OPS and _starts_number(nxt):
            out.append(("op", _WORD_OPS[word], False))
        elif word in _BY_OPS and after == "by":
            out.append(("op", _BY_OPS[word], False))
            i += 1
        elif word in _WORD_FRACTIONS and after == "of":
            out.append(("num", _WORD_FRACTIONS[word], False))
            out.append(("of", "*", False))
            i += 1
        elif word == "of":
            out.append(("of", "*", False))
        elif word in ("is", "equals"):
            out.append(("eq", "is" if word == "is" else "=", False))
        elif kind == "word":
            single = len(word) == 1 and word not in ("a", "i")
            out.append(("var" if single else "unit", word, False))
        else:  # a digit the number pattern refused (``:2`` in ``Day 4:2(50+100)``) is no quantity
            out.append(("var" if m.group().isalnum() else "brk", m.group(), False))
        i += 1
    return out


class _Claims:
    """Reads the claims ``side = side [= side ...]`` out of a line's tokens.

    Conservative by design: a claim whose first side may be the tail of a longer expression
    (it follows a variable, an operator with nothing before it, ``2(``, two numbers in a row) has
    that side dropped, and one whose last side may go on (``= 18 000``, ``= 24/Y``) has the last
    side dropped, so that a misread costs a check, never a false rejection."""

    def __init__(self) -> None:
        self.claims: list[tuple[list[str], bool]] = []
        self.taint = False  # what comes next may continue an expression this reader did not read
        self._reset()

    def _reset(self) -> None:
        self.sides: list[list[str]] = []
        self.kinds: list[str] = []  # "=" or "is" before each side after the first
        self.side: list[str] = []
        self.plain: list[bool] = []  # per side: a bare quantity (no operator, or one with units)
        self.units_of: set[str] = set()  # the unit words of the side in progress
        self.hundred = False  # a per cent sign or cents in the claim: x100 is the same claim
        self.mixed = False  # "4 pounds - 6 ounces": a sum across units hides a conversion
        self.last: str | None = None  # None (expecting a start), num, op, (, )
        self.units = 0
        self.depth = 0
        self.scaled = False  # the last factor is a fraction or a percent: "of" means "times"
        self.tainted = False  # this run's first side may be a tail
        self.wrapped = 0  # brackets opened around the claim, not inside it

    def _start(self) -> None:
        if not self.side and not self.sides:
            self.tainted, self.taint = self.taint, False

    def _close_side(self) -> None:
        self.sides.append(self.side)
        self.plain.append(not _has_op(self.side) or (len(self.side) == 1 and self.units > 0))
        if len(self.units_of) > 1 and any(t in ("+", "-") for t in self.side):
            self.mixed = True
        self.side, self.units_of = [], set()

    def flush(self, drop_last: bool = False) -> None:
        if self.side and self.last in ("num", ")") and self.depth == 0:
            self._close_side()
        sides, plain, kinds = self.sides, self.plain, self.kinds
        if drop_last:
            sides, plain = sides[:-1], plain[:-1]
        if self.tainted:
            sides, plain, kinds = sides[1:], plain[1:], kinds[1:]
        for k in range(len(sides) - 1):
            # "2 hours = 120 minutes": two bare quantities are a conversion, not arithmetic;
            # "a times b is c": "is" joins an expression to a plain number only.
            if (plain[k] and plain[k + 1]) or (
                kinds[k] == "is" and (plain[k] or len(sides[k + 1]) != 1)
            ):
                sides = sides[: k + 1]
                break
        # "2 dozen = 2 x 12 = 24": a bare quantity first is a label or a unit, not a claim.
        if sides and plain[0]:
            sides = sides[1:]
        if len(sides) >= 2 and not self.mixed:
            self.claims.append((["".join(s) for s in sides], self.hundred))
        self._reset()

    def dirty(self) -> None:
        """What follows cannot be read: the side in progress may go on, the next may be a tail."""
        self.flush(drop_last=True)
        self.taint = True

    def feed(self, kind: str, text: str, attached: bool) -> None:
        last = self.last
        if kind == "num":
            if last in ("num", ")"):
                if self.units:
                    self.flush()  # "24 jars in 3 boxes": a new start
                else:
                    self.dirty()  # "18 000", "1 2": one number this reader cannot split
            self._start()
            self.side.append(text)
            self.last, self.units = "num", 0
            self.scaled = text.endswith("%") or text.startswith("(")
            self.hundred = self.hundred or text.endswith("%")
        elif kind == "unit":
            if last in ("num", ")") and self.units < MAX_UNIT_WORDS:
                self.units += 1
                self.scaled = False
                if self.units == 1:
                    self.units_of.add(text.lower().rstrip("s"))
                    self.hundred = self.hundred or text.lower() in _CENTS
            elif self.side or self.sides:
                self.flush()
            else:
                self.taint = False  # words between claims
        elif kind == "of":
            if last == "num" and self.scaled and not self.units:
                self.side.append("*")
                self.last = "op"
            elif last in ("num", ")") and self.units < MAX_UNIT_WORDS:
                self.units += 1  # "5 packs of 12": not a product this reader trusts
            elif self.side or self.sides:
                self.flush()
            else:
                self.taint = False
        elif kind == "op":
            if last in ("num", ")"):
                self.side.append(text)
                self.last = "op"
            elif text == "-" and attached and last in (None, "op", "("):
                self._start()
                self.side.append("-")  # a sign: "= -5", "3 * -2"
                self.last = "op"
            else:
                self.dirty()  # "M + 4": an operand this reader did not see
        elif kind == "eq":
            if self.depth and not self.sides:
                # "(5 + 3 = 8)": a bracket around a claim, not inside it
                while self.depth and self.side and self.side[0] == "(":
                    self.side.pop(0)
                    self.depth -= 1
                    self.wrapped += 1
            if last in ("num", ")") and self.depth == 0:
                if text == "is" and not _has_op(self.side):
                    self.flush()
                    return
                self._close_side()
                self.kinds.append(text)
                self.last, self.units = None, 0
            else:
                self.flush()
        elif kind == "(":
            if last in ("num", ")"):
                self.dirty()  # "2(50 + 100)": a product this reader does not read
            self._start()
            self.side.append("(")
            self.depth += 1
            self.last = "("
        elif kind == ")":
            if self.depth and last in ("num", ")"):
                self.side.append(")")
                self.depth -= 1
                self.last = ")"
            elif self.wrapped and last in ("num", ")"):
                self.flush()  # the end of "(5 + 3 = 8)"
            else:
                self.dirty()
        elif kind == "ann":
            if last is None and self.sides:
                self._reset()  # "48/2 = <<48/2=24>>": the prose of an annotation, checked there
            else:
                self.flush()
            self.taint = False
        elif kind == "var" or last == "op":
            self.dirty()  # "3x", or an expression cut short: "0.8 + . 84"
        else:
            self.flush()
            self.taint = False


def _has_op(side: list[str]) -> bool:
    return any(t in ("+", "-", "*", "/") or (len(t) > 1 and t[0] == "(") for t in side)


def prose_claims(text: str) -> list[tuple[list[str], bool]]:
    """The arithmetic claims a line writes, each as the calculator expressions of its sides.

    ``"She sold 48/2 = 24 jars, so 20% of $1,200 is $240"`` ->
    ``[(["(48/2)", "24"], False), (["20%*1200", "240"], True)]``; the flag: a per cent sign or
    cents in the claim, so that a factor of 100 is the same claim. Numbers may carry units (``40 cupcakes - 18 =
    22``); ``x``, ``×``, ``times``, ``multiplied by`` are products, ``half of``/``3/4 of``/``20%
    of`` too; ``is`` joins an expression to a plain number; ``1 1/2`` is one number. Calculator
    annotations (``<<...>>``, as ``\\x00``) end a claim, and a claim that runs into one
    (``48/2 = <<...``) is the annotation's own prose, left to the annotation's check.
    """
    reader = _Claims()
    for kind, tok, attached in _prose_tokens(text):
        reader.feed(kind, tok, attached)
    reader.flush()
    return reader.claims


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


def _agrees(exact: Fraction, shown: Fraction, shown_text: str, hundred: bool) -> bool:
    """Whether the prose value ``shown_text`` (= ``shown``) is the exact value ``exact``.

    A plain number may be rounded or truncated to the decimals it shows (``1/7 = 0.143``,
    ``1/7 = 0.142``, not ``0.15``), or a fraction above 1 given as a whole number either side
    (``100/3 = 33``, ``100/30 = 4`` buses); an exact integer never (``48/2 = 25``); with ``hundred`` (a per cent
    sign or cents in the claim), a factor of 100 either way is the same claim (``3/5 * 100 =
    60%``, ``$1 / 2 = 50 cents``)."""
    candidates = (exact, exact * 100, exact / 100) if hundred else (exact,)
    plain = _PLAIN_RE.fullmatch(shown_text) is not None
    decimals = len(shown_text.split(".")[1]) if plain and "." in shown_text else 0
    for c in candidates:
        if c == shown:
            return True
        if not plain or c.denominator == 1 and not decimals:
            continue
        off = abs(c - shown) * 10**decimals
        if decimals and (off * 2 <= 1 or (off < 1 and abs(shown) < abs(c))):
            return True  # rounded, or truncated, to the decimals shown
        if not decimals and off < 1 and abs(c) >= 1:
            return True  # a whole number either side: 100/3 = 33, 100/30 = 4 buses
    return False


def _readings(side: str) -> list[str]:
    """The side as written, and with ``a / b/c`` read as ``a / (b/c)`` (``14 / 1/4 = 56``)."""
    other = _DIVIDED_FRACTION_RE.sub(r"/(\1/\2)", side)
    return [side] if other == side else [side, other]


def check_claim(sides: list[str], hundred: bool = False) -> str | None:
    """Why the prose claim ``sides[0] = sides[1] = ...`` is wrong; '' if right; None if a side
    cannot be evaluated (the claim then counts as not checked).

    A running total (``4 + 5 = 9 + 1 = 10``) is read as people mean it: ``4 + 5 = 9`` and
    ``9 + 1 = 10``."""
    try:
        values = [[evaluate(r) for r in _readings(side)] for side in sides]
    except CalcError:
        return None
    for k in range(len(sides) - 1):
        nxt = sides[k + 1]
        if any(_agrees(a, b, nxt, hundred) for a in values[k] for b in values[k + 1]):
            continue
        lead = _LEAD_RE.match(nxt)
        if lead and lead.end() < len(nxt):
            try:
                first = evaluate(lead.group())
            except CalcError:
                first = None
            if first is not None and any(
                _agrees(a, first, lead.group(), hundred) for a in values[k]
            ):
                continue
        return f"wrong arithmetic: {sides[k]} is {_describe(values[k][0])}, not {nxt}"
    return ""


def check_line(line: str) -> StepMark:
    """One line of reasoning as a step: bad if any calculator annotation is, or any arithmetic
    the prose writes (:func:`prose_claims`); checked if it holds at least one of either, else
    ``unchecked``."""
    found = list(_ANNOTATION_RE.finditer(line))
    if "<<" in line and line.count("<<") != len(found):
        return StepMark(line, False, "unclosed calculation: '<<' without '>>'")
    for m in found:
        why = _check_annotation(m.group(1), line[m.end() : m.end() + 40])
        if why:
            return StepMark(line, False, why)
    checked = bool(found)
    prose = _ANNOTATION_SPAN_RE.sub("\x00", line.replace("\x00", " "))
    for sides, hundred in prose_claims(prose):
        why = check_claim(sides, hundred)
        if why:
            return StepMark(line, False, why)
        checked = checked or why == ""
    return StepMark(line, True, "" if checked else "unchecked")


def extract_answer(text: str) -> tuple[str | None, Fraction | None, int, int]:
    """``(answer text, value, end of the reasoning, start of any text after the answer line)``.

    The answer is the number after the first ``####``; else the number in the last ``\\boxed{}``
    (``\\frac{a}{b}`` allowed); else the last number in the text. Value None: no number, one too
    long to be an answer, or more than one where one is due (another number on the ``####`` line,
    a second ``####``, two numbers in the box).
    """
    m = _ANSWER_RE.search(text)
    if m is not None:
        line_end = text.find("\n", m.end())
        end = len(text) if line_end < 0 else line_end
        # '#### 1e20' is not the answer 1, nor are '#### 72-73', '#### 72 or 1', '#### 72 ± 1' or
        # a second '####' line the answer 72: no value, so wrong (a hedge is not guessed at).
        if (
            _runs_on(text[m.end() :])
            or any(c.isdigit() for c in text[m.end() : end])
            or "####" in text[end:]
        ):
            return text[m.start() + 4 : end].strip()[:MAX_NUMBER_DIGITS], None, m.start(), end
        return m.group(0)[4:].strip(), _number_of(m), m.start(), end
    boxed = last_boxed(text)
    if boxed is not None:
        if (f := _FRAC_RE.search(boxed)) is not None and int(f.group(2)) != 0:
            if any(c.isdigit() for c in boxed[: f.start()] + boxed[f.end() :]):
                return boxed.strip()[:MAX_NUMBER_DIGITS], None, len(text), len(text)
            return f.group(0), Fraction(int(f.group(1)), int(f.group(2))), len(text), len(text)
        nums = list(_NUMBER_RE.finditer(boxed))
        if len(nums) > 1:  # '\boxed{1, 72}': more than one answer, none of them read
            return boxed.strip()[:MAX_NUMBER_DIGITS], None, len(text), len(text)
        if nums:
            return nums[-1].group(0).strip(), _number_of(nums[-1]), len(text), len(text)
    last = None
    for last in _NUMBER_RE.finditer(text):  # noqa: B007 - the last match is what we want
        pass
    if last is None:
        return None, None, len(text), len(text)
    return last.group(0).strip(), _number_of(last), len(text), len(text)


def _runs_on(rest: str) -> bool:
    """Whether the text right after a number continues it (``e20``, ``x``, ``.5``): then the
    number read is not the number written.

    >>> _runs_on(" dollars"), _runs_on("."), _runs_on("e20"), _runs_on(".5")
    (False, False, True, True)
    """
    return rest[:1].isalnum() or (rest[:1] in ".," and rest[1:2].isdigit())


def _gold_value(problem: Problem) -> Fraction:
    return Fraction(problem.answer.replace(",", "").replace("$", "").strip())


def verify_gsm8k(problem: Problem, completion: str, seconds: float = VERIFY_SECONDS) -> Verdict:
    """Judge a ``gsm8k`` completion: final answer against the gold, every written claim by the
    calculator (inside :func:`bounded_verify`: text only, size cap, deadline, never raises)."""
    return bounded_verify(_judge, problem, completion, max_chars=MAX_CHARS, seconds=seconds)


def _judge(problem: Problem, completion: str, deadline: Deadline) -> Verdict:
    shown, value, body_end, rest_start = extract_answer(completion)
    steps: list[StepMark] = []
    for line in completion[:body_end].splitlines():
        if deadline.expired():
            raise TimeoutError
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
        why="" if ok else "wrong answer" if value is not None else "not one plain number",
    )


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
            if not math.isfinite(gold):
                raise ValueError("'answer' must be a finite number")
            # Written out in full: 1e20 is 100000000000000000000, never 1 followed by 'e20'.
            gold = f"#### {format(Decimal(str(gold)), 'f')}"
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
        if _runs_on(gold[m.end() :]):
            raise ValueError(f"'answer' number is not a plain number: {gold[m.start() :][:30]!r}")
        value = _number_of(m)
        if value is None:
            raise ValueError(f"'answer' number longer than {MAX_NUMBER_DIGITS} digits")
        steps = len(_ANNOTATION_RE.findall(gold))
        question = question.strip()
        # Any text has an id: a lone surrogate (a JSON "\ud800") hashes as its code point.
        digest = hashlib.blake2b(question.encode("utf-8", "surrogatepass"), digest_size=6)
        return Problem(
            id="gsm8k-" + digest.hexdigest(),
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
            marks = verify_gsm8k(p, text).steps
            caught = any(m.why.startswith("wrong calculation") for m in marks)
            mutated["calculation " + ("caught" if caught else "missed")] += 1
    return {"chains": chains, "steps": steps, "mutated": mutated}


def _slip(shown: str, rng: random.Random) -> str:
    """``shown`` with one digit changed to another (``24`` -> ``26``, never a leading zero)."""
    places = [i for i, c in enumerate(shown) if c.isdigit()]
    while True:
        i = rng.choice(places)
        lead = i == next(k for k, c in enumerate(shown) if c.isdigit()) and len(places) > 1
        digit = rng.choice([d for d in "0123456789" if d != shown[i] and not (lead and d == "0")])
        out = shown[:i] + digit + shown[i + 1 :]
        if _to_fraction(out.replace(",", "")) != _to_fraction(shown.replace(",", "")):
            return out


def corrupt_chain(gold: str, rng: random.Random, style: str) -> tuple[str, str] | None:
    """A gold chain with one written result wrong, and the line it is on; None if the chain has
    no annotation followed by its result.

    One annotation followed by its result (``48/2 = <<48/2=24>>24 jars``) is drawn; its result
    gets a one-digit slip. ``annotated``: in the annotation and after it alike
    (``<<48/2=26>>26``), as a model that writes the format and slips would. ``prose``: every
    annotation is removed first (``48/2 = 26 jars``), the style of an instruct model.
    """
    spots = []
    for m in _ANNOTATION_RE.finditer(gold):
        after = _AFTER_RE.match(gold, m.end())
        if m.group(1).count("=") == 1 and after is not None and not after.group(1).startswith("-"):
            spots.append((m, after))
    if not spots:
        return None
    m, after = rng.choice(spots)
    shown = after.group(1)
    wrong = _slip(shown, rng)
    expr = m.group(1).split("=")[0]
    pieces = [
        gold[: m.start()],
        f"<<{expr}={wrong.replace(',', '')}>>",
        gold[m.end() : after.start(1)],
    ]
    text = "".join(pieces) + wrong + gold[after.end(1) :]
    if style == "prose":
        text = _ANNOTATION_RE.sub("", text)
    elif style != "annotated":
        raise ValueError(f"style must be 'annotated' or 'prose', not {style!r}")
    line_start = gold.rfind("\n", 0, m.start()) + 1
    line_end = gold.find("\n", m.end())
    line = gold[line_start : len(gold) if line_end < 0 else line_end]
    return text, _ANNOTATION_RE.sub("", line) if style == "prose" else line


def audit_corrupted(records: Iterable[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """The verifier's false-accept rate on gold chains with one written result wrong.

    Per style (``annotated``, ``prose``; see :func:`corrupt_chain`): how many corrupted chains
    are still ``valid`` (right final answer, every step ok) out of how many, and how the line
    with the slip was judged in the uncorrupted chain of that style (``checked`` or
    ``unchecked``), since a slip on a line that writes no arithmetic cannot be seen. Also the
    uncorrupted chains of each style that are valid (gold in prose: annotations removed).
    Deterministic: record ``i`` draws from ``random.Random(f"{seed}-{i}")``.
    """
    out: dict[str, Any] = {}
    for style in ("annotated", "prose"):
        gold_valid = chains = accepted = 0
        by_line = {"checked": [0, 0], "unchecked": [0, 0]}  # [corrupted, still valid]
        examples: list[str] = []
        for i, rec in enumerate(records):
            p = GSM8KTask.problem_from_record(rec, i)
            gold = p.meta["gold"]
            clean = gold if style == "annotated" else _ANNOTATION_RE.sub("", gold)
            gold_valid += verify_gsm8k(p, clean).valid
            got = corrupt_chain(gold, random.Random(f"{seed}-{i}"), style)
            if got is None:
                continue
            text, line = got
            before = check_line(line.strip())
            kind = "checked" if before.ok and before.why != "unchecked" else "unchecked"
            valid = verify_gsm8k(p, text).valid
            chains += 1
            accepted += valid
            by_line[kind][0] += 1
            by_line[kind][1] += valid
            if valid and kind == "checked" and len(examples) < 5:
                examples.append(f"record {i}: {line.strip()[:160]}")
        out[style] = {
            "gold_chains": i + 1 if chains else 0,
            "gold_valid": gold_valid,
            "corrupted": chains,
            "still_valid": accepted,
            "false_accept_rate": accepted / chains if chains else None,
            "slip_on_checked_line": {
                "corrupted": by_line["checked"][0],
                "still_valid": by_line["checked"][1],
            },
            "slip_on_unchecked_line": {
                "corrupted": by_line["unchecked"][0],
                "still_valid": by_line["unchecked"][1],
            },
            "checked_but_accepted_examples": examples,
        }
    return out
