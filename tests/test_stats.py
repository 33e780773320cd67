"""Statistics shared by the bench and the sweep."""

from __future__ import annotations

import math

import pytest

from selfplay.stats import fit_line, format_ci, mean_ci, t_critical


def test_mean_ci_known_values():
    m, h = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0
    assert h == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3), rel=1e-8)
    m, h = mean_ci([0.5, 0.5, 0.5, 0.5])
    assert (m, h) == (0.5, 0.0)
    m, h = mean_ci([0.7])
    assert m == 0.7 and math.isnan(h)
    assert all(math.isnan(x) for x in mean_ci([]))
    assert mean_ci([1.0, None, 3.0])[0] == 2.0


def test_t_critical_is_the_exact_quantile_at_every_df():
    # Published 0.975 quantiles of Student's t (Abramowitz & Stegun; R's qt(0.975, df)).
    for df, want in [
        (1, 12.706204736174703),
        (2, 4.302652729911275),
        (4, 2.776445105197793),
        (31, 2.039513446396408),
        (40, 2.021075390306273),
        (60, 2.000297822014262),
        (1000, 1.962339145266896),
        (100000, 1.959987703),
    ]:
        assert t_critical(df) == pytest.approx(want, rel=1e-7), df
    crit = [t_critical(df) for df in range(1, 200)]
    assert all(a > b for a, b in zip(crit, crit[1:], strict=False))  # no step at 30 df
    assert math.isnan(t_critical(0))


def test_format_ci():
    assert format_ci(0.5, 0.01) == "0.500 ± 0.010"
    assert format_ci(0.5, math.nan) == "0.500"
    assert format_ci(math.nan, 0.1) == "-" and format_ci(None, 0.1) == "-"


def test_t_distribution_matches_the_table():
    from selfplay.stats import t_quantile, t_sf

    for df, crit in [(1, 12.706), (4, 2.776), (10, 2.228), (30, 2.042)]:
        assert t_quantile(0.975, df) == pytest.approx(crit, abs=2e-3)
        assert 2 * t_sf(crit, df) == pytest.approx(0.05, abs=1e-3)


def test_paired_comparison_can_say_better_worse_equivalent_or_dont_know():
    from selfplay.stats import paired, verdict_word

    def word(diffs, margin=0.02):
        t = paired(diffs, margin)
        return verdict_word(t.mean, t.p, t.p_equivalent, 0.05)

    assert word([0.05, 0.06, 0.04, 0.05, 0.07]) == "better"
    assert word([-0.05, -0.06, -0.04, -0.05, -0.07]) == "worse"
    assert word([0.001, -0.002, 0.0, 0.002, -0.001]) == "equivalent"
    assert word([0.05, -0.06, 0.01]) == "inconclusive"  # no power: not read as a tie
    one = paired([0.1], 0.02)
    assert one.n == 1 and math.isnan(one.p) and math.isnan(one.p_equivalent)


def test_holm_controls_the_family_of_comparisons():
    from selfplay.stats import holm

    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.2, math.nan]) == [0.2, math.nan] or math.isnan(holm([0.2, math.nan])[1])
    assert holm([]) == []


def test_isotonic_fit_and_effective_data_interval():
    from selfplay.stats import effective_data, isotonic

    assert isotonic([0.5, 0.7, 0.6, 0.8]) == [0.5, 0.65, 0.65, 0.8]
    assert isotonic([0.3, 0.2, 0.1]) == [0.2, 0.2, 0.2]
    curve = {
        1: {0: 0.50, 1: 0.52, 2: 0.51},
        2: {0: 0.60, 1: 0.62, 2: 0.61},
        4: {0: 0.70, 1: 0.72, 2: 0.71},
    }
    eff = effective_data({0: 0.60, 1: 0.62, 2: 0.61}, curve, resamples=300)
    assert eff["estimate"] == pytest.approx(2.0, rel=0.05) and eff["monotone"]
    assert eff["low"] <= eff["estimate"] <= eff["high"]
    below = effective_data({0: 0.1, 1: 0.1, 2: 0.1}, curve, resamples=100)
    assert below["estimate"] is None and below["outside"] == 1.0  # outside the measured range
    bumpy = {1: {0: 0.6, 1: 0.6}, 2: {0: 0.5, 1: 0.5}, 4: {0: 0.7, 1: 0.7}}
    assert not effective_data({0: 0.65, 1: 0.65}, bumpy, resamples=50)["monotone"]


def test_binomial_se():
    from selfplay.stats import binomial_se

    assert binomial_se(0.5, 2500) == pytest.approx(0.01)
    assert math.isnan(binomial_se(None, 10)) and math.isnan(binomial_se(0.5, 0))


