"""Core ML (the design record's "Metal + ANE" path): sentence embedders converted to ML Program packages, and
what still stands between localbench and text generation on the Neural Engine.

**Embedders convert here, on any OS.** `convert_embedder('all-minilm-l6-v2')` writes an fp16 ML Program
(`.mlpackage`, minimum target macOS 13) under LOCALBENCH_HOME/cache/coreml/<model>@coreml-fp16, with a
`localbench-conversion.json` manifest written last. Tracing the model whole does not convert with
coremltools 9.0 and transformers 5.23: coremltools' `aten::Int` → `_cast` meets a non-scalar where
BertEmbeddings slices its position-id buffer ("only 0-dimensional arrays can be converted to Python
scalars"), and the mask from transformers' `masking_utils` brings `new_ones`, which has no converter.
So the traced module is ours: it calls the model's own embeddings and encoder (eager attention) with the
additive mask, the position ids and the token types computed from the inputs in plain tensor ops
(`(1 - mask) * -1e4`, fp16-safe; `cumsum - 1`; zeros), then pools and normalizes as the
sentence-transformers folder says. Inputs are `input_ids` and `attention_mask` (int32, batch 1..MAX_BATCH, sequence
1..max_seq_length); outputs are `embedding` (sentence vectors) and `last_hidden_state`, float32 at the
boundary, fp16 inside. `describe_package()` reads the saved spec back (program type, inputs with their
ranges, outputs, weight precision), which is what can be checked off macOS.

**Prediction is macOS only** (Core ML.framework; coremltools' Linux wheel has no `libcoremlpython`):
`embed_texts()` runs a package with compute units cpu_only | cpu_and_gpu | cpu_and_ne | all there, and
says that predictions need macOS elsewhere. **Causal LMs do not convert yet**: tracing SmolLM2 (LlamaForCausalLM) and
calling `coremltools.convert` stops at torch ops without a converter (`diff` in the packed-sequence check,
`new_ones` in the mask); `convert_causal_lm` is kept to reproduce it, and the text engine stays unavailable
with that reason (`blocker()`).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from core.errors import BadParameter, EngineUnavailable
from core.progress import Progress
from engines.base import Engine, LoadConfig, ModelInfo
from engines.embeddings import COREML_COMPUTE_UNITS, Embedder
from models.convert import library_versions
from models.ref import ModelRef

CONVERSION_BLOCKER = (
    "coremltools 9.0 cannot convert transformers 5.23 causal LMs yet (no converter for the torch ops "
    "'diff' and 'new_ones' in the attention-mask code); embedding models convert (python app.py convert "
    "--model all-minilm-l6-v2 --to coreml)"
)
COMPUTE_UNITS = {u: u.upper() for u in COREML_COMPUTE_UNITS}
"""Our names → coremltools.ComputeUnit members (CPU_ONLY, CPU_AND_GPU, CPU_AND_NE, ALL)."""
MAX_BATCH = 64
"""Largest batch the converted package accepts (its batch dimension is a range 1..MAX_BATCH)."""
MASK_NEGATIVE = -1e4
"""Additive attention-mask value for padding: far below any score, and finite in fp16 (-3.4e38 is -inf there)."""
TINY = 1e-4
"""Floor of the pooling and norm divisors: a normal fp16 number (clamp's 1e-9 and 1e-12 are 0 there, and
clamp's open upper bound becomes an fp16 inf)."""
MANIFEST = "localbench-conversion.json"
PACKAGE = "model.mlpackage"
VARIANT = "coreml-fp16"
DEPLOYMENT_TARGET = "macOS13"
"""ML Program with fp16 inputs/compute needs macOS 13 (iOS 16) or later."""


def blocker(os_name: str | None = None) -> str:
    """Why the Core ML text engine cannot run here ('' once nothing blocks it)."""
    os_name = os_name or platform.system()
    if importlib.util.find_spec("coremltools") is None:
        return "Python module 'coremltools' is not installed (pip install -r requirements.txt)"
    if os_name != "Darwin":
        return f"Core ML predicts only on macOS (Core ML.framework); on {os_name} coremltools can only convert"
    return CONVERSION_BLOCKER


def predict_blocker(os_name: str | None = None) -> str:
    """Why a converted package cannot be run here ('' on macOS with coremltools)."""
    os_name = os_name or platform.system()
    if importlib.util.find_spec("coremltools") is None:
        return "Python module 'coremltools' is not installed (pip install -r requirements.txt)"
    if os_name != "Darwin":
        return f"Core ML predictions need macOS (Core ML.framework); this is {os_name}, where packages only convert"
    return ""


# --- embedders: conversion ------------------------------------------------------------------------------


def package_folder(name: str) -> Path:
    """LOCALBENCH_HOME/cache/coreml/<name>@coreml-fp16 (the package and its manifest live inside)."""
    from core.paths import cache_dir

    return cache_dir("coreml") / f"{name.replace('/', '_')}@{VARIANT}"


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def converted_packages() -> list[dict]:
    """Manifests of every finished Core ML conversion (folder listings and small JSON reads only)."""
    from core.paths import cache_dir

    found = []
    for folder in sorted(cache_dir("coreml").iterdir()):
        manifest = read_manifest(folder) if folder.is_dir() and not folder.name.startswith(".") else None
        if manifest is not None:
            found.append(manifest)
    return found


def _sentence_model(path: str):
    """The sentence-transformers model at `path` in fp32 on CPU, checked to be Transformer + Pooling
    (+ Normalize) over a BERT-style encoder (embeddings + encoder modules)."""
    from engines.embeddings import load_sentence_transformer

    model = load_sentence_transformer(path, "cpu").float().eval()
    kinds = [type(m).__name__ for m in model]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise BadParameter(f"Core ML conversion takes Transformer + Pooling (+ Normalize) models; this one has {kinds}")
    hf = model[0].auto_model
    if not (hasattr(hf, "embeddings") and hasattr(hf, "encoder")):
        raise BadParameter(
            f"Core ML conversion takes BERT-style encoders (embeddings + encoder); {type(hf).__name__} is not one"
        )
    hf.set_attn_implementation("eager")  # plain matmul + softmax: every op has a coremltools converter
    return model


def embedding_module(model):
    """A torch module (input_ids, attention_mask) → (embedding, last_hidden_state) that computes the mask,
    position ids and token types itself, so nothing from transformers' masking utilities is traced."""
    import torch

    from engines.embeddings import _pooling_mode

    hf = model[0].auto_model
    mode = _pooling_mode(model[1])
    if mode not in ("mean", "cls"):
        raise BadParameter(f"Core ML conversion pools 'mean' or 'cls'; this model pools '{mode}'")
    normalize = any(type(m).__name__ == "Normalize" for m in model)

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings, self.encoder = hf.embeddings, hf.encoder

        def forward(self, input_ids, attention_mask):
            mask = attention_mask.to(self.embeddings.word_embeddings.weight.dtype)  # fp32 when traced
            additive = (1.0 - mask[:, None, None, :]) * MASK_NEGATIVE
            positions = torch.cumsum(torch.ones_like(input_ids), dim=1) - 1
            hidden = self.embeddings(
                input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids), position_ids=positions
            )
            hidden = self.encoder(hidden, attention_mask=additive).last_hidden_state
            if mode == "cls":
                vectors = hidden[:, 0]
            else:
                weights = mask[:, :, None]
                vectors = (hidden * weights).sum(dim=1) / torch.maximum(weights.sum(dim=1), weights.new_tensor(TINY))
            if normalize:
                vectors = vectors / torch.maximum(vectors.norm(dim=1, keepdim=True), vectors.new_tensor(TINY))
            return vectors, hidden

    return SentenceEmbedding().eval(), mode, normalize


