"""The OpenAI-compatible engine against real servers on loopback: `python -m llama_cpp.server` on the
bundled GGUF (session fixture `llama_server`) and mlx_lm.server on the MLX conversion of the same
model. Faults a real server will not produce on demand (dying mid-stream, a malformed SSE line, HTTP
500, silence) come from `FaultProxy`, a loopback proxy in front of the real llama_cpp.server that
relays its stream and breaks it. In "timings" mode the proxy adds, before [DONE], the llama.cpp
`timings` block that llama.cpp's own server sends, built from the real server's printed perf
counters for that request, so the engine's use of server timings is tested on real numbers."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.errors import BadParameter, ModelNotFound, ServerError
from engines.base import GenerationParams, LoadConfig
from engines.openai_compat import (
    OpenAIEngine,
    iter_sse_data,
    list_served_models,
    normalize_base_url,
    server_status,
)
from engines.server_stats import timings_from_perf_log
from tests.conftest import LLAMA_SERVER_KEY, ROOT, free_port, wait_http

CHAT = [{"role": "user", "content": "Name three colours."}]


def config_for(base_url: str, key: str | None = LLAMA_SERVER_KEY, **options) -> LoadConfig:
    opts = [("base_url", base_url), *options.items()]
    if key:
        opts.append(("api_key", key))
    return LoadConfig(n_ctx=2048, options=tuple(opts))


class FaultProxy:
    """Relays requests to a real OpenAI-compatible server and breaks replies on demand."""

    def __init__(self, upstream: str, server_log=None) -> None:
        self.upstream = upstream.rstrip("/")
        self.server_log = server_log
        self.mode: str | None = None
        self.after = 2
        self.slow_s = 2.0
        self.stall_s = 30.0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy.relay(self, None)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                proxy.relay(self, self.rfile.read(n))

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self.server = Quiet(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def relay(self, h: BaseHTTPRequestHandler, body: bytes | None) -> None:
        import httpx

        mode = self.mode
        if mode == "slow":
            time.sleep(self.slow_s)
        if mode == "http500" and body is not None:
            data = json.dumps({"error": {"message": "CUDA error: out of memory", "type": "server_error"}}).encode()
            h.send_response(500)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        path = h.path
        n_blocks = len(self.perf_blocks()) if mode == "timings" else 0
        headers = {k: v for k, v in h.headers.items() if k.lower() in ("authorization", "content-type")}
        with (
            httpx.Client(timeout=120) as client,
            client.stream("GET" if body is None else "POST", self.upstream + path, content=body, headers=headers) as r,
        ):
            h.send_response(r.status_code)
            h.send_header("Content-Type", r.headers.get("content-type", "application/json"))
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()

            def chunk(data: bytes) -> None:
                h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                h.wfile.flush()

            sent = 0
            for line in r.iter_lines():
                if line.startswith("data: {") and ('"content"' in line or '"text"' in line):
                    if mode == "die" and sent >= self.after:
                        h.close_connection = True
                        with contextlib.suppress(OSError):
                            h.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if mode == "stall" and sent >= self.after:  # then only SSE keep-alive comments, bounded
                        end = time.monotonic() + self.stall_s
                        with contextlib.suppress(OSError):
                            while time.monotonic() < end:
                                chunk(b": keep-alive\n\n")
                                time.sleep(0.2)
                        h.close_connection = True
                        return
                    if mode == "malformed" and sent >= self.after:
                        chunk(b'data: {"id": "chatcmpl-1", "choices": [{"delta": {"content": "x\n\n')
                        break
                    sent += 1
                if mode == "timings" and line.strip() == "data: [DONE]":
                    block = self.timings_after(n_blocks)
                    chunk(f"data: {json.dumps({'choices': [], 'timings': block})}\n\n".encode())
                chunk(line.encode() + b"\n")
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()

    def perf_blocks(self) -> list[dict]:
        return timings_from_perf_log(self.server_log.read_text(errors="replace"))

    def timings_after(self, n_before: int) -> dict:
        """The server's printed perf block for the request that just finished, as llama.cpp's `timings`."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            blocks = self.perf_blocks()
            if len(blocks) > n_before:
                return blocks[n_before]
            time.sleep(0.05)
        raise AssertionError("the server printed no timings for the request")


