"""Live memory probe: parsers on recorded macOS / Linux outputs, missing commands, the live snapshot."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from machine import live_memory as mp

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "memory"
PAGE = 16384


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_memory_pressure_full_output():
    p = mp.parse_memory_pressure(fixture("macos_memory_pressure.txt"))
    assert p.total_bytes == 64 * 2**30
    assert p.page_size_bytes == PAGE
    assert p.free_percent == 71
    assert p.compressor_bytes == 176203 * PAGE
    assert (p.swapins, p.swapouts) == (20117, 48290)


def test_memory_pressure_quick_output_has_only_the_percentage():
    p = mp.parse_memory_pressure(fixture("macos_memory_pressure_quick.txt"))
    assert p.total_bytes == 16 * 2**30 and p.free_percent == 23
    assert p.compressor_bytes is None and p.swapins is None


def test_vm_stat_pages_become_bytes_with_the_stated_page_size():
    vm = mp.parse_vm_stat(fixture("macos_vm_stat.txt"))
    assert vm.page_size_bytes == PAGE
    assert vm.free_bytes == 512734 * PAGE
    assert vm.wired_bytes == 301877 * PAGE
    assert vm.compressed_bytes == 176203 * PAGE
    assert vm.stored_in_compressor_bytes == 701345 * PAGE
    assert vm.anonymous_bytes == 2100113 * PAGE
    assert vm.app_bytes == (2100113 - 38211) * PAGE
    assert vm.cached_files_bytes == (1103377 + 38211) * PAGE
    assert (vm.pageins, vm.pageouts, vm.swapins, vm.swapouts) == (41876632, 1026417, 20117, 48290)
    # the two commands, run on one machine, agree
    assert vm.compressed_bytes == mp.parse_memory_pressure(fixture("macos_memory_pressure.txt")).compressor_bytes


def test_vm_stat_without_page_size_is_rejected_not_guessed():
    assert mp.parse_vm_stat("Pages free: 10.\n") is None


@pytest.mark.parametrize(
    ("name", "wired", "level"),
    [
        ("macos_sysctl_default.txt", 0, 1),
        ("macos_sysctl_raised.txt", 57344, 2),
        ("macos13_sysctl_unknown_oid.txt", None, 4),
    ],
)
def test_sysctl_wired_limit_and_pressure_level(name, wired, level):
    values = mp.parse_sysctl_memory(fixture(name))
    assert values == {"wired_limit_mb": wired, "pressure_level": level}
    assert mp.PRESSURE_LEVELS[level] in ("normal", "warning", "critical")


def test_footprint_bytes_and_formatted():
    assert mp.parse_footprint(fixture("macos_footprint_bytes.txt")) == 5368823808
    assert mp.parse_footprint(fixture("macos_footprint_formatted.txt")) == 812 * 2**20
    assert mp.parse_footprint("footprint: no process matches 'x'") is None


def test_psi_idle_recorded_here_and_stressed():
    idle = mp.parse_psi(fixture("linux_pressure_memory_idle.txt"))
    assert idle.some_avg10 == 0.0 and idle.full_total_us == 0 and idle.level == "normal"
    busy = mp.parse_psi(fixture("linux_pressure_memory_stressed.txt"))
    assert busy.some_avg10 == pytest.approx(31.47) and busy.full_avg60 == pytest.approx(7.44)
    assert busy.some_total_us == 48213377 and busy.level == "high"
    assert mp.parse_psi("") is None


def test_a_macos_command_on_linux_gives_a_clear_message():
    result = mp.run_command(["memory_pressure"], os_name="Linux")
    assert not result.ok
    assert result.message == "`memory_pressure` is a macOS command; not available on Linux"
    missing = mp.run_command(["no-such-probe-command-xyz"])
    assert not missing.ok and "was not found" in missing.message


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/pressure/memory")
def test_live_snapshot_on_this_linux_machine():
    snap = mp.snapshot()
    assert snap.total_bytes > snap.available_bytes > 0
    assert snap.process_rss_bytes > 10 * 2**20
    assert snap.process_private_bytes and snap.process_private_bytes <= snap.process_rss_bytes
    assert "USS" in snap.process_private_source
    assert snap.pressure.source == "/proc/pressure/memory (PSI)"
    assert snap.wired_limit_mb is None
    assert any("macOS setting" in n for n in snap.notes)
    rows = dict((r[0], r[1]) for r in snap.rows())
    assert "GiB" in rows["Total memory"] and "GB" in rows["Total memory"]


def test_pressure_reading_for_macos_on_a_machine_without_its_commands():
    if platform.system() == "Darwin":
        pytest.skip("the commands exist here")
    pressure, vm, wired, notes = mp.pressure_reading(os_name="Darwin")
    assert pressure.level == "unknown" and vm is None and wired is None
    assert any("memory_pressure" in n and "not found" in n for n in notes)


def test_mlx_reading_only_once_mlx_is_imported():
    if "mlx.core" not in sys.modules:
        reading, note = mp.mlx_memory()
        assert reading is None and "not loaded" in note
    mx = pytest.importorskip("mlx.core")  # in requirements.txt; absent only on bare GPU boxes
    held = mx.ones((1024, 1024))  # 4 MiB the allocator must report
    mx.eval(held)
    reading, note = mp.mlx_memory()
    assert reading.used_bytes >= 4 * 2**20 and reading.peak_bytes >= reading.used_bytes
    if reading.limit_bytes is None:  # MLX on a CPU has no Metal working set
        assert "CPU" in note
    del held


def test_torch_reading_when_loaded():
    import torch

    readings, note = mp.torch_memory()
    if torch.cuda.is_available():
        assert readings and readings[0].name.startswith("torch CUDA")
    else:
        assert note.startswith("torch:")


@pytest.mark.cuda
def test_cuda_allocations_show_in_torch_and_nvml_readings():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here; the CPU path is tested above")
    held = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda")
    readings, note = mp.torch_memory()
    assert note == "" and readings[0].name == "torch CUDA:0"
    assert readings[0].used_bytes >= 512 * 2**20 and readings[0].peak_bytes >= readings[0].used_bytes
    gpus, note = mp.nvml_memory()
    assert note == "" and gpus, note
    assert gpus[0].used_bytes >= 512 * 2**20 and gpus[0].limit_bytes > gpus[0].used_bytes
    rows = dict((r[0], r[1]) for r in mp.snapshot().rows())
    assert any(k.startswith("GPU 0 (") for k in rows) and "torch CUDA:0" in rows
    del held
