"""Result records of the speed runner, with units in their names and llama-bench's column names.

A record never renders itself: `bench.export.to_frame(records)` feeds the table, the CSV and the chart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpeedResult:
    """One speed test (pp N, tg N or pp N+tg M), repeated; llama-bench's fields where they exist."""

    model: str
    """Catalog name, e.g. 'smollm2-135m'."""
    engine: str
    model_filename: str
    model_type: str
    """Architecture, size and file type, like llama-bench: 'llama 135M Q4_1'."""
    model_size: int
    """Bytes of weights on disk."""
    model_n_params: int
    backends: str
    """What computed: CPU, Metal, CUDA, remote."""
    device: str
    n_threads: int
    n_gpu_layers: int
    n_batch: int
    n_ctx: int
    test: str
    """'pp512', 'tg128' or 'pp512+tg128'."""
    n_prompt: int
    n_gen: int
    n_depth: int
    repetitions: int
    warmup_runs: int
    samples_ns: tuple[int, ...]
    """Timed duration of each repetition, nanoseconds."""
    samples_ts: tuple[float, ...]
    """Tokens per second of each repetition."""
    avg_ns: float
    stddev_ns: float
    avg_ts: float
    """Mean tokens per second over the repetitions."""
    stddev_ts: float
    """Sample standard deviation of tokens per second."""
    avg_ttft_ms: float
    """Mean time to first token, milliseconds, measured here."""
    peak_rss_bytes: int
    timing_source: str
    """Where the timed durations come from."""
    method: str
    """How it was measured, in words."""
    test_time: str
    """ISO-8601 UTC time the test finished."""
    cpu_info: str
    gpu_info: str
    versions: str
    """'library version; ...' of what ran it."""
    repack: str = ""
    """llama.cpp: '1' when weights were repacked at load, '0' when not (llama-bench's column); '' elsewhere."""
    n_ubatch: int = 0
    """llama.cpp: physical batch in tokens (llama-bench's -ub); 0 elsewhere."""
    type_k: str = ""
    """llama.cpp: K cache type, a ggml type name such as 'f16' (llama-bench's -ctk); '' elsewhere."""
    type_v: str = ""
    """llama.cpp: V cache type (llama-bench's -ctv); '' elsewhere."""
    flash_attn: int | None = None
    """llama.cpp: flash attention asked for, as llama-bench prints it: -1 auto, 0 off, 1 on; None elsewhere."""
    use_mmap: str = ""
    """llama.cpp: '1' when the file was memory-mapped (llama-bench's -mmp); '' elsewhere."""
    bench_method: str = "stream"
    """'llama-bench' (llama_decode only on synthetic ids) or 'stream' (the streaming generate path)."""
    depth_method: str = ""
    """At n_depth > 0: how the KV depth was reached and what was timed, in words."""
    notes: str = ""
    """Why an engine setting is what it is (e.g. repack off: a known upstream crash on this CPU)."""
