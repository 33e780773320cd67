"""Statistics shared by the bench and the sweep: means with t intervals over seeds, paired tests
with Holm's correction and an equivalence test, binomial errors, monotone curves and the
effective-data multiplier with a bootstrap interval."""

from __future__ import annotations

import functools
import math
import random
import statistics
from dataclasses import dataclass


@functools.cache
def t_critical(df: int) -> float:
    """Two-sided 95% Student-t critical value: the exact 0.975 quantile for every ``df``.

    >>> round(t_critical(4), 3), round(t_critical(1000), 3)
    (2.776, 1.962)
    """
    if df < 1:
        return math.nan
    return t_quantile(0.975, df)


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


# ------------------------------------------------------------------------------------------------
# Tests: paired t, Holm, two one-sided tests (equivalence)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-12:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom.

    >>> round(t_sf(2.776, 4), 4)
    0.025
    """
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`t_sf`)."""
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if 1.0 - t_sf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass
class Paired:
    """A paired comparison over seeds: differences ``a - b`` of one metric."""

    n: int
    mean: float
    half_width: float
    """95% interval half-width (t); nan for n < 2."""
    p: float
    """Two-sided p-value of "no difference" (paired t); nan for n < 2 and where the t statistic
    is undefined (every seed the same non-zero difference); 1 where every difference is 0."""
    p_equivalent: float
    """p-value of "the difference lies inside ±margin" (two one-sided t tests); nan for n < 2
    and where every seed gives the same difference (no spread to test against)."""
    p_sign_flip: float = math.nan
    """Two-sided p-value of "no difference" by the sign-flip (exact permutation) test; nan for
    n < 2."""

    @property
    def undefined(self) -> bool:
        """Whether the t test could not be computed although there are seeds to pair (every seed
        the same non-zero difference)."""
        return self.n >= 2 and math.isnan(self.p)


def paired(diffs: list[float], margin: float) -> Paired:
    """Paired t test, sign-flip test and equivalence test (TOST against ``±margin``) of per-seed
    differences."""
    d = clean(diffs)
    n = len(d)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan)
    m = statistics.fmean(d)
    if n < 2:
        return Paired(n, m, math.nan, math.nan, math.nan)
    se = statistics.stdev(d) / math.sqrt(n)
    df = n - 1
    flip = sign_flip_p(d)
    if se == 0:
        # Every seed gave the same difference (few seeds, a discrete accuracy): t = m / 0. All
        # zero is no evidence of a difference (p = 1, as the sign-flip test says too); the same
        # non-zero difference leaves the t test undefined (nan, counted in Holm's family as 1).
        # Neither says how close the arms are: no equivalence test.
        return Paired(n, m, 0.0, 1.0 if m == 0 else math.nan, math.nan, flip)
    p = 2 * t_sf(abs(m) / se, df)
    p_eq = max(t_sf((m + margin) / se, df), t_sf((margin - m) / se, df))
    return Paired(n, m, t_critical(df) * se, p, p_eq, flip)


EXACT_SIGN_FLIP = 16
"""Seeds up to which the sign-flip test enumerates every sign assignment (2^16); above, it
samples them (Monte Carlo, fixed seed)."""


def sign_flip_p(diffs: list[float], resamples: int = 20000, seed: int = 0) -> float:
    """Two-sided sign-flip (exact permutation) p-value of "no difference" for paired differences:
    the share of the 2^n assignments of signs to the differences whose mean is at least as far
    from 0 as the observed one. Exact for n <= ``EXACT_SIGN_FLIP``; above, ``resamples`` random
    assignments (seeded) with the observed one counted in. nan for n < 2.

    >>> sign_flip_p([0.1, 0.2, 0.3, 0.4, 0.5])  # every sign the same: the floor 2/32
    0.0625
    """
    d = clean(diffs)
    n = len(d)
    if n < 2:
        return math.nan
    observed = abs(math.fsum(d))
    tol = 1e-12 * max(1.0, sum(abs(x) for x in d))  # ties up to rounding count as ties
    if n <= EXACT_SIGN_FLIP:
        sums = [0.0]
        for x in d:  # every signed sum, built one difference at a time
            sums = [s + x for s in sums] + [s - x for s in sums]
        return sum(abs(s) >= observed - tol for s in sums) / len(sums)
    rng = random.Random(seed)
    hits = sum(
        abs(math.fsum(x if rng.random() < 0.5 else -x for x in d)) >= observed - tol
        for _ in range(resamples)
    )
    return (hits + 1) / (resamples + 1)


