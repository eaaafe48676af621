"""The memory planner: what a model needs at a quantization and context length, and whether it fits.

`estimate()` turns a `ModelSpec` (planning.specs), a quantization and a context into a `MemoryEstimate`
with one figure per component; `fit()` gives verdicts, `max_context()` the largest context that fits,
and `recommend()` is the one quantization recommender (the design target's (ADR 006) table, stepped down
until the total fits), used by `doctor`, `plan` and the Memory tab alike. Pure arithmetic throughout.

Formulas (bytes; GB = 1e9, GiB = 2**30, always labelled):
- weights: the file size when the model is planned as shipped; otherwise Σ over the GGUF tensor
  table of elements × bits-per-weight / 8 (K-quant rows not a multiple of 256 priced at llama.cpp's
  fallback type, the output/tied embedding at Q6_K), or, without a tensor table, n_params × the
  published bits per weight of the type / 8.
- KV cache = 2 × n_layers × n_kv_heads × head_dim × n_ctx × bytes_per_element × n_parallel, with
  bytes_per_element f16 2, q8_0 34/32, q4_0 18/32 (ANCHORS). Llama 3 8B: 128 KiB per token.
- compute buffers (llama.cpp's scheduler reserve, flash attention off, which is what
  llama-cpp-python does by default) = 4 B × n_ubatch × max(n_vocab + 3·n_embd,
  (n_head + 1)·n_ctx + 4·n_embd): the larger of the output-logits phase and the attention phase
  (KQ scores plus the KQ mask). Matched llama.cpp's own "compute buffer size" log within 1.5 % for
  SmolLM2-135M at 512–8192 tokens and Gemma 3 270M (benchmarks/memory_validation.py).
- CPU repack copy: on a CPU-only run llama.cpp copies Q4_0 / Q4_K / IQ4_NL tensors (not the token
  embedding) into an interleaved layout; the mapped originals stay resident (RSS counts them twice)
  but are clean file pages the kernel can drop, so the copy is in RSS, not in the planning figure.
- CPU work buffer (CPU-only runs, flash attention off) = 2 B × n_ubatch × n_head × n_ctx: the CPU
  backend converts the f32 attention scores to f16 for the KQ·V product in a scratch buffer that
  grows as the context fills (not part of llama.cpp's reserve log).
- runtime overhead = 27 MiB + 127 B × n_vocab: what loading through the app's llama.cpp engine
  allocates beyond the buffers above (llama.cpp's vocabulary and context, llama-cpp-python's arrays,
  the GGUF metadata read), calibrated on the two bundled models at 2048 tokens.
`resident_bytes` (weights + repack + KV + overhead) is what RSS shows right after loading on a CPU;
`total_bytes` (weights + KV + overhead + the compute reserve, which Metal/CUDA allocate up front and a
CPU touches as long prompts run, + the CPU work buffer) is the planning figure that verdicts and the
load guard use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

from core.errors import BadParameter
from core.units import GB, GiB, MiB, fmt_bytes
from engines.base import MAX_N_CTX
from engines.memory_check import MEMORY_MULTIPLIER
from models.gguf import Tensor
from models.quant_types import BITS_PER_WEIGHT, GGML_TYPE_BPW, K_FALLBACK_BPW
from planning.specs import ModelSpec

KV_BYTES_PER_ELEMENT: dict[str, float] = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
"""Bytes per cached K or V element by cache type (llama.cpp's -ctk/-ctv; q8_0 and q4_0 are 32-blocks)."""

REPACKED_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL"})
"""Tensor types the llama.cpp CPU backend repacks into a copy (measured on x86_64 AVX2)."""

OVERHEAD_FIXED_BYTES = 27 * MiB
OVERHEAD_PER_VOCAB_BYTES = 127
DEFAULT_N_UBATCH = 512
MARGIN_MIN_BYTES = 512 * MiB
MARGIN_FRACTION = 0.05
PLANNING_QUANTS = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K")
"""The ladder shown in the max-context table."""

SHRINK_LADDER = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "Q3_K_S")
"""Steps down when weights do not fit. Never Q2_K: its ΔPPL on Llama 3 8B is 3.52 against Q4_K_M's 0.175."""


