"""One run through every tab of the served app: each tab's main action on the bundled models, then a
full-page screenshot into test-artifacts/tabs/ (NN-tab.png, in the app's tab order).

The screenshots are for people (a reviewer, the README's picture); the test checks that each action
finished and that no tab of dashboard.app.TABS is left out."""

from __future__ import annotations

import pytest

from dashboard.app import TABS
from tests.conftest import ARTIFACTS, open_tab

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "tabs"


def _fill(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(value)
    box.press("Tab")


def _wait(page, elem_id: str, pattern: str, timeout: int = 180_000) -> str:
    page.wait_for_function(
        "([id, pat]) => { const e = document.getElementById(id); return e && new RegExp(pat).test(e.innerText); }",
        arg=[elem_id, pattern],
        timeout=timeout,
    )
    return page.locator(f"#{elem_id}").inner_text()


def chat(page, fake_ollama) -> None:
    _fill(page, "chat-max-tokens", "32")
    page.locator("#chat-prompt textarea").fill("Name three colours of the rainbow.")
    page.locator("#chat-send").click()
    assert "stop" in _wait(page, "chat-stats", "stop|length")


def models(page, fake_ollama) -> None:
    page.locator("#models-refresh").click()
    assert "smollm2-135m" in _wait(page, "models-table", "smollm2-135m")
    page.locator("#models-fetch-name textarea, #models-fetch-name input").first.fill("hf:nobody/nothing")
    page.locator("#models-fetch-check").click()
    _wait(page, "models-fetch-status", "⚠")  # offline in the suite: one line, and the page keeps serving


def quantization(page, fake_ollama) -> None:
    group = page.locator("#quant-variants")
    for box in group.locator("label").all():
        if (box.inner_text().strip() in ("Q8_0", "Q4_0", "Q2_K")) != box.locator("input").is_checked():
            box.click()
    for elem_id, value in (("quant-chunks", "1"), ("quant-pp", "16"), ("quant-tg", "8"), ("quant-reps", "3")):
        _fill(page, elem_id, value)
    _fill(page, "quant-max-tokens", "16")
    page.locator("#quant-run").click()
    assert "Done" in _wait(page, "quant-status", "Done|⚠️", 400_000)
    page.locator("#quant-chart .vega-embed").first.wait_for(timeout=30_000)


def compare(page, fake_ollama) -> None:
    page.locator("#cmp-prompt textarea").fill("The three primary colours are")
    _fill(page, "cmp-max-tokens", "12")
    page.locator("#cmp-generate").click()
    _wait(page, "cmp-stats-1", "t/s")
    for elem_id, value in (("cmp-pp", "16"), ("cmp-tg", "8"), ("cmp-reps", "2")):
        _fill(page, elem_id, value)
    page.locator("#cmp-bench").click()
    assert "Done" in _wait(page, "cmp-bench-status", "Done|⚠️")


def arena(page, fake_ollama) -> None:
    for seed, shown in (("1", "add one more"), ("2", "seed=2")):
        _fill(page, "arena-temp", "0.9")
        _fill(page, "arena-seed", seed)
        page.locator("#arena-add").click()
        _wait(page, "arena-pool", shown)
    page.locator("#arena-prompt textarea").fill("Name a colour.")
    _fill(page, "arena-max-tokens", "12")
    page.locator("#arena-send").click()
    _wait(page, "arena-status", "Both answers are in")
    page.locator("#arena-vote-a").click()
    _wait(page, "arena-reveal-a", "A was")


def embeddings(page, fake_ollama) -> None:
    _fill(page, "embed-sentences", "48")
    _fill(page, "embed-batch-sizes", "8,16,32")
    page.locator("#embed-run").click()
    assert "Done" in _wait(page, "embed-status", "Done|⚠️")
    page.locator("#embed-chart .vega-embed").first.wait_for(timeout=30_000)


def queue(page, fake_ollama) -> None:
    for seed in ("1", "2"):
        page.locator("#queue-temp input").fill("0.8")
        page.locator("#queue-seed input").fill(seed)
        page.locator("#queue-add").click()
        _wait(page, "queue-entries", f"seed={seed}")
    page.get_by_label("Built-in short set (3 prompts)").check()
    page.locator("#queue-max-tokens input").fill("8")
    page.locator("#queue-run").click()
    assert "Done: queue" in _wait(page, "queue-status", "Done: queue|⚠️", 300_000)


def memory(page, fake_ollama) -> None:
    model = page.locator("#memory-calc-model input")
    model.fill("qwen3:8b")
    model.press("Enter")
    _fill(page, "memory-calc-ctx", "8192")
    page.locator("#memory-calc-run").click()
    _wait(page, "memory-calc-result", "Recommended quantization")


def benchmarks(page, fake_ollama) -> None:
    page.locator("#scorecard-refresh").click()
    _wait(page, "scorecard-table", "quality loss")


def results(page, fake_ollama) -> None:
    page.locator("#results-refresh").click()
    _wait(page, "results-runs", "quant")


def servers(page, fake_ollama) -> None:
    page.locator("#servers-url textarea, #servers-url input").first.fill(fake_ollama.url)
    page.locator("#servers-test").click()
    _wait(page, "servers-status", "Connected")


def system(page, fake_ollama) -> None:
    page.locator("#system-llama-run").click()
    _wait(page, "system-llama", "AVX|NEON|system_info|CPU")


ACTIONS = {
    "Chat": chat,
    "Models": models,
    "Quantization": quantization,
    "Compare": compare,
    "Arena": arena,
    "Queue": queue,
    "Embeddings": embeddings,
    "Memory": memory,
    "Benchmarks": benchmarks,
    "Results": results,
    "Servers": servers,
    "System": system,
}


def test_every_tab_after_its_main_action(page, fake_ollama):
    assert [label for label, _ in TABS] == list(ACTIONS), "a tab without a screenshot action"
    SHOTS.mkdir(parents=True, exist_ok=True)
    for i, (label, action) in enumerate(ACTIONS.items(), 1):
        open_tab(page, label)
        action(page, fake_ollama)
        page.wait_for_timeout(500)  # let charts finish drawing
        path = SHOTS / f"{i:02d}-{label.lower()}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, path
