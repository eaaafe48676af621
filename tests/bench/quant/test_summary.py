"""The one quant summary table (CLI and tab): the columns read first, '—' for what was not measured, the
reference marked, and runs stored before the rename (seed_criterion) read under today's column name."""

from __future__ import annotations

import math

from bench.quant import summary as quant_summary

NAN = math.nan


def _row(variant: str, **kw) -> dict:
    row = {
        "variant": variant,
        "main_type": variant,
        "k_fallback": False,
        "is_reference": False,
        "model_size": 100 * 2**20,
        "bpw": 8.5,
        "delta_ppl_pct": 1.25,
        "kld_mean": 0.0123,
        "pp_avg_ts": 500.0,
        "pp_stddev_ts": 5.0,
        "tg_avg_ts": 50.0,
        "tg_stddev_ts": 2.5,
        "ttft_ms": 12.0,
        "peak_rss_bytes": 300 * 2**20,
        "adr006_target": "",
    }
    return {**row, **kw}


def test_summary_columns_reference_and_unknowns():
    frame = quant_summary.to_frame(
        [
            _row("F16", is_reference=True, delta_ppl_pct=0.0, kld_mean=0.0),
            _row("Q4_K_M", main_type="Q5_0", k_fallback=True, adr006_target="pass"),
            _row("MLX 4-bit", delta_ppl_pct=NAN, kld_mean=NAN, tg_avg_ts=NAN, tg_stddev_ts=NAN),
        ]
    )
    table = quant_summary.summary_frame(frame)
    assert list(table.columns) == [
        "variant",
        "type",
        "size MiB",
        "bpw",
        "ΔPPL %",
        "KLD mean",
        "pp t/s",
        "tg t/s",
        "TTFT ms",
        "peak RSS MiB",
        "design target (ADR 006)",
    ]
    assert list(table["variant"]) == ["F16 (reference)", "Q4_K_M", "MLX 4-bit"]
    assert table["type"][1] == "Q5_0 (K fallback)" and table["design target (ADR 006)"][1] == "pass"
    assert table["size MiB"][0] == "100.0" and table["peak RSS MiB"][0] == "300"
    assert table["tg t/s"][0] == "50.0 ± 2.5"
    assert (table["ΔPPL %"][2], table["KLD mean"][2], table["tg t/s"][2]) == ("—", "—", "—")  # never 0


def test_runs_stored_before_the_rename_read_under_the_new_name():
    old = _row("Q4_K_M")
    old["seed_criterion"] = old.pop("adr006_target")
    old["seed_criterion"] = "fail"
    frame = quant_summary.to_frame([old])
    assert "seed_criterion" not in frame.columns and frame["adr006_target"][0] == "fail"
    assert quant_summary.summary_frame(frame)["design target (ADR 006)"][0] == "fail"


def test_target_definition_names_the_design_target_and_its_page():
    text = quant_summary.TARGET_DEFINITION
    assert "design target (ADR 006" in text and quant_summary.TARGET_DOC in text and "seed" not in text.lower()
