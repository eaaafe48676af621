"""llama-bench's own method on a loaded llama.cpp model: `llama_decode` on synthetic tokens, nothing else.

For each test a fresh context is made from the loaded model with llama-bench's context parameters
(n_ctx = n_prompt + n_gen + n_depth, n_batch, n_ubatch, type_k/type_v, flash_attn_type) and a ggml
threadpool attached, as llama-bench does; the KV cache is prefilled to `n_depth` tokens (once, then
restored from a saved sequence state, as llama-bench caches it), one warm-up runs, and each of r
repetitions times pp (batches of n_batch tokens, output only for the last) and/or tg (one token per
decode, no sampling) on the wall clock around the decodes. Raw nanoseconds are returned in a
picklable record, so the call works unchanged through a worker process. A `cancel` event is looked at
before every n_batch chunk and every CANCEL_EVERY generated tokens (a flag read between decodes), so a
run stops within one decode batch and raises Cancelled. The streaming path (engines.llamacpp) is
untouched by this module; the model weights are shared.
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from dataclasses import dataclass

from core.errors import BadParameter, EngineUnavailable

KV_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
"""Cache types llama-bench's -ctk/-ctv accept (ggml type names)."""

FLASH_ATTN = {"auto": -1, "-1": -1, "on": 1, "1": 1, "off": 0, "0": 0}
"""llama-bench's -fa values to llama_flash_attn_type (-1 auto, 0 disabled, 1 enabled)."""

CANCEL_EVERY = 16
"""tg tokens decoded between two looks at the cancel event."""

THREADPOOL_POLL = 50
"""llama-bench's default --poll (0 no polling .. 100 aggressive)."""

METHOD = "llama-bench"
TIMING_SOURCE = "wall clock around llama_decode only (llama-bench's method)"


def flash_attn_type(value: object) -> int:
    """-1/0/1 for 'auto'/'off'/'on' (also -1, 0, 1 and their strings); BadParameter otherwise."""
    key = str(value).strip().lower()
    if key not in FLASH_ATTN:
        raise BadParameter(f"flash_attn must be auto, on or off (or -1, 1, 0), got {value!r}")
    return FLASH_ATTN[key]


def kv_type(name: object) -> str:
    """A ggml cache type name llama-bench accepts; BadParameter otherwise."""
    key = str(name).strip().lower()
    if key not in KV_TYPES:
        raise BadParameter(f"unknown KV cache type {name!r}: use one of {', '.join(KV_TYPES)}")
    return key


@dataclass(frozen=True)
class DecodeBench:
    """One llama-bench test on llama.cpp: raw samples and every setting that produced them."""

    n_prompt: int
    n_gen: int
    n_depth: int
    samples_ns: tuple[int, ...]
    """Timed duration of each repetition (pp and/or tg decodes only), nanoseconds."""
    kv_pos_start: tuple[int, ...]
    """KV position where each timed repetition began (= n_depth: the prefilled cells)."""
    kv_pos_end: tuple[int, ...]
    """KV position after each repetition (n_depth + n_prompt + n_gen)."""
    n_batch: int
    n_ubatch: int
    n_threads: int
    flash_attn: int
    """llama_flash_attn_type asked for: -1 auto, 0 off, 1 on (llama-bench prints the same)."""
    type_k: str
    type_v: str
    n_ctx: int
    """Context made for the test: n_prompt + n_gen + n_depth, as llama-bench."""
    warmup_runs: int
    threadpool: bool
    """Whether a ggml threadpool (poll 50) was attached, as llama-bench does."""
    depth_prefill_ns: int
    """Time of the one untimed KV prefill to n_depth tokens (0 at depth 0)."""
    peak_rss_bytes: int
    """Highest resident memory of the process read after the warm-up and after each repetition, while the
    test's context (weights plus its KV cache) is alive; outside the timed window, bytes."""
    seed: int


