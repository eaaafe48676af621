"""The engine protocol: load a model, stream a generation, report statistics, unload.

Every backend (llama.cpp, MLX, PyTorch, Ollama, OpenAI-compatible servers) implements `Engine`.
Records are frozen dataclasses whose field names carry their units. `generate()` is built on
`stream()`; the final `Chunk` of a stream carries the `GenerationStats`. Engines know nothing of
runners, stores or screens: cancellation comes in as a plain `threading.Event`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from core.errors import BadParameter, Cancelled
from engines.prompts import Prompt
from models.ref import ModelRef

MAX_N_CTX = 1 << 20  # 1M tokens: anything above is a typo, not a context window.


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings for one request."""

    max_tokens: int = 256
    """Upper bound on generated tokens."""
    temperature: float = 0.0
    """0 means greedy."""
    top_p: float = 1.0
    top_k: int = 40
    seed: int = 0
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    """Keep generating past end-of-sequence (benchmarks force the generation length)."""

    def validate(self) -> GenerationParams:
        """Raise BadParameter for values no engine should see; return self."""
        if not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
            raise BadParameter(f"max tokens must be a positive integer, got {self.max_tokens!r}")
        if self.max_tokens > MAX_N_CTX:
            raise BadParameter(f"max tokens {self.max_tokens} is absurd (limit {MAX_N_CTX})")
        if not 0.0 <= self.temperature <= 10.0:
            raise BadParameter(f"temperature must be between 0 and 10, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise BadParameter(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise BadParameter(f"top_k must be >= 0, got {self.top_k}")
        return self


@dataclass(frozen=True)
class LoadConfig:
    """How to load a model. Engine-specific extras go in `options`."""

    n_ctx: int = 4096
    """Context window in tokens."""
    n_threads: int | None = None
    """CPU threads; None lets the engine choose (the physical performance cores)."""
    n_gpu_layers: int = 0
    """Layers offloaded to Metal/CUDA; -1 means all."""
    n_batch: int = 512
    """Prompt-processing batch in tokens."""
    device: str | None = None
    """'cpu', 'cuda', 'mps', 'metal'; None lets hardware detection choose."""
    dtype: str | None = None
    """'fp32', 'fp16', 'bf16' for engines that take one."""
    memory_limit_bytes: int | None = None
    """Cap on the engine's own allocator (MLX), if any."""
    allow_oversize: bool = False
    """Load even when the memory estimate says it will not fit (the user's explicit override)."""
    options: tuple[tuple[str, object], ...] = ()
    """Engine-specific extras as (key, value) pairs, e.g. (("host", "http://127.0.0.1:11434"),)."""

    def option(self, key: str, default: object = None) -> object:
        return dict(self.options).get(key, default)

    def validate(self) -> LoadConfig:
        if not isinstance(self.n_ctx, int) or self.n_ctx < 16:
            raise BadParameter(f"n_ctx must be an integer >= 16 tokens, got {self.n_ctx!r}")
        if self.n_ctx > MAX_N_CTX:
            raise BadParameter(f"n_ctx {self.n_ctx} is absurd (limit {MAX_N_CTX} tokens)")
        if self.n_threads is not None and not 1 <= self.n_threads <= 1024:
            raise BadParameter(f"n_threads must be between 1 and 1024, got {self.n_threads}")
        if self.n_batch < 1:
            raise BadParameter(f"n_batch must be >= 1, got {self.n_batch}")
        return self


SERVER_TIMEOUT_S = 300.0
"""Longest wait for a model server, seconds: for its response headers, and between two bytes of a reply (a large
model's first load can take minutes); options "idle_timeout_s", set by --timeout and the Servers tab's Timeout
field."""
CONNECT_TIMEOUT_S = 5.0
"""Longest wait for the TCP connection to a model server, seconds (never longer than the timeout itself)."""


def request_timeout_s(config: LoadConfig | None = None, default: float = SERVER_TIMEOUT_S) -> float:
    """The deadline of every wait on a model server, seconds: options "idle_timeout_s" (--timeout, the Servers
    tab's Timeout field), else `default`."""
    value = config.option("idle_timeout_s") if config is not None else None
    return float(value) if value else default


def http_timeout(timeout_s: float):
    """httpx's deadlines for one request: connect (at most CONNECT_TIMEOUT_S), then `timeout_s` for the
    response headers, each read of the body, each write and a free connection from the pool."""
    import httpx

    return httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is, read from its own metadata."""

    name: str
    engine: str
    path: str | None = None
    format: str = ""
    arch: str = ""
    """Architecture as the file names it (llama, gemma3, ...)."""
    n_params: int | None = None
    file_type: str = ""
    """Quantization / dtype label: Q4_1, Q4_K_M, F16, bf16, 4bit, ..."""
    model_size_bytes: int | None = None
    """Bytes of weights on disk."""
    n_layers: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    n_embd: int | None = None
    head_dim: int | None = None
    context_length: int | None = None
    """Training context of the model, in tokens."""
    n_ctx: int | None = None
    """Context window the engine was loaded with, in tokens."""
    vocab_size: int | None = None
    chat_template: bool = True
    backend: str = "CPU"
    """What computes: CPU, Metal, CUDA, remote."""
    device: str = "cpu"
    dtype: str = ""
    load_s: float = 0.0
    """Seconds the load took."""
    versions: tuple[tuple[str, str], ...] = ()
    """(library, version) pairs of what ran it."""
    settings: tuple[tuple[str, str], ...] = ()
    """Engine settings the model was loaded with, under llama-bench's names: (('repack', '0'),)."""
    notes: tuple[str, ...] = ()
    """Why a setting is what it is, e.g. a known-fault fallback with its upstream issue."""
    library_desc: str = ""
    """The engine library's own one-line name of the model, where it has one (llama.cpp's
    `llama_model_desc`, 'llama 256M Q4_1': llama-bench's model_type; its size is llama.cpp's type bucket)."""

    def setting(self, name: str, default: str = "") -> str:
        return dict(self.settings).get(name, default)

    @property
    def bits_per_weight(self) -> float | None:
        """Effective bits per weight (file bytes * 8 / n_params), a derived figure."""
        if not self.model_size_bytes or not self.n_params:
            return None
        return self.model_size_bytes * 8 / self.n_params


@dataclass(frozen=True)
class GenerationStats:
    """Statistics of one request. Times in seconds, rates in tokens per second."""

    ttft_s: float
    """Request start to first generated text, measured here."""
    prompt_tokens: int
    prompt_s: float
    """Prompt processing time, from the engine's own counters where it has them."""
    prompt_tps: float
    gen_tokens: int
    gen_s: float
    """Generation time, from the engine's own counters where it has them."""
    gen_tps: float
    load_s: float
    """Model load time in seconds (0 when it was already loaded)."""
    wall_s: float
    """Request start to last chunk, measured here."""
    peak_rss_bytes: int
    """Peak resident set size of the process that ran the engine (the model's worker) during the request."""
    stop_reason: str
    """'stop' (end of sequence or stop string), 'length', 'cancelled' or 'error'."""
    peak_device_bytes: int | None = None
    """Peak accelerator allocation (MLX peak, torch.cuda max allocated), when the engine has one."""
    itl_s: tuple[float, ...] = ()
    """Gaps between streamed chunks, measured here (vLLM's ITL)."""
    source: str = ""
    """Where prompt/gen timings come from, e.g. 'llama.cpp perf counters'."""
    worker_peak_private_bytes: int | None = None
    """Peak memory of the model's own worker process during the request: USS on Linux, physical
    footprint on macOS (None when the engine ran in this process or could not read it)."""
    worker_memory_source: str = ""
    """How `worker_peak_private_bytes` was read."""
    worker_pid: int | None = None
    """The worker process that ran the request."""
    engine_ttft_s: float | None = None
    """TTFT as the engine measured it inside its own process (`ttft_s` is what the caller saw)."""
    contended: bool = False
    """True when another request of this app ran at the same time (its speed figures are shared)."""


@dataclass(frozen=True)
class Chunk:
    """One piece of a streamed reply."""

    text: str
    t_s: float
    """Seconds since the request started."""
    n_tokens: int = 1
    stats: GenerationStats | None = None
    """Set on the final chunk only."""


def current_rss_bytes() -> int:
    """Resident set size of this process in bytes."""
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


class StreamTimer:
    """Measures TTFT, inter-token gaps, wall time and peak RSS of one streamed request."""

    def __init__(self, rss_every: int = 8) -> None:
        self.t0 = time.perf_counter()
        self.first_s: float | None = None
        self.last_s: float | None = None
        self.gaps: list[float] = []
        self.peak_rss = current_rss_bytes()
        self._n = 0
        self._rss_every = rss_every

    def tick(self) -> float:
        """Record a chunk arriving now; return seconds since start."""
        t = time.perf_counter() - self.t0
        if self.first_s is None:
            self.first_s = t
        else:
            self.gaps.append(t - self.last_s)
        self.last_s = t
        self._n += 1
        if self._n % self._rss_every == 0:
            self.peak_rss = max(self.peak_rss, current_rss_bytes())
        return t

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def finish(self) -> None:
        self.peak_rss = max(self.peak_rss, current_rss_bytes())

    @property
    def ttft_s(self) -> float:
        return self.first_s if self.first_s is not None else self.elapsed()


def rate(n: int, seconds: float) -> float:
    """Tokens per second, 0.0 when nothing was timed."""
    return n / seconds if seconds > 0 and n > 0 else 0.0


def room_for_generation(n_prompt: int, n_ctx: int, max_tokens: int) -> int:
    """Tokens left to generate after an `n_prompt`-token prompt in an `n_ctx` window, capped at
    `max_tokens`; a prompt that leaves no room raises PromptTooLong."""
    from core.errors import PromptTooLong

    if n_prompt >= n_ctx:
        raise PromptTooLong(
            f"the prompt is {n_prompt} tokens but the context window is {n_ctx} — shorten it or raise n_ctx"
        )
    return min(max_tokens, n_ctx - n_prompt)


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled by the user")


class Engine:
    """Base class for text-generation engines.

    Subclasses set `name`, implement `load`, `stream`, `unload`, and may override `tokenize` and
    `synthetic_prompt`. `stream` must yield a final Chunk whose `stats` is set, also when the
    request was cancelled (stop_reason 'cancelled').
    """

    name: ClassVar[str] = ""
    """Registry name, e.g. 'llamacpp'."""
    label: ClassVar[str] = ""
    """Human label, e.g. 'llama.cpp (GGUF)'."""
    formats: ClassVar[tuple[str, ...]] = ()
    """ModelRef formats this engine can load."""
    modules: ClassVar[tuple[str, ...]] = ()
    """Python modules it needs, probed with importlib.util.find_spec."""

    _info: ModelInfo | None = None

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """(usable, reason) without importing the heavy library."""
        import importlib.util

        for mod in cls.modules:
            if importlib.util.find_spec(mod) is None:
                return False, f"Python module '{mod}' is not installed (pip install -r requirements.txt)"
        return True, "ok"

    def resolve(self, model: str) -> ModelRef:
        """The ModelRef for a name or path; local engines use the catalog, servers override."""
        from models.catalog import resolve_model

        return resolve_model(model)

    def list_models(self, config: LoadConfig | None = None) -> list[str]:
        """Model names this engine can load; local engines list the catalog, servers ask the server."""
        from models.catalog import entries

        return [name for name, fmt in entries() if fmt in self.formats]

    def load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        raise NotImplementedError

    def stream(
        self,
        prompt: Prompt,
        params: GenerationParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        """Validate, then stream under the engine's lock (local engines implement `_stream_locked`
        and set `self._lock`); server engines override this whole method."""
        from engines.prompts import check_prompt

        check_prompt(prompt)
        params.validate()
        with self._lock:
            yield from self._stream_locked(prompt, params, cancel)

    def _stream_locked(
        self, prompt: Prompt, params: GenerationParams, cancel: threading.Event | None
    ) -> Iterator[Chunk]:
        raise NotImplementedError

    def unload(self) -> None:
        self._info = None

    def info(self) -> ModelInfo:
        if self._info is None:
            raise BadParameter(f"{self.name}: no model is loaded")
        return self._info

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` (no special tokens added); engines without a tokenizer raise."""
        raise NotImplementedError(f"{self.name} has no local tokenizer")

    def logits(self, tokens: Sequence[int], cancel: threading.Event | None = None):
        """Next-token logits at every position: float32 numpy array of shape (len(tokens), n_vocab),
        row i predicting token i+1. Engines that cannot expose logits raise EngineUnavailable."""
        from core.errors import EngineUnavailable

        raise EngineUnavailable(f"{self.name} does not expose logits, so quality metrics are not available")

    def synthetic_prompt(self, n_tokens: int, seed: int = 0) -> Prompt:
        """A prompt of about `n_tokens` tokens for speed tests (random token ids where possible)."""
        from engines.prompts import filler_text

        return filler_text(n_tokens, seed)

    def generate(
        self,
        prompt: Prompt,
        params: GenerationParams,
        cancel: threading.Event | None = None,
    ) -> tuple[str, GenerationStats]:
        """The whole reply and its statistics, built on `stream`."""
        parts: list[str] = []
        stats: GenerationStats | None = None
        for chunk in self.stream(prompt, params, cancel):
            parts.append(chunk.text)
            if chunk.stats is not None:
                stats = chunk.stats
        assert stats is not None, f"{self.name}.stream ended without statistics"
        return "".join(parts), stats


@dataclass(frozen=True)
class EmbeddingStats:
    """Timing of one embedding batch."""

    n_texts: int
    n_tokens: int
    seconds: float
    peak_rss_bytes: int
    peak_device_bytes: int | None = None
    truncated: int = 0
    """Texts longer than the model's max sequence length (they were truncated)."""
    extra: dict = field(default_factory=dict)
