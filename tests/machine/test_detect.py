"""Hardware detection, the optimal config and `app.py doctor`.

Machines we do not have are replayed from outputs recorded on them (tests/fixtures/hardware/<machine>/,
one file per probe, named after the `texts` key profile_from_outputs() reads); this machine is probed
for real, and the doctor command runs as a subprocess with the project's interpreter.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import BadParameter
from engines.base import LoadConfig
from machine import profile as hp
from machine.detect import cpu_flags, detect_hardware, parse_cpu_flags, parse_sysctl_flags
from machine.profile import HardwareProfile, profile_from_outputs
from planning.estimate import QUANTIZATION_STRATEGY, quantization_for
from planning.runtime import ADR006_TARGETS, optimal_config

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "hardware"
GiB = 2**30
ALL_LIBS = tuple((m, True) for m in hp.PROBED_LIBRARIES)
NO_MLX = tuple((m, m not in ("mlx", "mlx_lm")) for m in hp.PROBED_LIBRARIES)


def load_fixture(machine: str, libraries=ALL_LIBS, **kwargs) -> HardwareProfile:
    texts = {path.stem: path.read_text() for path in (FIXTURES / machine).glob("*.txt")}
    os_name = "macOS" if "sysctl" in texts else "Linux"
    arch = "aarch64" if machine == "linux_graviton3" else "arm64" if "Apple M" in texts.get("sysctl", "") else "x86_64"
    return profile_from_outputs(os_name, arch, texts, libraries=libraries, **kwargs)


# machine: (family, tier, P cores, E cores, GPU cores, RAM bytes, bandwidth GB/s, accelerator bytes)
MACHINES = {
    "m1_8gb": ("M1", "base", 4, 4, 7, 8 * GiB, 68.25, 8 * GiB * 2 // 3),
    "m1_pro": ("M1", "Pro", 8, 2, 16, 16 * GiB, 200.0, 16 * GiB * 2 // 3),
    "m1_max": ("M1", "Max", 8, 2, 32, 64 * GiB, 400.0, 64 * GiB * 3 // 4),
    "m2": ("M2", "base", 4, 4, 10, 24 * GiB, 100.0, 24 * GiB * 2 // 3),
    "m2_ultra": ("M2", "Ultra", 16, 8, 76, 192 * GiB, 800.0, 184320 * 2**20),
    "m3": ("M3", "base", 4, 4, 10, 16 * GiB, 100.0, 16 * GiB * 2 // 3),
    "m3_max_30c": ("M3", "Max", 10, 4, 30, 36 * GiB, 300.0, 36 * GiB * 2 // 3),
    "m3_max_40c": ("M3", "Max", 12, 4, 40, 48 * GiB, 400.0, 48 * GiB * 3 // 4),
    "m4": ("M4", "base", 4, 6, 10, 16 * GiB, 120.0, 16 * GiB * 2 // 3),
    "m4_pro": ("M4", "Pro", 10, 4, 20, 48 * GiB, 273.0, 48 * GiB * 3 // 4),
    "m4_max_32c": ("M4", "Max", 10, 4, 32, 36 * GiB, 410.0, 36 * GiB * 2 // 3),
    "m4_max_40c": ("M4", "Max", 12, 4, 40, 128 * GiB, 546.0, 128 * GiB * 3 // 4),
    "m5": ("M5", "base", 4, 6, 10, 32 * GiB, 153.0, 32 * GiB * 2 // 3),
    "intel_i9_mbp16": ("Intel Mac", "", 8, 0, None, 32 * GiB, None, None),
    "linux_epyc_runner": ("Linux CPU", "", 2, 0, None, 16365484 * 1024, None, None),
    "linux_rtx4090": ("NVIDIA GPU", "", 8, 16, None, 65664376 * 1024, None, 24564 * 2**20),
    "linux_graviton3": ("Linux CPU", "", 4, 0, None, 7964820 * 1024, None, None),
}


def test_every_fixture_folder_is_covered():
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == sorted(MACHINES)


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_profile_from_recorded_outputs(machine):
    family, tier, perf, eff, gpu_cores, ram, bandwidth, accel = MACHINES[machine]
    p = load_fixture(machine)
    assert (p.family, p.tier, p.perf_cores, p.efficiency_cores) == (family, tier, perf, eff)
    assert p.gpu_cores == gpu_cores
    assert p.ram_bytes == ram
    assert p.memory_bandwidth_gbs == bandwidth
    assert p.accelerator_memory_bytes == accel
    if tier:  # Apple Silicon
        assert (p.os, p.arch, p.chip) == ("macOS", "arm64", f"Apple {family}" + (f" {tier}" if tier != "base" else ""))
        assert p.gpu_name == p.chip
        assert p.bandwidth_source == "Apple published figure"
        assert p.accelerators == ("metal", "mps")
        assert ("iogpu.wired_limit_mb" if machine == "m2_ultra" else "estimate") in p.accelerator_memory_source
    else:
        assert "mps" not in p.accelerators and "metal" not in p.accelerators
        assert p.bandwidth_source.startswith("not measured")


def test_intel_mac_profile_details():
    p = load_fixture("intel_i9_mbp16")
    assert p.chip == "Intel(R) Core(TM) i9-9980HK CPU @ 2.40GHz"
    assert (p.os, p.arch, p.gpu_name, p.accelerators) == ("macOS", "x86_64", "AMD Radeon Pro 5500M", ())


def test_linux_profiles_details():
    epyc = load_fixture("linux_epyc_runner")
    assert (epyc.chip, epyc.gpu_name, epyc.accelerators) == ("AMD EPYC 7763 64-Core Processor", "", ())
    nvidia = load_fixture("linux_rtx4090")
    assert nvidia.chip == "13th Gen Intel(R) Core(TM) i9-13900K"
    assert (nvidia.gpu_name, nvidia.accelerators) == ("NVIDIA GeForce RTX 4090", ("cuda",))
    assert "GPU's memory bandwidth is not measured" in nvidia.bandwidth_source
    arm = load_fixture("linux_graviton3")
    assert (arm.arch, arm.chip) == ("arm64", "ARM CPU (implementer 0x41, part 0xd40)")


def test_measured_bandwidth_is_labelled_and_ignored_on_apple_silicon():
    p = load_fixture("linux_epyc_runner", measured_bandwidth_gbs=21.5)
    assert (p.memory_bandwidth_gbs, p.bandwidth_source) == (21.5, "measured (numpy copy, derived)")
    assert load_fixture("m3", measured_bandwidth_gbs=21.5).memory_bandwidth_gbs == 100.0


def test_mps_needs_torch_and_metal_working_set_beats_estimate():
    texts = {p.stem: p.read_text() for p in (FIXTURES / "m3").glob("*.txt")}
    no_torch = tuple((m, m != "torch") for m in hp.PROBED_LIBRARIES)
    assert profile_from_outputs("Darwin", "arm64", texts, libraries=no_torch).accelerators == ("metal",)
    texts["metal_working_set"] = str(11_453_251_584)
    p = profile_from_outputs("macOS", "arm64", texts, libraries=ALL_LIBS)
    assert p.accelerator_memory_bytes == 11_453_251_584
    assert "recommendedMaxWorkingSetSize" in p.accelerator_memory_source


def test_rosetta_reports_arm64_for_apple_chips():
    texts = {p.stem: p.read_text() for p in (FIXTURES / "m1_pro").glob("*.txt")}
    assert profile_from_outputs("macOS", "x86_64", texts, libraries=ALL_LIBS).arch == "arm64"


def test_multi_gpu_vram_is_summed():
    texts = {"cpuinfo": "", "meminfo": "MemTotal: 1048576 kB\n", "nvidia_smi": "NVIDIA H100 80GB HBM3, 81559\n" * 2}
    p = profile_from_outputs("Linux", "x86_64", texts, libraries=ALL_LIBS)
    assert p.gpu_name == "2× NVIDIA H100 80GB HBM3"
    assert p.accelerator_memory_bytes == 2 * 81559 * 2**20
    assert "summed over 2 GPUs" in p.accelerator_memory_source


def test_windows_uses_the_psutil_fallback():
    fallback = "cpu_name: AMD Ryzen 9 7950X 16-Core Processor\nphysical_cores: 16\nram_bytes: 68719476736\n"
    p = profile_from_outputs("Windows", "AMD64", {"fallback": fallback}, libraries=ALL_LIBS)
    assert (p.family, p.arch, p.perf_cores, p.ram_bytes) == ("Windows", "x86_64", 16, 64 * GiB)


def test_summary_rows_label_units_and_to_dict_is_json():
    p = load_fixture("m2")
    rows = dict(p.summary_rows())
    assert rows["RAM"] == "24.00 GiB (25.77 GB)"
    assert rows["Memory bandwidth"] == "100 GB/s — Apple published figure"
    assert rows["CPU cores"] == "4 performance + 4 efficiency (physical)"
    assert rows["GPU"] == "Apple M2, 10 GPU cores"
    data = json.loads(json.dumps(p.to_dict()))
    assert data["libraries"]["mlx_lm"] is True and data["family"] == "M2"


# --- pure parsers ---------------------------------------------------------------------------------


def test_parse_sysctl_intel_and_old_macos():
    intel = hp.parse_sysctl((FIXTURES / "intel_i9_mbp16" / "sysctl.txt").read_text())
    assert intel == {
        "chip": "Intel(R) Core(TM) i9-9980HK CPU @ 2.40GHz",
        "arm64": None,
        "x86_64": None,
        "vendor": "",
        "levels": (),
        "physical_cores": 8,
        "ram_bytes": 32 * GiB,
        "model": "",
        "virtual": False,
        "wired_limit_mb": None,
    }
    assert hp.parse_sysctl("debug.iogpu.wired_limit: 12884901888\n")["wired_limit_mb"] == 12288
    assert hp.parse_sysctl("hw.memsize = 17179869184\n")["ram_bytes"] == 16 * GiB


def test_parse_system_profiler_displays():
    assert hp.parse_system_profiler_displays((FIXTURES / "m3_max_40c" / "system_profiler.txt").read_text()) == (
        "Apple M3 Max",
        40,
    )
    intel = (FIXTURES / "intel_i9_mbp16" / "system_profiler.txt").read_text()
    assert hp.parse_system_profiler_displays(intel) == ("AMD Radeon Pro 5500M", None)
    assert hp.parse_system_profiler_displays("Graphics/Displays:\n") == ("", None)


def test_parse_proc_cpuinfo_fallbacks():
    two_sockets = "".join(
        f"processor\t: {i}\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\n"
        f"physical id\t: {i // 4}\ncore id\t\t: {i % 2}\ncpu cores\t: 2\n\n"
        for i in range(8)
    )
    assert hp.parse_proc_cpuinfo(two_sockets) == {
        "model": "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
        "physical_cores": 4,
        "logical_cpus": 8,
    }
    cores_only = "processor\t: 0\ncpu cores\t: 6\n\nprocessor\t: 1\ncpu cores\t: 6\n"
    assert hp.parse_proc_cpuinfo(cores_only)["physical_cores"] == 6
    assert hp.parse_proc_cpuinfo("processor\t: 0\n\nprocessor\t: 1\n\nprocessor\t: 2\n")["physical_cores"] == 3
    # a trimmed dump of 4 of the i9-13900K's 32 CPUs still knows the package has 24 cores
    assert hp.parse_proc_cpuinfo((FIXTURES / "linux_rtx4090" / "cpuinfo.txt").read_text())["physical_cores"] == 24


def test_cpu_flags_from_linux_and_macos_text():
    x86 = "processor : 0\nflags : fpu avx avx2 avx512f amx_tile amx_int8\n\nprocessor : 1\nflags : fpu sse4_2\n"
    assert parse_cpu_flags(x86) == {"fpu", "avx", "avx2", "avx512f", "amx_tile", "amx_int8"}  # the first CPU's
    assert parse_cpu_flags("Features : fp asimd asimddp i8mm sve\n") == {"fp", "asimd", "asimddp", "i8mm", "sve"}
    assert "asimd" in parse_cpu_flags((FIXTURES / "linux_graviton3" / "cpuinfo.txt").read_text())
    assert parse_cpu_flags("processor : 0\nvmx flags : ept\n") == set()
    mac = "hw.optional.neon: 1\nhw.optional.arm.FEAT_SME: 1\nhw.optional.arm.FEAT_SME2: 0\n"
    assert parse_sysctl_flags(mac) == {"hw.optional.neon", "hw.optional.arm.FEAT_SME"}
    if Path("/proc/cpuinfo").exists():  # this machine, for real
        assert cpu_flags() == parse_cpu_flags(Path("/proc/cpuinfo").read_text()) != set()


def test_parse_meminfo_cpu_list_and_nvidia_smi():
    assert hp.parse_meminfo("MemTotal:       24684092 kB\nMemFree: 1 kB\n") == 24684092 * 1024
    assert hp.parse_meminfo("garbage") is None
    assert [hp.parse_cpu_list(t) for t in ("16-31\n", "0-3,8-11", "5", "")] == [16, 8, 1, 0]
    assert hp.parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564\nNVIDIA RTX A6000, 49140\n") == [
        ("NVIDIA GeForce RTX 4090", 24564),
        ("NVIDIA RTX A6000", 49140),
    ]
    failed = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
    assert hp.parse_nvidia_smi(failed) == []


@pytest.mark.parametrize(
    ("chip", "expected"),
    [
        ("Apple M1", ("M1", "base")),
        ("Apple M2 Ultra", ("M2", "Ultra")),
        ("Apple M4 Pro", ("M4", "Pro")),
        ("Apple M3 Max", ("M3", "Max")),
        ("Apple M1 (Virtual)", ("M1", "base")),
        ("Intel(R) Core(TM) i9-9980HK CPU @ 2.40GHz", ("", "")),
    ],
)
def test_apple_family_tier(chip, expected):
    assert hp.apple_family_tier(chip) == expected


@pytest.mark.parametrize(
    ("family", "tier", "gpu_cores", "gbs"),
    [
        ("M1", "base", 8, 68.25),
        ("M1", "Pro", 14, 200),
        ("M1", "Max", 24, 400),
        ("M1", "Ultra", 64, 800),
        ("M2", "base", 8, 100),
        ("M2", "Pro", 19, 200),
        ("M2", "Max", 38, 400),
        ("M2", "Ultra", 60, 800),
        ("M3", "base", 8, 100),
        ("M3", "Pro", 18, 150),
        ("M3", "Max", 30, 300),
        ("M3", "Max", 40, 400),
        ("M3", "Max", None, None),
        ("M3", "Ultra", 80, 819),
        ("M4", "base", 10, 120),
        ("M4", "Pro", 16, 273),
        ("M4", "Max", 32, 410),
        ("M4", "Max", 40, 546),
        ("M5", "base", 10, 153),
        ("M5", "Max", 40, 614.0),
        ("M5", "Max", 32, None),
        ("M5", "Pro", 20, 307.0),
        ("M6", "base", 10, None),
    ],
)
def test_apple_bandwidth_table(family, tier, gpu_cores, gbs):
    assert hp.apple_bandwidth_gbs(family, tier, gpu_cores) == gbs


# --- this machine -----------------------------------------------------------------------------------


def test_detect_hardware_on_this_linux_machine():
    detect_hardware.cache_clear()
    p = detect_hardware(probe_bandwidth=True)
    assert p.os == "Linux" and p.family == "Linux CPU"
    assert p.perf_cores >= 1 and p.ram_bytes > GiB
    assert p.memory_bandwidth_gbs > 0.5 and p.bandwidth_source == "measured (numpy copy, derived)"
    assert dict(p.libraries)["llama_cpp"] is (importlib.util.find_spec("llama_cpp") is not None)
    assert detect_hardware(probe_bandwidth=True) is p  # cached


def test_bandwidth_probe_can_be_disabled(monkeypatch):
    monkeypatch.setenv("LOCALBENCH_NO_BW_PROBE", "1")
    detect_hardware.cache_clear()
    try:
        p = detect_hardware()
        assert p.memory_bandwidth_gbs is None and "LOCALBENCH_NO_BW_PROBE" in p.bandwidth_source
    finally:
        detect_hardware.cache_clear()


def test_detection_imports_nothing_heavy():
    code = (
        "import sys, time; t = time.perf_counter(); from machine.detect import detect_hardware; "
        "detect_hardware(); import commands.doctor; "
        "print(time.perf_counter() - t, [m for m in ('torch', 'mlx', 'llama_cpp', 'transformers', "
        "'sentence_transformers', 'gradio') if m in sys.modules])"
    )
    env = {**os.environ, "LOCALBENCH_NO_BW_PROBE": "0"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    seconds, heavy = out.stdout.split(" ", 1)
    assert heavy.strip() == "[]"
    assert float(seconds) < 3.0


# --- optimal config ---------------------------------------------------------------------------------


def test_quantization_strategy_follows_the_design_target_table():
    assert [r.quantization for r in QUANTIZATION_STRATEGY] == ["Q8_0", "Q5_K_M", "Q4_K_M", "Q4_K_S"]
    sizes = {3.21: "Q8_0", 7.62: "Q5_K_M", 8.03: "Q4_K_M", 12.2: "Q4_K_M", 30.5: "Q4_K_M", 70.6: "Q4_K_S"}
    assert {b: quantization_for(b).quantization for b in sizes} == sizes


def test_design_targets_are_the_design_record():
    assert (ADR006_TARGETS.machine, ADR006_TARGETS.model) == ("Apple M3 Max", "Qwen3-8B")
    assert (ADR006_TARGETS.gen_tps_min, ADR006_TARGETS.ttft_s_max, ADR006_TARGETS.memory_gb_max) == (40.0, 0.2, 8.0)
    assert (ADR006_TARGETS.power_w_max, ADR006_TARGETS.quality_loss_pct_max) == (35.0, 5.0)
    assert ADR006_TARGETS.speedup_vs_cpu_min == 3.0
    assert dict(ADR006_TARGETS.baseline_gen_tps) == {"cpu": 8.0, "torch_mps": 22.0, "mlx_q4": 50.0}


def test_config_m3_max_with_mlx():
    cfg = optimal_config(load_fixture("m3_max_40c"), 8.19)
    assert (cfg.backend, cfg.device, cfg.metal, cfg.n_gpu_layers) == ("mlx", "metal", True, -1)
    assert (cfg.quantization, cfg.mlx_q_bits, cfg.num_ctx, cfg.n_threads) == ("Q4_K_M", 4, 16384, 12)
    assert cfg.memory_multiplier == 1.2
    assert all(r.endswith(".") for r in cfg.reasons) and len(cfg.reasons) >= 6
    assert any("1.2" in r for r in cfg.reasons)


def test_config_apple_without_mlx_uses_llamacpp_on_metal():
    cfg = optimal_config(load_fixture("m3_max_40c", libraries=NO_MLX))
    assert (cfg.backend, cfg.device, cfg.quantization, cfg.mlx_q_bits) == ("llamacpp", "metal", "as shipped", None)


def test_config_small_mac_shrinks_one_step():
    profile = load_fixture("m1_8gb")
    cfg = optimal_config(profile, 8.0)
    # Q4_K_M: 4.89 GB × 1.2 = 5.87 GB > 5.73 GB (2/3 of 8 GiB); Q4_K_S: 4.67 × 1.2 = 5.60 GB fits
    assert (cfg.quantization, cfg.num_ctx, cfg.n_threads) == ("Q4_K_S", 4096, 4)
    assert any("one step down to Q4_K_S" in r for r in cfg.reasons)
    assert optimal_config(profile, 3.0).quantization == "Q8_0"


def test_config_large_macs():
    assert optimal_config(load_fixture("m2_ultra"), 70.6).quantization == "Q4_K_S"
    cfg = optimal_config(load_fixture("m4_max_40c"), 7.6)
    assert (cfg.quantization, cfg.mlx_q_bits, cfg.num_ctx) == ("Q5_K_M", 5, 32768)
    assert optimal_config(load_fixture("m2"), None).num_ctx == 8192


def test_config_nvidia():
    profile = load_fixture("linux_rtx4090")
    cfg = optimal_config(profile, 32.8)
    assert (cfg.backend, cfg.device, cfg.metal, cfg.n_gpu_layers) == ("llamacpp", "cuda", False, -1)
    assert (cfg.quantization, cfg.num_ctx, cfg.n_threads) == ("Q4_K_M", 8192, 8)
    too_big = optimal_config(profile, 70.6)
    assert too_big.quantization == "Q3_K_S"
    assert any("choose a smaller model or offload only part" in r for r in too_big.reasons)


def test_config_cpu_boxes():
    for machine in ("linux_epyc_runner", "intel_i9_mbp16"):
        cfg = optimal_config(load_fixture(machine), 8.0)
        assert (cfg.backend, cfg.device, cfg.metal, cfg.n_gpu_layers) == ("llamacpp", "cpu", False, 0)
        assert (cfg.num_ctx, cfg.quantization) == (4096, "Q4_K_M")
    cfg = optimal_config(load_fixture("linux_epyc_runner"))
    assert cfg.n_threads == 2 and cfg.quantization == "as shipped"
    assert cfg.load_config() == LoadConfig(n_ctx=4096, n_threads=2, n_gpu_layers=0, device="cpu")


@pytest.mark.parametrize("bad", [0.0, -3.0, float("nan"), 1e6])
def test_config_rejects_absurd_model_sizes(bad):
    with pytest.raises(BadParameter):
        optimal_config(load_fixture("m3"), bad)


# --- app.py doctor ----------------------------------------------------------------------------------


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "app.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_doctor_prints_profile_config_and_engines():
    out = run_cli("doctor", "--params-b", "8")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for heading in ("Hardware", "Recommended runtime", "Engines", "Why:"):
        assert heading in text
    assert "Linux CPU" in text and "GiB (" in text and "GB)" in text
    assert "Q4_K_M" in text and "design target (ADR 006) table" in text
    assert "llamacpp" in text


def test_doctor_json():
    out = run_cli("doctor", "--json", "--no-bandwidth-probe")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["hardware"]["family"] == "Linux CPU"
    assert data["hardware"]["memory_bandwidth_gbs"] is None
    assert data["config"]["device"] == "cpu" and data["config"]["quantization"] == "as shipped"
    assert {"name": "llamacpp", "kind": "text", "usable": True, "reason": "ok"} in data["engines"]
