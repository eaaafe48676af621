"""The quantization lab's summary: its rows as one frame for the CLI, the tab and the CSV, and the
Pareto front of quality against speed."""

from __future__ import annotations

import math
from collections.abc import Sequence


def to_frame(rows: Sequence):
    """The rows as a pandas frame (bench.export.to_frame), one row per variant."""
    from bench.export import to_frame as frame_of

    return frame_of(rows)


SUMMARY_COLUMNS = (
    "variant",
    "nominal_type",
    "main_type",
    "k_fallback",
    "model_size",
    "bpw",
    "ppl",
    "delta_ppl_pct",
    "kld_mean",
    "kld_median",
    "kld_p99",
    "kld_max",
    "same_top1_pct",
    "rms_dp_pct",
    "pp_avg_ts",
    "pp_stddev_ts",
    "tg_avg_ts",
    "tg_stddev_ts",
    "ttft_ms",
    "peak_rss_bytes",
    "seed_criterion",
)


def pareto_front(kld: Sequence[float], speed: Sequence[float]) -> list[bool]:
    """True for each point no other point beats on both axes (lower KLD and higher speed); NaNs are never on it."""
    points = list(zip(kld, speed, strict=True))
    out = []
    for i, (k, s) in enumerate(points):
        if math.isnan(k) or math.isnan(s):
            out.append(False)
            continue
        dominated = any(
            j != i and not (math.isnan(k2) or math.isnan(s2)) and k2 <= k and s2 >= s and (k2 < k or s2 > s)
            for j, (k2, s2) in enumerate(points)
        )
        out.append(not dominated)
    return out
