"""The Quantization tab's Pareto chart as altair builds it: ± 1 sd error bars on generation t/s, and KLD
ticks spread far enough apart on the symlog axis that their labels never collide."""

from __future__ import annotations

import itertools
import math

from bench.quant import summary as quant_summary
from dashboard.tabs.quantization import COLUMN_WIDTHS, KLD_TICKS, pareto_chart


def _frame():
    rows = [
        {"variant": v, "kld_mean": k, "tg_avg_ts": t, "tg_stddev_ts": sd, "bpw": b, "delta_ppl_pct": 0.0}
        for v, k, t, sd, b in (
            ("F16", 0.0, 40.0, 1.0, 16.0),
            ("Q8_0", 0.004, 36.6, 16.6, 8.5),
            ("Q2_K", 0.4, 60.0, 2.0, 3.2),
        )
    ]
    return quant_summary.to_frame(rows)


def test_error_bars_span_mean_plus_minus_sd():
    frame = _frame()
    spec = pareto_chart(frame).to_dict()
    rules = [layer for layer in spec["layer"] if (layer.get("mark") or {}).get("type") == "errorbar"]
    assert len(rules) == 1 and rules[0]["encoding"]["y"]["field"] == "tg_low"
    assert rules[0]["encoding"]["y2"]["field"] == "tg_high"
    q8 = next(d for data in spec["datasets"].values() for d in data if d["variant"] == "Q8_0" and "tg_low" in d)
    assert math.isclose(q8["tg_low"], 36.6 - 16.6) and math.isclose(q8["tg_high"], 36.6 + 16.6)


def test_kld_ticks_are_spread_on_the_symlog_axis():
    spec = pareto_chart(_frame()).to_dict()
    axis = next(layer["encoding"]["x"]["axis"] for layer in spec["layer"] if "axis" in layer["encoding"]["x"])
    assert axis["values"] == [t for t in KLD_TICKS if t <= 0.4 * 1.5]

    def position(x: float) -> float:  # vega's symlog with constant 0.01
        return math.log1p(x / 0.01)

    gaps = [position(b) - position(a) for a, b in itertools.pairwise(KLD_TICKS)]
    assert min(gaps) / position(KLD_TICKS[-1]) > 0.09  # every label has ≥ 9 % of the axis to itself


def test_table_widths_cover_the_summary_columns_and_add_to_100_percent():
    table = quant_summary.summary_frame(
        quant_summary.to_frame(
            [
                {
                    "variant": "Q8_0",
                    "main_type": "q8_0",
                    "model_size": 2**20,
                    "bpw": 8.5,
                    "delta_ppl_pct": 0.1,
                    "kld_mean": 0.004,
                    "pp_avg_ts": 1.0,
                    "pp_stddev_ts": 0.1,
                    "tg_avg_ts": 1.0,
                    "tg_stddev_ts": 0.1,
                    "ttft_ms": 1.0,
                    "peak_rss_bytes": 2**20,
                    "adr006_target": "",
                }
            ]
        )
    )
    assert list(COLUMN_WIDTHS) == list(table.columns)
    assert sum(float(w.rstrip("%")) for w in COLUMN_WIDTHS.values()) == 100
