"""llama-bench's method on the real llama.cpp engine (bundled SmolLM2): raw samples, KV depth, bad settings."""

from __future__ import annotations

import os
import pickle
import threading
import time

import pytest

from core.errors import BadParameter, Cancelled


def test_bench_decode_returns_one_positive_sample_per_repetition(llama_engine):
    run = llama_engine.bench_decode(16, 0, 0, 3)
    assert len(run.samples_ns) == 3 and all(ns > 0 for ns in run.samples_ns)
    assert run.kv_pos_start == (0, 0, 0) and run.kv_pos_end == (16, 16, 16)
    assert run.n_ctx == 16 and run.flash_attn == -1 and run.type_k == run.type_v == "f16"
    assert run.warmup_runs == 1 and run.n_threads == 2
    assert run.threadpool  # a ggml threadpool (poll 50) was attached, as llama-bench attaches one
    assert pickle.loads(pickle.dumps(run)) == run  # crosses a worker process unchanged


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads Linux's /proc/self/maps")
def test_the_threadpool_uses_the_ggml_already_loaded_not_a_second_copy(llama_engine):
    """The wheel ships libggml-cpu.so and libggml-cpu.so.0 as separate files: a threadpool made by opening the
    first by path ran on a second copy of ggml. One copy of each library stays mapped through a test."""

    def ggml_files() -> dict[str, set[tuple[int, int]]]:
        files: dict[str, set[tuple[int, int]]] = {}
        with open("/proc/self/maps") as maps:
            paths = [line.split()[-1] for line in maps]
        for path in paths:
            for lib in ("libggml-base", "libggml-cpu"):
                if f"/{lib}." in path:
                    st = os.stat(path)
                    files.setdefault(lib, set()).add((st.st_dev, st.st_ino))
        return files

    run = llama_engine.bench_decode(0, 2, 0, 1)
    assert run.threadpool
    files = ggml_files()
    assert set(files) == {"libggml-base", "libggml-cpu"}
    assert all(len(copies) == 1 for copies in files.values()), files


def test_depth_prefills_the_kv_cache_before_the_timed_decodes(llama_engine):
    run = llama_engine.bench_decode(0, 4, 32, 2, flash_attn="off")
    assert run.kv_pos_start == (32, 32) and run.kv_pos_end == (36, 36)
    assert run.depth_prefill_ns > 0 and run.n_ctx == 36 and run.flash_attn == 0


def test_quantized_kv_cache_with_flash_attention(llama_engine):
    run = llama_engine.bench_decode(0, 2, 0, 1, flash_attn="on", type_k="q8_0", type_v="q8_0")
    assert run.type_k == "q8_0" and run.samples_ns[0] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"flash_attn": "maybe"}, "flash_attn must be"),
        ({"type_k": "q9"}, "unknown KV cache type 'q9'"),
        ({"n_depth": -1}, "n_depth must be"),
        ({"n_depth": 9000}, "training context"),
    ],
)
def test_bad_settings_are_refused(llama_engine, kwargs, message):
    args = {"n_prompt": 0, "n_gen": 2, "repetitions": 1, **kwargs}
    with pytest.raises(BadParameter, match=message):
        llama_engine.bench_decode(**args)


def test_peak_rss_is_read_while_the_tests_kv_cache_is_resident(llama_engine, smollm2_ref):
    """The memory figure is taken inside the test, not after its context is freed: it holds the KV cache.
    Measured in a worker (as `bench` runs it), whose RSS is llama.cpp's alone: in the test process, memory
    that earlier tests freed but kept (torch's, MLX's) can be handed back while the test runs."""
    import llama_cpp
    import psutil

    from engines.base import LoadConfig
    from engines.process.proxy import WorkerEngine

    model = llama_engine._llm._model.model
    n_layer, n_head = llama_cpp.llama_model_n_layer(model), llama_cpp.llama_model_n_head(model)
    kv_width = llama_cpp.llama_model_n_head_kv(model) * llama_cpp.llama_model_n_embd(model) // n_head
    depth = 1024
    kv_bytes = 2 * n_layer * depth * kv_width * 4  # K and V, f32, the prefilled cells only
    engine = WorkerEngine("llamacpp")
    engine.load(smollm2_ref, LoadConfig(n_ctx=512, n_threads=2))
    try:
        engine.bench_decode(0, 2, 0, 1)  # the weights paged in (mmap), so only the test's own memory is new
        before = psutil.Process(engine.pid).memory_info().rss
        run = engine.bench_decode(0, 2, depth, 1, type_k="f32", type_v="f32", flash_attn="off")
    finally:
        engine.unload()
    assert run.peak_rss_bytes - before >= 0.9 * kv_bytes, (run.peak_rss_bytes - before, kv_bytes)


def test_cancel_stops_a_run_mid_test_and_the_engine_measures_on(llama_engine):
    """Cancel reaches the decode loop: 1000 repetitions of tg1500 (hours here) stop once the event is set."""
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled, match="cancelled by the user"):
        llama_engine.bench_decode(0, 1500, 0, 1000, cancel=cancel)
    assert cancel.is_set() and time.monotonic() - t0 < 60  # stopped inside the first repetitions, not after them
    with pytest.raises(Cancelled):  # an event already set stops it before any decode
        llama_engine.bench_decode(16, 0, 64, 3, cancel=cancel)
    run = llama_engine.bench_decode(0, 2, 0, 1, cancel=threading.Event())  # the engine is usable afterwards
    assert len(run.samples_ns) == 1 and run.samples_ns[0] > 0
