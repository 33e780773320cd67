"""The one way plots are made: matplotlib on its file backend (no display, no server), and what
every figure shares: one look per line, intervals cut at the range a value can take."""

from __future__ import annotations

import math

COLOURS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")
"""matplotlib's default cycle without its grey, which marks reference lines (the seed model)."""
MARKERS = "osD^vP*Xhd"
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("", "//", "..", "xx")
"""Bars past the colours are told apart by a pattern."""


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, imported only when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def line_style(i: int) -> dict:
    """The ``i``-th line's colour, marker and line style as ``plot`` keywords. The markers are
    hollow and shrink with ``i``, so where two lines run together the later one's points sit
    inside the earlier one's and neither hides the other.

    >>> line_style(1)["marker"], line_style(1)["ls"]
    ('s', '--')
    """
    return {
        "color": COLOURS[i % len(COLOURS)],
        "marker": MARKERS[i % len(MARKERS)],
        "ls": LINESTYLES[i % len(LINESTYLES)],
        "mfc": "none",
        "mew": 1.4,
        "ms": max(4.0, 9.0 - 0.5 * i),
        "zorder": 3 + 0.01 * i,
    }


def clipped_interval(
    mean: float, half: float, lo: float = 0.0, hi: float = 1.0
) -> tuple[float, float]:
    """How far an error bar ``mean ± half`` reaches below and above ``mean`` once cut at
    ``[lo, hi]`` (the range the value can take: an accuracy's is [0, 1]); (0, 0) without an
    interval.

    >>> clipped_interval(0.9, 0.3)
    (0.3, 0.09999999999999998)
    """
    if math.isnan(mean) or math.isnan(half):
        return 0.0, 0.0
    return max(0.0, min(half, mean - lo)), max(0.0, min(half, hi - mean))
