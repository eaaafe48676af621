"""Real-browser tests of the Memory tab: the live view and chart render, the calculator answers (and
refuses bad input with a message), a model loaded from Chat is listed and unloads, the plan edits."""

from __future__ import annotations

import re

import pytest

from tests.conftest import open_tab

pytestmark = pytest.mark.browser


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def wait_text(page, selector: str, pattern: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        "([sel, pat]) => { const el = document.querySelector(sel); return el && new RegExp(pat).test(el.innerText); }",
        arg=[selector, pattern],
        timeout=timeout,
    )


def test_live_view_chart_and_calculator(page):
    open_tab(page, "Memory")
    wait_text(page, "#memory-live", "Total memory")
    live = text_of(page, "#memory-live")
    assert re.search(r"Available\s+[\d.]+ GiB \([\d.]+ GB\)", live)
    assert "This process (RSS)" in live
    chart = page.locator("#memory-chart .vega-embed [aria-label]")
    chart.wait_for(timeout=60_000)
    assert page.locator("#memory-chart .vega-embed canvas, #memory-chart .vega-embed svg.marks").count() == 1
    label = chart.get_attribute("aria-label")  # vega's accessible description of the drawn data
    assert re.search(r"Plan \(not a measurement\): OS [\d.]+ GiB, Applications", label)
    assert re.search(r"Live now \(psutil\): available [\d.]+ GiB", label)

    model = page.locator("#memory-calc-model input")
    model.fill("qwen3:8b")
    model.press("Enter")
    page.locator("#memory-calc-quant input").click()
    page.get_by_role("option", name="Q4_K_M", exact=True).click()
    page.locator("#memory-calc-ctx input").fill("8192")
    page.locator("#memory-calc-run").click()
    wait_text(page, "#memory-calc-result", "Recommended quantization")
    result = text_of(page, "#memory-calc-result")
    assert "qwen3:8b (planning entry (ADR 006)) at Q4_K_M, 8192 tokens" in result
    total = re.search(r"total ([\d.]+) GiB \(([\d.]+) GB\)", result)
    assert total and 5.0 < float(total.group(2)) < 8.0  # 5.0 GB of weights + 1.2 GB of KV + buffers
    assert re.search(r"Available memory: (fits|tight|does not fit)", result)
    components = text_of(page, "#memory-calc-components")
    assert "KV cache" in components and "144.0 KiB/token" in components
    wait_text(page, "#memory-calc-contexts", "Q4_K_M")


def test_calculator_refuses_an_absurd_context(page):
    open_tab(page, "Memory")
    page.locator("#memory-calc-ctx input").fill("0")
    page.locator("#memory-calc-run").click()
    wait_text(page, "#memory-calc-result", "positive number of tokens")
    page.locator("#memory-calc-ctx input").fill("100000")
    page.locator("#memory-calc-run").click()
    wait_text(page, "#memory-calc-result", "above smollm2-135m's maximum of 8192 tokens")


def test_a_model_loaded_in_chat_is_listed_and_unloads(page):
    page.locator("#chat-max-tokens input").fill("4")
    page.locator("#chat-prompt textarea").fill("Hi")
    page.locator("#chat-send").click()
    wait_text(page, "#chat-stats", "stop", timeout=120_000)
    open_tab(page, "Memory")
    # other tests of this session may have loaded other models too: find smollm2's row
    listed = """() => [...document.querySelectorAll('[id^=memory-loaded-]')]
        .filter(e => /^memory-loaded-\\d+$/.test(e.id) && /smollm2-135m on llamacpp/.test(e.innerText))"""
    page.wait_for_function(f"() => ({listed})().length > 0", timeout=30_000)
    before = page.evaluate(f"() => ({listed})().length")  # other tests may have loaded it at other contexts
    row_id = page.evaluate(f"() => ({listed})()[0].id")
    row = text_of(page, f"#{row_id}")
    assert re.search(r"planned [\d.]+ MiB \([\d.]+ MB\) \(derived\)", row)
    assert re.search(r"measured: worker USS.* MiB .*\(worker pid \d+\)", row), row
    page.locator(f"#memory-unload-{row_id.rsplit('-', 1)[1]}").click()
    wait_text(page, "#memory-loaded-status", "Unloaded smollm2-135m")
    page.wait_for_function(f"() => ({listed})().length === {before - 1}", timeout=30_000)


