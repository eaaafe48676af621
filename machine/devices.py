"""Which device and dtype the MLX and PyTorch engines run on, chosen from a HardwareProfile.

PyTorch: MPS on Apple Silicon (when torch is installed), CUDA where an NVIDIA GPU is present, else the
CPU. MLX: Metal on Apple Silicon, CUDA where the `mlx[cuda]` build is installed, else the CPU. The user
may name a device (`--device cpu|cuda|mps|metal|gpu`); one that is not present is refused with a message
that says what is present. dtypes are 'fp32', 'fp16' and 'bf16'; a dtype the device cannot run (bf16
on MPS before macOS 14, bf16 on CUDA cards older than Ampere) is refused with the dtype that works.

The profile says what hardware exists; `DeviceFacts` adds what only the installed library knows (a
CPU-only torch build, macOS version for MPS bf16, the card's compute capability). Everything here is a
pure function of those two records, so tests replay profiles recorded on a Mac, an NVIDIA box and a
CPU box; `live_facts()` imports torch or mlx and is called only when a model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import BadParameter, EngineUnavailable

DTYPES = ("fp32", "fp16", "bf16")
"""dtype names users type (the torch engine's --dtype)."""

DTYPE_ALIASES = {
    "float32": "fp32",
    "f32": "fp32",
    "fp32": "fp32",
    "float16": "fp16",
    "f16": "fp16",
    "half": "fp16",
    "fp16": "fp16",
    "bfloat16": "bf16",
    "bf16": "bf16",
}

DEVICE_ALIASES = {
    "cpu": "cpu",
    "cuda": "cuda",
    "cuda:0": "cuda",
    "nvidia": "cuda",
    "mps": "mps",
    "metal": "metal",
    "gpu": "gpu",
}
"""Device names users type; 'gpu' means whichever accelerator the engine has here."""

BACKEND_LABEL = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS", "metal": "Metal"}


@dataclass(frozen=True)
class DeviceFacts:
    """What the installed library reports; None means unknown (then the profile decides)."""

    torch_cuda: bool | None = None
    """torch.cuda.is_available() (False on a CPU-only torch build)."""
    torch_mps: bool | None = None
    """torch.backends.mps.is_available()."""
    cuda_bf16: bool | None = None
    """torch.cuda.is_bf16_supported(): compute capability 8.0 (Ampere) or newer."""
    mps_bf16: bool | None = None
    """MPS runs bf16 from macOS 14 on."""
    mlx_metal: bool | None = None
    """mlx.core.metal.is_available()."""
    mlx_cuda: bool | None = None
    """mlx.core.cuda.is_available() (the mlx[cuda] build)."""
    torch_version: str = ""


@dataclass(frozen=True)
class DeviceChoice:
    """The device and dtype a model runs with, and why."""

    engine: str
    """'torch' or 'mlx'."""
    device: str
    """'cpu' | 'cuda' | 'mps' | 'metal'."""
    dtype: str
    """'fp32' | 'fp16' | 'bf16' for torch; '' for MLX (the converted variant fixes it)."""
    reason: str

    @property
    def backend(self) -> str:
        """Label shown in tables: CPU, CUDA, MPS, Metal."""
        return BACKEND_LABEL[self.device]


def normalize_dtype(dtype: str | None) -> str | None:
    """'bfloat16' → 'bf16'; None stays None; anything else is refused."""
    if dtype is None or str(dtype).strip() == "":
        return None
    key = str(dtype).strip().lower()
    if key not in DTYPE_ALIASES:
        raise BadParameter(f"unsupported dtype '{dtype}' — choose one of {', '.join(DTYPES)}")
    return DTYPE_ALIASES[key]


def normalize_device(device: str | None) -> str | None:
    if device is None or str(device).strip() in ("", "auto"):
        return None
    key = str(device).strip().lower()
    if key not in DEVICE_ALIASES:
        raise BadParameter(f"unknown device '{device}' — choose cpu, cuda, mps, metal or gpu")
    return DEVICE_ALIASES[key]


def present_devices(engine: str, profile, facts: DeviceFacts | None = None) -> tuple[str, ...]:
    """Devices this engine can use on this machine, accelerated first, 'cpu' last."""
    facts = facts or DeviceFacts()
    found: list[str] = []
    if engine == "torch":
        if "mps" in profile.accelerators and facts.torch_mps is not False:
            found.append("mps")
        if "cuda" in profile.accelerators and facts.torch_cuda is not False:
            found.append("cuda")
    elif engine == "mlx":
        if profile.apple_silicon and facts.mlx_metal is not False:
            found.append("metal")
        if facts.mlx_cuda and "cuda" in profile.accelerators:
            found.append("cuda")
    else:
        raise BadParameter(f"device selection covers the 'torch' and 'mlx' engines, not '{engine}'")
    return (*found, "cpu")


def _pick(engine: str, profile, facts: DeviceFacts, wanted: str | None) -> tuple[str, str | None]:
    """(device, what the user asked for resolved) — 'gpu' means the first accelerator; an absent device
    raises EngineUnavailable saying what exists; nothing asked means the best present device."""
    present = present_devices(engine, profile, facts)
    if wanted == "gpu":
        if present[0] == "cpu":
            raise _absent(engine, "gpu", profile, facts, present)
        wanted = present[0]
    if wanted is not None and wanted not in present:
        raise _absent(engine, wanted, profile, facts, present)
    return wanted or present[0], wanted


def _absent(engine: str, wanted: str, profile, facts: DeviceFacts, present: tuple[str, ...]) -> EngineUnavailable:
    where = f"{profile.chip or profile.os} ({profile.os})"
    have = ", ".join(present)
    if engine == "torch" and wanted == "mps":
        why = "MPS exists only on Apple Silicon Macs" if not profile.apple_silicon else "torch reports MPS unavailable"
    elif engine == "torch" and wanted == "cuda" and "cuda" in profile.accelerators:
        ver = f" ({facts.torch_version})" if facts.torch_version else ""
        why = (
            f"this torch{ver} is a CPU-only build — install a CUDA build of torch "
            "(pip install torch --index-url https://download.pytorch.org/whl/cu128)"
        )
    elif wanted == "cuda":
        why = "no NVIDIA GPU was found"
    elif engine == "mlx" and wanted == "metal":
        why = "Metal exists only on Apple Silicon Macs"
    elif engine == "mlx" and wanted == "mps":
        why = "MLX uses Metal directly: use --device metal on a Mac"
    else:
        why = f"{wanted} is not available to {engine}"
    return EngineUnavailable(f"device '{wanted}' is not present on {where}: {why} — use --device {have}")


def torch_device(
    profile, requested: str | None = None, dtype: str | None = None, facts: DeviceFacts | None = None
) -> DeviceChoice:
    """Device and dtype for the PyTorch engine: MPS on Apple Silicon, CUDA on NVIDIA, else CPU."""
    facts = facts or DeviceFacts()
    wanted = normalize_device(requested)
    if wanted == "metal":
        wanted = "mps"  # PyTorch reaches the Apple GPU through MPS
    device, wanted = _pick("torch", profile, facts, wanted)
    if wanted:
        why = f"{device} as requested"
    elif device == "mps":
        why = f"{profile.chip} with torch installed: MPS (the Apple GPU)"
    elif device == "cuda":
        why = f"NVIDIA GPU ({profile.gpu_name}): CUDA"
    else:
        why = "no GPU that torch can use here: CPU"
    chosen = normalize_dtype(dtype)
    if chosen is None:
        chosen, dtype_why = default_torch_dtype(device, facts)
    else:
        check_torch_dtype(device, chosen, facts)
        dtype_why = f"{chosen} as requested"
    return DeviceChoice("torch", device, chosen, f"{why}; {dtype_why}.")


def default_torch_dtype(device: str, facts: DeviceFacts) -> tuple[str, str]:
    """(dtype, reason) when the user names none."""
    if device == "cuda":
        if facts.cuda_bf16 is False:
            return "fp16", "fp16 (this card predates bf16 support: compute capability below 8.0)"
        return "bf16", "bf16 (half the bytes of fp32, fp32's range)"
    if device == "mps":
        if facts.mps_bf16 is False:
            return "fp16", "fp16 (MPS runs bf16 only from macOS 14)"
        return "bf16", "bf16 on MPS (macOS 14+)"
    return "bf16", "bf16 (half the bytes of fp32; decoding is memory-bound)"


def check_torch_dtype(device: str, dtype: str, facts: DeviceFacts) -> None:
    """Raise EngineUnavailable when `device` cannot run `dtype`."""
    if dtype == "bf16" and device == "cuda" and facts.cuda_bf16 is False:
        raise EngineUnavailable(
            "bf16 is not supported on this CUDA card (compute capability below 8.0) — use --dtype fp16 or fp32"
        )
    if dtype == "bf16" and device == "mps" and facts.mps_bf16 is False:
        raise EngineUnavailable("bf16 on MPS needs macOS 14 or newer — use --dtype fp16 or fp32")


def mlx_device(profile, requested: str | None = None, facts: DeviceFacts | None = None) -> DeviceChoice:
    """Device for the MLX engine: Metal on Apple Silicon, CUDA with mlx[cuda], else CPU."""
    facts = facts or DeviceFacts()
    device, wanted = _pick("mlx", profile, facts, normalize_device(requested))
    if wanted:
        why = f"{device} as requested"
    elif device == "metal":
        why = f"{profile.chip}: MLX on the Metal GPU"
    elif device == "cuda":
        why = f"NVIDIA GPU ({profile.gpu_name}) with mlx[cuda]: MLX on CUDA"
    else:
        why = "no GPU that MLX can use here (mlx[cpu] build or no accelerator): MLX on the CPU"
    return DeviceChoice("mlx", device, "", why + ".")


def speedup_devices(engine: str, profile, facts: DeviceFacts | None = None) -> tuple[str | None, str]:
    """(accelerated device or None, sentence) for the 'accelerated vs CPU' figure of one engine."""
    present = present_devices(engine, profile, facts)
    if present[0] == "cpu":
        return None, (
            f"only the CPU exists for {engine} on {profile.chip or profile.os}: "
            "no accelerated-vs-CPU figure on this machine"
        )
    return present[0], f"{engine}: {present[0]} vs cpu on {profile.chip or profile.os}"


def live_facts(engine: str) -> DeviceFacts:
    """What the installed torch or mlx reports (imports it: call at load time only)."""
    if engine == "torch":
        import torch

        cuda = bool(torch.cuda.is_available())
        mps_backend = getattr(torch.backends, "mps", None)
        mps = bool(mps_backend and mps_backend.is_available())
        mps_bf16 = None
        if mps and hasattr(mps_backend, "is_macos_or_newer"):
            mps_bf16 = bool(mps_backend.is_macos_or_newer(14, 0))
        return DeviceFacts(
            torch_cuda=cuda,
            torch_mps=mps,
            cuda_bf16=bool(torch.cuda.is_bf16_supported()) if cuda else None,
            mps_bf16=mps_bf16,
            torch_version=str(torch.__version__),
        )
    import mlx.core as mx

    metal = bool(getattr(mx, "metal", None) and mx.metal.is_available())
    cuda_mod = getattr(mx, "cuda", None)
    cuda = bool(cuda_mod and cuda_mod.is_available())
    return DeviceFacts(mlx_metal=metal, mlx_cuda=cuda)


# --- the embeddings engine (sentence-transformers on torch) -----------------------------------------

EMBEDDINGS_DEVICES = ("cpu", "cuda", "mps")
"""Devices sentence-transformers runs on."""


def embeddings_auto_device(accelerators: Sequence[str] = (), live: bool = True) -> str:
    """The device 'auto' means for a hardware profile's accelerators: mps, then cuda, then cpu.
    `live` also asks torch whether it can use the device (imports torch); False trusts the profile."""
    for device in ("mps", "cuda"):
        if device in accelerators and (not live or device in torch_present_devices()):
            return device
    return "cpu"


def torch_present_devices() -> tuple[str, ...]:
    """Devices torch can use in this process (imports torch)."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return tuple(found)


def check_embeddings_device(device: str) -> None:
    """Raise EngineUnavailable when `device` is not present here."""
    if device not in EMBEDDINGS_DEVICES:
        raise BadParameter(f"unknown device '{device}' — choose auto, {', '.join(EMBEDDINGS_DEVICES)}")
    present = torch_present_devices()
    if device not in present:
        raise EngineUnavailable(
            f"device '{device}' is not present on this machine (torch sees: {', '.join(present)}) — "
            "pick one of those, or auto"
        )
