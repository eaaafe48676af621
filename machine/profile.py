"""The hardware profile record, and the pure functions that build it from recorded probe output.

Each parser takes the text of one command or file (`sysctl`, `system_profiler SPDisplaysDataType`,
`/proc/cpuinfo`, `/proc/meminfo`, `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,
nounits`) and returns plain values; `profile_from_outputs()` combines them, with Apple's published
chip figures, into a frozen `HardwareProfile`. Nothing here runs a command or imports a library, so
tests replay outputs recorded on machines we do not have (tests/fixtures/hardware/); the live probes
live in machine.detect.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import asdict, dataclass

from core.units import fmt_bytes

APPLE_BANDWIDTH_GBS: dict[tuple[str, str], float] = {
    ("M1", "base"): 68.25,  # Apple's figure; often written 68
    ("M1", "Pro"): 200.0,
    ("M1", "Max"): 400.0,
    ("M1", "Ultra"): 800.0,
    ("M2", "base"): 100.0,
    ("M2", "Pro"): 200.0,
    ("M2", "Max"): 400.0,
    ("M2", "Ultra"): 800.0,
    ("M3", "base"): 100.0,
    ("M3", "Pro"): 150.0,
    ("M3", "Ultra"): 819.0,
    ("M4", "base"): 120.0,
    ("M4", "Pro"): 273.0,
    ("M5", "base"): 153.0,
}
"""Apple's published unified-memory bandwidth in GB/s (1e9 bytes/s), by (family, tier)."""

APPLE_BANDWIDTH_BY_GPU_CORES: dict[tuple[str, str], tuple[tuple[int, float], ...]] = {
    ("M3", "Max"): ((30, 300.0), (40, 400.0)),
    ("M4", "Max"): ((32, 410.0), (40, 546.0)),
}
"""Chips whose bandwidth depends on the GPU configuration: (GPU cores, GB/s), smallest first."""

_APPLE_CHIP = re.compile(r"\bApple (M\d+)(?:\s+(Pro|Max|Ultra))?\b")


