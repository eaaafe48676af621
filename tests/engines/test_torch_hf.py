"""The PyTorch engine for real on this CPU: the bundled SmolLM2 converted by our own code (GGUF → HF
bf16), streamed through transformers' generate in a worker thread, timed per token; logits for the
quantization lab; `python app.py bench --engine torch`; bad input (absent device, bad dtype, out of
memory). The CUDA and MPS paths are the same code on another device, behind markers.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading

import numpy as np
import pytest

from app import main
from core.errors import BadParameter, InsufficientMemory, PromptTooLong
from engines.base import GenerationParams, LoadConfig
from engines.memory_check import is_oom
from engines.torch_hf import Detokenizer, TorchEngine, as_localbench_error
from tests.conftest import ROOT, run_app
from tests.engines.converted import hf_ref, mlx_refs, torch_engine  # noqa: F401  (session fixtures)

TEXT = "The quick brown fox jumps over the lazy dog. Paris is the capital of France, and Berlin is"


def test_load_info(torch_engine):  # noqa: F811
    info = torch_engine.info()
    assert (info.engine, info.format, info.arch, info.device, info.backend, info.dtype) == (
        "torch",
        "hf",
        "llama",
        "cpu",
        "CPU",
        "bf16",
    )
    assert info.n_params == 134_515_008 and info.model_size_bytes == 2 * info.n_params
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.head_dim, info.vocab_size) == (30, 9, 3, 64, 49152)
    assert info.context_length == 8192 and info.chat_template
    assert torch_engine.device_reason == "cpu as requested; bf16 as requested."


def test_same_tokens_as_llamacpp(torch_engine, llama_engine):  # noqa: F811
    """The HF copy keeps the GGUF's vocabulary: the lab's token ids mean the same tokens everywhere."""
    assert torch_engine.tokenize(TEXT) == llama_engine.tokenize(TEXT)


def test_logits_agree_with_llamacpp(torch_engine, llama_engine):  # noqa: F811
    tokens = [1, *llama_engine.tokenize(TEXT)]
    ours = torch_engine.logits(tokens)
    theirs = llama_engine.logits(tokens)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (len(tokens), 49152)
    agree = float(np.mean(ours.argmax(-1) == theirs.argmax(-1)))
    assert agree >= 0.85, f"top-1 agreement with llama.cpp only {agree:.0%}"
    # chunked evaluation (KV cache between chunks) gives the same predictions as one pass
    import engines.torch_hf as mod

    old = mod.LOGITS_CHUNK
    mod.LOGITS_CHUNK = 7
    try:
        chunked = torch_engine.logits(tokens)
    finally:
        mod.LOGITS_CHUNK = old
    # In bf16 the two paths round differently (AMX, AVX-512 and NEON kernels each their own way), so a
    # near-tie can flip: require the same top-1 wherever one pass's margin exceeds bf16 rounding at the
    # logits' scale (4 ulp of the largest logit), and a divergence no larger than bf16 rounding itself.
    top2 = np.sort(ours, axis=-1)[:, -2:]
    ulp = 2.0 ** (np.floor(np.log2(np.abs(ours).max(axis=-1))) - 7)  # bf16 keeps 8 significant bits
    decided = (top2[:, 1] - top2[:, 0]) > 4 * ulp
    assert decided.sum() >= len(tokens) // 2, "too few clear predictions to compare"
    assert (chunked.argmax(-1) == ours.argmax(-1))[decided].all()
    # bf16 rounding (relative 2^-8 on logits of scale ~10) moves logits by ~0.05: KL ~ Var/2 ~ 1e-3 nats.
    log_p = ours - ours.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    log_q = chunked - chunked.max(-1, keepdims=True)
    log_q -= np.log(np.exp(log_q).sum(-1, keepdims=True))
    assert float((np.exp(log_p) * (log_p - log_q)).sum(-1).mean()) < 0.01
    with pytest.raises(PromptTooLong):
        torch_engine.logits([5] * 8193)
    with pytest.raises(BadParameter):
        torch_engine.logits([])


def test_stream_statistics(torch_engine):  # noqa: F811
    prompt = torch_engine.synthetic_prompt(12, seed=3)
    assert len(prompt) == 12 and all(isinstance(t, int) for t in prompt)
    chunks = list(torch_engine.stream(prompt, GenerationParams(max_tokens=16, ignore_eos=True)))
    stats = chunks[-1].stats
    assert stats is not None and all(c.stats is None for c in chunks[:-1])
    assert stats.gen_tokens == 16 and stats.prompt_tokens == 12 and stats.stop_reason == "length"
    assert 0 < stats.prompt_s <= stats.ttft_s < stats.wall_s
    assert stats.prompt_tps == pytest.approx(12 / stats.prompt_s)
    assert len(stats.itl_s) == 15 and stats.gen_s == pytest.approx(sum(stats.itl_s))
    assert stats.gen_tps == pytest.approx(15 / stats.gen_s)
    assert stats.peak_rss_bytes > 300e6 and stats.peak_device_bytes is None
    assert "per-token host times" in stats.source
    times = [c.t_s for c in chunks[:-1]]
    assert times == sorted(times) and times[0] >= stats.ttft_s - 1e-6


def test_chat_stop_and_cancel(torch_engine):  # noqa: F811
    text, stats = torch_engine.generate(
        [{"role": "user", "content": "What is the capital of France?"}], GenerationParams(max_tokens=16)
    )
    assert "Paris" in text and stats.stop_reason in ("stop", "length")
    text, stats = torch_engine.generate(
        "What is the capital of France?", GenerationParams(max_tokens=16, stop=("Paris",))
    )
    assert "Paris" not in text and stats.stop_reason == "stop"
    cancel = threading.Event()
    parts = []
    for chunk in torch_engine.stream("Count from one to fifty.", GenerationParams(max_tokens=16), cancel):
        parts.append(chunk)
        cancel.set()
    assert parts[-1].stats.stop_reason == "cancelled" and parts[-1].stats.gen_tokens < 16


def test_detokenizer_keeps_spaces_and_multibyte_characters(torch_engine):  # noqa: F811
    tok = torch_engine._tokenizer
    text = " naïve café — ünïcødé 東京"
    detok = Detokenizer(tok)
    pieces = [detok.add([t]) for t in tok.encode(text, add_special_tokens=False)]
    assert "".join(pieces) + detok.add([], final=True) == tok.decode(tok.encode(text, add_special_tokens=False))
    assert all("\ufffd" not in p for p in pieces)


def test_fp32(hf_ref):  # noqa: F811
    engine = TorchEngine()
    try:
        info = engine.load(hf_ref, LoadConfig(n_ctx=512, n_threads=1, device="cpu", dtype="fp32"))
        assert info.dtype == "fp32" and info.model_size_bytes == 4 * info.n_params
        _, stats = engine.generate("Hello", GenerationParams(max_tokens=4, ignore_eos=True))
        assert stats.gen_tokens == 4
        with pytest.raises(PromptTooLong):
            engine.generate(engine.synthetic_prompt(600), GenerationParams(max_tokens=4))
    finally:
        engine.unload()


def test_bench_command(hf_ref, capsys):  # noqa: F811
    import pandas as pd

    argv = "bench --engine torch --model smollm2-135m -p 16 -n 8 -r 2 -t 1 -o csv".split()
    status = main(argv)
    out = capsys.readouterr()
    assert status == 0, out.err
    frame = pd.read_csv(io.StringIO(out.out))
    assert list(frame["test"]) == ["pp16", "tg8"]
    assert set(frame["engine"]) == {"torch"} and set(frame["backends"]) == {"CPU"}
    assert set(frame["model"]) == {"smollm2-135m@hf-bf16"}
    assert (frame["avg_ts"] > 0).all() and frame["timing_source"].str.contains("decode loop").all()


def test_absent_device_and_bad_dtype(hf_ref):  # noqa: F811
    done = run_app("bench", "--engine", "torch", "--device", "mps", "-p", "8", "-n", "0", "-r", "1")
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: device 'mps' is not present") and "--device cpu" in last
    with pytest.raises(BadParameter, match="unsupported dtype 'int8' — choose one of fp32, fp16, bf16"):
        TorchEngine().load(hf_ref, LoadConfig(n_ctx=512, dtype="int8"))


def test_out_of_memory(hf_ref):  # noqa: F811
    # the load guard: weights × 1.2 against the memory limit
    with pytest.raises(InsufficientMemory, match=r"needs about \d+ MiB .* memory limit you set is 64 MiB"):
        TorchEngine().load(hf_ref, LoadConfig(n_ctx=512, device="cpu", memory_limit_bytes=64 * 2**20))
    # a real allocation failure in the middle of a computation, in a child process whose address space
    # is capped after loading (24 MiB of room; 200 tokens' float32 logits need 37.5 MiB): the engine
    # reports InsufficientMemory, and the process lives on. (200 tokens, not thousands: a bf16 forward
    # on one CPU thread runs ~30 tokens/s here.)
    script = f"""
