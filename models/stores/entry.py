"""ModelEntry: one model file (or folder) found in a store on this machine, as `models list` shows it.

Every store module (hf_cache, lmstudio, ollama, llama_cache, folder) returns these from its `scan()`.
An entry is built from headers only (the GGUF key-value section, config.json, safetensors headers), never
from the weights. An entry that cannot run says why in `problem` and is listed, never raised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from models.ref import ModelRef

FORMATS = ("gguf", "mlx", "hf", "sentence-transformers")
"""'gguf' (llama.cpp, Ollama), 'mlx' (an MLX folder: config.json with `quantization`), 'hf' (a safetensors
folder for torch), 'sentence-transformers' (an embeddings folder)."""


@dataclass(frozen=True)
class ModelEntry:
    """A model found on disk: where it is, what it is, and whether it can run."""

    name: str
    """What a user types after --model: 'hf:ORG/REPO:Q4_K_M', 'hf:ORG/REPO', 'ollama:NAME:TAG',
    'lmstudio:PUBLISHER/REPO:Q4_K_M', 'llamacpp:ORG/REPO:Q4_K_M', a LOCALBENCH_MODELS relative stem, ..."""
    source: str
    """'hf-cache', 'lmstudio', 'ollama', 'llama.cpp-cache', 'LOCALBENCH_MODELS', 'bundled', 'converted'."""
    format: str
    """One of FORMATS."""
    path: str | None
    """The GGUF file (first shard of a split GGUF) or the model folder; None when it is missing."""
    quant: str | None = None
    """'Q4_K_M', 'F16', 'BF16', 'MLX 4-bit', ...; None when unknown."""
    n_params: int | None = None
    """Weights (elements) from the headers; None when unknown."""
    context_length: int | None = None
    """The model's trained context in tokens (GGUF `<arch>.context_length`, config max_position_embeddings)."""
    size_bytes: int | None = None
    """Bytes on disk of every file the model needs (all shards; blobs behind symlinks)."""
    family: str | None = None
    """The model whatever the file: 'smollm2-135m-instruct' for its GGUF, MLX and safetensors forms."""
    chat: bool | None = None
    """True when it carries a chat template; None when unknown."""
    sha256: str | None = None
    """Content hash where the store already names it (Ollama blob digests, HF LFS etags); never computed."""
    problem: str | None = None
    """Why it cannot run ('snapshot link points at a missing blob', 'download incomplete', ...); None: runnable."""

    @property
    def runnable(self) -> bool:
        return self.problem is None and self.path is not None

    def ref(self) -> ModelRef:
        """The ModelRef an engine loads (format 'sentence-transformers' is for the embeddings engine)."""
        note = f"{self.source}: {self.path}" if self.path else self.source
        return ModelRef(self.name, self.path, self.format, bool(self.chat), self.source, note)

    def to_row(self) -> dict:
        return asdict(self)
