"""The MLX engine for real with mlx[cpu]: the bundled SmolLM2 converted by our own code (GGUF → HF → MLX
bf16 / 8-bit / 4-bit), generation through mlx_lm.stream_generate, statistics that are mlx-lm's own
GenerationResponse figures (checked against the responses mlx-lm yielded in the same run), logits,
the memory limit, `python app.py bench --engine mlx`, bad input. MLX's quantized CPU kernels run at
~1 t/s here, so quantized generations stay at a few tokens. The Metal path is behind a marker.
"""

from __future__ import annotations

import importlib
import io
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from app import main
from core.errors import BadParameter, EngineUnavailable, InsufficientMemory
from engines.base import GenerationParams, LoadConfig, StreamTimer
from engines.memory_check import is_oom
from engines.mlx import MlxEngine, as_localbench_error, response_stats
from tests.engines.converted import hf_ref, mlx_engine, mlx_refs, torch_engine  # noqa: F401  (session fixtures)

CPU = LoadConfig(n_ctx=512, n_threads=2, device="cpu")


def test_load_info(mlx_engine):  # noqa: F811
    info = mlx_engine.info()
    assert (info.engine, info.format, info.arch, info.device, info.backend, info.file_type) == (
        "mlx",
        "mlx",
        "llama",
        "cpu",
        "CPU",
        "bf16",
    )
    assert info.name == "smollm2-135m@mlx-bf16" and info.n_params == 134_515_008
    assert 2 * 134e6 < info.model_size_bytes < 2 * 136e6 and info.chat_template
    assert dict(info.versions).keys() == {"mlx", "mlx-lm"}


def test_reported_figures_are_mlx_lms_own(mlx_engine, monkeypatch):  # noqa: F811
    """Fidelity: our t/s equals the GenerationResponse that mlx-lm yielded in the same run (≤ 3 %)."""
    module = importlib.import_module("mlx_lm.generate")
    real, seen = module.stream_generate, []

    def spy(*args, **kwargs):
        for response in real(*args, **kwargs):
            seen.append(response)
            yield response

    monkeypatch.setattr(module, "stream_generate", spy)
    prompt = mlx_engine.synthetic_prompt(8, seed=1)
    _, stats = mlx_engine.generate(prompt, GenerationParams(max_tokens=8, ignore_eos=True))
    last = seen[-1]
    assert last.finish_reason == "length" and len(seen) == 8
    assert stats.gen_tps == pytest.approx(last.generation_tps, rel=0.03)
    assert stats.prompt_tps == pytest.approx(last.prompt_tps, rel=0.03)
    assert (stats.gen_tokens, stats.prompt_tokens) == (last.generation_tokens, last.prompt_tokens) == (8, 8)
    assert stats.peak_device_bytes == int(last.peak_memory * 1e9) > 200e6
    assert stats.peak_rss_bytes > stats.peak_device_bytes  # the OS figure beside mx.get_peak_memory
    assert 0 < stats.ttft_s < stats.wall_s and len(stats.itl_s) == 7
    assert "GenerationResponse" in stats.source


def test_response_stats_is_a_pure_conversion():
    timer = StreamTimer()
    response = SimpleNamespace(
        prompt_tokens=100, prompt_tps=400.0, generation_tokens=50, generation_tps=25.0, peak_memory=1.5
    )
    stats = response_stats(response, timer, "length")
    assert (stats.prompt_s, stats.gen_s) == (0.25, 2.0)  # derived: tokens / t/s
    assert (stats.prompt_tps, stats.gen_tps, stats.peak_device_bytes) == (400.0, 25.0, 1_500_000_000)


def test_chat_stop_and_cancel(mlx_engine):  # noqa: F811
    text, stats = mlx_engine.generate(
        [{"role": "user", "content": "What is the capital of France?"}], GenerationParams(max_tokens=8)
    )
    assert "Paris" in text and stats.stop_reason in ("stop", "length")
    text, stats = mlx_engine.generate("What is the capital of France?", GenerationParams(max_tokens=8, stop=("Paris",)))
    assert "Paris" not in text and stats.stop_reason == "stop"
    cancel = threading.Event()
    parts = []
    for chunk in mlx_engine.stream("Count from one to fifty.", GenerationParams(max_tokens=16), cancel):
        parts.append(chunk)
        cancel.set()
    assert parts[-1].stats.stop_reason == "cancelled" and parts[-1].stats.gen_tokens < 16


def test_a_stream_stopped_on_another_thread_closes_quietly(mlx_engine):  # noqa: F811
    """Started on one thread, left midway and closed on another (a thread pool resuming a stream):
    MLX's StreamContext check must not surface as an error."""
    stream = mlx_engine.stream("Count from one to fifty.", GenerationParams(max_tokens=32))
    first, errors = [], []

    def run(step) -> None:
        try:
            step()
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    for step in (lambda: first.append(next(stream)), stream.close):
        thread = threading.Thread(target=run, args=(step,))
        thread.start()
        thread.join()
    assert first and first[0].text and errors == []
    text, stats = mlx_engine.generate("What is the capital of France?", GenerationParams(max_tokens=8))
    assert "Paris" in text and stats.gen_tokens > 0  # the engine serves on after it


