"""The Ollama engine against the loopback Ollama test server (tests/fake_ollama.py), which runs the real
llama.cpp engine on the bundled SmolLM2: listing, show, ps, chat and generate streams with their
statistics, options, keep_alive, pull progress, embeddings, every fault, and the CLI storing a cut
reply as a failed run."""

from __future__ import annotations

import math

import pytest

from core.errors import BadParameter, ModelNotFound, ServerError
from engines.base import GenerationParams, LoadConfig
from engines.ollama import (
    OllamaEngine,
    embed,
    list_ollama_models,
    loaded_models,
    normalize_host,
    ollama_host,
    plan_info,
    pull_model,
    server_status,
    unload_model,
)
from tests.conftest import free_port, run_app

MODEL = "smollm2:135m"
CHAT = [{"role": "user", "content": "Name three colours."}]


def config_for(url: str, **options) -> LoadConfig:
    return LoadConfig(n_ctx=2048, n_threads=2, options=(("host", url), *options.items()))


@pytest.fixture(scope="module")
def ollama(fake_ollama):
    """One engine loaded through the fake server for the module."""
    engine = OllamaEngine()
    engine.load(engine.resolve(MODEL), config_for(fake_ollama.url))
    yield engine
    engine.unload()


@pytest.fixture
def fault(fake_ollama):
    """Switch a fault on for one test; always switched off afterwards."""
    yield fake_ollama.set_fault
    fake_ollama.clear_fault()


def test_host_resolution(monkeypatch):
    assert normalize_host("localhost") == "http://localhost:11434"
    assert normalize_host("10.0.0.5:8080/") == "http://10.0.0.5:8080"
    assert normalize_host("https://ollama.example.com") == "https://ollama.example.com"
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9999")
    assert ollama_host() == "http://127.0.0.1:9999"
    assert ollama_host(LoadConfig(options=(("host", "http://h:1"),))) == "http://h:1"
    monkeypatch.delenv("OLLAMA_HOST")
    assert ollama_host() == "http://127.0.0.1:11434"
    with pytest.raises(BadParameter, match="not an Ollama host URL"):
        normalize_host("ftp://x")


def test_resolve_does_not_touch_the_catalog():
    ref = OllamaEngine().resolve("llama3.2:1b")
    assert (ref.name, ref.path, ref.format) == ("llama3.2:1b", None, "remote")
    with pytest.raises(BadParameter):
        OllamaEngine().resolve("  ")


def test_status_lists_models_with_details(fake_ollama, smollm2_ref):
    status = server_status(fake_ollama.url)
    assert status.version == "0.6.3-localbench-fake"
    model = next(m for m in status.models if m.name == MODEL)
    assert (model.family, model.quantization_level, model.format) == ("llama", "Q4_1", "gguf")
    assert model.parameter_size == "134.52M"
    import os

    assert model.size_bytes == os.path.getsize(smollm2_ref.path)
    names = OllamaEngine().list_models(config_for(fake_ollama.url))
    assert MODEL in names and names == [m.name for m in list_ollama_models(fake_ollama.url)]


def test_show_gives_the_shape_the_memory_planner_needs(fake_ollama, smollm2_ref):
    from models.gguf import read_gguf

    meta = read_gguf(smollm2_ref.path)
    info = plan_info(MODEL, fake_ollama.url)
    assert (info.n_layers, info.n_heads, info.n_kv_heads) == (meta.n_layers, meta.n_heads, meta.n_kv_heads)
    assert (info.context_length, info.head_dim, info.n_embd) == (meta.context_length, meta.head_dim, meta.n_embd)
    assert info.n_params == meta.n_params and info.arch == "llama" and info.file_type == "Q4_1"
    assert info.model_size_bytes == meta.file_size_bytes and info.chat_template


def test_load_reports_info_and_ps_shows_the_model(ollama, fake_ollama):
    info = ollama.info()
    assert info.engine == "ollama" and info.n_ctx == 2048 and info.load_s > 0
    assert dict(info.versions)["ollama server"] == "0.6.3-localbench-fake"
    loaded = {m.name: m for m in loaded_models(fake_ollama.url)}
    assert MODEL in loaded
    # the server's figure: weights plus an f16 KV cache for num_ctx 2048
    assert loaded[MODEL].size_bytes > info.model_size_bytes and loaded[MODEL].size_vram_bytes == 0
    assert loaded[MODEL].context_length == 2048