class QuantRule(NamedTuple):
    """One row of the design target's (ADR 006) table: models below `below_params_b` billion parameters get
    `quantization`."""

    below_params_b: float
    quantization: str
    adr006_class: str
    """The design record's wording: '3B', '7B', '8B/12B/30B', '70B'."""


QUANTIZATION_STRATEGY: tuple[QuantRule, ...] = (
    QuantRule(4.0, "Q8_0", "3B"),
    QuantRule(8.0, "Q5_K_M", "7B"),
    QuantRule(65.0, "Q4_K_M", "8B/12B/30B"),
    QuantRule(float("inf"), "Q4_K_S", "70B"),
)
"""The design record's default quantization by model size. Boundaries sit between nominal classes,
because a '3B' model has 3.1–3.8 B parameters, a '7B' 6.7–7.6 B and an '8B' 8.0–8.2 B."""


def quantization_for(params_b: float) -> QuantRule:
    """The design-target (ADR 006) table row for a model of `params_b` billion parameters."""
    return next(rule for rule in QUANTIZATION_STRATEGY if params_b < rule.below_params_b)


# --- the formulas --------------------------------------------------------------------------------


def kv_bytes_per_token(n_layers: int, n_kv_heads: int, head_dim: int, kv_type: str = "f16") -> float:
    """KV-cache bytes for one token of one sequence: 2 (K and V) × layers × KV heads × head dim × bytes."""
    kv = kv_type.lower()
    if kv not in KV_BYTES_PER_ELEMENT:
        raise BadParameter(f"unknown KV cache type '{kv_type}' — choose one of {', '.join(KV_BYTES_PER_ELEMENT)}")
    return 2 * n_layers * n_kv_heads * head_dim * KV_BYTES_PER_ELEMENT[kv]


def kv_cache_bytes(
    n_layers: int, n_kv_heads: int, head_dim: int, n_ctx: int, kv_type: str = "f16", n_parallel: int = 1
) -> int:
    """KV cache = 2 × n_layers × n_kv_heads × head_dim × n_ctx × bytes_per_element × n_parallel."""
    return math.ceil(kv_bytes_per_token(n_layers, n_kv_heads, head_dim, kv_type) * n_ctx * n_parallel)


def compute_buffer_bytes(
    n_vocab: int, n_embd: int, n_heads: int, n_ctx: int, n_ubatch: int = DEFAULT_N_UBATCH, flash_attn: bool = False
) -> int:
    """llama.cpp's compute-buffer reserve: 4 B × n_ubatch × max(logits phase, attention phase).

    Logits phase: n_vocab + 3·n_embd floats per batch token. Attention phase: the KQ scores
    (n_head × n_ctx) plus the KQ mask (n_ctx) plus 4·n_embd; flash attention keeps neither, only an
    f16 mask (n_ctx / 2 floats).
    """
    ub = max(1, min(n_ubatch, n_ctx))
    attention = (n_ctx / 2 if flash_attn else (n_heads + 1) * n_ctx) + 4 * n_embd
    return int(4 * ub * max(n_vocab + 3 * n_embd, attention))


def cpu_work_bytes(n_heads: int, n_ctx: int, n_ubatch: int = DEFAULT_N_UBATCH, flash_attn: bool = False) -> int:
    """The CPU backend's scratch for the f16 copy of the attention scores: 2 B × n_ubatch × n_head × n_ctx."""
    return 0 if flash_attn else 2 * max(1, min(n_ubatch, n_ctx)) * n_heads * n_ctx


def runtime_overhead_bytes(n_vocab: int) -> int:
    """Load-time allocations besides weights, KV and compute: 27 MiB + 127 B per vocabulary entry."""
    return OVERHEAD_FIXED_BYTES + OVERHEAD_PER_VOCAB_BYTES * n_vocab


