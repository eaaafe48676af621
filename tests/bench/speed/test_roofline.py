"""The decode roofline arithmetic, and the hygiene fields every speed row gets."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest

from bench.speed.hygiene import NOISY_CV_PCT, contention_reasons, finish_row
from bench.speed.roofline import bytes_per_token, decode_roofline, mean_context
from bench.speed.runner import SpeedTest, run_speed
from engines.base import LoadConfig
from machine.detect import last_level_cache_bytes, measure_bandwidth_gbs, parse_cache_size
from machine.thermal import current_conditions
from tests.bench.speed.test_runner import ScriptedEngine


def test_llama3_8b_q4_k_m_at_depth():
    # Llama 3 8B: 32 layers × 8 KV heads × 128 dims × 2 (K, V) × 2 bytes = 128 KiB per token (ANCHORS).
    kv = 2 * 32 * 8 * 128 * 2
    assert kv == 128 * 2**10
    weights = 4_920_000_000
    ctx = mean_context(n_depth=4096, n_prompt=0, n_gen=129)
    assert ctx == 4096 + 64
    per_token = bytes_per_token(weights, kv, ctx)
    assert per_token == weights + kv * 4160
    r = decode_roofline(
        avg_ts=49.0,
        weight_bytes=weights,
        kv_bytes_per_token=kv,
        context_tokens=ctx,
        bandwidth_gbs=400.0,
        bandwidth_source="Apple published figure",
        llc_bytes=None,
    )
    assert r.roofline_tps == pytest.approx(400e9 / per_token)
    assert r.roofline_pct == pytest.approx(49.0 / (400e9 / per_token) * 100)
    assert 60 < r.roofline_pct < 70 and r.fits_in_llc is None  # 49 of ~73 t/s
    assert r.roofline_note.startswith("derived:")


def test_small_model_in_a_large_cache_says_the_dram_roofline_does_not_bind():
    r = decode_roofline(
        avg_ts=160.0,
        weight_bytes=94 * 2**20,
        kv_bytes_per_token=None,
        context_tokens=40,
        bandwidth_gbs=10.0,
        bandwidth_source="measured",
        llc_bytes=480 * 2**20,
    )
    assert r.fits_in_llc is True and "does not bind" in r.roofline_note and "KV unknown" in r.roofline_note
    assert r.bytes_per_token == 94 * 2**20


def test_no_bandwidth_gives_bytes_but_no_ceiling():
    r = decode_roofline(
        avg_ts=10.0,
        weight_bytes=1000,
        kv_bytes_per_token=10.0,
        context_tokens=5,
        bandwidth_gbs=None,
        bandwidth_source="not measured",
        llc_bytes=None,
    )
    assert r.bytes_per_token == 1050 and r.roofline_tps is None and r.roofline_pct is None
    assert "not measured" in r.roofline_note


def test_cache_size_parsing_and_this_machines_llc():
    assert parse_cache_size("32768K") == 32 * 2**20
    assert parse_cache_size("36 MiB (1 instance)") == 36 * 2**20
    assert parse_cache_size("") is None
    size, source = last_level_cache_bytes()
    assert (size is None) == ("not readable" in source)


def test_bandwidth_probe_runs_on_several_threads():
    assert measure_bandwidth_gbs(8 * 2**20, repeats=1, threads=2) > 0


def profile(bandwidth):
    return SimpleNamespace(memory_bandwidth_gbs=bandwidth, bandwidth_source="measured", apple_silicon=False)


def test_every_tg_row_gets_a_roofline_and_hygiene_fields():
    engine = ScriptedEngine([100.0, 100.0, 150.0, 50.0])
    (tg,) = run_speed(engine, [SpeedTest(0, 10)], config=LoadConfig(), repetitions=3, others_resident=1)
    assert tg.cv_pct == pytest.approx(50.0) and tg.noisy and NOISY_CV_PCT == 10.0
    assert tg.contended and "1 other model(s) resident" in tg.contention
    assert tg.os_info and tg.n_cpus >= 1 and tg.power_source
    assert tg.thermal_state == current_conditions().thermal_state  # pmset on macOS, "not available here: …" elsewhere
    assert tg.bytes_per_token == 2_000_000  # no KV shape in the scripted model: weights only
    row = finish_row(dataclasses.replace(tg, contended=False), engine.info(), profile=profile(20.0))
    assert row.roofline_tps == pytest.approx(20e9 / 2_000_000)
    assert row.roofline_pct == pytest.approx(100.0 / 10_000 * 100)
    assert "resident" not in row.contention  # the load average may still be above the cores here


def test_pp_rows_have_no_roofline():
    engine = ScriptedEngine([100.0, 100.0])
    (pp,) = run_speed(engine, [SpeedTest(16, 0)], config=LoadConfig(), repetitions=1)
    assert pp.roofline_pct is None and pp.bytes_per_token is None and pp.cv_pct == 0.0 and not pp.noisy


def test_contention_reasons():
    assert contention_reasons(False, 0, 1.0, 2) == []
    assert contention_reasons(False, 0, 2.5, 2) == ["load average 2.50 above the 2 CPUs"]
    assert len(contention_reasons(True, 2, None, 2)) == 2
    assert math.isnan(float("nan"))
