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


# --- the embed-bench 'coreml' backend ---------------------------------------------------------------------


def _stand_in_predict(model, feeds: list):
    """The traced module — what was converted — answering as MLModel.predict does ({'embedding': float32
    (n, dim)}), its outputs rounded to fp16 as the package's are; Linux has no Core ML.framework to predict
    with. (It computes in fp32: torch's fp16 matmuls on a CPU take a minute for these 140 texts.) Every feed
    is kept, to check what the backend sends."""
    import torch

    module = coreml.embedding_module(model)[0]

    def predict(feed: dict) -> dict:
        feeds.append(feed)
        with torch.no_grad():
            out = module(torch.from_numpy(feed["input_ids"]).long(), torch.from_numpy(feed["attention_mask"]).long())
        return {"embedding": out[0].half().float().numpy(), "last_hidden_state": out[1].half().float().numpy()}

    return predict


def test_a_coreml_row_is_built_from_the_backend_and_its_timings(converted):
    """The parts of a Core ML row that do not need Core ML.framework: the backend's tokenization, chunking to
    the package's batch range and output parsing, and the runner's record from the timed batches."""
    import statistics
    import time

    from bench.embed.corpus import make_corpus
    from bench.embed.runner import REFERENCE, TimedPass, batch_order, make_result, split_batches
    from bench.results.export import to_frame
    from engines.embeddings import EmbedModelInfo

    model = coreml._sentence_model(resolve_embed_model(BUNDLED_EMBED_MODEL).path)
    texts = make_corpus(70)
    reference = model.encode(texts, batch_size=32, convert_to_numpy=True)
    feeds: list = []
    backend = coreml.CoreMLEmbedBackend(converted, "cpu_and_ne", predict=_stand_in_predict(model, feeds))
    whole, _, _ = backend.embed(texts)  # one call of 70 texts: two package batches
    assert [f["input_ids"].shape[0] for f in feeds] == [coreml.MAX_BATCH, 70 - coreml.MAX_BATCH]
    out, latencies, n_tokens, truncated = np.empty((70, backend.dim), np.float32), [], 0, 0
    for idx in split_batches(batch_order(texts, True), 32):  # the runner's longest-first batches, timed
        t0 = time.perf_counter()
        vectors, n, cut = backend.embed([texts[i] for i in idx])
        latencies.append(time.perf_counter() - t0)
        out[idx], n_tokens, truncated = vectors, n_tokens + n, truncated + cut
    np.testing.assert_allclose(out, whole, atol=2e-3)  # same vectors whatever the batching (padding, fp16 rounding)
    assert all(f[k].dtype == np.int32 for f in feeds for k in ("input_ids", "attention_mask"))
    assert max(f["input_ids"].shape[1] for f in feeds) == converted["max_seq_length"]  # long texts cut to 256
    expected = model.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
    assert n_tokens == int(expected["attention_mask"].sum()) and truncated >= 1

    info = EmbedModelInfo(
        name=BUNDLED_EMBED_MODEL,
        path=converted["source_path"],
        source="bundled",
        backend="coreml",
        device="cpu_and_ne",
        precision=backend.precision,
        embedding_dim=backend.dim,
        max_seq_length=backend.max_seq_length,
        n_params=backend.n_params,
        model_size_bytes=backend.size_bytes,
        compute_units="cpu_and_ne",
        versions=tuple(converted["versions"].items()),
    )
    run = TimedPass(out, latencies, n_tokens, truncated, 0, "not read")
    row = make_result(
        info,
        run,
        batch_size=32,
        n_texts=70,
        warmup="batch",
        sort_by_length=True,
        reference_vectors=reference,
        reference=REFERENCE,
        device_memory=(None, ""),
        corpus="builtin-70:test",
        hardware=("cpu", "gpu"),
    )
    samples = [s * 1e3 for s in latencies]
    assert row.backend == "coreml" and row.compute_units == "cpu_and_ne" and row.precision == "fp16"
    assert row.samples_batch_ms == tuple(round(s, 4) for s in samples) and row.n_batches == len(latencies)
    assert row.sentences_per_s == pytest.approx(70 / sum(latencies))
    assert row.avg_batch_ms == pytest.approx(statistics.mean(samples))
    assert row.stddev_batch_ms == pytest.approx(statistics.stdev(samples))
    assert row.cosine_min_vs_ref > 0.999 and row.cosine_mean_vs_ref > 0.9995 and row.reference == "torch cpu fp32"
    assert 40e6 < row.model_size < 50e6  # the fp16 package (≈ 44 MB), not the fp32 source (≈ 90 MB)
    frame = to_frame([row])
    assert list(frame["compute_units"]) == ["cpu_and_ne"] and list(frame["embedding_dim"]) == [384]


