"""What machine this is, and how to run models on it.

`detect_hardware()` collects the raw text of a few cheap probes (sysctl and system_profiler on macOS,
/proc files and nvidia-smi or NVML on Linux, psutil elsewhere), hands it to `profile_from_outputs()`
(engines.hardware_parsers, re-exported here) and caches the resulting `HardwareProfile`; tests replay
outputs recorded on other machines through the same function. `optimal_config()` turns a profile and,
optionally, a model size into a `RuntimeConfig` whose every choice carries a reason, following the
design record's seed table (`QUANTIZATION_STRATEGY`, `SEED_TARGETS`). No heavy library (torch, mlx,
llama_cpp) is imported here, except torch when it is already loaded or an NVIDIA driver is present
without NVML and nvidia-smi.
"""

from __future__ import annotations

import functools
import importlib.util
import os as _os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import NamedTuple

from engines import hardware_parsers as hp
from engines.errors import BadParameter
from engines.hardware_parsers import (  # noqa: F401  (re-exported: engines.hardware is the public face)
    BW_SOURCE_MEASURED,
    PROBED_LIBRARIES,
    HardwareProfile,
    apple_bandwidth_gbs,
    apple_family_tier,
    format_bytes,
    parse_meminfo,
    parse_nvidia_smi,
    parse_proc_cpuinfo,
    parse_sysctl,
    parse_system_profiler_displays,
    probe_libraries,
    profile_from_outputs,
)

SYSCTL_KEYS = (
    "hw.memsize",
    "hw.perflevel0.physicalcpu",
    "hw.perflevel1.physicalcpu",
    "hw.physicalcpu",
    "machdep.cpu.brand_string",
    "iogpu.wired_limit_mb",
)
"""What `sysctl` is asked on macOS; tests/fixtures/hardware/*/sysctl.txt record its output."""

BW_PROBE_BYTES = 256 * 2**20
"""Size of the array the bandwidth probe copies (256 MiB: larger than desktop and laptop CPU caches)."""


