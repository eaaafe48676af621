"""The speed runner: llama-bench semantics on the real engine, and exact statistics on a scripted engine."""

from __future__ import annotations

import threading

import pytest

from bench.speed.runner import DecodeSettings, SpeedTest, plan_tests, run_speed, sample_of
from core.errors import BadParameter, Cancelled
from engines.base import Chunk, Engine, GenerationStats, LoadConfig, ModelInfo


class ScriptedEngine(Engine):
    """Replays queued statistics (a fake for runner arithmetic only; real engines are tested elsewhere)."""

    name = "scripted"

    def __init__(self, gen_tps: list[float]):
        self._info = ModelInfo(
            name="m",
            engine="scripted",
            arch="llama",
            n_params=1_000_000,
            file_type="F16",
            model_size_bytes=2_000_000,
            n_ctx=4096,
        )
        self._tps = list(gen_tps)
        self.calls = 0

    def synthetic_prompt(self, n_tokens, seed=0):
        return list(range(n_tokens))

    def stream(self, prompt, params, cancel=None):
        self.calls += 1
        tps = self._tps.pop(0)
        n = params.max_tokens
        yield Chunk("x", 0.01)
        yield Chunk(
            "",
            0.02,
            0,
            GenerationStats(
                ttft_s=0.01,
                prompt_tokens=len(prompt),
                prompt_s=len(prompt) / 1000,
                prompt_tps=1000.0,
                gen_tokens=n,
                gen_s=n / tps,
                gen_tps=tps,
                load_s=0,
                wall_s=0.1,
                peak_rss_bytes=10,
                stop_reason="length",
                source="scripted",
            ),
        )


def test_plan_tests_like_llama_bench():
    tests = plan_tests([128, 512], [64], [(512, 128)])
    assert [t.name for t in tests] == ["pp128", "pp512", "tg64", "pp512+tg128"]
    assert plan_tests([0], [16]) == [SpeedTest(0, 16)]
    with pytest.raises(BadParameter):
        plan_tests([0], [0])
    with pytest.raises(BadParameter):
        plan_tests([-5], [16])


def test_warmup_is_discarded_and_stats_are_exact():
    engine = ScriptedEngine([999.0, 100.0, 110.0, 120.0])
    (result,) = run_speed(engine, [SpeedTest(0, 10)], config=LoadConfig(), repetitions=3)
    assert engine.calls == 4
    assert result.samples_ts == (100.0, 110.0, 120.0)
    assert result.avg_ts == 110.0 and result.stddev_ts == 10.0
    assert result.test == "tg10" and result.n_gen == 10 and result.warmup_runs == 1
    assert result.samples_ns == (100_000_000, 90_909_090, 83_333_333)
    assert result.model_type == "llama 1M F16"


def test_sample_of_each_test_kind():
    s = GenerationStats(
        ttft_s=0.1,
        prompt_tokens=100,
        prompt_s=0.5,
        prompt_tps=200.0,
        gen_tokens=50,
        gen_s=0.5,
        gen_tps=100.0,
        load_s=0,
        wall_s=1.0,
        peak_rss_bytes=0,
        stop_reason="length",
    )
    assert sample_of(SpeedTest(100, 0), s) == (0.5e9, 200.0)
    assert sample_of(SpeedTest(0, 50), s) == (0.5e9, 100.0)
    assert sample_of(SpeedTest(100, 50), s) == (1e9, 150.0)


def test_plan_tests_cross_product_settings_outer_depth_inner():
    settings = [DecodeSettings(flash_attn=0), DecodeSettings(flash_attn=1)]
    tests = plan_tests([32], [8], [], [0, 64], settings)
    assert [(t.name, t.settings.flash_attn) for t in tests] == [
        ("pp32", 0),
        ("pp32 @ d64", 0),
        ("tg8", 0),
        ("tg8 @ d64", 0),
        ("pp32", 1),
        ("pp32 @ d64", 1),
        ("tg8", 1),
        ("tg8 @ d64", 1),
    ]
    with pytest.raises(BadParameter, match="depths"):
        plan_tests([32], [0], [], [-1])