def sign_flip_floor(n: int) -> float:
    """The smallest two-sided sign-flip p-value ``n`` paired seeds can give: 2 / 2^n."""
    return 2.0 / 2**n if n >= 1 else math.nan


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of p-values for multiple comparisons. A nan (no test) stays
    nan but counts in the family as p = 1, so the family never shrinks.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    >>> holm([0.02, float("nan")])
    [0.04, nan]
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: 1.0 if math.isnan(pvalues[i]) else pvalues[i])
    out = list(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        if math.isnan(pvalues[i]):
            continue
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = round(running, 12)
    return out


def verdict_word(mean: float, p_adjusted: float, p_equivalent_adjusted: float, alpha: float) -> str:
    """``better`` / ``worse`` (difference significant after correction), ``equivalent`` (inside
    the margin, significant after correction) or ``inconclusive``."""
    if not math.isnan(p_adjusted) and p_adjusted < alpha:
        return "better" if mean > 0 else "worse"
    if not math.isnan(p_equivalent_adjusted) and p_equivalent_adjusted < alpha:
        return "equivalent"
    return "inconclusive"


def binomial_se(p: float | None, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` problems."""
    if p is None or n <= 0 or math.isnan(p):
        return math.nan
    return math.sqrt(p * (1 - p) / n)


@dataclass(frozen=True)
class Line:
    """The least-squares line of ``y`` on ``x`` and Pearson's correlation of the two."""

    slope: float
    intercept: float
    r: float
    """nan when either variable does not vary."""
    n: int


def fit_line(xs: list[float], ys: list[float]) -> Line:
    """Least squares of ``ys`` on ``xs`` (paired, same length); slope and r are nan with fewer
    than two distinct ``xs``, r also when every ``y`` is equal.

    >>> line = fit_line([0.5, 0.7, 0.9], [-0.1, -0.06, -0.02])
    >>> round(line.slope, 3), round(line.intercept, 3), round(line.r, 3)
    (0.2, -0.2, 1.0)
    """
    n = len(xs)
    if n != len(ys):
        raise ValueError(f"fit_line: {n} xs and {len(ys)} ys")
    if n == 0 or min(xs) == max(xs):  # compared exactly: a mean's rounding is no spread
        return Line(math.nan, math.nan, math.nan, n)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    # Clamped: rounding can carry a perfect correlation a hair past 1.
    r = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy))) if min(ys) != max(ys) else math.nan
    return Line(slope, my - slope * mx, r, n)


# ------------------------------------------------------------------------------------------------
# Monotone curves and the effective-data multiplier


def isotonic(ys: list[float]) -> list[float]:
    """The non-decreasing least-squares fit of ``ys`` (pool adjacent violators).

    >>> isotonic([0.5, 0.7, 0.6, 0.8])
    [0.5, 0.65, 0.65, 0.8]
    """
    blocks: list[list[float]] = []  # [sum, count]
    for y in ys:
        blocks.append([y, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    out = []
    for s, c in blocks:
        out += [s / c] * int(c)
    return [round(v, 12) for v in out]


def invert_curve(acc: float, xs: list[float], fitted: list[float]) -> float | None:
    """The ``x`` (log-linear between points) where a non-decreasing curve reaches ``acc``;
    ``None`` when ``acc`` lies outside the curve's range."""
    if math.isnan(acc) or acc < fitted[0] or acc > fitted[-1]:
        return None
    for i in range(len(xs) - 1):
        (x0, a0), (x1, a1) = (xs[i], fitted[i]), (xs[i + 1], fitted[i + 1])
        if a0 <= acc <= a1:
            if a1 == a0:
                return x0
            t = (acc - a0) / (a1 - a0)
            return math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))
    return xs[-1] if acc == fitted[-1] else None


def effective_data(
    arm: dict[int, float],
    curve: dict[float, dict[int, float]],
    resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """How much fresh raw data (multiples of U) reaches an arm's accuracy: the isotonic fit of
    the fresh-data curve (mean over seeds per multiplier), inverted at the arm's mean, with a
    95% bootstrap interval over seeds (seeds resampled with replacement, arm and curve together).

    ``arm``: seed -> accuracy; ``curve``: multiplier -> seed -> accuracy. Returns ``estimate``,
    ``low``, ``high`` (``None`` where outside the measured range), ``outside`` (the share of
    resamples outside it) and ``monotone`` (whether the raw curve of means already was)."""
    import random

    xs = sorted(curve)
    seeds = sorted(set(arm).intersection(*[set(curve[x]) for x in xs]))
    if not seeds or len(xs) < 2:
        return {"estimate": None, "low": None, "high": None, "outside": 1.0, "monotone": True}

    def estimate(sample: list[int]) -> float | None:
        means = [statistics.fmean(curve[x][s] for s in sample) for x in xs]
        return invert_curve(statistics.fmean(arm[s] for s in sample), xs, isotonic(means))

    raw_means = [statistics.fmean(curve[x][s] for s in seeds) for x in xs]
    rng = random.Random(seed)
    boots = [estimate([rng.choice(seeds) for _ in seeds]) for _ in range(resamples)]
    inside = sorted(b for b in boots if b is not None)
    low = high = None
    if len(inside) == len(boots):
        low, high = inside[int(0.025 * len(inside))], inside[int(0.975 * len(inside)) - 1]
    return {
        "estimate": estimate(seeds),
        "low": low,
        "high": high,
        "outside": 1 - len(inside) / len(boots),
        "monotone": all(a <= b for a, b in zip(raw_means, raw_means[1:], strict=False)),
    }
