"""Live hardware probes: what machine this is, read once and cached as a `HardwareProfile`.

`detect_hardware()` collects the raw text of a few cheap probes (sysctl and system_profiler on macOS,
/proc files and nvidia-smi or NVML on Linux, psutil elsewhere) and hands it to
`machine.profile.profile_from_outputs()`; tests replay outputs recorded on other machines through the
same function. No heavy library (torch, mlx, llama_cpp) is imported here, except torch when it is
already loaded or an NVIDIA driver is present without NVML and nvidia-smi.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import itertools
import os as _os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from machine import profile as hp
from machine.profile import HardwareProfile, profile_from_outputs

SYSCTL_KEYS = ("hw", "machdep", "iogpu", "kern.hv_vmm_present")
"""What `sysctl` is asked on macOS: whole subtrees, so every perflevel (Super, Performance,
Efficiency, Standard), hw.optional.arm64 and the brand string come along; tests/fixtures/hardware/
*/sysctl.txt record its output (real captures, see the README there)."""

BW_PROBE_BYTES = 256 * 2**20
"""Size of the array the bandwidth probe copies (256 MiB: larger than desktop and laptop CPU caches)."""


def measure_bandwidth_gbs(n_bytes: int = BW_PROBE_BYTES, repeats: int = 3, threads: int | None = None) -> float:
    """Main-memory bandwidth in GB/s, counting read + write: best of `repeats` numpy copies of the array,
    split over `threads` threads (default: every CPU this process may use). numpy releases the GIL while it
    copies, so the slices run in parallel; one thread alone reaches only a fraction of a many-core
    machine's bandwidth."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    n = max(1, threads or usable_cpus())
    src = np.ones(n_bytes // 8, dtype=np.float64)  # ones, not empty: pages must be touched first
    dst = np.zeros_like(src)
    bounds = np.linspace(0, src.size, n + 1, dtype=np.int64)
    slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]

    def copy(part: slice) -> None:
        np.copyto(dst[part], src[part])

    best = float("inf")
    with ThreadPoolExecutor(max_workers=n) as workers:
        list(workers.map(copy, slices))  # first touch of every slice from its own thread
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(workers.map(copy, slices))
            best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity where the OS has one)."""
    if hasattr(_os, "sched_getaffinity"):
        return len(_os.sched_getaffinity(0)) or 1
    return _os.cpu_count() or 1


def parse_cpu_flags(cpuinfo: str) -> set[str]:
    """The instruction-set flags in /proc/cpuinfo text: the `flags` (x86) or `Features` (Arm) line of its
    first CPU block, e.g. {'avx2', 'amx_tile'} or {'asimd', 'sve'}; empty when there is none."""
    for line in cpuinfo.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def parse_sysctl_flags(text: str) -> set[str]:
    """The keys set to 1 in `sysctl hw.optional` output ('hw.optional.neon: 1' gives 'hw.optional.neon')."""
    pairs = (line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return {key.strip() for key, value in pairs if value.strip() == "1"}


def cpu_flags() -> set[str]:
    """This CPU's instruction-set flags: on Linux those of /proc/cpuinfo ('avx2', 'asimd', ...), on macOS the
    `hw.optional` sysctl keys set to 1 ('hw.optional.neon', 'hw.optional.arm.FEAT_SME', ...); empty where
    neither can be read."""
    if platform.system() == "Darwin":
        return parse_sysctl_flags(run_command(["sysctl", "hw.optional"]).text)
    return parse_cpu_flags(_read("/proc/cpuinfo"))


SYSFS_CACHE = "/sys/devices/system/cpu/cpu0/cache"


def parse_cache_size(text: str) -> int | None:
    """Bytes from a sysfs/lscpu cache size such as '32768K', '1.5 MiB', '36 MiB (1 instance)'."""
    import re

    m = re.match(r"\s*([\d.]+)\s*([KMG]?)(i?B)?", text.strip(), re.IGNORECASE)
    if not m:
        return None
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def last_level_cache_bytes(root: str = SYSFS_CACHE) -> tuple[int | None, str]:
    """(bytes, source) of the CPU's last-level cache: the highest level under sysfs on Linux, sysctl's
    hw.l3cachesize / hw.l2cachesize on macOS; (None, why) where neither is readable."""
    best: tuple[int, int] | None = None
    for level_file in sorted(glob.glob(f"{root}/index*/level")):
        folder = level_file.rsplit("/", 1)[0]
        kind, size = _read(f"{folder}/type").strip(), parse_cache_size(_read(f"{folder}/size"))
        level = int(_read(level_file).strip() or 0)
        if kind != "Instruction" and size and (best is None or level > best[0]):
            best = (level, size)
    if best:
        return best[1], f"L{best[0]} from {root}"
    if platform.system() == "Darwin":
        for key in ("hw.l3cachesize", "hw.l2cachesize"):
            out = run_command(["sysctl", "-n", key]).text.strip()
            if out.isdigit() and int(out) > 0:
                return int(out), f"sysctl {key}"
    return None, "last-level cache size not readable here"


MACOS_COMMANDS = ("memory_pressure", "vm_stat", "footprint")
"""Probes that exist only on macOS: elsewhere run_command says so instead of running them."""


@dataclass(frozen=True)
class CommandResult:
    """The output of one probe command, or why there is none."""

    ok: bool
    text: str
    message: str = ""


def run_command(args: list[str], timeout_s: float = 3.0, os_name: str | None = None) -> CommandResult:
    """Run a probe; a missing command (or one of another OS) gives a clear message, not an exception."""
    os_name = os_name or platform.system()
    name = args[0]
    if name in MACOS_COMMANDS and os_name != "Darwin":
        return CommandResult(False, "", f"`{name}` is a macOS command; not available on {os_name}")
    if shutil.which(name) is None:
        return CommandResult(False, "", f"`{name}` was not found on this {os_name} machine (not on PATH)")
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return CommandResult(False, "", f"`{' '.join(args)}` did not answer within {timeout_s:g} s")
    except OSError as err:
        return CommandResult(False, "", f"`{name}` could not run: {err}")
    if done.returncode != 0 and not done.stdout.strip():
        return CommandResult(False, done.stderr, f"`{' '.join(args)}` failed: {done.stderr.strip()[:200]}")
    return CommandResult(True, done.stdout)


_NVML_STATE: dict[str, object] = {}


def nvml_devices() -> tuple[list[tuple[str, int, int]], str]:
    """(name, used bytes, total bytes) per NVIDIA GPU from NVML (nvidia-ml-py), and why there are none."""
    if importlib.util.find_spec("pynvml") is None:
        return [], "NVML: pynvml not installed"
    if _NVML_STATE.get("failed"):
        return [], str(_NVML_STATE["failed"])
    import pynvml

    try:
        if not _NVML_STATE.get("init"):
            pynvml.nvmlInit()
            _NVML_STATE["init"] = True
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            out.append((name.decode() if isinstance(name, bytes) else name, int(mem.used), int(mem.total)))
        return out, ""
    except pynvml.NVMLError as err:
        _NVML_STATE["failed"] = f"NVML: no NVIDIA driver or GPU here ({err})"
        return [], str(_NVML_STATE["failed"])


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _nvml_text() -> str:
    """nvidia-smi style CSV from NVML, '' when there is no driver or no GPU."""
    gpus, _ = nvml_devices()
    return "\n".join(f"{name}, {total // 2**20}" for name, _, total in gpus)


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
    text = run_command(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"], 10.0).text
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
        texts["sysctl"] = run_command(["sysctl", *SYSCTL_KEYS], 10.0).text
        texts["system_profiler"] = run_command(["system_profiler", "SPDisplaysDataType"], 20.0).text
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


@dataclass(frozen=True)
class LiveOutputs:
    """What the live probes returned: the inputs of profile_from_outputs(), as `doctor --save` writes them."""

    os: str
    arch: str
    texts: dict[str, str]
    """Raw probe output by profile_from_outputs() key."""
    libraries: tuple[tuple[str, bool], ...]
    measured_bandwidth_gbs: float | None
    """The numpy copy probe's result in GB/s, None when it did not run."""

    def profile(self) -> HardwareProfile:
        return profile_from_outputs(
            self.os, self.arch, self.texts, libraries=self.libraries, measured_bandwidth_gbs=self.measured_bandwidth_gbs
        )


