"""The quantization lab's records: one QuantRow per variant (what is stored, kind 'quant') and the QuantReport
around them. bench.quant.lab fills them; bench.quant.summary and the Quantization tab read them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantRow:
    """One variant's measured figures: file, quality against the reference, speed, answer."""

    model: str
    """The source model, e.g. 'smollm2-135m'."""
    variant: str
    engine: str
    model_name: str
    """What the engine loaded, e.g. 'smollm2-135m@Q4_K_M'."""
    nominal_type: str
    model_size: int
    """Bytes on disk."""
    n_params: int
    bpw: float
    """Effective bits per weight: model_size * 8 / n_params (derived)."""
    tensor_types: str
    """Real tensor-type mix by bytes."""
    main_type: str
    k_fallback: bool
    """A K-quant was asked for but most weight bytes are legacy types (rows not a multiple of 256)."""
    is_reference: bool
    reference: str
    """Which variant quality is measured against, and what it is."""
    ppl: float
    ppl_ref: float
    ppl_ratio: float
    delta_ppl: float
    delta_ppl_pct: float
    kld_mean: float
    """Mean KL(reference || variant), nats."""
    kld_median: float
    kld_p99: float
    kld_max: float
    same_top1_pct: float
    mean_dp_pct: float
    rms_dp_pct: float
    n_chunks: int
    n_eval_tokens: int
    """Tokens evaluated (n_chunks * 512)."""
    n_scored: int
    """Positions scored."""
    pp_test: str
    pp_avg_ts: float
    """Prompt processing, tokens per second, mean over repetitions."""
    pp_stddev_ts: float
    tg_test: str
    tg_avg_ts: float
    """Generation, tokens per second, mean over repetitions."""
    tg_stddev_ts: float
    ttft_ms: float
    """Mean time to first token of the pp runs (a prompt of pp_test tokens), ms."""
    peak_rss_bytes: int
    """Peak resident memory of this process while the variant ran."""
    repetitions: int
    answer: str
    answer_mode: str
    """'chat' (the model's template) or 'plain completion' (no chat template)."""
    answer_tokens: int
    adr006_target: str
    """The design target (ADR 006): 'pass' / 'fail' on the Q4_K_M row (ΔPPL % < 5), '' elsewhere."""
    note: str
    quality_method: str
    speed_method: str
    test_time: str
    reference_origin: str = ""
    """The reference in one line: 'original: BF16 safetensors (folder …) → F16 GGUF', 'dequantized: F16 from
    the Q4_1 GGUF' or 'source: the F16 GGUF itself' (absent in runs stored before it existed)."""


@dataclass(frozen=True)
class QuantReport:
    """A whole comparison: rows plus what a reader needs to interpret them."""

    model: str
    rows: tuple[QuantRow, ...]
    reference_note: str
    answer_mode: str
    criterion: str
    """The design target's (ADR 006) verdict in words (or why it was not evaluated)."""
    eval_source: str
    timings_s: dict
    """Wall seconds per stage: build, reference, quality, speed, answers, total."""
    seed: int = 0
    run_id: str = ""
    """The stored run's id, set by compare_and_store."""
    reference_origin: str = ""
    """The reference in one line (QuantRow.reference_origin)."""