def margin_bytes(total_bytes: int) -> int:
    """Safety margin kept free: 5 % of the total, at least 512 MiB."""
    return max(MARGIN_MIN_BYTES, int(MARGIN_FRACTION * total_bytes))


def normalize_quant(quant: str | None) -> str | None:
    """'q4_k_m' → 'Q4_K_M', '4bit' → 'MLX-4bit', 'fp16' → 'F16'; None/''/'as file' → None (as shipped)."""
    if quant is None or str(quant).strip().lower() in ("", "as file", "as shipped", "file", "none"):
        return None
    q = str(quant).strip().upper().replace("-", "_")
    q = {"FP16": "F16", "FP32": "F32", "FLOAT16": "F16", "BFLOAT16": "BF16"}.get(q, q)
    if q.endswith("BIT") and q[:-3].replace("MLX_", "").isdigit():
        q = f"MLX-{q[:-3].replace('MLX_', '')}bit"
    if q not in BITS_PER_WEIGHT:
        raise BadParameter(f"unknown quantization '{quant}' — choose one of: as file, {', '.join(BITS_PER_WEIGHT)}")
    return q


def _tensor_type_for(t: Tensor, quant: str, output_name: str) -> tuple[str, float]:
    """The ggml type (or nominal label) and bits per weight a tensor gets when quantized to `quant`."""
    if t.n_elements == t.row_elements:  # 1-D tensors (norms, biases) stay F32
        return "F32", 32.0
    if quant in ("F32", "F16", "BF16"):
        return quant, GGML_TYPE_BPW[quant]
    if t.name == output_name and quant not in ("Q8_0",):
        return ("Q6_K", 6.5625) if t.row_elements % 256 == 0 else ("Q8_0", 8.5)
    base = {"Q2": "Q2_K", "Q3": "Q3_K", "Q4": "Q4_K", "Q5": "Q5_K", "Q6": "Q6_K"}.get(quant[:2])
    if quant.startswith("Q") and "_K" in quant and base:
        if t.row_elements % 256:
            fallback = K_FALLBACK_BPW[base]
            return {4.5: "Q4_0", 5.5: "Q5_0", 6.0: "Q5_1", 8.5: "Q8_0"}[fallback], fallback
        return base, BITS_PER_WEIGHT[quant]
    if quant == "IQ4_XS" and t.row_elements % 256:
        return "IQ4_NL", 4.5
    return quant, BITS_PER_WEIGHT[quant]


def weights_for(spec: ModelSpec, quant: str | None) -> tuple[int, int, float, str]:
    """(weights bytes, CPU repack bytes, effective bits per weight, method) for `quant` (None = as shipped)."""
    output_name = "output.weight" if any(t.name == "output.weight" for t in spec.tensors) else "token_embd.weight"
    if quant is None:
        spec.require("file_bytes")
        repack = sum(t.n_bytes for t in spec.tensors if t.ggml_type in REPACKED_TYPES and t.name != "token_embd.weight")
        bpw = spec.file_bytes * 8 / spec.n_params if spec.n_params else 0.0
        return spec.file_bytes, repack, bpw, f"file size ({spec.file_type or 'as shipped'})"
    if spec.tensors:
        total = repack = 0.0
        for t in spec.tensors:
            ggml_type, bpw = _tensor_type_for(t, quant, output_name)
            nbytes = t.n_elements * bpw / 8
            total += nbytes
            if ggml_type in REPACKED_TYPES and t.name != "token_embd.weight":
                repack += nbytes
        extra = max(0, (spec.file_bytes or 0) - sum(t.n_bytes for t in spec.tensors))  # header + tokenizer
        n = sum(t.n_elements for t in spec.tensors)
        method = f"GGUF tensor table re-priced at {quant} (K-quant fallback for rows not a multiple of 256; derived)"
        return int(total + extra), int(repack), total * 8 / n, method
    spec.require("n_params")
    bpw = BITS_PER_WEIGHT[quant]
    repack = spec.n_params * bpw / 8 if quant in ("Q4_0", "IQ4_NL") or quant.startswith("Q4_K") else 0
    return int(spec.n_params * bpw / 8), int(repack), bpw, f"n_params × {bpw:g} bits per weight of {quant} / 8"


