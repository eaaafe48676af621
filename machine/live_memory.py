"""Live memory readings: system memory and swap, memory pressure, this process, accelerator memory.

`snapshot()` gathers everything cheap enough to refresh every few seconds. The raw text of each
macOS command (`memory_pressure`, `vm_stat`, `sysctl`, `footprint`) and Linux's
/proc/pressure/memory is turned into numbers by pure `parse_*` functions, which the tests replay on
recorded outputs. A command that does not exist on this OS gives a note saying so, never an
exception. Accelerator readings come only from libraries that are already imported (MLX, torch) or
cheap to ask (NVML), so the dashboard never pays for importing them.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import threading
import time
from dataclasses import dataclass

from core.units import fmt_bytes
from machine.detect import nvml_devices, run_command

PRESSURE_LEVELS = {1: "normal", 2: "warning", 4: "critical"}
"""kern.memorystatus_vm_pressure_level values. The sysctl reports xnu's DISPATCH_MEMORYPRESSURE_*
bits (NORMAL 0x1, WARN 0x2, CRITICAL 0x4); kVMPressureUrgent (3) exists inside the kernel but is
never reported, so any other value reads 'unknown'."""
PSI_ELEVATED_PCT, PSI_HIGH_PCT = 5.0, 25.0
"""Our thresholds on PSI 'some avg10' (share of the last 10 s in which some task waited for memory)."""
SLOW_READING_TTL_S = 10.0
"""footprint / USS walk the process's mappings: refreshed at most this often."""


# --- pure parsers --------------------------------------------------------------------------------------


def _counts(text: str) -> dict[str, int]:
    """'Name: 123.' / '"Name": 123' lines into {name: int} (vm_stat and memory_pressure share this)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r'^\s*"?([A-Za-z][\w \-]*?)"?:\s+([\d,]+)\.?\s*$', line)
        if match:
            out[match.group(1).strip()] = int(match.group(2).replace(",", ""))
    return out


def _page_size(text: str) -> int | None:
    match = re.search(r"page size of (\d+)", text)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class VmStat:
    """`vm_stat` as bytes (pages × the page size its first line states), plus cumulative event counts."""

    page_size_bytes: int
    free_bytes: int
    active_bytes: int
    inactive_bytes: int
    speculative_bytes: int
    wired_bytes: int
    purgeable_bytes: int
    file_backed_bytes: int
    anonymous_bytes: int
    compressed_bytes: int
    """Pages occupied by the compressor (physical memory the compressed data takes)."""
    stored_in_compressor_bytes: int
    pageins: int
    pageouts: int
    swapins: int
    swapouts: int

    @property
    def app_bytes(self) -> int:
        """Activity Monitor's 'App Memory', approximated as anonymous − purgeable (derived)."""
        return max(0, self.anonymous_bytes - self.purgeable_bytes)

    @property
    def cached_files_bytes(self) -> int:
        """File-backed plus purgeable pages: reclaimable cache (derived)."""
        return self.file_backed_bytes + self.purgeable_bytes


def parse_vm_stat(text: str) -> VmStat | None:
    """Parse `vm_stat`; None when the text has no page-size line."""
    size = _page_size(text)
    if size is None:
        return None
    c = _counts(text)

    def pages(key: str) -> int:
        return c.get(key, 0) * size

    return VmStat(
        page_size_bytes=size,
        free_bytes=pages("Pages free"),
        active_bytes=pages("Pages active"),
        inactive_bytes=pages("Pages inactive"),
        speculative_bytes=pages("Pages speculative"),
        wired_bytes=pages("Pages wired down"),
        purgeable_bytes=pages("Pages purgeable"),
        file_backed_bytes=pages("File-backed pages"),
        anonymous_bytes=pages("Anonymous pages"),
        compressed_bytes=pages("Pages occupied by compressor"),
        stored_in_compressor_bytes=pages("Pages stored in compressor"),
        pageins=c.get("Pageins", 0),
        pageouts=c.get("Pageouts", 0),
        swapins=c.get("Swapins", 0),
        swapouts=c.get("Swapouts", 0),
    )


