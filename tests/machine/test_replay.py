"""`doctor --save DIR` / `doctor --replay DIR`: this machine's probes written raw, then replayed to the same
report; a recorded Mac capture and recorded power samples replayed on Linux."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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
