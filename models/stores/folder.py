"""LOCALBENCH_MODELS, searched recursively: GGUF files and HF / MLX / sentence-transformers folders.

A folder holding config.json is one model (MLX when the config has `quantization`, 'hf' otherwise;
sentence-transformers when it has modules.json), and the search does not go inside it. Names are the path
relative to the root without '.gguf': a file at the top keeps its stem ('SmolLM2-135M-Instruct.Q4_1'), a
nested one reads 'google/gemma/gemma-3-270m-Q4_K_M'. Symbolic links are followed once each (a link loop
is not walked twice). Headers only; a folder that cannot be read is an entry with its problem.
"""

from __future__ import annotations

import os
from pathlib import Path

from models.stores.entry import ModelEntry
from models.stores.headers import (
    entry_for_folder,
    entry_for_gguf,
    flush_cache,
    folder_format,
    incomplete_entry,
    incomplete_target,
    is_later_shard,
)

SOURCE = "LOCALBENCH_MODELS"


def default_root() -> Path | None:
    folder = os.environ.get("LOCALBENCH_MODELS")
    return Path(folder).expanduser() if folder else None


def scan(root: Path | None = None) -> list[ModelEntry]:
    """Every model under `root` (default: LOCALBENCH_MODELS; nothing when it is unset or missing)."""
    root = Path(root) if root is not None else default_root()
    if root is None or not root.is_dir():
        return []
    entries: list[ModelEntry] = []
    seen: set[tuple[int, int]] = set()

    def walk(folder: Path, rel: str) -> None:
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                return  # a symlink back to a folder already walked
            seen.add((st.st_dev, st.st_ino))
            children = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            problem = f"unreadable folder {folder}: {err.strerror or err}"
            entries.append(ModelEntry(rel or str(folder), SOURCE, "gguf", None, problem=problem))
            return
        for child in children:
            name = f"{rel}/{child.name}" if rel else child.name
            if child.name.startswith("."):
                continue
            path = Path(child.path)
            if child.is_dir():
                fmt = folder_format(path)
                if fmt is not None:
                    entries.append(entry_for_folder(name, path, SOURCE, fmt))
                else:
                    walk(path, name)
                continue
            lower = child.name.lower()
            if lower.endswith(".gguf") and not lower.startswith("mmproj") and not is_later_shard(path):
                entries.append(entry_for_gguf(name[:-5], path, SOURCE))
            elif (target := incomplete_target(path)) is not None and not target.exists():
                entries.append(
                    incomplete_entry(name[: -len(path.name)] + target.stem, path, SOURCE, "download it again")
                )

    walk(root, "")
    flush_cache()
    return entries