def collect_live(probe_bandwidth: bool | None = None) -> LiveOutputs:
    """Run this machine's probes once. `probe_bandwidth` None means: unless LOCALBENCH_NO_BW_PROBE=1.

    The probe (a 256 MiB numpy copy, well under a second) runs only off Apple Silicon, where Apple's
    published figure is used instead.
    """
    os_name = hp.normalize_os(platform.system())
    texts = collect_outputs(os_name)
    if probe_bandwidth is None:
        probe_bandwidth = _os.environ.get("LOCALBENCH_NO_BW_PROBE", "") not in ("1", "true", "yes")
    sysctl = texts.get("sysctl", "")
    apple = os_name == "macOS" and (hp.apple_family_tier(sysctl)[0] != "" or "hw.optional.arm64: 1" in sysctl)
    measured = None
    if probe_bandwidth and not apple:
        try:
            measured = measure_bandwidth_gbs()
        except (ImportError, MemoryError):
            measured = None
    return LiveOutputs(os_name, platform.machine(), texts, hp.probe_libraries(), measured)


@functools.lru_cache(maxsize=4)
def detect_hardware(probe_bandwidth: bool | None = None) -> HardwareProfile:
    """This machine's profile (cached); see collect_live() for `probe_bandwidth`."""
    return collect_live(probe_bandwidth).profile()
