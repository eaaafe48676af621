"""Family keys: one name for one model whatever its file ('smollm2-135m-instruct' for its GGUF, MLX and
safetensors forms), so a listing can group them and run "this model on every engine".

A key is basename-size[-qualifiers][-instruct], all lower case. GGUF files carry the parts themselves
(general.basename, general.size_label, general.finetune, general.version: llama.cpp's converter fills them
by parsing the source repo's name). For an HF or MLX folder the same parser — the gguf package's own
`Metadata.get_model_id_components` — reads the repo name once format and quant words (-GGUF, -MLX, -4bit,
-bf16, -Q4_K_M, ...) are stripped, so both sides split a name the same way. Training jargon in a finetune
('8k-lc100k-mix1-ep2') is dropped; 'Instruct', 'it', 'chat' become 'instruct'. When a finetune names no
role at all, a chat template decides (SmolLM2's GGUF says '8k-lc100k-mix1-ep2' and carries one); a name
with no finetune is a base model, template or not (Qwen's base GGUFs ship a chat template too).
"""

from __future__ import annotations

import re
from typing import Protocol

_FORMAT_WORD = re.compile(
    r"(gguf|ggml|mlx|hf|safetensors|onnx|awq|gptq|exl2|dwq|mxfp4|nvfp4|fp8|int[48]|w\d+a\d+|\d+(\.\d+)?-?bits?"
    r"|b?f(p)?(16|32)|i?q\d(_[0-9a-z]+)*)",
    re.IGNORECASE,
)
"""Name parts that say how a model is stored, not which model it is."""
_ROLE = {"instruct", "instruction", "it", "chat", "sft", "dpo", "rlhf", "assistant"}
_BASE = {"base", "pretrained", "pt"}
_QUALIFIER = re.compile(r"[a-z]+|(v|iter)?\d+(\.\d+)*")
"""Finetune parts kept in the key: words ('coder', 'thinking') and versions ('2507', 'v0.3'); parts mixing
letters and digits ('8k', 'lc100k', 'ep2') are training-run jargon."""


class GgufNames(Protocol):
    """What a family key reads from a GGUF header (models.stores.headers.GgufFacts has it all)."""

    basename: str | None
    size_label: str | None
    finetune: str | None
    version: str | None
    name: str | None
    n_params: int
    chat: bool


def family_from_gguf(facts: GgufNames) -> str | None:
    """The family key of a GGUF file from its header (a headers.GgufFacts); None when it names no model."""
    if facts.basename:
        return _key(facts.basename, facts.size_label, facts.finetune, facts.version, facts.chat)
    if facts.name:
        return _from_name(facts.name, facts.n_params, facts.chat)
    return None


def family_from_config(config: dict, repo: str, chat: bool | None = None) -> str | None:
    """The family key of an HF/MLX folder from its config.json and its repo id or folder name.

    `repo` is 'ORG/REPO' for a Hub repo, or a local folder name; `chat` (a chat template in the tokenizer
    config) only decides when the name's finetune names no role. A local name without an ORG (our
    'smollm2-135m@hf-bf16') yields to the model name transformers recorded in the config, when one is there.
    """
    n_params = estimate_params(config)
    recorded = config.get("_model_name_or_path") or config.get("_name_or_path")
    name = repo.strip().rstrip("/")
    if "/" not in name and isinstance(recorded, str) and recorded and "/" not in recorded and "\\" not in recorded:
        name = recorded
    key = _from_name(name.rsplit("@", 1)[0], n_params or 0, bool(chat)) if name else None
    if key:
        return key
    arch = config.get("model_type")
    if isinstance(arch, str) and n_params:
        from gguf.utility import model_weight_count_rounded_notation

        return f"{arch.lower()}-{model_weight_count_rounded_notation(n_params).lower()}"
    return None


def estimate_params(config: dict) -> int | None:
    """Weights of a decoder-only transformer from its config sizes (embeddings, attention, MLP, norms);
    None when the config lacks them. Within a few percent for llama-like models; an estimate, not a count."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    try:
        h, layers, vocab = int(text["hidden_size"]), int(text["num_hidden_layers"]), int(text["vocab_size"])
        inter = int(text.get("intermediate_size") or 4 * h)
        heads = int(text.get("num_attention_heads") or 1)
        kv = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or h // heads)
    except (KeyError, TypeError, ValueError):
        return None
    if any(text.get(k) for k in ("num_experts", "num_local_experts", "n_routed_experts")):
        return None  # mixture of experts: the dense formula is far off
    attention = h * heads * head_dim * 2 + h * kv * head_dim * 2
    per_layer = attention + 3 * h * inter + 2 * h
    embeddings = vocab * h * (1 if text.get("tie_word_embeddings", config.get("tie_word_embeddings", True)) else 2)
    return embeddings + layers * per_layer + h


def _from_name(name: str, n_params: int, chat: bool) -> str | None:
    """Key from a free-form name: 'HuggingFaceTB/SmolLM2-135M-Instruct-GGUF', 'Gemma 3 270m'."""
    from gguf.metadata import Metadata

    words = [p for p in re.split(r"[-\s]+", name.rsplit("/", 1)[-1]) if p and not _FORMAT_WORD.fullmatch(p)]
    parts = [q for p in words for q in p.split("_") if q]  # after the quant words, which hold '_' (Q4_K_M)
    if not parts:
        return None
    _, _, basename, finetune, version, size = Metadata.get_model_id_components("-".join(parts), n_params)
    if basename is None:  # too ambiguous for the parser (no size, no finetune): the name itself
        return "-".join(parts).lower()
    return _key(basename, size, finetune, version, chat)


def _key(basename: str, size: str | None, finetune: str | None, version: str | None, chat: bool) -> str:
    head = [p for p in re.split(r"[-\s_]+", basename.lower()) if p]
    sizes = [p for p in re.split(r"[-\s_,]+", (size or "").lower()) if p]
    role, qualifiers = None, []
    for part in re.split(r"[-\s_]+", f"{finetune or ''}-{version or ''}".lower()):
        if not part or _FORMAT_WORD.fullmatch(part):
            continue
        if part in _ROLE:
            role = "instruct"
        elif part in _BASE:
            role = role or "base"
        elif _QUALIFIER.fullmatch(part) and part not in qualifiers:
            qualifiers.append(part)
    if role is None and finetune and chat:
        role = "instruct"
    tail = ["instruct"] if role == "instruct" else []
    return "-".join(head + sizes + qualifiers + tail)