@dataclass(frozen=True)
class MacPressure:
    """`memory_pressure` (no arguments, or -Q)."""

    total_bytes: int | None
    page_size_bytes: int | None
    free_percent: int | None
    """'System-wide memory free percentage' — what Activity Monitor's pressure graph inverts."""
    compressor_bytes: int | None
    swapins: int | None
    swapouts: int | None


def parse_memory_pressure(text: str) -> MacPressure:
    """Parse `memory_pressure`; fields it does not print are None."""
    total = re.search(r"The system has (\d+)", text)
    free = re.search(r"System-wide memory free percentage:\s*(\d+)\s*%", text)
    size = _page_size(text)
    c = _counts(text)
    used = c.get("Pages used by compressor")
    return MacPressure(
        total_bytes=int(total.group(1)) if total else None,
        page_size_bytes=size,
        free_percent=int(free.group(1)) if free else None,
        compressor_bytes=used * size if used is not None and size else None,
        swapins=c.get("Swapins"),
        swapouts=c.get("Swapouts"),
    )


@dataclass(frozen=True)
class Psi:
    """Linux pressure-stall information for memory: percentages of wall time, totals in microseconds."""

    some_avg10: float
    some_avg60: float
    some_avg300: float
    some_total_us: int
    full_avg10: float | None
    full_avg60: float | None
    full_avg300: float | None
    full_total_us: int | None

    @property
    def level(self) -> str:
        """'normal', 'elevated' or 'high' from some avg10 (our thresholds: 5 % and 25 %)."""
        if self.some_avg10 >= PSI_HIGH_PCT:
            return "high"
        return "elevated" if self.some_avg10 >= PSI_ELEVATED_PCT else "normal"


def parse_psi(text: str) -> Psi | None:
    """Parse /proc/pressure/memory; None when it has no 'some' line."""
    rows: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        kind, _, rest = line.strip().partition(" ")
        if kind in ("some", "full"):
            rows[kind] = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", rest)}
    if "some" not in rows:
        return None
    some, full = rows["some"], rows.get("full", {})
    return Psi(
        some["avg10"],
        some["avg60"],
        some["avg300"],
        int(some["total"]),
        full.get("avg10"),
        full.get("avg60"),
        full.get("avg300"),
        int(full["total"]) if "total" in full else None,
    )


def parse_sysctl_memory(text: str) -> dict[str, int | None]:
    """`sysctl iogpu.wired_limit_mb kern.memorystatus_vm_pressure_level` → wired_limit_mb (MiB; 0 = the
    macOS default) and pressure_level (1 normal, 2 warning, 4 critical); None for keys it lacks."""
    values = dict(re.findall(r"^\s*([\w.]+)\s*[:=]\s*(-?\d+)\s*$", text, re.MULTILINE))
    get = lambda k: int(values[k]) if k in values else None  # noqa: E731
    return {"wired_limit_mb": get("iogpu.wired_limit_mb"), "pressure_level": get("kern.memorystatus_vm_pressure_level")}


_UNITS = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


def parse_footprint(text: str) -> int | None:
    """Physical footprint in bytes from `footprint -f bytes <pid>` (or its formatted KB/MB/GB output):
    the 'phys_footprint:' auxiliary line when present, else the header's 'Footprint:'."""
    for pattern in (r"phys_footprint:\s*([\d.]+)\s*([KMGT]?B)", r"Footprint:\s*([\d.]+)\s*([KMGT]?B)"):
        match = re.search(pattern, text)
        if match:
            return int(float(match.group(1)) * _UNITS[match.group(2)])
    return None


# --- live readings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pressure:
    level: str
    """'normal' | 'warning' | 'critical' (macOS kernel) | 'elevated' | 'high' (PSI) | 'unknown'."""
    detail: str
    source: str


@dataclass(frozen=True)
class AcceleratorMemory:
    """One accelerator allocator's figures (bytes; None where the library has no such number)."""

    name: str
    used_bytes: int | None
    peak_bytes: int | None = None
    cache_bytes: int | None = None
    limit_bytes: int | None = None
    source: str = ""


