"""The decode roofline: how close a generation figure comes to what memory bandwidth allows. All derived.

Generating one token reads every weight once plus the KV cache written so far, so a memory-bound decode
runs at most bandwidth ÷ bytes per token (ANCHORS: "Decode roofline ≈ bandwidth ÷ bytes read per token").
Weight bytes are the file's weight bytes (the embedding table counted whole: tied output heads read it
all); the KV term uses the mean depth over the test's generated tokens. When those bytes fit in the CPU's
last-level cache, weights come from cache, not DRAM, and the DRAM roofline does not bind: the row says so.
Pure arithmetic; the runner passes in the bandwidth and cache size read by machine.detect.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Roofline:
    """The derived roofline fields of one decode row (names as in bench.speed.record.SpeedResult)."""

    bandwidth_gbs: float | None
    bandwidth_source: str
    bytes_per_token: int | None
    roofline_tps: float | None
    roofline_pct: float | None
    llc_bytes: int | None
    fits_in_llc: bool | None
    roofline_note: str


def mean_context(n_depth: int, n_prompt: int, n_gen: int) -> float:
    """Mean tokens in the KV cache while the n_gen tokens are generated after depth + prompt."""
    return n_depth + n_prompt + max(n_gen - 1, 0) / 2


def bytes_per_token(weight_bytes: int, kv_bytes_per_token: float, context_tokens: float) -> int:
    """Bytes read to generate one token: all weights plus the KV cache of `context_tokens` tokens."""
    return round(weight_bytes + kv_bytes_per_token * context_tokens)


def decode_roofline(
    *,
    avg_ts: float,
    weight_bytes: int,
    kv_bytes_per_token: float | None,
    context_tokens: float,
    bandwidth_gbs: float | None,
    bandwidth_source: str,
    llc_bytes: int | None,
) -> Roofline:
    """Roofline of a measured decode speed `avg_ts` (tokens/s); None figures with the reason when an input
    is missing."""
    if not weight_bytes:
        return Roofline(
            bandwidth_gbs,
            bandwidth_source,
            None,
            None,
            None,
            llc_bytes,
            None,
            "derived: no roofline — the model's weight bytes are unknown",
        )
    kv_known = kv_bytes_per_token is not None
    per_token = bytes_per_token(weight_bytes, kv_bytes_per_token or 0.0, context_tokens)
    fits = per_token <= llc_bytes if llc_bytes else None
    kv_words = f"+ KV at mean depth {context_tokens:.0f}" if kv_known else "(KV unknown: weights only)"
    if not bandwidth_gbs:
        note = f"derived: bytes/token = weights {kv_words}; no roofline — bandwidth {bandwidth_source or 'unknown'}"
        return Roofline(None, bandwidth_source, per_token, None, None, llc_bytes, fits, note)
    ceiling = bandwidth_gbs * 1e9 / per_token
    pct = avg_ts / ceiling * 100 if avg_ts == avg_ts else None
    note = f"derived: roofline = {bandwidth_gbs:.4g} GB/s ({bandwidth_source}) ÷ bytes/token (weights {kv_words})"
    if fits:
        note += (
            f"; the {per_token / 2**20:.0f} MiB read per token fits in the {llc_bytes / 2**20:.0f} MiB last-level "
            "cache, so the DRAM roofline does not bind (above 100 % is possible)"
        )
    return Roofline(bandwidth_gbs, bandwidth_source, per_token, ceiling, pct, llc_bytes, fits, note)