class _Threadpool:
    """ggml_threadpool_new/free through ctypes (llama-cpp-python binds neither).

    The symbols are looked up through llama-cpp-python's own libllama handle, whose scope holds the libggml-base
    and libggml-cpu it loaded: opening those libraries again by path would map a second copy of ggml into the
    process (the wheel ships libggml-cpu.so and libggml-cpu.so.0 as separate files), and with
    LLAMA_CPP_LIB_PATH (another build) a ggml from another build.
    """

    def __init__(self, n_threads: int) -> None:
        import llama_cpp.llama_cpp as capi

        lib = capi._lib

        class Params(ctypes.Structure):
            _fields_ = [
                ("cpumask", ctypes.c_bool * 512),
                ("n_threads", ctypes.c_int),
                ("prio", ctypes.c_int),
                ("poll", ctypes.c_uint32),
                ("strict_cpu", ctypes.c_bool),
                ("paused", ctypes.c_bool),
            ]

        lib.ggml_threadpool_params_init.argtypes = [ctypes.POINTER(Params), ctypes.c_int]
        lib.ggml_threadpool_params_init.restype = None
        lib.ggml_threadpool_new.argtypes = [ctypes.POINTER(Params)]
        lib.ggml_threadpool_new.restype = ctypes.c_void_p
        lib.ggml_threadpool_free.argtypes = [ctypes.c_void_p]
        lib.ggml_threadpool_free.restype = None
        lib.llama_attach_threadpool.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.llama_attach_threadpool.restype = None
        params = Params()
        lib.ggml_threadpool_params_init(ctypes.byref(params), n_threads)
        params.poll = THREADPOOL_POLL
        self._lib = lib
        self.handle = lib.ggml_threadpool_new(ctypes.byref(params))

    def attach(self, ctx) -> bool:
        if not self.handle:
            return False
        self._lib.llama_attach_threadpool(ctx, self.handle, self.handle)
        return True

    def free(self) -> None:
        if self.handle:
            self._lib.ggml_threadpool_free(self.handle)
            self.handle = None


def _rng_tokens(rng, n: int, n_vocab: int, bos: int | None) -> list[int]:
    tokens = [int(t) for t in rng.integers(0, n_vocab, size=n)]
    if bos is not None and tokens:
        tokens[0] = bos
    return tokens


