"""Real-browser test of the Servers tab: add the loopback Ollama test server, test the connection, pull a
model with streamed progress, then chat through that server in the Chat tab; a dead endpoint gives a
clear message and the app keeps serving."""

from __future__ import annotations

import pytest

from tests.conftest import ARTIFACTS, free_port, open_tab

pytestmark = pytest.mark.browser


def set_dropdown(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.fill(value)
    box.press("Enter")


def text_of(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id}").inner_text()


def wait_text(page, elem_id: str, pattern: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        f"() => {{ const e = document.querySelector('#{elem_id}'); return e && /{pattern}/.test(e.innerText); }}",
        timeout=timeout,
    )


def choose_kind(page, label: str) -> None:
    """Switch to another server type and wait until the tab has put its endpoint into the URL box, so a URL
    typed next is not overwritten. The box first gets a sentinel no endpoint equals: waiting for it to
    change waits for the kind's change event itself, whatever URL the box held before."""
    box = page.locator("#servers-url textarea, #servers-url input").first
    box.fill("sentinel://waiting-for-the-kind-change")
    page.locator("#servers-kind").get_by_text(label, exact=True).click()
    check = "v.endsWith('/v1')" if label == "OpenAI-compatible" else "!v.endsWith('/v1')"
    page.wait_for_function(
        "() => { const e = document.querySelector('#servers-url textarea, #servers-url input');"
        f" const v = e ? e.value : ''; return !v.startsWith('sentinel:') && {check}; }}"
    )


def test_add_ollama_endpoint_pull_and_chat_through_it(page, fake_ollama):
    open_tab(page, "Servers")
    page.locator("#servers-url textarea, #servers-url input").first.fill(fake_ollama.url)
    page.locator("#servers-test").click()
    wait_text(page, "servers-status", "Connected: Ollama 0\\.6\\.3-localbench-fake")
    assert "smollm2:135m" in text_of(page, "servers-models") and "Q4_1" in text_of(page, "servers-models")
    assert fake_ollama.url in text_of(page, "servers-active")

    # pulling shows the server's streamed progress, then the new model in the table
    page.locator("#servers-pull-name textarea, #servers-pull-name input").first.fill("smollm2:135m-instruct-q4_1")
    page.locator("#servers-pull").click()
    wait_text(page, "servers-pull-status", "MB \\(\\d+ %\\)")
    wait_text(page, "servers-pull-status", "Pulled")
    wait_text(page, "servers-models", "135m-instruct-q4_1")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "servers_tab_connected.png"), full_page=True)

    # the Chat tab lists the server's models for the ollama engine and chats through it
    open_tab(page, "Chat")
    set_dropdown(page, "chat-engine", "ollama")
    page.locator("#chat-model input").click()
    page.get_by_role("option", name="smollm2:135m", exact=True).wait_for(timeout=30_000)
    set_dropdown(page, "chat-model", "smollm2:135m")
    page.locator("#chat-max-tokens input").fill("12")
    page.locator("#chat-prompt textarea").fill("Name three colours.")
    page.locator("#chat-send").click()
    wait_text(page, "chat-stats", "stop\\s*\\S+", timeout=120_000)
    stats = text_of(page, "chat-stats")
    assert "Ollama final chunk (ns durations)" in stats and "TTFT" in stats
    bot = page.locator("#chat-box .message.bot, #chat-box [data-testid='bot']").last
    assert bot.inner_text().strip()
    chats = [body for path, body in fake_ollama.requests if path == "/api/chat" and body.get("messages")]
    assert chats and chats[-1]["model"] == "smollm2:135m" and chats[-1]["options"]["num_predict"] == 12


def test_dead_endpoint_gives_a_clear_message_and_the_app_keeps_serving(page, fake_ollama):
    open_tab(page, "Servers")
    dead = f"http://127.0.0.1:{free_port()}"
    url = page.locator("#servers-url textarea, #servers-url input").first
    url.fill(dead)
    page.locator("#servers-test").click()
    wait_text(page, "servers-status", "not reachable")
    status = text_of(page, "servers-status")  # the Markdown shows `ollama serve` as code, without backticks
    assert f"Ollama is not reachable at {dead} — start it with ollama serve or set OLLAMA_HOST" in status
    # an OpenAI-compatible URL that is down says so too, then a working endpoint still connects
    choose_kind(page, "OpenAI-compatible")
    url.fill(dead)
    page.locator("#servers-test").click()
    wait_text(page, "servers-status", "No OpenAI-compatible server is reachable")
    choose_kind(page, "Ollama")
    url.fill(fake_ollama.url)
    page.locator("#servers-test").click()
    wait_text(page, "servers-status", "Connected: Ollama 0\\.6\\.3-localbench-fake")


def test_openai_compatible_endpoint_with_api_key(page, llama_server):
    from tests.conftest import LLAMA_SERVER_KEY

    open_tab(page, "Servers")
    choose_kind(page, "OpenAI-compatible")
    page.locator("#servers-url textarea, #servers-url input").first.fill(llama_server)
    key = page.locator("#servers-api-key textarea, #servers-api-key input").first
    key.fill("wrong-key")
    page.locator("#servers-test").click()
    wait_text(page, "servers-status", "rejected the API key \\(HTTP 401")
    key.fill(LLAMA_SERVER_KEY)
    page.locator("#servers-test").click()
    wait_text(page, "servers-status", "Connected: OpenAI-compatible server")
    assert "smollm2" in text_of(page, "servers-models")
    assert "API key set" in text_of(page, "servers-active")
