"""GgufFacts: what a store listing needs from a GGUF file, read from its header only.

Built on models.gguf's header walk (the key-value section and the tensor table; string arrays such as
the tokenizer vocabulary are skipped by their lengths, never decoded), so listing a store of a thousand
files reads a few megabytes, not the weights. Results are cached per (path, size, mtime_ns): a second
listing of an unchanged store parses nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.gguf import file_type_name, scan_gguf


@dataclass(frozen=True)
class GgufFacts:
    """A GGUF file's identity and shape, from its header."""

    path: str
    arch: str
    """general.architecture: 'llama', 'gemma3', 'qwen3', ..."""
    basename: str | None
    """general.basename: 'SmolLM2'; None in files written before llama.cpp named it (2024-07)."""
    size_label: str | None
    """general.size_label: '135M', '8x7B', ..."""
    finetune: str | None
    """general.finetune: 'Instruct', 'it', ...; None for a base model."""
    version: str | None
    """general.version: 'v0.3', '2507', ...; None in most files."""
    name: str | None
    """general.name: the free-form model name."""
    quant: str | None
    """The nominal quantization: general.file_type ('Q4_K_M'), else the tensor type holding most bytes."""
    n_params: int
    """Weights (elements) summed over the tensor table."""
    context_length: int | None
    """<arch>.context_length, tokens."""
    n_layers: int | None
    n_embd: int | None
    n_head: int | None
    n_kv_heads: int | None
    head_dim: int | None
    n_vocab: int | None
    chat: bool
    """True when tokenizer.chat_template is present."""
    size_bytes: int
    """Bytes of this file on disk."""
    split_count: int | None = None
    """split.count of a split GGUF (this file is one shard); None for a single file."""


_CACHE: dict[tuple[str, int, int], GgufFacts] = {}


def gguf_facts(path: str | os.PathLike) -> GgufFacts:
    """The header facts of a GGUF file; raises ModelNotFound, or InvalidModelFile for a file that is not
    GGUF, is truncated or is corrupt."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError:
        st = None
    key = (str(p), st.st_size, st.st_mtime_ns) if st else None
    if key and key in _CACHE:
        return _CACHE[key]
    kv, tensors, size = scan_gguf(p)
    facts = _facts(str(p), kv, tensors, size)
    if key:
        if len(_CACHE) > 20_000:
            _CACHE.clear()
        _CACHE[key] = facts
    return facts


def _facts(path: str, kv: dict, tensors: tuple, size: int) -> GgufFacts:
    arch = str(kv.get("general.architecture") or "unknown")

    def text(key: str) -> str | None:
        v = kv.get(key)
        return v.strip() or None if isinstance(v, str) else None

    def number(key: str) -> int | None:
        v = kv.get(f"{arch}.{key}")
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    n_head = number("attention.head_count")
    n_embd = number("embedding_length")
    head_dim = number("attention.key_length") or (n_embd // n_head if n_embd and n_head else None)
    vocab = number("vocab_size") or kv.get("tokenizer.ggml.tokens")  # arrays come back as their length
    file_type = kv.get("general.file_type")
    quant = file_type_name(file_type) if isinstance(file_type, int) else _main_tensor_type(tensors)
    split = kv.get("split.count")
    return GgufFacts(
        path=path,
        arch=arch,
        basename=text("general.basename"),
        size_label=text("general.size_label"),
        finetune=text("general.finetune"),
        version=text("general.version"),
        name=text("general.name"),
        quant=quant,
        n_params=sum(t.n_elements for t in tensors),
        context_length=number("context_length"),
        n_layers=number("block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_kv_heads=number("attention.head_count_kv") or n_head,
        head_dim=head_dim,
        n_vocab=int(vocab) if isinstance(vocab, int) else None,
        chat=isinstance(kv.get("tokenizer.chat_template"), str),
        size_bytes=size,
        split_count=int(split) if isinstance(split, int) and split > 1 else None,
    )


def _main_tensor_type(tensors: tuple) -> str | None:
    """The ggml type of the 2-D weights holding the most bytes ('Q4_K'); None for an empty table."""
    totals: dict[str, int] = {}
    for t in tensors:
        if t.n_elements > t.row_elements:  # 2-D and up: norms and biases stay F32 in every quant
            totals[t.ggml_type] = totals.get(t.ggml_type, 0) + t.n_bytes
    return max(totals, key=totals.__getitem__) if totals else None
