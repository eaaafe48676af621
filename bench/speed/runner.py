"""The speed runner, like llama-bench: pp N (prompt processing), tg N (generation), pp N+tg M at KV depth d, each
repeated r times after a warm-up, raw samples kept, mean ± sample stddev reported.

Prompts are random token ids where the engine has a tokenizer (as llama-bench and mlx_lm.benchmark
do); tg forces its length by ignoring end-of-sequence. Timed durations come from the engine's own
counters where it has them (llama.cpp perf counters, mlx-lm's GenerationResponse, Ollama's
nanosecond durations) and from this process's clock otherwise; each record names its source.
Progress and cancellation come in as a plain callable and a threading.Event: no UI code here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from bench.speed.hygiene import finish_row
from bench.speed.record import SpeedResult
from bench.stats import summarize
from core.errors import BadParameter, Cancelled, IncompleteRun
from core.progress import Progress
from engines.base import Engine, GenerationParams, GenerationStats, LoadConfig, check_cancel
from engines.llamacpp_bench import TIMING_SOURCE

TG_PROMPT_TOKENS = 8
"""Prompt length for tg tests; its processing is not part of the tg figure."""


@dataclass(frozen=True)
class DecodeSettings:
    """llama.cpp context settings of one test (llama-bench's -fa, -ub, -ctk, -ctv, and -b, -t where they vary
    per test, see bench.speed.plan); None: as loaded."""

    flash_attn: int | None = None
    """-1 auto, 0 off, 1 on."""
    n_ubatch: int | None = None
    type_k: str | None = None
    type_v: str | None = None
    n_batch: int | None = None
    n_threads: int | None = None

    def given(self) -> dict[str, object]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class SpeedTest:
    """One llama-bench test: prompt tokens, generated tokens, KV depth, llama.cpp context settings."""

    n_prompt: int
    n_gen: int
    n_depth: int = 0
    settings: DecodeSettings = DecodeSettings()

    @property
    def name(self) -> str:
        if self.n_prompt and self.n_gen:
            name = f"pp{self.n_prompt}+tg{self.n_gen}"
        else:
            name = f"pp{self.n_prompt}" if self.n_prompt else f"tg{self.n_gen}"
        return f"{name} @ d{self.n_depth}" if self.n_depth else name


def plan_tests(
    n_prompt: Sequence[int] = (512,),
    n_gen: Sequence[int] = (128,),
    pg: Sequence[tuple[int, int]] = (),
    n_depth: Sequence[int] = (0,),
    settings: Sequence[DecodeSettings] = (DecodeSettings(),),
) -> list[SpeedTest]:
    """llama-bench's test list: every -p as pp, every -n as tg, every -pg pair as pg (0 skips), each at
    every -d depth, for every combination of context settings (the outer loop, as llama-bench)."""
    for n in [*n_prompt, *n_gen, *(x for pair in pg for x in pair), *n_depth]:
        if not isinstance(n, int) or n < 0 or n > 1 << 20:
            raise BadParameter(f"token counts and depths must be integers between 0 and {1 << 20}, got {n!r}")
    kinds = [(p, 0) for p in n_prompt if p > 0]
    kinds += [(0, g) for g in n_gen if g > 0]
    kinds += [(p, g) for p, g in pg if p > 0 and g > 0]
    if not kinds:
        raise BadParameter("no test to run: give a positive -p, -n or -pg")
    return [SpeedTest(p, g, d, s) for s in settings for p, g in kinds for d in n_depth]


def _one_run(engine: Engine, test: SpeedTest, seed: int, cancel: threading.Event | None) -> GenerationStats:
    # tg tests start from a short untimed prompt: a 1-token prompt would be counted as a decode.
    # At depth d the prompt carries d more random tokens: the KV cache holds them before the test.
    n_tokens = test.n_depth + test.n_prompt if test.n_prompt else max(test.n_depth, TG_PROMPT_TOKENS)
    prompt = engine.synthetic_prompt(n_tokens, seed=seed)
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


def decode_method(engine: Engine, method: str):
    """The engine's llama-bench method (`bench_decode`) when `method` allows it, else None."""
    if method not in ("auto", "llama-bench", "stream"):
        raise BadParameter(f"method must be auto, llama-bench or stream, got {method!r}")
    bench = None if method == "stream" else getattr(engine, "bench_decode", None)
    if method == "llama-bench" and not callable(bench):
        raise BadParameter(f"engine {engine.name} has no llama-bench method (llama.cpp only); use --method stream")
    return bench if callable(bench) else None


def depth_method(test: SpeedTest, streamed: bool) -> str:
    """How the KV depth was reached and what was timed, in words (pure)."""
    if not test.n_depth:
        return ""
    if not streamed:
        return f"KV prefilled with {test.n_depth} random tokens (untimed, restored per repetition); test timed after"
    if test.n_prompt:
        return (
            f"prompt prefill: one prompt of {test.n_depth}+{test.n_prompt} random tokens, fresh each repetition; "
            f"pp t/s is over all {test.n_depth + test.n_prompt} prompt tokens"
        )
    return f"prompt prefill: a {test.n_depth}-token random prompt (untimed), fresh each repetition; tg timed after it"


