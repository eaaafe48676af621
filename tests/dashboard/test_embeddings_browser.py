"""Real-browser test of the Embeddings tab: a small CPU sweep of the bundled all-MiniLM-L6-v2, its chart
and table, the CSV download parsed with pandas, and bad input answered with a message."""

from __future__ import annotations

import platform

import pandas as pd
import pytest

from tests.conftest import open_tab, sideways_scrollers

pytestmark = pytest.mark.browser

STATUS = "document.querySelector('#embed-status')"


def _fill(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(value)
    box.press("Tab")


def _wait_status(page, pattern: str, timeout_ms: int = 180_000) -> str:
    page.wait_for_function(f"() => {STATUS} && /{pattern}/.test({STATUS}.innerText)", timeout=timeout_ms)
    return page.locator("#embed-status").inner_text()


def test_small_sweep_table_chart_and_csv(page):
    open_tab(page, "Embeddings")
    _fill(page, "embed-sentences", "48")
    _fill(page, "embed-batch-sizes", "8,32")
    page.locator("#embed-run").click()
    status = _wait_status(page, "Done|⚠️")
    assert "Done" in status and "2 rows" in status, status
    assert "were truncated" in status  # the 48 built-in texts include long ones
    page.locator("#embed-chart .vega-embed, #embed-chart canvas, #embed-chart svg").first.wait_for(timeout=30_000)
    table = page.locator("#embed-table").inner_text()
    assert "sentences/s" in table and "p95 batch ms" in table and "cpu" in table
    assert sideways_scrollers(page, "#embed-table") == [], "the results table scrolls sideways"
    with page.expect_download() as download:
        page.locator("#embed-download").click()
    frame = pd.read_csv(download.value.path())
    assert list(frame["batch_size"]) == [8, 32] and (frame["n_texts"] == 48).all()
    assert (frame["sentences_per_s"] > 0).all() and (frame["tokens_per_s"] > frame["sentences_per_s"]).all()
    assert (frame["p50_batch_ms"] <= frame["p95_batch_ms"]).all()
    assert (frame["embedding_dim"] == 384).all() and (frame["cosine_mean_vs_ref"] > 0.99999).all()
    assert (frame["device"] == "cpu").all() and (frame["truncated_texts"] >= 1).all()


def test_bad_input_gets_a_message_and_the_tab_keeps_serving(page):
    open_tab(page, "Embeddings")
    _fill(page, "embed-batch-sizes", "0,8")
    page.locator("#embed-run").click()
    assert "positive whole number" in _wait_status(page, "positive whole number", 60_000)
    _fill(page, "embed-batch-sizes", "8")
    model = page.locator("#embed-model input")
    model.fill("/no/such/model")
    model.press("Enter")
    page.locator("#embed-run").click()
    assert "unknown embedding model" in _wait_status(page, "unknown embedding model", 60_000)
    _fill(page, "embed-sentences", "0")
    model.fill("all-minilm-l6-v2")
    model.press("Enter")
    page.locator("#embed-run").click()
    assert "sentences must be at least 1" in _wait_status(page, "sentences must be at least 1", 60_000)


def test_cancel_stops_a_long_sweep(page, localbench_home):
    from bench.results.store import ResultStore

    open_tab(page, "Embeddings")
    _fill(page, "embed-sentences", "2000")
    _fill(page, "embed-batch-sizes", "1")
    page.locator("#embed-run").click()
    page.wait_for_function("() => /batch size 1/.test(document.body.innerText)", timeout=120_000)
    page.locator("#embed-cancel").click()
    assert "cancelled by the user" in _wait_status(page, "cancelled", 60_000)
    runs = ResultStore().runs("embed")
    assert runs[0]["status"] == "cancelled" and runs[0]["n_rows"] == 0


@pytest.mark.skipif(platform.system() == "Darwin", reason="off macOS only: there Core ML measures")
def test_coreml_choice_warns_off_macos_and_the_tab_keeps_serving(page, localbench_home):
    from bench.results.store import ResultStore

    before = len(ResultStore().runs("embed"))
    open_tab(page, "Embeddings")
    units = page.locator("#embed-compute-units")
    assert units.count() == 0 or not units.is_visible()  # shown only for Core ML
    backends = page.locator("#embed-backends")
    backends.get_by_label("Core ML (macOS)").check()
    backends.get_by_label("torch", exact=True).uncheck()
    units.wait_for(state="visible", timeout=30_000)
    units.locator("input").click()
    page.get_by_role("option", name="cpu_and_ne", exact=True).click()
    _fill(page, "embed-sentences", "8")
    _fill(page, "embed-batch-sizes", "8")
    page.locator("#embed-run").click()
    status = _wait_status(page, "Core ML needs macOS", 120_000)
    line = next(x for x in status.splitlines() if "Core ML needs macOS" in x)
    assert line.startswith("⚠️ Core ML needs macOS (") and line.endswith("where packages only convert"), status
    assert "@coreml-fp16/model.mlpackage" in status and "Traceback" not in status
    assert len(ResultStore().runs("embed")) == before  # nothing stored

    backends.get_by_label("torch", exact=True).check()
    backends.get_by_label("Core ML (macOS)").uncheck()
    units.wait_for(state="hidden", timeout=30_000)
    page.locator("#embed-run").click()
    status = _wait_status(page, "Done")  # the warning above stays until this run ends
    assert "1 rows" in status and "Core ML" not in status, status