def test_chat_streams_with_stats_from_the_final_chunk(ollama, fake_ollama):
    chunks = list(ollama.stream(CHAT, GenerationParams(max_tokens=10, seed=3)))
    text = "".join(c.text for c in chunks)
    stats = chunks[-1].stats
    assert text.strip() and stats is not None and all(c.stats is None for c in chunks[:-1])
    n_text = sum(1 for c in chunks if c.text)
    assert stats.gen_tokens == 10 and stats.stop_reason == "length"
    assert stats.prompt_tokens > 10 and stats.prompt_s > 0 and stats.gen_s > 0
    assert stats.gen_tps == pytest.approx(stats.gen_tokens / stats.gen_s)
    assert 0 < stats.ttft_s < stats.wall_s and len(stats.itl_s) == n_text - 1
    assert stats.source.startswith("Ollama final chunk (ns durations)")
    path, body = fake_ollama.requests[-1]
    assert path == "/api/chat" and body["stream"] is True
    assert body["options"] == {
        "num_ctx": 2048,
        "num_thread": 2,
        "num_gpu": 0,
        "seed": 3,
        "temperature": 0.0,
        "top_k": 40,
        "top_p": 1.0,
        "num_predict": 10,
    }


def test_synthetic_text_prompt_reports_actual_prompt_tokens(ollama, fake_ollama):
    prompt = ollama.synthetic_prompt(64, seed=1)
    assert isinstance(prompt, str)
    _, stats = ollama.generate(prompt, GenerationParams(max_tokens=4))
    assert fake_ollama.requests[-1][0] == "/api/generate"
    assert 64 <= stats.prompt_tokens <= 64 + 40  # the text plus the chat template around it
    with pytest.raises(BadParameter, match="not token ids"):
        list(ollama.stream([1, 2, 3], GenerationParams(max_tokens=4)))


def test_cancel_stops_the_stream(ollama):
    import threading

    cancel = threading.Event()
    chunks = []
    for chunk in ollama.stream(CHAT, GenerationParams(max_tokens=64), cancel):
        chunks.append(chunk)
        if len(chunks) == 2:
            cancel.set()
    assert chunks[-1].stats.stop_reason == "cancelled" and len(chunks) <= 4


def test_unload_after_sends_keep_alive_zero(fake_ollama):
    engine = OllamaEngine()
    engine.load(engine.resolve(MODEL), config_for(fake_ollama.url, unload_after=True, keep_alive="10m"))
    assert MODEL in {m.name for m in loaded_models(fake_ollama.url)}
    assert fake_ollama.requests[-1] == ("/api/chat", fake_ollama.requests[-1][1])  # the documented load call
    assert fake_ollama.requests[-1][1]["messages"] == [] and fake_ollama.requests[-1][1]["keep_alive"] == "10m"
    engine.unload()
    path, body = fake_ollama.requests[-1]
    assert path == "/api/generate" and body["model"] == MODEL and body["keep_alive"] == 0
    assert MODEL not in {m.name for m in loaded_models(fake_ollama.url)}


def test_pull_streams_progress_and_adds_the_model(fake_ollama):
    seen: list[tuple[float, str]] = []
    assert pull_model("smollm2:latest", fake_ollama.url, progress=lambda f, m: seen.append((f, m))) == "success"
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("MB" in m for _, m in seen) and any(m.startswith("verifying sha256") for _, m in seen)
    assert "smollm2:latest" in {m.name for m in list_ollama_models(fake_ollama.url)}
    with pytest.raises(ServerError, match="pull of nosuch:model .* failed: pull model manifest: file does not exist"):
        pull_model("nosuch:model", fake_ollama.url)


def test_embed_returns_normalised_vectors(fake_ollama):
    vectors, stats = embed(["the sky is blue", "grass is green"], MODEL, fake_ollama.url)
    assert len(vectors) == 2 and len(vectors[0]) == 576
    assert math.sqrt(sum(x * x for x in vectors[0])) == pytest.approx(1.0, abs=1e-3)
    assert stats.n_texts == 2 and stats.n_tokens > 4 and stats.seconds > 0
    with pytest.raises(BadParameter):
        embed([], MODEL, fake_ollama.url)