def measure_bandwidth_gbs(n_bytes: int = BW_PROBE_BYTES, repeats: int = 3) -> float:
    """Main-memory bandwidth in GB/s: best of `repeats` numpy copies, counting read + write."""
    import numpy as np

    src = np.ones(n_bytes // 8, dtype=np.float64)  # ones, not empty: pages must be touched first
    dst = np.zeros_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


def _run(cmd: list[str], timeout_s: float = 10.0) -> str:
    """stdout + stderr of a probe command, '' when it is missing or fails to start."""
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout + done.stderr


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _nvml_text() -> str:
    """nvidia-smi style CSV from NVML, '' when there is no driver or no GPU."""
    if importlib.util.find_spec("pynvml") is None:
        return ""
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return ""
    try:
        rows = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            rows.append(f"{name}, {pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20}")
        return "\n".join(rows)
    except pynvml.NVMLError:
        return ""
    finally:
        pynvml.nvmlShutdown()


def _torch_cuda_text() -> str:
    """nvidia-smi style CSV from torch.cuda. Importing torch costs seconds, so only when it is loaded
    already or an NVIDIA driver is visibly present."""
    driver = _os.path.exists("/proc/driver/nvidia") or _os.path.exists("/dev/nvidia0")
    if "torch" not in sys.modules and not (driver and importlib.util.find_spec("torch") is not None):
        return ""
    import torch

    try:
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        props = [torch.cuda.get_device_properties(i) for i in range(n)]
    except (RuntimeError, AssertionError):  # CPU-only build or a broken driver
        return ""
    return "\n".join(f"{p.name}, {p.total_memory // 2**20}" for p in props)


def _nvidia_text() -> tuple[str, str]:
    """(nvidia-smi style CSV, where it came from): NVML, then nvidia-smi, then torch.cuda."""
    if text := _nvml_text():
        return text, "NVML"
    text = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
    if hp.parse_nvidia_smi(text):
        return text, "nvidia-smi"
    if text := _torch_cuda_text():
        return text, "torch.cuda"
    return "", ""


def _fallback_text() -> str:
    lines = [f"cpu_name: {platform.processor()}"]
    try:
        import psutil

        lines += [f"physical_cores: {psutil.cpu_count(logical=False) or 1}"]
        lines += [f"ram_bytes: {psutil.virtual_memory().total}"]
    except ImportError:
        lines += [f"physical_cores: {_os.cpu_count() or 1}"]
    return "\n".join(lines)


def _metal_working_set() -> str:
    """Metal's real limit, only when MLX is already imported (importing it here would cost time)."""
    mx = sys.modules.get("mlx.core")
    info = getattr(mx, "device_info", None) or getattr(getattr(mx, "metal", None), "device_info", None)
    try:
        return str(int(info()["max_recommended_working_set_size"])) if info else ""
    except (KeyError, TypeError, ValueError, RuntimeError):
        return ""


def collect_outputs(os_name: str) -> dict[str, str]:
    """The live texts that profile_from_outputs() parses, for this machine."""
    texts = {"fallback": _fallback_text()}
    if os_name == "macOS":
        texts["sysctl"] = _run(["sysctl", *SYSCTL_KEYS])
        texts["system_profiler"] = _run(["system_profiler", "SPDisplaysDataType"], timeout_s=20.0)
        texts["metal_working_set"] = _metal_working_set()
        return texts
    if os_name == "Linux":
        texts["cpuinfo"] = _read("/proc/cpuinfo")
        texts["meminfo"] = _read("/proc/meminfo")
        texts["cpu_atom"] = _read("/sys/devices/cpu_atom/cpus")
        if hasattr(_os, "sched_getaffinity"):
            texts["affinity"] = str(len(_os.sched_getaffinity(0)))
    texts["nvidia_smi"], texts["gpu_source"] = _nvidia_text()
    return texts


@functools.lru_cache(maxsize=4)
def detect_hardware(probe_bandwidth: bool | None = None) -> HardwareProfile:
    """This machine's profile (cached). `probe_bandwidth` None means: unless LOCALBENCH_NO_BW_PROBE=1.

    The probe (a 256 MiB numpy copy, well under a second) runs only off Apple Silicon, where Apple's
    published figure is used instead.
    """
    os_name = hp.normalize_os(platform.system())
    texts = collect_outputs(os_name)
    if probe_bandwidth is None:
        probe_bandwidth = _os.environ.get("LOCALBENCH_NO_BW_PROBE", "") not in ("1", "true", "yes")
    apple = os_name == "macOS" and hp.apple_family_tier(texts.get("sysctl", ""))[0] != ""
    measured = None
    if probe_bandwidth and not apple:
        try:
            measured = measure_bandwidth_gbs()
        except (ImportError, MemoryError):
            measured = None
    return profile_from_outputs(os_name, platform.machine(), texts, measured_bandwidth_gbs=measured)


# --- the optimal runtime configuration -------------------------------------------------------------

MEMORY_MULTIPLIER = 1.2
"""Planning factor: model weights × 1.2 = memory needed (weights plus KV cache and compute buffers)."""

CPU_USABLE_RAM_FRACTION = 0.75
"""Share of RAM a CPU-only run may plan for; the rest is left to the OS and other programs."""

QUANT_BITS_PER_WEIGHT: dict[str, float] = {
    "F16": 16.0005,
    "Q8_0": 8.5008,
    "Q6_K": 6.5633,
    "Q5_K_M": 5.7036,
    "Q4_K_M": 4.8944,
    "Q4_K_S": 4.6672,
    "IQ4_XS": 4.4597,
    "Q3_K_S": 3.6429,
    "Q2_K": 3.1593,
}
"""llama.cpp's published bits per weight for Llama-3.1-8B, used to size weights before a file exists."""

SHRINK_LADDER = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "Q3_K_S")
"""Steps down when weights do not fit. Never Q2_K: its ΔPPL on Llama 3 8B is 3.52 against Q4_K_M's 0.175."""

MLX_Q_BITS = {"Q8_0": 8, "Q6_K": 6, "Q5_K_M": 5, "Q4_K_M": 4, "Q4_K_S": 4, "Q3_K_S": 3}
"""The nearest `mlx_lm.convert(q_bits=...)` for each GGUF type."""


class QuantRule(NamedTuple):
    """One row of the seed table: models below `below_params_b` billion parameters get `quantization`."""

    below_params_b: float
    quantization: str
    seed_class: str
    """The design record's wording: '3B', '7B', '8B/12B/30B', '70B'."""


QUANTIZATION_STRATEGY: tuple[QuantRule, ...] = (
    QuantRule(4.0, "Q8_0", "3B"),
    QuantRule(8.0, "Q5_K_M", "7B"),
    QuantRule(65.0, "Q4_K_M", "8B/12B/30B"),
    QuantRule(float("inf"), "Q4_K_S", "70B"),
)
"""The design record's default quantization by model size. Boundaries sit between nominal classes,
because a '3B' model has 3.1–3.8 B parameters, a '7B' 6.7–7.6 B and an '8B' 8.0–8.2 B."""


