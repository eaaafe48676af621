"""llama.cpp's download cache as `-hf` and `-mu` leave it (flat files, .etag, manifest=…json), and the
HF-layout repos current releases keep in LLAMA_CACHE; partial downloads and bad manifests listed."""

from __future__ import annotations

import pytest

from models import catalog
from models.stores import llama_cache
from tests.models.stores.fixtures import llama_cache as build_llama_cache
from tests.models.stores.fixtures import place


@pytest.fixture
def cache(tmp_path):
    return build_llama_cache(tmp_path / "llama.cpp")


def by_name(entries):
    return {e.name: e for e in entries}


def test_names_recovered_from_manifests(cache):
    found = by_name(llama_cache.scan(cache))
    assert set(found) == {"llamacpp:unsloth/SmolLM2-135M-Instruct-GGUF:Q4_1", "llamacpp:gemma-3-270m-Q4_K_M"}
    smollm = found["llamacpp:unsloth/SmolLM2-135M-Instruct-GGUF:Q4_1"]
    assert smollm.path == str(cache / "unsloth_SmolLM2-135M-Instruct-GGUF_SmolLM2-135M-Instruct-Q4_1.gguf")
    assert (smollm.quant, smollm.family, smollm.source, smollm.runnable) == (
        "Q4_1",
        "smollm2-135m-instruct",
        "llama.cpp-cache",
        True,
    )
    assert found["llamacpp:gemma-3-270m-Q4_K_M"].family == "gemma-3-270m"  # fetched by URL: the file stem


def test_partial_download_and_bad_manifest(cache):
    with open(catalog.smollm2_path(), "rb") as src:
        (cache / "bartowski_Qwen3-4B-GGUF_Qwen3-4B-Q4_K_M.gguf.downloadInProgress").write_bytes(src.read(3_000_000))
    (cache / "manifest=bartowski=Qwen3-4B-GGUF=Q4_K_M.json").write_text(
        '{"ggufFile": {"rfilename": "Qwen3-4B-Q4_K_M.gguf"}}'
    )
    (cache / "manifest=broken=Repo-GGUF=Q8_0.json").write_text('{"ggufFile": ')
    (cache / "not-a-model.gguf").write_text("<html>")
    found = by_name(llama_cache.scan(cache))
    partial = found["llamacpp:bartowski/Qwen3-4B-GGUF:Q4_K_M"]
    assert partial.problem.startswith("download incomplete (3.0 MB so far)") and not partial.runnable
    assert "unreadable" in found["llamacpp:broken/Repo-GGUF:Q8_0"].problem
    assert "not a GGUF" in found["llamacpp:not-a-model"].problem
    assert found["llamacpp:unsloth/SmolLM2-135M-Instruct-GGUF:Q4_1"].runnable


def test_hf_layout_inside_llama_cache(tmp_path, monkeypatch):
    """Current llama.cpp writes `-hf` files as huggingface_hub does, under LLAMA_CACHE when it is set."""
    root = tmp_path / "llama-cache"
    commit = "a" * 40
    repo = root / "models--unsloth--SmolLM2-135M-Instruct-GGUF"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    digest = "b" * 64
    place(catalog.smollm2_path(), repo / "blobs" / digest)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "SmolLM2-135M-Instruct-Q4_1.gguf").symlink_to(f"../../blobs/{digest}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    found = by_name(llama_cache.scan(root))
    entry = found["llamacpp:unsloth/SmolLM2-135M-Instruct-GGUF:Q4_1"]
    assert (entry.source, entry.runnable, entry.family) == ("llama.cpp-cache", True, "smollm2-135m-instruct")
    monkeypatch.setenv("HF_HUB_CACHE", str(root))  # the HF cache itself: hf_cache lists it, not us
    assert llama_cache.scan(root) == []


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("LLAMA_CACHE", str(tmp_path / "lc"))
    assert llama_cache.default_root() == tmp_path / "lc"
    monkeypatch.delenv("LLAMA_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert llama_cache.default_root() == tmp_path / "xdg" / "llama.cpp"
    assert llama_cache.scan() == []  # absent: nothing, no error
