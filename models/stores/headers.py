"""GgufFacts: what a store listing needs from a GGUF file, read from its header only; and the ModelEntry
of one GGUF file or one HF/MLX folder found in a store (entry_for_gguf, entry_for_folder).

Built on models.gguf's header walk (the key-value section and the tensor table; string arrays such as
the tokenizer vocabulary are skipped by their lengths, never decoded), so listing a store of a thousand
files reads a few megabytes, not the weights. Results are cached per (path, size, mtime_ns): a second
listing of an unchanged store parses nothing, in this process or the next (LOCALBENCH_HOME/cache/
gguf-headers.json).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import LocalbenchError
from core.paths import atomic_path, cache_dir
from models.gguf import file_type_name, scan_gguf
from models.stores.entry import ModelEntry


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


_CACHE: dict[str, GgufFacts] = {}
"""(absolute path, size, mtime_ns) → facts, for this process."""
_DISK: dict[str, dict] | None = None
"""The same, as stored in LOCALBENCH_HOME/cache/gguf-headers.json, so a new process parses nothing either."""
_DISK_FILE = "gguf-headers.json"
_DISK_VERSION = 1
_DIRTY = False


def gguf_facts(path: str | os.PathLike) -> GgufFacts:
    """The header facts of a GGUF file; raises ModelNotFound, or InvalidModelFile for a file that is not
    GGUF, is truncated or is corrupt. Cached per (path, size, mtime_ns) in memory and on disk
    (flush_cache() writes what was parsed); a changed file is read again."""
    global _DIRTY
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError:
        st = None
    key = f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}" if st else None
    if key is not None:
        if key in _CACHE:
            return _CACHE[key]
        stored = _disk().get(key)
        if stored is not None:
            try:
                _CACHE[key] = GgufFacts(**stored)
                return _CACHE[key]
            except TypeError:
                pass  # written by another version of this record: read the file again
    kv, tensors, size = scan_gguf(p)
    facts = _facts(str(p), kv, tensors, size)
    if key is not None:
        if len(_CACHE) > 20_000:
            _CACHE.clear()
        _CACHE[key] = facts
        _disk()[key] = asdict(facts)
        if not _DIRTY:
            _DIRTY = True
            atexit.register(flush_cache)
    return facts


def _disk() -> dict[str, dict]:
    global _DISK
    if _DISK is None:
        _DISK = {}
        try:
            stored = json.loads((cache_dir() / _DISK_FILE).read_text())
            if isinstance(stored, dict) and stored.get("version") == _DISK_VERSION:
                _DISK = {k: v for k, v in stored.get("files", {}).items() if isinstance(v, dict)}
        except (OSError, ValueError):
            pass
    return _DISK


def flush_cache() -> None:
    """Write the header facts parsed by this process to the on-disk cache (atomically; a no-op when
    nothing new was parsed). Stores call it at the end of a scan."""
    global _DIRTY
    if not _DIRTY or _DISK is None:
        return
    _DIRTY = False
    files = dict(list(_DISK.items())[-20_000:])  # the newest 20k files: entries of deleted files age out
    try:
        with atomic_path(cache_dir() / _DISK_FILE) as tmp:
            tmp.write_text(json.dumps({"version": _DISK_VERSION, "files": files}))
    except OSError:
        pass  # a read-only home: the next process parses again


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


_SPLIT = re.compile(r"^(.+)-([0-9]{5})-of-([0-9]{5})\.gguf$", re.IGNORECASE)
_FILE_QUANT = re.compile(
    r"[-._]((?:I?Q[0-9]_[A-Z0-9_]+|I?Q[0-9]+(?:_[0-9])?|B?F16|F32|MXFP4(?:_MOE)?|TQ[12]_0))$", re.I
)


def quant_from_filename(path: str | os.PathLike) -> str | None:
    """The quant tag a GGUF file name carries, upper case: 'Q4_K_M' for 'SmolLM2-135M-Instruct-Q4_K_M.gguf'
    or 'model.q8_0.gguf' (split suffix ignored); None when the name has none."""
    name = Path(path).name
    split = _SPLIT.match(name)
    stem = split[1] if split else name[: -len(".gguf")] if name.lower().endswith(".gguf") else name
    found = _FILE_QUANT.search(stem)
    return found[1].upper() if found else None


def split_shards(first: Path) -> tuple[list[Path], int] | None:
    """(shards present in shard order, shard count) for the first shard of a split GGUF
    ('X-00001-of-00003.gguf', llama.cpp's llama_split_path); None for a single file."""
    m = _SPLIT.match(first.name)
    if not m:
        return None
    count = int(m[3])
    names = [f"{m[1]}-{i:05d}-of-{m[3]}.gguf" for i in range(1, count + 1)]
    return [first.with_name(n) for n in names if first.with_name(n).exists()], count


def is_later_shard(path: Path) -> bool:
    """True for shard 2..n of a split GGUF: listed through its first shard, never alone."""
    m = _SPLIT.match(path.name)
    return bool(m and int(m[2]) > 1)


INCOMPLETE_SUFFIXES = (".downloadInProgress", ".incomplete", ".part", ".partial", ".crdownload", ".download")
"""What a download in progress is called: llama.cpp's `.downloadInProgress` (common/download.cpp),
huggingface_hub's `.incomplete`, and the usual browser / downloader suffixes."""


def incomplete_target(path: Path) -> Path | None:
    """The GGUF a partial download will become ('x.gguf' for 'x.gguf.downloadInProgress'); None otherwise."""
    for suffix in INCOMPLETE_SUFFIXES:
        if path.name.endswith(suffix) and path.name[: -len(suffix)].lower().endswith(".gguf"):
            return path.with_name(path.name[: -len(suffix)])
    return None


def incomplete_entry(name: str, path: Path, source: str, again: str) -> ModelEntry:
    """A partial download: listed, never runnable; `again` says how to finish it."""
    size = _size(path)
    done = f" ({size / 1e6:.1f} MB so far)" if size is not None else ""
    return ModelEntry(name, source, "gguf", None, size_bytes=size, problem=f"download incomplete{done} — {again}")


def entry_for_gguf(
    name: str, path: str | os.PathLike, source: str, *, sha256: str | None = None, chat: bool | None = None
) -> ModelEntry:
    """The entry of one GGUF file (the first shard of a split GGUF: every shard's size and weights summed).
    A file that is missing, unreadable, not GGUF or truncated is an entry with its problem, never raised.
    `chat`: True when the store knows a chat template the file lacks (an Ollama template layer)."""
    p = Path(path)
    base = dict(name=name, source=source, format="gguf", sha256=sha256, quant=quant_from_filename(p))
    try:
        facts = gguf_facts(p)
    except LocalbenchError as err:
        size = _size(p)
        return ModelEntry(**base, path=str(p) if size is not None else None, size_bytes=size, problem=str(err))
    except OSError as err:
        return ModelEntry(**base, path=str(p), problem=f"unreadable: {err.strerror or err}")
    size, n_params, problem = facts.size_bytes, facts.n_params, None
    shards = split_shards(p)
    if shards:
        present, count = shards
        if len(present) < count:
            problem = f"split GGUF has {len(present)} of its {count} shards — download the missing ones"
        for shard in present[1:]:
            try:
                more = gguf_facts(shard)
            except (LocalbenchError, OSError) as err:
                problem = problem or f"shard {shard.name}: {err}"
                continue
            size, n_params = size + more.size_bytes, n_params + more.n_params
    from models.stores.family import family_from_gguf

    return ModelEntry(
        **{**base, "quant": facts.quant or base["quant"]},
        path=str(p),
        n_params=n_params,
        context_length=facts.context_length,
        size_bytes=size,
        family=family_from_gguf(facts),
        chat=facts.chat or bool(chat),
        problem=problem,
    )


def folder_format(folder: Path) -> str | None:
    """'sentence-transformers' (modules.json), 'mlx' (config.json with `quantization`) or 'hf' (config.json)
    for a model folder; None for a folder without config.json. Reads config.json only."""
    if (folder / "modules.json").is_file():
        return "sentence-transformers"
    if not (folder / "config.json").is_file():
        return None
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return "hf"  # listed as 'hf' with its problem by entry_for_folder
    return "mlx" if isinstance(config, dict) and config.get("quantization") else "hf"


def entry_for_folder(name: str, folder: str | os.PathLike, source: str, fmt: str | None = None) -> ModelEntry:
    """The entry of one HF, MLX or sentence-transformers folder, from config.json and the safetensors
    headers; an unreadable folder or config is an entry with its problem, never raised."""
    from models.stores.family import family_from_config

    d = Path(folder)
    try:
        fmt = fmt or folder_format(d) or "hf"
        files = sorted(d.iterdir())
        config = json.loads((d / "config.json").read_text())
        if not isinstance(config, dict):
            raise ValueError("config.json is not a JSON object")
    except (OSError, ValueError) as err:
        what = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return ModelEntry(name, source, fmt or "hf", str(d), problem=f"unreadable model folder: {what}")
    from models.hf_folder import safetensors_header

    weights = [f for f in files if f.suffix == ".safetensors"]
    problem = None if weights or fmt == "sentence-transformers" else "no *.safetensors weights in the folder"
    quant = config.get("quantization")
    bits = int(quant["bits"]) if isinstance(quant, dict) and quant.get("bits") else None
    n_params = 0
    for w in weights:
        try:
            n_params += weight_elements(safetensors_header(w), bits)
        except (LocalbenchError, OSError, ValueError) as err:
            problem = problem or f"{w.name}: unreadable safetensors header ({err})"
    chat = fmt != "sentence-transformers" and _has_chat_template(d)
    context = config_value(config, "max_position_embeddings")
    return ModelEntry(
        name=name,
        source=source,
        format=fmt,
        path=str(d),
        quant=config_quant(config),
        n_params=n_params or None,
        context_length=int(context) if isinstance(context, int) else None,
        size_bytes=sum(_size(f) or 0 for f in files if f.is_file()),
        family=family_from_config(config, name.split(":", 1)[-1] if ":" in name else d.name, chat),
        chat=chat,
        problem=problem,
    )


def config_quant(config: dict) -> str | None:
    """'MLX 4-bit' for an MLX config, else the dtype ('BF16', 'F16', 'F32'); None when it says neither."""
    quant = config.get("quantization")
    if isinstance(quant, dict) and quant.get("bits"):
        return f"MLX {quant['bits']}-bit"
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    dtype = str(text.get("torch_dtype") or text.get("dtype") or config.get("torch_dtype") or config.get("dtype") or "")
    return {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}.get(dtype.replace("torch.", "")) or None


def config_value(config: dict, key: str):
    """A config.json value, looked up in text_config first (multimodal configs nest the language model)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    return text.get(key, config.get(key))


def weight_elements(header: dict, bits: int | None = None) -> int:
    """Weights (elements) in one safetensors header; MLX's packed U32 weights count 32/bits each and their
    quantization scales and biases not at all."""
    total = 0
    for key, info in header.items():
        if key == "__metadata__" or not isinstance(info, dict):
            continue
        count = math.prod(info.get("shape") or [])
        if bits and info.get("dtype") == "U32" and f"{key.rsplit('.', 1)[0]}.scales" in header:
            count = count * 32 // bits
        elif bits and key.endswith((".scales", ".biases")):
            continue
        total += count
    return total


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        return bool(json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return False


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
