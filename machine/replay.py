"""Record and replay the live probes: `doctor --save DIR` writes each probe's raw output into DIR, one file
per command, and `doctor --replay DIR` parses such a folder through the same parsers as live detection, so
bug reports and public captures from Macs we do not have become tests."""

from __future__ import annotations

import math
from pathlib import Path

from core.errors import BadParameter
from machine.detect import LiveOutputs
from machine.profile import (
    PROBED_LIBRARIES,
    HardwareProfile,
    parse_key_values,
    parse_meminfo,
    parse_nvidia_smi,
    parse_system_profiler_hardware,
    profile_from_outputs,
)

REPLAY_FILES = {
    "sysctl": "sysctl",
    "system_profiler": "system_profiler",
    "system_profiler_displays": "system_profiler",
    "system_profiler_hardware": "system_profiler_hardware",
    "cpuinfo": "cpuinfo",
    "meminfo": "meminfo",
    "cpu_atom": "cpu_atom",
    "nvidia_smi": "nvidia_smi",
    "gpu_source": "gpu_source",
    "fallback": "fallback",
    "affinity": "affinity",
    "metal_working_set": "metal_working_set",
}
"""Recorded file stem → the `texts` key profile_from_outputs() reads."""
SAVE_FILES = {
    "sysctl": "sysctl.txt",
    "system_profiler": "system_profiler_displays.txt",
    "system_profiler_hardware": "system_profiler_hardware.json",
    "cpuinfo": "cpuinfo.txt",
    "meminfo": "meminfo.txt",
    "cpu_atom": "cpu_atom.txt",
    "nvidia_smi": "nvidia_smi.txt",
    "gpu_source": "gpu_source.txt",
    "fallback": "fallback.txt",
    "affinity": "affinity.txt",
    "metal_working_set": "metal_working_set.txt",
}
"""`texts` key → the file `doctor --save` writes (system_profiler output in JSON gets `.json`)."""
PLATFORM_FILE, LIBRARIES_FILE, BANDWIDTH_FILE = "platform.txt", "libraries.txt", "bandwidth.txt"
MACOS_FILES = ("sysctl", "system_profiler", "system_profiler_hardware")
MAX_MEMORY_BYTES = 64 * 2**40
"""The most RAM, VRAM or GPU working set a replayed value may claim (64 TiB); above it is a corrupt file."""
MAX_BANDWIDTH_GBS = 20_000.0
"""The most memory bandwidth a replayed value may claim (20 TB/s; an H200 has 4.8)."""


def save_outputs(live: LiveOutputs, folder) -> list[Path]:
    """Write every probe's raw output into `folder` (created if needed); returns the files written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, text in live.texts.items():
        name = SAVE_FILES.get(key)
        if name is None:
            continue
        if key == "system_profiler" and text.lstrip().startswith("{"):
            name = "system_profiler_displays.json"
        written.append(out / name)
        written[-1].write_text(text, encoding="utf-8")
    extras = {
        PLATFORM_FILE: f"os: {live.os}\narch: {live.arch}\n",
        LIBRARIES_FILE: "".join(f"{m}: {'yes' if ok else 'no'}\n" for m, ok in live.libraries),
    }
    if live.measured_bandwidth_gbs:
        extras[BANDWIDTH_FILE] = f"measured_bandwidth_gbs: {live.measured_bandwidth_gbs!r}\n"
    for name, text in extras.items():
        written.append(out / name)
        written[-1].write_text(text, encoding="utf-8")
    return written


def texts_from_folder(folder) -> dict[str, str]:
    """The recorded probe outputs in a folder (one file per command, any extension)."""
    return {key: path.read_text(encoding="utf-8", errors="replace") for key, path in _files_of(folder).items()}


def _files_of(folder) -> dict[str, Path]:
    """`texts` key → the recorded file it comes from."""
    files: dict[str, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        key = REPLAY_FILES.get(path.stem)
        if key and path.is_file():
            files[key] = path
    return files


def _plausible(file: str, key: str, raw, high: float, what: str, zero_ok: bool = False) -> float:
    """`raw` as a number if it is finite, above 0 (or 0 where `zero_ok`) and at most `high`; else one
    line naming the file, the key and the value, as a BadParameter."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise BadParameter(
            f"{file}: {key} = {raw!r} is not a number — the replay refuses it; fix or delete that line"
        ) from None
    if not (math.isfinite(value) and (value >= 0 if zero_ok else value > 0) and value <= high):
        raise BadParameter(
            f"{file}: {key} = {raw} is not a plausible {what} (finite, {'0 or more' if zero_ok else 'above 0'}, "
            f"at most {high:g}) — the replay refuses it; fix or delete that line"
        )
    return value


