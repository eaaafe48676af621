"""Format conversions for the PyTorch and MLX engines, cached under LOCALBENCH_HOME/cache/converted.

- GGUF → Hugging Face safetensors (bf16) through transformers' own GGUF loader
  (`GgufConfig(dequantize=True)`, which needs `accelerate`). The result is *dequantized*: it holds
  exactly the precision of its GGUF source (the bundled SmolLM2 is Q4_1), no more.
- HF → MLX in bf16, 8-bit and 4-bit through `mlx_lm.convert` (affine, group size 64).

A converted model is a folder named `<model>@<variant>` (e.g. `smollm2-135m@mlx-4bit`). It is written
under a temporary name and renamed into place when complete (engines.paths.atomic_path), and carries a
`localbench-conversion.json` manifest written last, so an interrupted conversion never lists as a model;
its leftovers are removed by the next conversion once their process is gone. `converted_models()` is
the catalog provider: it reads folder listings only and never converts. Progress is reported through
`progress(fraction, message)`; the engines' on-demand conversions report to whatever `reporting()`
installed (the CLI's bar, the UI's gr.Progress) or to stderr.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import io
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engines import catalog
from engines.base import ModelRef
from engines.errors import (
    BadParameter,
    Cancelled,
    EngineUnavailable,
    InsufficientMemory,
    InvalidModelFile,
    LocalbenchError,
)
from engines.paths import atomic_path, cache_dir

Progress = Callable[[float, str], None]
"""progress(fraction done in [0, 1], message)."""

MANIFEST = "localbench-conversion.json"
"""Written last inside a finished conversion; folders without it are not models."""
OWNER = ".localbench-owner.json"
"""Written first inside a conversion in progress: the pid that owns the temporary folder."""
Q_GROUP_SIZE = 64
STALE_PARTIAL_S = 3600.0
"""Temporary folders without an owner record older than this are leftovers of a crash."""
DISK_MARGIN_BYTES = 256 * 2**20


class InsufficientDiskSpace(LocalbenchError):
    """Not enough free disk space under LOCALBENCH_HOME for a conversion."""


@dataclass(frozen=True)
class Variant:
    """One conversion target."""

    key: str
    """'hf-bf16', 'mlx-bf16', 'mlx-8bit', 'mlx-4bit'."""
    format: str
    """ModelRef format of the result: 'hf' or 'mlx'."""
    engine: str
    """The engine that runs it: 'torch' or 'mlx'."""
    q_bits: int | None
    """MLX quantization bits; None for bf16."""
    label: str


VARIANTS: dict[str, Variant] = {
    "hf-bf16": Variant("hf-bf16", "hf", "torch", None, "Hugging Face safetensors, bf16 (dequantized from GGUF)"),
    "mlx-bf16": Variant("mlx-bf16", "mlx", "mlx", None, "MLX, bf16"),
    "mlx-8bit": Variant("mlx-8bit", "mlx", "mlx", 8, f"MLX, 8-bit affine, group size {Q_GROUP_SIZE}"),
    "mlx-4bit": Variant("mlx-4bit", "mlx", "mlx", 4, f"MLX, 4-bit affine, group size {Q_GROUP_SIZE}"),
}

TARGETS = {
    "hf": "hf-bf16",
    "hf-bf16": "hf-bf16",
    "mlx-bf16": "mlx-bf16",
    "mlx-8bit": "mlx-8bit",
    "mlx-4bit": "mlx-4bit",
}
"""What `python app.py convert --to` accepts."""

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()

_PROGRESS: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("convert_progress", default=None)
_CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("convert_cancel", default=None)


# --- names and the catalog provider -------------------------------------------------------------------


def root() -> Path:
    """LOCALBENCH_HOME/cache/converted."""
    return cache_dir("converted")


def variant_name(base: str, variant: str) -> str:
    return f"{base}@{variant}"


def split_name(name: str) -> tuple[str, str] | None:
    """'smollm2-135m@mlx-4bit' → ('smollm2-135m', 'mlx-4bit'); None when the suffix is not ours."""
    base, sep, variant = (name or "").strip().rpartition("@")
    if sep and base and variant in VARIANTS and os.sep not in base:  # a path is not a name
        return base, variant
    return None


def variant_dir(base: str, variant: str) -> Path:
    safe = base.replace(os.sep, "_")
    return root() / variant_name(safe, variant)


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _ref_from(folder: Path, manifest: dict) -> ModelRef:
    return ModelRef(
        name=folder.name,
        path=str(folder),
        format=manifest.get("format", "hf"),
        chat=bool(manifest.get("chat", True)),
        source=f"converted by localbench from {manifest.get('source_name', '?')}",
        note=manifest.get("note", ""),
    )


def converted_models() -> list[ModelRef]:
    """Catalog provider: every finished conversion (folder listings and small JSON reads only)."""
    refs = []
    for folder in sorted(root().iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        manifest = read_manifest(folder)
        if manifest is not None and split_name(folder.name):
            refs.append(_ref_from(folder, manifest))
    return refs


def converted_ref(name: str) -> ModelRef | None:
    """The finished conversion called `name`, or None."""
    split = split_name(name)
    if split is None:
        return None
    folder = variant_dir(*split)
    manifest = read_manifest(folder)
    return _ref_from(folder, manifest) if manifest is not None else None


def engine_model_names(engine: str) -> list[str]:
    """Names an engine offers in pickers: bundled models (converted on first use), then every
    '<bundled>@<variant>' for this engine, then other finished conversions. Nothing is converted."""
    names = list(catalog.BUNDLED)
    for base in catalog.BUNDLED:
        names += [variant_name(base, v.key) for v in VARIANTS.values() if v.engine == engine]
    for ref in converted_models():
        split = split_name(ref.name)
        if split and VARIANTS[split[1]].engine == engine and ref.name not in names:
            names.append(ref.name)
    return names


# --- progress and cancel for on-demand conversions ----------------------------------------------------


@contextlib.contextmanager
def reporting(progress: Progress | None, cancel: threading.Event | None = None) -> Iterator[None]:
    """Within this block, on-demand conversions (engine.resolve) report to `progress` and stop on `cancel`."""
    p_token, c_token = _PROGRESS.set(progress), _CANCEL.set(cancel)
    try:
        yield
    finally:
        _PROGRESS.reset(p_token)
        _CANCEL.reset(c_token)


def stderr_progress(prefix: str) -> Progress:
    """A progress callable printing one line per stage to stderr."""
    last = [""]

    def progress(fraction: float, message: str) -> None:
        if message != last[0]:
            last[0] = message
            print(f"{prefix}: {fraction:4.0%} {message}", file=sys.stderr, flush=True)

    return progress


def _check_cancel(cancel: threading.Event | None, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} cancelled; nothing was kept (the next run starts it again)")


# --- folder checks ------------------------------------------------------------------------------------


def read_hf_config(folder: str | Path) -> dict:
    """config.json of a Hugging Face / MLX model folder, or InvalidModelFile saying what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidModelFile(f"{folder} is not a folder — a Hugging Face model is a folder with config.json")
    path = folder / "config.json"
    if not path.exists():
        raise InvalidModelFile(
            f"{folder} has no config.json, so it is not a Hugging Face model folder — point at the folder that "
            "holds config.json and *.safetensors, or convert a GGUF with `python app.py convert`"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InvalidModelFile(f"{path} is not valid JSON: {err}") from err
    if not isinstance(config, dict) or not config.get("model_type"):
        raise InvalidModelFile(f"{path} names no model_type, so no library can build this model")
    if not list(folder.glob("*.safetensors")) and not list(folder.glob("*.bin")):
        raise InvalidModelFile(f"{folder} has config.json but no weights (*.safetensors)")
    return config


def check_torch_architecture(config: dict) -> None:
    """Raise InvalidModelFile when transformers cannot build this model_type as a causal LM."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = config["model_type"]
    if model_type not in CONFIG_MAPPING_NAMES or model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise InvalidModelFile(
            f"unsupported architecture '{model_type}': the installed transformers cannot build it as a causal "
            "language model — use a model of a supported family (llama, gemma3, qwen2, mistral, ...)"
        )


def mlx_model_type(config: dict) -> str:
    """mlx-lm's module name for this config (its own remapping), or InvalidModelFile."""
    import importlib.util

    from mlx_lm.utils import MODEL_REMAPPING

    model_type = MODEL_REMAPPING.get(config["model_type"], config["model_type"])
    if importlib.util.find_spec(f"mlx_lm.models.{model_type}") is None:
        raise InvalidModelFile(
            f"unsupported architecture '{config['model_type']}': mlx-lm has no model of that type — "
            "use the torch engine, or a model family mlx-lm supports (llama, gemma3, qwen2, mistral, ...)"
        )
    return model_type


def legacy_rope_keys(config: dict) -> dict:
    """The top-level RoPE keys older readers expect, from transformers 5's `rope_parameters`.

    transformers 5 writes `rope_parameters: {rope_theta, rope_type, ...}` (per attention type for Gemma 3)
    and no top-level `rope_theta`; mlx-lm 0.32 reads only `rope_theta` / `rope_local_base_freq` /
    `rope_scaling` and silently falls back to its defaults (10000 for Llama, where SmolLM2 needs 100000).
    Returns only the keys `config` lacks.
    """
    params = config.get("rope_parameters")
    if not isinstance(params, dict):
        return {}
    full = params.get("full_attention", params)
    sliding = params.get("sliding_attention")
    out: dict = {}
    if isinstance(full, dict) and "rope_theta" in full and "rope_theta" not in config:
        out["rope_theta"] = full["rope_theta"]
    if isinstance(sliding, dict) and "rope_theta" in sliding and "rope_local_base_freq" not in config:
        out["rope_local_base_freq"] = sliding["rope_theta"]
    kind = full.get("rope_type", "default") if isinstance(full, dict) else "default"
    if kind != "default" and not config.get("rope_scaling"):
        out["rope_scaling"] = {**{k: v for k, v in full.items() if k != "rope_theta"}, "type": kind, "rope_type": kind}
    return out


def gguf_supported_architectures() -> list[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return list(GGUF_SUPPORTED_ARCHITECTURES)


# --- temporary folders --------------------------------------------------------------------------------


def _lock_for(final: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(final), threading.Lock())


def _process_alive(pid: int, started: float) -> bool:
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def partial_folders(final: Path) -> list[Path]:
    """Temporary siblings that atomic_path made for `final` (in progress or left by a crash)."""
    return sorted(final.parent.glob(f".{final.name}.partial-*"))


def clean_stale_partials(final: Path) -> list[Path]:
    """Remove leftovers of interrupted conversions of `final` whose process is gone; returns them."""
    removed = []
    for tmp in partial_folders(final):
        try:
            owner = json.loads((tmp / OWNER).read_text())
            stale = not _process_alive(int(owner["pid"]), float(owner["process_started"]))
        except (OSError, ValueError, KeyError, TypeError):
            stale = time.time() - tmp.stat().st_mtime > STALE_PARTIAL_S
        if stale:
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _claim(tmp: Path) -> None:
    import psutil

    tmp.mkdir(parents=True, exist_ok=False)
    me = psutil.Process(os.getpid())
    (tmp / OWNER).write_text(json.dumps({"pid": me.pid, "process_started": me.create_time()}))


def _check_disk(folder: Path, need_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if need_bytes + DISK_MARGIN_BYTES > free:
        raise InsufficientDiskSpace(
            f"converting needs about {need_bytes / 2**20:.0f} MiB but only {free / 2**20:.0f} MiB are free under "
            f"{folder} — free some space or set LOCALBENCH_HOME to a larger disk"
        )


def _finish(tmp: Path, manifest: dict) -> None:
    (tmp / OWNER).unlink(missing_ok=True)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _versions(*dists: str) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for d in dists:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            continue
    return out


def _oom(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, MemoryError) or "out of memory" in text or "can't allocate memory" in text


# --- the conversions ----------------------------------------------------------------------------------


_GGUF_HOOK_LOCK = threading.Lock()


@contextlib.contextmanager
def _gguf_hooks(progress: Progress, cancel: threading.Event | None, lo: float, hi: float, file_type: str):
    """Per-tensor progress and cancel inside transformers' GGUF loader, and one header parse, not three.

    transformers walks the GGUF tensors through the `tqdm` name of its GGUF module; for the length of
    this block that name is a generator that reports progress and raises Cancelled between tensors, so a
    cancel stops a conversion midway instead of after it. transformers also parses the GGUF header
    (~5 s for SmolLM2's 49k-token vocabulary) separately for the tokenizer, the config and the weights;
    within this block `gguf.GGUFReader` returns one read-only reader per file. Without those names the
    conversion still works, with progress per stage only.
    """
    import gguf
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original_tqdm = getattr(gguf_utils, "tqdm", None)
    original_reader = gguf.GGUFReader
    readers: dict[tuple[str, str], object] = {}

    def tracked(iterable, *args, **kwargs):
        items = iterable if hasattr(iterable, "__len__") else list(iterable)
        total = max(len(items), 1)
        for i, item in enumerate(items):
            _check_cancel(cancel, "conversion")
            if i % 16 == 0:
                progress(lo + (hi - lo) * i / total, f"dequantizing {file_type} tensors ({i}/{total})")
            yield item

    def reader(path, mode="r"):
        key = (str(path), mode)
        if key not in readers:
            readers[key] = original_reader(path, mode)
        return readers[key]

    with _GGUF_HOOK_LOCK:
        if original_tqdm is not None:
            gguf_utils.tqdm = tracked
        gguf.GGUFReader = reader
        try:
            yield
        finally:
            gguf.GGUFReader = original_reader
            if original_tqdm is not None:
                gguf_utils.tqdm = original_tqdm


def gguf_to_hf(source: ModelRef, final: Path, progress: Progress, cancel: threading.Event | None) -> dict:
    """Dequantize a GGUF into a bf16 safetensors folder at `final` (atomically); returns the manifest."""
    from engines.gguf_meta import read_gguf

    meta = read_gguf(source.path)
    supported = gguf_supported_architectures()
    if meta.arch not in supported:
        raise InvalidModelFile(
            f"unsupported architecture '{meta.arch}': transformers' GGUF loader cannot convert {source.name} "
            f"(it supports {', '.join(sorted(supported))}) — run it on the llama.cpp engine instead"
        )
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        raise EngineUnavailable("transformers' GGUF loader needs accelerate to save a model — pip install accelerate")
    _check_disk(final.parent, meta.n_params * 2)
    progress(0.02, f"reading the GGUF tokenizer of {source.name}")
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, filename = str(Path(source.path).parent), Path(source.path).name
    t0 = time.perf_counter()
    was_enabled = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # our own progress replaces its bars
    try:
        with atomic_path(final) as tmp:
            _claim(tmp)
            try:
                with _gguf_hooks(progress, cancel, 0.15, 0.80, meta.file_type):
                    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
                    _check_cancel(cancel, "conversion")
                    progress(0.15, f"dequantizing {meta.file_type} tensors with transformers' GGUF loader")
                    model = AutoModelForCausalLM.from_pretrained(
                        folder,
                        gguf_file=filename,
                        quantization_config=GgufConfig(dequantize=True),
                        dtype=torch.bfloat16,
                    )
                _check_cancel(cancel, "conversion")
                progress(0.80, "writing bf16 safetensors")
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
            except (ValueError, KeyError, NotImplementedError, RuntimeError, OSError) as err:
                if _oom(err):
                    raise InsufficientMemory(f"out of memory while converting {source.name}: {err}") from err
                raise InvalidModelFile(
                    f"transformers' GGUF loader could not convert {source.name} ({meta.arch}, {meta.file_type}): "
                    f"{str(err).splitlines()[0] if str(err) else type(err).__name__} — run it on the llama.cpp engine"
                ) from err
            config = json.loads((tmp / "config.json").read_text())
            manifest = {
                "format": "hf",
                "variant": "hf-bf16",
                "dtype": "bf16",
                "q_bits": None,
                "q_group_size": None,
                "source_name": source.name,
                "source_path": source.path,
                "source_format": "gguf",
                "source_type": meta.file_type,
                "arch": config.get("model_type", meta.arch),
                "n_params": meta.n_params,
                "chat": source.chat,
                "note": f"bf16 safetensors dequantized from the {meta.file_type} GGUF by transformers' GGUF loader "
                f"(dequantized: it holds the precision of {meta.file_type}, not of the original model)",
                "convert_s": round(time.perf_counter() - t0, 2),
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "versions": _versions("transformers", "torch", "accelerate", "gguf"),
            }
            _finish(tmp, manifest)
    finally:
        if was_enabled:
            transformers.utils.logging.enable_progress_bar()
    return manifest


def hf_to_mlx(
    source: ModelRef,
    variant: Variant,
    final: Path,
    progress: Progress,
    cancel: threading.Event | None,
    source_manifest: dict | None = None,
) -> dict:
    """Convert an HF folder to MLX (bf16, or quantized with group size 64) at `final`; returns the manifest."""
    config = read_hf_config(source.path)
    mlx_model_type(config)
    weights = sum(p.stat().st_size for p in Path(source.path).glob("*.safetensors"))
    _check_disk(final.parent, weights)
    from mlx_lm import convert as mlx_convert

    how = f"quantizing to {variant.q_bits}-bit (group size {Q_GROUP_SIZE})" if variant.q_bits else "casting to bf16"
    progress(0.1, f"loading {source.name} into MLX and {how}")
    t0 = time.perf_counter()
    log = io.StringIO()
    with atomic_path(final) as tmp:
        try:
            with contextlib.redirect_stdout(log):  # mlx_lm prints [INFO] lines; keep the CLI's stdout clean
                mlx_convert(
                    source.path,
                    str(tmp),
                    quantize=variant.q_bits is not None,
                    q_bits=variant.q_bits,
                    q_group_size=Q_GROUP_SIZE if variant.q_bits else None,
                    dtype="bfloat16",
                )
        except (ValueError, KeyError, RuntimeError, OSError) as err:
            if _oom(err):
                raise InsufficientMemory(f"out of memory while converting {source.name} to MLX: {err}") from err
            raise InvalidModelFile(f"mlx_lm.convert could not convert {source.name}: {err}") from err
        _check_cancel(cancel, "conversion")
        progress(0.9, "writing the manifest")
        mlx_config_path = tmp / "config.json"
        mlx_config = json.loads(mlx_config_path.read_text())
        if legacy := legacy_rope_keys(mlx_config):  # mlx-lm reads only the pre-5.0 RoPE keys
            mlx_config_path.write_text(json.dumps({**mlx_config, **legacy}, indent=4))
        src = source_manifest or {}
        origin = src.get("source_type")
        lineage = f" from the bf16 copy dequantized from {origin}" if origin else f" from {source.name}"
        kind = f"{variant.q_bits}-bit affine, group size {Q_GROUP_SIZE}" if variant.q_bits else "bf16"
        bpw = next(
            (ln.split("with ")[1].split(" bits")[0] for ln in log.getvalue().splitlines() if "bits per weight" in ln),
            None,
        )
        manifest = {
            "format": "mlx",
            "variant": variant.key,
            "dtype": "bf16",
            "q_bits": variant.q_bits,
            "q_group_size": Q_GROUP_SIZE if variant.q_bits else None,
            "source_name": src.get("source_name", source.name),
            "source_path": src.get("source_path", source.path),
            "source_format": src.get("source_format", "hf"),
            "source_type": origin,
            "arch": config["model_type"],
            "n_params": src.get("n_params"),
            "chat": source.chat,
            "mlx_bits_per_weight": float(bpw) if bpw else None,
            "note": f"MLX {kind}, converted by mlx_lm.convert{lineage}",
            "convert_s": round(time.perf_counter() - t0, 2),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions("mlx", "mlx-lm"),
        }
        _finish(tmp, manifest)
    return manifest


def convert(
    source: ModelRef | str,
    target: str,
    *,
    force: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ModelRef:
    """The converted model `source@target`, converting (and its HF prerequisite) if not cached.

    `source` is a catalog name, a path, or a ModelRef (GGUF, or an HF folder for MLX targets);
    `target` is one of TARGETS. Cached results return at once unless `force`.
    """
    if target not in TARGETS:
        raise BadParameter(f"unknown conversion target '{target}' — choose one of: hf, mlx-bf16, mlx-8bit, mlx-4bit")
    variant = VARIANTS[TARGETS[target]]
    ref = source if isinstance(source, ModelRef) else catalog.resolve_model(source)
    if split_name(ref.name) and ref.format in ("hf", "mlx") and variant.format == "hf":
        raise BadParameter(f"{ref.name} is already a converted model — convert its source instead")
    progress = progress or _PROGRESS.get() or stderr_progress(f"converting {ref.name} → {variant.key}")
    cancel = cancel or _CANCEL.get()
    base = split_name(ref.name)[0] if split_name(ref.name) else ref.name
    final = variant_dir(base, variant.key)
    with _lock_for(final):
        if not force and read_manifest(final) is not None:
            progress(1.0, f"{final.name} is already converted")
            return _ref_from(final, read_manifest(final))
        clean_stale_partials(final)
        _check_cancel(cancel, "conversion")
        if variant.format == "hf":
            if ref.format != "gguf":
                raise BadParameter(f"{ref.name} is {ref.format}, not GGUF: only GGUF files convert to HF safetensors")
            gguf_to_hf(ref, final, progress, cancel)
        else:
            hf_ref, hf_manifest = ref, read_manifest(Path(ref.path)) if ref.path else None
            if ref.format == "gguf":

                def first_half(f: float, m: str) -> None:
                    progress(0.8 * f, m)

                hf_ref = convert(ref, "hf", progress=first_half, cancel=cancel)
                hf_manifest = read_manifest(Path(hf_ref.path))
            elif ref.format not in ("hf", "mlx"):
                raise BadParameter(f"{ref.name} ({ref.format}) cannot be converted to MLX")

            first_done = ref.format == "gguf"

            def second_half(f: float, m: str) -> None:
                progress(0.8 + 0.2 * f if first_done else f, m)

            hf_to_mlx(hf_ref, variant, final, second_half, cancel, hf_manifest)
        progress(1.0, f"{final.name} ready")
        return _ref_from(final, read_manifest(final))


def resolve_for_engine(engine: str, name: str, default_variant: str) -> ModelRef:
    """The ModelRef the torch or MLX engine loads for `name`, converting on demand (cached).

    '<model>@<variant>' converts to that variant; a GGUF name or path converts to `default_variant`;
    a folder path (HF or MLX) loads as it is.
    """
    key = (name or "").strip()
    if not key:
        raise BadParameter("no model given — pick one, e.g. smollm2-135m")
    check_variant_suffix(key)
    split = split_name(key)
    if split is not None:
        variant = VARIANTS[split[1]]
        if variant.engine != engine:
            other = "mlx" if engine == "torch" else "torch"
            alt = next(v.key for v in VARIANTS.values() if v.engine == engine)
            raise BadParameter(
                f"{key} is a {variant.label} model for the {other} engine — choose --engine {other}, "
                f"or {variant_name(split[0], alt)} for {engine}"
            )
        ready = converted_ref(key)
        return ready if ready is not None else convert(split[0], variant.key)
    ref = catalog.resolve_model(key)
    if ref.format == "gguf":
        return convert(ref, default_variant)
    if ref.format in ("hf", "mlx"):
        if engine == "torch" and ref.format == "mlx":
            raise BadParameter(f"{ref.name} is an MLX folder — load it with --engine mlx")
        return ref
    raise BadParameter(f"{ref.name} ({ref.format}) cannot run on the {engine} engine")


def check_variant_suffix(name: str) -> None:
    """Refuse names that look like ours but name an unknown variant (a typo such as '@mlx-3bit')."""
    _, sep, suffix = name.rpartition("@")
    if sep and suffix.lower().startswith(("mlx", "hf")) and suffix not in VARIANTS:
        raise BadParameter(f"unknown variant '{suffix}' — choose one of: {', '.join(VARIANTS)}")
