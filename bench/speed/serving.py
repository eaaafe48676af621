"""Serving-style benchmark, like vLLM's benchmark_serving: N requests at concurrency C against one
loaded engine (usually a server), each streamed and timed here.

Per request: TTFT (request → first text), ITL (gaps between streamed chunks), TPOT ((E2EL − TTFT) /
(output tokens − 1)) and E2EL (request → last chunk), all measured by this process. Reported: mean,
median, sample stddev, p90 and p99 of each (ITL over every gap of every completed request, as vLLM
does), request and token throughput over the whole run's wall time, and completed / failed counts.
The engine's own generation rate (llama.cpp `timings`, Ollama's durations) is kept beside ours.

A warm-up request goes first and is not counted; if it fails, its error is raised at once (a server
that is down fails once, clearly, not N times). A failed request is counted as failed and never
contributes a number. Progress and cancellation come in as a callable and a threading.Event.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from bench.stats import summarize
from core.errors import BadParameter, Cancelled, LocalbenchError
from core.progress import Progress
from engines.base import Engine, GenerationParams
from engines.server_stats import CLIENT_CLOCK, tpot_s

MAX_ERRORS_KEPT = 3


@dataclass(frozen=True)
class RequestRecord:
    """One request of a serving run, timed here."""

    index: int
    ok: bool
    error: str
    """The failure's message; '' when ok."""
    prompt_tokens: int
    """As the server counted them (usage / prompt_eval_count); 0 when it did not say."""
    output_tokens: int
    ttft_s: float
    tpot_s: float
    e2el_s: float
    itl_s: tuple[float, ...]
    start_s: float
    """When it was sent, seconds after the run started."""
    server_gen_tps: float
    """The engine's own generation rate (server timings / Ollama durations), tokens/s."""
    timing_source: str


@dataclass(frozen=True)
class ServingResult:
    """A serving run's summary, with vLLM benchmark_serving's names (times in ms)."""

    model: str
    engine: str
    endpoint: str
    """Server URL (Ollama host or OpenAI base URL); '' for a local engine."""
    backends: str
    num_requests: int
    concurrency: int
    """Most requests in flight at once."""
    n_prompt: int
    """Prompt length asked for, tokens (text prompts: about this many)."""
    n_gen: int
    """max_tokens of each request."""
    completed: int
    failed: int
    duration_s: float
    """Wall time from the first request sent to the last answer, seconds."""
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    """Completed requests per second."""
    output_throughput: float
    """Output tokens per second over the run."""
    total_token_throughput: float
    """(Input + output) tokens per second over the run."""
    mean_ttft_ms: float
    median_ttft_ms: float
    std_ttft_ms: float
    p90_ttft_ms: float
    p99_ttft_ms: float
    mean_tpot_ms: float
    median_tpot_ms: float
    std_tpot_ms: float
    p90_tpot_ms: float
    p99_tpot_ms: float
    mean_itl_ms: float
    median_itl_ms: float
    std_itl_ms: float
    p90_itl_ms: float
    p99_itl_ms: float
    mean_e2el_ms: float
    median_e2el_ms: float
    std_e2el_ms: float
    p90_e2el_ms: float
    p99_e2el_ms: float
    client_gen_tps: float
    """1000 / mean TPOT: per-request decode rate seen by the client (derived)."""
    server_gen_tps: float
    """Mean of the engine's own per-request generation rates; 0 when the server reports none."""
    samples_ttft_ms: tuple[float, ...]
    samples_tpot_ms: tuple[float, ...]
    samples_e2el_ms: tuple[float, ...]
    timing_source: str
    errors: str
    """The first distinct failure messages, '' when none failed."""
    method: str
    test_time: str
    versions: str


def _one(engine: Engine, index: int, prompt, params: GenerationParams, t_run: float, cancel) -> RequestRecord:
    start = time.perf_counter() - t_run
    try:
        _, stats = engine.generate(prompt, params, cancel)
    except LocalbenchError as err:
        return RequestRecord(index, False, str(err), 0, 0, 0.0, 0.0, 0.0, (), start, 0.0, "")
    if stats.stop_reason == "cancelled":
        return RequestRecord(index, False, "cancelled", 0, 0, 0.0, 0.0, 0.0, (), start, 0.0, "")
    return RequestRecord(
        index=index,
        ok=True,
        error="",
        prompt_tokens=stats.prompt_tokens,
        output_tokens=stats.gen_tokens,
        ttft_s=stats.ttft_s,
        tpot_s=tpot_s(stats.wall_s, stats.ttft_s, stats.gen_tokens),
        e2el_s=stats.wall_s,
        itl_s=tuple(stats.itl_s),
        start_s=start,
        server_gen_tps=0.0 if stats.source.startswith(CLIENT_CLOCK) else stats.gen_tps,
        timing_source=stats.source.split(";")[0],
    )


