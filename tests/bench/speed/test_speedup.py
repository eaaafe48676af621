"""'Accelerated vs CPU': which device each engine compares, and the runner on the real bundled model."""

from __future__ import annotations

import math

import pytest

from bench.speed.runner import plan_tests
from bench.speed.speedup import accelerated_device, compare_devices, device_configs
from core.errors import BadParameter
from engines.base import LoadConfig
from engines.llamacpp import LlamaCppEngine
from machine.detect import detect_hardware
from tests.machine.test_devices import CPU_BOX, MAC, NVIDIA, profile


def test_accelerated_device_per_machine_and_engine():
    assert accelerated_device("llamacpp", profile(MAC))[0] == "metal"
    assert accelerated_device("llamacpp", profile(NVIDIA))[0] == "cuda"
    assert accelerated_device("torch", profile(MAC))[0] == "mps"
    assert accelerated_device("torch", profile(NVIDIA))[0] == "cuda"
    device, sentence = accelerated_device("llamacpp", profile(CPU_BOX))
    assert device is None and "only the CPU exists" in sentence
    with pytest.raises(BadParameter, match="local engines"):
        accelerated_device("ollama", profile(MAC))


def test_device_configs_offload_all_layers_or_switch_device():
    fast, slow = device_configs("llamacpp", "metal", LoadConfig(n_ctx=512))
    assert (fast.n_gpu_layers, slow.n_gpu_layers, slow.device) == (-1, 0, "cpu")
    fast, slow = device_configs("torch", "cuda", LoadConfig(n_ctx=512))
    assert (fast.device, slow.device) == ("cuda", "cpu")


def test_this_cpu_machine_has_no_accelerated_figure():
    assert accelerated_device("llamacpp", detect_hardware())[0] is None


def test_compare_devices_on_the_real_model(smollm2_ref):
    """The same code path as on a Mac or an NVIDIA box; here both runs land on the CPU build of llama.cpp."""
    engines = []

    def load(cfg):
        engine = LlamaCppEngine()
        engine.load(smollm2_ref, cfg)
        engines.append(engine)
        return engine

    rows, results = compare_devices(
        load, "llamacpp", "cpu", plan_tests([32], [8]), config=LoadConfig(n_ctx=512, n_threads=2), repetitions=2
    )
    assert [r.test for r in rows] == ["pp32", "tg8"]
    assert len(results) == 4 and all(r.avg_ts > 0 for r in results)
    for row in rows:
        assert math.isclose(row.speedup_x, row.accelerated_avg_ts / row.cpu_avg_ts)
        assert row.meets_target_3x == (row.speedup_x >= 3)
    for engine in engines:
        engine.unload()
