"""Statistics shared by the bench and the sweep."""

from __future__ import annotations

import math

import pytest

from selfplay.stats import format_ci, mean_ci, t_critical


def test_mean_ci_known_values():
    m, h = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0
    assert h == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-6)
    m, h = mean_ci([0.5, 0.5, 0.5, 0.5])
    assert (m, h) == (0.5, 0.0)
    m, h = mean_ci([0.7])
    assert m == 0.7 and math.isnan(h)
    assert all(math.isnan(x) for x in mean_ci([]))
    assert mean_ci([1.0, None, 3.0])[0] == 2.0


def test_t_critical_table():
    assert t_critical(1) == pytest.approx(12.706)
    assert t_critical(4) == pytest.approx(2.776)
    assert 2.0 < t_critical(25) < 2.1
    assert t_critical(1000) == 1.96


def test_format_ci():
    assert format_ci(0.5, 0.01) == "0.500 ± 0.010"
    assert format_ci(0.5, math.nan) == "0.500"
    assert format_ci(math.nan, 0.1) == "-" and format_ci(None, 0.1) == "-"