@dataclass(frozen=True)
class MemorySnapshot:
    """Everything the live view shows, read at `t_s` (time.time())."""

    t_s: float
    total_bytes: int
    available_bytes: int
    used_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    pressure: Pressure
    process_rss_bytes: int
    process_private_bytes: int | None
    """macOS physical footprint or Linux/Windows USS; None when it could not be had."""
    process_private_source: str
    accelerators: tuple[AcceleratorMemory, ...]
    wired_limit_mb: int | None
    """macOS iogpu.wired_limit_mb (0 = default); None elsewhere."""
    vm: VmStat | None
    notes: tuple[str, ...]
    """Why a reading is missing (command not on this OS, library not loaded, ...)."""

    def rows(self) -> list[tuple[str, str, str]]:
        """(reading, value with units, source) rows for display."""
        pct = self.used_bytes / self.total_bytes if self.total_bytes else 0
        rows = [
            ("Total memory", fmt_bytes(self.total_bytes), "psutil.virtual_memory().total"),
            ("Available", fmt_bytes(self.available_bytes), "psutil.virtual_memory().available"),
            ("Used", f"{fmt_bytes(self.used_bytes)} — {pct:.0%}", "psutil.virtual_memory().used"),
            (
                "Swap used",
                f"{fmt_bytes(self.swap_used_bytes)} of {fmt_bytes(self.swap_total_bytes)}",
                "psutil.swap_memory()",
            ),
            ("Memory pressure", f"{self.pressure.level} — {self.pressure.detail}", self.pressure.source),
            ("This process (RSS)", fmt_bytes(self.process_rss_bytes), "psutil memory_info().rss; engines run here"),
        ]
        if self.process_private_bytes is not None:
            rows.append(("This process (private)", fmt_bytes(self.process_private_bytes), self.process_private_source))
        if self.vm is not None:
            rows.append(
                (
                    "Wired / compressed",
                    f"{fmt_bytes(self.vm.wired_bytes)} / {fmt_bytes(self.vm.compressed_bytes)}",
                    "vm_stat (pages × page size)",
                )
            )
        if self.wired_limit_mb is not None:
            value = "macOS default" if self.wired_limit_mb == 0 else f"{self.wired_limit_mb} MiB"
            rows.append(("GPU wired limit", value, "sysctl iogpu.wired_limit_mb"))
        for acc in self.accelerators:
            parts = [f"used {fmt_bytes(acc.used_bytes)}"]
            parts += [f"peak {fmt_bytes(acc.peak_bytes)}"] if acc.peak_bytes is not None else []
            parts += [f"cache {fmt_bytes(acc.cache_bytes)}"] if acc.cache_bytes is not None else []
            parts += [f"limit {fmt_bytes(acc.limit_bytes)}"] if acc.limit_bytes is not None else []
            rows.append((acc.name, " · ".join(parts), acc.source))
        rows += [("Note", note, "") for note in self.notes]
        return rows


def mlx_memory() -> tuple[AcceleratorMemory | None, str]:
    """MLX allocator figures, only when mlx.core is already imported."""
    mx = sys.modules.get("mlx.core")
    if mx is None:
        return None, "MLX: not loaded in this process (no MLX model loaded)"
    try:
        info = mx.device_info() if hasattr(mx, "device_info") else {}
        limit = info.get("max_recommended_working_set_size")
        reading = AcceleratorMemory(
            f"MLX ({info.get('device_name', 'device')})",
            int(mx.get_active_memory()),
            int(mx.get_peak_memory()),
            int(mx.get_cache_memory()),
            int(limit) if limit else None,
            "mx.get_active/peak/cache_memory; limit = device_info max_recommended_working_set_size",
        )
    except (AttributeError, RuntimeError, TypeError, ValueError) as err:
        return None, f"MLX: memory figures unavailable ({err})"
    note = "" if limit else "MLX: no max_recommended_working_set_size here (MLX runs on the CPU, not Metal)"
    return reading, note