def edit_cell(cell, value: str) -> None:
    """Type a new value into a Gradio dataframe cell (its editor is an input inside the cell)."""
    cell.dblclick()
    editor = cell.locator("input, textarea").first
    editor.wait_for()
    editor.fill(value)
    editor.press("Enter")


def test_plan_edit_updates_sizes_and_refuses_over_100_percent(page):
    open_tab(page, "Memory")
    wait_text(page, "#memory-plan", "Model weights")
    cell = page.locator("#memory-plan [data-testid='cell-0-1']")  # OS, share of RAM (%)
    edit_cell(cell, "50")
    wait_text(page, "#memory-plan-status", "adds up to 1\\d\\d % of RAM")
    edit_cell(cell, "5")
    wait_text(page, "#memory-plan-status", "Model share of the plan")
    total = re.search(r"Total memory\s+([\d.]+) GiB \(([\d.]+) GB\)", text_of(page, "#memory-live"))
    ram_gib, ram_gb = float(total.group(1)), float(total.group(2))
    expected = round(0.05 * ram_gb, 2)  # the sizes follow the edited share
    page.wait_for_function(
        "x => Math.abs(parseFloat(document.querySelector(`#memory-plan [data-testid='cell-0-3']`).innerText) - x)"
        " < 0.015",
        arg=expected,
    )
    label = page.locator("#memory-chart .vega-embed [aria-label]").get_attribute("aria-label")
    assert f"Plan (not a measurement): OS {0.05 * ram_gib:.1f} GiB" in label


# The Ollama part of "Loaded models", against the loopback fake speaking Ollama's documented API (the
# served app is not pointed at it, so this drives the tab's watcher directly; no browser needed).


def _rows_when(watcher, predicate, timeout_s: float = 20.0):
    import time

    deadline = time.monotonic() + timeout_s
    watcher.read(force=True)
    while time.monotonic() < deadline:
        rows, note = watcher.read()
        if predicate(rows, note):
            return rows, note
        time.sleep(0.2)
        watcher.read(force=True)
    raise AssertionError(f"watcher never reached the expected state: {watcher.read()}")


def test_ollama_models_are_listed_and_unload(fake_ollama):
    import ollama

    from dashboard.tabs.memory import OllamaWatcher
    from engines.ollama import unload_model

    ollama.Client(host=fake_ollama.url).generate(model="smollm2:135m", prompt="", keep_alive="5m")  # load it
    watcher = OllamaWatcher(fake_ollama.url)
    rows, _ = _rows_when(watcher, lambda rows, note: bool(rows))
    assert rows[0]["name"] == "smollm2:135m" and rows[0]["engine"] == "ollama"
    assert re.search(r"size [\d.]+ MiB \([\d.]+ MB\), in VRAM 0\.0 MiB", rows[0]["detail"])
    unload_model("smollm2:135m", fake_ollama.url)
    _rows_when(watcher, lambda rows, note: rows == [])


def test_ollama_not_running_is_a_note_not_an_error():
    from dashboard.tabs.memory import OllamaWatcher
    from tests.conftest import free_port

    watcher = OllamaWatcher(f"http://127.0.0.1:{free_port()}")
    _, note = _rows_when(watcher, lambda rows, note: bool(note))
    assert "not reachable" in note


def test_calculator_chart_does_not_fit_and_clears_after_an_error(page):
    open_tab(page, "Memory")
    model = page.locator("#memory-calc-model input")
    model.fill("qwen3:30b-a3b")
    model.press("Enter")
    page.locator("#memory-calc-ctx input").fill("8192")
    page.locator("#memory-calc-run").click()
    wait_text(page, "#memory-calc-contexts", "does not fit")
    page.locator("#memory-calc-chart .vega-embed").wait_for()  # components against available memory
    assert "KV cache" in text_of(page, "#memory-calc-components")
    page.locator("#memory-calc-ctx input").fill("0")
    page.locator("#memory-calc-run").click()
    wait_text(page, "#memory-calc-result", "positive number of tokens")
    page.wait_for_function("() => !/KV cache/.test(document.querySelector('#memory-calc-components').innerText)")
    assert "does not fit" not in text_of(page, "#memory-calc-contexts")
    assert page.locator("#memory-calc-chart .vega-embed").count() == 0


def test_no_ollama_note_for_people_who_do_not_use_ollama(page):
    open_tab(page, "Memory")
    page.wait_for_timeout(int(3.5 * 1000))  # at least one 3 s refresh: no Ollama note for non-Ollama users
    assert text_of(page, "#memory-ollama-note").strip() == ""
