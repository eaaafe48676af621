"""Statistics over raw samples: mean, sample stddev, percentiles. Imports only numpy.

Runners keep their raw samples and derive everything here, so the table, the CSV and the chart agree.
Stddev is the sample standard deviation (ddof=1), as llama-bench reports it; one sample gives 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Summary of n samples, in the samples' own unit."""

    n: int
    mean: float
    stddev: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float


def summarize(samples: Sequence[float]) -> Summary:
    """Mean, sample stddev (ddof=1) and percentiles (linear interpolation) of the samples."""
    a = np.asarray(list(samples), dtype=float)
    if a.size == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan, nan, nan, nan)
    p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
    return Summary(
        n=int(a.size),
        mean=float(a.mean()),
        stddev=float(a.std(ddof=1)) if a.size > 1 else 0.0,
        min=float(a.min()),
        max=float(a.max()),
        p50=float(p50),
        p90=float(p90),
        p95=float(p95),
        p99=float(p99),
    )


def mean_pm(samples: Sequence[float], digits: int = 2) -> str:
    """'123.45 ± 1.23' for display."""
    s = summarize(samples)
    return f"{s.mean:.{digits}f} ± {s.stddev:.{digits}f}"
