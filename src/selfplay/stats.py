"""Statistics shared by the bench and the sweep: means with t intervals over seeds, and the way
they are printed."""

from __future__ import annotations

import math
import statistics

_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    30: 2.042,
}


def t_critical(df: int) -> float:
    """Two-sided 95% Student-t critical value (table; 1.96 beyond 30 degrees of freedom)."""
    if df < 1:
        return math.nan
    if df in _T95:
        return _T95[df]
    smaller = [k for k in _T95 if k < df]
    return _T95[max(smaller)] if df < 30 else 1.96


def clean(values) -> list[float]:
    """The values that are numbers (``None`` and nan dropped)."""
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (t distribution; nan for n < 2).

    >>> mean_ci([1.0, 2.0, 3.0])
    (2.0, 2.484...)
    """
    vals = clean(values)
    if not vals:
        return math.nan, math.nan
    m = statistics.fmean(vals)
    if len(vals) < 2:
        return m, math.nan
    return m, t_critical(len(vals) - 1) * statistics.stdev(vals) / math.sqrt(len(vals))


def format_ci(m: float | None, h: float, digits: int = 3) -> str:
    """``0.512 ± 0.031``; the mean alone when there is no interval; ``-`` when there is no mean."""
    if m is None or math.isnan(m):
        return "-"
    return f"{m:.{digits}f}" if math.isnan(h) else f"{m:.{digits}f} ± {h:.{digits}f}"
