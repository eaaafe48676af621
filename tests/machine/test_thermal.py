"""machine.thermal: `pmset -g therm`, `pmset -g batt` and `pmset -g` parsed from recorded Mac outputs
(tests/fixtures/captures, sources in its README), replayed through `doctor --replay`, and this Linux VM's honest
"not available here" in doctor and in speed rows."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import pytest

from machine import thermal
from machine.replay import replay_conditions, save_conditions
from tests.conftest import run_app

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"


def _therm(name: str) -> dict:
    return thermal.parse_pmset_therm((CAPTURES / name / "pmset_therm.txt").read_text())


def test_therm_of_a_throttled_intel_mac():
    parsed = _therm("mbp_early2011_highsierra_throttled")
    assert (parsed["cpu_speed_limit_pct"], parsed["cpu_scheduler_limit_pct"], parsed["cpu_available_cpus"]) == (
        35,
        100,
        8,
    )
    assert parsed["thermal_warning_level"] is None and parsed["performance_warning_level"] is None
    assert thermal.thermal_state(parsed) == "throttled: CPU speed limit 35 %"


def test_therm_of_an_unthrottled_mac_and_of_apple_silicon_notes():
    assert thermal.thermal_state(_therm("mac_12cpu_2025_pmset")) == "CPU speed limit 100 %"
    notes = _therm("apple_silicon_pmset_notes")
    assert notes["recognized"] and notes["cpu_speed_limit_pct"] is None
    assert thermal.thermal_state(notes) == "no warning recorded"  # not "nominal": pmset measured nothing
    assert thermal.thermal_state(thermal.parse_pmset_therm("command not found")) == ""


def test_a_recorded_warning_level():
    # No capture with a recorded level was found; this line is pmset.c's `print_pretty_date(false)` followed by
    # its printf("Thermal Warning Level = %d\n"), with IOPM.h's kIOPMThermalWarningLevelDanger (5).
    parsed = thermal.parse_pmset_therm("2020-11-24 13:10:40 +0100 Thermal Warning Level = 5\n")
    assert parsed["thermal_warning_level"] == 5
    assert thermal.thermal_state(parsed) == "thermal warning: danger (level 5)"


def test_batt_and_low_power_mode():
    battery = thermal.parse_pmset_batt((CAPTURES / "mba_m1_bigsur_pmset" / "pmset_batt.txt").read_text())
    assert battery == {"drawing_from": "Battery Power", "battery_pct": 100, "battery_state": "discharging"}
    ac = thermal.parse_pmset_batt((CAPTURES / "mbp16_intel_pmset" / "pmset_batt.txt").read_text())
    assert ac["drawing_from"] == "AC Power" and ac["battery_state"] == "charged"
    low = thermal.parse_low_power_mode((CAPTURES / "mba_m1_bigsur_pmset" / "pmset.txt").read_text())
    assert low is True and thermal.power_source_text(battery, low) == "battery 100 %, Low Power Mode on"
    assert thermal.power_source_text(ac, None) == "AC"
    assert thermal.parse_low_power_mode("Currently in use:\n powermode            2\n") is False  # High Power
    assert thermal.parse_low_power_mode("Currently in use:\n sleep 1\n") is None


def test_replay_of_recorded_pmset_files(tmp_path):
    shutil.copytree(CAPTURES / "mba_m1_bigsur_pmset", tmp_path, dirs_exist_ok=True)
    shutil.copy(CAPTURES / "apple_silicon_pmset_notes" / "pmset_therm.txt", tmp_path)
    got = replay_conditions(tmp_path)
    assert (got.thermal_state, got.power_source) == ("no warning recorded", "battery 100 %, Low Power Mode on")
    assert got.source == "pmset (recorded)" and got.low_power_mode is True
    none = replay_conditions(CAPTURES / "m3_max_sequoia")
    assert none.thermal_state == "not available here: no `pmset -g therm` output in the folder (pmset_therm.txt)"
    assert none.power_source.startswith("not available here: no `pmset -g batt` output")


def test_save_then_replay_round_trip(tmp_path):
    """What `doctor --save` writes from pmset's outputs replays to the live reading of the same outputs."""
    texts = {
        "pmset_therm": (CAPTURES / "mbp_early2011_highsierra_throttled" / "pmset_therm.txt").read_text(),
        "pmset_batt": (CAPTURES / "mba_m1_bigsur_pmset" / "pmset_batt.txt").read_text(),
        "pmset": (CAPTURES / "mba_m1_bigsur_pmset" / "pmset.txt").read_text(),
    }
    files = save_conditions(tmp_path, texts)
    assert sorted(f.name for f in files) == ["pmset.txt", "pmset_batt.txt", "pmset_therm.txt"]
    live = thermal.conditions_from_texts(texts, "pmset")
    assert replay_conditions(tmp_path) == thermal.Conditions(**{**live.to_dict(), "source": "pmset (recorded)"})


def test_doctor_replay_reports_them(tmp_path):
    shutil.copytree(CAPTURES / "m3_max_sequoia", tmp_path, dirs_exist_ok=True)
    shutil.copy(CAPTURES / "mbp_early2011_highsierra_throttled" / "pmset_therm.txt", tmp_path)
    shutil.copy(CAPTURES / "mbp16_intel_pmset" / "pmset_batt.txt", tmp_path)
    out = run_app("doctor", "--replay", str(tmp_path), "-o", "json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)["thermal"]
    assert got["thermal_state"] == "throttled: CPU speed limit 35 %" and got["cpu_speed_limit_pct"] == 35
    assert got["power_source"] == "AC" and got["low_power_mode"] is None
    text = run_app("doctor", "--replay", str(tmp_path)).stdout
    assert "throttled: CPU speed limit 35 %" in text and "Power source" in text


@pytest.mark.skipif(platform.system() == "Darwin", reason="off macOS: there pmset answers")
def test_off_macos_the_thermal_state_is_not_available():
    now = thermal.current_conditions()
    assert now.thermal_state.startswith("not available here: pmset is macOS-only")
    assert now.power_source  # psutil's battery, or why there is none
    assert thermal.pmset_outputs() == {}
    doctor = json.loads(run_app("doctor", "--no-bandwidth-probe", "-o", "json").stdout)
    assert doctor["thermal"]["thermal_state"] == now.thermal_state and doctor["thermal"]["source"] == "psutil"
