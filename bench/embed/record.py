"""One embeddings measurement as a record: the EmbedResult row, the timed pass it is built from, and the metric
math (cosine agreement with the fp32 reference, rates over summed batch times). `make_result` is the one place a
row is built, so a row can be rebuilt from recorded timings and vectors (how the Core ML rows, measured on macOS
only, are checked elsewhere)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.stats import summarize
from core.errors import BadParameter

WARMUP_WORDS = {
    "none": "none",
    "batch": "the first batch, untimed",
    "pass": "one untimed pass over the corpus (every padded shape seen once)",
}


@dataclass(frozen=True)
class EmbedResult:
    """One configuration at one batch size over the whole corpus."""

    model: str
    model_path: str
    backend: str
    """torch | onnx | ollama | coreml."""
    device: str
    """cpu | cuda | mps | server (Ollama); for Core ML its compute units."""
    precision: str
    batch_size: int
    n_texts: int
    n_batches: int
    n_tokens: int
    """Non-padding tokens after truncation, special tokens included (Ollama: its prompt_eval_count)."""
    truncated_texts: int | None
    """Texts longer than max_seq_length, cut to it; None when the backend cannot tell (Ollama)."""
    max_seq_length: int
    embedding_dim: int
    warmup: str
    """'none', 'batch' (the first batch, untimed) or 'pass' (one untimed pass: every padded shape seen once)."""
    sorted_by_length: bool
    load_s: float
    """Seconds to load the model for this configuration."""
    total_s: float
    """Sum of the timed batch latencies, seconds."""
    sentences_per_s: float
    """n_texts / total_s (derived)."""
    tokens_per_s: float
    """n_tokens / total_s (derived)."""
    avg_batch_ms: float
    stddev_batch_ms: float
    p50_batch_ms: float
    p95_batch_ms: float
    peak_device_bytes: int | None
    device_memory_source: str
    peak_rss_bytes: int
    """Peak resident set size of this process during the timed batches."""
    peak_rss_source: str
    """How the peak RSS was read (see PeakRss)."""
    cosine_mean_vs_ref: float
    """Mean cosine similarity of each text's vector with the fp32 CPU reference's (NaN without one)."""
    cosine_min_vs_ref: float
    reference: str
    model_n_params: int
    model_size: int
    """Bytes of weights on disk."""
    corpus: str
    """'builtin-2000:<sha256 prefix>' or '<file name>:<sha256 prefix>'."""
    samples_batch_ms: tuple[float, ...]
    """Latency of every timed batch, milliseconds."""
    method: str
    test_time: str
    cpu_info: str
    gpu_info: str
    versions: str
    compute_units: str = ""
    """Core ML only: cpu_only | cpu_and_gpu | cpu_and_ne | all ('' for the other backends)."""


@dataclass
class TimedPass:
    """What one timed pass over the corpus produced."""

    vectors: np.ndarray
    latencies_s: list[float]
    n_tokens: int
    truncated: int | None
    peak_rss_bytes: int
    peak_rss_source: str


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, dim) arrays; a zero row gives 0 (1 when both are zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise BadParameter(f"cannot compare embeddings of shapes {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), dots / (na * nb), np.where((na == 0) & (nb == 0), 1.0, 0.0))
    return np.clip(cos, -1.0, 1.0)


def agreement(vectors: np.ndarray, reference: np.ndarray | None) -> tuple[float, float]:
    """(mean, min) cosine of each row with the reference's; (nan, nan) without a reference."""
    if reference is None:
        return math.nan, math.nan
    cos = cosine_rows(vectors, reference)
    return float(cos.mean()), float(cos.min())


def throughput(n_items: int, latencies_s: Sequence[float]) -> float:
    """Items per second over the summed latencies; 0 when nothing was timed."""
    total = float(sum(latencies_s))
    return n_items / total if total > 0 else 0.0


def make_result(
    info,
    run: TimedPass,
    *,
    batch_size: int,
    n_texts: int,
    warmup: str,
    sort_by_length: bool,
    reference_vectors: np.ndarray | None,
    reference,
    device_memory: tuple[int | None, str],
    corpus: str,
    hardware: tuple[str, str],
) -> EmbedResult:
    """The row for one configuration (`info`: the loaded model's EmbedModelInfo) at one batch size."""
    cos_mean, cos_min = agreement(run.vectors, reference_vectors)
    ms = [x * 1e3 for x in run.latencies_s]
    s = summarize(ms)
    return EmbedResult(
        model=info.name,
        model_path=info.path or "",
        backend=info.backend,
        device=info.device,
        precision=info.precision,
        batch_size=batch_size,
        n_texts=n_texts,
        n_batches=len(ms),
        n_tokens=run.n_tokens,
        truncated_texts=run.truncated,
        max_seq_length=info.max_seq_length,
        embedding_dim=int(run.vectors.shape[1]),
        warmup=warmup,
        sorted_by_length=sort_by_length,
        load_s=info.load_s,
        total_s=sum(run.latencies_s),
        sentences_per_s=throughput(n_texts, run.latencies_s),
        tokens_per_s=throughput(run.n_tokens, run.latencies_s),
        avg_batch_ms=s.mean,
        stddev_batch_ms=s.stddev,
        p50_batch_ms=s.p50,
        p95_batch_ms=s.p95,
        peak_device_bytes=device_memory[0],
        device_memory_source=device_memory[1],
        peak_rss_bytes=run.peak_rss_bytes,
        peak_rss_source=run.peak_rss_source,
        cosine_mean_vs_ref=cos_mean,
        cosine_min_vs_ref=cos_min,
        reference="torch cpu fp32" if reference else "none (Ollama model: no local fp32 copy)",
        model_n_params=info.n_params,
        model_size=info.model_size_bytes,
        corpus=corpus,
        samples_batch_ms=tuple(round(x, 4) for x in ms),
        method=f"warm-up: {WARMUP_WORDS[warmup]}; then every batch of the corpus timed once "
        f"({'longest first' if sort_by_length else 'corpus order'}); rates are totals over summed "
        "batch times (derived)",
        test_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        cpu_info=hardware[0],
        gpu_info=hardware[1],
        versions="; ".join(f"{k} {v}" for k, v in info.versions),
        compute_units=getattr(info, "compute_units", ""),
    )
