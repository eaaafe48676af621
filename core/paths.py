"""Where localbench keeps its files: LOCALBENCH_HOME (default ~/.localbench) and its sub-folders.

Caches (GGUF ladders, conversions, reference logits) and the results database live here, never in
the repository. Files are written to a temporary name and renamed (`atomic_path`), so a cancel or a
crash never leaves a half file that looks usable. A `kill -9` still leaves the temporary sibling behind
(a 225 MB half reference-logits cache, 1.2 GB for Gemma): `sweep_partials()` removes those whose writer is
gone — a conversion names its process in an owner file (OWNER); any other partial untouched for STALE_S is
taken as abandoned.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from core.errors import InsufficientDiskSpace

DISK_MARGIN_BYTES = 256 * 2**20
"""Disk space left spare after a build or conversion."""


def home() -> Path:
    """LOCALBENCH_HOME, created on first use."""
    root = Path(os.environ.get("LOCALBENCH_HOME") or Path.home() / ".localbench").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(*parts: str) -> Path:
    """A sub-folder of LOCALBENCH_HOME/cache, created on first use."""
    path = home().joinpath("cache", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; rename it into place only if the block succeeds.

    Works for files and folders. On any exception (cancel included) the temporary is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if final.exists():
            if final.is_dir():
                shutil.rmtree(final)
            else:
                final.unlink()
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def check_disk_space(folder: Path, needed_bytes: int, what: str) -> None:
    """Raise InsufficientDiskSpace unless `needed_bytes` plus a margin fit in `folder`'s file system."""
    free = shutil.disk_usage(folder).free
    if needed_bytes + DISK_MARGIN_BYTES > free:
        raise InsufficientDiskSpace(
            f"not enough disk space for {what}: it needs about {needed_bytes / 1e9:.2f} GB plus "
            f"{DISK_MARGIN_BYTES / 1e9:.2f} GB spare, but {folder} has {free / 1e9:.2f} GB free — free some space "
            "or point LOCALBENCH_HOME at a larger disk"
        )


STALE_S = 600.0
"""A partial without an owner file is abandoned once nothing in it changed for this long (seconds)."""

OWNER = ".localbench-owner.json"
"""Written first inside a conversion in progress (models.convert): the pid that owns the temporary folder."""


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