import resource, psutil
from engines.base import LoadConfig
from core.errors import InsufficientMemory
from engines.torch_hf import TorchEngine
engine = TorchEngine()
engine.load(engine.resolve({hf_ref.name!r}), LoadConfig(n_ctx=512, n_threads=1, device="cpu", dtype="bf16"))
vms = psutil.Process().memory_info().vms
resource.setrlimit(resource.RLIMIT_AS, (vms + 24 * 2**20, resource.RLIM_INFINITY))
try:
    engine.logits(list(range(100, 300)))
    print("no error")
except InsufficientMemory as err:
    print("InsufficientMemory:", err)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print("alive", len(engine.tokenize("still serving")))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "InsufficientMemory: out of memory while computing logits" in done.stdout, done.stdout + done.stderr
    assert "alive" in done.stdout


def test_oom_errors_are_recognised():
    import torch

    try:
        torch.empty(1 << 50)
    except RuntimeError as err:  # the CPU allocator's real message
        assert is_oom(err)
        assert isinstance(as_localbench_error(err, "loading"), InsufficientMemory)
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_oom(RuntimeError("shape mismatch"))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _mps() -> bool:
    import torch

    return torch.backends.mps.is_available()


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda(), reason="needs an NVIDIA GPU and a CUDA build of torch")
def test_cuda(hf_ref):  # noqa: F811
    engine = TorchEngine()
    info = engine.load(hf_ref, LoadConfig(n_ctx=512, device="cuda"))
    try:
        assert info.backend == "CUDA"
        _, stats = engine.generate("Hello", GenerationParams(max_tokens=8, ignore_eos=True))
        assert stats.gen_tokens == 8 and stats.peak_device_bytes > 2 * info.n_params
    finally:
        engine.unload()