def torch_memory() -> tuple[list[AcceleratorMemory], str]:
    """torch CUDA / MPS allocations, only when torch is already imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return [], "torch: not loaded in this process"
    out = []
    try:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                out.append(
                    AcceleratorMemory(
                        f"torch CUDA:{i}",
                        int(torch.cuda.memory_allocated(i)),
                        int(torch.cuda.max_memory_allocated(i)),
                        int(torch.cuda.memory_reserved(i) - torch.cuda.memory_allocated(i)),
                        None,
                        "torch.cuda.memory_allocated / max_memory_allocated; cache = reserved − allocated",
                    )
                )
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            out.append(
                AcceleratorMemory(
                    "torch MPS",
                    int(torch.mps.current_allocated_memory()),
                    None,
                    int(torch.mps.driver_allocated_memory() - torch.mps.current_allocated_memory()),
                    int(torch.mps.recommended_max_memory()),
                    "torch.mps.current_allocated_memory; cache = driver − current; limit = recommended_max_memory",
                )
            )
    except (RuntimeError, AttributeError) as err:
        return out, f"torch: memory figures unavailable ({err})"
    return out, "" if out else "torch: loaded, but neither CUDA nor MPS is available (CPU build or no GPU)"


def nvml_memory() -> tuple[list[AcceleratorMemory], str]:
    """Per-GPU memory from NVML (nvidia-ml-py), when the module and a driver are present."""
    gpus, note = nvml_devices()
    out = [
        AcceleratorMemory(f"GPU {i} ({name})", used, None, None, total, "NVML nvmlDeviceGetMemoryInfo")
        for i, (name, used, total) in enumerate(gpus)
    ]
    return out, note


_SLOW: dict[str, tuple[float, int | None, str, str]] = {}
_SLOW_LOCK = threading.Lock()


def process_private_memory(pid: int | None = None, os_name: str | None = None) -> tuple[int | None, str, str]:
    """(bytes, source, note): macOS physical footprint via `footprint`, else psutil USS; cached 10 s."""
    import psutil

    pid = pid or os.getpid()
    os_name = os_name or platform.system()
    key = f"{pid}:{os_name}"
    with _SLOW_LOCK:
        hit = _SLOW.get(key)
        if hit and time.monotonic() - hit[0] < SLOW_READING_TTL_S:
            return hit[1], hit[2], hit[3]
    value, source, note = None, "", ""
    if os_name == "Darwin":
        result = run_command(["footprint", "-f", "bytes", str(pid)], timeout_s=5.0, os_name=os_name)
        value = parse_footprint(result.text) if result.ok else None
        source = "macOS physical footprint (`footprint -f bytes`)"
        note = "" if value is not None else result.message or "`footprint` printed no figure"
    if value is None:
        try:
            value = int(psutil.Process(pid).memory_full_info().uss)
            source = "USS, unique set size (psutil memory_full_info)"
        except (psutil.AccessDenied, psutil.NoSuchProcess, AttributeError) as err:
            note = note or f"private memory unavailable ({type(err).__name__})"
    with _SLOW_LOCK:
        _SLOW[key] = (time.monotonic(), value, source, note)
    return value, source, note


def mac_phys_footprint(pid: int) -> int | None:
    """macOS `phys_footprint` of a process (what Activity Monitor calls Memory), via proc_pid_rusage."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        buf = (ctypes.c_uint64 * 40)()  # rusage_info_v2: a 16-byte uuid, then 64-bit counters
        if libc.proc_pid_rusage(int(pid), 2, ctypes.byref(buf)) != 0:  # 2 = RUSAGE_INFO_V2
            return None
    except (OSError, AttributeError):
        return None
    # After ri_uuid (2 words): user, system, pkg_idle_wkups, interrupt_wkups, pageins, wired, resident,
    # phys_footprint.
    return int(buf[2 + 7])


