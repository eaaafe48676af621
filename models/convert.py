"""Format conversions for the PyTorch and MLX engines, cached under LOCALBENCH_HOME/cache/converted.

- GGUF → Hugging Face safetensors (bf16) through transformers' own GGUF loader
  (`GgufConfig(dequantize=True)`, which needs `accelerate`). The result is *dequantized*: it holds
  exactly the precision of its GGUF source (the bundled SmolLM2 is Q4_1), no more.
- HF → MLX in bf16, 8-bit and 4-bit through `mlx_lm.convert` (affine, group size 64).

A converted model is a folder named `<model>@<variant>` (e.g. `smollm2-135m@mlx-4bit`). It is written
under a temporary name and renamed into place when complete (core.paths.atomic_path), and carries a
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
from collections.abc import Iterator
from pathlib import Path

from core.errors import (
    BadParameter,
    Cancelled,
    EngineUnavailable,
    InsufficientMemory,
    InvalidModelFile,
)
from core.paths import OWNER, atomic_path, check_disk_space
from core.progress import Progress
from models import catalog
from models.converted import (
    MANIFEST,
    Q_GROUP_SIZE,
    TARGETS,
    VARIANTS,
    Variant,
    check_variant_suffix,
    converted_ref,
    read_manifest,
    ref_from_manifest,
    split_name,
    variant_dir,
    variant_name,
)
from models.hf_folder import gguf_supported_architectures, legacy_rope_keys, mlx_model_type, read_hf_config
from models.ref import ModelRef

STALE_PARTIAL_S = 3600.0
"""Temporary folders without an owner record older than this are leftovers of a crash."""


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()

_PROGRESS: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("convert_progress", default=None)
_CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("convert_cancel", default=None)


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


def _finish(tmp: Path, manifest: dict) -> None:
    (tmp / OWNER).unlink(missing_ok=True)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))


def library_versions(*dists: str) -> dict[str, str]:
    """Installed versions of these distributions (the ones not installed are left out)."""
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
    from models.gguf import read_gguf

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
    check_disk_space(final.parent, meta.n_params * 2, "converting to bf16")
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
                "versions": library_versions("transformers", "torch", "accelerate", "gguf"),
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
    check_disk_space(final.parent, weights, "converting to MLX")
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
            "versions": library_versions("mlx", "mlx-lm"),
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
    asked = progress or _PROGRESS.get()
    progress = asked or stderr_progress(f"converting {ref.name} → {variant.key}")
    cancel = cancel or _CANCEL.get()
    base = split_name(ref.name)[0] if split_name(ref.name) else ref.name
    final = variant_dir(base, variant.key)
    with _lock_for(final):
        if not force and read_manifest(final) is not None:
            if asked:  # a cache hit is news to a caller's bar, never a stderr line (resolve runs on every refresh)
                asked(1.0, f"{final.name} is already converted")
            return ref_from_manifest(final, read_manifest(final))
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
        return ref_from_manifest(final, read_manifest(final))


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
