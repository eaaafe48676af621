"""Sweep the half-written files that killed runs leave in LOCALBENCH_HOME.

Every cache (conversions, the quantization ladder, reference logits, ...) is written through
core.paths.atomic_path as a `.NAME.partial-XXXX` sibling that is renamed into place only when
complete; a `kill -9` leaves the sibling behind (a 225 MB half reference-logits cache, 1.2 GB for
Gemma). `sweep_partials()` removes those whose writer is gone: a conversion names its process in an
owner file; any other partial untouched for STALE_S is taken as abandoned.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

STALE_S = 600.0
"""A partial without an owner file is abandoned once nothing in it changed for this long (seconds)."""

OWNER = ".localbench-owner.json"  # written by models.convert for the conversions it runs


def _newest_mtime(path: Path) -> float:
    if not path.is_dir():
        return path.stat().st_mtime
    return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.rglob("*"))])


def _writer_alive(owner_file: Path) -> bool:
    import psutil

    owner = json.loads(owner_file.read_text())
    try:
        return abs(psutil.Process(int(owner["pid"])).create_time() - float(owner["process_started"])) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def sweep_partials(root: Path | None = None, now: float | None = None) -> list[tuple[Path, int]]:
    """Remove abandoned `.*.partial-*` files and folders under `root` (LOCALBENCH_HOME by default);
    returns (path, bytes freed) for each."""
    from core.paths import home

    root = Path(root) if root is not None else home()
    now = time.time() if now is None else now
    removed = []
    for partial in sorted(root.rglob(".*.partial-*")):
        try:
            owner = partial / OWNER
            if owner.is_file():
                abandoned = not _writer_alive(owner)
            else:
                abandoned = now - _newest_mtime(partial) > STALE_S
            if not abandoned:
                continue
            size = sum(p.stat().st_size for p in partial.rglob("*") if p.is_file()) if partial.is_dir() else 0
            size = size or (partial.stat().st_size if partial.is_file() else 0)
            shutil.rmtree(partial, ignore_errors=True) if partial.is_dir() else partial.unlink(missing_ok=True)
            removed.append((partial, size))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # vanished meanwhile or unreadable: leave it for the next start
    return removed
