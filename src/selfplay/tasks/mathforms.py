r"""How math-verify reads an answer, and what two such readings settle without it.

math-verify's ``verify(gold, pred)`` is true when any pair of their parses compares equal; a parse
is a sympy object or the text it came from. :func:`describe_parse` (run inside the math-verify
worker, on ``parse("\\boxed{...}")``) reduces one answer's parse to a small JSON *form*: its texts
and, per sympy object, what the comparison looks at (the class, the name of a symbol, the value of
a constant or of an expression at a few fixed points, the members of a set, tuple or interval).
:func:`judge_forms` (in the parent, no sympy) then says ``"equal"`` or ``"different"`` only where
math-verify's ``sympy_expr_eq`` must say so, and None where it could go either way. A form is
computed once per distinct answer and serves every gold it is compared with, so a round's many
answers need few worker calls.

What is settled, and why it is safe (each step mirrors math-verify 0.9's grader):

* equal: the same sympy object (``srepr``), the same text, two symbols of the same name
  (``\text{(C)}``, ``C``), a symbol and an expression that print the same (``\text{10}``, ``10``);
* different: expressions that differ in value at one point (two constants: ``2\sqrt{4}`` and
  ``2\sqrt3``; a constant and a non-constant: ``7`` and ``x^2+1``; two polynomials), by more than
  math-verify's float rounding where a float is involved; sets, tuples and intervals of constants
  that differ in size, openness, an end point or a member; a single answer against an interval or
  against a set or tuple of two or more distinct constants; symbols of different names.

Anything else (relations as gold, per cents, matrices, functions, symbols with assumptions the
grader's simplification could use) is left to math-verify. ``tests/test_task_math.py`` holds every
decision against math-verify itself.
"""

from __future__ import annotations

import hashlib
import re
from fractions import Fraction

POINTS = 3
"""Points at which an expression with free symbols is evaluated."""
DIGITS = 30
"""Significant digits of a value in a form."""
EXACT_MARGIN = Fraction(1, 10**9)
"""Two exact values differ for sure when this far apart (relative, at least absolute):
math-verify's ``evalf(chop=True)`` works to 15 digits."""
FLOAT_MARGIN = Fraction(1, 10**5)
"""The same where a float takes part: math-verify compares floats rounded to 6 decimals."""
MAX_EXPONENT = 400
"""Values beyond 10^400 are not compared here (an exact Fraction of one would be huge)."""
MAX_POWER = 10_000
"""Expressions with a larger constant exponent are not evaluated."""
MAX_DEPTH = 3
"""Sets of tuples of ... deeper than this are left to math-verify."""

_SET_KINDS = ("interval", "set", "tuple")


# ------------------------------------------------------------------------------------------------
# Worker side: a parse -> its form (imports sympy; runs in the math-verify worker)


def describe_parse(parsed: list) -> dict:
    """The form of one answer's ``math_verify.parse`` result: ``{"strs": [...], "exprs": [...]}``."""
    from sympy import Basic, MatrixBase

    strs = [s.strip() for s in parsed if isinstance(s, str)]
    exprs = [describe_expr(e) for e in parsed if isinstance(e, (Basic, MatrixBase))]
    return {"strs": strs, "exprs": exprs}


def _point(name: str, k: int):
    """The value a symbol of this name takes at point ``k``: a positive rational, the same in
    every form, so values of two answers at point ``k`` are values of their difference."""
    from sympy import Rational

    h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big")
    num = 3 + (h + 53 * k) % 280
    return Rational(num + (num % 97 == 0), 97)


def _plain_symbols(expr) -> list | None:
    """The free symbols of ``expr`` if they carry no assumptions beyond being real (which our
    points respect), else None: simplification may use ``integer=True`` and the like."""
    from sympy import Symbol

    out = []
    for s in expr.free_symbols:
        if not isinstance(s, Symbol) or s.assumptions0 not in (
            Symbol(s.name).assumptions0,
            Symbol(s.name, real=True).assumptions0,
        ):
            return None
        out.append(s)
    return out


