"""The speed runner, like llama-bench: pp N (prompt processing), tg N (generation), pp N+tg M, each
repeated r times after a warm-up, raw samples kept, mean ± sample stddev reported.

Prompts are random token ids where the engine has a tokenizer (as llama-bench and mlx_lm.benchmark
do); tg forces its length by ignoring end-of-sequence. Timed durations come from the engine's own
counters where it has them (llama.cpp perf counters, mlx-lm's GenerationResponse, Ollama's
nanosecond durations) and from this process's clock otherwise; each record names its source.
Progress and cancellation come in as a plain callable and a threading.Event: no UI code here.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.hygiene import finish_row
from bench.records import SpeedResult
from bench.stats import summarize
from core.errors import BadParameter, Cancelled, IncompleteRun
from engines.base import Engine, GenerationParams, GenerationStats, LoadConfig

TG_PROMPT_TOKENS = 8
"""Prompt length for tg tests; its processing is not part of the tg figure."""

Progress = Callable[[float, str], None]
"""progress(fraction done in [0, 1], message)."""


@dataclass(frozen=True)
class SpeedTest:
    """One llama-bench test: prompt tokens, generated tokens, KV depth (always 0 here)."""

    n_prompt: int
    n_gen: int
    n_depth: int = 0

    @property
    def name(self) -> str:
        if self.n_prompt and self.n_gen:
            return f"pp{self.n_prompt}+tg{self.n_gen}"
        return f"pp{self.n_prompt}" if self.n_prompt else f"tg{self.n_gen}"


def plan_tests(
    n_prompt: Sequence[int] = (512,), n_gen: Sequence[int] = (128,), pg: Sequence[tuple[int, int]] = ()
) -> list[SpeedTest]:
    """llama-bench's test list: every -p as pp, every -n as tg, every -pg pair as pg; 0 skips."""
    for n in [*n_prompt, *n_gen, *(x for pair in pg for x in pair)]:
        if not isinstance(n, int) or n < 0 or n > 1 << 20:
            raise BadParameter(f"token counts must be integers between 0 and {1 << 20}, got {n!r}")
    tests = [SpeedTest(p, 0) for p in n_prompt if p > 0]
    tests += [SpeedTest(0, g) for g in n_gen if g > 0]
    tests += [SpeedTest(p, g) for p, g in pg if p > 0 and g > 0]
    if not tests:
        raise BadParameter("no test to run: give a positive -p, -n or -pg")
    return tests


def _one_run(engine: Engine, test: SpeedTest, seed: int, cancel: threading.Event | None) -> GenerationStats:
    # tg tests start from a short untimed prompt: a 1-token prompt would be counted as a decode.
    prompt = engine.synthetic_prompt(test.n_prompt or TG_PROMPT_TOKENS, seed=seed)
    params = GenerationParams(max_tokens=max(test.n_gen, 1), temperature=0.0, seed=seed, ignore_eos=True)
    _, stats = engine.generate(prompt, params, cancel)
    if stats.stop_reason == "cancelled" or (cancel is not None and cancel.is_set()):
        raise Cancelled("benchmark cancelled by the user")
    check_complete(test, stats)
    return stats


def check_complete(test: SpeedTest, stats: GenerationStats) -> None:
    """Raise IncompleteRun when a repetition did less than the test forced or took no time (pure)."""
    if test.n_gen and stats.gen_tokens < test.n_gen:
        raise IncompleteRun(
            f"{test.name}: the engine produced {stats.gen_tokens} of {test.n_gen} forced tokens "
            f"(stop reason '{stats.stop_reason}') — the model file may be broken; the run failed, no figure is stored"
        )
    duration_ns, tps = sample_of(test, stats)
    if duration_ns <= 0 or tps <= 0:
        raise IncompleteRun(f"{test.name}: the engine timed 0 s for it — no figure can be derived; the run is failed")


def sample_of(test: SpeedTest, stats: GenerationStats) -> tuple[float, float]:
    """(duration_ns, tokens_per_s) of one repetition, as llama-bench defines each test (pure)."""
    if test.n_prompt and not test.n_gen:
        return stats.prompt_s * 1e9, stats.prompt_tps
    if test.n_gen and not test.n_prompt:
        return stats.gen_s * 1e9, stats.gen_tps
    seconds = stats.prompt_s + stats.gen_s
    tokens = stats.prompt_tokens + stats.gen_tokens
    return seconds * 1e9, (tokens / seconds if seconds > 0 else 0.0)


