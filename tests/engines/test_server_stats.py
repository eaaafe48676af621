"""The pure converters of engines.server_stats, each alone: Ollama's nanoseconds, llama.cpp's `timings`
and printed perf blocks, OpenAI `usage`, and vLLM's TTFT/ITL/TPOT/E2EL on the client clock."""

from __future__ import annotations

import pytest

from engines.server_stats import (
    CLIENT_CLOCK,
    ClientTiming,
    client_timing,
    stats_from_client,
    stats_from_llamacpp_timings,
    stats_from_ollama,
    stats_from_openai,
    stop_reason_of,
    timings_from_perf_log,
    tpot_s,
)

# The final chunk of the streamed /api/chat example in Ollama's docs/api.md.
OLLAMA_FINAL = {
    "model": "llama3.2",
    "created_at": "2023-08-04T19:22:45.499127Z",
    "done": True,
    "total_duration": 4883583458,
    "load_duration": 1334875,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 342546000,
    "eval_count": 282,
    "eval_duration": 4535599000,
}

CLIENT = client_timing([0.40, 0.45, 0.52, 0.56], e2el_s=0.60, peak_rss_bytes=123)


def test_client_timing_follows_vllm_definitions():
    assert CLIENT.ttft_s == pytest.approx(0.40)
    assert CLIENT.itl_s == pytest.approx((0.05, 0.07, 0.04))
    assert CLIENT.e2el_s == 0.60 and CLIENT.n_chunks == 4 and CLIENT.peak_rss_bytes == 123
    # TPOT = (E2EL - TTFT) / (output tokens - 1)
    assert CLIENT.tpot_s(5) == pytest.approx((0.60 - 0.40) / 4)
    assert tpot_s(1.0, 0.2, 1) == 0.0 and tpot_s(1.0, 0.2, 0) == 0.0


def test_client_timing_without_chunks_uses_e2el():
    empty = client_timing([], e2el_s=1.5)
    assert empty.ttft_s == 1.5 and empty.itl_s == () and empty.n_chunks == 0


def test_stats_from_ollama_turns_nanoseconds_into_seconds():
    stats = stats_from_ollama(OLLAMA_FINAL, CLIENT)
    assert stats.prompt_tokens == 26 and stats.gen_tokens == 282
    assert stats.prompt_s == pytest.approx(0.342546)
    assert stats.gen_s == pytest.approx(4.535599)
    assert stats.load_s == pytest.approx(0.001334875)
    # the documented formula: eval_count / eval_duration * 1e9
    assert stats.gen_tps == pytest.approx(282 / 4535599000 * 1e9)
    assert stats.prompt_tps == pytest.approx(26 / 0.342546)
    # TTFT, ITL and wall time come from the client clock; Ollama has no first-token field
    assert stats.ttft_s == CLIENT.ttft_s and stats.itl_s == CLIENT.itl_s and stats.wall_s == CLIENT.e2el_s
    assert stats.stop_reason == "stop"
    assert stats.source.startswith("Ollama final chunk (ns durations)") and "client clock" in stats.source


def test_stats_from_ollama_alone_derives_ttft_and_uses_total_duration():
    stats = stats_from_ollama({**OLLAMA_FINAL, "done_reason": "length"})
    assert stats.ttft_s == pytest.approx(0.001334875 + 0.342546)
    assert stats.wall_s == pytest.approx(4.883583458)
    assert stats.stop_reason == "length" and "derived" in stats.source


@pytest.mark.parametrize(
    ("given", "ours"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("max_tokens", "length"),
        ("load", "stop"),
        ("unload", "stop"),
        (None, "stop"),
        ("cancelled", "cancelled"),
        ("eos", "stop"),
    ],
)
def test_stop_reasons(given, ours):
    assert stop_reason_of(given) == ours