@dataclass(frozen=True)
class MemoryEstimate:
    """One model × quantization × context, component by component (bytes)."""

    model: str
    quantization: str
    n_ctx: int
    kv_type: str
    n_parallel: int
    weights_bytes: int
    weights_method: str
    bits_per_weight: float
    """Effective bits per weight (weights bytes × 8 / n_params; derived)."""
    kv_cache_bytes: int
    kv_bytes_per_token: float
    compute_bytes: int
    """llama.cpp's compute-buffer reserve (the figure its log prints)."""
    cpu_work_bytes: int
    """CPU-only runs: the CPU backend's attention scratch at full context (0 when offloaded)."""
    repack_bytes: int
    """CPU-only runs: repacked copies of Q4_0/Q4_K/IQ4_NL tensors (0 when offloaded)."""
    overhead_bytes: int
    notes: tuple[str, ...] = ()

    @property
    def resident_bytes(self) -> int:
        """Weights + repack + KV + overhead: what RSS shows right after loading on a CPU."""
        return self.weights_bytes + self.repack_bytes + self.kv_cache_bytes + self.overhead_bytes

    @property
    def total_bytes(self) -> int:
        """Weights + KV + overhead + compute reserve: the planning figure verdicts and the guard use."""
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes + self.compute_bytes + self.cpu_work_bytes

    def to_dict(self) -> dict:
        out = asdict(self)
        out["notes"] = list(self.notes)
        out["resident_bytes"], out["total_bytes"] = self.resident_bytes, self.total_bytes
        out["total_gib"], out["total_gb"] = round(self.total_bytes / GiB, 3), round(self.total_bytes / GB, 3)
        return out

    def rows(self) -> list[tuple[str, str, str]]:
        """(component, size with units, how it was found) for display."""
        per_token = f"{self.kv_bytes_per_token / 1024:.1f} KiB/token × {self.n_ctx} tokens × {self.n_parallel}"
        return [
            ("Model weights", fmt_bytes(self.weights_bytes), f"{self.weights_method}; {self.bits_per_weight:.2f} bpw"),
            ("CPU repack copy", fmt_bytes(self.repack_bytes), "in RSS only: the mapped originals are reclaimable"),
            ("KV cache", fmt_bytes(self.kv_cache_bytes), f"{self.kv_type}: {per_token}"),
            (
                "Compute buffers",
                fmt_bytes(self.compute_bytes),
                "llama.cpp reserve, 4 B × n_ubatch × max(logits, attention)",
            ),
            ("CPU work buffer", fmt_bytes(self.cpu_work_bytes), "CPU-only: 2 B × n_ubatch × n_head × n_ctx"),
            ("Runtime overhead", fmt_bytes(self.overhead_bytes), "27 MiB + 127 B × n_vocab (calibrated)"),
            ("Total", fmt_bytes(self.total_bytes), "weights + KV + compute + work + overhead (derived)"),
        ]


def check_context(spec: ModelSpec, n_ctx) -> int:
    """n_ctx as an int, or BadParameter for 0, negative, non-integer or above the model's maximum."""
    if isinstance(n_ctx, float) and n_ctx.is_integer():
        n_ctx = int(n_ctx)
    if not isinstance(n_ctx, int) or isinstance(n_ctx, bool):
        raise BadParameter(f"context must be a whole number of tokens, got {n_ctx!r}")
    if n_ctx <= 0:
        raise BadParameter(f"context must be a positive number of tokens, got {n_ctx}")
    if spec.context_length and n_ctx > spec.context_length:
        raise BadParameter(
            f"context {n_ctx} tokens is above {spec.name}'s maximum of {spec.context_length} tokens — "
            f"use at most {spec.context_length}"
        )
    if n_ctx > MAX_N_CTX:
        raise BadParameter(f"context {n_ctx} tokens is absurd (limit {MAX_N_CTX})")
    return n_ctx


