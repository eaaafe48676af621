"""`doctor --save DIR` / `doctor --replay DIR`: this machine's probes written raw, then replayed to the same
report; a recorded Mac capture and recorded power samples replayed on Linux."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.errors import BadParameter
from machine.detect import collect_live
from machine.replay import replay_power, replay_profile, save_outputs
from tests.conftest import run_app

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"


def test_save_then_replay_gives_the_same_profile(tmp_path):
    live = collect_live(probe_bandwidth=True)  # a measured bandwidth must survive the round trip too
    files = save_outputs(live, tmp_path)
    assert {"platform.txt", "libraries.txt", "bandwidth.txt", "fallback.txt"} <= {f.name for f in files}
    if live.os == "Linux":
        assert (tmp_path / "cpuinfo.txt").read_text() == Path("/proc/cpuinfo").read_text()
    assert replay_profile(tmp_path) == live.profile()


def test_doctor_save_and_replay_print_the_same_report(tmp_path):
    saved = run_app("doctor", "--save", str(tmp_path), "-o", "json")
    assert f"probe outputs to {tmp_path}" in saved.stderr
    replayed = run_app("doctor", "--replay", str(tmp_path), "-o", "json")
    assert replayed.returncode == 0, replayed.stderr
    a, b = json.loads(saved.stdout), json.loads(replayed.stdout)
    assert a["hardware"] == b["hardware"] and a["config"] == b["config"]
    assert b["replayed_from"] == str(tmp_path) and b["engines"] == []
    text = run_app("doctor", "--replay", str(tmp_path))
    assert text.returncode == 0 and "Hardware (replayed from" in text.stdout and "Engines" not in text.stdout
    missing = run_app("doctor", "--replay", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "is not a folder" in missing.stderr + missing.stdout


def test_replay_of_a_mac_capture_and_its_power_samples(tmp_path):
    shutil.copytree(CAPTURES / "m3_max_sequoia", tmp_path, dirs_exist_ok=True)
    # `macmon pipe` lines in its documented shape (ANCHORS: cpu_power … all_power, W); no real one was found.
    lines = [{"cpu_power": 20.5, "gpu_power": 9.5, "ane_power": 0.0, "all_power": w} for w in (30.0, 34.0)]
    (tmp_path / "macmon.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = json.loads(run_app("doctor", "--replay", str(tmp_path), "-o", "json").stdout)
    assert out["hardware"]["chip"] == "Apple M3 Max" and out["hardware"]["os"] == "macOS"
    assert out["config"]["device"] == "metal"
    assert out["power"] == "macmon pipe (recorded): mean 32.0 W, peak 34.0 W over 2 samples"
    assert replay_power(CAPTURES / "m3_max_sequoia").startswith("not available here")


@pytest.mark.parametrize(
    ("file", "text", "said"),
    [
        ("bandwidth.txt", "measured_bandwidth_gbs: nan\n", "measured_bandwidth_gbs = nan is not a plausible bandwidth"),
        ("bandwidth.txt", "measured_bandwidth_gbs: -1e308\n", "= -1e308 is not a plausible bandwidth"),
        ("bandwidth.txt", "measured_bandwidth_gbs: inf\n", "= inf is not a plausible"),
        ("bandwidth.txt", "measured_bandwidth_gbs: 25000\n", "= 25000 is not a plausible bandwidth"),
        ("bandwidth.txt", "measured_bandwidth_gbs: fast\n", "measured_bandwidth_gbs = 'fast' is not a number"),
        ("sysctl.txt", "hw.memsize: 1020000000000000000000\n", "= 1020000000000000000000 is not a plausible"),
        ("sysctl.txt", "hw.memsize: lots\n", "hw.memsize = 'lots' is not a number"),
        ("meminfo.txt", "MemTotal:       999999999999999999 kB\n", "MemTotal (bytes) = "),
        ("nvidia_smi.txt", "NVIDIA H100 80GB HBM3, 99999999999999\n", "memory.total of NVIDIA H100 80GB HBM3"),
        ("fallback.txt", "ram_bytes: many\n", "ram_bytes = 'many' is not a number"),
        ("metal_working_set.txt", "-5\n", "working set = -5 is not a plausible"),
    ],
)
def test_impossible_replayed_values_are_refused_naming_file_and_value(tmp_path, file, text, said):
    (tmp_path / "platform.txt").write_text("os: Linux\narch: x86_64\n" if file != "sysctl.txt" else "")
    (tmp_path / file).write_text(text)
    with pytest.raises(BadParameter) as err:
        replay_profile(tmp_path)
    assert str(err.value).startswith(f"{file}: ") and said in str(err.value)
    assert "\n" not in str(err.value)


def test_plausible_replayed_values_pass(tmp_path):
    (tmp_path / "platform.txt").write_text("os: Linux\narch: x86_64\n")
    (tmp_path / "bandwidth.txt").write_text("measured_bandwidth_gbs: 4800.0\n")
    (tmp_path / "meminfo.txt").write_text("MemTotal:       2113253376 kB\n")  # 2 TiB host
    p = replay_profile(tmp_path)
    assert p.memory_bandwidth_gbs == 4800.0 and p.ram_bytes == 2113253376 * 1024