@pytest.fixture(scope="module")
def proxy(llama_server, localbench_home):
    p = FaultProxy(llama_server.removesuffix("/v1"), localbench_home / "llama-server.log")
    yield p
    p.stop()


@pytest.fixture(scope="module")
def engine(llama_server):
    e = OpenAIEngine()
    e.load(e.resolve("smollm2"), config_for(llama_server))
    yield e
    e.unload()


@pytest.fixture
def broken(proxy):
    """An engine talking through the proxy; the proxy's mode is reset afterwards."""
    e = OpenAIEngine()
    e.load(e.resolve("smollm2"), config_for(proxy.url, idle_timeout_s=1.0))
    yield proxy, e
    proxy.mode = None
    e.unload()


def test_base_url_normalisation(monkeypatch):
    assert normalize_base_url("localhost:8000") == "http://localhost:8000/v1"
    assert normalize_base_url("http://h:1234/") == "http://h:1234/v1"
    assert normalize_base_url("https://api.example.com/v1") == "https://api.example.com/v1"
    assert normalize_base_url("http://h/api/v1") == "http://h/api/v1"
    with pytest.raises(BadParameter):
        normalize_base_url("ftp://x")


def test_sse_parsing_skips_comments_and_events():
    lines = [": ping", "event: message", 'data: {"a": 1}', "", "data:[DONE]", "id: 3"]
    assert list(iter_sse_data(lines)) == ['{"a": 1}', "[DONE]"]


def test_models_and_status(llama_server):
    assert [m.id for m in list_served_models(llama_server, LLAMA_SERVER_KEY)] == ["smollm2"]
    status = server_status(llama_server, LLAMA_SERVER_KEY)
    assert status.server == "uvicorn" and status.latency_ms > 0
    assert OpenAIEngine().list_models(config_for(llama_server)) == ["smollm2"]
    assert OpenAIEngine().resolve("any/model").format == "remote"


def test_chat_streams_and_times_on_the_client_clock(engine):
    chunks = list(engine.stream(CHAT, GenerationParams(max_tokens=12, seed=1)))
    stats = chunks[-1].stats
    text_chunks = [c for c in chunks if c.text]
    assert "".join(c.text for c in text_chunks).strip()
    assert stats.gen_tokens == len(text_chunks) and stats.stop_reason in ("length", "stop")
    assert 0 < stats.ttft_s < stats.wall_s and len(stats.itl_s) == len(text_chunks) - 1
    # llama_cpp.server streams no usage and no timings: the client clock is the source, and it says so
    assert stats.source.startswith("client clock (tokens: streamed chunks, the server sent no usage")
    assert stats.gen_tps == pytest.approx((stats.gen_tokens - 1) / (stats.wall_s - stats.ttft_s))


def test_text_prompt_counts_tokens_and_forces_the_length(engine):
    prompt = engine.synthetic_prompt(48, seed=2)
    _, stats = engine.generate(prompt, GenerationParams(max_tokens=10, ignore_eos=True))
    assert stats.gen_tokens == 10 and stats.stop_reason == "length"
    assert 48 <= stats.prompt_tokens <= 52  # counted by the server's tokenizer (plus BOS)
    assert stats.prompt_tps > 0


def test_server_timings_are_used_and_shown_beside_the_client_clock(broken, localbench_home):
    proxy, _ = broken
    proxy.mode = "timings"
    # The proxy waits (up to 5 s) for the server's perf block before it sends [DONE]: not the 1 s read
    # timeout that `broken` uses to test a slow server.
    e = OpenAIEngine()
    e.load(e.resolve("smollm2"), config_for(proxy.url, idle_timeout_s=60.0))
    _, stats = e.generate(e.synthetic_prompt(40, seed=5), GenerationParams(max_tokens=8, ignore_eos=True))
    block = timings_from_perf_log((localbench_home / "llama-server.log").read_text(errors="replace"))[-1]
    assert stats.source.startswith("server timings (llama.cpp `timings`, ms); client clock: TTFT")
    assert stats.prompt_tokens == block["prompt_n"] and stats.gen_tokens == block["predicted_n"]
    assert stats.gen_s == pytest.approx(block["predicted_ms"] / 1e3)
    assert stats.prompt_s == pytest.approx(block["prompt_ms"] / 1e3)