def test_logits_agree_with_torch(mlx_engine, torch_engine):  # noqa: F811
    """Same weights, same tokens: MLX bf16 and torch bf16 predict alike over 128 tokens of real text.

    (Before legacy_rope_keys, mlx-lm read SmolLM2's transformers-5 config with RoPE base 10000 instead of
    100000: mean KL 0.13 and 79 % same top-1 on the lab's text. Now ≈ 0.001 and ≈ 95 %.)
    """
    from bench.quant import quality

    text = "The capital of France is Paris, and the capital of Germany is Berlin."
    assert mlx_engine.tokenize(text) == torch_engine.tokenize(text)
    tokens = [1, *torch_engine.tokenize(quality.default_eval_text())[:127]]
    ours, theirs = mlx_engine.logits(tokens), torch_engine.logits(tokens)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (128, 49152)
    log_p = theirs - np.logaddexp.reduce(theirs, axis=-1, keepdims=True)
    log_q = ours - np.logaddexp.reduce(ours, axis=-1, keepdims=True)
    kld = float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))
    assert kld < 0.01, f"mean KL(torch || mlx) = {kld:.4f}"
    assert float(np.mean(ours.argmax(-1) == theirs.argmax(-1))) >= 0.9


def test_quantized_variants_run(mlx_refs, mlx_engine):  # noqa: F811
    """4-bit and 8-bit load and predict like bf16 (a few tokens: MLX's quantized CPU kernels are slow)."""
    tokens = [1, *mlx_engine.tokenize("The capital of France is")]
    reference = mlx_engine.logits(tokens).argmax(-1)
    for key, bits in (("mlx-8bit", "8bit"), ("mlx-4bit", "4bit")):
        engine = MlxEngine()
        try:
            info = engine.load(mlx_refs[key], CPU)
            assert info.file_type == bits and info.dtype == f"{bits} g64"
            predicted = engine.logits(tokens).argmax(-1)
            assert predicted[-1] == reference[-1] == engine.tokenize(" Paris")[0]
            if key == "mlx-8bit":  # 4-bit of a 135 M model moves the low-confidence positions
                assert np.mean(predicted == reference) >= 0.8
            if key == "mlx-4bit":
                _, stats = engine.generate(tokens[:3], GenerationParams(max_tokens=2, ignore_eos=True))
                assert stats.gen_tokens == 2 and stats.gen_tps > 0
        finally:
            engine.unload()


def test_memory_limit(mlx_refs):  # noqa: F811
    import mlx.core as mx

    with pytest.raises(InsufficientMemory, match=r"needs about \d+ MiB .* MLX memory limit you set is 100 MiB"):
        MlxEngine().load(mlx_refs["mlx-bf16"], LoadConfig(n_ctx=512, device="cpu", memory_limit_bytes=100 * 2**20))
    before = mx.get_memory_limit()
    engine = MlxEngine()
    engine.load(mlx_refs["mlx-4bit"], LoadConfig(n_ctx=512, device="cpu", memory_limit_bytes=2**30))
    try:
        assert mx.get_memory_limit() == 2**30
    finally:
        engine.unload()
    assert mx.get_memory_limit() == before


def test_bad_device_dtype_and_names(mlx_refs):  # noqa: F811
    with pytest.raises(EngineUnavailable, match="device 'metal' is not present.*Metal exists only on Apple Silicon"):
        MlxEngine().load(mlx_refs["mlx-bf16"], LoadConfig(n_ctx=512, device="metal"))
    with pytest.raises(BadParameter, match="MLX models carry their own precision"):
        MlxEngine().load(mlx_refs["mlx-bf16"], LoadConfig(n_ctx=512, dtype="fp16"))
    with pytest.raises(BadParameter, match="for the torch engine — choose --engine torch"):
        MlxEngine().resolve("smollm2-135m@hf-bf16")
    with pytest.raises(BadParameter, match="exceeds smollm2-135m@mlx-bf16's training context of 8192"):
        MlxEngine().load(mlx_refs["mlx-bf16"], LoadConfig(n_ctx=16384, device="cpu"))


def test_plain_name_converts_to_the_device_default(mlx_refs):  # noqa: F811
    # this machine runs MLX on the CPU, where bf16 is ~7x faster than MLX's quantized CPU kernels
    assert MlxEngine.default_variant() == "mlx-bf16"
    assert MlxEngine().resolve("smollm2-135m") == mlx_refs["mlx-bf16"]


def test_bench_command(mlx_refs, capsys):  # noqa: F811
    import pandas as pd

    status = main(["bench", "--engine", "mlx", "--model", "smollm2-135m", "-p", "8", "-n", "4", "-r", "1", "-o", "csv"])
    out = capsys.readouterr()
    assert status == 0, out.err
    frame = pd.read_csv(io.StringIO(out.out))
    assert list(frame["test"]) == ["pp8", "tg4"] and set(frame["engine"]) == {"mlx"}
    assert set(frame["model"]) == {"smollm2-135m@mlx-bf16"} and set(frame["backends"]) == {"CPU"}
    assert (frame["avg_ts"] > 0).all() and frame["timing_source"].str.contains("GenerationResponse").all()


def test_oom_errors_are_recognised():
    metal = RuntimeError("[metal::malloc] Attempting to allocate 137438953472 bytes which is greater than the maximum")
    assert is_oom(metal) and isinstance(as_localbench_error(metal, "generating"), InsufficientMemory)
    assert is_oom(MemoryError()) and not is_oom(RuntimeError("[matmul] shapes do not match"))


def _metal() -> bool:
    import mlx.core as mx

    return bool(getattr(mx, "metal", None) and mx.metal.is_available())


@pytest.mark.metal
@pytest.mark.skipif(not _metal(), reason="needs Apple Metal")
def test_metal(mlx_refs):  # noqa: F811
    engine = MlxEngine()
    info = engine.load(mlx_refs["mlx-4bit"], LoadConfig(n_ctx=512, device="metal"))
    try:
        assert info.backend == "Metal"
        _, stats = engine.generate("Hello", GenerationParams(max_tokens=16, ignore_eos=True))
        assert stats.gen_tokens == 16 and stats.gen_tps > 0 and stats.peak_device_bytes > 0
    finally:
        engine.unload()
