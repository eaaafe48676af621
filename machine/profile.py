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
import json
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
    ("M5", "Pro"): 307.0,  # Apple, 3 March 2026: "up to 307GB/s"
}
"""Apple's published unified-memory bandwidth in GB/s (1e9 bytes/s), by (family, tier)."""

APPLE_BANDWIDTH_BY_GPU_CORES: dict[tuple[str, str], tuple[tuple[int, float], ...]] = {
    ("M3", "Max"): ((30, 300.0), (40, 400.0)),
    ("M4", "Max"): ((32, 410.0), (40, 546.0)),
    ("M5", "Max"): ((40, 614.0),),  # Apple: "up to 614GB/s" (40-core GPU); smaller bins unpublished here
}
"""Chips whose bandwidth depends on the GPU configuration: (GPU cores, GB/s), smallest first. A GPU
count below the first step has no published figure (None)."""

APPLE_GPU_CORES_BY_CPU_CORES: dict[tuple[str, str, int], int] = {
    ("M3", "Max", 14): 30,
    ("M3", "Max", 16): 40,
    ("M4", "Max", 14): 32,
    ("M4", "Max", 16): 40,
}
"""Apple's Max configurations pair each CPU core count with one GPU core count; used only when a capture
has no system_profiler output, to pick between Apple's two bandwidth figures."""

_APPLE_CHIP = re.compile(r"\bApple (M\d+)(?:\s+(Pro|Max|Ultra))?\b")
EFFICIENCY_LEVEL = "Efficiency"
"""The one hw.perflevelN.name that means efficiency cores; Performance, Super (M5) and Standard (Intel
Macs and VMs on macOS 12+) are all performance cores."""


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


def parse_perflevels(kv: dict[str, str]) -> tuple[tuple[str, int], ...]:
    """((name, physical cores), ...) per hw.perflevelN, highest performance first; () without them.

    macOS 12–13 list the levels without `hw.perflevelN.name`; every chip of that time had
    performance then efficiency cores, so unnamed levels are named that way (level 0 Performance,
    the others Efficiency). A level whose core count is missing ends the list: it is not guessed.
    """
    count = _int(kv.get("hw.nperflevels"))
    if count is None:
        count = 0
        while f"hw.perflevel{count}.physicalcpu" in kv or f"hw.perflevel{count}.physicalcpu_max" in kv:
            count += 1
    levels: list[tuple[str, int]] = []
    for i in range(count):
        cores = _int(kv.get(f"hw.perflevel{i}.physicalcpu_max") or kv.get(f"hw.perflevel{i}.physicalcpu"))
        if cores is None:
            return ()
        name = kv.get(f"hw.perflevel{i}.name") or ("Performance" if i == 0 else EFFICIENCY_LEVEL)
        levels.append((name, cores))
    return tuple(levels)


def parse_sysctl(text: str) -> dict:
    """Output of `sysctl hw machdep iogpu kern.hv_vmm_present` (or a subset, or `sysctl -a`).

    Returns chip (brand string, '' when absent), arm64 and x86_64 (True/False from hw.optional.arm64 and
    hw.optional.x86_64, None when absent; Rosetta 2 sets both), vendor (machdep.cpu.vendor), levels (see
    parse_perflevels), physical_cores (hw.physicalcpu_max, hw.physicalcpu or
    machdep.cpu.core_count), ram_bytes, model (hw.model), virtual (True for a VM: a '(Virtual)'
    brand, a VirtualMac model or kern.hv_vmm_present: 1) and wired_limit_mb (MiB; 0 means the macOS
    default). Keys the capture lacks are None, never guessed.
    """
    kv = parse_key_values(text)
    wired = _int(kv.get("iogpu.wired_limit_mb"))
    if wired is None and _int(kv.get("debug.iogpu.wired_limit")) is not None:
        wired = _int(kv["debug.iogpu.wired_limit"]) // 2**20  # macOS 13 spelled it in bytes
    physical = next(
        (_int(kv[k]) for k in ("hw.physicalcpu_max", "hw.physicalcpu", "machdep.cpu.core_count") if k in kv), None
    )
    arm64, x86_64 = kv.get("hw.optional.arm64"), kv.get("hw.optional.x86_64")
    chip = kv.get("machdep.cpu.brand_string", "")
    model = kv.get("hw.model", "")
    virtual = "(Virtual)" in chip or model.startswith("VirtualMac") or kv.get("kern.hv_vmm_present") == "1"
    return {
        "chip": chip,
        "arm64": None if arm64 is None else arm64.strip() == "1",
        "x86_64": None if x86_64 is None else x86_64.strip() == "1",
        "vendor": kv.get("machdep.cpu.vendor", ""),
        "levels": parse_perflevels(kv),
        "physical_cores": physical,
        "ram_bytes": _int(kv.get("hw.memsize")),
        "model": model,
        "virtual": virtual,
        "wired_limit_mb": wired,
    }


