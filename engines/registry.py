"""Engine registry: names mapped to dotted paths, so listing engines imports no engine library.

Adding an engine means one new module in engines/ and one line here.
"""

from __future__ import annotations

import importlib

from core.errors import UnknownEngine
from engines.base import Engine

ENGINES: dict[str, str] = {
    "llamacpp": "engines.llamacpp:LlamaCppEngine",
    "ollama": "engines.ollama:OllamaEngine",
    "openai": "engines.openai_compat:OpenAIEngine",
    "mlx": "engines.mlx:MlxEngine",
    "torch": "engines.torch_hf:TorchEngine",
    "coreml": "engines.coreml:CoreMLEngine",
}
"""Text-generation engines: name -> 'module:Class'."""

EMBEDDERS: dict[str, str] = {
    "sentence-transformers": "engines.embeddings:Embedder",
    "coreml": "engines.coreml:CoreMLEmbedder",
}
"""Embedding engines: name -> 'module:Class'."""


def _resolve(table: dict[str, str], name: str, kind: str) -> type:
    if name not in table:
        raise UnknownEngine(f"unknown {kind} '{name}' — choose one of: {', '.join(sorted(table))}")
    module, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def engine_class(name: str) -> type[Engine]:
    """The class registered under `name` (imports its module, which imports no heavy library)."""
    return _resolve(ENGINES, name, "engine")


def create_engine(name: str) -> Engine:
    return engine_class(name)()


def embedder_class(name: str) -> type:
    return _resolve(EMBEDDERS, name, "embedder")


def engine_status() -> list[tuple[str, bool, str]]:
    """(name, usable, reason) for every registered engine."""
    rows = []
    for name in ENGINES:
        ok, reason = engine_class(name).availability()
        rows.append((name, ok, reason))
    return rows
