"""`doctor --replay DIR` on hostile and partial folders (issue 31 items 7, 9, 12): an impossible or
non-numeric recorded figure is one line naming the file and the value, exit 2, no traceback; partial Mac
captures read as what their files say."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import run_app

CAPTURES = Path(__file__).resolve().parent / "fixtures" / "captures"


@pytest.mark.parametrize(
    ("file", "text", "value"),
    [
        ("bandwidth.txt", "measured_bandwidth_gbs: fast\n", "'fast'"),
        ("bandwidth.txt", "measured_bandwidth_gbs: nan\n", "nan"),
        ("bandwidth.txt", "measured_bandwidth_gbs: -1e308\n", "-1e308"),
        ("sysctl.txt", "hw.memsize: 1020000000000000000000\n", "1020000000000000000000"),
    ],
)
def test_replay_refuses_impossible_or_non_numeric_values_in_one_line(tmp_path, file, text, value):
    shutil.copy(CAPTURES / "m3_max_sequoia" / "sysctl.txt", tmp_path / "sysctl.txt")
    with (tmp_path / file).open("a") as out:
        out.write(text)
    proc = run_app("doctor", "--replay", str(tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {file}: ") and value in lines[0]
    assert "Traceback" not in proc.stderr and "GB/s" not in proc.stdout


def test_replay_of_partial_mac_captures_reads_what_the_files_say():
    intel = run_app("doctor", "--replay", str(CAPTURES / "intel_macos15_no_brand"))
    assert intel.returncode == 0, intel.stderr
    rows = {line.split("  ")[1]: line.split("  ", 2)[2].strip() for line in intel.stdout.splitlines() if "   " in line}
    assert (rows["Family"], rows["OS"], rows["Accelerators"]) == ("Intel Mac", "macOS (x86_64)", "none (CPU only)")
    assert (rows["device"], rows["GPU layers"]) == ("cpu", "0 (none)")
    m3 = run_app("doctor", "--replay", str(CAPTURES / "m3_gpu_name_only"))
    assert m3.returncode == 0, m3.stderr
    assert "100 GB/s — Apple published figure (chip named by its GPU" in m3.stdout
    assert "0.0 MiB" not in m3.stdout and "unified memory is unknown" in m3.stdout
