"""Statistics on hand-computed samples."""

import math

import pytest

from bench.stats import mean_pm, summarize


def test_summarize_matches_hand_computed_values():
    s = summarize([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert s.n == 8
    assert s.mean == 5.0
    # sample stddev (ddof=1): sqrt(32 / 7)
    assert math.isclose(s.stddev, math.sqrt(32 / 7))
    assert s.min == 2.0 and s.max == 9.0
    assert s.p50 == 4.5
    assert math.isclose(s.p90, 7.6)  # linear interpolation between 7 and 9 at rank 6.3


def test_single_sample_has_zero_stddev_and_empty_is_nan():
    assert summarize([3.0]).stddev == 0.0
    assert math.isnan(summarize([]).mean)


def test_mean_pm_formats_mean_and_stddev():
    assert mean_pm([1.0, 3.0]) == "2.00 ± 1.41"


def test_cv_pct():
    from bench.stats import cv_pct

    assert cv_pct([100.0, 110.0, 120.0]) == pytest.approx(10 / 110 * 100)
    assert math.isnan(cv_pct([]))


def test_welch_on_known_distributions():
    import numpy as np

    from bench.stats import welch

    rng = np.random.default_rng(0)
    a, b = rng.normal(100, 5, 30), rng.normal(100, 5, 30)
    same = welch(a, b)
    assert not same.significant and same.p_value > 0.05
    shifted = welch(a, rng.normal(110, 5, 30))
    assert shifted.significant and shifted.p_value < 1e-6 and shifted.diff_pct > 5
    # textbook check against scipy's own Welch numbers for these two samples
    x, y = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6], [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8]
    r = welch(x, y)
    from scipy import stats as sps

    ref = sps.ttest_ind(x, y, equal_var=False)
    assert r.t == pytest.approx(ref.statistic) and r.p_value == pytest.approx(ref.pvalue)
    assert not welch([5.0], [6.0, 7.0]).significant  # one sample: nothing to test against
    assert not welch([5.0, 5.0], [5.0, 5.0]).significant
    assert welch([5.0, 5.0], [6.0, 6.0]).significant
