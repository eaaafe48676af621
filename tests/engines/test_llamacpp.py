"""The llama.cpp engine on the real bundled SmolLM2-135M: streaming, statistics, metadata, bad input."""

from __future__ import annotations

import shutil
import threading

import pytest

from core.errors import BadParameter, InvalidModelFile, ModelNotFound, PromptTooLong
from engines.base import GenerationParams, LoadConfig
from engines.llamacpp import LlamaCppEngine, generated_tokens, perf_counters, stats_from_counters
from models.gguf import read_gguf
from models.ref import ModelRef


def test_gguf_metadata_of_bundled_model(smollm2_ref):
    meta = read_gguf(smollm2_ref.path)
    assert (meta.arch, meta.file_type) == ("llama", "Q4_1")
    assert meta.n_params == 134_515_008
    assert (meta.n_layers, meta.n_heads, meta.n_kv_heads, meta.head_dim) == (30, 9, 3, 64)
    assert meta.context_length == 8192 and meta.vocab_size == 49152
    assert meta.chat_template and "im_start" in meta.chat_template
    assert 5.5 < meta.bits_per_weight < 6.0  # Q4_1 plus f32/q8 fallbacks on a 576-wide model
    assert meta.kv_bytes_per_token_f16 == 2 * 30 * 3 * 64 * 2


def test_stream_yields_text_then_final_stats(llama_engine):
    chunks = list(llama_engine.stream("Hello! Who are you?", GenerationParams(max_tokens=16)))
    final = chunks[-1]
    assert final.stats is not None and all(c.stats is None for c in chunks[:-1])
    text = "".join(c.text for c in chunks)
    assert text.strip()
    s = final.stats
    assert s.prompt_tokens > 5 and s.prompt_tps > 0
    assert 1 <= s.gen_tokens <= 16 and s.gen_tps > 0
    assert 0 < s.ttft_s <= s.wall_s
    assert s.peak_rss_bytes > 50 * 2**20
    assert s.stop_reason in ("stop", "length")
    assert s.source.startswith("llama.cpp perf counters")
    # times are consistent with the rates they imply
    assert s.gen_tps == pytest.approx(max(s.gen_tokens - (s.stop_reason != "stop"), 1) / s.gen_s, rel=0.35)


def test_greedy_is_deterministic_and_length_is_forced(llama_engine):
    params = GenerationParams(max_tokens=12, ignore_eos=True)
    a, sa = llama_engine.generate("The capital of France is", params)
    b, sb = llama_engine.generate("The capital of France is", params)
    assert a == b
    assert sa.gen_tokens == sb.gen_tokens == 12 and sa.stop_reason == "length"


def test_token_prompt_counts_exactly(llama_engine):
    prompt = llama_engine.synthetic_prompt(64, seed=3)
    assert len(prompt) == 64
    _, stats = llama_engine.generate(prompt, GenerationParams(max_tokens=4, ignore_eos=True))
    assert stats.prompt_tokens == 64 and stats.gen_tokens == 4


def test_cancel_stops_generation(llama_engine):
    cancel = threading.Event()
    n = 0
    for chunk in llama_engine.stream(
        "Count from one to one hundred:", GenerationParams(max_tokens=200, ignore_eos=True), cancel
    ):
        if chunk.stats is not None:
            stats = chunk.stats
            break
        n += 1
        if n == 3:
            cancel.set()
    assert stats.stop_reason == "cancelled"
    assert stats.gen_tokens < 10


def test_counter_conversion_is_pure():
    class Timer:
        ttft_s, peak_rss, gaps = 0.01, 1000, [0.005]

        def elapsed(self):
            return 0.5

    counters = {"t_p_eval_ms": 100.0, "t_eval_ms": 250.0, "n_p_eval": 50, "n_eval": 25}
    s = stats_from_counters(counters, Timer(), generated_tokens(counters, "length"), "length")
    assert (s.prompt_s, s.prompt_tps, s.gen_s, s.gen_tps) == (0.1, 500.0, 0.25, 100.0)
    assert s.gen_tokens == 26
    assert generated_tokens(counters, "stop") == 25
    # llama.cpp reports n_eval >= 1 even when nothing was decoded
    assert generated_tokens({"t_eval_ms": 0.0, "n_eval": 1}, "length") == 1


def test_prompt_longer_than_context_is_refused(smollm2_ref):
    engine = LlamaCppEngine()
    engine.load(smollm2_ref, LoadConfig(n_ctx=64, n_threads=2))
    with pytest.raises(PromptTooLong, match="context window is 64"):
        list(engine.stream("word " * 200, GenerationParams(max_tokens=8)))
    engine.unload()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (GenerationParams(max_tokens=0), "max tokens must be a positive integer"),
        (GenerationParams(max_tokens=-5), "max tokens must be a positive integer"),
        (GenerationParams(temperature=-1), "temperature"),
    ],
)
def test_absurd_generation_params(llama_engine, params, message):
    with pytest.raises(BadParameter, match=message):
        list(llama_engine.stream("hi", params))


def test_empty_prompt(llama_engine):
    with pytest.raises(BadParameter, match="empty"):
        list(llama_engine.stream("   ", GenerationParams()))


@pytest.mark.parametrize("n_ctx", [0, -1, 10**9])
def test_absurd_n_ctx(smollm2_ref, n_ctx):
    with pytest.raises(BadParameter, match="n_ctx"):
        LlamaCppEngine().load(smollm2_ref, LoadConfig(n_ctx=n_ctx))


def test_n_ctx_above_training_context(smollm2_ref):
    with pytest.raises(BadParameter, match="training context of 8192"):
        LlamaCppEngine().load(smollm2_ref, LoadConfig(n_ctx=16384))


def test_missing_not_gguf_and_truncated_files(tmp_path, smollm2_ref):
    engine = LlamaCppEngine()
    with pytest.raises(ModelNotFound, match="not found"):
        engine.load(ModelRef("x", str(tmp_path / "missing.gguf"), "gguf"), LoadConfig())
    text = tmp_path / "notes.gguf"
    text.write_text("this is not a model")
    with pytest.raises(InvalidModelFile, match="not a GGUF file"):
        engine.load(ModelRef("x", str(text), "gguf"), LoadConfig())
    truncated = tmp_path / "truncated.gguf"
    with open(smollm2_ref.path, "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read(20 * 2**20))
    with pytest.raises(InvalidModelFile, match="truncated"):
        engine.load(ModelRef("x", str(truncated), "gguf"), LoadConfig())
    header_only = tmp_path / "header.gguf"
    shutil.copyfile(smollm2_ref.path, header_only)
    with open(header_only, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(InvalidModelFile):
        engine.load(ModelRef("x", str(header_only), "gguf"), LoadConfig())


def test_perf_counters_reset_per_request(llama_engine):
    llama_engine.generate("one two three", GenerationParams(max_tokens=3))
    first = perf_counters(llama_engine._llm.ctx)
    llama_engine.generate("one two three", GenerationParams(max_tokens=3))
    second = perf_counters(llama_engine._llm.ctx)
    # the same prompt is processed again in full (no prefix reuse), and counters do not accumulate
    assert second["n_p_eval"] == first["n_p_eval"] > 3