def estimate(
    spec: ModelSpec,
    quant: str | None = None,
    n_ctx: int = 4096,
    kv_type: str = "f16",
    n_parallel: int = 1,
    n_ubatch: int = DEFAULT_N_UBATCH,
    cpu_only: bool = False,
    flash_attn: bool = False,
) -> MemoryEstimate:
    """The memory `spec` needs at `quant` (None: as shipped) and `n_ctx` tokens.

    `cpu_only`: the run is CPU-only on llama.cpp, so repacked tensors count twice.
    """
    n_ctx = check_context(spec, n_ctx)
    if not isinstance(n_parallel, int) or not 1 <= n_parallel <= 256:
        raise BadParameter(f"parallel sequences must be between 1 and 256, got {n_parallel!r}")
    q = normalize_quant(quant)
    if q is None and not spec.file_bytes and spec.file_type:  # no file (a planning entry): its planned type
        try:
            q = normalize_quant(spec.file_type)
        except BadParameter:
            q = None
    if q is None and not spec.file_bytes and not spec.tensors and spec.source == "parameter count":
        raise BadParameter(f"{spec.name} has no file to read its quantization from — pick one, e.g. Q4_K_M")
    spec.require("n_layers", "n_kv_heads", "head_dim")
    weights, repack, bpw, method = weights_for(spec, q)
    notes = []
    n_vocab, n_embd, n_heads = spec.n_vocab, spec.n_embd, spec.n_heads
    if not n_vocab:
        n_vocab = 256_000
        notes.append("n_vocab unknown: the compute buffer assumes 256,000 (an upper bound)")
    if not n_embd:
        n_embd = spec.head_dim * (n_heads or spec.n_kv_heads)
        notes.append(f"embedding length unknown: assumed head_dim × heads = {n_embd}")
    n_heads = n_heads or spec.n_kv_heads
    if spec.arch.startswith("gemma") and spec.tensors:
        notes.append(
            "sliding-window layers are counted at full context (llama-cpp-python allocates the full SWA cache)"
        )
    return MemoryEstimate(
        model=spec.name,
        quantization=q or f"{spec.file_type or 'as shipped'} (as file)",
        n_ctx=n_ctx,
        kv_type=kv_type.lower(),
        n_parallel=n_parallel,
        weights_bytes=weights,
        weights_method=method,
        bits_per_weight=bpw,
        kv_cache_bytes=kv_cache_bytes(spec.n_layers, spec.n_kv_heads, spec.head_dim, n_ctx, kv_type, n_parallel),
        kv_bytes_per_token=kv_bytes_per_token(spec.n_layers, spec.n_kv_heads, spec.head_dim, kv_type),
        compute_bytes=compute_buffer_bytes(n_vocab, n_embd, n_heads, n_ctx, n_ubatch, flash_attn),
        cpu_work_bytes=cpu_work_bytes(n_heads, n_ctx, n_ubatch, flash_attn) if cpu_only else 0,
        repack_bytes=repack if cpu_only else 0,
        overhead_bytes=runtime_overhead_bytes(n_vocab),
        notes=tuple(notes),
    )


# --- verdicts, maximum context, recommendation -----------------------------------------------------


