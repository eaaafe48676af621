"""bench.results.labels.from_row: stored rows back as records — defaults filled, lists as tuples, extras
dropped, and a row without a required field refused (so a foreign row never passes for a record)."""

from __future__ import annotations

import pytest

from bench.results.labels import from_row
from bench.speed.ab import SampledTest, compare_runs


def test_a_partial_row_reads_as_the_samples_a_comparison_needs():
    row = {"run_id": "abc", "created_at": "2026-12-07", "test": "tg64", "samples_ts": [100.0, 101.0, 99.0]}
    sampled = SampledTest.from_row(row)
    assert sampled == SampledTest("tg64", (100.0, 101.0, 99.0))
    other = SampledTest.from_row({"test": "tg64", "samples_ts": [80.0, 81.0, 79.0], "avg_ts": 80.0})
    (ab,) = compare_runs([sampled], [other], "run1", "run2")
    assert ab.a_avg_ts == pytest.approx(100.0) and ab.b_avg_ts == pytest.approx(80.0) and ab.significant


def test_a_row_without_a_required_field_is_refused():
    with pytest.raises(ValueError, match="not a stored SampledTest: no samples_ts"):
        from_row(SampledTest, {"test": "tg64"})