def bench_decode(
    llm,
    n_prompt: int,
    n_gen: int,
    n_depth: int = 0,
    repetitions: int = 5,
    *,
    n_batch: int = 2048,
    n_ubatch: int = 512,
    n_threads: int,
    flash_attn: object = "auto",
    type_k: str = "f16",
    type_v: str = "f16",
    warmup: bool = True,
    seed: int = 0,
    cancel=None,
) -> DecodeBench:
    """llama-bench's test loop on `llm` (a llama_cpp.Llama); see the module docstring. `cancel`: a
    threading.Event (or None); once set, the run raises Cancelled at its next look (no partial record)."""
    import llama_cpp
    import numpy as np

    from engines.base import check_cancel, current_rss_bytes

    fa = flash_attn_type(flash_attn)
    tk, tv = kv_type(type_k), kv_type(type_v)
    for label, value in (("n_prompt", n_prompt), ("n_gen", n_gen), ("n_depth", n_depth)):
        if not isinstance(value, int) or value < 0:
            raise BadParameter(f"{label} must be an integer >= 0, got {value!r}")
    if n_prompt + n_gen == 0:
        raise BadParameter("nothing to time: n_prompt and n_gen are both 0")
    if not 1 <= repetitions <= 1000:
        raise BadParameter(f"repetitions must be between 1 and 1000, got {repetitions}")
    if n_batch < 1 or n_ubatch < 1:
        raise BadParameter(f"n_batch and n_ubatch must be >= 1, got {n_batch}, {n_ubatch}")
    n_ctx = n_prompt + n_gen + n_depth
    train_ctx = llm._model.n_ctx_train()
    if train_ctx and n_ctx > train_ctx:
        raise BadParameter(
            f"depth {n_depth} + pp {n_prompt} + tg {n_gen} = {n_ctx} tokens exceeds the model's "
            f"training context of {train_ctx}"
        )

    model = llm._model.model
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None

    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = n_ctx
    cparams.n_batch = n_batch
    cparams.n_ubatch = n_ubatch
    cparams.n_threads = n_threads
    cparams.n_threads_batch = n_threads
    cparams.type_k = getattr(llama_cpp, f"GGML_TYPE_{tk.upper()}")
    cparams.type_v = getattr(llama_cpp, f"GGML_TYPE_{tv.upper()}")
    cparams.flash_attn_type = fa
    cparams.offload_kqv = True
    cparams.embeddings = False
    cparams.op_offload = True
    cparams.swa_full = False
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        raise BadParameter(
            f"llama.cpp could not make a context with flash_attn {fa}, type_k {tk}, type_v {tv}, "
            f"n_ubatch {n_ubatch} (a quantized V cache needs flash attention)"
        )
    pool = None
    with contextlib.ExitStack() as stack:
        stack.callback(llama_cpp.llama_free, ctx)
        try:
            pool = _Threadpool(n_threads)
            stack.callback(pool.free)
            attached = pool.attach(ctx)
        except (OSError, AttributeError):
            attached = False  # no threadpool symbols: ggml makes one per graph, slower for tg
        llama_cpp.llama_set_n_threads(ctx, n_threads, n_threads)
        mem = llama_cpp.llama_get_memory(ctx)
        rng = np.random.default_rng(seed)
        buf = (llama_cpp.llama_token * max(n_batch, 1))()

        def decode(tokens: list[int]) -> None:
            for start in range(0, len(tokens), n_batch):
                check_cancel(cancel)
                piece = tokens[start : start + n_batch]
                for i, t in enumerate(piece):
                    buf[i] = t
                rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(buf, len(piece)))
                if rc != 0:
                    raise EngineUnavailable(f"llama_decode failed with {rc} at {len(tokens)} tokens")
            llama_cpp.llama_synchronize(ctx)

        def prompt(n: int) -> None:  # llama-bench's test_prompt: BOS first, then random ids
            decode(_rng_tokens(rng, n, n_vocab, bos))

        one = llama_cpp.llama_batch_get_one(buf, 1)  # a view of buf[0]: reused for every generated token

        def gen(n: int) -> None:  # llama-bench's test_gen: one token per decode, synchronized
            # All ids are drawn in one call before the loop (the same draws, in the same order, as one per
            # token), so the loop does only what llama-bench's does: set the token, decode, synchronize.
            draws = [int(t) for t in rng.integers(0, n_vocab, size=n if bos is not None else n + 1)]
            tokens = ([bos] + draws)[:n] if bos is not None else draws[:n]
            llama_decode, synchronize = llama_cpp.llama_decode, llama_cpp.llama_synchronize
            for start in range(0, len(tokens), CANCEL_EVERY):
                check_cancel(cancel)
                for token in tokens[start : start + CANCEL_EVERY]:
                    buf[0] = token
                    rc = llama_decode(ctx, one)
                    if rc != 0:
                        raise EngineUnavailable(f"llama_decode failed with {rc} generating one token")
                    synchronize(ctx)

        def pos() -> int:
            return int(llama_cpp.llama_memory_seq_pos_max(mem, 0)) + 1

        if warmup:
            if n_prompt:
                prompt(n_prompt)
            if n_gen:
                gen(1)
        peak_rss = current_rss_bytes()
        samples, starts, ends = [], [], []
        state = None
        prefill_ns = 0
        for _ in range(repetitions):
            check_cancel(cancel)
            llama_cpp.llama_memory_clear(mem, False)
            if n_depth:
                restored = state is not None and llama_cpp.llama_state_seq_set_data(ctx, state, len(state), 0) != 0
                if not restored:
                    t0 = time.perf_counter_ns()
                    prompt(n_depth)
                    prefill_ns = time.perf_counter_ns() - t0
                    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
                    state = (ctypes.c_uint8 * size)()
                    llama_cpp.llama_state_seq_get_data(ctx, state, size, 0)
            starts.append(pos())
            t0 = time.perf_counter_ns()
            if n_prompt:
                prompt(n_prompt)
            if n_gen:
                gen(n_gen)
            samples.append(time.perf_counter_ns() - t0)
            ends.append(pos())
            peak_rss = max(peak_rss, current_rss_bytes())
    return DecodeBench(
        n_prompt=n_prompt,
        n_gen=n_gen,
        n_depth=n_depth,
        samples_ns=tuple(samples),
        kv_pos_start=tuple(starts),
        kv_pos_end=tuple(ends),
        n_batch=n_batch,
        n_ubatch=n_ubatch,
        n_threads=n_threads,
        flash_attn=fa,
        type_k=tk,
        type_v=tv,
        n_ctx=n_ctx,
        warmup_runs=int(warmup),
        threadpool=attached,
        depth_prefill_ns=prefill_ns,
        peak_rss_bytes=peak_rss,
        seed=seed,
    )
