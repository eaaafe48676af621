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

OOM_TEXTS = (
    "out of memory",  # torch "CUDA out of memory", "MPS backend out of memory"; CUDA "CUDA error: out of memory"
    "outofmemory",  # Metal "kIOGPUCommandBufferCallbackErrorOutOfMemory", torch's OutOfMemoryError by name
    "insufficient memory",  # Metal "[METAL] Command buffer execution failed: Insufficient Memory (00000008:...)"
    "can't allocate memory",  # torch CPU "DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes"
    "[malloc] unable to allocate",  # MLX allocators "[malloc] Unable to allocate N bytes."
    "[metal::malloc]",  # MLX Metal "Attempting to allocate N bytes which is greater than ...", "Resource limit (N)"
    "memory allocation error",  # oneMKL "Intel oneMKL FATAL ERROR: memory allocation error."
    "not enough memory to allocate",  # oneMKL DFTI
    "status_alloc_failed",  # cuBLAS "CUBLAS_STATUS_ALLOC_FAILED", cuDNN "CUDNN_STATUS_ALLOC_FAILED"
)
"""Lower-case fragments that only an allocation failure prints, each with the library message it comes from
(read out of the libraries' own sources and binaries: libtorch_cpu's strings, mlx's allocator.cpp)."""

ONEDNN_TEXTS = ("could not create a primitive", "could not execute a primitive")
"""oneDNN's C++ API error for a failed dnnl_primitive_create / execute, whole. Its status code is dropped by
the time torch raises it, and the same text stands for out_of_memory and for other failures: measured on an
AMD EPYC with AVX-512 BF16, under an address-space cap, the brgemm JIT's 256 KiB code buffer (mmap) failed
with ENOMEM and torch raised "could not create a primitive" from F.linear; in pytorch/pytorch#89104 the same
text was a runtime_error (an AVX2 code-path bug) on a machine with memory to spare. ("could not create a
primitive descriptor ..." is `unimplemented`, never memory.) So the text counts as out-of-memory only when the
process is actually short of memory: see `memory_is_short`."""

SHORT_HEADROOM_BYTES = 256 * 2**20
"""Below this much room left (address-space cap, cgroup limit or available RAM), a oneDNN primitive failure is
taken as an allocation failure. oneDNN's own allocations are small (JIT code buffers of 256 KiB, measured; torch
hands it the scratchpad), so after one fails the room left is small too; 256 MiB is far above that and far
below what a machine with memory to spare has free."""


def memory_headroom() -> tuple[int, str]:
    """(bytes this process may still allocate, what bounds it): the least of the address-space cap
    (RLIMIT_AS − virtual size), the cgroup v2 memory limit (memory.max − memory.current) and available RAM."""
    import psutil

    rooms = [(psutil.virtual_memory().available, "available RAM")]
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            rooms.append((soft - psutil.Process().memory_info().vms, "room under the address-space limit"))
    except (ImportError, OSError, ValueError):  # no RLIMIT_AS on this platform
        pass
    try:
        from pathlib import Path

        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            rooms.append((int(limit) - int((cgroup / "memory.current").read_text()), "room under the cgroup limit"))
    except (OSError, ValueError):  # not Linux, cgroup v1, or no memory controller
        pass
    return min(rooms)


def memory_is_short() -> bool:
    """True when this process has less than SHORT_HEADROOM_BYTES left to allocate."""
    return memory_headroom()[0] < SHORT_HEADROOM_BYTES


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


def is_onednn_failure(err: BaseException) -> bool:
    """True for oneDNN's status-less primitive failure (ONEDNN_TEXTS), whatever its cause."""
    return str(err).strip().lower() in ONEDNN_TEXTS


def is_oom(err: BaseException) -> bool:
    """True for an out-of-memory error from torch, MLX, oneMKL, CUDA libraries or Python, and for oneDNN's
    primitive failure while this process is short of memory."""
    text = str(err).lower()
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or any(t in text for t in OOM_TEXTS):
        return True
    return is_onednn_failure(err) and memory_is_short()


def library_error(err: BaseException, what: str, library: str, way_out: str) -> LocalbenchError:
    """A library exception raised while doing `what`, as one actionable message: InsufficientMemory
    (with `way_out`) for out-of-memory, EngineUnavailable otherwise; our own errors pass through."""
    if isinstance(err, LocalbenchError):
        return err
    first = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
    if is_onednn_failure(err):
        room, where = memory_headroom()
        if room < SHORT_HEADROOM_BYTES:
            return InsufficientMemory(
                f"out of memory while {what}: oneDNN {first} with {room / 2**20:.0f} MiB of {where} — {way_out}"
            )
        return EngineUnavailable(
            f"{library} failed while {what}: oneDNN {first} with {room / 2**20:.0f} MiB of {where}, so not for "
            "memory — try ONEDNN_MAX_CPU_ISA=AVX2 (pytorch#89104) or another dtype"
        )
    if is_oom(err):
        return InsufficientMemory(f"out of memory while {what}: {first} — {way_out}")
    if "mps" in first.lower() and isinstance(err, NotImplementedError):
        return EngineUnavailable(f"{first} — set PYTORCH_ENABLE_MPS_FALLBACK=1 or use --device cpu")
    return EngineUnavailable(f"{library} failed while {what}: {first}")