def test_a_bad_prediction_is_one_line():
    from core.errors import InvalidModelFile

    assert coreml.embedding_rows({"embedding": np.ones((2, 3))}, 2, 3).dtype == np.float32
    with pytest.raises(InvalidModelFile, match="no 'embedding' output"):
        coreml.embedding_rows({"last_hidden_state": np.ones((2, 3))}, 2, 3)
    with pytest.raises(InvalidModelFile, match=r"shape \(1, 3\), expected \(2, 3\)"):
        coreml.embedding_rows({"embedding": np.ones((1, 3))}, 2, 3)


@pytest.mark.skipif(platform.system() == "Darwin", reason="off macOS only: there Core ML measures")
def test_embed_bench_coreml_says_it_needs_macos_in_one_line(converted):
    from bench.results.store import ResultStore

    before = len(ResultStore().runs("embed"))
    out = run_app("embed-bench", "--backend", "coreml", "--compute-units", "cpu_and_ne", "-b", "8", "-n", "16")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        f"error: Core ML needs macOS (the converted package is at {converted['package']}); "
        f"this is {platform.system()}, where packages only convert"
    )
    assert len(ResultStore().runs("embed")) == before  # nothing stored
    bad = run_app("embed-bench", "--backend", "coreml", "--compute-units", "npu")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "unknown compute units 'npu'" in bad.stderr


@pytest.mark.skipif(platform.system() == "Darwin", reason="off macOS only: there Core ML measures")
def test_beside_torch_coreml_is_skipped_with_the_line(converted):
    import io

    import pandas as pd

    out = run_app("embed-bench", "--backends", "torch,coreml", "--devices", "cpu", "-b", "8", "-n", "8", "-o", "csv")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"note: skipped — Core ML needs macOS (the converted package is at {converted['package']})" in out.stderr
    frame = pd.read_csv(io.StringIO(out.stdout))
    assert list(frame["backend"]) == ["torch"] and frame["compute_units"].isna().all()


@pytest.mark.skipif(platform.system() == "Darwin", reason="off macOS only")
def test_before_conversion_the_line_says_where_the_package_goes(tmp_path, monkeypatch):
    from bench.embed.runner import plan_embed_sweep

    monkeypatch.setenv("LOCALBENCH_HOME", str(tmp_path))
    with pytest.raises(EngineUnavailable) as err:
        plan_embed_sweep(BUNDLED_EMBED_MODEL, [8], ["cpu"], ["fp32"], ["coreml"], compute_units=["all"])
    folder = tmp_path / "cache" / "coreml" / f"{BUNDLED_EMBED_MODEL}@coreml-fp16"
    assert str(err.value) == (
        "Core ML needs macOS (convert it here with `python app.py convert --model all-minilm-l6-v2 --to coreml`; "
        f"the package goes to {folder / coreml.PACKAGE}); this is {platform.system()}, where packages only convert"
    )


@pytest.mark.metal
@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML predicts only on macOS")
def test_embed_bench_measures_coreml_beside_torch_on_macos(converted):
    """The real path on a Mac: Core ML in each compute unit beside torch on CPU (and MPS where present), one run
    with the fp32 reference."""
    import io

    import pandas as pd
    import torch

    devices = "cpu,mps" if torch.backends.mps.is_available() else "cpu"
    units = ",".join(coreml.COMPUTE_UNITS)
    args = ["--backends", "torch,coreml", "--devices", devices, "--compute-units", units, "-b", "8,32", "-n", "48"]
    out = run_app("embed-bench", *args, "-o", "csv")
    assert out.returncode == 0, out.stderr[-2000:]
    frame = pd.read_csv(io.StringIO(out.stdout))
    ml = frame[frame["backend"] == "coreml"]
    assert sorted(set(ml["compute_units"])) == sorted(coreml.COMPUTE_UNITS) and len(ml) == 2 * len(coreml.COMPUTE_UNITS)
    assert (ml["device"] == ml["compute_units"]).all() and (ml["precision"] == "fp16").all()
    assert (ml["cosine_min_vs_ref"] > 0.999).all() and (ml["sentences_per_s"] > 0).all()
    assert set(frame[frame["backend"] == "torch"]["device"]) == set(devices.split(","))
