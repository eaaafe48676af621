"""engines.coreml: the bundled MiniLM converts here to an fp16 ML Program package (real coremltools, through the
CLI), whose saved spec is checked, and whose traced module is checked against sentence-transformers in fp32 and
fp16; predictions and their agreement with fp32 need Core ML.framework, so that test runs on macOS only.
The text engine stays registered and unavailable with the reason (causal LMs do not convert yet)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pytest

from core.errors import EngineUnavailable
from engines import coreml
from engines.base import LoadConfig
from engines.embeddings import BUNDLED_EMBED_MODEL, load_sentence_transformer, resolve_embed_model
from engines.registry import engine_status
from models.ref import ModelRef
from tests.conftest import run_app

TEXTS = ["hello", "Core ML runs on the Neural Engine.", "a much longer sentence " * 12]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def converted(localbench_home) -> dict:
    """The bundled MiniLM converted once through `python app.py convert --to coreml`."""
    out = run_app("convert", "--model", BUNDLED_EMBED_MODEL, "--to", "coreml")
    assert out.returncode == 0, out.stderr[-2000:]
    name, package, _ = out.stdout.strip().splitlines()[-1].split("\t")
    assert name == f"{BUNDLED_EMBED_MODEL}@coreml-fp16"
    assert Path(package).is_relative_to(localbench_home) and package.endswith(".mlpackage")
    manifest = json.loads((Path(package).parent / coreml.MANIFEST).read_text())
    return manifest | {"stderr": out.stderr}


def test_convert_writes_an_fp16_ml_program_package(converted):
    package = Path(converted["package"])
    assert (package / "Manifest.json").is_file() and any(package.rglob("weight.bin"))
    spec = coreml.describe_package(package)
    assert spec["type"] == "mlProgram" and spec["specification_version"] >= 7  # ML Program on macOS 13+
    ranges = {i["name"]: (i["dtype"], i["shape_range"]) for i in spec["inputs"]}
    bounds = [[1, coreml.MAX_BATCH], [1, converted["max_seq_length"]]]
    assert ranges == {"input_ids": ("int32", bounds), "attention_mask": ("int32", bounds)}
    assert (
        converted["max_seq_length"]
        == load_sentence_transformer(resolve_embed_model("all-minilm-l6-v2").path, "cpu").max_seq_length
    )
    assert spec["outputs"] == [
        {"name": "embedding", "dtype": "float32"},
        {"name": "last_hidden_state", "dtype": "float32"},
    ]
    blobs = spec["weight_blobs"]
    assert blobs.get("float16", 0) >= 6 * 6 and "float32" not in blobs  # every weight blob is fp16 (6 layers × ≥ 6)
    assert converted["embedding_dim"] == 384 and converted["pooling"] == "mean" and converted["normalize"]
    assert converted["compute_precision"] == "fp16" and converted["versions"]["coremltools"]
    if platform.system() != "Darwin":
        assert "need macOS" in converted["stderr"]


def test_second_convert_is_cached_and_listed(converted):
    again = run_app("convert", "--model", BUNDLED_EMBED_MODEL, "--to", "coreml")
    assert again.returncode == 0 and "already converted" in again.stderr
    assert (
        json.loads((Path(converted["package"]).parent / coreml.MANIFEST).read_text())["created_at"]
        == converted["created_at"]
    )
    listed = run_app("convert", "--list")
    row = next(line for line in listed.stdout.splitlines() if line.startswith(converted["name"]))
    assert row.split("\t")[1] == "coreml" and float(row.split("\t")[2].split()[0]) > 10  # ≈ 45 MiB of fp16 weights


def test_the_traced_module_is_the_sentence_transformers_pipeline():
    """What was converted (the module with its own mask, positions and pooling) gives sentence-transformers'
    vectors on padded batches, in fp32 and in fp16 (the package's compute precision)."""
    import torch

    model = coreml._sentence_model(resolve_embed_model(BUNDLED_EMBED_MODEL).path)
    reference = model.encode(TEXTS, convert_to_numpy=True)
    module, mode, normalize = coreml.embedding_module(model)
    assert (mode, normalize) == ("mean", True)
    enc = model.tokenizer(TEXTS, padding=True, truncation=True, max_length=model.max_seq_length, return_tensors="pt")
    assert enc["attention_mask"].min() == 0  # the batch really is padded
    with torch.no_grad():
        fp32 = module(enc["input_ids"], enc["attention_mask"])[0].numpy()
        fp16 = module.half()(enc["input_ids"], enc["attention_mask"])[0].float().numpy()
    assert min(_cos(a, b) for a, b in zip(fp32, reference, strict=True)) > 0.99999
    assert min(_cos(a, b) for a, b in zip(fp16, reference, strict=True)) > 0.999


def test_a_causal_lm_gets_the_reason_in_one_line():
    out = run_app("convert", "--model", "smollm2-135m", "--to", "coreml")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "text-generation model" in out.stderr and "'diff' and 'new_ones'" in out.stderr
    unknown = run_app("convert", "--model", "no-such-model", "--to", "coreml")
    assert unknown.returncode == 2 and "unknown embedding model" in unknown.stderr


def test_registered_and_unavailable_with_the_reason():
    rows = {name: (ok, why) for name, ok, why in engine_status()}
    ok, why = rows["coreml"]
    assert not ok and why == coreml.blocker()
    if platform.system() != "Darwin":
        assert why.startswith("Core ML predicts only on macOS")
    assert coreml.blocker("Darwin") == coreml.CONVERSION_BLOCKER
    with pytest.raises(EngineUnavailable, match="Core ML engine unavailable"):
        coreml.CoreMLEngine().load(ModelRef("x", "/nonexistent", "hf"), LoadConfig())


@pytest.mark.skipif(platform.system() == "Darwin", reason="off macOS only: there Core ML predicts")
def test_predicting_says_it_needs_macos(converted):
    with pytest.raises(EngineUnavailable, match="need macOS"):
        coreml.embed_texts(converted, TEXTS)


@pytest.mark.metal
@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML predicts only on macOS")
@pytest.mark.parametrize("units", list(coreml.COMPUTE_UNITS))
def test_coreml_agrees_with_fp32_on_macos(converted, units):
    model = load_sentence_transformer(resolve_embed_model(BUNDLED_EMBED_MODEL).path, "cpu")
    reference = model.encode(TEXTS, convert_to_numpy=True)
    vectors = coreml.embed_texts(converted, TEXTS, units)
    assert vectors.shape == (len(TEXTS), 384)
    assert min(_cos(a, b) for a, b in zip(vectors, reference, strict=True)) > 0.999