def test_unknown_model_lists_what_is_served(llama_server):
    e = OpenAIEngine()
    with pytest.raises(ModelNotFound, match=r"model 'gpt-9' is not served by .* — it serves: smollm2"):
        e.load(e.resolve("gpt-9"), config_for(llama_server))


def test_wrong_api_key_is_a_clear_401(llama_server):
    e = OpenAIEngine()
    with pytest.raises(ServerError, match=r"rejected the API key \(HTTP 401: Invalid API key\) — set the right key"):
        e.load(e.resolve("smollm2"), config_for(llama_server, key="wrong"))
    with pytest.raises(ServerError, match="HTTP 401"):
        list_served_models(llama_server, None)


def test_server_not_running():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServerError) as err:
        OpenAIEngine().list_models(config_for(url))
    assert str(err.value).startswith(f"No OpenAI-compatible server is reachable at {url} — start one")


def test_wrong_path_is_a_clear_404(llama_server):
    root = llama_server.removesuffix("/v1")
    with pytest.raises(ServerError, match="has no such endpoint .* usually ends in /v1"):
        list_served_models(f"{root}/api", LLAMA_SERVER_KEY)


def test_dies_mid_stream(broken):
    proxy, e = broken
    proxy.mode, proxy.after = "die", 2
    chunks = []
    with pytest.raises(ServerError, match=r"closed the connection mid-reply after 2 chunks"):
        for chunk in e.stream(CHAT, GenerationParams(max_tokens=16)):
            chunks.append(chunk)
    assert len(chunks) == 2 and all(c.stats is None for c in chunks)


def test_malformed_sse_line(broken):
    proxy, e = broken
    proxy.mode, proxy.after = "malformed", 1
    with pytest.raises(ServerError, match="sent a malformed SSE line after 1 chunks"):
        e.generate(CHAT, GenerationParams(max_tokens=16))


def test_http_500(broken):
    proxy, e = broken
    proxy.mode = "http500"
    with pytest.raises(ServerError, match="answered HTTP 500: CUDA error: out of memory — check the server's log"):
        e.generate(CHAT, GenerationParams(max_tokens=8))


def test_too_slow(broken):
    proxy, e = broken
    proxy.mode, proxy.slow_s = "slow", 2.5
    with pytest.raises(
        ServerError,
        match=r"sent nothing for 1 s .* --timeout SECONDS \(in the dashboard: the Servers tab.s Timeout field\)",
    ):
        e.generate(CHAT, GenerationParams(max_tokens=4))


# ---------------------------------------------------------------------------------------------- mlx_lm.server


@pytest.fixture(scope="module")
def mlx_server(localbench_home):
    """mlx_lm.server serving the MLX (bf16) conversion of the bundled SmolLM2 made by models.convert (cached in
    the session's LOCALBENCH_HOME, so the MLX engine tests and this one convert once)."""
    from models.convert import convert

    ref = convert("smollm2-135m", "mlx-bf16", progress=lambda fraction, message: None)
    port = free_port()
    # mlx_lm.server's /v1/models scans the Hugging Face cache and fails when that folder is missing
    hf_cache = localbench_home / "hf-hub-cache"
    hf_cache.mkdir(exist_ok=True)
    log = open(localbench_home / "mlx-server.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlx_lm", "server", "--model", ref.path, "--port", str(port), "--max-tokens", "64"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_CACHE": str(hf_cache)},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout_s=120, proc=proc)
        yield f"http://127.0.0.1:{port}/v1", ref.path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_mlx_lm_server_streams_with_usage(mlx_server):
    url, model = mlx_server
    served = [m.id for m in list_served_models(url)]
    name = model if model in served else served[0]
    e = OpenAIEngine()
    e.load(e.resolve(name), config_for(url, key=None))
    _, stats = e.generate(CHAT, GenerationParams(max_tokens=8))
    assert stats.gen_tokens > 0 and 0 < stats.ttft_s < stats.wall_s
    assert stats.source.startswith("client clock") and stats.prompt_tokens > 5, stats.source
    e.unload()
