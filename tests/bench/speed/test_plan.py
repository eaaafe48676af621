"""bench.speed.plan: llama-bench's list and range syntax, and the cross-product in the order that loads least."""

from __future__ import annotations

import pytest

from bench.speed.plan import Load, checked, cross_product, int_values
from core.errors import BadParameter
from engines.base import LoadConfig


def test_lists_and_ranges_like_llama_bench():
    assert int_values("128,512") == [128, 512]
    assert int_values("1-4") == [1, 2, 3, 4]
    assert int_values("0-512+128") == [0, 128, 256, 384, 512]
    assert int_values("1-16*2") == [1, 2, 4, 8, 16]
    assert int_values("1-2, 8") == [1, 2, 8]
    assert int_values("1-1") == [1] and len(int_values("1-4096")) == 4096
    for bad in ("4-1", "1-8*1", "1-8+0", "0-1024*4", "0-1000000000", "x", "1.5"):
        with pytest.raises(ValueError):
            int_values(bad)


def test_checked_names_the_flag():
    assert checked("-t", [1, 2], 1) == [1, 2]
    with pytest.raises(BadParameter, match="-b: values must be >= 1, got 0"):
        checked("-b", [256, 0], 1)


def test_llama_bench_method_threads_and_batch_are_per_test_one_load():
    """llama-bench reloads only for model-level settings: -t and -b vary per test, in its nesting order
    (n_batch outside flash_attn outside n_threads), then the tests, then the depths."""
    tests, loads = cross_product(
        n_prompt=[16], n_gen=[4], depths=[0, 8], threads=[1, 2], batches=[256, 512], flash_attn=[0, 1]
    )
    assert loads == [Load()]
    keys = [(t.settings.n_batch, t.settings.flash_attn, t.settings.n_threads, t.name) for t in tests]
    assert keys[:8] == [
        (256, 0, 1, "pp16"),
        (256, 0, 1, "pp16 @ d8"),
        (256, 0, 1, "tg4"),
        (256, 0, 1, "tg4 @ d8"),
        (256, 0, 2, "pp16"),
        (256, 0, 2, "pp16 @ d8"),
        (256, 0, 2, "tg4"),
        (256, 0, 2, "tg4 @ d8"),
    ]
    assert len(tests) == 2 * 2 * 2 * 4
    assert [k[:3] for k in keys[::4]] == [(b, f, t) for b in (256, 512) for f in (0, 1) for t in (1, 2)]


def test_model_level_settings_are_the_outer_loop():
    tests, loads = cross_product(n_prompt=[8], n_gen=[0], threads=[1, 2], use_mmap=[True, False], repack=[False])
    assert loads == [Load(use_mmap=True, repack=False), Load(use_mmap=False, repack=False)]
    assert [t.settings.n_threads for t in tests] == [1, 2]  # inside each load


def test_streaming_path_loads_once_per_thread_and_batch():
    tests, loads = cross_product(n_prompt=[8], n_gen=[4], threads=[1, 2], batches=[256, 512], per_test_threads=False)
    assert [(x.n_batch, x.n_threads) for x in loads] == [(256, 1), (256, 2), (512, 1), (512, 2)]
    assert all(not t.settings.given() for t in tests) and [t.name for t in tests] == ["pp8", "tg4"]


def test_single_values_stay_load_settings_so_row_and_load_agree():
    tests, loads = cross_product(n_prompt=[8], n_gen=[0], threads=[2], batches=[512])
    assert loads == [Load(n_threads=2, n_batch=512)] and not tests[0].settings.given()
    config = loads[0].config(LoadConfig(n_ctx=256, n_threads=4, n_batch=64, options=(("host", "x"),)))
    assert (config.n_threads, config.n_batch, config.options) == (2, 512, (("host", "x"),))
    mmap = Load(use_mmap=False, repack="auto").config(LoadConfig())
    assert mmap.options == (("use_mmap", False), ("repack", "auto"))
