"""PyTorch engine: Hugging Face safetensors models through transformers' AutoModelForCausalLM, on MPS,
CUDA or the CPU, in fp32, fp16 or bf16.

Generation is a decode loop in the caller's thread over the model's own forward pass and KV cache:
one pass over the prompt, then one per token, greedy or through transformers' temperature / top-k /
top-p warpers. Each token is streamed as soon as it reaches the host, decoded incrementally; this loop
keeps pace with a bare `generate()` call (benchmarks/gpu_bench.py, docs/engines.md). Times come from this process's
clock after each token's device sync: prompt time is the prompt pass plus the first token, generation
t/s is (tokens − 1) / (last token time − first token time), TTFT is measured from the request's start.
Peak memory is the device's own counter (`torch.cuda.max_memory_allocated`,
`torch.mps.current_allocated_memory`) alongside the OS RSS.

A bundled GGUF name (smollm2-135m) is converted to HF safetensors on first use (models.convert,
cached); '<model>@hf-bf16' names that conversion.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from importlib import metadata

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
    current_rss_bytes,
    rate,
    room_for_generation,
)
from engines.memory_check import check_weights_fit, library_error
from engines.prompts import Prompt, StopBuffer, check_logits_input, hf_prompt_tokens, random_tokens
from models import catalog, convert, hf_folder
from models.ref import ModelRef

TIMING_SOURCE = (
    "per-token host times in the decode loop (this process, after each token's device sync); prompt time = "
    "prompt forward pass + first token"
)
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
LOGITS_CHUNK = 512
"""Tokens per forward pass in logits(): bounds memory and lets a cancel stop between chunks."""


def as_localbench_error(err: BaseException, what: str) -> LocalbenchError:
    """A torch exception as one actionable message (out of memory: a smaller dtype, a shorter prompt, the CPU)."""
    return library_error(err, what, "torch", "use a smaller dtype (bf16), a shorter prompt or context, or the CPU")


class Detokenizer:
    """Incremental decoding: the text each new token adds, held back while it is an incomplete character.

    Decodes a short window (the previous step's tokens plus the new ones), so a leading space that a
    SentencePiece tokenizer drops at the start of a decode is kept (vLLM's method).
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, ids: Sequence[int], final: bool = False) -> str:
        self.ids.extend(ids)
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""


class TorchEngine(Engine):
    name = "torch"
    label = "PyTorch (transformers)"
    formats = ("hf",)
    modules = ("torch", "transformers")

    def __init__(self) -> None:
        self._model = None
        self._tokenizer = None
        self._device = "cpu"
        self._dtype = "bf16"
        self._n_ctx = 0
        self._eos: set[int] = set()
        self._lock = threading.Lock()

    # --- catalog ------------------------------------------------------------------------------------

    def resolve(self, model: str) -> ModelRef:
        """A HF folder for `model`; bundled GGUF names are converted on first use (cached)."""
        return convert.resolve_for_engine("torch", model, "hf-bf16")

    def list_models(self, config: LoadConfig | None = None) -> list[str]:
        return catalog.engine_model_names("torch")

    # --- load ---------------------------------------------------------------------------------------

    def load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        from machine import devices
        from machine.detect import detect_hardware

        config.validate()
        ok, reason = self.availability()
        if not ok:
            raise EngineUnavailable(f"PyTorch engine unavailable: {reason}")
        if model.format != "hf" or not model.path:
            raise InvalidModelFile(f"the torch engine loads Hugging Face folders; '{model.name}' is {model.format}")
        hf_config = hf_folder.read_hf_config(model.path)
        hf_folder.check_torch_architecture(hf_config)
        choice = devices.torch_device(detect_hardware(), config.device, config.dtype, devices.live_facts("torch"))
        context_length = _text_config(hf_config).get("max_position_embeddings")
        if context_length and config.n_ctx > context_length:
            raise BadParameter(
                f"n_ctx {config.n_ctx} exceeds {model.name}'s training context of {context_length} tokens"
            )
        n_elements, _ = hf_folder.safetensors_elements(model.path)
        weights = n_elements * DTYPE_BYTES[choice.dtype]
        way_out = "choose a smaller dtype or model"
        cuda = _cuda_free if choice.device == "cuda" else None
        check_weights_fit(f"{model.name} in {choice.dtype}", weights, config, "PyTorch", way_out, cuda)

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if choice.device == "cpu" and config.n_threads:
            torch.set_num_threads(config.n_threads)
        torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[choice.dtype]
        import transformers

        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()  # its "Loading weights" bar would garble the CLI's
        t0 = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(model.path)
            net = AutoModelForCausalLM.from_pretrained(model.path, dtype=torch_dtype)
            net = net.to(choice.device).eval()
            if choice.device == "cuda":
                torch.cuda.synchronize()
        except LocalbenchError:
            raise
        except (ValueError, KeyError, OSError) as err:
            raise InvalidModelFile(f"transformers could not load {model.path}: {str(err).splitlines()[0]}") from err
        except (RuntimeError, MemoryError, NotImplementedError) as err:
            raise as_localbench_error(err, f"loading {model.name}") from err
        finally:
            if bars:
                transformers.utils.logging.enable_progress_bar()
        load_s = time.perf_counter() - t0
        self._model, self._tokenizer = net, tokenizer
        self._device, self._dtype = choice.device, choice.dtype
        self._n_ctx = config.n_ctx
        self._eos = _eos_ids(net, tokenizer)
        text_cfg = _text_config(hf_config)
        n_params = int(net.num_parameters())
        n_heads = text_cfg.get("num_attention_heads")
        self._info = ModelInfo(
            name=model.name,
            engine=self.name,
            path=model.path,
            format="hf",
            arch=hf_config.get("model_type", ""),
            n_params=n_params,
            file_type=choice.dtype,
            model_size_bytes=n_params * DTYPE_BYTES[choice.dtype],
            n_layers=text_cfg.get("num_hidden_layers"),
            n_heads=n_heads,
            n_kv_heads=text_cfg.get("num_key_value_heads", n_heads),
            n_embd=text_cfg.get("hidden_size"),
            head_dim=text_cfg.get("head_dim") or (text_cfg["hidden_size"] // n_heads if n_heads else None),
            context_length=context_length,
            n_ctx=config.n_ctx,
            vocab_size=text_cfg.get("vocab_size"),
            chat_template=bool(getattr(tokenizer, "chat_template", None)) and model.chat,
            backend=choice.backend,
            device=choice.device,
            dtype=choice.dtype,
            load_s=load_s,
            versions=(("torch", metadata.version("torch")), ("transformers", metadata.version("transformers"))),
        )
        self.device_reason = choice.reason
        return self._info

    def unload(self) -> None:
        with self._lock:
            if self._model is not None:
                import gc

                import torch

                self._model = None
                self._tokenizer = None
                gc.collect()
                if self._device == "cuda":
                    torch.cuda.empty_cache()
                elif self._device == "mps":
                    torch.mps.empty_cache()
            super().unload()

    def _require(self):
        if self._model is None:
            raise BadParameter("torch: no model is loaded")
        return self._model, self._tokenizer

    # --- tokens -------------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        _, tok = self._require()
        return list(tok.encode(text, add_special_tokens=False))

    def synthetic_prompt(self, n_tokens: int, seed: int = 0) -> Prompt:
        """Random token ids (special tokens excluded), like llama-bench and mlx_lm.benchmark."""
        _, tok = self._require()
        return random_tokens(n_tokens, self.info().vocab_size or len(tok), set(tok.all_special_ids) | self._eos, seed)

    def _tokens_for(self, prompt: Prompt) -> list[int]:
        _, tok = self._require()
        return hf_prompt_tokens(tok, prompt, self._info.name, self._info.chat_template)

    def logits(self, tokens: Sequence[int], cancel: threading.Event | None = None):
        """float32 (len(tokens), n_vocab); row i predicts token i+1. Runs in chunks with a KV cache."""
        import numpy as np
        import torch

        net, _ = self._require()
        tokens = check_logits_input(tokens, self._info.name, self._info.context_length)
        rows = []
        with self._lock, torch.inference_mode():
            past = None
            try:
                for start in range(0, len(tokens), LOGITS_CHUNK):
                    check_cancel(cancel)
                    ids = torch.tensor([tokens[start : start + LOGITS_CHUNK]], device=self._device)
                    out = net(input_ids=ids, past_key_values=past, use_cache=True)
                    past = out.past_key_values
                    rows.append(out.logits[0].float().cpu().numpy())
                return np.concatenate(rows).astype(np.float32, copy=False)
            except (RuntimeError, MemoryError, NotImplementedError) as err:
                raise as_localbench_error(err, "computing logits") from err

    # --- generation ---------------------------------------------------------------------------------

    def _stream_locked(self, prompt: Prompt, params: GenerationParams, cancel) -> Iterator[Chunk]:
        import torch

        _, tok = self._require()
        timer = StreamTimer()
        tokens = self._tokens_for(prompt)
        max_new = room_for_generation(len(tokens), self._n_ctx, params.max_tokens)
        if self._device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        detok = Detokenizer(tok)
        token_times: list[float] = []
        prefill_s = 0.0
        last = None
        stop_reason, reply = "length", StopBuffer(params.stop)
        steps = self._decode(tokens, max_new, params)
        try:
            for token, t, prefill in steps:
                token_times.append(t)
                prefill_s = prefill
                last = token
                if token in self._eos and not params.ignore_eos:
                    stop_reason = "stop"
                    break
                text = reply.add(detok.add([token]))
                if reply.stopped:
                    stop_reason = "stop"
                if text:
                    yield Chunk(text=text, t_s=t - timer.t0)
                if reply.stopped:
                    break
                if cancel is not None and cancel.is_set():
                    stop_reason = "cancelled"
                    break
                if len(token_times) % 16 == 0:
                    timer.peak_rss = max(timer.peak_rss, current_rss_bytes())
        except (RuntimeError, MemoryError, NotImplementedError) as err:
            raise as_localbench_error(err, "generating") from err
        finally:
            steps.close()
        ended_on_eos = last in self._eos and not params.ignore_eos
        if stop_reason != "cancelled":  # the held-back text, and the last incomplete character, end the reply
            tail = detok.add([], final=True) if reply.pending and not ended_on_eos else ""
            tail = reply.add(tail, final=True)
            if tail:
                yield Chunk(text=tail, t_s=timer.elapsed(), n_tokens=0)
        timer.finish()
        yield Chunk(
            text="",
            t_s=timer.elapsed(),
            n_tokens=0,
            stats=self._stats(timer, token_times, len(tokens), stop_reason, ended_on_eos, prefill_s),
        )

    def _decode(self, tokens: list[int], max_new: int, params: GenerationParams) -> Iterator[tuple[int, float, float]]:
        """(token id, perf_counter time it reached the host, prompt seconds) for each generated token.

        One forward pass over the prompt, then one per token with the model's KV cache; greedy, or
        transformers' own temperature / top-k / top-p warpers and a seeded sampler. End-of-sequence is
        masked while `ignore_eos` forces the length.
        """
        import torch
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        net, _ = self._require()
        device = self._device
        sampling = params.temperature > 0
        warpers = LogitsProcessorList()
        generator = None
        if sampling:
            warpers.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k:
                warpers.append(TopKLogitsWarper(params.top_k))
            if params.top_p < 1.0:
                warpers.append(TopPLogitsWarper(params.top_p))
            generator = torch.Generator(device=device).manual_seed(params.seed)
        eos = torch.tensor(sorted(self._eos), device=device) if params.ignore_eos and self._eos else None
        with torch.inference_mode():
            ids = torch.tensor([tokens], device=device)
            t0 = time.perf_counter()
            out = net(input_ids=ids, use_cache=True, logits_to_keep=1)  # the prompt's last position only
            prefill_s = None
            for step in range(max_new):
                logits = out.logits[:, -1, :].float()
                if eos is not None:
                    logits[:, eos] = -float("inf")
                if sampling:
                    probs = torch.softmax(warpers(ids, logits), dim=-1)
                    nxt = torch.multinomial(probs, 1, generator=generator)
                else:
                    nxt = logits.argmax(-1, keepdim=True)
                token = int(nxt.item())  # the host needs every token to stream it (a device sync)
                now = time.perf_counter()
                if prefill_s is None:
                    prefill_s = now - t0
                yield token, now, prefill_s
                if step + 1 == max_new:
                    break
                out = net(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
                if sampling:
                    ids = torch.cat([ids, nxt], dim=-1)

    def _stats(
        self,
        timer: StreamTimer,
        token_times: list[float],
        n_prompt: int,
        stop_reason: str,
        ended_on_eos: bool,
        prefill_s: float,
    ) -> GenerationStats:
        """Statistics from the per-token host times; the end-of-sequence token is not counted."""
        import torch

        n = len(token_times)
        ttft = token_times[0] - timer.t0 if n else timer.elapsed()
        gen_s = token_times[-1] - token_times[0] if n > 1 else 0.0
        peak_device = None
        if self._device == "cuda":
            peak_device = int(torch.cuda.max_memory_allocated())
        elif self._device == "mps":
            peak_device = int(torch.mps.current_allocated_memory())
        return GenerationStats(
            ttft_s=ttft,
            prompt_tokens=n_prompt,
            prompt_s=prefill_s,
            prompt_tps=rate(n_prompt, prefill_s),
            gen_tokens=n - 1 if ended_on_eos else n,
            gen_s=gen_s,
            gen_tps=rate(n - 1, gen_s),
            load_s=0.0,
            wall_s=timer.elapsed(),
            peak_rss_bytes=timer.peak_rss,
            stop_reason=stop_reason,
            peak_device_bytes=peak_device,
            itl_s=tuple(b - a for a, b in itertools.pairwise(token_times)),
            source=TIMING_SOURCE,
        )


def _cuda_free() -> tuple[int, str]:
    import torch

    return torch.cuda.mem_get_info()[0], "free CUDA memory"


def _text_config(config: dict) -> dict:
    """The language-model part of a config (multimodal configs nest it under text_config)."""
    return config.get("text_config") or config


def _eos_ids(net, tokenizer) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(net.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(x) for x in source)
    return ids