@dataclass(frozen=True)
class Fit:
    """A need against a budget."""

    verdict: str
    """'fits' (≤ budget − margin), 'tight' (≤ budget), 'does not fit', or 'n/a'."""
    need_bytes: int
    budget_bytes: int | None
    margin_bytes: int
    where: str
    """What the budget is, e.g. 'available memory (psutil)'."""

    @property
    def detail(self) -> str:
        """The numbers behind the verdict, units labelled."""
        if self.budget_bytes is None:
            return self.where
        return (
            f"needs {fmt_bytes(self.need_bytes)} of {fmt_bytes(self.budget_bytes)} {self.where} "
            f"(keeping a {fmt_bytes(self.margin_bytes)} margin)"
        )

    @property
    def text(self) -> str:
        return f"{self.verdict} — {self.detail}"


def fit(need_bytes: int, budget_bytes: int | None, total_bytes: int | None, where: str) -> Fit:
    """'fits' when need ≤ budget − margin(total), 'tight' when ≤ budget, else 'does not fit'."""
    if budget_bytes is None:
        return Fit("n/a", need_bytes, None, 0, where)
    margin = margin_bytes(total_bytes or budget_bytes)
    verdict = "does not fit" if need_bytes > budget_bytes else "tight" if need_bytes > budget_bytes - margin else "fits"
    return Fit(verdict, need_bytes, budget_bytes, margin, where)


def fits_report(
    est: MemoryEstimate, available_bytes: int, ram_bytes: int, gpu_share_bytes: int | None, gpu_source: str = ""
) -> tuple[Fit, Fit]:
    """(verdict in available memory, verdict in the GPU-usable share)."""
    ram = fit(est.total_bytes, available_bytes, ram_bytes, "available memory now")
    where = f"GPU-usable share ({gpu_source})" if gpu_source else "GPU-usable share"
    gpu = (
        fit(est.total_bytes, gpu_share_bytes, gpu_share_bytes, where)
        if gpu_share_bytes
        else Fit("n/a", est.total_bytes, None, 0, "GPU-usable share (no GPU accelerator: CPU only)")
    )
    return ram, gpu


def max_context(
    spec: ModelSpec,
    quant: str | None,
    budget_bytes: int,
    kv_type: str = "f16",
    n_parallel: int = 1,
    cpu_only: bool = False,
) -> int:
    """Largest context (tokens, a multiple of 256 or the model's maximum) whose total fits `budget_bytes`; 0 if none."""
    top = min(spec.context_length or MAX_N_CTX, MAX_N_CTX)

    def ok(n: int) -> bool:
        return estimate(spec, quant, n, kv_type, n_parallel, cpu_only=cpu_only).total_bytes <= budget_bytes

    if ok(top):
        return top
    lo, hi = 0, top // 256  # in units of 256 tokens
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid * 256):
            lo = mid
        else:
            hi = mid - 1
    return lo * 256


@dataclass(frozen=True)
class ContextRow:
    quantization: str
    weights_bytes: int
    bits_per_weight: float
    max_ctx: int
    """Tokens; 0 when even the weights do not fit."""


def context_table(
    spec: ModelSpec,
    budget_bytes: int,
    kv_type: str = "f16",
    n_parallel: int = 1,
    cpu_only: bool = False,
    quants: tuple[str, ...] = PLANNING_QUANTS,
) -> list[ContextRow]:
    """Maximum viable context per quantization within `budget_bytes` (the file as shipped first)."""
    choices: list[str | None] = ([None] if spec.file_bytes else []) + list(quants)
    if spec.source in ("MLX folder",):
        choices = [None]
    rows = []
    for q in choices:
        est = estimate(
            spec,
            q,
            256 if not spec.context_length else min(256, spec.context_length),
            kv_type,
            n_parallel,
            cpu_only=cpu_only,
        )
        rows.append(
            ContextRow(
                est.quantization,
                est.weights_bytes,
                est.bits_per_weight,
                max_context(spec, q, budget_bytes, kv_type, n_parallel, cpu_only),
            )
        )
    return rows


@dataclass(frozen=True)
class Recommendation:
    quantization: str | None
    """None when nothing on the ladder fits."""
    adr006_choice: str
    reasons: tuple[str, ...]