def split_levels(levels: tuple[tuple[str, int], ...]) -> tuple[int, int]:
    """(performance cores, efficiency cores): every level not named Efficiency is performance."""
    eff = sum(n for name, n in levels if name == EFFICIENCY_LEVEL)
    return sum(n for _, n in levels) - eff, eff


def parse_system_profiler_displays(text: str) -> tuple[str, int | None]:
    """(gpu_name, gpu_cores) from `system_profiler SPDisplaysDataType`, plain text or `-json`.

    Apple Silicon prints one GPU with "Total Number of Cores" (JSON: `sppci_model`, and `sppci_cores`
    as a string); Intel Macs list an integrated and a discrete GPU with VRAM lines and no core count:
    the discrete one (Bus: PCIe; JSON `sppci_bus: spdisplays_pcie_device`) is returned.
    """
    if text.lstrip().startswith("{"):
        return _displays_from_json(text)
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


def _displays_from_json(text: str) -> tuple[str, int | None]:
    try:
        items = json.loads(text).get("SPDisplaysDataType") or []
    except (ValueError, AttributeError):
        return "", None
    gpus = [
        {
            "name": item.get("sppci_model") or item.get("_name", ""),
            "cores": _int(str(item["sppci_cores"]).strip()) if "sppci_cores" in item else None,
            "discrete": "pcie" in str(item.get("sppci_bus", "")),
        }
        for item in items
        if isinstance(item, dict)
    ]
    if not gpus:
        return "", None
    best = next((g for g in gpus if g["discrete"]), gpus[0])
    return best["name"], best["cores"]