def test_llamacpp_timings_block_is_used_with_client_figures_beside_it():
    timings = {
        "prompt_n": 12,
        "prompt_ms": 30.0,
        "prompt_per_second": 400.0,
        "predicted_n": 5,
        "predicted_ms": 25.0,
        "predicted_per_second": 200.0,
    }
    stats = stats_from_llamacpp_timings(timings, CLIENT, "length", usage={"prompt_tokens": 99})
    assert stats.prompt_tokens == 12 and stats.prompt_s == pytest.approx(0.030)
    assert stats.prompt_tps == pytest.approx(400.0)
    assert stats.gen_tokens == 5 and stats.gen_s == pytest.approx(0.025) and stats.gen_tps == pytest.approx(200.0)
    assert stats.ttft_s == CLIENT.ttft_s and stats.wall_s == CLIENT.e2el_s
    assert stats.stop_reason == "length"
    assert stats.source.startswith("server timings (llama.cpp")
    assert "client clock: TTFT 400.0 ms, TPOT 50.00 ms (20.0 t/s)" in stats.source


def test_usage_counts_with_client_clock():
    stats = stats_from_client(CLIENT, prompt_tokens=40, gen_tokens=5)
    assert stats.prompt_tokens == 40 and stats.gen_tokens == 5
    assert stats.prompt_s == pytest.approx(0.40)  # derived from TTFT
    assert stats.gen_s == pytest.approx(0.20)
    assert stats.gen_tps == pytest.approx(4 / 0.20)  # 1 / TPOT
    assert stats.source.startswith(CLIENT_CLOCK)


def test_openai_prefers_timings_then_usage_then_chunks():
    timings = {"prompt_n": 3, "prompt_ms": 3.0, "predicted_n": 4, "predicted_ms": 8.0}
    usage = {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert stats_from_openai(CLIENT, usage, timings, "stop").source.startswith("server timings")
    by_usage = stats_from_openai(CLIENT, usage, None, "stop")
    assert by_usage.prompt_tokens == 7 and by_usage.gen_tokens == 4 and "tokens: usage" in by_usage.source
    by_chunks = stats_from_openai(CLIENT, None, None, "length", prompt_tokens_hint=9)
    assert by_chunks.gen_tokens == CLIENT.n_chunks and by_chunks.prompt_tokens == 9
    assert "streamed chunks" in by_chunks.source and "server's tokenizer" in by_chunks.source
    unknown = stats_from_openai(CLIENT, None, None, "stop")
    assert unknown.prompt_tokens == 0 and unknown.prompt_tps == 0.0 and "prompt unknown" in unknown.source


def test_perf_log_blocks_parse_like_llama_cpp_prints_them():
    log = """INFO:     127.0.0.1:5000 - "POST /v1/completions HTTP/1.1" 200 OK
llama_perf_context_print:        load time =       0.21 ms
llama_perf_context_print: prompt eval time =    1438.03 ms /   200 tokens (    7.19 ms per token,   139.08 tokens per second)
llama_perf_context_print:        eval time =     604.90 ms /    31 runs   (   19.51 ms per token,    51.25 tokens per second)
llama_perf_context_print:       total time =    2132.17 ms /   231 tokens
llama_perf_context_print:    graphs reused =         30
llama_perf_context_print: prompt eval time =      12.50 ms /    10 tokens (    1.25 ms per token,   800.00 tokens per second)
llama_perf_context_print:        eval time =      40.00 ms /     4 runs   (   10.00 ms per token,   100.00 tokens per second)
"""  # noqa: E501 - llama.cpp's own line width
    blocks = timings_from_perf_log(log)  # the second block has no total line yet: not complete
    assert blocks == [
        {"prompt_ms": 1438.03, "prompt_n": 200, "predicted_ms": 604.9, "predicted_n": 31, "total_ms": 2132.17}
    ]


def test_client_timing_is_frozen():
    with pytest.raises(AttributeError):
        CLIENT.ttft_s = 1.0  # type: ignore[misc]
    assert isinstance(CLIENT, ClientTiming)