@dataclass(frozen=True)
class SeedTargets:
    """The design record's targets: Qwen3-8B on an Apple M3 Max (ANCHORS.md)."""

    machine: str = "Apple M3 Max"
    model: str = "Qwen3-8B"
    gen_tps_min: float = 40.0
    """Generation speed target: more than 40 tokens/s."""
    ttft_s_max: float = 0.200
    """First-token latency target: under 200 ms."""
    memory_gb_max: float = 8.0
    """Memory target: under 8 GB (1e9 bytes)."""
    power_w_max: float = 35.0
    quality_loss_pct_max: float = 5.0
    """Q4_K_M quality loss against the unquantized model, percent."""
    speedup_vs_cpu_min: float = 3.0
    """Accelerated generation must be at least 3× the CPU's."""
    baseline_gen_tps: tuple[tuple[str, float], ...] = (("cpu", 8.0), ("torch_mps", 22.0), ("mlx_q4", 50.0))
    baseline_ttft_s: tuple[tuple[str, float], ...] = (("cpu", 0.8), ("torch_mps", 0.4), ("mlx_q4", 0.15))
    baseline_memory_gb: tuple[tuple[str, float], ...] = (("f16", 16.0), ("q4", 4.5))


SEED_TARGETS = SeedTargets()


@dataclass(frozen=True)
class RuntimeConfig:
    """How to run models on one machine, with one sentence of reasoning per decision."""

    backend: str
    """'mlx' | 'llamacpp' (an engines.registry name)."""
    device: str
    """'metal' | 'cuda' | 'cpu'."""
    quantization: str
    """A GGUF type from the seed table ('Q4_K_M', ...) or 'as shipped' when no model size was given."""
    metal: bool
    memory_multiplier: float
    """Weights × this = memory needed."""
    num_ctx: int
    """Context window in tokens."""
    n_threads: int
    n_gpu_layers: int
    """-1 = every layer on the GPU, 0 = CPU only."""
    reasons: tuple[str, ...]
    mlx_q_bits: int | None = None
    """For backend 'mlx': the `mlx_lm.convert(q_bits=...)` matching `quantization`."""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out

    def load_config(self):
        """The engines.base.LoadConfig these settings describe."""
        from engines.base import LoadConfig

        return LoadConfig(
            n_ctx=self.num_ctx, n_threads=self.n_threads, n_gpu_layers=self.n_gpu_layers, device=self.device
        )


def quantization_for(params_b: float) -> QuantRule:
    """The seed-table row for a model of `params_b` billion parameters."""
    return next(rule for rule in QUANTIZATION_STRATEGY if params_b < rule.below_params_b)


def weights_bytes(params_b: float, quantization: str) -> float:
    """Weights ≈ n_params × bits_per_weight / 8, in bytes."""
    return params_b * 1e9 * QUANT_BITS_PER_WEIGHT[quantization] / 8


def _context_for(memory_bytes: int) -> int:
    # 0.9: "16 GB" machines report a little less (kernel reservations; a 24 GB card shows 23.99 GiB).
    gib = memory_bytes / 2**30 / 0.9
    return 32768 if gib >= 64 else 16384 if gib >= 32 else 8192 if gib >= 16 else 4096


