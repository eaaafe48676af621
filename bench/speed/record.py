"""Result records of the speed runner, with units in their names and llama-bench's column names.

A record never renders itself: `bench.results.export.to_frame(records)` feeds the table, the CSV and the chart.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.results.labels import from_row


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
    """Peak RSS of the model's worker process (its own memory, not the dashboard's)."""
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
    file_type: str = ""
    """The weights' quantization or dtype as our reader names it (Q4_1, Q4_K_M, F16, 4bit): model_type's last
    word is not one on llama.cpp, whose `llama_model_desc` says 'Q4_K - Medium'."""
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
    load_s: float = 0.0
    """Worker start-up plus model load, seconds."""
    worker_peak_private_bytes: int | None = None
    """Peak private memory of the model's worker (USS on Linux, physical footprint on macOS); None = unknown."""
    memory_source: str = ""
    """How the worker's memory was read."""
    contended: bool = False
    """True when another request of this app ran during the test: its figures are shared, not the engine's own."""
    contention: str = ""
    """Why the row is contended, in words ('' when it is not)."""
    cv_pct: float | None = None
    """Coefficient of variation of samples_ts, % (derived: stddev_ts / avg_ts × 100)."""
    noisy: bool = False
    """cv_pct above bench.speed.hygiene.NOISY_CV_PCT: the mean alone misleads."""
    load_avg_1m: float | None = None
    """1-minute load average when the test ended (None where the OS has none)."""
    n_cpus: int = 0
    """Logical CPUs this process may use."""
    os_info: str = ""
    """Operating system and kernel, e.g. 'Linux-6.8.0-x86_64-with-glibc2.39'."""
    cpu_flags: str = ""
    """The CPU's feature flags (sorted); the chip's brand string on macOS."""
    power_source: str = ""
    """'AC' or 'battery 80 %' (+ ', Low Power Mode on|off' on Macs), or 'not available here: <why>'."""
    thermal_state: str = ""
    """When the test ended, from `pmset -g therm` on macOS (e.g. 'throttled: CPU speed limit 35 %'), or
    'not available here: <why>' (machine.thermal)."""
    bandwidth_gbs: float | None = None
    """Derived input: main-memory bandwidth in GB/s used for the roofline (tg rows)."""
    bandwidth_source: str = ""
    """Apple's published figure or the measured probe (see machine.detect)."""
    bytes_per_token: int | None = None
    """Derived: bytes read per generated token = weight bytes + KV cache at the test's mean depth."""
    roofline_tps: float | None = None
    """Derived: bandwidth_gbs × 1e9 / bytes_per_token, the memory-bound ceiling in tokens per second."""
    roofline_pct: float | None = None
    """Derived: avg_ts / roofline_tps × 100."""
    llc_bytes: int | None = None
    """The CPU's last-level cache, bytes."""
    fits_in_llc: bool | None = None
    """True when bytes_per_token fits in the last-level cache: the DRAM roofline does not bind."""
    roofline_note: str = ""
    """What the roofline figures mean for this row, or why there are none."""
    arm: str = ""
    """In an interleaved A/B comparison (bench.speed.interleave): this row's arm, 'A', 'B', ...; '' otherwise."""
    run_order: str = ""
    """In an interleaved A/B comparison: the order the repetitions ran in, e.g. 'A1 B1 A2 B2 A3 B3'."""

    @classmethod
    def from_row(cls, row: dict) -> SpeedResult:
        """A stored speed row back as the record it was (bench.results.labels.from_row)."""
        return from_row(cls, row)
