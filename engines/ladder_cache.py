"""Listing of quantization-ladder files in the cache, for the model catalog.

The quantization lab (bench/ladder.py) builds ladders under LOCALBENCH_HOME/cache/ladder/<model>/ with a
manifest.json; this module only reads that folder, so the catalog can offer every finished variant
('smollm2-135m@Q4_K_M') to Chat, Compare and `bench` without importing the lab or building anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from engines.base import ModelRef

NOMINAL_BPW: dict[str, float] = {
    # llama.cpp's published bits per weight (Llama-3.1-8B, ANCHORS) where given, else the block format's.
    "F32": 32.0,
    "BF16": 16.0005,
    "F16": 16.0005,
    "Q8_0": 8.5008,
    "Q6_K": 6.5633,
    "Q5_1": 6.0,
    "Q5_K_M": 5.7036,
    "Q5_K_S": 5.54,
    "Q5_0": 5.5,
    "Q4_1": 5.0,
    "Q4_K_M": 4.8944,
    "Q4_K_S": 4.6672,
    "Q4_0": 4.5,
    "Q3_K_L": 4.27,
    "Q3_K_M": 3.91,
    "Q3_K_S": 3.6429,
    "Q2_K": 3.1593,
    "IQ2_XXS": 2.06,
}
"""Nominal bits per weight of each llama.cpp file type: ranks precision and sizes the disk check."""

FLOAT_TYPES = ("F32", "BF16", "F16")


def ladder_root() -> Path:
    from engines.paths import cache_dir

    return cache_dir("ladder")


def precision_rank(file_type: str) -> float:
    """Nominal bits per weight of a file type; unknown types rank by their first digit."""
    if file_type in NOMINAL_BPW:
        return NOMINAL_BPW[file_type]
    digits = [c for c in file_type if c.isdigit()]
    return float(digits[0]) if digits else 0.0


def manifest_path(folder: Path) -> Path:
    return folder / "manifest.json"


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads(manifest_path(folder).read_text())
    except (OSError, ValueError):
        return None


def built_variants(key: str) -> list[str]:
    """Types already built for a ladder folder (finished files only), highest precision first."""
    folder = ladder_root() / key
    if not folder.is_dir():
        return []
    built = [p.stem for p in folder.glob("*.gguf") if not p.name.startswith(".")]
    return sorted(built, key=lambda t: -precision_rank(t))


def ladder_models() -> list[ModelRef]:
    """Catalog provider: every finished ladder file as 'model@TYPE' (reads folder listings only)."""
    root = ladder_root()
    refs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        manifest = read_manifest(folder)
        if manifest is None:
            continue
        for t in built_variants(folder.name):
            note = f"{t} of {manifest.get('source_name', folder.name)} built by the quantization lab"
            if manifest.get("source_type") not in FLOAT_TYPES:
                note += f" (from an F16 dequantized from {manifest.get('source_type')})"
            refs.append(
                ModelRef(
                    f"{folder.name}@{t}",
                    str(folder / f"{t}.gguf"),
                    "gguf",
                    bool(manifest.get("chat", True)),
                    "quantization ladder",
                    note,
                )
            )
    return refs
