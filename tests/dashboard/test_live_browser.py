"""Real-browser test of Live side by side (Compare tab): two llama.cpp workers on the bundled SmolLM2 (two
context sizes, so two workers) stream at once; both live lines fill with figures and say contended, the
CSV parses; then Stop on one column ends it while the other finishes."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.browser

LONG = 180_000


def line(page, i: int) -> str:
    return page.locator(f"#live-line-{i}").inner_text()


def setup(page, max_tokens: str) -> None:
    page.get_by_role("tab", name="Compare").click()
    page.locator("#live-mode").get_by_text("Simultaneous").click()
    page.wait_for_function("() => /contended/.test(document.querySelector('#live-mode-help').innerText)")
    page.locator("#live-ctx-0 input").fill("512")
    page.locator("#live-ctx-1 input").fill("1024")
    page.locator("#live-prompt textarea").fill("List three fruits.")
    page.locator("#live-max-tokens input").fill(max_tokens)


def test_two_columns_stream_at_once_and_stop_one(page, tmp_path):
    setup(page, "24")
    page.locator("#live-go").click()
    page.wait_for_function(
        "() => /Done: 2 finished/.test(document.querySelector('#live-status').innerText)", timeout=LONG
    )
    for i in (0, 1):
        text = line(page, i)
        assert "TTFT" in text and "t/s" in text and "ITL p50" in text and "MiB" in text and "contended" in text
        assert "— t/s" not in text and "— MiB" not in text
        assert page.locator(f"#live-answer-{i} .live-text").inner_text().strip()
        assert "smollm2-135m · llama.cpp" in page.locator(f"#live-answer-{i}").inner_text()

    with page.expect_download() as info:
        page.locator("#live-csv").click()
    path = tmp_path / "live.csv"
    info.value.save_as(path)
    rows = pd.read_csv(path)
    assert list(rows["n_ctx"]) == [512, 1024] and rows["contended"].all()
    assert (rows["n_gen"] > 0).all() and (rows["ttft_ms"] > 0).all() and (rows["worker_peak_mib"] > 0).all()
    assert set(rows["mode"]) == {"simultaneous"}

    # Stop on column 1 once it streams; column 2 still finishes its (short) answer
    page.locator("#live-max-tokens input").fill("64")
    page.locator("#live-go").click()
    page.wait_for_function(
        "() => /[1-9][0-9]* tok.*streaming/.test(document.querySelector('#live-line-0').innerText)", timeout=LONG
    )
    page.locator("#live-stop-0").click()
    page.wait_for_function("() => /stopped/.test(document.querySelector('#live-line-0').innerText)", timeout=30_000)
    assert "streaming" in line(page, 1) or "done" in line(page, 1)
    page.wait_for_function(
        "() => /Done: 1 finished, 1 stopped/.test(document.querySelector('#live-status').innerText)", timeout=LONG
    )
    assert "stopped" in line(page, 0)
    assert "done (" in line(page, 1) and "stopped" not in line(page, 1)
