"""Record and replay the live probes: `doctor --save DIR` writes each probe's raw output into DIR, one file
per command, and `doctor --replay DIR` parses such a folder through the same parsers as live detection, so
bug reports and public captures from Macs we do not have become tests."""

from __future__ import annotations

from pathlib import Path

from core.errors import BadParameter
from machine.detect import LiveOutputs
from machine.profile import PROBED_LIBRARIES, HardwareProfile, parse_key_values, profile_from_outputs

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
    texts: dict[str, str] = {}
    for path in sorted(Path(folder).iterdir()):
        key = REPLAY_FILES.get(path.stem)
        if key and path.is_file():
            texts[key] = path.read_text(encoding="utf-8", errors="replace")
    return texts


def _read_kv(folder: Path, name: str) -> dict[str, str]:
    path = folder / name
    return parse_key_values(path.read_text(encoding="utf-8", errors="replace")) if path.is_file() else {}


def replay_profile(folder, libraries: tuple[tuple[str, bool], ...] | None = None) -> HardwareProfile:
    """Profile of the machine a folder of recorded outputs came from. A `doctor --save` folder names its
    OS, architecture, libraries and measured bandwidth; otherwise files from macOS commands mean macOS,
    and arm64 unless the captures say otherwise (an Intel brand, hw.optional.arm64: 0); /proc files mean
    Linux, and no library counts as installed. Nothing on this machine is probed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadParameter(f"{folder} is not a folder — give the folder `doctor --save DIR` wrote")
    texts = texts_from_folder(folder)
    if libraries is None:
        saved = _read_kv(folder, LIBRARIES_FILE)
        libraries = tuple((m, saved.get(m) == "yes") for m in PROBED_LIBRARIES)
    measured = _read_kv(folder, BANDWIDTH_FILE).get("measured_bandwidth_gbs")
    bandwidth = float(measured) if measured else None
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
