"""The design record's `OptimizedModelLoader`: LangChain models configured from this machine for apps.

`load_chat_model()` returns `langchain_ollama.ChatOllama` whose `num_ctx` comes from the memory planner,
not from fixed numbers: the record's context for this machine class (planning.runtime.optimal_config),
no more than the largest context whose planned total fits the memory budget (planning.estimate.max_context
against planning.report.planning_budget), and no more than the model's own maximum. A model whose weights
× the record's memory multiplier (engines.memory_check.MEMORY_MULTIPLIER) exceed the budget is refused
with a message. `load_embedding_model()` returns `langchain_huggingface.HuggingFaceEmbeddings` on mps,
else cuda, else cpu (machine.devices.embeddings_auto_device), on the bundled all-MiniLM-L6-v2 by default.

LangChain is optional: it is imported on first use, and a missing package is one EngineUnavailable line.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from core.errors import EngineUnavailable, InsufficientMemory
from core.units import fmt_bytes
from engines.memory_check import MEMORY_MULTIPLIER
from machine.profile import HardwareProfile
from planning.estimate import max_context
from planning.report import planning_budget
from planning.runtime import optimal_config
from planning.specs import ModelSpec, ollama_spec

DEFAULT_CHAT_MODEL = "smollm2:135m"
DEFAULT_EMBED_MODEL = "all-minilm-l6-v2"


@dataclass(frozen=True)
class ChatSettings:
    """What `load_chat_model` passes to ChatOllama, with one sentence of reasoning per decision."""

    model: str
    host: str
    num_ctx: int
    """Context window in tokens."""
    budget_bytes: int
    """Memory the model may take (bytes)."""
    reasons: tuple[str, ...]


def _require(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise EngineUnavailable(f"{package} is not installed — pip install {package} (see requirements.txt)")


def plan_chat(spec: ModelSpec, profile: HardwareProfile, available_bytes: int) -> tuple[int, int, tuple[str, ...]]:
    """(num_ctx in tokens, budget in bytes, reasons) for `spec` on `profile` with `available_bytes` free (pure)."""
    runtime = optimal_config(profile)
    offload = bool(profile.accelerators)
    budget, label = planning_budget(available_bytes, profile.ram_bytes, profile.accelerator_memory_bytes, offload)
    weights = spec.file_bytes or 0
    if weights * MEMORY_MULTIPLIER > budget:
        raise InsufficientMemory(
            f"{spec.name} needs about {fmt_bytes(int(weights * MEMORY_MULTIPLIER))} (weights × {MEMORY_MULTIPLIER}) "
            f"but {label} is {fmt_bytes(budget)} — pick a smaller model or a stronger quantization"
        )
    fits = max_context(spec, None, budget, cpu_only=not offload)
    if fits <= 0:
        raise InsufficientMemory(f"{spec.name} fits {label} ({fmt_bytes(budget)}) at no context — pick a smaller model")
    num_ctx = min(runtime.num_ctx, fits, spec.context_length or fits)
    reasons = (
        f"Weights {fmt_bytes(weights)} × {MEMORY_MULTIPLIER} fit {label} ({fmt_bytes(budget)}).",
        f"num_ctx = {num_ctx}: the smallest of this machine's context ({runtime.num_ctx}), the largest that fits "
        f"the budget ({fits}) and the model's maximum ({spec.context_length or 'unknown'}).",
    )
    return num_ctx, budget, reasons


def chat_settings(
    model: str = DEFAULT_CHAT_MODEL,
    host: str | None = None,
    profile: HardwareProfile | None = None,
    available_bytes: int | None = None,
) -> ChatSettings:
    """The planner's settings for Ollama model `model` on `host` (asks the server for its shape)."""
    from engines.ollama import normalize_host, ollama_host

    host = normalize_host(host) if host else ollama_host()
    if profile is None:
        from machine.detect import detect_hardware

        profile = detect_hardware()
    if available_bytes is None:
        import psutil

        available_bytes = psutil.virtual_memory().available
    spec = ollama_spec(model, host)
    num_ctx, budget, reasons = plan_chat(spec, profile, available_bytes)
    return ChatSettings(model, host, num_ctx, budget, reasons)


def load_chat_model(model: str = DEFAULT_CHAT_MODEL, host: str | None = None, temperature: float = 0.0, **kwargs):
    """`langchain_ollama.ChatOllama` for `model` on `host` with the planner's `num_ctx`; `kwargs` go to it."""
    _require("langchain_ollama", "langchain-ollama")
    settings = chat_settings(model, host)
    from langchain_ollama import ChatOllama

    return ChatOllama(
        model=settings.model, base_url=settings.host, num_ctx=settings.num_ctx, temperature=temperature, **kwargs
    )


def embedding_device(profile: HardwareProfile | None = None) -> str:
    """'mps' where Metal is present, else 'cuda' where present, else 'cpu' (asks torch)."""
    from machine.devices import embeddings_auto_device

    if profile is None:
        from machine.detect import detect_hardware

        profile = detect_hardware()
    return embeddings_auto_device(profile.accelerators)


def load_embedding_model(name: str = DEFAULT_EMBED_MODEL, device: str | None = None, **kwargs):
    """`langchain_huggingface.HuggingFaceEmbeddings` for the bundled MiniLM (or a sentence-transformers
    folder) on `device` (None: mps, cuda or cpu, whichever is present); works offline."""
    _require("langchain_huggingface", "langchain-huggingface")
    from engines.embeddings import resolve_embed_model

    ref = resolve_embed_model(name)
    if ref.path is None:
        raise EngineUnavailable(f"{name} is served by Ollama — use langchain_ollama.OllamaEmbeddings for it")
    from langchain_huggingface import HuggingFaceEmbeddings

    model_kwargs = {"device": device or embedding_device(), **kwargs.pop("model_kwargs", {})}
    return HuggingFaceEmbeddings(model_name=ref.path, model_kwargs=model_kwargs, **kwargs)


class OptimizedModelLoader:
    """The design record's class: `load_chat_model(model_name, temperature)` and `load_embedding_model(name)`."""

    def __init__(self, host: str | None = None) -> None:
        self.host = host

    def load_chat_model(self, model_name: str = DEFAULT_CHAT_MODEL, temperature: float = 0.0, **kwargs):
        return load_chat_model(model_name, self.host, temperature, **kwargs)

    def load_embedding_model(self, name: str = DEFAULT_EMBED_MODEL, **kwargs):
        return load_embedding_model(name, **kwargs)
