"""What the memory planner knows about a model (`ModelSpec`), and the readers that build one.

A spec is read from a GGUF header and tensor table, an HF or MLX folder's config.json and safetensors
headers, an engine's ModelInfo (Ollama's /api/show), or the design target's (ADR 006) planning entries
(models.catalog.MODEL_CONFIGS). `load_spec()` picks the reader for a name, a path or 'ollama:NAME'.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import BadParameter, EngineUnavailable, InvalidModelFile, ModelNotFound
from engines.base import ModelInfo
from models.catalog import MODEL_CONFIGS, resolve_model
from models.gguf import Tensor, read_gguf
from models.hf_folder import safetensors_header

PUBLISHED_SHAPES: dict[str, dict] = {
    # Published config.json values the design target's (ADR 006) MODEL_CONFIGS lack (needed for the compute buffer).
    "qwen3:8b": {"n_embd": 4096, "n_heads": 32, "n_vocab": 151936, "arch": "qwen3"},
    "gemma3:12b": {"n_embd": 3840, "n_heads": 16, "n_vocab": 262208, "arch": "gemma3"},
    "qwen3:30b-a3b": {"n_embd": 2048, "n_heads": 32, "n_vocab": 151936, "arch": "qwen3moe"},
}


@dataclass(frozen=True)
class ModelSpec:
    """What the planner knows about a model. Sizes in bytes; None where the source does not say."""

    name: str
    source: str
    """'GGUF file', 'HF folder', 'MLX folder', 'Ollama', 'planning entry (ADR 006)'."""
    arch: str = ""
    n_params: int | None = None
    file_bytes: int | None = None
    """Weights as shipped: GGUF file, sum of safetensors files, or Ollama's size."""
    file_type: str = ""
    """Quantization as shipped: 'Q4_1', 'BF16', 'MLX-4bit', ..."""
    n_layers: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    n_embd: int | None = None
    n_vocab: int | None = None
    context_length: int | None = None
    """The model's maximum (training) context in tokens."""
    tensors: tuple[Tensor, ...] = ()
    note: str = ""

    def require(self, *fields: str) -> None:
        """Raise InvalidModelFile naming the first missing field."""
        for name in fields:
            if not getattr(self, name):
                what = FIELD_WORDS.get(name, name)
                raise InvalidModelFile(
                    f"{self.name} ({self.source}) does not say its {what} ('{name}'), which the memory planner "
                    "needs — use a GGUF file or a folder whose config.json has it"
                )


FIELD_WORDS = {
    "n_layers": "layer count (block_count / num_hidden_layers)",
    "n_kv_heads": "number of KV heads (head_count_kv / num_key_value_heads)",
    "head_dim": "head dimension (key_length / head_dim, or embedding length ÷ heads)",
    "n_params": "parameter count",
    "file_bytes": "file size",
}


def spec_from_gguf(path: str, name: str | None = None) -> ModelSpec:
    """A spec from a GGUF file's header record and tensor table (models.gguf.read_gguf, milliseconds)."""
    meta = read_gguf(path)
    return ModelSpec(
        name=name or Path(path).stem,
        source="GGUF file",
        arch="" if meta.arch == "unknown" else meta.arch,
        n_params=meta.n_params,
        file_bytes=meta.file_size_bytes,
        file_type=meta.file_type,
        n_layers=meta.n_layers,
        n_heads=meta.n_heads,
        n_kv_heads=meta.n_kv_heads,
        head_dim=meta.head_dim,
        n_embd=meta.n_embd,
        n_vocab=meta.vocab_size,
        context_length=meta.context_length,
        tensors=meta.tensors,
    )