# ---------------------------------------------------------------------------------------------- faults


def test_server_not_running_says_how_to_start_it():
    url = f"http://127.0.0.1:{free_port()}"
    message = f"Ollama is not reachable at {url} — start it with `ollama serve` or set OLLAMA_HOST"
    with pytest.raises(ServerError) as err:
        OllamaEngine().list_models(config_for(url))
    assert str(err.value) == message
    engine = OllamaEngine()
    with pytest.raises(ServerError, match="not reachable"):
        engine.load(engine.resolve(MODEL), config_for(url))


def test_unknown_model_is_a_404_with_a_pull_hint(fake_ollama, ollama):
    engine = OllamaEngine()
    with pytest.raises(
        ModelNotFound, match=r"model 'nosuch:7b' is not on the Ollama server .* `ollama pull nosuch:7b`"
    ):
        engine.load(engine.resolve("nosuch:7b"), config_for(fake_ollama.url))
    with pytest.raises(ModelNotFound):
        plan_info("nosuch:7b", fake_ollama.url)
    with pytest.raises(ModelNotFound):
        unload_model("nosuch:7b", fake_ollama.url)


def test_http_500(ollama, fault):
    fault("http500")
    with pytest.raises(ServerError, match="answered HTTP 500: llama runner process has terminated"):
        ollama.generate(CHAT, GenerationParams(max_tokens=8))


def test_server_dies_mid_stream(ollama, fault):
    fault("die", after=2)
    chunks = []
    with pytest.raises(ServerError, match=r"closed the connection mid-reply after 2 chunks .* check its log"):
        for chunk in ollama.stream(CHAT, GenerationParams(max_tokens=16)):
            chunks.append(chunk)
    assert len(chunks) == 2 and all(c.stats is None for c in chunks)  # a partial reply carries no statistics


def test_malformed_ndjson_line(ollama, fault):
    fault("malformed", after=1)
    with pytest.raises(ServerError, match="malformed NDJSON line after 1 chunks"):
        ollama.generate(CHAT, GenerationParams(max_tokens=16))


def test_too_slow_times_out(fake_ollama, fault):
    engine = OllamaEngine()
    engine.load(engine.resolve(MODEL), config_for(fake_ollama.url, idle_timeout_s=0.5))
    fault("slow", slow_s=2.0)
    with pytest.raises(
        ServerError,
        match=r"sent nothing for 0.5 s .* --timeout SECONDS \(in the dashboard: the Servers tab.s Timeout field\)",
    ):
        engine.generate(CHAT, GenerationParams(max_tokens=4))


def test_wrong_api_key(fake_ollama, fault):
    fault("auth", api_key="right-key", paths=("/api/chat", "/api/generate", "/api/show", "/api/tags", "/api/ps"))
    engine = OllamaEngine()
    with pytest.raises(ServerError, match=r"refused the request \(HTTP 401: unauthorized\) — check the API key"):
        engine.load(engine.resolve(MODEL), config_for(fake_ollama.url, api_key="wrong-key"))
    with pytest.raises(ServerError, match="HTTP 401"):
        server_status(fake_ollama.url, "wrong-key")
    assert MODEL in {m.name for m in server_status(fake_ollama.url, "right-key").models}


def test_cli_bench_through_ollama_and_a_cut_reply_stored_as_failed(fake_ollama, fault):
    from bench.results.store import ResultStore

    common = ("bench", "--engine", "ollama", "--host", fake_ollama.url, "--model", MODEL, "-p", "16", "-n", "4")
    ok = run_app(*common, "-r", "2", "-t", "2", "--no-warmup", "-o", "csv")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.strip().splitlines()
    assert len(lines) == 3 and "ollama" in lines[1] and "Ollama final chunk" in lines[1]
    fault("die", after=1)
    cut = run_app(*common, "-r", "1", "-t", "2")
    assert cut.returncode == 2
    assert "closed the connection mid-reply" in cut.stderr.strip().splitlines()[-1]
    last = ResultStore().runs("speed")[0]
    assert last["status"] == "failed" and last["n_rows"] == 0 and "mid-reply" in last["error"]