def own_memory(os_name: str | None = None) -> dict:
    """This process's memory now, uncached: rss_bytes, pss_bytes (Linux), private_bytes and its source.

    private_bytes is what this process alone holds: USS on Linux (psutil), the physical footprint on
    macOS (proc_pid_rusage). A model's worker process reports it as that model's memory.
    """
    import psutil

    os_name = os_name or platform.system()
    proc = psutil.Process(os.getpid())
    out: dict = {"rss_bytes": int(proc.memory_info().rss), "pss_bytes": None, "private_bytes": None}
    if os_name == "Darwin":
        out["private_bytes"] = mac_phys_footprint(os.getpid())
        out["private_source"] = "worker physical footprint (macOS proc_pid_rusage)"
    if out["private_bytes"] is None:
        try:
            full = proc.memory_full_info()
            out["private_bytes"] = int(full.uss)
            out["pss_bytes"] = int(getattr(full, "pss", 0)) or None
            out["private_source"] = "worker USS, unique set size (psutil)"
        except (psutil.AccessDenied, AttributeError):
            out["private_bytes"] = out["rss_bytes"]
            out["private_source"] = "worker RSS (USS unreadable here)"
    return out


def pressure_reading(os_name: str | None = None) -> tuple[Pressure, VmStat | None, int | None, list[str]]:
    """(pressure, vm_stat, wired_limit_mb, notes) for this OS."""
    os_name = os_name or platform.system()
    notes: list[str] = []
    if os_name == "Darwin":
        mp = run_command(["memory_pressure"], os_name=os_name)
        vm = run_command(["vm_stat"], os_name=os_name)
        sc = run_command(["sysctl", "iogpu.wired_limit_mb", "kern.memorystatus_vm_pressure_level"], os_name=os_name)
        notes += [r.message for r in (mp, vm, sc) if r.message]
        values = parse_sysctl_memory(sc.text)
        parsed = parse_memory_pressure(mp.text)
        level = PRESSURE_LEVELS.get(values["pressure_level"] or 0, "unknown")
        free = f"{parsed.free_percent} % free" if parsed.free_percent is not None else "free % unavailable"
        pressure = Pressure(level, free, "kern.memorystatus_vm_pressure_level + `memory_pressure`")
        return pressure, parse_vm_stat(vm.text), values["wired_limit_mb"], notes
    notes.append(f"iogpu.wired_limit_mb is a macOS setting; not applicable on {os_name}")
    if os_name == "Linux":
        try:
            with open("/proc/pressure/memory", encoding="utf-8") as fh:
                psi = parse_psi(fh.read())
        except OSError as err:
            psi = None
            notes.append(f"/proc/pressure/memory unreadable ({err.strerror}); the kernel may lack PSI")
        if psi is not None:
            detail = (
                f"some avg10 {psi.some_avg10:.2f} %, full avg10 {psi.full_avg10 or 0:.2f} % of the last 10 s stalled"
            )
            return Pressure(psi.level, detail, "/proc/pressure/memory (PSI)"), None, None, notes
        return Pressure("unknown", "no PSI on this kernel", "/proc/pressure/memory"), None, None, notes
    return Pressure("unknown", f"no pressure source on {os_name}", ""), None, None, notes


def accelerator_readings() -> tuple[list[AcceleratorMemory], list[str]]:
    readings, notes = [], []
    mlx, note = mlx_memory()
    readings += [mlx] if mlx else []
    notes += [note] if note else []
    for fn in (torch_memory, nvml_memory):
        got, note = fn()
        readings += got
        notes += [note] if note else []
    return readings, notes


def snapshot(os_name: str | None = None, private: bool = True) -> MemorySnapshot:
    """One live reading of everything (a few ms; `footprint`/USS cached for 10 s)."""
    import psutil

    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    pressure, vmstat, wired, notes = pressure_reading(os_name)
    accel, accel_notes = accelerator_readings()
    priv, priv_source, priv_note = process_private_memory(os_name=os_name) if private else (None, "", "")
    return MemorySnapshot(
        t_s=time.time(),
        total_bytes=int(vm.total),
        available_bytes=int(vm.available),
        used_bytes=int(vm.used),
        swap_total_bytes=int(swap.total),
        swap_used_bytes=int(swap.used),
        pressure=pressure,
        process_rss_bytes=int(psutil.Process().memory_info().rss),
        process_private_bytes=priv,
        process_private_source=priv_source,
        accelerators=tuple(accel),
        wired_limit_mb=wired,
        vm=vmstat,
        notes=tuple(n for n in [*notes, priv_note, *accel_notes] if n),
    )
