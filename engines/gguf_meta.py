"""GGUF metadata, read with the `gguf` package: architecture, parameters, file type, shape, tensor types.

Used by the llama.cpp engine, the quantization lab and the memory planner. It reads the header and
the tensor table only (memory-mapped), validates that the file is a complete GGUF, and turns every
failure into `InvalidModelFile` / `ModelNotFound` with a message a user can act on.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from engines.errors import InvalidModelFile, ModelNotFound

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class GgufMeta:
    """What a GGUF file says about itself."""

    path: str
    arch: str
    name: str
    n_params: int
    file_type: str
    """llama.cpp's nominal file type, e.g. 'Q4_K_M', 'Q4_1', 'F16'."""
    file_size_bytes: int
    n_layers: int | None
    n_heads: int | None
    n_kv_heads: int | None
    n_embd: int | None
    head_dim: int | None
    context_length: int | None
    vocab_size: int | None
    chat_template: str | None
    tensor_types: tuple[tuple[str, int], ...]
    """(ggml type name, number of tensors) — shows K-quant fallback to legacy types."""
    tensor_bytes_by_type: tuple[tuple[str, int], ...]
    """(ggml type name, bytes of tensor data)."""

    @property
    def bits_per_weight(self) -> float:
        """Effective bits per weight: file bytes * 8 / n_params (derived)."""
        return self.file_size_bytes * 8 / self.n_params if self.n_params else 0.0

    @property
    def kv_bytes_per_token_f16(self) -> int | None:
        """f16 KV-cache bytes per token: 2 (K and V) * layers * kv_heads * head_dim * 2 bytes."""
        if not (self.n_layers and self.n_kv_heads and self.head_dim):
            return None
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * 2


def _value(field):
    """A ReaderField's Python value (str, int, float, list)."""
    if hasattr(field, "contents"):
        return field.contents()
    import gguf

    if field.types and field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    return field.parts[field.data[0]].tolist()[0] if field.data else None


def file_type_name(code: int | None) -> str:
    """'Q4_K_M' for llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M code."""
    import gguf

    if code is None:
        return "unknown"
    try:
        name = gguf.LlamaFileType(code).name
    except ValueError:
        return f"type {code}"
    return name.replace("MOSTLY_", "").replace("ALL_", "")


def check_gguf_file(path: str | os.PathLike) -> Path:
    """The path, if it exists and starts with the GGUF magic; else a clear error."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelNotFound(f"model file not found: {p}")
    if p.is_dir():
        raise InvalidModelFile(f"{p} is a folder, not a GGUF file")
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise InvalidModelFile(f"{p.name} is not a GGUF file (it does not start with the GGUF magic bytes)")
    return p


def read_gguf(path: str | os.PathLike) -> GgufMeta:
    """Metadata of a GGUF file; raises InvalidModelFile for non-GGUF, truncated or corrupt files."""
    p = check_gguf_file(path)
    stat = p.stat()
    return _read_cached(str(p.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _read_cached(path: str, size: int, mtime_ns: int) -> GgufMeta:
    import gguf

    try:
        reader = gguf.GGUFReader(path, "r")
    except Exception as err:  # the gguf package raises ValueError, IndexError, struct errors...
        raise InvalidModelFile(f"{Path(path).name} is not a readable GGUF file ({err})") from err
    fields = {k: _value(f) for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.")}
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise InvalidModelFile(
            f"{Path(path).name} is truncated: its tensors need {end:,} bytes but the file has {size:,}"
            " — download or build it again"
        )
    arch = str(fields.get("general.architecture", "unknown"))

    def arch_int(key: str) -> int | None:
        v = fields.get(f"{arch}.{key}")
        if isinstance(v, list):  # per-layer head counts (some archs)
            v = max(v) if v else None
        return int(v) if v is not None else None

    n_heads = arch_int("attention.head_count")
    n_embd = arch_int("embedding_length")
    head_dim = arch_int("attention.key_length") or (n_embd // n_heads if n_embd and n_heads else None)
    counts: collections.Counter[str] = collections.Counter()
    nbytes: collections.Counter[str] = collections.Counter()
    for t in reader.tensors:
        counts[t.tensor_type.name] += 1
        nbytes[t.tensor_type.name] += int(t.n_bytes)
    return GgufMeta(
        path=path,
        arch=arch,
        name=str(fields.get("general.name", Path(path).stem)),
        n_params=int(sum(int(t.n_elements) for t in reader.tensors)),
        file_type=file_type_name(fields.get("general.file_type")),
        file_size_bytes=size,
        n_layers=arch_int("block_count"),
        n_heads=n_heads,
        n_kv_heads=arch_int("attention.head_count_kv") or n_heads,
        n_embd=n_embd,
        head_dim=head_dim,
        context_length=arch_int("context_length"),
        vocab_size=len(tokens.data) if tokens is not None else None,
        chat_template=fields.get("tokenizer.chat_template"),
        tensor_types=tuple(counts.most_common()),
        tensor_bytes_by_type=tuple(nbytes.most_common()),
    )
