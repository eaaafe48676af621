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