def check_replayed_values(folder) -> float | None:
    """Refuse a folder whose recorded figures cannot be real: RAM, VRAM and working sets above 64 TiB,
    bandwidth above 20 TB/s, NaN, infinities, negatives and words where a number belongs. Raises
    BadParameter naming the file and the value; returns the recorded bandwidth in GB/s (None if none)."""
    folder = Path(folder)
    files = _files_of(folder)
    bytes_limit, mib_limit = MAX_MEMORY_BYTES, MAX_MEMORY_BYTES / 2**20

    def text(key: str) -> str:
        return files[key].read_text(encoding="utf-8", errors="replace") if key in files else ""

    sysctl = parse_key_values(text("sysctl"))
    name = files["sysctl"].name if "sysctl" in files else "sysctl.txt"
    if "hw.memsize" in sysctl:
        _plausible(name, "hw.memsize", sysctl["hw.memsize"], bytes_limit, "RAM size in bytes")
    for key in ("iogpu.wired_limit_mb", "debug.iogpu.wired_limit"):
        if key in sysctl:  # 0 means the macOS default
            high = mib_limit if key.endswith("_mb") else bytes_limit
            _plausible(name, key, sysctl[key], high, "GPU wired limit", zero_ok=True)
    if "system_profiler_hardware" in files:
        ram = parse_system_profiler_hardware(text("system_profiler_hardware"))["ram_bytes"]
        if ram is not None:
            said = f"{ram} bytes"  # the file says "N GB"; the bound is on what it means
            if not 0 < ram <= bytes_limit:
                _plausible(files["system_profiler_hardware"].name, "physical_memory", said, bytes_limit, "RAM")
    if "meminfo" in files and parse_meminfo(text("meminfo")) is not None:
        _plausible(files["meminfo"].name, "MemTotal (bytes)", parse_meminfo(text("meminfo")), bytes_limit, "RAM")
    fallback = parse_key_values(text("fallback"))
    if "ram_bytes" in fallback:  # platform/psutil wrote 0 when it could not tell
        _plausible(files["fallback"].name, "ram_bytes", fallback["ram_bytes"], bytes_limit, "RAM size", zero_ok=True)
    if "physical_cores" in fallback:
        _plausible(files["fallback"].name, "physical_cores", fallback["physical_cores"], 100_000, "core count")
    if text("metal_working_set").strip():
        working = text("metal_working_set").strip()
        _plausible(files["metal_working_set"].name, "working set", working, bytes_limit, "Metal working set in bytes")
    for gpu, mib in parse_nvidia_smi(text("nvidia_smi")):
        _plausible(files["nvidia_smi"].name, f"memory.total of {gpu}", mib, mib_limit, "VRAM in MiB")
    measured = _read_kv(folder, BANDWIDTH_FILE).get("measured_bandwidth_gbs")
    if not measured:
        return None
    return _plausible(BANDWIDTH_FILE, "measured_bandwidth_gbs", measured, MAX_BANDWIDTH_GBS, "bandwidth in GB/s")


def _read_kv(folder: Path, name: str) -> dict[str, str]:
    path = folder / name
    return parse_key_values(path.read_text(encoding="utf-8", errors="replace")) if path.is_file() else {}


def replay_profile(folder, libraries: tuple[tuple[str, bool], ...] | None = None) -> HardwareProfile:
    """Profile of the machine a folder of recorded outputs came from. A `doctor --save` folder names its
    OS, architecture, libraries and measured bandwidth; otherwise files from macOS commands mean macOS,
    and arm64 unless the captures say otherwise (an Intel brand or vendor, hw.optional.arm64: 0, or
    hw.optional.x86_64: 1 without the arm64 key); /proc files mean
    Linux, and no library counts as installed. Nothing on this machine is probed. A recorded figure that
    cannot be real (check_replayed_values) is refused with one line naming its file and value."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadParameter(f"{folder} is not a folder — give the folder `doctor --save DIR` wrote")
    texts = texts_from_folder(folder)
    if libraries is None:
        saved = _read_kv(folder, LIBRARIES_FILE)
        libraries = tuple((m, saved.get(m) == "yes") for m in PROBED_LIBRARIES)
    bandwidth = check_replayed_values(folder)
    plat = _read_kv(folder, PLATFORM_FILE)
    if plat.get("os") and plat.get("arch"):
        os_name, arch = plat["os"], plat["arch"]
    elif any(k in texts for k in MACOS_FILES):
        os_name, arch = "macOS", "arm64"
    else:
        os_name, arch = "Linux", "arm64" if "CPU implementer" in texts.get("cpuinfo", "") else "x86_64"
    return profile_from_outputs(os_name, arch, texts, libraries=libraries, measured_bandwidth_gbs=bandwidth)


def replay_power(folder) -> str:
    """Power from a recorded `macmon pipe` (macmon.json, one JSON line per sample) or `powermetrics` text
    (powermetrics.txt) in `folder`: mean and peak W over the samples, or why there is none."""
    from machine.power import parse_macmon_line, parse_powermetrics_text

    folder = Path(folder)
    samples, source = [], ""
    if (folder / "macmon.json").is_file():
        lines = (folder / "macmon.json").read_text(encoding="utf-8", errors="replace").splitlines()
        samples = [w["all_power"] for w in map(parse_macmon_line, lines) if "all_power" in w]
        source = "macmon pipe (recorded)"
    elif (folder / "powermetrics.txt").is_file():
        samples = parse_powermetrics_text((folder / "powermetrics.txt").read_text(encoding="utf-8", errors="replace"))
        source = "powermetrics (recorded)"
    if not samples:
        return "not available here: the folder holds no macmon.json or powermetrics.txt sample"
    return f"{source}: mean {sum(samples) / len(samples):.1f} W, peak {max(samples):.1f} W over {len(samples)} samples"


def save_conditions(folder, texts: dict[str, str]) -> list[Path]:
    """Write the pmset outputs (machine.thermal.pmset_outputs()) into `folder`, one file per command."""
    from machine.thermal import PMSET_FILES

    written = []
    for key, text in texts.items():
        if key in PMSET_FILES:
            written.append(Path(folder) / PMSET_FILES[key])
            written[-1].write_text(text, encoding="utf-8")
    return written


def replay_conditions(folder):
    """Thermal state and power source from recorded pmset_therm.txt / pmset_batt.txt / pmset.txt in `folder`
    (machine.thermal's parsers), or 'not available here: …' for what the folder does not hold."""
    from machine.thermal import PMSET_FILES, conditions_from_texts

    folder = Path(folder)
    texts = {
        key: (folder / name).read_text(encoding="utf-8", errors="replace")
        for key, name in PMSET_FILES.items()
        if (folder / name).is_file()
    }
    return conditions_from_texts(texts, "pmset (recorded)" if texts else "", " in the folder")
