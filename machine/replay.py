"""Replay a folder of recorded probe outputs (`doctor --save`-style, one file per command) through the same
parsers as live detection, so bug reports and public captures from Macs we do not have become tests."""

from __future__ import annotations

from pathlib import Path

from machine.profile import PROBED_LIBRARIES, HardwareProfile, profile_from_outputs

REPLAY_FILES = {
    "sysctl": "sysctl",
    "system_profiler": "system_profiler",
    "system_profiler_displays": "system_profiler",
    "system_profiler_hardware": "system_profiler_hardware",
    "cpuinfo": "cpuinfo",
    "meminfo": "meminfo",
    "cpu_atom": "cpu_atom",
    "nvidia_smi": "nvidia_smi",
}
"""Recorded file stem → the `texts` key profile_from_outputs() reads."""
MACOS_FILES = ("sysctl", "system_profiler", "system_profiler_hardware")


def texts_from_folder(folder) -> dict[str, str]:
    """The recorded probe outputs in a folder (one file per command, any extension)."""
    texts: dict[str, str] = {}
    for path in sorted(Path(folder).iterdir()):
        key = REPLAY_FILES.get(path.stem)
        if key and path.is_file():
            texts[key] = path.read_text(encoding="utf-8", errors="replace")
    return texts


def replay_profile(folder, libraries: tuple[tuple[str, bool], ...] | None = None) -> HardwareProfile:
    """Profile of the machine a folder of recorded outputs came from. Files from macOS commands
    mean macOS, and arm64 unless the captures say otherwise (an Intel brand, hw.optional.arm64: 0);
    /proc files mean Linux. Nothing on this machine is probed."""
    texts = texts_from_folder(folder)
    libraries = tuple((m, False) for m in PROBED_LIBRARIES) if libraries is None else libraries
    if any(k in texts for k in MACOS_FILES):
        return profile_from_outputs("macOS", "arm64", texts, libraries=libraries)
    arch = "arm64" if "CPU implementer" in texts.get("cpuinfo", "") else "x86_64"
    return profile_from_outputs("Linux", arch, texts, libraries=libraries)
