"""Where users already keep models, read in place: the Hugging Face cache, LM Studio's folder, Ollama's store,
llama.cpp's download cache and LOCALBENCH_MODELS (one module each, each with a `scan()` of ModelEntry).

`discover()` asks every store; a store that cannot be read becomes one entry with its problem, so one
broken folder never hides the others. Nothing here reads weights: headers only.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from models.stores.entry import ModelEntry

STORES: dict[str, str] = {
    "hf-cache": "models.stores.hf_cache",
    "lmstudio": "models.stores.lmstudio",
    "ollama": "models.stores.ollama",
    "llama.cpp-cache": "models.stores.llama_cache",
    "LOCALBENCH_MODELS": "models.stores.folder",
}
"""Source name → module with `scan() -> list[ModelEntry]`."""

PREFIXES: dict[str, str] = {
    "hf:": "hf-cache",
    "lmstudio:": "lmstudio",
    "ollama:": "ollama",
    "llamacpp:": "llama.cpp-cache",
}
"""Name prefix → the store whose entries carry it (LOCALBENCH_MODELS names have none)."""


def scan_store(source: str) -> list[ModelEntry]:
    """One store's entries; an error reading it is one entry saying so (never raised)."""
    try:
        return list(importlib.import_module(STORES[source]).scan())
    except Exception as err:  # a store we cannot read is listed, not fatal
        return [ModelEntry(f"{source}: unreadable", source, "gguf", None, problem=f"{type(err).__name__}: {err}")]


def store_roots(source: str) -> list[Path]:
    """The folders `source` is looked for in on this machine (its module's `default_roots()`, `default_root()`
    or, for the HF cache, `cache_root()`); [] for one that names none (LOCALBENCH_MODELS unset)."""
    try:
        module = importlib.import_module(STORES[source])
    except ImportError:
        return []
    if hasattr(module, "default_roots"):
        return list(module.default_roots())
    one = getattr(module, "default_root", None) or getattr(module, "cache_root", None)
    root = one() if one else None
    return [root] if root is not None else []


def discover(sources: Iterable[str] | None = None) -> list[ModelEntry]:
    """Every entry of every store (or of `sources`), in store order, each store's own order inside."""
    found: list[ModelEntry] = []
    for source in sources or STORES:
        found += scan_store(source)
    return found


def store_of(name: str) -> str | None:
    """The store a prefixed name belongs to ('hf:…' → 'hf-cache'); None for an unprefixed name."""
    return next((source for prefix, source in PREFIXES.items() if name.startswith(prefix)), None)


def find(name: str) -> ModelEntry | None:
    """The entry called `name` (looked up in its own store only when the name is prefixed)."""
    source = store_of(name)
    return next((e for e in discover([source] if source else None) if e.name == name), None)