def parse_key_values(text: str) -> dict[str, str]:
    """`name: value` (or BSD `name = value`) lines into a dict; other lines are ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"\s*([\w.\-]+)\s*[:=]\s*(.*?)\s*$", line)
        if match and match.group(1) != "sysctl":  # "sysctl: unknown oid '...'" on stderr
            out[match.group(1)] = match.group(2)
    return out


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_sysctl(text: str) -> dict:
    """Output of `sysctl hw.memsize hw.perflevel0.physicalcpu hw.perflevel1.physicalcpu
    hw.physicalcpu machdep.cpu.brand_string iogpu.wired_limit_mb`.

    Returns chip (str), ram_bytes, perf_cores, efficiency_cores, physical_cores and wired_limit_mb
    (MiB; 0 means the macOS default); keys the machine lacks (Intel Macs have no perflevel keys,
    macOS before 14 no iogpu.wired_limit_mb) are None.
    """
    kv = parse_key_values(text)
    wired = _int(kv.get("iogpu.wired_limit_mb"))
    if wired is None and _int(kv.get("debug.iogpu.wired_limit")) is not None:
        wired = _int(kv["debug.iogpu.wired_limit"]) // 2**20  # macOS 13 spelled it in bytes
    return {
        "chip": kv.get("machdep.cpu.brand_string", ""),
        "ram_bytes": _int(kv.get("hw.memsize")),
        "perf_cores": _int(kv.get("hw.perflevel0.physicalcpu")),
        "efficiency_cores": _int(kv.get("hw.perflevel1.physicalcpu")),
        "physical_cores": _int(kv.get("hw.physicalcpu")),
        "wired_limit_mb": wired,
    }


def parse_system_profiler_displays(text: str) -> tuple[str, int | None]:
    """(gpu_name, gpu_cores) from `system_profiler SPDisplaysDataType`.

    Apple Silicon prints one GPU with "Total Number of Cores"; Intel Macs list an integrated and a
    discrete GPU with VRAM lines and no core count: the discrete one (Bus: PCIe) is returned.
    """
    gpus: list[dict] = []
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key == "Chipset Model":
            gpus.append({"name": value, "cores": None, "discrete": False})
        elif gpus and key == "Total Number of Cores":
            gpus[-1]["cores"] = _int(value)
        elif gpus and key == "Bus":
            gpus[-1]["discrete"] = value.startswith("PCI")
    if not gpus:
        return "", None
    best = next((g for g in gpus if g["discrete"]), gpus[0])
    return best["name"], best["cores"]


def parse_proc_cpuinfo(text: str) -> dict:
    """Model name, physical core count and logical CPU count from `/proc/cpuinfo`.

    Physical cores are the unique (physical id, core id) pairs; when the dump lists fewer processors
    than the package has (offline CPUs, trimmed recordings), `cpu cores` × sockets wins; without
    either (most ARM kernels) it is the processor count.
    """
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    processors = [parse_key_values_tabbed(b) for b in blocks]
    processors = [p for p in processors if "processor" in p]
    first = processors[0] if processors else {}
    model = first.get("model name") or first.get("Model") or first.get("Hardware") or ""
    if not model and "CPU part" in first:  # ARM kernels name no model, only the implementer's part code
        model = f"ARM CPU (implementer {first.get('CPU implementer', '?')}, part {first['CPU part']})"
    pairs = {(p["physical id"], p["core id"]) for p in processors if "physical id" in p and "core id" in p}
    sockets = {p["physical id"] for p in processors if "physical id" in p} or {"0"}
    per_socket = next((_int(p["cpu cores"]) for p in processors if "cpu cores" in p), None)
    by_package = per_socket * len(sockets) if per_socket else 0
    physical = max(len(pairs), by_package) or len(processors)
    return {"model": model, "physical_cores": physical, "logical_cpus": len(processors)}


def parse_key_values_tabbed(block: str) -> dict[str, str]:
    """`key<TAB>: value` lines of one /proc/cpuinfo block (keys contain spaces)."""
    out: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_meminfo(text: str) -> int | None:
    """MemTotal from `/proc/meminfo`, in bytes (the file's 'kB' are KiB)."""
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def parse_cpu_list(text: str) -> int:
    """Number of CPUs in a kernel CPU list such as '0-15,24-31' (empty text → 0)."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def parse_nvidia_smi(text: str) -> list[tuple[str, int]]:
    """[(name, memory_total_mib), ...] from `nvidia-smi --query-gpu=name,memory.total
    --format=csv,noheader,nounits`, one GPU per line."""
    gpus = []
    for line in text.splitlines():
        name, sep, mib = line.rpartition(",")
        if sep and mib.strip().isdigit():
            gpus.append((name.strip(), int(mib.strip())))
    return gpus


def apple_family_tier(chip: str) -> tuple[str, str]:
    """('M3', 'Max') for 'Apple M3 Max', ('M1', 'base') for 'Apple M1'; ('', '') for other chips."""
    match = _APPLE_CHIP.search(chip)
    if not match:
        return "", ""
    return match.group(1), match.group(2) or "base"


def apple_bandwidth_gbs(family: str, tier: str, gpu_cores: int | None) -> float | None:
    """Apple's published memory bandwidth in GB/s; None for unknown chips, and for M3 Max / M4 Max
    when the GPU core count (which decides between Apple's two figures) is unknown."""
    steps = APPLE_BANDWIDTH_BY_GPU_CORES.get((family, tier))
    if steps is not None:
        if gpu_cores is None:
            return None
        figure = steps[0][1]
        for cores, gbs in steps:
            if gpu_cores >= cores:
                figure = gbs
        return figure
    return APPLE_BANDWIDTH_GBS.get((family, tier))


def apple_recommended_working_set_bytes(ram_bytes: int) -> tuple[int, str]:
    """Estimate of Metal's recommendedMaxWorkingSetSize and the rule used.

    macOS lets the GPU wire about 2/3 of RAM on machines with up to 36 GiB and about 3/4 above
    (the observed defaults behind the "≈ 65–75 % of RAM" rule); `sysctl iogpu.wired_limit_mb` raises it.
    """
    if ram_bytes <= 36 * 2**30:
        return ram_bytes * 2 // 3, "estimate: 2/3 of RAM (macOS default for ≤ 36 GiB)"
    return ram_bytes * 3 // 4, "estimate: 3/4 of RAM (macOS default above 36 GiB)"


PROBED_LIBRARIES = (
    "llama_cpp",
    "mlx",
    "mlx_lm",
    "torch",
    "transformers",
    "sentence_transformers",
    "ollama",
    "gguf",
    "pynvml",
)
"""Python modules whose presence the profile records (by module name, never distribution name)."""

BW_SOURCE_MEASURED = "measured (numpy copy, derived)"


@dataclass(frozen=True)
class HardwareProfile:
    """One machine, as localbench sees it. Bytes are bytes; bandwidth is GB/s (1e9 bytes/s)."""

    os: str
    """'macOS' | 'Linux' | 'Windows'."""
    arch: str
    """'arm64' | 'x86_64'."""
    chip: str
    """CPU brand string, e.g. 'Apple M3 Max', 'AMD EPYC 7763 64-Core Processor'."""
    family: str
    """'M1'..'M5', 'Intel Mac', 'Linux CPU', 'NVIDIA GPU' or 'Windows'."""
    tier: str
    """'base' | 'Pro' | 'Max' | 'Ultra' on Apple Silicon, '' elsewhere."""
    perf_cores: int
    """Physical performance cores (all physical cores on non-hybrid CPUs)."""
    efficiency_cores: int
    gpu_cores: int | None
    gpu_name: str
    """'' when there is no GPU."""
    ram_bytes: int
    accelerator_memory_bytes: int | None
    """Memory the GPU may use: the Metal wired limit on macOS, VRAM total on CUDA; None without one."""
    accelerator_memory_source: str
    memory_bandwidth_gbs: float | None
    """Main-memory bandwidth in GB/s."""
    bandwidth_source: str
    accelerators: tuple[str, ...]
    """Subset of ('metal', 'mps', 'cuda') that this machine offers."""
    libraries: tuple[tuple[str, bool], ...]
    """(module, installed) for each of PROBED_LIBRARIES."""

    @property
    def apple_silicon(self) -> bool:
        return self.os == "macOS" and self.tier != ""

    def has_library(self, module: str) -> bool:
        return dict(self.libraries).get(module, False)

    def to_dict(self) -> dict:
        """JSON-ready dict (libraries as {module: installed})."""
        out = asdict(self)
        out["accelerators"] = list(self.accelerators)
        out["libraries"] = dict(self.libraries)
        return out

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value with units) rows for display."""
        cores = f"{self.perf_cores} performance + {self.efficiency_cores} efficiency (physical)"
        if not self.efficiency_cores:
            cores = f"{self.perf_cores} physical"
        gpu = self.gpu_name or "none"
        if self.gpu_name and self.gpu_cores:
            gpu += f", {self.gpu_cores} GPU cores"
        accel = "none"
        if self.accelerator_memory_bytes:
            accel = f"{fmt_bytes(self.accelerator_memory_bytes)} — {self.accelerator_memory_source}"
        bandwidth = f"unknown — {self.bandwidth_source}"
        if self.memory_bandwidth_gbs:
            bandwidth = f"{self.memory_bandwidth_gbs:.4g} GB/s — {self.bandwidth_source}"
        tier = f" {self.tier}" if self.tier and self.tier != "base" else ""
        present = [m for m, ok in self.libraries if ok]
        missing = [m for m, ok in self.libraries if not ok]
        return [
            ("OS", f"{self.os} ({self.arch})"),
            ("Chip", self.chip or "unknown"),
            ("Family", f"{self.family}{tier}"),
            ("CPU cores", cores),
            ("GPU", gpu),
            ("RAM", fmt_bytes(self.ram_bytes)),
            ("Accelerator memory", accel),
            ("Memory bandwidth", bandwidth),
            ("Accelerators", ", ".join(self.accelerators) or "none (CPU only)"),
            ("Libraries installed", ", ".join(present) or "none"),
            ("Libraries missing", ", ".join(missing) or "none"),
        ]


def probe_libraries() -> tuple[tuple[str, bool], ...]:
    """(module, installed) for PROBED_LIBRARIES, without importing them."""
    return tuple((m, importlib.util.find_spec(m) is not None) for m in PROBED_LIBRARIES)


def normalize_os(name: str) -> str:
    return {"darwin": "macOS", "macos": "macOS", "linux": "Linux", "windows": "Windows"}.get(name.lower(), name)


def normalize_arch(arch: str) -> str:
    return {"aarch64": "arm64", "amd64": "x86_64", "x64": "x86_64"}.get(arch.lower(), arch)


def profile_from_outputs(
    os: str,
    arch: str,
    texts: dict[str, str],
    libraries: tuple[tuple[str, bool], ...] | None = None,
    measured_bandwidth_gbs: float | None = None,
) -> HardwareProfile:
    """Build a profile from recorded probe outputs.

    `texts` keys: 'sysctl', 'system_profiler' (macOS); 'cpuinfo', 'meminfo', 'cpu_atom' (hybrid
    E-core CPU list), 'affinity' (CPUs this process may use) (Linux); 'nvidia_smi' and its label
    'gpu_source' (any OS); 'fallback' (`name: value` lines cpu_name, physical_cores, ram_bytes from
    platform/psutil); 'metal_working_set' (bytes, when MLX was already loaded). `libraries` defaults
    to probing this interpreter; `measured_bandwidth_gbs` is the numpy probe's result, if it ran.
    """
    os_name, arch = normalize_os(os), normalize_arch(arch)
    libraries = probe_libraries() if libraries is None else libraries
    fallback = parse_key_values(texts.get("fallback", ""))
    chip, family, tier, gpu_name, gpu_cores = fallback.get("cpu_name", ""), "", "", "", None
    perf = eff = 0
    ram = int(fallback.get("ram_bytes") or 0)
    accel_mem: int | None = None
    accel_src = "no GPU accelerator"
    bandwidth, bw_src = None, "not measured (probe off: LOCALBENCH_NO_BW_PROBE=1 or none recorded)"
    if measured_bandwidth_gbs:
        bandwidth, bw_src = measured_bandwidth_gbs, BW_SOURCE_MEASURED
    accelerators: list[str] = []

    if os_name == "macOS":
        sc = parse_sysctl(texts.get("sysctl", ""))
        chip = sc["chip"] or chip
        ram = sc["ram_bytes"] or ram
        gpu_name, gpu_cores = parse_system_profiler_displays(texts.get("system_profiler", ""))
        family, tier = apple_family_tier(chip)
        physical = sc["physical_cores"] or int(fallback.get("physical_cores") or 1)
        perf = sc["perf_cores"] or physical
        eff = sc["efficiency_cores"] or 0
        if family:  # Apple Silicon: Rosetta may report x86_64, the chip does not lie
            arch = "arm64"
            accelerators.append("metal")
            if dict(libraries).get("torch"):
                accelerators.append("mps")
            published = apple_bandwidth_gbs(family, tier, gpu_cores)
            if published is not None:
                bandwidth, bw_src = published, "Apple published figure"
            else:
                bandwidth, bw_src = None, f"no Apple figure for {chip} with {gpu_cores} GPU cores"
            if sc["wired_limit_mb"]:
                accel_mem = sc["wired_limit_mb"] * 2**20
                accel_src = f"iogpu.wired_limit_mb = {sc['wired_limit_mb']} (set by the user)"
            elif texts.get("metal_working_set", "").strip().isdigit():
                accel_mem = int(texts["metal_working_set"])
                accel_src = "Metal recommendedMaxWorkingSetSize (via MLX)"
            elif ram:
                accel_mem, accel_src = apple_recommended_working_set_bytes(ram)
        else:
            family = "Intel Mac"
            accel_src = "none used (Intel Macs run models on the CPU)"
    elif os_name == "Linux":
        ci = parse_proc_cpuinfo(texts.get("cpuinfo", ""))
        chip = ci["model"] or chip
        physical = ci["physical_cores"] or int(fallback.get("physical_cores") or 1)
        eff = parse_cpu_list(texts.get("cpu_atom", ""))  # Intel hybrid: E-cores have no SMT
        perf = max(physical - eff, 1)
        if texts.get("affinity", "").strip().isdigit():  # containers and taskset limit usable CPUs
            perf = max(min(perf, int(texts["affinity"]) - eff), 1)
        ram = parse_meminfo(texts.get("meminfo", "")) or ram
        family = "Linux CPU"
    else:
        family = "Windows" if os_name == "Windows" else f"{os_name} CPU"
        perf = int(fallback.get("physical_cores") or 1)

    gpus = parse_nvidia_smi(texts.get("nvidia_smi", ""))
    if gpus and os_name != "macOS":
        family = "NVIDIA GPU"
        names = sorted({name for name, _ in gpus})
        gpu_name = names[0] if len(gpus) == 1 else f"{len(gpus)}× " + " + ".join(names)
        accel_mem = sum(mib for _, mib in gpus) * 2**20
        source = texts.get("gpu_source", "nvidia-smi")
        accel_src = f"VRAM total ({source}, MiB)" + (f", summed over {len(gpus)} GPUs" if len(gpus) > 1 else "")
        accelerators.append("cuda")
        bw_src += " (host RAM); the GPU's memory bandwidth is not measured"
    if not chip:
        chip = f"{arch} CPU"
    return HardwareProfile(
        os=os_name,
        arch=arch,
        chip=chip,
        family=family,
        tier=tier,
        perf_cores=perf,
        efficiency_cores=eff,
        gpu_cores=gpu_cores,
        gpu_name=gpu_name,
        ram_bytes=ram,
        accelerator_memory_bytes=accel_mem,
        accelerator_memory_source=accel_src,
        memory_bandwidth_gbs=bandwidth,
        bandwidth_source=bw_src,
        accelerators=tuple(accelerators),
        libraries=tuple(libraries),
    )