def _hardware_strings() -> tuple[str, str]:
    from machine.detect import detect_hardware

    hw = detect_hardware()
    return hw.chip, hw.gpu_name


def run_speed(
    engine: Engine,
    tests: Sequence[SpeedTest],
    *,
    config: LoadConfig,
    repetitions: int = 5,
    warmup: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    others_resident: int = 0,
) -> list[SpeedResult]:
    """Run every test on a loaded engine; one SpeedResult per test, with bench.hygiene's fields (noise,
    contention — `others_resident` models loaded beside this one —, receipt, roofline)."""
    if not 1 <= repetitions <= 1000:
        raise BadParameter(f"repetitions must be between 1 and 1000, got {repetitions}")
    info = engine.info()
    cpu_info, gpu_info = _hardware_strings()
    n_threads = getattr(engine, "n_threads", None) or config.n_threads or 0
    total = len(tests) * (repetitions + int(warmup))
    done = 0
    results = []
    for test in tests:
        if test.n_prompt + test.n_gen >= (info.n_ctx or config.n_ctx):
            raise BadParameter(f"{test.name} needs {test.n_prompt + test.n_gen} tokens; n_ctx is {info.n_ctx}")
        if warmup:
            _one_run(engine, test, seed, cancel)
            done += 1
            if progress:
                progress(done / total, f"{test.name}: warm-up")
        ns, ts, ttft, rss, private, contended = [], [], [], [], [], False
        for rep in range(repetitions):
            stats = _one_run(engine, test, seed + rep + 1, cancel)
            duration_ns, tps = sample_of(test, stats)
            ns.append(int(duration_ns))
            ts.append(tps)
            ttft.append(stats.ttft_s * 1e3)
            rss.append(stats.peak_rss_bytes)
            private.append(stats.worker_peak_private_bytes or 0)
            contended = contended or stats.contended
            done += 1
            if progress:
                progress(done / total, f"{test.name}: run {rep + 1}/{repetitions}, {tps:.1f} t/s")
        s_ns, s_ts = summarize(ns), summarize(ts)
        row = SpeedResult(
            model=info.name,
            engine=info.engine,
            model_filename=info.path or info.name,
            model_type=model_type(info.arch, info.n_params, info.file_type),
            model_size=int(info.model_size_bytes or 0),
            model_n_params=int(info.n_params or 0),
            backends=info.backend,
            device=info.device,
            n_threads=int(n_threads),
            n_gpu_layers=config.n_gpu_layers,
            n_batch=config.n_batch,
            n_ctx=int(info.n_ctx or config.n_ctx),
            test=test.name,
            n_prompt=test.n_prompt,
            n_gen=test.n_gen,
            n_depth=test.n_depth,
            repetitions=repetitions,
            warmup_runs=int(warmup),
            samples_ns=tuple(ns),
            samples_ts=tuple(ts),
            avg_ns=s_ns.mean,
            stddev_ns=s_ns.stddev,
            avg_ts=s_ts.mean,
            stddev_ts=s_ts.stddev,
            avg_ttft_ms=summarize(ttft).mean,
            peak_rss_bytes=max(rss),
            timing_source=stats.source or "wall clock (this process)",
            method=f"{int(warmup)} warm-up + {repetitions} repetitions; mean ± sample stddev; "
            "random-token prompts; tokenization and sampling not timed where the engine counts",
            test_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            cpu_info=cpu_info,
            gpu_info=gpu_info,
            versions="; ".join(f"{k} {v}" for k, v in info.versions),
            repack=info.setting("repack"),
            load_s=float(info.load_s),
            worker_peak_private_bytes=max(private) or None,
            memory_source=stats.worker_memory_source or "peak RSS of the engine's process",
            contended=contended,
            notes="; ".join(n for n in info.notes if n),
        )
        results.append(finish_row(row, info, others_resident=others_resident, tg_prompt_tokens=TG_PROMPT_TOKENS))
    return results


def model_type(arch: str, n_params: int | None, file_type: str) -> str:
    """llama-bench's model_type: 'llama 135M Q4_1'."""
    if not n_params:
        size = "?"
    elif n_params >= 1e9:
        size = f"{n_params / 1e9:.1f}B"
    else:
        size = f"{n_params / 1e6:.0f}M"
    return f"{arch} {size} {file_type}".strip()
