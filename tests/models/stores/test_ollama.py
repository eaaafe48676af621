"""Ollama's store built as `ollama pull` leaves it, from the real bundled GGUFs: names, digests, the
broken cases, and the model blob running on llama.cpp."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from models import catalog
from models.stores import ollama
from tests.models.stores.fixtures import ollama_store, sha256_of


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ollama") / "models"
    smollm, gemma = catalog.smollm2_path(), catalog.gemma3_path()
    models = {"smollm2:135m": smollm, "gemma3:270m": gemma, "hf.co/unsloth/SmolLM2-135M-Instruct-GGUF:Q4_1": smollm}
    return ollama_store(root, {**models, "someone/tiny:latest": smollm})


def by_name(entries):
    return {e.name: e for e in entries}


def test_names_paths_and_digests(store):
    found = by_name(ollama.scan([store]))
    assert set(found) == {
        "ollama:smollm2:135m",
        "ollama:gemma3:270m",
        "ollama:hf.co/unsloth/SmolLM2-135M-Instruct-GGUF:Q4_1",
        "ollama:someone/tiny:latest",
    }
    smollm = found["ollama:smollm2:135m"]
    digest = sha256_of(catalog.smollm2_path())
    assert smollm.path == str(store / "blobs" / f"sha256-{digest}") and smollm.sha256 == digest
    assert (smollm.format, smollm.quant, smollm.n_params, smollm.context_length) == ("gguf", "Q4_1", 134_515_008, 8192)
    assert (smollm.family, smollm.chat, smollm.source, smollm.runnable) == (
        "smollm2-135m-instruct",
        True,
        "ollama",
        True,
    )
    assert found["ollama:hf.co/unsloth/SmolLM2-135M-Instruct-GGUF:Q4_1"].path == smollm.path  # one blob, two names
    gemma = found["ollama:gemma3:270m"]
    assert (gemma.quant, gemma.family, gemma.chat) == ("Q4_K_M", "gemma-3-270m", False)


def test_manifest_is_what_ollama_writes(store):
    manifest = json.loads((store / "manifests/registry.ollama.ai/library/smollm2/135m").read_text())
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    types = [x["mediaType"] for x in manifest["layers"]]
    assert types[0] == "application/vnd.ollama.image.model" and "application/vnd.ollama.image.template" in types
    for layer in [manifest["config"], *manifest["layers"]]:
        blob = store / "blobs" / layer["digest"].replace(":", "-")
        assert blob.stat().st_size == layer["size"]


def test_parse_and_display_round_trip():
    for name in ("qwen3:4b", "someone/tiny:latest", "hf.co/ORG/REPO:Q4_K_M"):
        assert ollama.display_name(*ollama.parse_name(name)) == name
    assert ollama.parse_name("qwen3") == ("registry.ollama.ai", "library", "qwen3", "latest")


@pytest.fixture
def broken(tmp_path):
    """A store whose manifests each break one way."""
    root = ollama_store(tmp_path / "models", {"good:1": catalog.smollm2_path()})
    good = (root / "manifests/registry.ollama.ai/library/good/1").read_text()
    lib = root / "manifests/registry.ollama.ai/library"

    def manifest(name: str, text: str) -> None:
        (lib / name).mkdir(parents=True, exist_ok=True)
        (lib / name / "latest").write_text(text)

    missing = "0" * 64
    manifest("missing-blob", good.replace(sha256_of(catalog.smollm2_path()), missing))
    manifest("partial", good.replace(sha256_of(catalog.smollm2_path()), "1" * 64))
    (root / "blobs" / f"sha256-{'1' * 64}-partial").write_bytes(b"GGUF" + b"\0" * 100)
    html = b"<html>rate limited</html>"
    (root / "blobs" / f"sha256-{'2' * 64}").write_bytes(html)
    manifest("not-gguf", good.replace(sha256_of(catalog.smollm2_path()), "2" * 64))
    cut = root / "blobs" / f"sha256-{'3' * 64}"
    with open(catalog.smollm2_path(), "rb") as src:
        cut.write_bytes(src.read(10_000_000))
    manifest("truncated", good.replace(sha256_of(catalog.smollm2_path()), "3" * 64))
    manifest("malformed", good[: len(good) // 2])
    manifest("no-model-layer", json.dumps({"schemaVersion": 2, "layers": []}))
    return root


def test_every_broken_manifest_is_listed_with_its_problem(broken):
    found = by_name(ollama.scan([broken]))
    assert found["ollama:good:1"].runnable
    problems = {n.removeprefix("ollama:").removesuffix(":latest"): e.problem for n, e in found.items() if e.problem}
    assert set(problems) == {"missing-blob", "partial", "not-gguf", "truncated", "malformed", "no-model-layer"}
    assert "missing" in problems["missing-blob"] and "ollama pull missing-blob:latest" in problems["missing-blob"]
    assert "download incomplete" in problems["partial"]
    assert "not a GGUF" in problems["not-gguf"]
    assert "truncated" in problems["truncated"]
    assert "malformed manifest" in problems["malformed"]
    assert "no model layer" in problems["no-model-layer"]


def test_unreadable_namespace_is_an_entry(broken):
    """A namespace folder we may not list is one entry saying so. chmod 000 denies nothing to root (these
    tests may run as root): there the models inside are listed as usual, and that is asserted instead."""
    ns = broken / "manifests/registry.ollama.ai/blocked"
    shutil.copytree(broken / "manifests/registry.ollama.ai/library/good", ns / "fine")
    (ns / "stray").write_text("")  # a file where a model folder should be: skipped, not a crash
    ns.chmod(0)
    try:
        found = by_name(ollama.scan([broken]))
    finally:
        ns.chmod(0o755)
    assert found["ollama:good:1"].runnable
    if os.geteuid() == 0:
        assert found["ollama:blocked/fine:1"].runnable
    else:
        assert "unreadable folder" in found["ollama:registry.ollama.ai/blocked"].problem


def test_missing_store_lists_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert all(r != tmp_path / "nowhere" for r in ollama.default_roots())


def test_default_roots_start_with_ollama_models(store, monkeypatch, tmp_path):
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ollama.default_roots()[0] == store
    assert "ollama:smollm2:135m" in by_name(ollama.scan())


def test_the_blob_runs_on_llama_cpp(store):
    from llama_cpp import Llama

    blob = by_name(ollama.scan([store]))["ollama:smollm2:135m"].path
    llm = Llama(model_path=blob, n_ctx=256, n_threads=2, verbose=False)
    try:
        out = llm("The capital of France is", max_tokens=4, temperature=0)
    finally:
        llm.close()
    assert out["usage"]["completion_tokens"] >= 1 and out["choices"][0]["text"].strip()
