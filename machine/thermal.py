"""Thermal state and power source of a Mac, from `pmset`: what a speed row records beside its figures.

Three commands, no sudo: `pmset -g therm` (thermal and performance warning levels; on Intel Macs also the
CPU power status: CPU_Speed_Limit, CPU_Scheduler_Limit, CPU_Available_CPUs), `pmset -g batt` (the power
source and the battery) and `pmset -g` (the settings in use, where `lowpowermode` — or `powermode` on Macs
with High Power Mode — says whether Low Power Mode is on). The parsers are pure and tested on recorded
outputs (tests/fixtures/captures); `doctor --save` records the three outputs as pmset_therm.txt,
pmset_batt.txt and pmset.txt, and `doctor --replay` parses them with the same code.

What the words mean, from Apple's pmset.c: "Note: No thermal warning level has been recorded" when
IOPMGetThermalWarningLevel has nothing; otherwise "Thermal Warning Level = N" with IOPM.h's levels 0 normal,
5 danger, 10 crisis; "CPU Power notify" (printed to stderr, so it is read with stderr merged) is followed
by "\\tKEY \\t= N" lines. Apple Silicon Macs print only the notes: there a missing warning is all pmset
can say (it is not a measurement of throttling), and the row says so instead of "nominal".
Elsewhere the thermal state is "not available here: <why>", and the power source comes from psutil's
battery sensor.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

THERMAL_WARNING_LEVELS = {0: "normal", 5: "danger", 10: "crisis"}
"""IOPM.h kIOPMThermalWarningLevelNormal / Danger / Crisis."""
PMSET_FILES = {"pmset_therm": "pmset_therm.txt", "pmset_batt": "pmset_batt.txt", "pmset": "pmset.txt"}
"""`texts` key → the file `doctor --save` writes."""
PMSET_ARGS = {"pmset_therm": ["pmset", "-g", "therm"], "pmset_batt": ["pmset", "-g", "batt"], "pmset": ["pmset", "-g"]}


@dataclass(frozen=True)
class Conditions:
    """The thermal state and power source around a run, in words, with the parsed figures behind them."""

    thermal_state: str
    """E.g. 'no warning recorded', 'CPU speed limit 100 %', 'throttled: CPU speed limit 35 %', or
    'not available here: <why>'."""
    power_source: str
    """'AC', 'battery 80 %' (',' 'Low Power Mode on|off' where known), or 'not available here: <why>'."""
    thermal_warning_level: int | None = None
    """IOPM thermal warning level (0, 5, 10); None when none was recorded or pmset was not read."""
    performance_warning_level: int | None = None
    cpu_speed_limit_pct: int | None = None
    """CPU_Speed_Limit, % of full clock (100 = not limited); Intel Macs only."""
    low_power_mode: bool | None = None
    """None when the settings do not say (desktops, older macOS, or not read)."""
    source: str = ""
    """'pmset' (live), 'pmset (recorded)', 'psutil', or ''."""

    def to_dict(self) -> dict:
        return asdict(self)


# --- pure parsers ---------------------------------------------------------------------------------


def parse_pmset_therm(text: str) -> dict:
    """`pmset -g therm` (stdout and stderr) → {'recognized', 'thermal_warning_level',
    'performance_warning_level', 'cpu_speed_limit_pct', 'cpu_scheduler_limit_pct', 'cpu_available_cpus'}."""

    def level(name: str) -> int | None:
        found = re.search(rf"{name} Warning Level\s*[=:]\s*(\d+)", text, re.IGNORECASE)
        return int(found.group(1)) if found else None

    def cpu(key: str) -> int | None:
        found = re.findall(rf"\b{key}\s*=\s*(\d+)", text)
        return int(found[-1]) if found else None  # thermlog-style repeats: the last notification is current

    out = {
        "thermal_warning_level": level("Thermal"),
        "performance_warning_level": level("Performance"),
        "cpu_speed_limit_pct": cpu("CPU_Speed_Limit"),
        "cpu_scheduler_limit_pct": cpu("CPU_Scheduler_Limit"),
        "cpu_available_cpus": cpu("CPU_Available_CPUs"),
    }
    notes = re.search(r"No (thermal|performance) warning level has been recorded|No CPU power status", text)
    out["recognized"] = bool(notes) or any(v is not None for v in out.values())
    return out


def thermal_state(parsed: dict) -> str:
    """Words for a parsed `pmset -g therm` ('' when the text was not pmset's)."""
    if not parsed.get("recognized"):
        return ""
    warning = parsed.get("thermal_warning_level")
    if warning:
        return f"thermal warning: {THERMAL_WARNING_LEVELS.get(warning, 'level')} (level {warning})"
    perf = parsed.get("performance_warning_level")
    if perf:
        return f"performance warning: level {perf}"
    limit = parsed.get("cpu_speed_limit_pct")
    if limit is not None and limit < 100:
        return f"throttled: CPU speed limit {limit} %"
    if limit is not None:
        return f"CPU speed limit {limit} %"
    return "normal" if warning == 0 else "no warning recorded"


def parse_pmset_batt(text: str) -> dict:
    """`pmset -g batt` → {'drawing_from': 'AC Power' | 'Battery Power' | 'UPS Power' | None,
    'battery_pct': int | None, 'battery_state': 'charging' | 'discharging' | 'charged' | ... | None}."""
    source = re.search(r"Now drawing from '([^']+)'", text)
    battery = re.search(r"InternalBattery-\d+.*?\s(\d+)%;\s*([^;]+);", text)
    return {
        "drawing_from": source.group(1) if source else None,
        "battery_pct": int(battery.group(1)) if battery else None,
        "battery_state": battery.group(2).strip() if battery else None,
    }


def parse_low_power_mode(text: str) -> bool | None:
    """Low Power Mode from `pmset -g`: 'lowpowermode 1', or 'powermode 1' on Macs with High Power Mode
    (0 automatic, 1 low power, 2 high power); None when neither setting is listed."""
    found = re.search(r"^\s*lowpowermode\s+(\d+)", text, re.MULTILINE)
    if found:
        return found.group(1) != "0"
    found = re.search(r"^\s*powermode\s+(\d+)", text, re.MULTILINE)
    return found.group(1) == "1" if found else None


def power_source_text(batt: dict, low_power: bool | None) -> str:
    """'AC', 'battery 80 %' or 'UPS', with ', Low Power Mode on|off' when known; '' when pmset did not say."""
    where = batt.get("drawing_from")
    if where is None:
        return ""
    if where == "Battery Power":
        pct = batt.get("battery_pct")
        text = f"battery {pct} %" if pct is not None else "battery"
    else:
        text = {"AC Power": "AC", "UPS Power": "UPS"}.get(where, where)
    if low_power is not None:
        text += f", Low Power Mode {'on' if low_power else 'off'}"
    return text


def conditions_from_texts(texts: dict[str, str], source: str, where: str = "") -> Conditions:
    """Conditions from pmset outputs keyed as in PMSET_FILES (any may be missing; `where` ends the message
    that says so, e.g. ' in the folder')."""
    therm = parse_pmset_therm(texts.get("pmset_therm", ""))
    state = thermal_state(therm)
    if not state:
        missing = "pmset_therm" not in texts
        why = (
            f"no `pmset -g therm` output{where}{' (pmset_therm.txt)' if where else ''}"
            if missing
            else "`pmset -g therm` printed nothing it is known to print"
        )
        state = f"not available here: {why}"
    low = parse_low_power_mode(texts.get("pmset", ""))
    power = power_source_text(parse_pmset_batt(texts.get("pmset_batt", "")), low)
    if not power:
        missing = "pmset_batt" not in texts
        why = (
            f"no `pmset -g batt` output{where}{' (pmset_batt.txt)' if where else ''}"
            if missing
            else "`pmset -g batt` named no power source"
        )
        power = f"not available here: {why}"
    return Conditions(
        state,
        power,
        therm["thermal_warning_level"],
        therm["performance_warning_level"],
        therm["cpu_speed_limit_pct"],
        low,
        source,
    )


# --- live -----------------------------------------------------------------------------------------


def pmset_outputs(timeout_s: float = 3.0) -> dict[str, str]:
    """The three pmset outputs of this Mac (stderr merged: 'CPU Power notify' goes there); {} without pmset."""
    if shutil.which("pmset") is None:
        return {}
    texts = {}
    for key, args in PMSET_ARGS.items():
        try:
            done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s)
        except (subprocess.TimeoutExpired, OSError):
            continue
        texts[key] = done.stdout
    return texts


def psutil_power_source() -> str:
    """'AC', 'battery N %' or 'not available here: …' from psutil's battery sensor (desktops and VMs have none)."""
    try:
        import psutil

        battery = psutil.sensors_battery()
    except (ImportError, AttributeError, RuntimeError, OSError):
        battery = None
    if battery is None:
        return "not available here: no battery sensor (psutil.sensors_battery() is None)"
    return "AC" if battery.power_plugged else f"battery {battery.percent:.0f} %"


def current_conditions(os_name: str | None = None) -> Conditions:
    """This machine's thermal state and power source now: pmset on macOS, psutil's battery elsewhere."""
    os_name = os_name or platform.system()
    if os_name == "Darwin":
        texts = pmset_outputs()
        if texts:
            return conditions_from_texts(texts, "pmset")
    why = "pmset is macOS-only" if os_name != "Darwin" else "pmset was not found on PATH"
    return Conditions(
        f"not available here: {why} (no thermal warning source read on {os_name})",
        psutil_power_source(),
        source="psutil",
    )
