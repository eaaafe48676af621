"""Device and dtype selection for the torch and MLX engines, from HardwareProfiles of a Mac, an NVIDIA box
and a CPU box (recorded probe outputs in tests/fixtures/hardware/, replayed through
profile_from_outputs) plus the library facts only a live torch or MLX knows; this machine is probed for
real at the end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import BadParameter, EngineUnavailable
from machine import devices
from machine import profile as hp
from machine.devices import DeviceFacts
from machine.profile import profile_from_outputs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hardware"
ALL_LIBS = tuple((m, True) for m in hp.PROBED_LIBRARIES)
NO_TORCH = tuple((m, m != "torch") for m in hp.PROBED_LIBRARIES)


def profile(machine: str, libraries=ALL_LIBS):
    texts = {p.stem: p.read_text() for p in (FIXTURES / machine).glob("*.txt")}
    os_name = "macOS" if "sysctl" in texts else "Linux"
    arch = "arm64" if os_name == "macOS" else "x86_64"
    return profile_from_outputs(os_name, arch, texts, libraries=libraries)


MAC = "m3_max_40c"
NVIDIA = "linux_rtx4090"
CPU_BOX = "linux_epyc_runner"


def test_mac_prefers_mps_for_torch_and_metal_for_mlx():
    mac = profile(MAC)
    torch_choice = devices.torch_device(mac)
    assert (torch_choice.device, torch_choice.backend) == ("mps", "MPS")
    assert torch_choice.dtype == "bf16" and "Apple M3 Max" in torch_choice.reason
    assert devices.torch_device(mac, facts=DeviceFacts(torch_mps=True, mps_bf16=False)).dtype == "fp16"
    mlx_choice = devices.mlx_device(mac)
    assert (mlx_choice.device, mlx_choice.backend) == ("metal", "Metal")
    assert devices.present_devices("torch", mac) == ("mps", "cpu")


def test_mac_overrides_and_aliases():
    mac = profile(MAC)
    assert devices.torch_device(mac, "cpu").device == "cpu"
    assert devices.torch_device(mac, "metal").device == "mps"  # torch reaches the Apple GPU through MPS
    assert devices.torch_device(mac, "GPU").device == "mps"
    assert devices.mlx_device(mac, "cpu").device == "cpu"
    with pytest.raises(EngineUnavailable, match="device 'cuda' is not present.*no NVIDIA GPU.*--device mps, cpu"):
        devices.torch_device(mac, "cuda")
    with pytest.raises(EngineUnavailable, match="MLX uses Metal directly"):
        devices.mlx_device(mac, "mps")


def test_mac_without_torch_runs_torch_nowhere_but_cpu():
    mac = profile(MAC, libraries=NO_TORCH)
    assert "mps" not in mac.accelerators
    assert devices.torch_device(mac).device == "cpu"


def test_nvidia_box_prefers_cuda_and_refuses_mps():
    box = profile(NVIDIA)
    choice = devices.torch_device(box, facts=DeviceFacts(torch_cuda=True, cuda_bf16=True))
    assert (choice.device, choice.dtype, choice.backend) == ("cuda", "bf16", "CUDA")
    assert "RTX 4090" in choice.reason
    with pytest.raises(EngineUnavailable, match="MPS exists only on Apple Silicon"):
        devices.torch_device(box, "mps")
    # MLX uses CUDA only with the mlx[cuda] build
    assert devices.mlx_device(box, facts=DeviceFacts(mlx_cuda=False)).device == "cpu"
    assert devices.mlx_device(box, facts=DeviceFacts(mlx_cuda=True)).device == "cuda"


def test_nvidia_box_with_cpu_only_torch_says_how_to_fix_it():
    box = profile(NVIDIA)
    facts = DeviceFacts(torch_cuda=False, torch_version="2.13.0+cpu")
    assert devices.torch_device(box, facts=facts).device == "cpu"
    with pytest.raises(EngineUnavailable, match=r"CPU-only build.*install a CUDA build of torch"):
        devices.torch_device(box, "cuda", facts=facts)


def test_unsupported_dtype_on_the_device():
    box, mac = profile(NVIDIA), profile(MAC)
    old_card = DeviceFacts(torch_cuda=True, cuda_bf16=False)  # e.g. a T4 or RTX 2080: no bf16
    assert devices.torch_device(box, facts=old_card).dtype == "fp16"
    with pytest.raises(EngineUnavailable, match="bf16 is not supported on this CUDA card.*--dtype fp16"):
        devices.torch_device(box, dtype="bf16", facts=old_card)
    old_macos = DeviceFacts(torch_mps=True, mps_bf16=False)
    with pytest.raises(EngineUnavailable, match="bf16 on MPS needs macOS 14"):
        devices.torch_device(mac, dtype="bfloat16", facts=old_macos)
    assert devices.torch_device(mac, dtype="float16", facts=old_macos).dtype == "fp16"
    with pytest.raises(BadParameter, match="unsupported dtype 'int3'"):
        devices.torch_device(box, dtype="int3")


def test_cpu_box_has_only_the_cpu():
    box = profile(CPU_BOX)
    assert devices.torch_device(box).device == "cpu"
    assert devices.mlx_device(box).device == "cpu"
    with pytest.raises(EngineUnavailable, match=r"device 'mps' is not present on .*\(Linux\).*--device cpu"):
        devices.torch_device(box, "mps")
    with pytest.raises(EngineUnavailable, match="Metal exists only on Apple Silicon"):
        devices.mlx_device(box, "metal")
    with pytest.raises(EngineUnavailable, match="device 'gpu' is not present"):
        devices.torch_device(box, "gpu")
    with pytest.raises(BadParameter, match="unknown device 'tpu'"):
        devices.torch_device(box, "tpu")


def test_speedup_pairs_exist_only_where_an_accelerator_does():
    assert devices.speedup_devices("torch", profile(MAC))[0] == "mps"
    assert devices.speedup_devices("mlx", profile(MAC))[0] == "metal"
    assert devices.speedup_devices("torch", profile(NVIDIA), DeviceFacts(torch_cuda=True))[0] == "cuda"
    accelerated, sentence = devices.speedup_devices("torch", profile(CPU_BOX))
    assert accelerated is None and "only the CPU exists" in sentence


def test_this_machine_for_real():
    """The live probe and the installed libraries: this CPU-only Linux VM with torch+cpu and mlx[cpu]."""
    from machine.detect import detect_hardware

    hw = detect_hardware()
    torch_facts, mlx_facts = devices.live_facts("torch"), devices.live_facts("mlx")
    torch_choice = devices.torch_device(hw, facts=torch_facts)
    mlx_choice = devices.mlx_device(hw, facts=mlx_facts)
    if not hw.accelerators:
        assert torch_facts.torch_cuda is False and torch_facts.torch_mps is False
        assert (torch_choice.device, mlx_choice.device) == ("cpu", "cpu")
        assert devices.speedup_devices("torch", hw, torch_facts)[0] is None
        with pytest.raises(EngineUnavailable, match="device 'mps' is not present"):
            devices.torch_device(hw, "mps", facts=torch_facts)
    else:
        assert torch_choice.device in devices.present_devices("torch", hw, torch_facts)
