"""llama.cpp engine: GGUF models through llama-cpp-python, streamed, timed by llama.cpp's own counters.

Prompt and generation times come from `llama_perf_context` (the counters llama-bench and
llama-cli print), reset before every request; TTFT, inter-token gaps and wall time are measured
here. The prefix cache is disabled per request (`reset()`), so repeated prompts are really
re-processed and prompt t/s stays honest. Metadata comes from the GGUF header via models.gguf.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import threading
from collections.abc import Iterator
from importlib import metadata

from core.errors import BadParameter, EngineUnavailable, InvalidModelFile, PromptTooLong
from engines import llamacpp_bench
from engines.base import (
    Chunk,
    Engine,
    GenerationStats,
    LoadConfig,
    ModelInfo,
    StreamTimer,
    check_cancel,
    rate,
    room_for_generation,
)
from engines.llamacpp_bench import DecodeBench, flash_attn_type, kv_type
from engines.process.faults import KnownFault, Verdict, cpu_flags, register, run_canary
from engines.prompts import Prompt, as_messages, is_chat_prompt, is_token_prompt, random_tokens
from models.gguf import read_gguf
from models.ref import ModelRef

TIMING_SOURCE = "llama.cpp perf counters (llama_perf_context)"

REPACK_FAULT = register(
    KnownFault(
        name="llamacpp-repack",
        engine="llamacpp",
        setting="repack",
        upstream="ggml-org/llama.cpp#20824",
        summary=(
            "llama.cpp's weight repack (AMX on Intel Sapphire Rapids and later) segfaults in "
            "ggml_backend_amx_mul_mat; where the canary crashes, models load with repack off (--no-repack)"
        ),
    )
)

_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def model_params(repack: bool, flash_attn: int | None = None):
    """Within the block, `Llama(...)` loads with `use_extra_bufts = repack` (llama.cpp's --repack) and,
    when given, context `flash_attn_type = flash_attn` (-1 auto, 0 off, 1 on).

    llama-cpp-python has no keyword for repack, and its `flash_attn` is a bool (no auto): its
    constructor starts from `llama_model_default_params()` and makes the context through
    `llama_init_from_model`, so those two are wrapped for the duration of the load.
    """
    import llama_cpp.llama_cpp as capi

    with _PARAMS_LOCK:
        original_init = capi.llama_init_from_model
        original = set_default_repack(repack)

        def with_flash_attn(model, cparams):
            if flash_attn is not None:
                cparams.flash_attn_type = flash_attn
            return original_init(model, cparams)

        capi.llama_init_from_model = with_flash_attn
        try:
            yield
        finally:
            capi.llama_model_default_params = original
            capi.llama_init_from_model = original_init


def set_default_repack(repack: bool):
    """Make every later `Llama(...)` in this process load with `use_extra_bufts = repack`; returns the
    library's own `llama_model_default_params` (to put back)."""
    import llama_cpp.llama_cpp as capi

    original = capi.llama_model_default_params

    def with_repack():
        params = original()
        params.use_extra_bufts = repack
        return params

    capi.llama_model_default_params = with_repack
    return original


def open_llama(model_path: str, repack: bool, flash_attn: int | None = None, **kwargs):
    """`llama_cpp.Llama(model_path, **kwargs)` with repack on or off and flash_attn_type -1/0/1."""
    from llama_cpp import Llama

    with model_params(repack, flash_attn):
        return Llama(model_path=model_path, **kwargs)


def mmap_setting(value: object) -> bool:
    """llama-bench's -mmp: 1/0 (also on/off, true/false)."""
    key = str(value).strip().lower()
    if key in ("1", "on", "true"):
        return True
    if key in ("0", "off", "false"):
        return False
    raise BadParameter(f"use_mmap must be 0 or 1, got {value!r}")


def repack_verdict(model_path: str, file_type: str, n_gpu_layers: int = 0) -> Verdict:
    """Whether llama.cpp's repack path runs this tensor type on this CPU (canary cached per key)."""
    key = {
        "cpu_flags": cpu_flags(),
        "llama_cpp_python": metadata.version("llama_cpp_python"),
        "file_type": file_type or "unknown",
        "gpu_layers": "all" if n_gpu_layers else "none",
    }
    argv = ["-c", f"from engines.llamacpp import canary; canary({model_path!r}, {int(n_gpu_layers)})"]
    return run_canary(REPACK_FAULT.name, key, argv)


def choose_repack(setting: object, model_path: str, file_type: str, n_gpu_layers: int = 0) -> tuple[bool, str]:
    """(repack, why) for a load: 'auto' asks the canary; True/False are the user's explicit choice."""
    if setting in (True, 1, "1", "on", "true"):
        return True, "repack on (asked for)"
    if setting in (False, 0, "0", "off", "false"):
        return False, "repack off (asked for)"
    if setting not in (None, "auto"):
        raise BadParameter(f"repack must be auto, on or off, got {setting!r}")
    verdict = repack_verdict(model_path, file_type, n_gpu_layers)
    if verdict.risky_path_ok:
        return True, f"repack on: {verdict.detail} ({file_type})"
    if verdict.crashed:
        return False, f"repack off: {verdict.detail} for {file_type} on this CPU ({REPACK_FAULT.upstream})"
    return False, f"repack off: {verdict.detail} ({REPACK_FAULT.upstream})"


def canary(model_path: str, n_gpu_layers: int = 0) -> None:
    """The repack canary, run in a child process: load with repack on, decode a batch and single tokens."""
    llm = open_llama(model_path, True, n_ctx=64, n_batch=64, n_gpu_layers=n_gpu_layers, verbose=False)
    bos = llm.token_bos()
    llm.eval([bos if bos >= 0 else 1] + list(range(10, 17)))  # a batch: the GEMM path
    for token in (20, 21, 22):  # single tokens: the GEMV path
        llm.eval([token])
    llm.close()


def perf_counters(ctx) -> dict[str, float]:
    """llama.cpp's prompt/eval counters for a context: ms and token counts."""
    import llama_cpp

    d = llama_cpp.llama_perf_context(ctx)
    return {
        "t_p_eval_ms": float(d.t_p_eval_ms),
        "t_eval_ms": float(d.t_eval_ms),
        "n_p_eval": int(d.n_p_eval),
        "n_eval": int(d.n_eval),
    }


def stats_from_counters(
    counters: dict[str, float], timer: StreamTimer, gen_tokens: int, stop_reason: str
) -> GenerationStats:
    """GenerationStats from llama.cpp counters plus what was measured here (pure)."""
    prompt_s = counters["t_p_eval_ms"] / 1e3
    gen_s = counters["t_eval_ms"] / 1e3
    return GenerationStats(
        ttft_s=timer.ttft_s,
        prompt_tokens=int(counters["n_p_eval"]),
        prompt_s=prompt_s,
        prompt_tps=rate(int(counters["n_p_eval"]), prompt_s),
        gen_tokens=gen_tokens,
        gen_s=gen_s,
        # n_eval counts single-token decodes of generated tokens; their rate is the decode speed.
        gen_tps=rate(int(counters["n_eval"]), gen_s),
        load_s=0.0,
        wall_s=timer.elapsed(),
        peak_rss_bytes=timer.peak_rss,
        stop_reason=stop_reason,
        itl_s=tuple(timer.gaps),
        source=TIMING_SOURCE,
    )


def generated_tokens(counters: dict[str, float], stop_reason: str) -> int:
    """Tokens the user received, from llama.cpp's counters (pure).

    llama.cpp reports n_eval as at least 1 even when nothing was decoded (t_eval_ms == 0). Every
    generated token is decoded except the last sampled one when generation is cut by length or
    cancel; an end-of-sequence token is sampled but is not part of the reply.
    """
    n_eval = int(counters["n_eval"]) if counters["t_eval_ms"] > 0 else 0
    return n_eval if stop_reason == "stop" else n_eval + 1


class LlamaCppEngine(Engine):
    name = "llamacpp"
    label = "llama.cpp (GGUF)"
    formats = ("gguf",)
    modules = ("llama_cpp", "gguf")

    def __init__(self) -> None:
        self.repack: bool | None = None
        """Whether weights were repacked at load (llama-bench's `repack`); None before a load."""
        self.repack_reason = ""
        self._llm = None
        self._lock = threading.Lock()
        self._eos: int | None = None
        self._n_ctx = 0
        self._n_ubatch_asked = 512
        """-ub as given at load (llama-bench's default 512), before clamping to any n_batch."""

    def load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        import time

        config.validate()
        if model.format != "gguf" or not model.path:
            raise InvalidModelFile(f"llama.cpp loads GGUF files; '{model.name}' is {model.format or 'not a file'}")
        meta = read_gguf(model.path)
        if meta.context_length and config.n_ctx > meta.context_length:
            raise BadParameter(
                f"n_ctx {config.n_ctx} exceeds {model.name}'s training context of {meta.context_length} tokens"
            )
        ok, reason = self.availability()
        if not ok:
            raise EngineUnavailable(f"llama.cpp engine unavailable: {reason}")
        repack, self.repack_reason = choose_repack(
            config.option("repack", "auto"), model.path, meta.file_type, config.n_gpu_layers
        )
        self.repack = repack
        fa = flash_attn_type(config.option("flash_attn", "auto"))
        type_k, type_v = kv_type(config.option("type_k", "f16")), kv_type(config.option("type_v", "f16"))
        use_mmap = mmap_setting(config.option("use_mmap", True))
        n_ubatch = int(config.option("n_ubatch", 512))
        if n_ubatch < 1:
            raise BadParameter(f"n_ubatch must be >= 1, got {n_ubatch}")
        self._n_ubatch_asked = n_ubatch  # bench_decode clamps it to each test's own n_batch, as llama.cpp does
        import llama_cpp

        t0 = time.perf_counter()
        try:
            self._llm = open_llama(
                model.path,
                repack,
                fa,
                n_ctx=config.n_ctx,
                n_batch=min(config.n_batch, config.n_ctx),
                n_ubatch=n_ubatch,
                n_threads=config.n_threads,
                n_threads_batch=config.n_threads,
                n_gpu_layers=config.n_gpu_layers,
                use_mmap=use_mmap,
                type_k=getattr(llama_cpp, f"GGML_TYPE_{type_k.upper()}"),
                type_v=getattr(llama_cpp, f"GGML_TYPE_{type_v.upper()}"),
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as err:
            raise InvalidModelFile(f"llama.cpp could not load {model.path}: {err}") from err
        load_s = time.perf_counter() - t0
        # llama.cpp pads small contexts (to 256); the window we promise is the one asked for.
        self._n_ctx = min(config.n_ctx, self._llm.n_ctx())
        self._eos = self._llm.token_eos()
        desc = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self._llm._model.model, desc, len(desc))
        backend = "CPU"
        if config.n_gpu_layers != 0 and llama_cpp.llama_supports_gpu_offload():
            import platform

            backend = "Metal" if platform.system() == "Darwin" else "CUDA"
        self._info = ModelInfo(
            name=model.name,
            engine=self.name,
            path=model.path,
            format="gguf",
            arch=meta.arch,
            n_params=meta.n_params,
            file_type=meta.file_type,
            model_size_bytes=meta.file_size_bytes,
            n_layers=meta.n_layers,
            n_heads=meta.n_heads,
            n_kv_heads=meta.n_kv_heads,
            n_embd=meta.n_embd,
            head_dim=meta.head_dim,
            context_length=meta.context_length,
            n_ctx=config.n_ctx,
            vocab_size=meta.vocab_size,
            chat_template=bool(meta.chat_template) and model.chat,
            backend=backend,
            device="cpu" if backend == "CPU" else backend.lower(),
            dtype=meta.file_type,
            load_s=load_s,
            versions=(("llama-cpp-python", metadata.version("llama_cpp_python")),),
            library_desc=desc.value.decode("utf-8", "replace"),
            settings=(
                ("repack", str(int(repack))),
                ("use_mmap", str(int(use_mmap))),
                ("flash_attn", str(fa)),
                ("n_ubatch", str(min(n_ubatch, config.n_batch))),
                ("type_k", type_k),
                ("type_v", type_v),
            ),
            notes=(self.repack_reason,),
        )
        return self._info

    @property
    def n_threads(self) -> int:
        """Threads llama.cpp decodes with."""
        return int(self._llm.n_threads) if self._llm else 0

    def unload(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
            self._llm = None
            super().unload()

    def tokenize(self, text: str) -> list[int]:
        return self._require().tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def logits(self, tokens, cancel: threading.Event | None = None):
        """Next-token logits at every position: float32 (len(tokens), n_vocab), row i predicting token i+1.

        Decodes the tokens from an empty KV cache in n_batch pieces with an output requested for every
        position (what llama-perplexity does), so the model need not be loaded with logits_all. The
        cache is cleared again afterwards; the streaming path is unaffected.
        """
        import numpy as np

        tokens = [int(t) for t in tokens]
        if not tokens:
            raise BadParameter("logits need at least one token")
        with self._lock:
            llm = self._require()
            if len(tokens) > self._n_ctx:
                raise PromptTooLong(
                    f"{len(tokens)} tokens do not fit the context window of {self._n_ctx} — raise n_ctx"
                )
            n_vocab = llm.n_vocab()
            out = np.empty((len(tokens), n_vocab), dtype=np.float32)
            llm.reset()
            llm._ctx.kv_cache_clear()
            try:
                for start in range(0, len(tokens), llm.n_batch):
                    check_cancel(cancel)
                    piece = tokens[start : start + llm.n_batch]
                    llm._batch.set_batch(piece, n_past=start, logits_all=True)
                    try:
                        llm._ctx.decode(llm._batch)
                    except RuntimeError as err:
                        raise EngineUnavailable(f"llama.cpp could not evaluate the tokens: {err}") from err
                    rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(piece) * n_vocab,))
                    out[start : start + len(piece)] = rows.reshape(len(piece), n_vocab)
            finally:
                llm.reset()
                llm._ctx.kv_cache_clear()
            return out

    def bench_decode(
        self,
        n_prompt: int,
        n_gen: int,
        n_depth: int = 0,
        repetitions: int = 5,
        *,
        n_batch: int | None = None,
        n_ubatch: int | None = None,
        flash_attn: object = None,
        type_k: str | None = None,
        type_v: str | None = None,
        n_threads: int | None = None,
        warmup: bool = True,
        seed: int = 0,
        cancel: threading.Event | None = None,
    ) -> DecodeBench:
        """llama-bench's pp/tg/pg test at KV depth `n_depth`: raw nanoseconds per repetition.

        Times `llama_decode` only, on synthetic token ids (the same trace for the same seed), in a
        fresh context with llama-bench's parameters; settings left None are the loaded ones. Picklable
        arguments and result, so it runs unchanged through a worker (engines.llamacpp_bench); `cancel`
        stops it within one decode batch (Cancelled).
        """
        with self._lock:
            llm = self._require()
            loaded = dict(self._info.settings)
            batch = n_batch or llm.n_batch
            # not the loaded context's n_ubatch: that one is clamped to the load's n_batch (a sweep's or a
            # -b list's first value), and a later test with a larger n_batch would inherit it
            return llamacpp_bench.bench_decode(
                llm,
                n_prompt,
                n_gen,
                n_depth,
                repetitions,
                n_batch=batch,
                n_ubatch=n_ubatch or min(self._n_ubatch_asked, batch),
                n_threads=n_threads or self.n_threads,
                flash_attn=loaded["flash_attn"] if flash_attn is None else flash_attn,
                type_k=type_k or loaded["type_k"],
                type_v=type_v or loaded["type_v"],
                warmup=warmup,
                seed=seed,
                cancel=cancel,
            )

    def synthetic_prompt(self, n_tokens: int, seed: int = 0) -> Prompt:
        """Random token ids, like llama-bench (BOS first when the model uses one)."""
        llm = self._require()
        return random_tokens(n_tokens, llm.n_vocab(), {llm.token_eos(), llm.token_bos()}, seed)

    def _require(self):
        if self._llm is None:
            raise BadParameter("llama.cpp: no model is loaded")
        return self._llm

    def _tokens_for(self, prompt: Prompt) -> list[int]:
        """Token ids: raw ids as given, chat through the model's template, else plain text with BOS."""
        llm = self._require()
        if is_token_prompt(prompt):
            return list(prompt)
        if is_chat_prompt(prompt) or (self._info and self._info.chat_template):
            text = self._format_chat(as_messages(prompt))
            return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return llm.tokenize(str(prompt).encode("utf-8"), add_bos=True, special=False)

    def _format_chat(self, messages: list[dict]) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self._require()
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BadParameter(f"{self._info.name} has no chat template — use plain completion")
        eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
        bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        return formatter(messages=messages).prompt

    def _stream_locked(self, prompt, params, cancel) -> Iterator[Chunk]:
        import llama_cpp

        llm = self._require()
        tokens = self._tokens_for(prompt)
        max_tokens = room_for_generation(len(tokens), self._n_ctx, params.max_tokens)
        logit_bias = {self._eos: -math.inf} if params.ignore_eos and self._eos is not None else None
        llm.reset()  # no prefix reuse: every request processes its whole prompt
        llama_cpp.llama_perf_context_reset(llm.ctx)
        timer = StreamTimer()
        stop_reason = "stop"
        stream = llm.create_completion(
            tokens,
            max_tokens=max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            seed=params.seed,
            stop=list(params.stop) or None,
            logit_bias=logit_bias,
            stream=True,
        )
        try:
            for part in stream:
                choice = part["choices"][0]
                text = choice.get("text") or ""
                if text:
                    yield Chunk(text=text, t_s=timer.tick())
                if choice.get("finish_reason"):
                    stop_reason = choice["finish_reason"]
                if cancel is not None and cancel.is_set():
                    stop_reason = "cancelled"
                    break
        finally:
            stream.close()
        counters = perf_counters(llm.ctx)
        timer.finish()
        yield Chunk(
            text="",
            t_s=timer.elapsed(),
            n_tokens=0,
            stats=stats_from_counters(counters, timer, generated_tokens(counters, stop_reason), stop_reason),
        )
