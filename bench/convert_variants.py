"""Quantization-lab rows for the MLX and PyTorch engines: MLX bf16 / 8-bit / 4-bit and torch bf16 / fp32
of the same GGUF model, beside the llama.cpp ladder.

`variants_for(model)` is a bench.quant_lab variant provider: it lists rows by name only (cheap, never
converts); the engines convert on first load (models.convert, cached). Every row runs through
Engine.logits on the evaluation token ids the lab tokenized with the reference GGUF's tokenizer — the
converted copies keep the GGUF's vocabulary, so the ids mean the same tokens. The lineage is in each
row's note: the HF copy is dequantized from the GGUF, and the MLX copies are made from it.
`register()` appends the provider to bench.quant_lab.EXTRA_VARIANTS once.
"""

from __future__ import annotations

import importlib.util

from models import converted  # registers the catalog provider of converted models (a light import)

ROWS: tuple[tuple[str, str, str, str | None], ...] = (
    # (label, engine, conversion variant, torch dtype)
    ("MLX bf16", "mlx", "mlx-bf16", None),
    ("MLX 8-bit", "mlx", "mlx-8bit", None),
    ("MLX 4-bit", "mlx", "mlx-4bit", None),
    ("torch bf16", "torch", "hf-bf16", "bf16"),
    ("torch fp32", "torch", "hf-bf16", "fp32"),
)
"""The rows offered for every GGUF source model."""

ENGINE_MODULES = {"mlx": ("mlx", "mlx_lm"), "torch": ("torch", "transformers")}


def _installed(engine: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ENGINE_MODULES[engine])


def variants_for(model: str) -> list:
    """MLX and torch rows for a GGUF model name (no conversion happens here)."""
    from bench.quant_lab import Variant
    from core.errors import LocalbenchError
    from models.catalog import resolve_model

    try:
        ref = resolve_model(model)
    except LocalbenchError:
        return []
    if ref.format != "gguf":
        return []
    rows = []
    for label, engine, key, dtype in ROWS:
        if not _installed(engine):
            continue
        variant = converted.VARIANTS[key]
        if engine == "mlx":
            bits = f"{variant.q_bits}-bit affine, group size {converted.Q_GROUP_SIZE}" if variant.q_bits else "bf16"
            note = f"MLX {bits}, made by mlx_lm.convert from the bf16 HF copy dequantized from {model}'s GGUF"
        else:
            note = f"transformers in {dtype}, from the bf16 HF copy dequantized from {model}'s GGUF"
        rows.append(
            Variant(
                label=label,
                engine=engine,
                model=converted.variant_name(model, key),
                dtype=dtype,
                nominal_type=f"{variant.q_bits}bit" if variant.q_bits else (dtype or "bf16"),
                note=note,
            )
        )
    return rows


def register() -> None:
    """Add variants_for to the quantization lab's providers once."""
    from bench import quant_lab

    if variants_for not in quant_lab.EXTRA_VARIANTS:
        quant_lab.EXTRA_VARIANTS.append(variants_for)
