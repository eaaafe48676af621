"""Listing of quantization-ladder files in the cache, for the model catalog.

The quantization lab (bench/quant/ladder.py) builds ladders under LOCALBENCH_HOME/cache/ladder/<model>/ with a
manifest.json; this module only reads that folder, so the catalog can offer every finished variant
('smollm2-135m@Q4_K_M') to Chat, Compare and `bench` without importing the lab or building anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.paths import cache_dir
from models.quant_types import FLOAT_TYPES, precision_rank
from models.ref import ModelRef


def ladder_root() -> Path:
    return cache_dir("ladder")


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
            elif str(manifest.get("source_note", "")).startswith("original:"):
                note += f" (from the {manifest['source_note']})"
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
