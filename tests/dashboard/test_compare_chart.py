"""The Compare tab's speed chart as altair builds it: interleaved arms of one model · engine are separate bars,
and bars never stack (a stacked bar's length would be the sum of the arms' means, not a mean)."""

from __future__ import annotations

import pandas as pd

from dashboard.tabs.compare import speed_chart


def _frame(arms):
    return pd.DataFrame(
        [
            {
                "arm": arm,
                "model": "smollm2-135m",
                "engine": "llama.cpp",
                "test": "tg32",
                "avg_ts": ts,
                "stddev_ts": 2.0,
                "avg_ttft_ms": 46.7,
            }
            for arm, ts in zip(arms, (97.4, 99.2), strict=False)
        ]
    )


def _bars_and_data(frame):
    spec = speed_chart(frame).to_dict()
    layers = spec["spec"]["layer"]
    bars = next(layer for layer in layers if (layer.get("mark") or {}).get("type", layer.get("mark")) == "bar")
    (rows,) = spec["datasets"].values()
    return bars, rows


def test_two_arms_of_one_model_are_two_unstacked_bars():
    bars, rows = _bars_and_data(_frame(["A", "B"]))
    assert bars["encoding"]["x"]["field"] == "avg_ts" and bars["encoding"]["x"]["stack"] is None
    assert [r["label"] for r in rows] == ["A · smollm2-135m · llama.cpp", "B · smollm2-135m · llama.cpp"]
    assert [r["avg_ts"] for r in rows] == [97.4, 99.2]


def test_rows_without_an_arm_keep_the_plain_label():
    _, rows = _bars_and_data(_frame([""]))
    assert [r["label"] for r in rows] == ["smollm2-135m · llama.cpp"]
