"""Statistics over raw samples: mean, sample stddev, percentiles, CV, A vs B. numpy (scipy for the A-vs-B test).

Runners keep their raw samples and derive everything here, so the table, the CSV and the chart agree.
Stddev is the sample standard deviation (ddof=1), as llama-bench reports it; one sample gives 0.
"""

from __future__ import annotations

import math
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


def cv_pct(samples: Sequence[float]) -> float:
    """Coefficient of variation in %: sample stddev / mean × 100; NaN for no samples or a zero mean."""
    s = summarize(samples)
    return s.stddev / s.mean * 100 if s.n and s.mean else float("nan")


@dataclass(frozen=True)
class Comparison:
    """A vs B on raw samples: Welch's t-test (unequal variances), two-sided."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    diff_pct: float
    """(mean_b − mean_a) / mean_a × 100."""
    t: float
    p_value: float
    alpha: float
    significant: bool
    """p_value < alpha; False when either side has fewer than 2 samples (no variance to test against)."""
    method: str


def welch(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> Comparison:
    """Welch's two-sided t-test of B against A (scipy); two identical constant sides are not significant."""
    from scipy import stats as sps

    xa, xb = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    mean_a = float(xa.mean()) if xa.size else float("nan")
    mean_b = float(xb.mean()) if xb.size else float("nan")
    diff = (mean_b - mean_a) / mean_a * 100 if mean_a else float("nan")
    t, p = float("nan"), float("nan")
    if xa.size >= 2 and xb.size >= 2:
        if xa.std(ddof=1) == 0 and xb.std(ddof=1) == 0:
            t, p = (0.0, 1.0) if mean_a == mean_b else (float("inf"), 0.0)
        else:
            res = sps.ttest_ind(xa, xb, equal_var=False)
            t, p = float(res.statistic), float(res.pvalue)
    return Comparison(
        n_a=int(xa.size),
        n_b=int(xb.size),
        mean_a=mean_a,
        mean_b=mean_b,
        diff_pct=diff,
        t=t,
        p_value=p,
        alpha=alpha,
        significant=bool(p == p and p < alpha),
        method=f"Welch's t-test, two-sided, on raw samples; significant when p < {alpha:g}",
    )


def paired_ratio(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> tuple[float, float, float, float]:
    """(geometric mean of a_i ÷ b_i, its (1 − alpha) interval, the two-sided p of a one-sample t-test of
    log(a_i ÷ b_i) against 0) for samples paired by position; a constant ratio has an empty interval."""
    from scipy import stats as sps

    logs = np.log(np.asarray(a, dtype=float) / np.asarray(b, dtype=float))
    mean = float(logs.mean())
    if logs.size < 2:
        return math.exp(mean), math.nan, math.nan, math.nan
    sd = float(logs.std(ddof=1))
    if sd == 0:
        return math.exp(mean), math.exp(mean), math.exp(mean), 1.0 if mean == 0 else 0.0
    half = float(sps.t.ppf(1 - alpha / 2, logs.size - 1)) * sd / math.sqrt(logs.size)
    p = float(sps.ttest_1samp(logs, 0.0).pvalue)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half), p
