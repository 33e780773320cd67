"""Reading final answers out of completions: the rules more than one task shares.

``gsm8k`` and ``math`` read the last ``\\boxed{}``; ``arith`` and ``countdown`` compare integers
written without leading zeros; every verdict shows an answer or a step cut to a readable length.
What only one task reads (gsm8k's ``#### N`` line and its numbers, math's LaTeX normal form, the
code task's fenced block) stays in that task's module.
"""

from __future__ import annotations

import re

_BOX_TOKEN_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|\\.|[{}]", re.S)


def last_boxed(text: str) -> str | None:
    r"""The contents of the last complete ``\boxed{...}`` (or ``\fbox{...}``) in ``text``.

    Braces are balanced; escaped braces (``\{``) do not count. "Last" is the box that closes last
    (of ``\boxed{\boxed{1}}``, the outer one); an unclosed box at the end (a truncated
    completion) is skipped. One linear pass, so a megabyte of unclosed boxes costs no more than
    reading it.

    >>> last_boxed(r"so $x = \boxed{\frac{1}{2}}$, or \boxed{\{1, 2\}}")
    '\\{1, 2\\}'
    >>> last_boxed(r"\boxed{3} then \boxed{4")
    '3'
    """
    stack: list[int | None] = []  # for each open brace: where its box's contents start, or None
    best: tuple[int, int] | None = None
    for m in _BOX_TOKEN_RE.finditer(text):
        tok = m.group()
        if tok[0] == "\\" and tok.endswith("{") and len(tok) > 2:
            stack.append(m.end())
        elif tok == "{":
            stack.append(None)
        elif tok == "}" and stack:
            start = stack.pop()
            if start is not None:
                best = (start, m.start())
    return None if best is None else text[best[0] : best[1]]


def strip_zeros(digits: str) -> str:
    """An integer's digits without leading zeros, so ``007`` and ``7`` compare equal.

    >>> strip_zeros("0042"), strip_zeros("000")
    ('42', '0')
    """
    return digits.lstrip("0") or "0"


def clip(text: str, limit: int) -> str:
    """``text`` as a verdict shows it: cut after ``limit`` characters, with ``...`` if cut.

    >>> clip("123456", 4), clip("1234", 4)
    ('1234...', '1234')
    """
    return text if len(text) <= limit else text[:limit] + "..."