def optimal_config(profile: HardwareProfile, model_params_b: float | None = None) -> RuntimeConfig:
    """The backend, device, quantization, context and threads to use on `profile` for a model of
    `model_params_b` billion parameters (None: the bundled default model)."""
    reasons: list[str] = []
    if profile.apple_silicon:
        device = "metal"
        backend = "mlx" if profile.has_library("mlx_lm") else "llamacpp"
        if backend == "mlx":
            reasons.append(
                f"{profile.chip} with mlx-lm installed: MLX on the Metal GPU (design record on an M3 Max, "
                "Qwen3-8B: MLX Q4 50 t/s against PyTorch MPS 22 and CPU 8)."
            )
        else:
            reasons.append(
                f"{profile.chip} without mlx-lm: llama.cpp with every layer on Metal "
                "(pip install mlx-lm to use MLX, the design record's fastest path)."
            )
    elif "cuda" in profile.accelerators:
        device, backend = "cuda", "llamacpp"
        reasons.append(
            f"NVIDIA GPU ({profile.gpu_name}): llama.cpp with every layer offloaded to CUDA; this needs a "
            "CUDA build of llama-cpp-python (CMAKE_ARGS='-DGGML_CUDA=on' pip install llama-cpp-python)."
        )
    else:
        device, backend = "cpu", "llamacpp"
        why = "Intel Mac (its GPU is not used for models)" if profile.family == "Intel Mac" else "No GPU"
        reasons.append(f"{why}: llama.cpp on the CPU, no layers offloaded.")

    n_threads = max(profile.perf_cores, 1)
    notes = [] if profile.apple_silicon else ["SMT siblings add nothing"]
    if profile.efficiency_cores:
        notes.append(f"the {profile.efficiency_cores} efficiency cores would slow generation down")
    reasons.append(f"n_threads = {n_threads}, the physical performance cores ({'; '.join(notes) or 'all of them'}).")

    if device == "cpu":
        num_ctx = 4096
        reasons.append("num_ctx = 4096: on the CPU, prompt processing makes long contexts slow.")
    else:
        basis = profile.ram_bytes if device == "metal" else profile.accelerator_memory_bytes or 0
        num_ctx = _context_for(basis)
        label = "unified memory" if device == "metal" else "VRAM"
        reasons.append(
            f"num_ctx = {num_ctx} for {format_bytes(basis)} of {label} "
            "(8 GB → 4096, 16 GB → 8192, 32 GB → 16384, 64 GB and more → 32768 tokens)."
        )

    reasons.append(
        f"Memory planning: weights (parameters × bits per weight / 8) × {MEMORY_MULTIPLIER} = memory needed "
        "(the extra covers the KV cache and compute buffers)."
    )
    quantization = "as shipped"
    if model_params_b is None:
        reasons.append("No model size given: the bundled default model (a Q4_1 GGUF) runs as shipped.")
    else:
        quantization = _choose_quantization(profile, device, model_params_b, reasons)

    mlx_q_bits = MLX_Q_BITS.get(quantization) if backend == "mlx" else None
    if mlx_q_bits:
        reasons.append(f"MLX equivalent: mlx_lm.convert(..., quantize=True, q_bits={mlx_q_bits}, q_group_size=64).")
    return RuntimeConfig(
        backend=backend,
        device=device,
        quantization=quantization,
        metal=device == "metal",
        memory_multiplier=MEMORY_MULTIPLIER,
        num_ctx=num_ctx,
        n_threads=n_threads,
        n_gpu_layers=0 if device == "cpu" else -1,
        reasons=tuple(reasons),
        mlx_q_bits=mlx_q_bits,
    )


def _choose_quantization(profile: HardwareProfile, device: str, params_b: float, reasons: list[str]) -> str:
    """The seed table's choice, stepped down SHRINK_LADDER until weights × 1.2 fit; appends reasons."""
    if not params_b > 0 or params_b > 10_000:
        raise BadParameter(f"model size must be between 0 and 10000 billion parameters, got {params_b}")
    if device == "cpu":
        usable = int(profile.ram_bytes * CPU_USABLE_RAM_FRACTION)
        where = f"{CPU_USABLE_RAM_FRACTION:.0%} of RAM"
    else:
        usable = profile.accelerator_memory_bytes or profile.ram_bytes * 2 // 3
        where = "the GPU's share of unified memory" if device == "metal" else "VRAM"
    rule = quantization_for(params_b)
    reasons.append(f"Seed table: {params_b:g} B parameters is the {rule.seed_class} class → {rule.quantization}.")
    step = SHRINK_LADDER.index(rule.quantization)
    chosen = rule.quantization
    need = weights_bytes(params_b, chosen) * MEMORY_MULTIPLIER
    while need > usable and step + 1 < len(SHRINK_LADDER):
        step += 1
        smaller = SHRINK_LADDER[step]
        smaller_need = weights_bytes(params_b, smaller) * MEMORY_MULTIPLIER
        reasons.append(
            f"{chosen} needs {need / 1e9:.1f} GB, more than {where} ({usable / 1e9:.1f} GB): one step down to "
            f"{smaller} ({smaller_need / 1e9:.1f} GB)."
        )
        chosen, need = smaller, smaller_need
    if need > usable:
        partial = " or offload only part of the layers (lower n_gpu_layers)" if device == "cuda" else ""
        reasons.append(
            f"Even {chosen} needs {need / 1e9:.1f} GB, more than {where} ({usable / 1e9:.1f} GB): "
            f"choose a smaller model{partial}."
        )
    else:
        reasons.append(
            f"{chosen}: {weights_bytes(params_b, chosen) / 1e9:.1f} GB of weights × {MEMORY_MULTIPLIER} = "
            f"{need / 1e9:.1f} GB, within {where} ({usable / 1e9:.1f} GB)."
        )
    return chosen