def _safe_to_evaluate(expr) -> bool:
    """Whether no power in ``expr`` has a constant exponent beyond :data:`MAX_POWER`
    (``9^{9^{9^9}}`` would keep ``evalf`` busy in C code, where no timer stops it)."""
    from sympy import Pow, preorder_traversal

    for node in preorder_traversal(expr):
        if isinstance(node, Pow) and node.exp.is_number:
            size = node.exp.evalf(15)
            if not (size.is_Number and size.is_finite) or abs(size) > MAX_POWER:
                return False
    return True


def _number(v) -> str | None:
    """A real, finite sympy number as text, else None."""
    if v.is_Number and v.is_real and v.is_finite:
        return str(v)
    return None


def describe_expr(e, depth: int = 0) -> dict:
    """The form of one sympy object (see the module docstring)."""
    from sympy import (
        Basic,
        E,
        Eq,
        FiniteSet,
        Float,
        Interval,
        MatrixBase,
        Mul,
        S,
        Set,
        Symbol,
        Tuple,
        UnevaluatedExpr,
        nan,
        srepr,
        zoo,
    )
    from sympy.logic.boolalg import Boolean

    if depth > MAX_DEPTH or isinstance(e, MatrixBase) or not isinstance(e, Basic):
        return {"kind": "other"}
    if e in (nan, zoo):
        return {"kind": "other"}  # math-verify's sympy_str_eq raises on a nan or zoo gold
    key = hashlib.blake2b(srepr(e).encode(), digest_size=12).hexdigest()
    if isinstance(e, Eq):  # an answer "x = 4" is read as its right side against a non-equation
        return {"kind": "eq", "key": key, "rhs": describe_expr(e.rhs, depth + 1)}
    if isinstance(e, Symbol):  # (a sympy Symbol is also a Boolean)
        return {"kind": "symbol", "key": key, "name": e.name, "str": str(e)}
    if isinstance(e, Boolean) and not isinstance(e, Set):
        return {"kind": "other"}  # inequalities, And, True
    if isinstance(e, Interval):
        return {
            "kind": "interval",
            "key": key,
            "lo": describe_expr(e.start, depth + 1),
            "hi": describe_expr(e.end, depth + 1),
            "left_open": bool(e.left_open),
            "right_open": bool(e.right_open),
            "is_open": e.is_open is True,
        }
    if isinstance(e, (FiniteSet, Tuple)):
        kind = "set" if isinstance(e, FiniteSet) else "tuple"
        return {"kind": kind, "key": key, "items": [describe_expr(a, depth + 1) for a in e.args]}
    if isinstance(e, Set):
        return {"kind": "other"}  # unions, the empty set, ...
    if e.has(UnevaluatedExpr):
        return {"kind": "other"}  # per cents: math-verify calls 9% equal to 9
    symbols = _plain_symbols(e)
    if symbols is None:
        return {"kind": "other"}
    if isinstance(e, Mul) and all(a == E or isinstance(a, Symbol) for a in e.args):
        symmul = "".join(a.name if isinstance(a, Symbol) else "e" for a in e.args)
    else:
        symmul = None
    if e is S.Infinity or e is S.NegativeInfinity:
        at = ["oo" if e is S.Infinity else "-oo"] * POINTS
    elif e.is_Rational:
        at = [str(e)] * POINTS  # exact: "3/4", "-12"
    elif not _safe_to_evaluate(e):
        at = [None] * POINTS
    elif not symbols:
        value = _number(e.evalf(DIGITS))
        at = [value] * POINTS
    else:
        at = [
            _number(e.evalf(DIGITS, subs={s: _point(s.name, k) for s in symbols}))
            for k in range(POINTS)
        ]
    return {
        "kind": "value",
        "key": key,
        "str": str(e),
        "symmul": symmul,
        "is_e": bool(e == E),
        "const": not symbols,
        "float": bool(e.atoms(Float)),
        "at": at,
    }


# ------------------------------------------------------------------------------------------------
# Parent side: two forms -> "equal" | "different" | None (pure Python)


_NUMBER_RE = re.compile(
    r"(-?[1-9][0-9]{0,14}|0)|(-?)\\frac\{([0-9]{1,15})\}\{([1-9][0-9]{0,14})\}", re.ASCII
)


