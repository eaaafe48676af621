"""planning.loader: ChatOllama against the loopback Ollama server with the planner's num_ctx, and
HuggingFaceEmbeddings on the bundled MiniLM agreeing with sentence-transformers itself."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.errors import InsufficientMemory
from engines.memory_check import MEMORY_MULTIPLIER
from engines.ollama import loaded_models
from machine.detect import detect_hardware
from planning import loader
from planning.estimate import max_context
from planning.runtime import optimal_config
from planning.specs import ollama_spec
from tests.machine.test_detect import load_fixture

GiB = 2**30


def test_plan_takes_the_machine_context_when_memory_is_plentiful(fake_ollama):
    spec = ollama_spec("smollm2:135m", fake_ollama.url)
    profile = detect_hardware()
    num_ctx, _, reasons = loader.plan_chat(spec, profile, 64 * GiB)
    assert num_ctx == min(optimal_config(profile).num_ctx, spec.context_length)
    assert str(MEMORY_MULTIPLIER) in reasons[0]


def test_plan_shrinks_the_context_to_what_fits_and_refuses_what_does_not(fake_ollama):
    spec = ollama_spec("smollm2:135m", fake_ollama.url)
    m3_max = load_fixture("m3_max_40c")  # 64 GB Mac: the record's context is 32768, above SmolLM2's 8192
    assert loader.plan_chat(spec, m3_max, 64 * GiB)[0] == spec.context_length
    small = dataclasses.replace(detect_hardware(), ram_bytes=2 * GiB, accelerators=(), accelerator_memory_bytes=None)
    available = 512 * 2**20 + 250 * 2**20  # margin (512 MiB) + 250 MiB for the model
    num_ctx, budget, _ = loader.plan_chat(spec, small, available)
    assert budget == 250 * 2**20
    assert num_ctx == max_context(spec, None, budget, cpu_only=True) < 4096
    with pytest.raises(InsufficientMemory, match=r"× 1\.2"):
        loader.plan_chat(spec, small, 512 * 2**20 + 50 * 2**20)


def test_load_chat_model_invokes_with_the_planned_context(fake_ollama):
    settings = loader.chat_settings("smollm2:135m", fake_ollama.url)
    chat = loader.OptimizedModelLoader(fake_ollama.url).load_chat_model("smollm2:135m", num_predict=8)
    assert type(chat).__name__ == "ChatOllama"
    assert chat.num_ctx == settings.num_ctx
    answer = chat.invoke("Say hello.")
    assert isinstance(answer.content, str) and answer.content.strip()
    running = {m.name: m for m in loaded_models(fake_ollama.url)}
    assert running["smollm2:135m"].context_length == settings.num_ctx  # the server really loaded that context


def test_load_embedding_model_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from engines.embeddings import bundled_model_path

    emb = loader.OptimizedModelLoader().load_embedding_model("all-minilm-l6-v2")
    assert emb.model_kwargs["device"] == loader.embedding_device()
    vec = np.array(emb.embed_query("hello"))
    assert vec.shape == (384,)
    ref = SentenceTransformer(str(bundled_model_path()), device="cpu").encode("hello")
    cosine = float(vec @ ref / np.linalg.norm(vec) / np.linalg.norm(ref))
    assert cosine > 0.999


def test_embedding_device_prefers_mps_then_cuda():
    mac = load_fixture("m3_max_40c")
    assert "mps" in mac.accelerators
    from machine.devices import embeddings_auto_device

    assert embeddings_auto_device(mac.accelerators, live=False) == "mps"
    assert embeddings_auto_device(("cuda",), live=False) == "cuda"
    assert loader.embedding_device(dataclasses.replace(mac, accelerators=())) == "cpu"
