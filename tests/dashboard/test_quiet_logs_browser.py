"""Quiet logs: a short real session of `python app.py --port N` (chat on llama.cpp and on MLX, each stopped
midway, then the Memory tab's live refresh) leaves no traceback and no warning in the app's output.

The noise this guards against: gradio's warnings about Dataframe arguments it does not implement,
"… is already converted" on every 3-second Memory refresh, and MLX's "[StreamContext] Destroyed in a
different thread" when a stopped MLX stream was closed on another thread than the one that started it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import open_tab, served_app

pytestmark = pytest.mark.browser

NOISE = re.compile(r"traceback|warn|deprecat|already converted|streamcontext|exception ignored", re.IGNORECASE)


def _stats(page, pattern: str, timeout: int = 300_000) -> str:
    page.wait_for_function(
        "(pat) => { const e = document.querySelector('#chat-stats'); return e && new RegExp(pat).test(e.innerText); }",
        arg=pattern,
        timeout=timeout,
    )
    return page.locator("#chat-stats").inner_text()


def _chat_and_stop(page, engine_label: str) -> str:
    box = page.locator("#chat-engine input")
    box.fill(engine_label)
    box.press("Enter")
    model = page.locator("#chat-model input")
    model.fill("smollm2-135m")
    model.press("Enter")
    page.locator("#chat-max-tokens input").fill("400")
    page.locator("#chat-prompt textarea").fill("Write a very long story about a dragon, with many chapters.")
    page.locator("#chat-send").click()
    _stats(page, "streaming")
    page.locator("#chat-stop").click()
    return _stats(page, "cancelled|stopped", 120_000)


def test_an_app_session_logs_no_traceback_and_no_warning(browser, localbench_home, tmp_path):
    log_path = tmp_path / "app.log"
    with served_app(log_path) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector("gradio-app", state="attached")
        assert "cancelled" in _chat_and_stop(page, "llama.cpp")
        assert "cancelled" in _chat_and_stop(page, "MLX (mlx-lm)")
        page.locator("#chat-clear").click()
        open_tab(page, "Memory")
        page.wait_for_function("() => /Total memory/.test(document.querySelector('#memory-live')?.innerText)")
        page.wait_for_timeout(8_000)  # two or three live refreshes
        context.close()
    text = log_path.read_text()
    assert "localbench serving at" in text
    noisy = [line for line in text.splitlines() if NOISE.search(line)]
    assert noisy == [], "\n".join(noisy[:20])