def run_serving(
    engine: Engine,
    *,
    num_requests: int = 20,
    concurrency: int = 1,
    n_prompt: int = 128,
    n_gen: int = 64,
    seed: int = 0,
    endpoint: str = "",
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> tuple[ServingResult, list[RequestRecord]]:
    """Send `num_requests` streamed requests, at most `concurrency` at once; summary and per-request records."""
    if not 1 <= num_requests <= 100_000:
        raise BadParameter(f"number of requests must be between 1 and 100000, got {num_requests}")
    if not 1 <= concurrency <= 1024:
        raise BadParameter(f"concurrency must be between 1 and 1024, got {concurrency}")
    if n_prompt < 1 or n_gen < 1:
        raise BadParameter(f"prompt and output lengths must be positive, got {n_prompt} and {n_gen}")
    info = engine.info()
    params = GenerationParams(max_tokens=n_gen, temperature=0.0, seed=seed, ignore_eos=True).validate()
    prompts = [engine.synthetic_prompt(n_prompt, seed=seed + i + 1) for i in range(num_requests)]
    # The warm-up's own error (server down, unknown model, wrong key) is raised as it is.
    _, warm = engine.generate(engine.synthetic_prompt(n_prompt, seed=seed), params, cancel)
    if warm.stop_reason == "cancelled":
        raise Cancelled("serving benchmark cancelled by the user")
    if progress:
        progress(0.0, f"warm-up done; sending {num_requests} requests at concurrency {concurrency}")
    records: list[RequestRecord] = []
    t_run = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="serving") as pool:
        futures = [pool.submit(_guarded, engine, i, prompts[i], params, t_run, cancel) for i in range(num_requests)]
        for future in as_completed(futures):
            records.append(future.result())
            if progress:
                n_failed = sum(not r.ok for r in records)
                progress(len(records) / num_requests, f"{len(records)}/{num_requests} requests, {n_failed} failed")
    duration = time.perf_counter() - t_run
    if cancel is not None and cancel.is_set():
        raise Cancelled("serving benchmark cancelled by the user; partial timings discarded")
    records.sort(key=lambda r: r.index)
    return summarize_serving(records, info, num_requests, concurrency, n_prompt, n_gen, duration, endpoint), records


def _guarded(engine, index, prompt, params, t_run, cancel) -> RequestRecord:
    if cancel is not None and cancel.is_set():
        return RequestRecord(index, False, "cancelled", 0, 0, 0.0, 0.0, 0.0, (), time.perf_counter() - t_run, 0.0, "")
    return _one(engine, index, prompt, params, t_run, cancel)