def sample_of(test: SpeedTest, stats: GenerationStats) -> tuple[float, float]:
    """(duration_ns, tokens_per_s) of one repetition, as llama-bench defines each test (pure).

    At depth d on the streaming path the prompt is d + n_prompt tokens, all of them timed."""
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
    method: str = "auto",
) -> list[SpeedResult]:
    """Run every test on a loaded engine; one SpeedResult per test, with bench.speed.hygiene's fields (noise,
    contention — `others_resident` models loaded beside this one —, receipt, roofline).

    method 'auto' uses the engine's llama-bench method (llama.cpp: `llama_decode` only) where it has
    one and the streaming path elsewhere; 'stream' forces the streaming path; 'llama-bench' refuses
    engines without it. Every row's `bench_method` says which produced it. Both stop within one decode
    batch or token once `cancel` is set (Cancelled; the test under way leaves no row).
    """
    if not 1 <= repetitions <= 1000:
        raise BadParameter(f"repetitions must be between 1 and 1000, got {repetitions}")
    bench = decode_method(engine, method)
    info = engine.info()
    n_ctx = int(info.n_ctx or config.n_ctx)
    for test in tests:
        needed = test.n_depth + test.n_prompt + test.n_gen
        if bench is None and needed >= n_ctx:
            raise BadParameter(f"{test.name} needs {needed} tokens (depth + test); n_ctx is {n_ctx} — raise -c")
        if bench is None and test.settings.given():
            raise BadParameter(
                f"{', '.join(test.settings.given())} are llama.cpp context settings; "
                f"engine {info.engine} has none on the streaming path"
            )
    cpu_info, gpu_info = _hardware_strings()
    n_threads = getattr(engine, "n_threads", None) or config.n_threads or 0
    loaded = dict(info.settings)
    per_test = 1 if bench is not None else repetitions + int(warmup)
    total = len(tests) * per_test
    done = 0
    results = []
    for test in tests:
        check_cancel(cancel)
        if bench is not None:
            run = bench(
                test.n_prompt,
                test.n_gen,
                test.n_depth,
                repetitions,
                warmup=warmup,
                seed=seed,
                cancel=cancel,
                **{"n_batch": config.n_batch, **test.settings.given()},
            )
            tokens = test.n_prompt + test.n_gen
            ns = list(run.samples_ns)
            ts = [tokens / (x / 1e9) if x > 0 else 0.0 for x in ns]
            ttft, rss = [math.nan], [run.peak_rss_bytes]
            row = {
                "n_threads": int(run.n_threads),
                "n_batch": run.n_batch,
                "n_ubatch": run.n_ubatch,
                "type_k": run.type_k,
                "type_v": run.type_v,
                "flash_attn": run.flash_attn,
                "n_ctx": run.n_ctx,
                "timing_source": TIMING_SOURCE,
                "bench_method": "llama-bench",
                "memory_source": "peak RSS of the model's worker, read after the warm-up and each repetition "
                "(llama-bench method)",
                "method": f"{run.warmup_runs} warm-up + {repetitions} repetitions; mean ± sample stddev; "
                "random token ids; llama_decode only (pp in n_batch batches, tg one token per decode, no "
                f"sampling), fresh context per test, threadpool {'attached' if run.threadpool else 'per graph'}",
            }
            done += 1
            if progress:
                progress(done / total, f"{test.name}: {summarize(ts).mean:.1f} t/s")
        else:
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
            row = {
                "n_threads": int(n_threads),
                "n_batch": config.n_batch,
                "n_ubatch": int(loaded.get("n_ubatch", 0) or 0),
                "type_k": loaded.get("type_k", ""),
                "type_v": loaded.get("type_v", ""),
                "flash_attn": int(loaded["flash_attn"]) if "flash_attn" in loaded else None,
                "n_ctx": n_ctx,
                "timing_source": stats.source or "wall clock (this process)",
                "bench_method": "stream",
                "worker_peak_private_bytes": max(private) or None,
                "memory_source": stats.worker_memory_source or "peak RSS of the engine's process",
                "contended": contended,
                "method": f"{int(warmup)} warm-up + {repetitions} repetitions; mean ± sample stddev; "
                "random-token prompts through the streaming generate path; tokenization and sampling not "
                "timed where the engine counts",
            }
        s_ns, s_ts = summarize(ns), summarize(ts)
        speed = SpeedResult(
            model=info.name,
            engine=info.engine,
            model_filename=info.path or info.name,
            model_type=info.library_desc or model_type(info.arch, info.n_params, info.file_type),
            file_type=info.file_type,
            model_size=int(info.model_size_bytes or 0),
            model_n_params=int(info.n_params or 0),
            backends=info.backend,
            device=info.device,
            n_gpu_layers=config.n_gpu_layers,
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
            test_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            cpu_info=cpu_info,
            gpu_info=gpu_info,
            versions="; ".join(f"{k} {v}" for k, v in info.versions),
            repack=info.setting("repack"),
            use_mmap=info.setting("use_mmap"),
            load_s=float(info.load_s),
            depth_method=depth_method(test, streamed=bench is None),
            notes="; ".join(n for n in info.notes if n),
            **row,
        )
        results.append(finish_row(speed, info, others_resident=others_resident, tg_prompt_tokens=TG_PROMPT_TOKENS))
    return results


def model_type(arch: str, n_params: int | None, file_type: str) -> str:
    """llama-bench's model_type as 'llama 135M Q4_1', for engines whose library has no description of its
    own (llama.cpp rows take `llama_model_desc`, as llama-bench does)."""
    from core.units import fmt_params

    return f"{arch} {fmt_params(n_params) or '?'} {file_type}".strip()
