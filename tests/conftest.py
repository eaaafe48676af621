"""Shared fixtures: an isolated LOCALBENCH_HOME, the bundled models, a loaded llama.cpp engine, the
app served on a free loopback port, and a real browser (Debian chromium driven by Playwright).

Every later tab's browser test reuses `app_url` and `page`; screenshots go to test-artifacts/.
Slow preparation (model loads, the served app) happens once per session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# A test run started in the background (`make test &`, nohup) inherits SIGINT ignored, and an ignored
# signal stays ignored across exec: the CLI children that the Ctrl-C tests signal would never see it.
# A handler here is reset to the default on exec, so every child gets Python's KeyboardInterrupt again.
signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("LOCALBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("LOCALBENCH_NO_BW_PROBE", "1")


@pytest.fixture(scope="session", autouse=True)
def localbench_home(tmp_path_factory) -> Path:
    """A fresh LOCALBENCH_HOME for the whole test session (store and caches)."""
    home = Path(os.environ.get("LOCALBENCH_TEST_HOME") or tmp_path_factory.mktemp("localbench-home"))
    os.environ["LOCALBENCH_HOME"] = str(home)
    # The user's stores (models.stores) stay out of the suite: empty ones here; a test that needs a store builds
    # one (tests/models/stores/fixtures.py) and names it in its own environment.
    empty = tmp_path_factory.mktemp("no-stores")
    for key in ("HF_HOME", "OLLAMA_MODELS", "LLAMA_CACHE"):
        os.environ[key] = str(empty / key.lower())
    os.environ.pop("HF_HUB_CACHE", None)
    os.environ.pop("LOCALBENCH_MODELS", None)
    return home


@pytest.fixture(scope="session")
def hardware() -> dict:
    """This machine's hardware receipt, as every stored run carries it."""
    from machine.detect import detect_hardware

    return detect_hardware().to_dict()


@pytest.fixture(scope="session")
def smollm2_ref():
    from models.catalog import resolve_model

    return resolve_model("smollm2-135m")


@pytest.fixture(scope="session")
def llama_engine(smollm2_ref):
    """The bundled SmolLM2-135M loaded once on llama.cpp (2 threads, n_ctx 2048)."""
    from engines.base import LoadConfig
    from engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine()
    engine.load(smollm2_ref, LoadConfig(n_ctx=2048, n_threads=2))
    yield engine
    engine.unload()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 90.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


def run_app(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python app.py ARGS` in a subprocess; returns the completed process (stdout, stderr, returncode)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def served_app(log_path: Path, *args: str, env: dict | None = None) -> Iterator[str]:
    """The real app, `python app.py ARGS --port N` on a free loopback port, its output in `log_path`;
    yields its URL once it answers, and stops it on exit."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), *args, "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url, proc=proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def app_url(localbench_home) -> Iterator[str]:
    """The real app, served by `python app.py serve` on a free loopback port for the session."""
    with served_app(localbench_home / "app-server.log", "serve") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing — install Debian's chromium (make test does it with apt-get)")
    from playwright.sync_api import expect, sync_playwright

    # Assertions wait for the app, not for a fixed 5 s: a real model on 2 busy cores can take longer.
    expect.set_options(timeout=30_000)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url, request):
    """A fresh browser page on the app; a screenshot is saved to test-artifacts/<test>.png at the end."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(app_url)
    pg.wait_for_selector("gradio-app", state="attached")
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()


def open_tab(page, name: str) -> None:
    """Click the dashboard tab whose button reads `name`."""
    page.get_by_role("tab", name=name).click()


def sideways_scrollers(page, selector: str) -> list[str]:
    """Elements inside `selector` that scroll sideways (content wider than the box), as 'class: widths'."""
    return page.evaluate(
        """(sel) => [...document.querySelectorAll(sel + ' *')].filter(e => {
            const s = getComputedStyle(e);
            return (s.overflowX === 'auto' || s.overflowX === 'scroll') && e.scrollWidth > e.clientWidth + 2;
        }).map(e => `${e.className}: ${e.scrollWidth} > ${e.clientWidth}`)""",
        selector,
    )


LLAMA_SERVER_KEY = "localbench-test-key"
"""API key the session's llama_cpp.server requires (a wrong one gets a real HTTP 401)."""
LLAMA_SERVER_ARGS = "--model_alias smollm2 --n_ctx 2048 --n_threads 2 --interrupt_requests False --api_key".split()
LLAMA_SERVER_ARGS.append(LLAMA_SERVER_KEY)


@pytest.fixture(scope="session")
def fake_ollama(smollm2_ref):
    """The loopback Ollama test server (tests/fake_ollama.py) backed by llama.cpp on the bundled SmolLM2."""
    from tests.fake_ollama import FakeOllama

    server = FakeOllama(smollm2_ref.path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server(smollm2_ref, localbench_home) -> str:
    """llama.cpp's server (`python -m engines.llamacpp_server`: llama_cpp.server after the repack
    canary) serving the bundled GGUF (alias 'smollm2', n_ctx 2048, key
    LLAMA_SERVER_KEY) on a free loopback port for the session; yields its base URL (…/v1). Its stderr,
    with llama.cpp's per-request timings, goes to LOCALBENCH_HOME/llama-server.log."""
    port = free_port()
    log = open(localbench_home / "llama-server.log", "w")  # noqa: SIM115 - closed at teardown
    command = [sys.executable, "-m", "engines.llamacpp_server", "--model", smollm2_ref.path, "--port", str(port)]
    proc = subprocess.Popen(
        command + LLAMA_SERVER_ARGS,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/docs", proc=proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
