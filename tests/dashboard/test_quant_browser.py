"""Real-browser test of the Quantization tab: compare two variants of the bundled SmolLM2-135M (the reference
joins them as a row), see the answers in columns, a table that fits without a sideways scroll, both charts,
download the CSV and parse it; bad input and Cancel."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import open_tab, sideways_scrollers

pytestmark = pytest.mark.browser

STATUS = "document.querySelector('#quant-status')"


def _fill(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(value)
    box.press("Tab")


def _tick_only(page, labels: list[str]) -> None:
    group = page.locator("#quant-variants")
    for box in group.locator("label").all():
        name = box.inner_text().strip()
        checked = box.locator("input").is_checked()
        if (name in labels) != checked:
            box.click()


def _wait_status(page, pattern: str, timeout_ms: int = 300_000) -> str:
    page.wait_for_function(f"() => {STATUS} && /{pattern}/.test({STATUS}.innerText)", timeout=timeout_ms)
    return page.locator("#quant-status").inner_text()


def test_compare_two_variants_and_download_csv(page):
    open_tab(page, "Quantization")
    _tick_only(page, ["Q8_0", "Q4_0"])
    _fill(page, "quant-chunks", "1")
    _fill(page, "quant-pp", "16")
    _fill(page, "quant-tg", "4")
    _fill(page, "quant-reps", "1")
    _fill(page, "quant-max-tokens", "12")
    _fill(page, "quant-prompt", "Name a colour of the sky.")
    page.locator("#quant-run").click()
    status = _wait_status(page, "Done|⚠️")
    assert "Done" in status and "3 variants" in status, status  # Q8_0, Q4_0 and the reference
    assert "dequantized from the Q4_1 source" in status
    assert "Not evaluated: tick Q4_K_M" in status  # the design target (ADR 006) says why it has no verdict
    answers = page.locator("#quant-answers")
    assert answers.locator(".quant-answer").count() == 3
    assert "Mode: chat" in answers.inner_text()
    table = page.locator("#quant-table").inner_text()
    assert "F16 (reference)" in table and "Q8_0" in table and "Q4_0" in table  # the reference is a row
    for header in ("size MiB", "ΔPPL %", "KLD mean", "tg t/s", "peak RSS MiB", "design target (ADR 006)"):
        assert header in table, header
    assert " ± " in table  # t/s as mean ± sd
    assert sideways_scrollers(page, "#quant-table") == [], "the metrics table scrolls sideways"
    for chart in ("#quant-chart", "#quant-sizes"):
        page.locator(f"{chart} .vega-embed").first.wait_for(timeout=30_000)
    with page.expect_download() as download:
        page.locator("#quant-csv").click()
    frame = pd.read_csv(download.value.path())
    assert list(frame["variant"]) == ["F16", "Q8_0", "Q4_0"] and list(frame["is_reference"]) == [True, False, False]
    assert "adr006_target" in frame.columns and "seed_criterion" not in frame.columns
    for col in (
        "model_size",
        "bpw",
        "ppl",
        "delta_ppl_pct",
        "kld_mean",
        "kld_p99",
        "same_top1_pct",
        "pp_avg_ts",
        "tg_avg_ts",
        "ttft_ms",
        "peak_rss_bytes",
        "answer",
        "answer_mode",
    ):
        assert col in frame.columns, col
    assert frame["kld_mean"].iloc[0] == 0.0 < frame["kld_mean"].iloc[1] < frame["kld_mean"].iloc[2]
    assert (frame["pp_avg_ts"] > 0).all() and (frame["tg_avg_ts"] > 0).all()
    assert (frame["n_eval_tokens"] == 512).all() and (frame["answer_mode"] == "chat").all()
    assert frame["bpw"].iloc[0] > frame["bpw"].iloc[1] > frame["bpw"].iloc[2]


def test_bad_input_then_cancel(page, localbench_home):
    from bench.results.store import ResultStore

    open_tab(page, "Quantization")
    _tick_only(page, [])
    page.locator("#quant-run").click()
    assert "no variant ticked" in _wait_status(page, "no variant ticked", 60_000)
    _tick_only(page, ["Q8_0", "Q6_K", "Q5_0", "Q4_0", "Q2_K"])
    _fill(page, "quant-chunks", "0")  # the whole text: long enough to cancel midway
    page.locator("#quant-run").click()
    page.wait_for_function(
        "() => /quality chunk|reference logits: chunk/.test(document.body.innerText)", timeout=300_000
    )
    page.locator("#quant-cancel").click()
    assert "cancelled by the user" in _wait_status(page, "cancelled", 300_000)
    runs = ResultStore().runs("quant")
    assert runs[0]["status"] == "cancelled" and runs[0]["n_rows"] == 0


def test_progress_is_drawn_once(page):
    page.get_by_role("tab", name="Quantization").click()
    page.locator("#quant-run").click()
    page.wait_for_selector(".progress-text", timeout=60_000)
    assert page.locator(".progress-text:visible").count() == 1
    page.locator("#quant-cancel").click()
