"""Statistics on hand-computed samples."""

import math

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
