"""The embedder on the bundled all-MiniLM-L6-v2 (real runs on CPU: torch fp32/bf16, ONNX Runtime), the
pooling math, bad input, and the Ollama embedder against the loopback Ollama test server."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import BadParameter, EngineUnavailable, InvalidModelFile, ModelNotFound, ServerError
from engines.embeddings import (
    BUNDLED_EMBED_MODEL,
    EmbedConfig,
    Embedder,
    combination_problem,
    pool,
    resolve_embed_model,
)
from machine.devices import torch_present_devices

TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
LONG = "The committee measured the fragile bridge before dawn. " * 60  # ~600 tokens, over the 256 limit


@pytest.fixture(scope="module")
def minilm():
    embedder = Embedder()
    embedder.load(BUNDLED_EMBED_MODEL, EmbedConfig(device="cpu"))
    yield embedder
    embedder.unload()


def _cos(a, b) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_embed_batch_matches_bare_encode(minilm):
    info = minilm.info()
    assert (info.device, info.precision, info.backend, info.embedding_dim, info.max_seq_length) == (
        "cpu",
        "fp32",
        "torch",
        384,
        256,
    )
    assert 20e6 < info.n_params < 25e6 and info.model_size_bytes > 80e6
    vectors = minilm.embed_batch(TEXTS)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # the model's Normalize module
    bare = minilm._backend.model.encode(TEXTS, batch_size=len(TEXTS))
    np.testing.assert_allclose(vectors, bare, atol=1e-5)
    # a real model: paraphrases are closer than unrelated sentences
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.3


def test_stats_count_tokens_and_truncated_texts(minilm):
    tokenizer = minilm._backend.tokenizer
    lengths = [len(ids) for ids in tokenizer([*TEXTS, LONG])["input_ids"]]
    assert lengths[-1] > 256
    minilm.embed_batch([*TEXTS, LONG])
    stats = minilm.last_stats
    assert stats.n_texts == 4 and stats.truncated == 1
    assert stats.n_tokens == sum(min(n, 256) for n in lengths)
    assert stats.seconds > 0 and stats.peak_rss_bytes > 0 and stats.peak_device_bytes is None
    minilm.embed_batch(TEXTS)
    assert minilm.last_stats.truncated == 0


@pytest.mark.parametrize(("backend", "precision", "min_cos"), [("onnx", "fp32", 0.99999), ("torch", "bf16", 0.99)])
def test_other_backends_agree_with_fp32_torch(minilm, backend, precision, min_cos):
    reference = minilm.embed_batch([*TEXTS, LONG])
    other = Embedder()
    info = other.load(BUNDLED_EMBED_MODEL, EmbedConfig(backend=backend, device="cpu", precision=precision))
    try:
        assert (info.backend, info.precision, info.embedding_dim) == (backend, precision, 384)
        vectors = other.embed_batch([*TEXTS, LONG])
        assert vectors.dtype == np.float32 and other.last_stats.truncated == 1
        assert min(_cos(a, b) for a, b in zip(vectors, reference, strict=True)) > min_cos
    finally:
        other.unload()


def test_pooling_math_on_hand_made_vectors():
    hidden = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[-1.0, 0.0], [5.0, -2.0], [7.0, 1.0]]])
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    np.testing.assert_allclose(pool(hidden, mask, "mean"), [[2.0, 3.0], [11 / 3, -1 / 3]])
    np.testing.assert_allclose(pool(hidden, mask, "cls"), [[1.0, 2.0], [-1.0, 0.0]])
    np.testing.assert_allclose(pool(hidden, mask, "max"), [[3.0, 4.0], [7.0, 1.0]])  # padding never wins
    np.testing.assert_allclose(pool(hidden, mask, "lasttoken"), [[3.0, 4.0], [7.0, 1.0]])


def test_unknown_models_give_clear_messages(tmp_path):
    with pytest.raises(ModelNotFound, match="unknown embedding model '/no/such/model'"):
        resolve_embed_model("/no/such/model")
    with pytest.raises(ModelNotFound, match="no embedding model given"):
        resolve_embed_model("  ")
    with pytest.raises(ModelNotFound, match="not a sentence-transformers folder"):
        resolve_embed_model(str(tmp_path))
    with pytest.raises(ModelNotFound, match="after 'ollama:'"):
        resolve_embed_model("ollama:")
    assert resolve_embed_model("ALL-MiniLM-L6-v2").kind == "sentence-transformers"


def test_broken_folder_gives_one_clear_message(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "modules.json").write_text("[]")
    with pytest.raises(InvalidModelFile, match="cannot load .* as a sentence-transformers model") as err:
        Embedder().load(str(tmp_path), EmbedConfig(device="cpu"))
    assert "\n" not in str(err.value)


def test_absent_device_and_unsupported_choices():
    absent = next((d for d in ("cuda", "mps") if d not in torch_present_devices()), None)
    if absent is None:
        pytest.skip("every device is present here")
    with pytest.raises(EngineUnavailable, match=f"device '{absent}' is not present on this machine"):
        Embedder().load(BUNDLED_EMBED_MODEL, EmbedConfig(device=absent))
    with pytest.raises(BadParameter, match="unknown precision 'fp8'"):
        Embedder().load(BUNDLED_EMBED_MODEL, EmbedConfig(precision="fp8"))
    with pytest.raises(BadParameter, match="unknown device 'tpu'"):
        EmbedConfig(device="tpu").validate()
    assert "fp32 only" in combination_problem("onnx", "cpu", "fp16")
    assert "no MPS provider" in combination_problem("onnx", "mps", "fp32")
    assert combination_problem("torch", "cpu", "bf16") is None


def test_embed_batch_rejects_empty_input(minilm):
    with pytest.raises(BadParameter, match="non-empty list"):
        minilm.embed_batch([])
    with pytest.raises(BadParameter, match="no embedding model is loaded"):
        Embedder().embed_batch(["hello"])


@pytest.mark.cuda
def test_cuda_fp16_agrees_with_cpu(minilm):
    if "cuda" not in torch_present_devices():
        pytest.skip("no CUDA device")
    gpu = Embedder()
    gpu.load(BUNDLED_EMBED_MODEL, EmbedConfig(device="cuda", precision="fp16"))
    vectors = gpu.embed_batch(TEXTS)
    assert gpu.peak_device_memory()[0] > 0
    assert min(_cos(a, b) for a, b in zip(vectors, minilm.embed_batch(TEXTS), strict=True)) > 0.999


@pytest.mark.mps
def test_mps_fp16_agrees_with_cpu(minilm):
    if "mps" not in torch_present_devices():
        pytest.skip("no MPS device")
    gpu = Embedder()
    gpu.load(BUNDLED_EMBED_MODEL, EmbedConfig(device="mps", precision="fp16"))
    vectors = gpu.embed_batch(TEXTS)
    assert min(_cos(a, b) for a, b in zip(vectors, minilm.embed_batch(TEXTS), strict=True)) > 0.999


# --- Ollama: engines.ollama.embed against the loopback Ollama test server (tests/fake_ollama.py) -----------


@pytest.fixture(scope="module")
def ollama_url(smollm2_ref):
    from tests.fake_ollama import FakeOllama

    server = FakeOllama(smollm2_ref.path)
    yield server.start()
    server.stop()


def test_ollama_embedder_over_api_embed(ollama_url):
    embedder = Embedder()
    info = embedder.load("ollama:smollm2:135m", EmbedConfig(host=ollama_url))
    assert (info.backend, info.device, info.precision, info.embedding_dim) == ("ollama", "server", "as served", 576)
    vectors = embedder.embed_batch(TEXTS)
    assert vectors.shape == (3, 576) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # /api/embed L2-normalises
    assert embedder.last_stats.n_tokens >= 3 * 5  # the server's prompt_eval_count
    assert embedder.last_stats.extra["truncated_known"] is False


def test_ollama_errors_are_actionable(ollama_url):
    from tests.conftest import free_port

    with pytest.raises(ModelNotFound, match="ollama pull nope"):
        Embedder().load("ollama:nope", EmbedConfig(host=ollama_url))
    with pytest.raises(ServerError, match="Ollama is not reachable"):
        Embedder().load("ollama:smollm2:135m", EmbedConfig(host=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(BadParameter, match="runs on the Ollama server"):
        Embedder().load("ollama:smollm2:135m", EmbedConfig(backend="onnx", host=ollama_url))


def test_remote_embedder_calls_methods_in_one_round_trip_and_reads_values_fresh(minilm):
    from engines.process.proxy import WorkerObject

    remote = WorkerObject.embedder()
    try:
        remote.load(BUNDLED_EMBED_MODEL, EmbedConfig(device="cpu"))
        first = remote.embed_batch(TEXTS)
        assert "embed_batch" in remote._methods  # known as a method: the next call skips the getattr request
        assert remote.last_stats.n_texts == len(TEXTS)
        again = remote.embed_batch(TEXTS[:2])
        assert remote.last_stats.n_texts == 2  # a value attribute is still read from the worker each time
        here = minilm.embed_batch(TEXTS)
        assert np.allclose(first, here, atol=1e-5) and np.allclose(again, here[:2], atol=1e-5)
        remote.embed_batch(TEXTS)
        assert remote.last_stats.n_tokens == minilm.last_stats.n_tokens > 0  # the numpy token count
    finally:
        remote.close()
