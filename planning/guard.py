"""The load guard: estimate a model's memory before loading it and refuse a load that cannot fit.

`check_load(engine, model_ref, config)` is the EnginePool's guard: `guarded_pool()` builds a pool that
asks it before every load (the pool itself never imports the planner). It plans the model with
planning.estimate for the engine that will run it and compares the
total with the memory available now minus a margin (5 % of RAM, at least 512 MiB). When the
estimate exceeds it, InsufficientMemory carries the numbers and the ways out. The user overrides it
explicitly: `LoadConfig.allow_oversize` (the CLI's --allow-oversize) skips the check, and the Memory
tab's "Load anyway" turns the pool's guard off. Models served by another process (Ollama,
OpenAI-compatible servers) are not checked here: their server owns that memory.
"""

from __future__ import annotations

import dataclasses
import sys

from core.errors import InsufficientMemory, InvalidModelFile
from core.units import fmt_bytes
from engines.base import Engine, LoadConfig
from engines.process.pool import EnginePool
from models.ref import ModelRef
from planning.estimate import MemoryEstimate, estimate, margin_bytes
from planning.specs import load_spec, spec_from_folder, spec_from_gguf

LIBRARY_IMPORT_BYTES: dict[str, tuple[str, int]] = {
    "llamacpp": ("llama_cpp", 29 * 2**20),
    "mlx": ("mlx_lm", 247 * 2**20),
    "torch": ("torch", 255 * 2**20),
}
"""RSS a first load adds by importing the engine's library (measured on the 2-core Linux VM:
llama_cpp 28.7 MiB, mlx_lm 246.5 MiB, torch 208.4 + transformers 46.7 MiB)."""

DTYPE_QUANT = {"fp32": "F32", "float32": "F32", "fp16": "F16", "float16": "F16", "bf16": "BF16", "bfloat16": "BF16"}


def estimate_for_load(engine: Engine | str, model_ref: ModelRef, config: LoadConfig) -> MemoryEstimate | None:
    """The estimate for loading `model_ref` on this engine with `config`; None for server-side models."""
    name = engine if isinstance(engine, str) else engine.name
    if model_ref.format == "remote" or not model_ref.path:
        return None
    if model_ref.format == "gguf":
        spec = spec_from_gguf(model_ref.path, model_ref.name)
    elif model_ref.format in ("hf", "mlx"):
        spec = spec_from_folder(model_ref.path)
    else:
        spec = load_spec(model_ref.path)
    quant = None  # as shipped
    dequantizes = model_ref.format == "gguf" and name != "llamacpp"
    if dequantizes or (
        model_ref.format == "hf" and config.dtype
    ):  # torch / MLX dequantize GGUF, torch casts HF weights to the dtype asked for
        quant = DTYPE_QUANT.get((config.dtype or "bf16").lower(), "BF16")
    n_ctx = min(config.n_ctx, spec.context_length) if spec.context_length else config.n_ctx
    est = estimate(
        spec,
        quant,
        n_ctx,
        n_ubatch=min(config.n_batch, 512),
        cpu_only=name == "llamacpp" and config.n_gpu_layers == 0,
    )
    module, extra = LIBRARY_IMPORT_BYTES.get(name, ("", 0))
    in_worker = not isinstance(engine, str) and getattr(type(engine), "runs_in_worker", False)
    if module and (in_worker or module not in sys.modules):
        where = "in the model's own worker process" if in_worker else "first load in this process"
        notes = (*est.notes, f"includes {fmt_bytes(extra)} for importing {module} ({where})")
        est = dataclasses.replace(est, overhead_bytes=est.overhead_bytes + extra, notes=notes)
    return est


def check_load(
    engine: Engine | str,
    model_ref: ModelRef,
    config: LoadConfig,
    *,
    available_bytes: int | None = None,
    total_bytes: int | None = None,
) -> MemoryEstimate | None:
    """Refuse (InsufficientMemory) a load whose estimate exceeds available memory minus a margin.

    `available_bytes` / `total_bytes` default to psutil's live figures; tests and callers may inject
    others. Returns the estimate (None when the model lives on a server or could not be planned).
    """
    if config.allow_oversize:
        return None
    try:
        est = estimate_for_load(engine, model_ref, config)
    except InvalidModelFile:
        return None  # the engine's own load reports a broken or unplannable file better
    if est is None:
        return None
    if available_bytes is None or total_bytes is None:
        import psutil

        vm = psutil.virtual_memory()
        available_bytes = vm.available if available_bytes is None else available_bytes
        total_bytes = vm.total if total_bytes is None else total_bytes
    margin = margin_bytes(total_bytes)
    allowed = available_bytes - margin
    if est.total_bytes > allowed:
        name = engine if isinstance(engine, str) else engine.name
        parts = ", ".join(
            f"{label.lower()} {value.split(' (')[0]}"
            for label, value, _ in est.rows()[:-1]
            if not value.startswith("0.0 ") and label != "CPU repack copy"  # RSS only, not in the total
        )
        smaller = "a smaller quantization (see the Memory tab or `python app.py plan`)"
        raise InsufficientMemory(
            f"{model_ref.name} on {name} at n_ctx {est.n_ctx} needs about {fmt_bytes(est.total_bytes)} "
            f"({parts}) but only {fmt_bytes(max(allowed, 0))} is free: {fmt_bytes(available_bytes)} available "
            f"minus a {fmt_bytes(margin)} margin — close other programs, lower the context or choose {smaller}, "
            "or override with --allow-oversize (in the UI: Memory tab, Load anyway)"
        )
    return est


def guarded_pool(max_loaded: int = 4) -> EnginePool:
    """An EnginePool that asks `check_load` before every load (the dashboard's, the CLI's, the lab's)."""
    return EnginePool(max_loaded=max_loaded, guard=check_load)
