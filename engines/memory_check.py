"""What the in-process engines (MLX, torch) share about memory: the last check before they read weights,
and turning a library's exceptions (out-of-memory above all) into one actionable message.

The pool's guard (planning.guard, injected by whoever builds the pool) plans a load in full before it
starts, against the RAM the parent process sees. `check_weights_fit` is what only the engine sees at
load time, in its own worker: the memory limit the user set, or the device's own free memory (Metal's
working set, free CUDA memory), so a direct `engine.load()` that cannot fit fails with a message instead
of the allocator's crash.
"""

from __future__ import annotations

from collections.abc import Callable

from core.errors import EngineUnavailable, InsufficientMemory, LocalbenchError

MEMORY_MULTIPLIER = 1.2
"""Planning factor: model weights × 1.2 = memory a load needs (weights plus KV cache and compute buffers)."""

OOM_TEXTS = ("out of memory", "outofmemory", "can't allocate memory", "malloc")
"""Lower-case fragments of out-of-memory messages: torch (CUDA, MPS, CPU allocator), MLX (Metal, malloc)."""


def check_weights_fit(
    what_loads: str,
    weights_bytes: int,
    config,
    library: str,
    way_out: str,
    device_free: Callable[[], tuple[int, str]] | None = None,
) -> None:
    """InsufficientMemory when weights × MEMORY_MULTIPLIER exceed what the load may use: `config`'s
    memory_limit_bytes when set, else `device_free()` (bytes free, what they are) for a device with
    memory of its own, else available RAM. `config.allow_oversize` (the user's override) skips it."""
    if config.allow_oversize:
        return
    if config.memory_limit_bytes is not None:
        available, where = config.memory_limit_bytes, f"the {library} memory limit you set"
    elif device_free is not None:
        available, where = device_free()
    else:
        import psutil

        available, where = psutil.virtual_memory().available, "available RAM"
    need = int(weights_bytes * MEMORY_MULTIPLIER)
    if need > available:
        raise InsufficientMemory(
            f"{what_loads} needs about {need / 2**20:.0f} MiB (weights × {MEMORY_MULTIPLIER}) but {where} is "
            f"{available / 2**20:.0f} MiB — {way_out}, or load anyway with --allow-oversize"
        )


def is_oom(err: BaseException) -> bool:
    """True for an out-of-memory error from torch, MLX or Python."""
    text = str(err).lower()
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or any(t in text for t in OOM_TEXTS)


def library_error(err: BaseException, what: str, library: str, way_out: str) -> LocalbenchError:
    """A library exception raised while doing `what`, as one actionable message: InsufficientMemory
    (with `way_out`) for out-of-memory, EngineUnavailable otherwise; our own errors pass through."""
    if isinstance(err, LocalbenchError):
        return err
    first = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
    if is_oom(err):
        return InsufficientMemory(f"out of memory while {what}: {first} — {way_out}")
    if "mps" in first.lower() and isinstance(err, NotImplementedError):
        return EngineUnavailable(f"{first} — set PYTORCH_ENABLE_MPS_FALLBACK=1 or use --device cpu")
    return EngineUnavailable(f"{library} failed while {what}: {first}")
