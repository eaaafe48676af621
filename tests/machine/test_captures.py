"""Real captures from other people's Macs (tests/fixtures/captures/, sources in its README), replayed through
`machine.profile.replay_profile()`: one test per parser defect of issue 16."""

from __future__ import annotations

from pathlib import Path

import pytest

from machine import profile as hp
from machine.live_memory import PRESSURE_LEVELS
from machine.replay import replay_profile

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"
GiB = 2**30


def replay(name: str) -> hp.HardwareProfile:
    return replay_profile(CAPTURES / name)


def test_every_capture_has_a_source_line():
    readme = (CAPTURES / "README.md").read_text()
    for folder in CAPTURES.iterdir():
        if folder.is_dir():
            assert f"`{folder.name}`" in readme


# name: (chip, family, tier, core levels, perf, eff, RAM bytes, bandwidth GB/s)
EXPECTED = {
    "m5_tahoe": ("Apple M5", "M5", "base", (("Super", 4), ("Efficiency", 6)), 4, 6, 24 * GiB, 153.0),
    "m4_max_sequoia": (
        "Apple M4 Max",
        "M4",
        "Max",
        (("Performance", 12), ("Efficiency", 4)),
        12,
        4,
        64 * GiB,
        546.0,
    ),
    "m3_max_sequoia": (
        "Apple M3 Max",
        "M3",
        "Max",
        (("Performance", 10), ("Efficiency", 4)),
        10,
        4,
        36 * GiB,
        300.0,
    ),
    "m1_rosetta_monterey": (
        "Apple M1",
        "M1",
        "base",
        (("Performance", 4), ("Efficiency", 4)),
        4,
        4,
        16 * GiB,
        68.25,
    ),
    "m5_max_macmon47": (
        "Apple M5 Max",
        "M5",
        "Max",
        (("Super", 6), ("Performance", 12)),
        18,
        0,
        128 * GiB,
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_captures_replay(name):
    chip, family, tier, levels, perf, eff, ram, bandwidth = EXPECTED[name]
    p = replay(name)
    assert (p.os, p.arch, p.chip, p.family, p.tier) == ("macOS", "arm64", chip, family, tier)
    assert (p.core_levels, p.perf_cores, p.efficiency_cores) == (levels, perf, eff)
    assert (p.ram_bytes, p.memory_bandwidth_gbs) == (ram, bandwidth)
    assert "metal" in p.accelerators and not p.virtual


def test_m5_max_super_and_performance_are_all_performance_cores():
    p = replay("m5_max_macmon47")
    assert p.n_threads == 18
    assert dict(p.summary_rows())["CPU cores"] == "6 super + 12 performance (physical)"
    # The SPHardwareDataType capture carries the chip; Apple's 614 GB/s needs the 40-core GPU to be known.
    assert p.bandwidth_source == "no Apple figure for Apple M5 Max (GPU cores unknown)"
    assert hp.apple_bandwidth_gbs("M5", "Max", 40) == 614.0 and hp.apple_bandwidth_gbs("M5", "Pro", 20) == 307.0


def test_max_bandwidth_from_apples_cpu_gpu_pairing_is_labelled():
    p = replay("m4_max_sequoia")
    assert "GPU cores 40 from Apple's 16-core CPU configuration" in p.bandwidth_source


def test_macos_11_apple_processor_is_apple_silicon_via_hw_optional_arm64():
    p = replay("m1_bigsur_apple_processor")
    assert (p.chip, p.family, p.arch) == ("Apple processor", "Apple Silicon", "arm64")
    assert "metal" in p.accelerators
    # No perflevel keys and no RAM in the capture: unknown, not "8 P + 0 E".
    assert (p.perf_cores, p.efficiency_cores, p.physical_cores) == (None, None, 8)
    assert p.memory_bandwidth_gbs is None
    rows = dict(p.summary_rows())
    assert rows["CPU cores"] == "8 physical (performance/efficiency split unknown)"
    assert rows["RAM"] == hp.UNKNOWN


def test_virtual_mac_is_flagged_and_standard_level_counts_as_performance():
    p = replay("m1_virtual_gha")
    assert p.virtual and (p.family, p.tier) == ("M1", "base")
    assert (p.core_levels, p.perf_cores, p.efficiency_cores) == ((("Standard", 3),), 3, 0)
    assert dict(p.summary_rows())["Chip"] == "Apple M1 (Virtual) — virtual machine"


def test_capture_without_brand_is_apple_silicon_with_unknown_chip():
    p = replay("m4_pro_no_brand")
    assert (p.chip, p.family, p.tier, p.arch) == ("", "Apple Silicon", "unknown", "arm64")
    assert (p.perf_cores, p.efficiency_cores, p.ram_bytes) == (8, 4, 24 * GiB)
    assert p.memory_bandwidth_gbs is None and "not named" in p.bandwidth_source
    assert dict(p.summary_rows())["Chip"] == hp.UNKNOWN


def test_intel_mac_without_core_keys_reports_unknown_cores():
    p = replay("intel_i7_mojave")
    assert (p.family, p.arch, p.chip) == ("Intel Mac", "x86_64", "Intel(R) Core(TM) i7-6700K CPU @ 4.00GHz")
    assert (p.perf_cores, p.physical_cores, p.ram_bytes) == (None, None, 0)  # no `or 1` guess
    assert p.accelerators == ()


def test_intel_perflevel_keys_and_machdep_core_count():
    text = (CAPTURES / "m1_virtual_gha" / "sysctl.txt").read_text().replace("Apple M1 (Virtual)", "Intel(R) Core(TM)")
    p = hp.profile_from_outputs("macOS", "x86_64", {"sysctl": text}, libraries=())
    assert (p.family, p.perf_cores, p.efficiency_cores) == ("Intel Mac", 3, 0)
    bigsur = hp.parse_sysctl((CAPTURES / "m1_bigsur_apple_processor" / "sysctl.txt").read_text())
    assert bigsur["physical_cores"] == 8  # from machdep.cpu.core_count


def test_system_profiler_json_with_cores_as_a_string():
    text = (CAPTURES / "m2_max_displays_json" / "system_profiler.json").read_text()
    assert hp.parse_system_profiler_displays(text) == ("Apple M2 Max", 30)
    text = (CAPTURES / "m3_displays_text" / "system_profiler.txt").read_text()
    assert hp.parse_system_profiler_displays(text) == ("Apple M3", 10)


def test_memorystatus_pressure_levels_are_1_2_4():
    assert PRESSURE_LEVELS == {1: "normal", 2: "warning", 4: "critical"}


def test_intel_flag_with_perflevels_and_no_brand_is_an_intel_mac_without_metal():
    from planning.runtime import optimal_config

    p = replay("intel_macos15_no_brand")
    assert (p.family, p.arch, p.tier, p.accelerators) == ("Intel Mac", "x86_64", "", ())
    assert (p.perf_cores, p.efficiency_cores, p.ram_bytes) == (6, 0, 14 * GiB)
    config = optimal_config(p)
    assert (config.device, config.n_gpu_layers, config.metal) == ("cpu", 0, False)
    # Rosetta 2 sets the x86_64 flag too, but with the arm64 key and the brand: still Apple Silicon
    assert replay("m1_rosetta_monterey").family == "M1"


@pytest.mark.parametrize(
    ("name", "chip", "tier", "bandwidth"),
    [("m3_gpu_name_only", "Apple M3", "base", 100.0), ("m2_max_gpu_name_only", "Apple M2 Max", "Max", 400.0)],
)
def test_gpu_name_alone_names_the_family_and_its_published_bandwidth(name, chip, tier, bandwidth):
    p = replay(name)
    assert (p.chip, p.family, p.tier, p.arch) == (chip, chip.split()[1], tier, "arm64")
    assert p.memory_bandwidth_gbs == bandwidth
    assert p.bandwidth_source == f"Apple published figure (chip named by its GPU, {chip}, in system_profiler)"
    assert "metal" in p.accelerators and p.ram_bytes == 0


def test_unknown_ram_is_said_unknown_in_the_context_reason_never_0():
    from planning.runtime import optimal_config

    config = optimal_config(replay("m3_gpu_name_only"))
    reason = next(r for r in config.reasons if r.startswith("num_ctx"))
    assert config.num_ctx == 4096 and "unknown" in reason
    assert "0.0 MiB" not in " ".join(config.reasons) and "0 B" not in reason
    sized = optimal_config(replay("m3_gpu_name_only"), model_params_b=8)
    assert sized.quantization == "unknown (memory not known)"
    assert any("is unknown, so no quantization can be checked" in r for r in sized.reasons)