def spec_from_folder(path: str) -> ModelSpec:
    """A spec from an HF or MLX folder: config.json (text_config for multimodal) plus safetensors headers."""
    folder = Path(path).expanduser()
    try:
        config = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise InvalidModelFile(f"{folder} has no config.json — the memory planner reads the shape from it") from None
    except ValueError as err:
        raise InvalidModelFile(f"{folder}/config.json is not valid JSON ({err})") from None
    text = config.get("text_config") or {}
    get = lambda key: text.get(key, config.get(key))  # noqa: E731
    quant = config.get("quantization") or config.get("quantization_config") or {}
    bits = quant.get("bits") if isinstance(quant, dict) else None
    source = "MLX folder" if "quantization" in config else "HF folder"
    n_params = file_bytes = 0
    for st in sorted(folder.glob("*.safetensors")):
        file_bytes += st.stat().st_size
        header = safetensors_header(st)
        for key, info in header.items():
            if key == "__metadata__":
                continue
            count = math.prod(info["shape"])
            if bits and info["dtype"] == "U32" and f"{key.rsplit('.', 1)[0]}.scales" in header:
                count = count * 32 // bits  # packed quantized weights
            elif key.endswith((".scales", ".biases")) and bits:
                continue
            n_params += count
    heads, embd = get("num_attention_heads"), get("hidden_size")
    dtype = str(get("torch_dtype") or get("dtype") or "").replace("float", "F").replace("bF", "BF").upper()
    return ModelSpec(
        name=folder.name,
        source=source,
        arch=str(get("model_type") or ""),
        n_params=n_params or None,
        file_bytes=file_bytes or None,
        file_type=f"MLX-{bits}bit" if bits else dtype,
        n_layers=get("num_hidden_layers"),
        n_heads=heads,
        n_kv_heads=get("num_key_value_heads") or heads,
        head_dim=get("head_dim") or (embd // heads if embd and heads else None),
        n_embd=embd,
        n_vocab=get("vocab_size"),
        context_length=get("max_position_embeddings"),
    )


def spec_from_model_info(info: ModelInfo, source: str) -> ModelSpec:
    """A spec from an engine's ModelInfo (e.g. engines.ollama.plan_info, which reads /api/show)."""
    return ModelSpec(
        name=info.name,
        source=source,
        arch=info.arch,
        n_params=info.n_params,
        file_bytes=info.model_size_bytes,
        file_type=info.file_type,
        n_layers=info.n_layers,
        n_heads=info.n_heads,
        n_kv_heads=info.n_kv_heads or info.n_heads,
        head_dim=info.head_dim,
        n_embd=info.n_embd,
        n_vocab=info.vocab_size,
        context_length=info.context_length,
    )


def spec_from_planning(name: str) -> ModelSpec:
    """A spec from the design target's (ADR 006) MODEL_CONFIGS planning entry (plus published shapes in
    PUBLISHED_SHAPES)."""
    cfg, shape = MODEL_CONFIGS[name], PUBLISHED_SHAPES.get(name, {})
    return ModelSpec(
        name=name,
        source="planning entry (ADR 006)",
        arch=shape.get("arch", ""),
        n_params=round(cfg["n_params_b"] * 1e9),
        file_type=cfg.get("quant", ""),
        n_layers=cfg.get("n_layers"),
        n_heads=shape.get("n_heads"),
        n_kv_heads=cfg.get("n_kv_heads"),
        head_dim=cfg.get("head_dim"),
        n_embd=shape.get("n_embd"),
        n_vocab=shape.get("n_vocab"),
        context_length=cfg.get("context_length"),
        note=f"the design target (ADR 006) planned {cfg.get('memory_gb')} GB at {cfg.get('quant')}",
    )


def ollama_spec(name: str, host: str | None = None) -> ModelSpec:
    """Ask an Ollama server for a model's shape (/api/show) and size (/api/tags) via engines.ollama."""
    import importlib.util

    if importlib.util.find_spec("engines.ollama") is None:
        raise EngineUnavailable("planning an Ollama model needs the Ollama engine (engines/ollama.py), absent here")
    from engines.ollama import plan_info

    return spec_from_model_info(plan_info(name, host), "Ollama")


def load_spec(model: str, ollama_host: str | None = None) -> ModelSpec:
    """A spec for a catalog name, a store name (hf:, ollama:, lmstudio:, llamacpp:), a GGUF path, an HF/MLX
    folder, a planning entry of the design target (ADR 006), a parameter count ('8B', '135M'), an
    'ollama:NAME' the Ollama server knows, or an 'hf:ORG/REPO[:QUANT]' on the Hub (its header, no weights)."""
    key = (model or "").strip()
    params_b = parse_params(key)
    if params_b is not None:
        return spec_from_params(params_b)
    if key.startswith("ollama:") and not _local(key):
        return ollama_spec(key.removeprefix("ollama:"), ollama_host)
    if key.startswith("hf:") and not _local(key):
        from models import hub

        return spec_of_remote(hub.remote_plan(hub.parse_spec(key)))
    if key in MODEL_CONFIGS:
        return spec_from_planning(key)
    try:
        ref = resolve_model(key)
    except ModelNotFound:
        if ollama_host:
            return ollama_spec(key, ollama_host)
        raise
    if ref.format == "gguf":
        return spec_from_gguf(ref.path, ref.name)
    if ref.format in ("hf", "mlx") and ref.path:
        return spec_from_folder(ref.path)
    raise BadParameter(f"{ref.name} is a {ref.format} model — the planner needs a file, a folder or an Ollama name")


TYPICAL_SHAPES: tuple[tuple[float, str, dict], ...] = (
    # Published config.json values of the Qwen2.5 dense models, the shapes a parameter count alone is planned with.
    (0.49, "Qwen2.5-0.5B", {"n_layers": 24, "n_embd": 896, "n_heads": 14, "n_kv_heads": 2, "head_dim": 64}),
    (1.54, "Qwen2.5-1.5B", {"n_layers": 28, "n_embd": 1536, "n_heads": 12, "n_kv_heads": 2, "head_dim": 128}),
    (3.09, "Qwen2.5-3B", {"n_layers": 36, "n_embd": 2048, "n_heads": 16, "n_kv_heads": 2, "head_dim": 128}),
    (7.62, "Qwen2.5-7B", {"n_layers": 28, "n_embd": 3584, "n_heads": 28, "n_kv_heads": 4, "head_dim": 128}),
    (14.7, "Qwen2.5-14B", {"n_layers": 48, "n_embd": 5120, "n_heads": 40, "n_kv_heads": 8, "head_dim": 128}),
    (32.8, "Qwen2.5-32B", {"n_layers": 64, "n_embd": 5120, "n_heads": 40, "n_kv_heads": 8, "head_dim": 128}),
    (72.7, "Qwen2.5-72B", {"n_layers": 80, "n_embd": 8192, "n_heads": 64, "n_kv_heads": 8, "head_dim": 128}),
)
"""(billions of parameters, model, shape): the nearest in size (log scale) stands in for an unknown shape."""


def spec_from_params(params_b: float) -> ModelSpec:
    """A spec for a model known only by its parameter count (billions): the KV cache and buffers are
    planned with the shape of the nearest published dense model (TYPICAL_SHAPES), and the spec says so."""
    if not isinstance(params_b, (int, float)) or not 0 < params_b <= 10_000:
        raise BadParameter(f"model size must be between 0 and 10000 billion parameters, got {params_b!r}")
    size, like, shape = min(TYPICAL_SHAPES, key=lambda t: abs(math.log(t[0] / params_b)))
    return ModelSpec(
        name=f"{params_b:g}B parameters",
        source="parameter count",
        arch="qwen2",
        n_params=round(params_b * 1e9),
        n_vocab=151936,
        context_length=32768,
        note=f"shape assumed: {like}'s published config ({size:g}B, the nearest in size) — KV cache derived from it",
        **shape,
    )


def parse_params(text: str) -> float | None:
    """'8B', '8b', '1.5B', '135M' → billions of parameters; None when `text` is not a parameter count."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bBmM])\s*", text or "")
    if not m:
        return None
    value = float(m.group(1))
    return value if m.group(2) in "bB" else value / 1000


def spec_of_remote(plan) -> ModelSpec:
    """The planner's spec of a model on the Hub (models.hub.RemotePlan), read before any weights download."""
    return ModelSpec(**plan.model_spec_fields())


def _local(name: str) -> bool:
    """A prefixed name found in its store on this machine (an Ollama manifest, an HF cache entry)."""
    from models.stores import find

    entry = find(name)
    return entry is not None and entry.runnable


def spec_dict(spec: ModelSpec) -> dict:
    """JSON-ready spec without the tensor table."""
    out = {k: v for k, v in asdict(spec).items() if k != "tensors"}
    out["n_tensors"] = len(spec.tensors)
    return out