def recommend(
    spec: ModelSpec,
    n_ctx: int,
    budget_bytes: int,
    budget_label: str,
    kv_type: str = "f16",
    n_parallel: int = 1,
    cpu_only: bool = False,
) -> Recommendation:
    """The design target's (ADR 006) QUANTIZATION_STRATEGY choice, stepped down SHRINK_LADDER until the need
    fits the budget.

    The one quantization recommender: `plan`, the Memory tab and `doctor` all ask it. The need is the full
    estimate (weights, KV cache, buffers) when the spec has the model's shape; for a model known only by
    its parameter count it is the design record's rule, weights × MEMORY_MULTIPLIER.
    """
    spec.require("n_params")
    params_b = spec.n_params / 1e9
    rule = quantization_for(params_b)
    table = ", ".join(f"< {r.below_params_b:g} B → {r.quantization}" for r in QUANTIZATION_STRATEGY[:-1])
    reasons = [
        f"The design target (ADR 006) table ({table}, else {QUANTIZATION_STRATEGY[-1].quantization}): "
        f"{params_b:.3g} B parameters is "
        f"the {rule.adr006_class} class → {rule.quantization}."
    ]
    shaped = bool(spec.n_layers and spec.n_kv_heads and spec.head_dim)
    at = f"at {n_ctx} tokens" if shaped else f"(weights × {MEMORY_MULTIPLIER})"

    def need(q: str) -> tuple[int, float]:
        if shaped:
            est = estimate(spec, q, n_ctx, kv_type, n_parallel, cpu_only=cpu_only)
            return est.total_bytes, est.bits_per_weight
        weights, _, bpw, _ = weights_for(spec, q)
        return int(weights * MEMORY_MULTIPLIER), bpw

    start = SHRINK_LADDER.index(rule.quantization)
    for i, q in enumerate(SHRINK_LADDER[start:], start):
        total, bpw = need(q)
        if total <= budget_bytes:
            reasons.append(f"{q} needs {fmt_bytes(total)} {at}, within {budget_label} ({fmt_bytes(budget_bytes)}).")
            if i == start and i > 0:
                up, _ = need(SHRINK_LADDER[i - 1])
                if up <= budget_bytes:
                    reasons.append(
                        f"There is room for {SHRINK_LADDER[i - 1]} too ({fmt_bytes(up)}) if "
                        "quality matters more than speed; the design target (ADR 006) keeps the smaller one."
                    )
            if spec.tensors and any(t.row_elements % 256 for t in spec.tensors if t.n_elements != t.row_elements):
                reasons.append(
                    "This model's rows are not multiples of 256, so K-quants fall back to legacy types "
                    f"and the file is larger than the name suggests ({bpw:.2f} bpw)."
                )
            return Recommendation(q, rule.quantization, tuple(reasons))
        nxt = SHRINK_LADDER[i + 1] if i + 1 < len(SHRINK_LADDER) else None
        step = f": one step down to {nxt}." if nxt else "."
        reasons.append(f"{q} needs {fmt_bytes(total)} {at}, more than {budget_label} ({fmt_bytes(budget_bytes)}){step}")
    last = SHRINK_LADDER[-1]
    ctx = max_context(spec, last, budget_bytes, kv_type, n_parallel, cpu_only) if shaped else 0
    if ctx:
        reasons.append(
            f"Nothing on the ladder fits: lower the context (at {last} at most {ctx} tokens fit) "
            "or choose a smaller model."
        )
    elif shaped:
        reasons.append("Nothing fits even at the smallest context: choose a smaller model or free memory.")
    return Recommendation(None, rule.quantization, tuple(reasons))


def params_spec(name: str, params_b: float) -> ModelSpec:
    """A spec for a model known only by its size in billions of parameters (doctor --params-b)."""
    if not params_b > 0 or params_b > 10_000:
        raise BadParameter(f"model size must be between 0 and 10000 billion parameters, got {params_b}")
    return ModelSpec(name=name, source="parameter count", n_params=round(params_b * 1e9))