def number_form(text: str) -> dict | None:
    """The form the worker would give an answer that is a plain integer (``37``, ``-3``; no sign
    on 0, no leading zeros) or fraction (``\\frac{3}{4}``, ``-\\frac{6}{8}``), made here without
    it, else None (tested against the worker on a grid of both)."""
    m = _NUMBER_RE.fullmatch(text)
    if m is None or (m.group(3) is not None and m.group(3) != str(int(m.group(3)))):
        return None  # a numerator with leading zeros
    if m.group(1) is not None:
        value = Fraction(int(m.group(1)))
    else:
        value = Fraction(int(m.group(3)), int(m.group(4))) * (-1 if m.group(2) else 1)
    if value.denominator == 1:
        srepr, exact = f"Integer({value.numerator})", str(value.numerator)
    else:
        srepr, exact = f"Rational({value.numerator}, {value.denominator})", str(value)
    expr = {
        "kind": "value",
        "key": hashlib.blake2b(srepr.encode(), digest_size=12).hexdigest(),
        "str": exact,
        "symmul": None,
        "is_e": False,
        "const": True,
        "float": False,
        "at": [exact] * POINTS,
    }
    return {"strs": [text], "exprs": [expr]}


def judge_forms(gold: dict | None, pred: dict | None) -> str | None:
    """What math-verify's ``verify`` must answer for answers of these forms: ``"equal"``,
    ``"different"``, or None where the forms do not settle it (or one is unknown)."""
    if gold is None or pred is None:
        return None
    undecided = False
    for g in gold.get("strs", []):
        for p in pred.get("strs", []):
            if g and g == p:
                return "equal"
    for g in gold.get("exprs", []):
        for p in pred.get("exprs", []):
            result = compare_exprs(g, p)
            if result == "equal":
                return "equal"
            undecided |= result is None
    # A text never equals a sympy object in math-verify; nothing parsed: never equal.
    return None if undecided else "different"


def compare_exprs(g: dict, p: dict) -> str | None:
    """math-verify's ``sympy_expr_eq(gold, pred)`` where the forms settle it, else None."""
    if g["kind"] in ("other", "eq"):
        return None  # a gold relation is read in ways not mirrored here
    if p["kind"] == "eq":
        p = p["rhs"]  # the pred "x = 4" against a gold that is no equation: its right side
    if p["kind"] in ("other", "eq"):
        return None
    if g["key"] == p["key"]:
        return "equal"  # the same sympy object: sympy_str_eq
    if g["kind"] in _SET_KINDS or p["kind"] in _SET_KINDS:
        return _compare_sets(g, p)
    if g["kind"] == "symbol" or p["kind"] == "symbol":
        return _compare_symbols(g, p)
    return "different" if values_differ(g, p) else None


def _compare_symbols(g: dict, p: dict) -> str | None:
    """math-verify's ``sympy_compare_symbols``, exactly, on the forms (one side a symbol)."""

    def verdict(same: bool) -> str:
        return "equal" if same else "different"

    def name(form: dict) -> str:
        return form["name"].lower() if len(form["name"]) > 1 else form["name"]

    if g["kind"] == "symbol" and g["name"].lower() == "e" and p.get("is_e"):
        return "equal"
    if p["kind"] == "symbol" and p["name"].lower() == "e" and g.get("is_e"):
        return "equal"
    if g["kind"] == "symbol" and p.get("symmul") is not None:
        return verdict(g["name"].lower() == p["symmul"].lower())
    if p["kind"] == "symbol" and g.get("symmul") is not None:
        return verdict(p["name"].lower() == g["symmul"].lower())
    if g["kind"] == "symbol" and p["kind"] == "symbol":
        return verdict(name(g) == name(p))
    return verdict(g["str"] == p["str"])


