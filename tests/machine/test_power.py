"""machine.power: pure parsers and summaries, the counter sampler with a stepped counter, and this VM's
honest "not available here" (no RAPL, no NVIDIA driver, not macOS)."""

from __future__ import annotations

import time

from machine import power


def test_macmon_line_and_powermetrics_text():
    # Field names of `macmon pipe` (ANCHORS: cpu_power, gpu_power, ane_power, ram_power, sys_power, all_power);
    # no real macmon line was found to record, so this line is built in that documented shape.
    line = '{"cpu_power": 11.6, "gpu_power": 0.9, "ane_power": 0.0, "all_power": 12.5, "temp": {"cpu_temp_avg": 80}}'
    assert power.parse_macmon_line(line) == {"cpu_power": 11.6, "gpu_power": 0.9, "ane_power": 0.0, "all_power": 12.5}
    assert power.parse_macmon_line("not json") == {}
    text = "CPU Power: 900 mW\nGPU Power: 300 mW\nCombined Power (CPU + GPU + ANE): 1234 mW\n" * 2
    assert power.parse_powermetrics_text(text) == [1.234, 1.234]


def test_summary_units_and_tokens_per_joule():
    r = power.summarize("nvml", [10.0, 20.0, 30.0], 2.0)
    assert (r.avg_power_w, r.peak_power_w, r.energy_j) == (20.0, 30.0, 40.0)
    assert r.tokens_per_joule(80) == 2.0
    empty = power.summarize("nvml", [], 0.5)
    assert empty.message.startswith("not available here:") and empty.tokens_per_joule(10) is None


def test_energy_counter_sampler_and_thread_sampler():
    joules = iter([100.0, 103.0])
    s = power.EnergyCounterSampler("rapl", lambda: next(joules))
    s.start()
    r = s.stop()
    assert r.source == "rapl" and r.energy_j == 3.0 and r.peak_power_w is None
    sampler = power.PowerSampler("fake", lambda: 5.0, interval_s=0.01)
    sampler.start()
    time.sleep(0.05)
    r = sampler.stop()
    assert r.avg_power_w == 5.0 and len(r.samples_w) >= 2


def test_this_vm_says_why_there_is_no_power_reading():
    result = power.power_sampler("Linux")
    assert isinstance(result, power.PowerReading)
    assert result.message.startswith("not available here:") and "RAPL" in result.message
    assert power.power_status() == result.message
