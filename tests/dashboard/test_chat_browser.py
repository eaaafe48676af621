"""Real-browser test of the Chat tab: send a prompt to the bundled model, watch it stream, check stats."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def test_chat_streams_reply_with_statistics(page):
    page.locator("#chat-max-tokens input").fill("48")
    page.locator("#chat-prompt textarea").fill("Name three colours of the rainbow.")
    page.locator("#chat-send").click()
    bot = page.locator("#chat-box .message.bot, #chat-box [data-testid='bot']").last
    bot.wait_for(state="visible", timeout=120_000)
    page.wait_for_function(
        "() => document.querySelector('#chat-stats') && /stop/.test(document.querySelector('#chat-stats').innerText)",
        timeout=120_000,
    )
    stats = page.locator("#chat-stats").inner_text()
    ttft = float(re.search(r"TTFT\s+([\d.]+)\s*ms", stats).group(1))
    gen_tps = float(re.search(r"generation\s+\d+\s+tok at\s+([\d.]+)\s*t/s", stats).group(1))
    n_tokens = int(re.search(r"generation\s+(\d+)\s+tok", stats).group(1))
    assert ttft > 0 and gen_tps > 0 and n_tokens > 0
    assert len(bot.inner_text().strip()) > 0
    assert "llama.cpp perf counters" in stats


def test_chat_empty_prompt_gives_clear_message(page):
    page.locator("#chat-send").click()
    page.wait_for_function("() => /empty/.test(document.querySelector('#chat-stats').innerText)", timeout=30_000)
    assert "empty" in page.locator("#chat-stats").inner_text()


def test_chat_unknown_model_keeps_serving(page):
    model = page.locator("#chat-model input")
    model.fill("no-such-model")
    model.press("Enter")
    page.locator("#chat-prompt textarea").fill("hello")
    page.locator("#chat-send").click()
    page.wait_for_function(
        "() => /unknown model/.test(document.querySelector('#chat-stats').innerText)", timeout=30_000
    )
    # the app keeps serving: the same page can still chat with the bundled model
    model.fill("smollm2-135m")
    model.press("Enter")
    page.locator("#chat-max-tokens input").fill("8")
    page.locator("#chat-prompt textarea").fill("Hello")
    page.locator("#chat-send").click()
    page.wait_for_function("() => /stop/.test(document.querySelector('#chat-stats').innerText)", timeout=120_000)


def test_stop_cancels_a_long_reply(page):
    page.locator("#chat-max-tokens input").fill("1500")
    page.locator("#chat-prompt textarea").fill("Write a very long story about a dragon, with many chapters.")
    page.locator("#chat-send").click()
    page.wait_for_function("() => /streaming/.test(document.querySelector('#chat-stats').innerText)", timeout=120_000)
    page.locator("#chat-stop").click()
    page.wait_for_function("() => /stop\\s*\\S+/.test(document.querySelector('#chat-stats').innerText)", timeout=60_000)
    stats = page.locator("#chat-stats").inner_text()
    assert "cancelled" in stats
    assert int(re.search(r"generation\s+(\d+)\s+tok", stats).group(1)) < 1500


def test_system_tab_shows_profile_config_and_engines(page):
    page.get_by_role("tab", name="System").click()
    profile = page.locator("#system-profile")
    profile.wait_for(state="visible")
    assert "Linux CPU" in profile.inner_text() and "GiB" in profile.inner_text()
    assert "n_threads" in page.locator("#system-config").inner_text()
    assert "llamacpp" in page.locator("#system-engines").inner_text()


def test_results_tab_lists_stored_runs_and_downloads_csv(page, tmp_path):
    import pandas as pd

    # a chat reply is stored as a run of kind 'chat'
    page.locator("#chat-max-tokens input").fill("6")
    page.locator("#chat-prompt textarea").fill("Hi")
    page.locator("#chat-send").click()
    page.wait_for_function(
        "() => /stop\\s*\\S+/.test(document.querySelector('#chat-stats').innerText)", timeout=120_000
    )
    page.get_by_role("tab", name="Results").click()
    kind = page.locator("#results-kind input")
    kind.fill("chat")
    kind.press("Enter")
    page.locator("#results-refresh").click()
    page.wait_for_function("() => /chat/.test(document.querySelector('#results-runs').innerText)", timeout=30_000)
    with page.expect_download() as info:
        page.locator("#results-download").click()
    path = tmp_path / "chat.csv"
    info.value.save_as(path)
    frame = pd.read_csv(path)
    assert {"run_id", "date", "kind", "status", "model", "engine", "machine"} <= set(frame.columns)
    assert (frame["kind"] == "chat").all() and (frame["rows"] >= 1).all()
