"""Real-browser test of the user's own models: the app served with every store a fixture (tests/store_env.py);
the Models tab lists them with verdicts and fetches from the loopback hub, and the Chat picker shows them grouped
by family and chats with one model from each store."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS, served_app
from tests.hub_server import GEMMA_GGUF_FILE, GEMMA_GGUF_REPO, SMOLLM_GGUF_REPO
from tests.store_env import hf_home, hub, hub_repos, online_env, stores  # noqa: F401  (session fixtures)

pytestmark = pytest.mark.browser

ONE_PER_STORE = (
    f"hf:{SMOLLM_GGUF_REPO}:Q4_1",
    "ollama:smollm2:135m",
    "lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF:Q4_1",
    "llamacpp:unsloth/SmolLM2-135M-Instruct-GGUF:Q4_1",
    "SmolLM2-135M-Instruct.Q4_1",
)
"""The same SmolLM2 GGUF as the HF cache, Ollama, LM Studio, llama.cpp's cache and LOCALBENCH_MODELS hold it."""


@pytest.fixture(scope="module")
def stores_page(browser, stores, hub_repos, tmp_path_factory):  # noqa: F811
    from tests.hub_server import copy_cache

    home = tmp_path_factory.mktemp("served-hf")  # a copy without Gemma: the Fetch box downloads it into it
    cache = Path(stores["HF_HOME"]) / "hub"
    kept = [c.name[len("models--") :].replace("--", "/") for c in cache.iterdir() if c.name.startswith("models--")]
    copy_cache(cache, home / "hub", repos=[r for r in kept if r != GEMMA_GGUF_REPO])
    env = online_env(stores, hub_repos, home)
    with served_app(home / "app.log", "serve", env=env) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector("gradio-app", state="attached")
        yield page
        context.close()


def pick(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    page.get_by_role("option", name=value, exact=False).first.click()


def test_models_tab_lists_every_store_with_verdicts_and_fetches_by_name(stores_page, hub_repos):  # noqa: F811
    page = stores_page
    page.get_by_role("tab", name="Models").click()
    table = page.locator("#models-table")
    for name in ONE_PER_STORE:
        expect(table).to_contain_text(name)
    expect(table).not_to_contain_text(f"hf:{GEMMA_GGUF_REPO}:Q4_K_M")
    assert "fits" in table.inner_text()
    where = page.locator("#models-where").inner_text()
    assert "OLLAMA" in where.upper() and "LOCALBENCH_MODELS" in where
    hub_repos.reset()
    page.locator("#models-fetch-name textarea, #models-fetch-name input").first.fill(f"hf:{GEMMA_GGUF_REPO}:Q4_K_M")
    page.locator("#models-fetch-check").click()
    page.wait_for_function("() => /fits|tight/.test(document.querySelector('#models-fetch-status').innerText)")
    size = hub_repos.repos[GEMMA_GGUF_REPO].files[GEMMA_GGUF_FILE].size
    assert hub_repos.bytes_served(GEMMA_GGUF_REPO) < size / 4  # the check read a header, not the weights
    page.locator("#models-fetch-run").click()
    page.wait_for_function(
        "() => /Fetched/.test(document.querySelector('#models-fetch-status').innerText)", timeout=120_000
    )
    expect(table).to_contain_text(f"hf:{GEMMA_GGUF_REPO}:Q4_K_M")
    assert hub_repos.bytes_served(GEMMA_GGUF_REPO, GEMMA_GGUF_FILE) >= size  # downloaded, not found
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "models-tab.png"), full_page=True)


def test_chat_picker_groups_by_family_and_chats_with_a_model_from_each_store(stores_page):
    page = stores_page
    page.get_by_role("tab", name="Chat").click()
    box = page.locator("#chat-model input")
    box.click()
    box.fill("")
    labels = [o.inner_text() for o in page.get_by_role("option").all()]
    family = [i for i, label in enumerate(labels) if label.startswith("smollm2-135m-instruct ▸")]
    assert len(family) >= len(ONE_PER_STORE) - 1, labels  # every store's SmolLM2 under its family
    assert family == list(range(family[0], family[0] + len(family))), labels  # side by side
    box.press("Escape")
    page.locator("#chat-max-tokens input").fill("4")
    for name in ONE_PER_STORE:
        pick(page, "chat-model", name)
        page.locator("#chat-prompt textarea").fill("Hello")
        page.locator("#chat-send").click()
        page.wait_for_function(
            "() => /stop|length/.test(document.querySelector('#chat-stats').innerText)", timeout=120_000
        )
        stats = page.locator("#chat-stats").inner_text()
        assert "⚠" not in stats, (name, stats)
        page.locator("#chat-clear").click()
        page.wait_for_function("() => /No reply yet/.test(document.querySelector('#chat-stats').innerText)")


def test_compare_puts_model_one_on_every_engine_of_its_family(stores_page):
    page = stores_page
    page.get_by_role("tab", name="Compare").click()
    pick(page, "cmp-model-0", f"hf:{SMOLLM_GGUF_REPO}:Q4_1")
    page.locator("#cmp-every-engine").click()
    expect(page.locator("#cmp-engine-1 input")).to_have_value("MLX")
    slots = [page.locator(f"#cmp-model-{i} input").input_value() for i in range(3)]
    assert SMOLLM_GGUF_REPO in slots[0], slots
    assert "MLX" in slots[1] and "smollm2-135m-instruct" in slots[1], slots  # the same model as an MLX folder
    assert "smollm2-135m-instruct" in slots[2] and "BF16" in slots[2].upper(), slots  # and as safetensors