def parse_system_profiler_hardware(text: str) -> dict:
    """chip, ram_bytes and core counts from `system_profiler SPHardwareDataType -json`.

    `number_processors` reads "proc TOTAL:LEVEL0:...": Apple prints one count per core type, and on an
    M5 Max "proc 18:6:0:12" (6 Super, no third kind, 12 Performance), so only the total is used.
    Memory is "128 GB" in Apple's binary gigabytes. Missing keys are None.
    """
    try:
        item = (json.loads(text).get("SPHardwareDataType") or [{}])[0]
    except (ValueError, AttributeError, IndexError):
        item = {}
    memory = re.match(r"\s*(\d+)\s*(GB|TB)", str(item.get("physical_memory", "")))
    ram = int(memory.group(1)) * (2**30 if memory.group(2) == "GB" else 2**40) if memory else None
    total = re.match(r"proc (\d+)", str(item.get("number_processors", "")))
    return {
        "chip": item.get("chip_type") or item.get("cpu_type") or "",
        "ram_bytes": ram,
        "physical_cores": int(total.group(1)) if total else None,
        "model": item.get("machine_model", ""),
    }


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
    """Apple's published memory bandwidth in GB/s; None for unknown chips, and for M3/M4/M5 Max when
    the GPU core count (which decides between Apple's figures) is unknown or has no published figure."""
    steps = APPLE_BANDWIDTH_BY_GPU_CORES.get((family, tier))
    if steps is not None:
        if gpu_cores is None:
            return None
        figure = None
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
UNKNOWN = "—"
"""How a value the probes did not report is shown: never a guess."""


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
    """'M1'..'M5', 'Apple Silicon' (chip not named), 'Intel Mac', 'Linux CPU', 'NVIDIA GPU' or 'Windows'."""
    tier: str
    """'base' | 'Pro' | 'Max' | 'Ultra' | 'unknown' on Apple Silicon, '' elsewhere."""
    perf_cores: int | None
    """Physical performance cores: every level not named Efficiency (all physical cores on
    non-hybrid CPUs); None when the capture does not say."""
    efficiency_cores: int | None
    """None when the capture does not say (an Apple chip without perflevel keys)."""
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
    core_levels: tuple[tuple[str, int], ...] = ()
    """(name, physical cores) per macOS perflevel, e.g. (('Super', 6), ('Performance', 12))."""
    physical_cores: int | None = None
    virtual: bool = False
    """True inside a virtual machine (a CI runner's '(Virtual)' Mac)."""

    @property
    def apple_silicon(self) -> bool:
        return self.os == "macOS" and self.tier != ""

    @property
    def n_threads(self) -> int | None:
        """Threads for CPU inference: the performance cores (None when unknown)."""
        return self.perf_cores or self.physical_cores

    def has_library(self, module: str) -> bool:
        return dict(self.libraries).get(module, False)

    def to_dict(self) -> dict:
        """JSON-ready dict (libraries as {module: installed})."""
        out = asdict(self)
        out["accelerators"] = list(self.accelerators)
        out["libraries"] = dict(self.libraries)
        out["core_levels"] = [list(level) for level in self.core_levels]
        return out

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value with units) rows for display."""
        if len(self.core_levels) > 1:
            cores = " + ".join(f"{n} {name.lower()}" for name, n in self.core_levels) + " (physical)"
        elif self.perf_cores is not None and self.efficiency_cores:
            cores = f"{self.perf_cores} performance + {self.efficiency_cores} efficiency (physical)"
        elif self.perf_cores is not None:
            cores = f"{self.perf_cores} physical"
        elif self.physical_cores:
            cores = f"{self.physical_cores} physical (performance/efficiency split unknown)"
        else:
            cores = UNKNOWN
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
            ("Chip", (self.chip or UNKNOWN) + (" — virtual machine" if self.virtual else "")),
            ("Family", f"{self.family}{tier}"),
            ("CPU cores", cores),
            ("GPU", gpu),
            ("RAM", fmt_bytes(self.ram_bytes) if self.ram_bytes else UNKNOWN),
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

    `texts` keys: 'sysctl', 'system_profiler' (SPDisplaysDataType, text or JSON),
    'system_profiler_hardware' (SPHardwareDataType -json) (macOS); 'cpuinfo', 'meminfo', 'cpu_atom' (hybrid
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

    levels: tuple[tuple[str, int], ...] = ()
    physical: int | None = None
    virtual = False
    if os_name == "macOS":
        sc = parse_sysctl(texts.get("sysctl", ""))
        hw = parse_system_profiler_hardware(texts.get("system_profiler_hardware", "") or "{}")
        chip = sc["chip"] or hw["chip"] or chip
        ram = sc["ram_bytes"] or hw["ram_bytes"] or ram
        virtual = sc["virtual"] or hw["model"].startswith("VirtualMac")
        gpu_name, gpu_cores = parse_system_profiler_displays(texts.get("system_profiler", ""))
        family, tier = apple_family_tier(chip)
        named_by_gpu = False
        levels = sc["levels"]
        physical = sc["physical_cores"] or hw["physical_cores"] or _int(fallback.get("physical_cores"))
        if physical is None and sc["levels"]:
            physical = sum(n for _, n in sc["levels"])
        # Intel: the brand or vendor says so, or hw.optional.arm64 is 0, or hw.optional.x86_64 is 1 without
        # the arm64 key (Rosetta 2 sets both, and an unnamed chip with only the x86_64 flag is an Intel Mac).
        # Apple Silicon: the chip names it, else its GPU does (system_profiler names the GPU after the
        # chip: "Apple M3"), else hw.optional.arm64 does (macOS 11 said "Apple processor"), else the
        # caller's arch.
        intel = (
            "Intel" in chip
            or sc["vendor"] == "GenuineIntel"
            or sc["arm64"] is False
            or (not family and sc["x86_64"] is True and sc["arm64"] is None)
        )
        if not family and not intel:
            family, tier = apple_family_tier(gpu_name)
            named_by_gpu = bool(family)
            if named_by_gpu and not chip:
                chip = gpu_name
        if not family and not intel and (sc["arm64"] or arch == "arm64"):
            family, tier = "Apple Silicon", "unknown"
        if levels:
            perf, eff = split_levels(levels)
        elif intel:
            perf, eff = physical, 0  # Intel Macs have no efficiency cores
        else:
            perf = eff = None  # the split is not in the capture
        if family:
            arch = "arm64"
            accelerators.append("metal")
            if dict(libraries).get("torch"):
                accelerators.append("mps")
            if gpu_cores is None and physical is not None:
                gpu_cores_for_bw = APPLE_GPU_CORES_BY_CPU_CORES.get((family, tier, physical))
            else:
                gpu_cores_for_bw = gpu_cores
            published = apple_bandwidth_gbs(family, tier, gpu_cores_for_bw)
            if published is not None:
                bandwidth, bw_src = published, "Apple published figure"
                if named_by_gpu:
                    bw_src += f" (chip named by its GPU, {gpu_name}, in system_profiler)"
                if gpu_cores is None and gpu_cores_for_bw is not None:
                    bw_src += f" (GPU cores {gpu_cores_for_bw} from Apple's {physical}-core CPU configuration)"
            elif family == "Apple Silicon":
                bandwidth, bw_src = None, "chip not named in the capture (no brand string)"
            else:
                cores_said = f"{gpu_cores} GPU cores" if gpu_cores is not None else "GPU cores unknown"
                bandwidth, bw_src = None, f"no Apple figure for {chip} ({cores_said})"
            if sc["wired_limit_mb"]:
                accel_mem = sc["wired_limit_mb"] * 2**20
                accel_src = f"iogpu.wired_limit_mb = {sc['wired_limit_mb']} (set by the user)"
            elif texts.get("metal_working_set", "").strip().isdigit():
                accel_mem = int(texts["metal_working_set"])
                accel_src = "Metal recommendedMaxWorkingSetSize (via MLX)"
            elif ram:
                accel_mem, accel_src = apple_recommended_working_set_bytes(ram)
            else:
                accel_src = "unknown (RAM not in the capture)"
        else:
            family = "Intel Mac" if intel else "Mac (chip unknown)"
            arch = "x86_64" if intel else arch
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
        perf = _int(fallback.get("physical_cores"))

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
    if not chip and os_name != "macOS":
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
        core_levels=levels,
        physical_cores=physical,
        virtual=virtual,
    )