def _value(text: str | None) -> Fraction | str | None:
    """A form's value: a Fraction, ``"oo"``, ``"-oo"``, or None (unknown, or too large to hold
    exactly: ``10^{10^{10}}``)."""
    if text in (None, "oo", "-oo"):
        return text
    _, _, exponent = text.lower().partition("e")
    try:
        if exponent and abs(int(exponent)) > MAX_EXPONENT:
            return None
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def values_differ(g: dict, p: dict) -> bool:
    """Whether two expression forms surely differ to math-verify: at some point both values are
    known and further apart than the margin (an infinity differs from anything else)."""
    if g["kind"] != "value" or p["kind"] != "value":
        return False
    margin = FLOAT_MARGIN if g["float"] or p["float"] else EXACT_MARGIN
    for a, b in zip(g["at"], p["at"], strict=True):
        x, y = _value(a), _value(b)
        if x is None or y is None:
            continue
        if isinstance(x, str) or isinstance(y, str):
            if x != y:
                return True
            continue
        if abs(x - y) > margin * max(1, abs(x), abs(y)):
            return True
    return False


def _constant(form: dict) -> Fraction | str | None:
    """The value of a constant form (a number, ``"oo"``, ``"-oo"``), else None."""
    if form["kind"] != "value" or not form["const"]:
        return None
    return _value(form["at"][0])


def _members(form: dict) -> list[dict]:
    """A set, a tuple, or any other answer as the one-element set math-verify makes of it."""
    return form["items"] if form["kind"] in ("set", "tuple") else [form]


def _distinct_constants(items: list[dict]) -> bool:
    """Whether these are constants, pairwise different for sure (so a set of them has that many
    members)."""
    if any(_constant(f) is None for f in items):
        return False
    return all(values_differ(a, b) for i, a in enumerate(items) for b in items[i + 1 :])


def _unmatched(xs: list[dict], ys: list[dict]) -> bool:
    """Whether some constant of ``xs`` differs for sure from every member of ``ys`` (all
    constants): then no pairing of the two makes every pair equal, nor are they the same set."""
    if any(_constant(y) is None for y in ys):
        return False
    return any(_constant(x) is not None and all(values_differ(x, y) for y in ys) for x in xs)


def _positions_differ(xs: list[dict], ys: list[dict]) -> bool:
    """Whether at some position both are constants that differ for sure."""
    return any(
        _constant(x) is not None and _constant(y) is not None and values_differ(x, y)
        for x, y in zip(xs, ys, strict=True)
    )


def _proper_interval(form: dict) -> bool:
    """An interval between constants, the lower surely below the upper: infinitely many members."""
    lo, hi = _constant(form["lo"]), _constant(form["hi"])
    if lo is None or hi is None or lo == "oo" or hi == "-oo":
        return False
    if isinstance(lo, str) or isinstance(hi, str):
        return True
    return hi - lo > EXACT_MARGIN * max(1, abs(lo), abs(hi))


def _compare_sets(g: dict, p: dict) -> str | None:
    """math-verify's ``sympy_compare_sets(gold, pred)`` where the forms settle it (one side is a
    set, a tuple or an interval; the other may be a single answer)."""
    if g["kind"] == "interval" and p["kind"] == "interval":
        if g["left_open"] != p["left_open"] or g["right_open"] != p["right_open"]:
            return "different"
        ends = [compare_exprs(g["lo"], p["lo"]), compare_exprs(g["hi"], p["hi"])]
        if "different" in ends:
            return "different"
        return "equal" if ends == ["equal", "equal"] else None
    if "interval" in (g["kind"], p["kind"]):
        interval, other = (g, p) if g["kind"] == "interval" else (p, g)
        if not _proper_interval(interval):
            return None
        members = _members(other)
        # math-verify reads an open interval as the pair of its ends against two members
        ends = [interval["lo"], interval["hi"]]
        if interval["is_open"] and len(members) == 2:
            tuples = other["kind"] == "tuple"  # then the ends are compared in order
            if not (_unmatched(ends, members) or tuples and _positions_differ(ends, members)):
                return None
        return "different"  # an interval is never a finite set, nor a tuple
    gm, pm = _members(g), _members(p)
    both_sets = g["kind"] != "tuple" and p["kind"] != "tuple"
    if len(gm) != len(pm):
        if not both_sets:
            return "different"  # tuples of different lengths, or a tuple and a set
        larger = gm if len(gm) > len(pm) else pm
        return "different" if _distinct_constants(larger) else None
    if _unmatched(gm, pm) or _unmatched(pm, gm):
        return "different"
    if g["kind"] == "tuple" and p["kind"] == "tuple" and _positions_differ(gm, pm):
        return "different"  # two tuples are compared in order
    return None