def convert_embedder(name_or_path: str, *, force: bool = False, progress: Progress | None = None) -> dict:
    """Convert a sentence-transformers model (the bundled name or a folder) to an fp16 ML Program package,
    cached; returns its manifest (`package` is the .mlpackage path). Runs on any OS."""
    from engines.embeddings import resolve_embed_model

    progress = progress or (lambda f, m: None)
    ref = resolve_embed_model(name_or_path)
    if ref.kind != "sentence-transformers" or not ref.path:
        raise BadParameter(
            f"{ref.name} is served by Ollama — only local sentence-transformers models convert to Core ML"
        )
    if importlib.util.find_spec("coremltools") is None:
        raise EngineUnavailable("Python module 'coremltools' is not installed (pip install -r requirements.txt)")
    folder = package_folder(ref.name)
    cached = read_manifest(folder)
    if cached is not None and not force:
        progress(1.0, f"{folder.name} is already converted")
        return cached
    from core.paths import atomic_path

    t0 = time.perf_counter()
    progress(0.05, "loading the model (fp32, CPU)")
    model = _sentence_model(ref.path)
    max_seq = int(model.max_seq_length or 512)
    module, mode, normalize = embedding_module(model)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        progress(0.2, "tracing the embedding module")
        spec = _convert(module, max_seq, tmp / PACKAGE, progress)
        manifest = {
            "name": f"{ref.name}@{VARIANT}",
            "format": "coreml",
            "source_name": ref.name,
            "source_path": ref.path,
            "package": str(folder / PACKAGE),
            "program": "mlprogram",
            "compute_precision": "fp16",
            "minimum_deployment_target": DEPLOYMENT_TARGET,
            "max_batch": MAX_BATCH,
            "max_seq_length": max_seq,
            "embedding_dim": int(
                model.get_embedding_dimension()
                if hasattr(model, "get_embedding_dimension")
                else model.get_sentence_embedding_dimension()
            ),
            "pooling": mode,
            "normalize": normalize,
            "lower_case": bool(getattr(model[0], "do_lower_case", False)),
            "inputs": spec["inputs"],
            "outputs": spec["outputs"],
            "n_params": sum(p.numel() for p in model.parameters()),
            "note": "Core ML ML Program, fp16 compute; converted here, runs on macOS 13+ (cpu_only | cpu_and_gpu | "
            "cpu_and_ne | all)",
            "convert_s": round(time.perf_counter() - t0, 2),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions("coremltools", "torch", "transformers", "sentence-transformers"),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    progress(1.0, f"{folder.name} ready")
    return manifest


def _convert(module, max_seq: int, out: Path, progress: Progress) -> dict:
    import warnings

    import coremltools as ct
    import numpy as np
    import torch

    example = (torch.ones(2, 16, dtype=torch.int64), torch.ones(2, 16, dtype=torch.int64))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
    batch, seq = ct.RangeDim(1, MAX_BATCH, default=1), ct.RangeDim(1, max_seq, default=min(128, max_seq))
    progress(0.35, "converting with coremltools (ML Program, fp16)")
    try:
        mlmodel = ct.convert(
            traced,
            inputs=[
                ct.TensorType(name="input_ids", shape=(batch, seq), dtype=np.int32),
                ct.TensorType(name="attention_mask", shape=(batch, seq), dtype=np.int32),
            ],
            outputs=[
                ct.TensorType(name="embedding", dtype=np.float32),
                ct.TensorType(name="last_hidden_state", dtype=np.float32),
            ],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
        )
    except (NotImplementedError, TypeError, ValueError, RuntimeError) as err:
        raise EngineUnavailable(f"coremltools {ct.__version__} cannot convert this model: {err}") from err
    progress(0.9, "saving the .mlpackage")
    mlmodel.save(str(out))
    return describe_package(out)


def describe_package(path) -> dict:
    """What a saved .mlpackage declares, read from its spec without loading it (works off macOS): the program
    type, inputs (name, dtype, shape ranges), outputs (name, dtype) and how many weight blobs are fp16/fp32."""
    import coremltools as ct
    from coremltools.proto import FeatureTypes_pb2, MIL_pb2

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    array_type = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType

    def feature(f) -> dict:
        arr = f.type.multiArrayType
        ranges = [[r.lowerBound, r.upperBound] for r in arr.shapeRange.sizeRanges]
        return {"name": f.name, "dtype": array_type.Name(arr.dataType).lower(), "shape_range": ranges}

    weights: dict[str, int] = {}
    if spec.WhichOneof("Type") == "mlProgram":
        fn = spec.mlProgram.functions["main"]
        for op in fn.block_specializations[fn.opset].operations:
            val = op.attributes.get("val") if op.type == "const" else None
            if val is not None and val.WhichOneof("value") == "blobFileValue":
                kind = MIL_pb2.DataType.Name(val.type.tensorType.dataType).lower()
                weights[kind] = weights.get(kind, 0) + 1
    return {
        "type": spec.WhichOneof("Type"),
        "specification_version": spec.specificationVersion,
        "inputs": [feature(f) for f in spec.description.input],
        "outputs": [{"name": f["name"], "dtype": f["dtype"]} for f in map(feature, spec.description.output)],
        "weight_blobs": weights,
    }


# --- embedders: prediction (macOS) ----------------------------------------------------------------------


def check_compute_units(units: str) -> str:
    if units not in COMPUTE_UNITS:
        raise BadParameter(f"unknown compute units '{units}' — choose one of: {', '.join(COMPUTE_UNITS)}")
    return units


def convert_hint(ref) -> str:
    """The convert command for an embedding model ref (the bundled name, or the folder's path)."""
    return f"python app.py convert --model {ref.name if ref.source.startswith('bundled') else ref.path} --to coreml"


def unavailable_line(ref, os_name: str | None = None) -> str:
    """'' where a package can predict; else one line: needs macOS, and where the package is (or would go)."""
    why = predict_blocker(os_name)
    if not why or "not installed" in why:
        return why
    folder = package_folder(ref.name)
    manifest = read_manifest(folder)
    where = (
        f"the converted package is at {manifest['package']}"
        if manifest
        else f"convert it here with `{convert_hint(ref)}`; the package goes to {folder / PACKAGE}"
    )
    return f"Core ML needs macOS ({where}); this is {os_name or platform.system()}, where packages only convert"


def embedding_rows(prediction: dict, n_texts: int, dim: int):
    """The `embedding` output of one prediction as float32 (n_texts, dim); InvalidModelFile when it is not."""
    import numpy as np

    from core.errors import InvalidModelFile

    rows = prediction.get("embedding") if isinstance(prediction, dict) else None
    rows = None if rows is None else np.asarray(rows, dtype=np.float32)
    if rows is None or rows.shape != (n_texts, dim):
        got = "no 'embedding' output" if rows is None else f"shape {rows.shape}"
        raise InvalidModelFile(
            f"the Core ML package gave {got}, expected ({n_texts}, {dim}) — convert it again (--force)"
        )
    return rows


class CoreMLEmbedBackend:
    """A converted package under Core ML with the given compute units: the embedder's 'coreml' backend.

    Texts are tokenized with the source model's tokenizer (padded to the longest, truncated to max_seq_length)
    in chunks of at most MAX_BATCH (the package's batch range); one `embed` call times every chunk.
    `predict` is MLModel.predict (macOS); it is loaded here when not given."""

    precision = "fp16"

    def __init__(self, manifest: dict, compute_units: str = "all", predict: Callable | None = None) -> None:
        self.compute_units = check_compute_units(compute_units)
        if predict is None:
            why = predict_blocker()
            if why:
                raise EngineUnavailable(why)
            import coremltools as ct

            units = getattr(ct.ComputeUnit, COMPUTE_UNITS[compute_units])
            predict = ct.models.MLModel(manifest["package"], compute_units=units).predict
        from transformers import AutoTokenizer

        self.predict = predict
        self.tokenizer = AutoTokenizer.from_pretrained(manifest["source_path"])
        self.max_seq_length = int(manifest["max_seq_length"])
        self.lower = bool(manifest.get("lower_case"))
        self.dim = int(manifest["embedding_dim"])
        self.n_params = int(manifest.get("n_params", 0))
        self.size_bytes = sum(p.stat().st_size for p in Path(manifest["package"]).rglob("*") if p.is_file())
        """The package's bytes on disk (fp16 weights), not the source model's."""

    def embed(self, texts: Sequence[str]):
        """(vectors float32 (n, dim), non-padding tokens, truncated texts)."""
        import numpy as np

        from engines.embeddings import tokenize

        texts = [t.lower() for t in texts] if self.lower else list(texts)
        parts, n_tokens, truncated = [], 0, 0
        for i in range(0, len(texts), MAX_BATCH):
            chunk = texts[i : i + MAX_BATCH]
            enc, n, cut = tokenize(self.tokenizer, chunk, self.max_seq_length, "np")
            feed = {k: np.asarray(enc[k], dtype=np.int32) for k in ("input_ids", "attention_mask")}
            parts.append(embedding_rows(self.predict(feed), len(chunk), self.dim))
            n_tokens, truncated = n_tokens + n, truncated + cut
        return np.concatenate(parts), n_tokens, truncated

    def reset_peak(self) -> None:
        return None

    def peak_device(self) -> tuple[int | None, str]:
        return None, ""  # Core ML reports no device memory counter


def embed_backend(ref, compute_units: str) -> tuple[CoreMLEmbedBackend, tuple[tuple[str, str], ...]]:
    """The 'coreml' backend for an embedding model already converted (bench converts it first, with progress)."""
    manifest = read_manifest(package_folder(ref.name))
    if manifest is None:
        raise EngineUnavailable(unavailable_line(ref) or f"{ref.name} has no Core ML package yet — {convert_hint(ref)}")
    backend = CoreMLEmbedBackend(manifest, compute_units)
    return backend, tuple(library_versions("coremltools", "transformers").items())


class CoreMLEmbedder(Embedder):
    """The embedder with the 'coreml' backend as well (registered as embedder 'coreml'; the runner starts this
    one in its worker when a Core ML configuration is in the sweep)."""

    label = "sentence-transformers (torch / ONNX Runtime), Ollama /api/embed and Core ML packages"

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        ok, why = super().availability()
        blocked = predict_blocker() if ok else why
        return (not blocked, blocked or "ok")

    def _coreml_backend(self, ref, compute_units: str):
        return embed_backend(ref, compute_units)


def embed_texts(manifest: dict, texts: Sequence[str], compute_units: str = "all"):
    """Sentence vectors (float32 numpy, one row per text) from a converted package, on macOS; EngineUnavailable
    with the reason elsewhere."""
    check_compute_units(compute_units)
    if isinstance(texts, str) or not texts:
        raise BadParameter("give at least one text")
    return CoreMLEmbedBackend(manifest, compute_units).embed(texts)[0]


# --- causal LMs: the remaining block ---------------------------------------------------------------------


def convert_causal_lm(hf_path: str, out_path: str, seq_len: int = 64) -> str:
    """Trace the HF causal LM at `hf_path` on a fixed (1, `seq_len`) window and save it as an fp16 ML Program
    `.mlpackage` at `out_path`; EngineUnavailable with coremltools' message when it does not convert."""
    import coremltools as ct
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_path, dtype=torch.float32, attn_implementation="eager").eval()

    class Logits(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids=input_ids, use_cache=False, return_dict=False)[0]

    example = torch.zeros(1, seq_len, dtype=torch.int64)
    traced = torch.jit.trace(Logits(model), (example,), check_trace=False)
    try:
        mlmodel = ct.convert(
            traced,
            inputs=[ct.TensorType(name="input_ids", shape=(1, seq_len), dtype=int)],
            outputs=[ct.TensorType(name="logits")],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.macOS13,
        )
    except (NotImplementedError, TypeError, ValueError, RuntimeError) as err:
        raise EngineUnavailable(f"coremltools {ct.__version__} cannot convert {hf_path}: {err}") from err
    mlmodel.save(out_path)
    return out_path


class CoreMLEngine(Engine):
    """Core ML text generation on the Neural Engine, GPU and CPU (blocked; see the module docstring)."""

    name = "coreml"
    label = "Core ML (Neural Engine)"
    formats = ("hf",)
    modules = ("coremltools",)

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        why = blocker()
        return (False, why) if why else (True, "ok")

    def load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        raise EngineUnavailable(f"Core ML engine unavailable: {blocker()}")
