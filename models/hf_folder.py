"""Hugging Face and MLX model folders: config.json, safetensors headers and architecture checks.

Reads headers only (never the weights), and turns what is wrong with a folder into InvalidModelFile
with a message a user can act on.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from core.errors import InvalidModelFile

MAX_SAFETENSORS_HEADER_BYTES = 100 * 2**20


def safetensors_header(path: str | Path) -> dict:
    """The JSON header of one .safetensors file (tensor name → dtype, shape, offsets)."""
    path = Path(path)
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > MAX_SAFETENSORS_HEADER_BYTES:
            raise InvalidModelFile(f"{path.name} has an implausible safetensors header ({n:,} bytes)")
        return json.loads(fh.read(n))


def safetensors_elements(folder: str | Path) -> tuple[int, int]:
    """(number of weight elements, bytes on disk) from the safetensors headers (reads headers only)."""
    elements = size = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        size += path.stat().st_size
        for name, entry in safetensors_header(path).items():
            if name != "__metadata__":
                elements += math.prod(entry["shape"])
    return elements, size


def read_hf_config(folder: str | Path) -> dict:
    """config.json of a Hugging Face / MLX model folder, or InvalidModelFile saying what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidModelFile(f"{folder} is not a folder — a Hugging Face model is a folder with config.json")
    path = folder / "config.json"
    if not path.exists():
        raise InvalidModelFile(
            f"{folder} has no config.json, so it is not a Hugging Face model folder — point at the folder that "
            "holds config.json and *.safetensors, or convert a GGUF with `python app.py convert`"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InvalidModelFile(f"{path} is not valid JSON: {err}") from err
    if not isinstance(config, dict) or not config.get("model_type"):
        raise InvalidModelFile(f"{path} names no model_type, so no library can build this model")
    if not list(folder.glob("*.safetensors")) and not list(folder.glob("*.bin")):
        raise InvalidModelFile(f"{folder} has config.json but no weights (*.safetensors)")
    return config


def check_torch_architecture(config: dict) -> None:
    """Raise InvalidModelFile when transformers cannot build this model_type as a causal LM."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = config["model_type"]
    if model_type not in CONFIG_MAPPING_NAMES or model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise InvalidModelFile(
            f"unsupported architecture '{model_type}': the installed transformers cannot build it as a causal "
            "language model — use a model of a supported family (llama, gemma3, qwen2, mistral, ...)"
        )


def mlx_model_type(config: dict) -> str:
    """mlx-lm's module name for this config (its own remapping), or InvalidModelFile."""
    import importlib.util

    from mlx_lm.utils import MODEL_REMAPPING

    model_type = MODEL_REMAPPING.get(config["model_type"], config["model_type"])
    if importlib.util.find_spec(f"mlx_lm.models.{model_type}") is None:
        raise InvalidModelFile(
            f"unsupported architecture '{config['model_type']}': mlx-lm has no model of that type — "
            "use the torch engine, or a model family mlx-lm supports (llama, gemma3, qwen2, mistral, ...)"
        )
    return model_type


def legacy_rope_keys(config: dict) -> dict:
    """The top-level RoPE keys older readers expect, from transformers 5's `rope_parameters`.

    transformers 5 writes `rope_parameters: {rope_theta, rope_type, ...}` (per attention type for Gemma 3)
    and no top-level `rope_theta`; mlx-lm 0.32 reads only `rope_theta` / `rope_local_base_freq` /
    `rope_scaling` and silently falls back to its defaults (10000 for Llama, where SmolLM2 needs 100000).
    Returns only the keys `config` lacks.
    """
    params = config.get("rope_parameters")
    if not isinstance(params, dict):
        return {}
    full = params.get("full_attention", params)
    sliding = params.get("sliding_attention")
    out: dict = {}
    if isinstance(full, dict) and "rope_theta" in full and "rope_theta" not in config:
        out["rope_theta"] = full["rope_theta"]
    if isinstance(sliding, dict) and "rope_theta" in sliding and "rope_local_base_freq" not in config:
        out["rope_local_base_freq"] = sliding["rope_theta"]
    kind = full.get("rope_type", "default") if isinstance(full, dict) else "default"
    if kind != "default" and not config.get("rope_scaling"):
        out["rope_scaling"] = {**{k: v for k, v in full.items() if k != "rope_theta"}, "type": kind, "rope_type": kind}
    return out


def gguf_supported_architectures() -> list[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return list(GGUF_SUPPORTED_ARCHITECTURES)
