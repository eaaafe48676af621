"""Pure converters from model servers' own numbers to GenerationStats, plus the client-side clock.

Servers report timings in their own units: Ollama's final chunk carries nanosecond durations,
llama.cpp's server a `timings` block in milliseconds, OpenAI-compatible servers (vLLM, SGLang,
LM Studio, mlx_lm.server) only token counts in `usage`. What this process measures while the reply
streams follows vLLM's benchmark_serving definitions:

- TTFT: request sent → first generated text received;
- ITL: the gaps between successive streamed chunks;
- TPOT: (E2EL − TTFT) / (output_tokens − 1);
- E2EL: request sent → last chunk received.

Every converter is a pure function of its inputs, so each is tested alone. `GenerationStats.source`
names where the prompt/generation times came from and carries the client-side figure beside the
server's, so a user always sees both.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engines.base import GenerationStats, rate

NS_PER_S = 1e9
MS_PER_S = 1e3
CLIENT_CLOCK = "client clock"
"""How a GenerationStats.source starts when every time in it was measured here (no server figures)."""


@dataclass(frozen=True)
class ClientTiming:
    """What this process measured for one streamed request (vLLM's definitions)."""

    ttft_s: float
    """Request sent to first generated text received, seconds."""
    itl_s: tuple[float, ...]
    """Gaps between successive streamed chunks, seconds."""
    e2el_s: float
    """Request sent to last chunk received, seconds."""
    n_chunks: int
    """Streamed chunks that carried text."""
    peak_rss_bytes: int = 0
    """Peak resident set size of this (client) process during the request."""

    def tpot_s(self, output_tokens: int) -> float:
        """Time per output token after the first, seconds (0.0 with fewer than 2 tokens)."""
        return tpot_s(self.e2el_s, self.ttft_s, output_tokens)


def client_timing(chunk_times_s: Sequence[float], e2el_s: float, peak_rss_bytes: int = 0) -> ClientTiming:
    """ClientTiming from the arrival times (seconds since the request) of the chunks that carried text."""
    times = list(chunk_times_s)
    ttft = times[0] if times else e2el_s
    gaps = tuple(b - a for a, b in itertools.pairwise(times))
    return ClientTiming(ttft_s=ttft, itl_s=gaps, e2el_s=e2el_s, n_chunks=len(times), peak_rss_bytes=peak_rss_bytes)


def tpot_s(e2el_s: float, ttft_s: float, output_tokens: int) -> float:
    """vLLM's TPOT: (E2EL − TTFT) / (output_tokens − 1); 0.0 when fewer than two tokens came back."""
    if output_tokens < 2:
        return 0.0
    return max(e2el_s - ttft_s, 0.0) / (output_tokens - 1)


def stop_reason_of(reason: str | None) -> str:
    """Our stop reason from a server's: 'length' stays, 'cancelled' stays, anything else ends as 'stop'."""
    if reason in ("length", "max_tokens"):
        return "length"
    if reason == "cancelled":
        return "cancelled"
    return "stop"


def _client_note(client: ClientTiming, gen_tokens: int) -> str:
    tpot = tpot_s(client.e2el_s, client.ttft_s, gen_tokens)
    gen_tps = 1.0 / tpot if tpot > 0 else 0.0
    return (
        f"client clock: TTFT {client.ttft_s * MS_PER_S:.1f} ms, TPOT {tpot * MS_PER_S:.2f} ms "
        f"({gen_tps:.1f} t/s), E2EL {client.e2el_s:.3f} s"
    )


def stats_from_ollama(final_chunk: Mapping, client: ClientTiming | None = None) -> GenerationStats:
    """GenerationStats from Ollama's final chunk (`done: true`), nanoseconds turned into seconds.

    Ollama has no time-to-first-token field: TTFT and ITL come from `client`. Without a client
    timing, TTFT is derived as load + prompt-eval time and wall time is `total_duration`.
    """
    get = final_chunk.get
    prompt_tokens = int(get("prompt_eval_count") or 0)
    gen_tokens = int(get("eval_count") or 0)
    prompt_s = (get("prompt_eval_duration") or 0) / NS_PER_S
    gen_s = (get("eval_duration") or 0) / NS_PER_S
    load_s = (get("load_duration") or 0) / NS_PER_S
    total_s = (get("total_duration") or 0) / NS_PER_S
    source = "Ollama final chunk (ns durations)"
    if client is not None:
        source += f"; TTFT and ITL measured here; {_client_note(client, gen_tokens)}"
    else:
        source += "; TTFT derived as load + prompt-eval time"
    return GenerationStats(
        ttft_s=client.ttft_s if client else load_s + prompt_s,
        prompt_tokens=prompt_tokens,
        prompt_s=prompt_s,
        prompt_tps=rate(prompt_tokens, prompt_s),
        gen_tokens=gen_tokens,
        gen_s=gen_s,
        gen_tps=rate(gen_tokens, gen_s),
        load_s=load_s,
        wall_s=client.e2el_s if client else total_s,
        peak_rss_bytes=client.peak_rss_bytes if client else 0,
        stop_reason=stop_reason_of(get("done_reason")),
        itl_s=client.itl_s if client else (),
        source=source,
    )


def stats_from_llamacpp_timings(
    timings: Mapping, client: ClientTiming, stop_reason: str = "stop", usage: Mapping | None = None
) -> GenerationStats:
    """GenerationStats from llama.cpp server's `timings` block (milliseconds) plus the client clock.

    `timings` has prompt_n, prompt_ms, predicted_n, predicted_ms (and their per-second rates).
    """
    prompt_tokens = int(timings.get("prompt_n") or (usage or {}).get("prompt_tokens") or 0)
    gen_tokens = int(timings.get("predicted_n") or (usage or {}).get("completion_tokens") or 0)
    prompt_s = float(timings.get("prompt_ms") or 0.0) / MS_PER_S
    gen_s = float(timings.get("predicted_ms") or 0.0) / MS_PER_S
    return GenerationStats(
        ttft_s=client.ttft_s,
        prompt_tokens=prompt_tokens,
        prompt_s=prompt_s,
        prompt_tps=rate(prompt_tokens, prompt_s),
        gen_tokens=gen_tokens,
        gen_s=gen_s,
        gen_tps=rate(gen_tokens, gen_s),
        load_s=0.0,
        wall_s=client.e2el_s,
        peak_rss_bytes=client.peak_rss_bytes,
        stop_reason=stop_reason_of(stop_reason),
        itl_s=client.itl_s,
        source=f"server timings (llama.cpp `timings`, ms); {_client_note(client, gen_tokens)}",
    )


def stats_from_client(
    client: ClientTiming,
    prompt_tokens: int,
    gen_tokens: int,
    stop_reason: str = "stop",
    counted_by: str = "usage",
) -> GenerationStats:
    """GenerationStats when the server reports only token counts (OpenAI `usage`) or nothing at all.

    Times come from the client clock: prompt time is TTFT (derived: it also holds the network and
    the first decode step) and generation time is E2EL − TTFT over gen_tokens − 1 gaps.
    `counted_by` says where the token counts came from ('usage', 'streamed chunks', ...).
    """
    prompt_s = client.ttft_s
    gen_s = max(client.e2el_s - client.ttft_s, 0.0)
    return GenerationStats(
        ttft_s=client.ttft_s,
        prompt_tokens=prompt_tokens,
        prompt_s=prompt_s,
        prompt_tps=rate(prompt_tokens, prompt_s),
        gen_tokens=gen_tokens,
        gen_s=gen_s,
        gen_tps=rate(gen_tokens - 1, gen_s) if gen_tokens > 1 else 0.0,
        load_s=0.0,
        wall_s=client.e2el_s,
        peak_rss_bytes=client.peak_rss_bytes,
        stop_reason=stop_reason_of(stop_reason),
        itl_s=client.itl_s,
        source=(
            f"{CLIENT_CLOCK} (tokens: {counted_by}; prompt t/s derived from TTFT, generation t/s = 1/TPOT); "
            f"{_client_note(client, gen_tokens)}"
        ),
    )


def stats_from_openai(
    client: ClientTiming,
    usage: Mapping | None,
    timings: Mapping | None,
    stop_reason: str,
    prompt_tokens_hint: int = 0,
) -> GenerationStats:
    """The best GenerationStats an OpenAI-compatible stream allows: llama.cpp `timings` first, then
    `usage` counts with the client clock, then the client clock alone (chunks counted as tokens)."""
    if timings and timings.get("predicted_ms") is not None:
        return stats_from_llamacpp_timings(timings, client, stop_reason, usage)
    if usage and usage.get("completion_tokens") is not None:
        return stats_from_client(
            client, int(usage.get("prompt_tokens") or 0), int(usage["completion_tokens"]), stop_reason, "usage"
        )
    counted = "streamed chunks, the server sent no usage"
    counted += "; prompt by the server's tokenizer" if prompt_tokens_hint else "; prompt unknown"
    return stats_from_client(client, prompt_tokens_hint, client.n_chunks, stop_reason, counted)


_PERF_LINE = re.compile(
    r"llama_perf_context_print:\s+(prompt eval|eval|total) time =\s+([\d.]+) ms /\s+(\d+) (?:tokens|runs)"
)


def timings_from_perf_log(text: str) -> list[dict]:
    """llama.cpp's printed per-request perf blocks (`llama_perf_context_print`, which llama-cpp-python's
    server writes to stderr for every request) as `timings`-shaped dicts, oldest first (pure).

    Each dict has prompt_n, prompt_ms (prompt eval), predicted_n, predicted_ms (decode runs: every
    generated token but the last one sampled when cut by length) and total_ms (reset to print, so it
    also holds sampling and detokenization)."""
    blocks: list[dict] = []
    current: dict = {}
    for kind, ms, n in _PERF_LINE.findall(text):
        if kind == "prompt eval":
            current = {"prompt_ms": float(ms), "prompt_n": int(n)}
        elif kind == "eval" and current:
            current.update(predicted_ms=float(ms), predicted_n=int(n))
        elif kind == "total" and "predicted_ms" in current:
            current["total_ms"] = float(ms)
            blocks.append(current)
            current = {}
    return blocks
