"""bench.speed.depth: t/s against depth from the raw samples, one series per model, engine and varying setting."""

from __future__ import annotations

import statistics

import pandas as pd

from bench.speed.depth import base_test, depth_rows, depth_table, planned_max_context


def row(test: str, depth: int, samples: list[float], fa: int = -1) -> dict:
    return {"model": "m", "engine": "llamacpp", "test": test, "n_depth": depth, "samples_ts": samples,
            "flash_attn": fa, "n_threads": 2}  # fmt: skip


def test_depth_rows_from_raw_samples_per_setting():
    frame = pd.DataFrame(
        [
            row("tg8", 0, [100.0, 110.0], fa=0),
            row("tg8 @ d64", 64, [90.0, 80.0], fa=0),
            row("tg8", 0, [120.0, 120.0], fa=1),
            row("tg8 @ d64", 64, [60.0], fa=1),
            row("pp16", 0, [300.0, 310.0], fa=0),
            row("pp16", 0, [300.0, 310.0], fa=1),
        ]
    )
    rows = depth_rows(frame)
    assert base_test("tg8 @ d64") == "tg8" and set(rows["config"]) == {"fa 0", "fa 1"}  # threads do not vary
    fa0 = rows[rows["config"] == "fa 0"]
    assert list(fa0["test"]) == ["tg8", "tg8", "pp16"] and list(fa0["n_depth"]) == [0, 64, 0]  # tg first
    tg64 = fa0.iloc[1]
    assert tg64["mean"] == statistics.fmean([90.0, 80.0]) and tg64["sd"] == statistics.stdev([90.0, 80.0])
    assert tg64["vs_d0_pct"] == (85.0 / 105.0 - 1) * 100
    fa1 = rows[(rows["config"] == "fa 1") & (rows["n_depth"] == 64)].iloc[0]
    assert fa1["n"] == 1 and fa1["vs_d0_pct"] == (60.0 / 120.0 - 1) * 100
    table = depth_table(frame)
    assert table["vs depth 0 (%)"].tolist()[:2] == ["+0.0", f"{(85.0 / 105.0 - 1) * 100:+.1f}"]


def test_planner_context_is_an_estimate_or_says_why_not(smollm2_ref):
    planned = planned_max_context("smollm2-135m", smollm2_ref.path)
    assert planned.max_ctx and planned.max_ctx > 0 and "estimate" in planned.sentence
    missing = planned_max_context("no-such-model")
    assert missing.max_ctx is None and missing.sentence.startswith("— (not estimated:")
