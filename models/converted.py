"""Converted models on disk: their names ('smollm2-135m@mlx-4bit'), variants and the cache listing.

A converted model is a folder named `<model>@<variant>` under LOCALBENCH_HOME/cache/converted with a
`localbench-conversion.json` manifest written last (models.convert writes them). `converted_models()`
is a catalog provider: it reads folder listings and small JSON files only and never converts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadParameter
from core.paths import cache_dir
from models.ref import ModelRef

MANIFEST = "localbench-conversion.json"
"""Written last inside a finished conversion; folders without it are not models."""
Q_GROUP_SIZE = 64


@dataclass(frozen=True)
class Variant:
    """One conversion target."""

    key: str
    """'hf-bf16', 'mlx-bf16', 'mlx-8bit', 'mlx-4bit'."""
    format: str
    """ModelRef format of the result: 'hf' or 'mlx'."""
    engine: str
    """The engine that runs it: 'torch' or 'mlx'."""
    q_bits: int | None
    """MLX quantization bits; None for bf16."""
    label: str


VARIANTS: dict[str, Variant] = {
    "hf-bf16": Variant("hf-bf16", "hf", "torch", None, "Hugging Face safetensors, bf16 (dequantized from GGUF)"),
    "mlx-bf16": Variant("mlx-bf16", "mlx", "mlx", None, "MLX, bf16"),
    "mlx-8bit": Variant("mlx-8bit", "mlx", "mlx", 8, f"MLX, 8-bit affine, group size {Q_GROUP_SIZE}"),
    "mlx-4bit": Variant("mlx-4bit", "mlx", "mlx", 4, f"MLX, 4-bit affine, group size {Q_GROUP_SIZE}"),
}

TARGETS = {
    "hf": "hf-bf16",
    "hf-bf16": "hf-bf16",
    "mlx-bf16": "mlx-bf16",
    "mlx-8bit": "mlx-8bit",
    "mlx-4bit": "mlx-4bit",
}
"""What `python app.py convert --to` accepts."""


def root() -> Path:
    """LOCALBENCH_HOME/cache/converted."""
    return cache_dir("converted")


def variant_name(base: str, variant: str) -> str:
    return f"{base}@{variant}"


def split_name(name: str) -> tuple[str, str] | None:
    """'smollm2-135m@mlx-4bit' → ('smollm2-135m', 'mlx-4bit'); None when the suffix is not ours."""
    base, sep, variant = (name or "").strip().rpartition("@")
    if sep and base and variant in VARIANTS and os.sep not in base:  # a path is not a name
        return base, variant
    return None


def variant_dir(base: str, variant: str) -> Path:
    safe = base.replace(os.sep, "_")
    return root() / variant_name(safe, variant)


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def ref_from_manifest(folder: Path, manifest: dict) -> ModelRef:
    return ModelRef(
        name=folder.name,
        path=str(folder),
        format=manifest.get("format", "hf"),
        chat=bool(manifest.get("chat", True)),
        source=f"converted by localbench from {manifest.get('source_name', '?')}",
        note=manifest.get("note", ""),
    )


def converted_models() -> list[ModelRef]:
    """Catalog provider: every finished conversion (folder listings and small JSON reads only)."""
    refs = []
    for folder in sorted(root().iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        manifest = read_manifest(folder)
        if manifest is not None and split_name(folder.name):
            refs.append(ref_from_manifest(folder, manifest))
    return refs


def converted_ref(name: str) -> ModelRef | None:
    """The finished conversion called `name`, or None."""
    split = split_name(name)
    if split is None:
        return None
    folder = variant_dir(*split)
    manifest = read_manifest(folder)
    return ref_from_manifest(folder, manifest) if manifest is not None else None


def check_variant_suffix(name: str) -> None:
    """Refuse names that look like ours but name an unknown variant (a typo such as '@mlx-3bit')."""
    _, sep, suffix = name.rpartition("@")
    if sep and suffix.lower().startswith(("mlx", "hf")) and suffix not in VARIANTS:
        raise BadParameter(f"unknown variant '{suffix}' — choose one of: {', '.join(VARIANTS)}")
