"""Quantization types and their bits per weight: the one table the planner, the lab and the catalog use.

`BITS_PER_WEIGHT` sizes a model at a type before a file of that type exists (llama.cpp's published
figures for Llama-3.1-8B where they exist, ANCHORS.md); `GGML_TYPE_BPW` is the exact size of one ggml
tensor type; `precision_rank()` orders file types from most to least precise.
"""

from __future__ import annotations

BITS_PER_WEIGHT: dict[str, float] = {
    # llama.cpp's published bits per weight for Llama-3.1-8B (tools/quantize/README.md, ANCHORS.md)
    **{"F16": 16.0005, "Q8_0": 8.5008, "Q6_K": 6.5633, "Q5_K_M": 5.7036, "Q4_K_M": 4.8944, "Q4_K_S": 4.6672},
    **{"IQ4_XS": 4.4597, "Q3_K_S": 3.6429, "Q2_K": 3.1593},
    **{"Q5_K_S": 5.5704, "IQ4_NL": 4.6818, "Q3_K_L": 4.2979, "Q2_K_S": 2.9697},
    # the same README's Llama 2 7B table (its Llama-3.1-8B table has no Q3_K_M or IQ2_XXS row)
    "Q3_K_M": 3.91,
    "IQ2_XXS": 2.06,
    # legacy types and float: block sizes
    **{"Q4_0": 4.5, "Q4_1": 5.0, "Q5_0": 5.5, "Q5_1": 6.0, "BF16": 16.0, "F32": 32.0},
    # MLX affine quantization: bits + an fp16 scale and bias per group of 64
    **{"MLX-3bit": 3.5, "MLX-4bit": 4.5, "MLX-6bit": 6.5, "MLX-8bit": 8.5},
}
"""Nominal bits per weight of each quantization, used when no file of that type exists."""

LLAMA_FILE_TYPES: tuple[str, ...] = (
    *("F32", "BF16", "F16", "Q8_0", "Q6_K", "Q5_1", "Q5_K_M", "Q5_K_S", "Q5_0", "Q4_1", "Q4_K_M", "Q4_K_S"),
    *("Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ2_XXS"),
)
"""llama.cpp file types the quantization lab builds, most precise first."""

NOMINAL_BPW: dict[str, float] = {t: BITS_PER_WEIGHT[t] for t in LLAMA_FILE_TYPES}
"""Bits per weight of each ladder type: ranks precision and sizes the disk check."""

FLOAT_TYPES = ("F32", "BF16", "F16")

GGML_TYPE_BPW: dict[str, float] = {
    **{"F32": 32, "F16": 16, "BF16": 16, "Q8_0": 8.5, "Q4_0": 4.5, "Q4_1": 5, "Q5_0": 5.5, "Q5_1": 6},
    **{"Q2_K": 2.625, "Q3_K": 3.4375, "Q4_K": 4.5, "Q5_K": 5.5, "Q6_K": 6.5625, "IQ4_NL": 4.5, "IQ4_XS": 4.25},
}
"""Exact bits per weight of one ggml tensor type (block bytes × 8 / block elements)."""

K_FALLBACK_BPW = {"Q2_K": 4.5, "Q3_K": 4.5, "Q4_K": 5.5, "Q5_K": 6.0, "Q6_K": 8.5, "IQ4_XS": 4.5}
"""llama.cpp's fallback when a row is not a multiple of 256: Q2/Q3_K → IQ4_NL/Q4_0, Q4_K → Q5_0,
Q5_K → Q5_1, Q6_K → Q8_0 (llama-quant.cpp)."""


def precision_rank(file_type: str) -> float:
    """Nominal bits per weight of a file type (float types by their bits: F16 and BF16 rank equal);
    unknown types rank by their first digit."""
    if file_type in FLOAT_TYPES:
        return GGML_TYPE_BPW[file_type]
    if file_type in BITS_PER_WEIGHT:
        return BITS_PER_WEIGHT[file_type]
    digits = [c for c in file_type if c.isdigit()]
    return float(digits[0]) if digits else 0.0