def test_identical_differences_make_no_verdict():
    """Two seeds that differ by the same one problem are not significant evidence of anything:
    the t statistic is undefined (zero spread), so the comparison is inconclusive, and says so."""
    from selfplay.stats import paired, verdict_word

    t = paired([0.005, 0.005], margin=0.02)
    assert t.mean == 0.005 and math.isnan(t.p) and math.isnan(t.p_equivalent)
    assert t.undefined and t.p_sign_flip == 0.5  # 2 of the 4 sign assignments reach |mean|
    assert verdict_word(t.mean, t.p, t.p_equivalent, 0.05) == "inconclusive"


def test_all_zero_differences_are_no_evidence_of_a_difference():
    from selfplay.stats import paired, verdict_word

    t = paired([0.0, 0.0, 0.0, 0.0, 0.0], margin=0.02)
    assert (t.mean, t.half_width, t.p, t.p_sign_flip) == (0.0, 0.0, 1.0, 1.0)
    assert not t.undefined and math.isnan(t.p_equivalent)  # no spread: no equivalence claim
    assert verdict_word(t.mean, t.p, t.p_equivalent, 0.05) == "inconclusive"


def test_holm_keeps_an_untestable_comparison_in_the_family():
    """A comparison without a p (t undefined, or too few seeds) counts as p = 1: the other
    comparisons are corrected for the whole family, which never shrinks silently."""
    from selfplay.stats import holm, paired

    out = holm([0.02, math.nan, 0.01])
    assert out[0] == pytest.approx(0.04) and out[2] == pytest.approx(0.03) and math.isnan(out[1])
    tests = [paired([0.05, 0.06, 0.04, 0.05, 0.07], 0.02), paired([0.01] * 5, 0.02)]
    adjusted = holm([t.p for t in tests])
    assert adjusted[0] == pytest.approx(2 * tests[0].p) and math.isnan(adjusted[1])


def test_sign_flip_test_enumerates_every_sign_assignment():
    import itertools
    import random

    from selfplay.stats import sign_flip_floor, sign_flip_p

    def brute(d):
        obs = abs(sum(d))
        flips = list(itertools.product([1, -1], repeat=len(d)))
        return sum(abs(sum(s * x for s, x in zip(f, d, strict=True))) >= obs - 1e-12
                   for f in flips) / len(flips)  # fmt: skip

    rng = random.Random(1)
    for n in (2, 3, 5, 8):
        for _ in range(20):
            d = [rng.choice([-3, -1, 0, 1, 2, 4]) / 1000 for _ in range(n)]
            assert sign_flip_p(d) == pytest.approx(brute(d)), d
    assert sign_flip_p([0.1, 0.2, 0.3, 0.4, 0.5]) == sign_flip_floor(5) == 2 / 32
    assert sign_flip_p([-0.1, -0.2, -0.3, -0.4, -0.5]) == 0.0625  # two-sided
    assert sign_flip_p([0.0, 0.0]) == 1.0
    assert math.isnan(sign_flip_p([0.3])) and math.isnan(sign_flip_p([]))


def test_sign_flip_test_samples_above_sixteen_seeds():
    from selfplay.stats import EXACT_SIGN_FLIP, sign_flip_p

    d = [0.01 * (i % 7 - 2) for i in range(EXACT_SIGN_FLIP + 4)]
    p = sign_flip_p(d)
    assert p == sign_flip_p(d)  # a fixed seed: the same p every time
    assert abs(p - sign_flip_p(d, resamples=200000, seed=1)) < 0.01
    assert sign_flip_p([0.01] * 30) == pytest.approx(1 / 20001)  # the observed one counted in


@pytest.mark.parametrize(
    "xs, ys, slope, r",
    [
        ([0.5, 0.7, 0.9], [-0.1, -0.06, -0.02], 0.2, 1.0),  # the difference follows the seed
        ([0.5, 0.7, 0.9], [0.3, 0.2, 0.1], -0.5, -1.0),
        ([1, 2, 3, 4], [1, 3, 2, 4], 0.8, 0.8),
        ([0.6, 0.6, 0.6], [0.1, 0.2, 0.3], math.nan, math.nan),  # no spread in x: no line
        ([0.5, 0.6, 0.7], [0.1, 0.1, 0.1], 0.0, math.nan),  # flat y: slope 0, r undefined
    ],
)
def test_fit_line_known_values(xs, ys, slope, r):
    line = fit_line(xs, ys)
    assert line.n == len(xs)
    for got, want in [(line.slope, slope), (line.r, r)]:
        assert math.isnan(got) if math.isnan(want) else got == pytest.approx(want)
    if not math.isnan(slope):  # the line passes through the means
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        assert line.intercept + line.slope * mx == pytest.approx(my)


def test_fit_line_needs_pairs():
    with pytest.raises(ValueError, match="3 xs and 2 ys"):
        fit_line([1, 2, 3], [1, 2])
    assert math.isnan(fit_line([], []).slope)


def test_the_stats_doctests():
    import doctest

    import selfplay.stats

    assert doctest.testmod(selfplay.stats, optionflags=doctest.ELLIPSIS).failed == 0
