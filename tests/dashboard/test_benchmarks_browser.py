"""Real-browser test of the Benchmarks tab's scorecard and the Results tab's history, compare and delete, with
CSV downloads, on runs stored in the served app's own results store."""

from __future__ import annotations

import pandas as pd
import pytest
from playwright.sync_api import expect

from bench.results.store import ResultStore
from tests.bench.test_scorecard import XEON
from tests.bench.test_scorecard import speed as fixture_row

pytestmark = pytest.mark.browser


def stored(**kw) -> dict:
    row = fixture_row("x", model="browser-model", **kw)
    return {k: v for k, v in row.items() if k not in ("run_id", "created_at")}


def test_scorecard_history_compare_delete(page, localbench_home, tmp_path):
    store = ResultStore(localbench_home / "results.db")
    settings = {"engine": "llamacpp", "model": "browser-model"}
    a = store.save_run(
        "speed", [stored(avg_ts=100.0, samples_ts=[99.0, 100.0, 101.0])], settings=settings, hardware=XEON
    )
    b = store.save_run(
        "speed", [stored(avg_ts=150.0, samples_ts=[149.0, 150.0, 151.0])], settings=settings, hardware=XEON
    )

    page.get_by_role("tab", name="Benchmarks").click()
    page.locator("#scorecard-refresh").click()
    page.wait_for_function("() => /Intel Xeon/.test(document.querySelector('#scorecard-table')?.innerText)")
    with page.expect_download() as info:
        page.locator("#scorecard-download").click()
    card = pd.read_csv(info.value.path())
    assert len(card) == 6 and "verdict" in card.columns
    memory = card[card["criterion"] == "memory < 50 % of RAM"].iloc[0]
    assert memory["verdict"] == "pass" and memory["machine"] == "Intel Xeon, 8 GiB RAM"

    page.get_by_role("tab", name="Results").click()
    page.locator("#results-refresh").click()
    model = page.locator("#results-model input")
    model.fill("browser-model")
    model.press("Enter")
    page.wait_for_function(f"() => document.querySelector('#results-runs')?.innerText?.includes('{b}')")
    page.wait_for_timeout(2000)  # the filter's download file lands just after its table
    with page.expect_download() as info:
        page.locator("#results-download").click()
    history = pd.read_csv(info.value.path())
    assert set(history["model"]) == {"browser-model"} and {a, b} <= set(history["run_id"])
    assert set(history["machine"]) == {"Intel Xeon, 8 GiB RAM"}

    page.locator("#results-ids textarea").fill(f"{a}, {b}")
    page.locator("#results-compare").click()
    expect(page.locator("#results-status").last).to_contain_text("significant")
    assert "+50.0 %" in page.locator("#results-status").last.inner_text()
    assert page.locator("#results-chart").is_visible()

    page.locator("#results-ids textarea").fill(a)
    page.locator("#results-delete").click()
    expect(page.locator("#results-status").last).to_contain_text("deleted 1 run")
    assert a not in {r["run_id"] for r in store.runs()} and b in {r["run_id"] for r in store.runs()}
