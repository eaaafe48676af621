"""Where localbench keeps its files: LOCALBENCH_HOME (default ~/.localbench) and its sub-folders.

Caches (GGUF ladders, conversions, reference logits) and the results database live here, never in
the repository. Files are written to a temporary name and renamed (`atomic_path`), so a cancel or a
crash never leaves a half file that looks usable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
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
