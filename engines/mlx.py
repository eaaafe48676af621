"""MLX engine: MLX-format models through mlx-lm (`load`, `stream_generate`) on Metal, CUDA or the CPU.

Statistics come straight from mlx-lm's own `GenerationResponse` of the last token: prompt_tokens,
prompt_tps, generation_tokens, generation_tps, peak_memory (GB) and finish_reason — the figures
`mlx_lm.generate --verbose` prints. Prompt and generation seconds are derived from them (tokens / t/s).
TTFT and the gaps between tokens are measured here, and the OS's RSS is reported beside MLX's peak,
because `mx.get_peak_memory()` can badly under-report the process footprint (ml-explore/mlx #3896).
`LoadConfig.memory_limit_bytes` caps MLX's allocator (`mx.set_memory_limit`, and the Metal wired limit).

Runs with `mlx` on macOS (Metal), `mlx[cpu]` on Linux and `mlx[cuda]` on NVIDIA. A bundled GGUF name
converts on first use (models.convert, cached): to 4-bit where a GPU runs MLX, to bf16 on the CPU,
where MLX's quantized kernels are slow (~1.3 t/s here); '<model>@mlx-4bit|8bit|bf16' picks one.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path

from core.errors import BadParameter, EngineUnavailable, InvalidModelFile, LocalbenchError
from engines.base import (
    Chunk,
    Engine,
    GenerationParams,
    GenerationStats,
    LoadConfig,
    ModelInfo,
    StreamTimer,
    check_cancel,
    room_for_generation,
)
from engines.memory_check import check_weights_fit, library_error
from engines.prompts import Prompt, StopBuffer, check_logits_input, hf_prompt_tokens, random_tokens
from models import catalog, convert, converted, hf_folder
from models.ref import ModelRef

TIMING_SOURCE = "mlx-lm GenerationResponse (prompt_tps, generation_tps); TTFT measured here"
LOGITS_CHUNK = 256
"""Tokens per forward pass in logits(): bounds memory and lets a cancel stop between chunks."""


def response_stats(response, timer: StreamTimer, stop_reason: str) -> GenerationStats:
    """GenerationStats from mlx-lm's last GenerationResponse plus what was measured here (pure).

    prompt_s and gen_s are derived (tokens / t/s); t/s figures are mlx-lm's own, unchanged.
    """
    prompt_tps = float(response.prompt_tps)
    gen_tps = float(response.generation_tps)
    return GenerationStats(
        ttft_s=timer.ttft_s,
        prompt_tokens=int(response.prompt_tokens),
        prompt_s=response.prompt_tokens / prompt_tps if prompt_tps > 0 else 0.0,
        prompt_tps=prompt_tps,
        gen_tokens=int(response.generation_tokens),
        gen_s=response.generation_tokens / gen_tps if gen_tps > 0 else 0.0,
        gen_tps=gen_tps,
        load_s=0.0,
        wall_s=timer.elapsed(),
        peak_rss_bytes=timer.peak_rss,
        stop_reason=stop_reason,
        peak_device_bytes=int(float(response.peak_memory) * 1e9),
        itl_s=tuple(timer.gaps),
        source=TIMING_SOURCE,
    )


def as_localbench_error(err: BaseException, what: str) -> LocalbenchError:
    """An MLX exception as one actionable message (out of memory: a smaller variant or a shorter prompt)."""
    return library_error(
        err, what, "MLX", "use a smaller variant (@mlx-4bit), a shorter prompt, or raise the memory limit"
    )


def _metal_working_set() -> tuple[int, str]:
    import mlx.core as mx

    return int(mx.device_info()["max_recommended_working_set_size"]), "Metal's working set"


def _generate_module():
    # `mlx_lm.generate` the attribute is the function; the module lives in sys.modules.
    return importlib.import_module("mlx_lm.generate")


class MlxEngine(Engine):
    name = "mlx"
    label = "MLX (mlx-lm)"
    formats = ("mlx", "hf")
    modules = ("mlx", "mlx_lm")

    def __init__(self) -> None:
        self._model = None
        self._tokenizer = None
        self._stream = None
        self._device = "cpu"
        self._n_ctx = 0
        self._old_limits: tuple[int | None, int | None] = (None, None)
        self._lock = threading.Lock()

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        ok, reason = super().availability()
        if not ok:
            return False, reason + " — on Linux: pip install 'mlx[cpu]' (or 'mlx[cuda]'), on macOS: pip install mlx"
        return ok, reason

    # --- catalog ------------------------------------------------------------------------------------

    def resolve(self, model: str) -> ModelRef:
        """An MLX folder for `model`; bundled GGUF names convert on first use (4-bit on a GPU, bf16 on CPU)."""
        return convert.resolve_for_engine("mlx", model, self.default_variant())

    @staticmethod
    def default_variant() -> str:
        """'mlx-4bit' where MLX has a GPU here, else 'mlx-bf16' (MLX's CPU quantized kernels are slow)."""
        from machine import devices
        from machine.detect import detect_hardware

        choice = devices.mlx_device(detect_hardware(), None, devices.live_facts("mlx"))
        return "mlx-bf16" if choice.device == "cpu" else "mlx-4bit"

    def list_models(self, config: LoadConfig | None = None) -> list[str]:
        return catalog.engine_model_names("mlx")

    # --- load ---------------------------------------------------------------------------------------

    def load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        from machine import devices
        from machine.detect import detect_hardware

        config.validate()
        ok, reason = self.availability()
        if not ok:
            raise EngineUnavailable(f"MLX engine unavailable: {reason}")
        if model.format not in self.formats or not model.path:
            raise InvalidModelFile(f"the MLX engine loads MLX or HF folders; '{model.name}' is {model.format}")
        if config.dtype is not None:
            raise BadParameter(
                f"MLX models carry their own precision — pick a variant (e.g. {model.name.split('@')[0]}@mlx-bf16, "
                "@mlx-8bit, @mlx-4bit) instead of --dtype"
            )
        hf_config = hf_folder.read_hf_config(model.path)
        hf_folder.mlx_model_type(hf_config)
        choice = devices.mlx_device(detect_hardware(), config.device, devices.live_facts("mlx"))
        text_cfg = hf_config.get("text_config") or hf_config
        context_length = text_cfg.get("max_position_embeddings")
        if context_length and config.n_ctx > context_length:
            raise BadParameter(
                f"n_ctx {config.n_ctx} exceeds {model.name}'s training context of {context_length} tokens"
            )
        weights_bytes = sum(p.stat().st_size for p in Path(model.path).glob("*.safetensors"))
        way_out = "choose a smaller variant (@mlx-4bit)"
        metal = _metal_working_set if choice.device == "metal" else None
        check_weights_fit(model.name, weights_bytes, config, "MLX", way_out, metal)

        import mlx.core as mx
        from mlx_lm import load as mlx_load

        device = mx.cpu if choice.device == "cpu" else mx.gpu
        new_stream = getattr(mx, "new_thread_local_stream", mx.new_stream)
        self._stream = new_stream(device)
        self._old_limits = self._apply_memory_limit(config.memory_limit_bytes, choice.device)
        t0 = time.perf_counter()
        try:
            with mx.stream(self._stream):
                # transformers-5 folders keep RoPE under rope_parameters, which mlx-lm does not read
                net, tokenizer = mlx_load(model.path, model_config=hf_folder.legacy_rope_keys(hf_config) or None)
        except (ValueError, KeyError, OSError, FileNotFoundError) as err:
            self._restore_limits()
            raise InvalidModelFile(f"mlx-lm could not load {model.path}: {str(err).splitlines()[0]}") from err
        except (RuntimeError, MemoryError) as err:
            self._restore_limits()
            raise as_localbench_error(err, f"loading {model.name}") from err
        load_s = time.perf_counter() - t0
        self._model, self._tokenizer = net, tokenizer
        self._device, self._n_ctx = choice.device, config.n_ctx
        quant = hf_config.get("quantization") or {}
        manifest = converted.read_manifest(Path(model.path)) or {}
        from mlx_lm.utils import get_total_parameters

        n_params = int(manifest.get("n_params") or get_total_parameters(net))
        n_heads = text_cfg.get("num_attention_heads")
        self._info = ModelInfo(
            name=model.name,
            engine=self.name,
            path=model.path,
            format=model.format,
            arch=hf_config.get("model_type", ""),
            n_params=n_params,
            file_type=f"{quant['bits']}bit" if quant.get("bits") else "bf16",
            model_size_bytes=weights_bytes,
            n_layers=text_cfg.get("num_hidden_layers"),
            n_heads=n_heads,
            n_kv_heads=text_cfg.get("num_key_value_heads", n_heads),
            n_embd=text_cfg.get("hidden_size"),
            head_dim=text_cfg.get("head_dim") or (text_cfg["hidden_size"] // n_heads if n_heads else None),
            context_length=context_length,
            n_ctx=config.n_ctx,
            vocab_size=text_cfg.get("vocab_size"),
            chat_template=bool(getattr(tokenizer, "has_chat_template", False)) and model.chat,
            backend=choice.backend,
            device=choice.device,
            dtype=f"{quant['bits']}bit g{quant.get('group_size')}" if quant.get("bits") else "bf16",
            load_s=load_s,
            versions=(("mlx", metadata.version("mlx")), ("mlx-lm", metadata.version("mlx-lm"))),
        )
        self.device_reason = choice.reason
        return self._info

    @staticmethod
    def _apply_memory_limit(limit: int | None, device: str) -> tuple[int | None, int | None]:
        """Cap MLX's allocator (and the Metal wired limit); returns the previous limits."""
        if limit is None:
            return None, None
        import mlx.core as mx

        old_memory = mx.set_memory_limit(int(limit))
        old_wired = None
        if device == "metal":
            cap = min(int(limit), int(mx.device_info()["max_recommended_working_set_size"]))
            old_wired = mx.set_wired_limit(cap)
        return old_memory, old_wired

    def _restore_limits(self) -> None:
        old_memory, old_wired = self._old_limits
        if old_memory is None and old_wired is None:
            return
        import mlx.core as mx

        if old_memory is not None:
            mx.set_memory_limit(old_memory)
        if old_wired is not None:
            mx.set_wired_limit(old_wired)
        self._old_limits = (None, None)

    def unload(self) -> None:
        with self._lock:
            if self._model is not None:
                import gc

                import mlx.core as mx

                self._model = None
                self._tokenizer = None
                gc.collect()
                mx.clear_cache()
                self._restore_limits()
            super().unload()

    def _require(self):
        if self._model is None:
            raise BadParameter("mlx: no model is loaded")
        return self._model, self._tokenizer

    # --- tokens -------------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        _, tok = self._require()
        return list(tok.encode(text, add_special_tokens=False))

    def synthetic_prompt(self, n_tokens: int, seed: int = 0) -> Prompt:
        """Random token ids (special tokens excluded), as mlx_lm.benchmark draws its prompts."""
        _, tok = self._require()
        return random_tokens(
            n_tokens, self.info().vocab_size or len(tok.vocab), set(tok.all_special_ids) | set(tok.eos_token_ids), seed
        )

    def _tokens_for(self, prompt: Prompt) -> list[int]:
        _, tok = self._require()
        return hf_prompt_tokens(tok, prompt, self._info.name, self._info.chat_template)

    def logits(self, tokens: Sequence[int], cancel: threading.Event | None = None):
        """float32 (len(tokens), n_vocab); row i predicts token i+1. Runs in chunks with a KV cache."""
        import mlx.core as mx
        import numpy as np
        from mlx_lm.models.cache import make_prompt_cache

        net, _ = self._require()
        tokens = check_logits_input(tokens, self._info.name, self._info.context_length)
        rows = []
        with self._lock, mx.stream(self._stream):
            cache = make_prompt_cache(net)
            try:
                for start in range(0, len(tokens), LOGITS_CHUNK):
                    check_cancel(cancel)
                    out = net(mx.array([tokens[start : start + LOGITS_CHUNK]]), cache=cache)
                    rows.append(np.array(out[0].astype(mx.float32)))
                return np.concatenate(rows).astype(np.float32, copy=False)
            except (RuntimeError, MemoryError) as err:
                raise as_localbench_error(err, "computing logits") from err

    # --- generation ---------------------------------------------------------------------------------

    def _stream_locked(self, prompt: Prompt, params: GenerationParams, cancel) -> Iterator[Chunk]:
        import mlx.core as mx
        from mlx_lm.sample_utils import make_sampler

        net, tok = self._require()
        timer = StreamTimer()
        tokens = self._tokens_for(prompt)
        max_tokens = room_for_generation(len(tokens), self._n_ctx, params.max_tokens)
        if params.temperature > 0:
            mx.random.seed(params.seed)
        sampler = make_sampler(
            temp=params.temperature, top_p=params.top_p if params.top_p < 1.0 else 0.0, top_k=params.top_k
        )
        saved_eos = set(tok.eos_token_ids)
        if params.ignore_eos:
            tok.eos_token_ids = ()  # as mlx_lm.benchmark does: force the generation length
        mx.reset_peak_memory()
        last, stop_reason, reply = None, "length", StopBuffer(params.stop)
        responses = _generate_module().stream_generate(
            net, tok, tokens, max_tokens=max_tokens, sampler=sampler, stream=self._stream
        )
        try:
            for response in responses:
                last = response
                t = timer.tick()
                if response.finish_reason:
                    stop_reason = response.finish_reason
                text = reply.add(response.text, final=bool(response.finish_reason))
                if reply.stopped:
                    stop_reason = "stop"
                if text:
                    yield Chunk(text=text, t_s=t)
                if reply.stopped:
                    break
                if cancel is not None and cancel.is_set():
                    stop_reason = "cancelled"
                    break
        except (RuntimeError, MemoryError, ValueError) as err:
            raise as_localbench_error(err, "generating") from err
        finally:
            _close(responses)
            tok.eos_token_ids = saved_eos
        timer.finish()
        if last is None:
            raise EngineUnavailable("mlx-lm produced no token for this prompt")
        yield Chunk(text="", t_s=timer.elapsed(), n_tokens=0, stats=response_stats(last, timer, stop_reason))


def _close(responses) -> None:
    """Close mlx-lm's generator, on whichever thread stops the stream.

    mlx-lm's generate_step keeps `with mx.stream(...)` open across its yields, and MLX's StreamContext
    raises "[StreamContext] Destroyed in a different thread" when a generator left midway (Stop, a stop
    string, cancel) is closed on another thread than the one that resumed it first. In the app this
    cannot happen: every request runs on its worker's one serving thread. An in-process caller that
    resumes a stream from a thread pool (as Gradio did before engines ran in workers) still can; the
    context's only remaining job there is to restore the first thread's default stream, which no
    other thread can do, so that one error is dropped here instead of surfacing as a traceback.
    """
    try:
        responses.close()
    except RuntimeError as err:
        if "different thread" not in str(err):
            raise
