"""The quantization lab's rows: `Variant`, the llama.cpp ladder's rows, and the MLX bf16 / 8-bit / 4-bit and
torch bf16 / fp32 rows of the same model (a GGUF, or an HF safetensors original).

`extra_variants(model)` lists the MLX and torch rows by name only (cheap, never converts); the engines
convert on first load (models.convert, cached). Every row runs through Engine.logits on the evaluation
token ids the lab tokenized with the reference GGUF's tokenizer — the converted copies keep the GGUF's
vocabulary, so the ids mean the same tokens. The lineage is in each row's note: the HF copy is
dequantized from the GGUF, and the MLX copies are made from it. For an original (models.original), the MLX
copies are made by mlx_lm.convert from the original folder itself (the lab converts them before loading:
`Variant.conversion`), and the torch rows load that folder as it is.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from bench.quant import ladder as ladder_mod
from core.errors import LocalbenchError
from models import converted, original
from models.catalog import resolve_model


@dataclass(frozen=True)
class Variant:
    """One row of the comparison: which engine runs which model, and what is known about its file."""

    label: str
    """Shown to users and used in the checklist, e.g. 'Q4_K_M' or 'MLX 4-bit'."""
    engine: str
    """Registry name: 'llamacpp', 'mlx', 'torch', ..."""
    model: str
    """Catalog name or path the engine resolves."""
    options: tuple[tuple[str, object], ...] = ()
    """LoadConfig options for the engine."""
    dtype: str | None = None
    device: str | None = None
    nominal_type: str = ""
    model_size: int = 0
    """Bytes on disk; 0 means 'ask the engine after loading'."""
    n_params: int = 0
    bpw: float | None = None
    """Effective bits per weight (file bits / params), derived."""
    tensor_types: str = ""
    main_type: str = ""
    k_fallback: bool = False
    is_reference: bool = False
    note: str = ""
    conversion: str = ""
    """For an original: the models.converted variant ('mlx-4bit', ...) to make from it before loading; '' for none."""


def ladder_variant(f: ladder_mod.LadderFile) -> Variant:
    """The row of one ladder file (llama.cpp)."""
    return Variant(
        label=f.variant,
        engine="llamacpp",
        model=f.model,
        nominal_type=f.file_type,
        model_size=f.model_size,
        n_params=f.n_params,
        bpw=f.bpw,
        tensor_types=f.tensor_types,
        main_type=f.main_type,
        k_fallback=f.k_fallback,
        is_reference=f.is_reference,
        note=f.note,
    )


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


def extra_variants(model: str) -> list[Variant]:
    """MLX and torch rows for a GGUF model or an original folder (no conversion happens here; [] for others)."""
    try:
        ref = resolve_model(model)
    except LocalbenchError:
        return []
    if ref.format == "hf" and ref.path and original.is_original(ref.path):
        return _original_variants(ref.path)
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


def _original_variants(folder: str) -> list[Variant]:
    """The rows of an original: MLX copies mlx_lm.convert makes from it, and torch running the folder itself."""
    source = original.read_original(folder)
    rows = []
    for label, engine, key, dtype in ROWS:
        if not _installed(engine):
            continue
        if engine == "mlx":
            variant = converted.VARIANTS[key]
            bits = f"{variant.q_bits}-bit affine, group size {converted.Q_GROUP_SIZE}" if variant.q_bits else "bf16"
            rows.append(
                Variant(
                    label=label,
                    engine=engine,
                    model=original.mlx_name(folder, key),
                    nominal_type=f"{variant.q_bits}bit" if variant.q_bits else "bf16",
                    note=f"MLX {bits}, made by mlx_lm.convert from the {source.label.removesuffix(' → F16 GGUF')}",
                    conversion=key,
                )
            )
        else:
            rows.append(
                Variant(
                    label=label,
                    engine=engine,
                    model=source.folder,
                    dtype=dtype,
                    nominal_type=dtype or "bf16",
                    note=f"transformers in {dtype}, running the {source.dtype} original folder {source.folder}",
                )
            )
    return rows