def summarize_serving(
    records: list[RequestRecord],
    info,
    num_requests: int,
    concurrency: int,
    n_prompt: int,
    n_gen: int,
    duration_s: float,
    endpoint: str = "",
) -> ServingResult:
    """The run's summary from its request records (pure, apart from the timestamp)."""
    ok = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    ttft = [r.ttft_s * 1e3 for r in ok]
    tpot = [r.tpot_s * 1e3 for r in ok if r.output_tokens > 1]
    itl = [g * 1e3 for r in ok for g in r.itl_s]
    e2el = [r.e2el_s * 1e3 for r in ok]
    s_ttft, s_tpot, s_itl, s_e2el = summarize(ttft), summarize(tpot), summarize(itl), summarize(e2el)
    total_in = sum(r.prompt_tokens for r in ok)
    total_out = sum(r.output_tokens for r in ok)
    server_rates = [r.server_gen_tps for r in ok if r.server_gen_tps > 0]
    errors = list(dict.fromkeys(r.error for r in failed))[:MAX_ERRORS_KEPT]

    def per_s(n: float) -> float:
        return n / duration_s if duration_s > 0 else 0.0

    return ServingResult(
        model=info.name,
        engine=info.engine,
        endpoint=endpoint,
        backends=info.backend,
        num_requests=num_requests,
        concurrency=concurrency,
        n_prompt=n_prompt,
        n_gen=n_gen,
        completed=len(ok),
        failed=len(failed),
        duration_s=duration_s,
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        request_throughput=per_s(len(ok)),
        output_throughput=per_s(total_out),
        total_token_throughput=per_s(total_in + total_out),
        mean_ttft_ms=s_ttft.mean,
        median_ttft_ms=s_ttft.p50,
        std_ttft_ms=s_ttft.stddev,
        p90_ttft_ms=s_ttft.p90,
        p99_ttft_ms=s_ttft.p99,
        mean_tpot_ms=s_tpot.mean,
        median_tpot_ms=s_tpot.p50,
        std_tpot_ms=s_tpot.stddev,
        p90_tpot_ms=s_tpot.p90,
        p99_tpot_ms=s_tpot.p99,
        mean_itl_ms=s_itl.mean,
        median_itl_ms=s_itl.p50,
        std_itl_ms=s_itl.stddev,
        p90_itl_ms=s_itl.p90,
        p99_itl_ms=s_itl.p99,
        mean_e2el_ms=s_e2el.mean,
        median_e2el_ms=s_e2el.p50,
        std_e2el_ms=s_e2el.stddev,
        p90_e2el_ms=s_e2el.p90,
        p99_e2el_ms=s_e2el.p99,
        client_gen_tps=1e3 / s_tpot.mean if tpot and s_tpot.mean > 0 else 0.0,
        server_gen_tps=sum(server_rates) / len(server_rates) if server_rates else 0.0,
        samples_ttft_ms=tuple(ttft),
        samples_tpot_ms=tuple(tpot),
        samples_e2el_ms=tuple(e2el),
        timing_source=(ok[0].timing_source if ok else "") + "; TTFT/TPOT/ITL/E2EL measured here",
        errors=" | ".join(errors),
        method=(
            f"1 warm-up request (not counted), then {num_requests} streamed requests, at most {concurrency} at once; "
            "vLLM definitions; mean, median, sample stddev, p90, p99; ITL over all gaps of completed requests"
        ),
        test_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        versions="; ".join(f"{k} {v}" for k, v in info.versions),
    )


def serving_report(result: ServingResult) -> str:
    """vLLM benchmark_serving's printed summary."""
    r = result
    lines = [
        "{s:{c}^50}".format(s=" Serving Benchmark Result ", c="="),
        f"{'Model / engine:':<36}{r.model} / {r.engine}",
        f"{'Endpoint:':<36}{r.endpoint or 'local'}",
        f"{'Successful requests:':<36}{r.completed:<10}",
        f"{'Failed requests:':<36}{r.failed:<10}",
        f"{'Maximum request concurrency:':<36}{r.concurrency:<10}",
        f"{'Benchmark duration (s):':<36}{r.duration_s:<10.2f}",
        f"{'Total input tokens:':<36}{r.total_input_tokens:<10}",
        f"{'Total generated tokens:':<36}{r.total_output_tokens:<10}",
        f"{'Request throughput (req/s):':<36}{r.request_throughput:<10.2f}",
        f"{'Output token throughput (tok/s):':<36}{r.output_throughput:<10.2f}",
        f"{'Total token throughput (tok/s):':<36}{r.total_token_throughput:<10.2f}",
    ]
    for key, title in (
        ("ttft", "Time to First Token"),
        ("tpot", "Time per Output Token (excl. 1st token)"),
        ("itl", "Inter-token Latency"),
        ("e2el", "End-to-end Latency"),
    ):
        lines.append("{s:{c}^50}".format(s=f" {title} " if len(title) < 46 else title, c="-"))
        for stat in ("mean", "median", "std", "p90", "p99"):
            value = getattr(r, f"{stat}_{key}_ms")
            lines.append(f"{f'{stat.capitalize()} {key.upper()} (ms):':<36}{value:<10.2f}")
    lines.append("{s:{c}^50}".format(s=" Generation rate ", c="-"))
    lines.append(f"{'Client 1/TPOT (tok/s, derived):':<36}{r.client_gen_tps:<10.2f}")
    server = f"{r.server_gen_tps:.2f}" if r.server_gen_tps else "not reported"
    lines.append(f"{'Server-reported (tok/s):':<36}{server}")
    if r.errors:
        lines.append(f"Errors: {r.errors}")
    lines.append("=" * 50)
    return "\n".join(lines) + "\n"
