"""The MLX and torch engines' own last check before they read weights: weights × 1.2 against the device.

The pool's guard (planning.guard) plans a load in full before it starts; this check is what an engine
alone can see at load time (Metal's working set, free CUDA memory, the memory limit the user set), so a
direct `engine.load()` that cannot fit fails with a message instead of the allocator's crash.
"""

from __future__ import annotations

from core.errors import InsufficientMemory

MEMORY_MULTIPLIER = 1.2
"""Planning factor: model weights × 1.2 = memory a load needs (weights plus KV cache and compute buffers)."""


def check_weights_fit(
    what_loads: str, weights_bytes: int, available_bytes: int, where: str, way_out: str, allow_oversize: bool
) -> None:
    """InsufficientMemory when weights × MEMORY_MULTIPLIER exceed `available_bytes` (unless the user overrides)."""
    need = int(weights_bytes * MEMORY_MULTIPLIER)
    if need > available_bytes and not allow_oversize:
        raise InsufficientMemory(
            f"{what_loads} needs about {need / 2**20:.0f} MiB (weights × {MEMORY_MULTIPLIER}) but {where} is "
            f"{available_bytes / 2**20:.0f} MiB — {way_out}, or load anyway with --allow-oversize"
        )
