"""The serving benchmark (bench/speed/serving.py) against real servers on loopback: llama_cpp.server through
the OpenAI-compatible engine and the Ollama test server, plus the `bench --num-requests` CLI and how
failed requests and cut runs are counted and stored."""

from __future__ import annotations

import json
import threading

import pytest

from bench.results.store import ResultStore
from bench.speed.serving import run_serving, serving_report, summarize_serving
from core.errors import BadParameter, Cancelled
from engines.base import LoadConfig, ModelInfo
from engines.ollama import OllamaEngine
from engines.openai_compat import OpenAIEngine
from tests.conftest import LLAMA_SERVER_KEY, run_app


@pytest.fixture(scope="module")
def openai_engine(llama_server):
    engine = OpenAIEngine()
    config = LoadConfig(n_ctx=2048, options=(("base_url", llama_server), ("api_key", LLAMA_SERVER_KEY)))
    engine.load(engine.resolve("smollm2"), config)
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def ollama_engine(fake_ollama):
    engine = OllamaEngine()
    engine.load(
        engine.resolve("smollm2:135m"), LoadConfig(n_ctx=2048, n_threads=2, options=(("host", fake_ollama.url),))
    )
    yield engine
    engine.unload()


def test_serving_run_against_llama_cpp_server(openai_engine, llama_server):
    messages = []
    result, records = run_serving(
        openai_engine,
        num_requests=6,
        concurrency=2,
        n_prompt=24,
        n_gen=6,
        endpoint=llama_server,
        progress=lambda f, m: messages.append((f, m)),
    )
    assert (result.completed, result.failed, result.num_requests, result.concurrency) == (6, 0, 6, 2)
    assert [r.index for r in records] == list(range(6)) and all(r.ok for r in records)
    assert all(r.output_tokens == 6 for r in records)  # ignore_eos / min_tokens force the length
    assert result.total_output_tokens == 36 and result.total_input_tokens >= 6 * 24
    # two requests were in flight at once: the first two went out together
    assert abs(records[0].start_s - records[1].start_s) < 0.5
    for key in ("ttft", "tpot", "itl", "e2el"):
        mean, p50, p90, p99 = (getattr(result, f"{s}_{key}_ms") for s in ("mean", "median", "p90", "p99"))
        assert 0 < p50 <= p90 <= p99, key
        assert mean > 0
    assert result.mean_e2el_ms > result.mean_ttft_ms
    assert result.request_throughput == pytest.approx(6 / result.duration_s)
    assert result.output_throughput == pytest.approx(36 / result.duration_s)
    assert len(result.samples_ttft_ms) == 6 and len(result.samples_tpot_ms) == 6
    # TPOT per request follows vLLM: (E2EL - TTFT) / (tokens - 1)
    r0 = records[0]
    assert r0.tpot_s == pytest.approx((r0.e2el_s - r0.ttft_s) / 5)
    assert result.server_gen_tps == 0.0  # llama_cpp.server reports no timings in its stream
    assert result.client_gen_tps == pytest.approx(1e3 / result.mean_tpot_ms)
    assert messages[0][1].startswith("warm-up done") and messages[-1][0] == 1.0
    report = serving_report(result)
    assert "Successful requests:                6" in report and "P99 TTFT (ms):" in report


def test_failed_requests_are_counted_never_timed(ollama_engine, fake_ollama):
    def arm(fraction: float, message: str) -> None:
        if message.startswith("warm-up done"):  # the warm-up passed: now fail two requests with HTTP 500
            fake_ollama.set_fault("http500", count=2)

    try:
        result, records = run_serving(ollama_engine, num_requests=5, concurrency=1, n_prompt=16, n_gen=4, progress=arm)
    finally:
        fake_ollama.clear_fault()
    assert (result.completed, result.failed) == (3, 2)
    failed = [r for r in records if not r.ok]
    assert all(r.ttft_s == 0.0 and r.output_tokens == 0 for r in failed)
    assert "HTTP 500" in result.errors and len(result.samples_e2el_ms) == 3
    # Ollama reports its own generation rate (eval_count / eval_duration) beside the client's
    assert result.server_gen_tps > 0 and result.client_gen_tps > 0
    assert result.timing_source.startswith("Ollama final chunk")


def test_cancel_discards_the_run(ollama_engine):
    cancel = threading.Event()

    def progress(fraction: float, message: str) -> None:
        if fraction > 0:
            cancel.set()

    with pytest.raises(Cancelled):
        run_serving(ollama_engine, num_requests=4, concurrency=1, n_prompt=8, n_gen=4, progress=progress, cancel=cancel)


def test_bad_settings(ollama_engine):
    with pytest.raises(BadParameter, match="concurrency"):
        run_serving(ollama_engine, num_requests=2, concurrency=0)
    with pytest.raises(BadParameter, match="number of requests"):
        run_serving(ollama_engine, num_requests=0)


def test_summary_with_every_request_failed_has_no_numbers():
    from bench.speed.serving import RequestRecord

    info = ModelInfo(name="m", engine="openai", backend="remote")
    records = [RequestRecord(i, False, "boom", 0, 0, 0.0, 0.0, 0.0, (), 0.0, 0.0, "") for i in range(3)]
    result = summarize_serving(records, info, 3, 1, 8, 4, 1.0)
    assert (result.completed, result.failed, result.errors) == (0, 3, "boom")
    assert result.request_throughput == 0.0 and result.mean_ttft_ms != result.mean_ttft_ms  # NaN, not a number


def test_cli_serving_benchmark_is_stored(llama_server):
    out = run_app(
        "bench",
        "--engine",
        "openai",
        "--base-url",
        llama_server,
        "--api-key",
        LLAMA_SERVER_KEY,
        "--model",
        "smollm2",
        "-p",
        "16",
        "-n",
        "4",
        "--num-requests",
        "4",
        "--concurrency",
        "2",
        "-o",
        "json",
    )
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)[0]
    assert (row["completed"], row["failed"], row["concurrency"], row["endpoint"]) == (4, 0, 2, llama_server)
    assert row["mean_ttft_ms"] > 0 and row["p99_itl_ms"] >= row["median_itl_ms"]
    run = ResultStore().runs("serving")[0]
    assert run["status"] == "ok" and run["n_rows"] == 1


def test_cli_partial_failure_is_stored_as_failed(fake_ollama):
    # text prompts go to /api/generate: the warm-up passes, then one request is cut
    fake_ollama.set_fault("die", after=1, skip=1, count=1, paths=("/api/generate",))
    try:
        out = run_app(
            "bench",
            "--engine",
            "ollama",
            "--host",
            fake_ollama.url,
            "--model",
            "smollm2:135m",
            "-t",
            "2",
            "-p",
            "16",
            "-n",
            "4",
            "--num-requests",
            "3",
            "--unload-after",
        )
    finally:
        fake_ollama.clear_fault()
    assert out.returncode == 2
    assert "Failed requests:                    1" in out.stdout
    assert (
        out.stderr.strip().splitlines()[-1].startswith("error: 1 of 3 requests failed, so the run is stored as failed")
    )
    run = ResultStore().runs("serving")[0]
    assert run["status"] == "failed" and run["n_rows"] == 0 and "mid-reply" in run["error"]
    # --unload-after: the server dropped the model when the benchmark ended
    path, body = fake_ollama.requests[-1]
    assert path == "/api/generate" and body.get("keep_alive") == 0