def test_llama_bench_method_rows_at_depth(llama_engine):
    """llama.cpp goes through bench_decode by default: llama_decode only, every setting in the row."""
    pp, pp_d, tg, tg_d = run_speed(
        llama_engine, plan_tests([16], [4], [], [0, 16]), config=LoadConfig(n_ctx=2048, n_threads=2), repetitions=2
    )
    assert all(r.bench_method == "llama-bench" for r in (pp, pp_d, tg, tg_d))
    assert [r.n_depth for r in (pp, pp_d, tg, tg_d)] == [0, 16, 0, 16]
    assert tg_d.test == "tg4 @ d16" and tg_d.depth_method.startswith("KV prefilled with 16")
    assert tg.flash_attn == -1 and tg.type_k == "f16" and tg.n_ubatch == 512 and tg.use_mmap == "1"
    assert tg_d.n_ctx == 20 and len(tg_d.samples_ns) == 2 and all(x > 0 for x in tg_d.samples_ts)
    assert tg.timing_source.startswith("wall clock around llama_decode")


def test_stream_method_reaches_depth_by_prompt_prefill(llama_engine):
    (tg_d,) = run_speed(
        llama_engine,
        [SpeedTest(0, 4, 16)],
        config=LoadConfig(n_ctx=2048, n_threads=2),
        repetitions=1,
        method="stream",
    )
    assert tg_d.bench_method == "stream" and tg_d.n_depth == 16 and tg_d.avg_ts > 0
    assert tg_d.depth_method.startswith("prompt prefill: a 16-token random prompt")
    with pytest.raises(BadParameter, match="llama.cpp context settings"):
        run_speed(
            llama_engine,
            [SpeedTest(0, 4, 0, DecodeSettings(flash_attn=1))],
            config=LoadConfig(n_ctx=2048),
            repetitions=1,
            method="stream",
        )


def test_real_engine_pp_and_tg(llama_engine):
    calls = []
    results = run_speed(
        llama_engine,
        plan_tests([64], [16]),
        config=LoadConfig(n_ctx=2048, n_threads=2),
        repetitions=2,
        progress=lambda f, m: calls.append((f, m)),
        method="stream",
    )
    pp, tg = results
    assert pp.test == "pp64" and pp.n_prompt == 64 and len(pp.samples_ts) == 2
    assert all(ts > 0 for ts in pp.samples_ts + tg.samples_ts)
    # (no speed comparison here: which test is faster depends on the machine's load; figures live in benchmarks/)
    assert tg.timing_source.startswith("llama.cpp perf counters")
    assert pp.model_size > 90e6 and pp.model_n_params == 134_515_008 and pp.n_threads == 2
    assert pp.model_type == "llama 256M Q4_1"  # llama_model_desc, as llama-bench prints it (llama.cpp's size bucket)
    assert calls[-1][0] == 1.0 and len(calls) == 6


def test_cancel_between_repetitions(llama_engine):
    cancel = threading.Event()

    def progress(fraction, message):
        if fraction >= 0.5:
            cancel.set()

    with pytest.raises(Cancelled):
        run_speed(
            llama_engine,
            plan_tests([0], [8]),
            config=LoadConfig(n_ctx=2048),
            repetitions=3,
            progress=progress,
            cancel=cancel,
            method="stream",
        )


def test_test_larger_than_context_is_refused(llama_engine):
    with pytest.raises(BadParameter, match="n_ctx"):
        run_speed(llama_engine, plan_tests([4000], [0]), config=LoadConfig(n_ctx=2048), repetitions=1, method="stream")


def test_a_test_that_did_not_do_its_work_is_a_failed_run():
    """tg8 that produced 0 tokens, or a pp that took no time, is an IncompleteRun, never a 0.00 t/s figure."""
    from bench.speed.runner import SpeedTest, check_complete
    from core.errors import IncompleteRun
    from engines.base import GenerationStats

    def stats(**kw):
        base = dict(ttft_s=0.01, prompt_tokens=8, prompt_s=0.01, prompt_tps=800.0, gen_tokens=8, gen_s=0.1)
        base |= dict(gen_tps=80.0, load_s=0.0, wall_s=0.2, peak_rss_bytes=1, stop_reason="length")
        return GenerationStats(**(base | kw))

    check_complete(SpeedTest(0, 8), stats())
    with pytest.raises(IncompleteRun, match="produced 0 of 8 forced tokens"):
        check_complete(SpeedTest(0, 8), stats(gen_tokens=0, gen_s=0.0, gen_tps=0.0, stop_reason="stop"))
    with pytest.raises(IncompleteRun, match="timed 0 s"):
        check_complete(SpeedTest(64, 0), stats(prompt_s=0.0, prompt_tps=0.0))