@pytest.mark.mps
@pytest.mark.skipif(not _mps(), reason="needs PyTorch MPS on Apple Silicon")
def test_mps(hf_ref):  # noqa: F811
    engine = TorchEngine()
    info = engine.load(hf_ref, LoadConfig(n_ctx=512, device="mps"))
    try:
        assert info.backend == "MPS"
        _, stats = engine.generate("Hello", GenerationParams(max_tokens=8, ignore_eos=True))
        assert stats.gen_tokens == 8 and stats.peak_device_bytes > 0
    finally:
        engine.unload()


@pytest.mark.browser
def test_chat_tab_runs_the_torch_and_mlx_engines(page, hf_ref, mlx_refs):  # noqa: F811
    """Both engines appear in the Chat tab's engine picker and answer there, with their own timing source."""
    import re

    for engine, model, source in (
        ("PyTorch", "smollm2-135m@hf-bf16", "decode loop"),  # the picker shows display names
        ("MLX", "smollm2-135m@mlx-bf16", "GenerationResponse"),
    ):
        page.locator("#chat-engine input").click()
        page.get_by_role("option", name=engine, exact=True).click()
        model_box = page.locator("#chat-model input")
        model_box.fill(model)
        model_box.press("Enter")
        page.locator("#chat-max-tokens input").fill("8")
        page.locator("#chat-prompt textarea").fill("What is the capital of France?")
        page.locator("#chat-send").click()
        page.wait_for_function(
            f"() => /{source}/.test(document.querySelector('#chat-stats').innerText)", timeout=180_000
        )
        stats = page.locator("#chat-stats").inner_text()
        assert re.search(r"generation\s+\d+\s+tok at\s+[\d.]+\s*t/s", stats), stats
        assert "Paris" in page.locator("#chat-box").inner_text()
        page.locator("#chat-clear").click()
