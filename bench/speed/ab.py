"""A vs B on the raw samples of two speed runs: each test's difference and whether it is significant.

`bench --aa` runs the same configuration twice (A, then A again) and compares them: what differs between
two identical runs is the machine's noise floor, and a real A-vs-B difference must beat it. The order the
runs were made in is recorded with each row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.results.labels import from_row
from bench.speed.record import SpeedResult
from bench.stats import welch


@dataclass(frozen=True)
class SampledTest:
    """What a comparison reads of a speed row: its test and raw samples. Any stored speed row reads back as
    one, also a row imported from another machine or version that lacks fields a SpeedResult needs."""

    test: str
    """'pp512', 'tg128', ..."""
    samples_ts: tuple[float, ...]
    """Tokens per second of each repetition."""

    @classmethod
    def from_row(cls, row: dict) -> SampledTest:
        return from_row(cls, row)


@dataclass(frozen=True)
class ABRow:
    """One test in two runs; diff and p-value derived from the raw samples_ts."""

    test: str
    a_label: str
    b_label: str
    a_avg_ts: float
    b_avg_ts: float
    diff_pct: float
    """(b − a) / a × 100 (derived)."""
    p_value: float
    significant: bool
    order: str
    """The order the runs were made in, e.g. 'A then B'."""
    method: str


def compare_runs(
    a: Sequence[SpeedResult | SampledTest],
    b: Sequence[SpeedResult | SampledTest],
    a_label: str = "A",
    b_label: str = "B",
    order: str = "",
) -> list[ABRow]:
    """One ABRow per test present in both runs, in A's order (records or stored rows read as SampledTest)."""
    by_test = {r.test: r for r in b}
    rows = []
    for ra in a:
        rb = by_test.get(ra.test)
        if rb is None:
            continue
        c = welch(ra.samples_ts, rb.samples_ts)
        rows.append(
            ABRow(
                test=ra.test,
                a_label=a_label,
                b_label=b_label,
                a_avg_ts=c.mean_a,
                b_avg_ts=c.mean_b,
                diff_pct=c.diff_pct,
                p_value=c.p_value,
                significant=c.significant,
                order=order or f"{a_label} then {b_label}",
                method=c.method,
            )
        )
    return rows


def noise_floor_pct(rows: Sequence[ABRow]) -> float:
    """The largest |difference| between two identical runs, % (an A/A comparison's noise floor)."""
    return max((abs(r.diff_pct) for r in rows if r.diff_pct == r.diff_pct), default=float("nan"))
