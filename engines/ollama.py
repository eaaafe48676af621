"""Ollama engine: models served by an Ollama server, through the official `ollama` Python client.

The host comes from LoadConfig.options "host", else OLLAMA_HOST, else http://127.0.0.1:11434.
Statistics come from the final chunk of /api/chat or /api/generate (nanosecond durations, turned
into seconds by engines.server_stats.stats_from_ollama); TTFT and the inter-token gaps are measured
here, since Ollama has no first-token field. Options sent with each request: num_ctx (the load
config's context window), num_thread and num_gpu (from the hardware config, for a server on this
machine only), seed, temperature, top_k, top_p, stop and num_predict.

Besides the engine, this module gives the Servers tab, the memory planner and the embeddings work
what they need from a server: `list_ollama_models` (/api/tags), `plan_info` (/api/show as a
ModelInfo), `loaded_models` (/api/ps), `server_status`, `pull_model` (streamed progress),
`unload_model` (keep_alive 0) and `embed` (/api/embed). Every failure is one ServerError (or
ModelNotFound) whose message says what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import urlsplit

from core.errors import TIMEOUT_HINT, BadParameter, Cancelled, LocalbenchError, ModelNotFound, ServerError
from core.progress import Progress
from engines.base import (
    SERVER_TIMEOUT_S,
    Chunk,
    EmbeddingStats,
    Engine,
    GenerationParams,
    LoadConfig,
    ModelInfo,
    StreamTimer,
    current_rss_bytes,
    http_timeout,
    request_timeout_s,
)
from engines.prompts import Prompt, check_prompt, is_chat_prompt, is_token_prompt
from engines.server_stats import client_timing, stats_from_ollama
from models.ref import ModelRef

DEFAULT_HOST = "http://127.0.0.1:11434"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def normalize_host(host: str) -> str:
    """'localhost:11434' → 'http://localhost:11434'; a bare host gets Ollama's port 11434."""
    text = (host or "").strip().rstrip("/")
    if not text:
        return DEFAULT_HOST
    if "://" not in text:
        text = "http://" + text
        parts = urlsplit(text)
        if parts.port is None and parts.hostname:
            text = text.replace(parts.netloc, f"{parts.netloc}:11434", 1)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadParameter(f"'{host}' is not an Ollama host URL — use e.g. http://127.0.0.1:11434")
    return text


def ollama_host(config: LoadConfig | None = None) -> str:
    """The host to talk to: options 'host', else OLLAMA_HOST, else http://127.0.0.1:11434."""
    host = config.option("host") if config is not None else None
    return normalize_host(str(host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST))


def is_local(host: str) -> bool:
    return (urlsplit(host).hostname or "") in LOOPBACK


# ---------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class OllamaModel:
    """One entry of /api/tags."""

    name: str
    size_bytes: int
    """Bytes of the model's files on the server's disk."""
    family: str
    parameter_size: str
    """As Ollama labels it, e.g. '8.0B'."""
    quantization_level: str
    """e.g. 'Q4_K_M'."""
    format: str
    digest: str
    modified_at: str


@dataclass(frozen=True)
class LoadedModel:
    """One entry of /api/ps: a model the server holds in memory."""

    name: str
    size_bytes: int
    """Memory the loaded model takes (weights + KV cache + buffers), bytes."""
    size_vram_bytes: int
    """Part of it in GPU memory, bytes (0: all on the CPU)."""
    expires_at: str
    """When the server will unload it (keep_alive)."""
    context_length: int | None = None


@dataclass(frozen=True)
class ServerStatus:
    """What Test connection shows."""

    host: str
    version: str
    models: tuple[OllamaModel, ...]
    loaded: tuple[LoadedModel, ...]


# ---------------------------------------------------------------------------------------------- errors


def not_reachable(host: str) -> str:
    return f"Ollama is not reachable at {host} — start it with `ollama serve` or set OLLAMA_HOST"


@contextlib.contextmanager
def server_errors(
    host: str, model: str = "", chunks: Callable[[], int] = lambda: 0, timeout_s: float = SERVER_TIMEOUT_S
) -> Iterator[None]:
    """Turn the client's and httpx's exceptions into one actionable ServerError / ModelNotFound; `timeout_s` is
    the deadline the request ran under."""
    import httpx
    import ollama
    import pydantic

    try:
        yield
    except LocalbenchError:
        raise
    except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout) as err:
        raise ServerError(not_reachable(host)) from err
    except ollama.ResponseError as err:
        status = err.status_code
        if status == 404:
            raise ModelNotFound(
                f"model '{model}' is not on the Ollama server at {host} ({err.error}) — "
                f"pull it with `ollama pull {model}` or the Servers tab's Pull"
            ) from err
        if status in (401, 403):
            raise ServerError(
                f"Ollama at {host} refused the request (HTTP {status}: {err.error}) — check the API key "
                "(--api-key, the Servers tab or OLLAMA_API_KEY)"
            ) from err
        if status == -1:
            raise ServerError(
                f"Ollama at {host} reported an error mid-reply: {err.error} — check the server's log"
            ) from err
        raise ServerError(
            f"Ollama at {host} answered HTTP {status}: {err.error} — check the server's log (`ollama serve` output)"
        ) from err
    except httpx.TimeoutException as err:
        n = chunks()
        when = f"after {n} chunks" if n else "before answering"
        raise ServerError(
            f"Ollama at {host} sent nothing for {timeout_s:g} s {when} ({type(err).__name__}) — the server is stuck, "
            f"or the model is still loading or too large for the machine; {TIMEOUT_HINT}, or use a smaller model"
        ) from err
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as err:
        raise ServerError(
            f"Ollama at {host} closed the connection mid-reply after {chunks()} chunks ({err}) — the server "
            "may have crashed or run out of memory; check its log and retry"
        ) from err
    except (json.JSONDecodeError, pydantic.ValidationError) as err:
        raise ServerError(
            f"Ollama at {host} sent a malformed NDJSON line after {chunks()} chunks ({str(err)[:120]}) — "
            "is this really an Ollama server? Check the host URL"
        ) from err
    except httpx.HTTPError as err:
        raise ServerError(f"Ollama at {host}: {type(err).__name__}: {err} — check the host URL and the server") from err


def make_client(host: str, api_key: str | None = None, timeout_s: float = SERVER_TIMEOUT_S):
    """An `ollama.Client` with a read timeout, and a bearer token when one is given."""
    import ollama

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    return ollama.Client(host=host, timeout=http_timeout(timeout_s), headers=headers)


def _client_for(host: str | None, api_key: str | None = None, timeout_s: float = 30.0):
    """(client, normalized host) for a host given by the caller, else OLLAMA_HOST or the default."""
    host = normalize_host(host) if host else ollama_host()
    return make_client(host, api_key, timeout_s), host


# ---------------------------------------------------------------------------------------------- server facts


def _details(obj) -> dict:
    d = getattr(obj, "details", None)
    return d.model_dump() if d is not None else {}


def list_ollama_models(
    host: str | None = None, api_key: str | None = None, timeout_s: float = 30.0
) -> list[OllamaModel]:
    """Models the server has (/api/tags), with family, parameter_size and quantization_level."""
    client, host = _client_for(host, api_key, timeout_s)
    with server_errors(host, timeout_s=timeout_s):
        listing = client.list()
    out = []
    for m in listing.models:
        d = _details(m)
        out.append(
            OllamaModel(
                name=m.model or "",
                size_bytes=int(m.size or 0),
                family=d.get("family") or "",
                parameter_size=d.get("parameter_size") or "",
                quantization_level=d.get("quantization_level") or "",
                format=d.get("format") or "",
                digest=m.digest or "",
                modified_at=m.modified_at.isoformat() if m.modified_at else "",
            )
        )
    return out


def _first_int(value) -> int | None:
    if isinstance(value, (list, tuple)):
        value = max((v for v in value if isinstance(v, (int, float))), default=None)
    return int(value) if isinstance(value, (int, float)) else None


def model_info_from_show(name: str, show: Mapping, size_bytes: int | None = None) -> ModelInfo:
    """ModelInfo from an /api/show answer: layers, heads, KV heads, context length (pure)."""
    info = show.get("model_info") or show.get("modelinfo") or {}
    details = show.get("details") or {}
    arch = str(info.get("general.architecture") or details.get("family") or "")

    def field(key: str) -> int | None:
        return _first_int(info.get(f"{arch}.{key}"))

    n_embd = field("embedding_length")
    n_heads = field("attention.head_count")
    head_dim = field("attention.key_length") or (n_embd // n_heads if n_embd and n_heads else None)
    vocab = field("vocab_size")
    if vocab is None and isinstance(info.get("tokenizer.ggml.tokens"), list) and info["tokenizer.ggml.tokens"]:
        vocab = len(info["tokenizer.ggml.tokens"])
    return ModelInfo(
        name=name,
        engine="ollama",
        path=None,
        format=str(details.get("format") or "remote"),
        arch=arch,
        n_params=_first_int(info.get("general.parameter_count")),
        file_type=str(details.get("quantization_level") or ""),
        model_size_bytes=size_bytes,
        n_layers=field("block_count"),
        n_heads=n_heads,
        n_kv_heads=field("attention.head_count_kv"),
        n_embd=n_embd,
        head_dim=head_dim,
        context_length=field("context_length"),
        vocab_size=vocab,
        chat_template=bool(show.get("template")),
        backend="Ollama",
        device="server",
    )


def plan_info(model: str, host: str | None = None, api_key: str | None = None) -> ModelInfo:
    """A model's shape from /api/show (layers, heads, KV heads, head_dim, context length) and its size
    from /api/tags, without loading it: what the memory planner needs for an Ollama model."""
    client, host = _client_for(host, api_key)
    with server_errors(host, model, timeout_s=30.0):
        show = client.show(model).model_dump(by_alias=True)
        listing = client.list()
    size = next((int(m.size or 0) for m in listing.models if m.model in (model, f"{model}:latest")), None)
    return model_info_from_show(model, show, size)


def loaded_models(host: str | None = None, api_key: str | None = None, timeout_s: float = 30.0) -> list[LoadedModel]:
    """Models the server holds in memory now (/api/ps), with size and size_vram in bytes."""
    client, host = _client_for(host, api_key, timeout_s)
    with server_errors(host, timeout_s=timeout_s):
        ps = client.ps()
    return [
        LoadedModel(
            name=m.model or m.name or "",
            size_bytes=int(m.size or 0),
            size_vram_bytes=int(m.size_vram or 0),
            expires_at=m.expires_at.isoformat() if m.expires_at else "",
            context_length=m.context_length,
        )
        for m in ps.models
    ]


def server_version(host: str | None = None, api_key: str | None = None, timeout_s: float = 10.0) -> str:
    """The server's version string (/api/version)."""
    import httpx

    host = normalize_host(host) if host else ollama_host()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with server_errors(host, timeout_s=timeout_s):
        r = httpx.get(f"{host}/api/version", headers=headers, timeout=http_timeout(timeout_s))
        if r.status_code in (401, 403):
            raise ServerError(f"Ollama at {host} refused the request (HTTP {r.status_code}) — check the API key")
        if r.status_code != 200:
            raise ServerError(f"{host}/api/version answered HTTP {r.status_code} — is this an Ollama server?")
        try:
            return str(r.json()["version"])
        except (ValueError, KeyError, TypeError):
            raise ServerError(f"{host}/api/version did not answer like Ollama — check the host URL") from None


def server_status(host: str | None = None, api_key: str | None = None, timeout_s: float = 10.0) -> ServerStatus:
    """Version, models and loaded models: what the Servers tab's Test connection shows; each call waits at most
    `timeout_s` for the server."""
    host = normalize_host(host) if host else ollama_host()
    version = server_version(host, api_key, timeout_s)
    return ServerStatus(
        host=host,
        version=version,
        models=tuple(list_ollama_models(host, api_key, timeout_s)),
        loaded=tuple(loaded_models(host, api_key, timeout_s)),
    )


def pull_model(
    model: str,
    host: str | None = None,
    api_key: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Pull a model onto the server, reporting streamed progress(fraction, message); returns the last status."""
    import ollama

    if not (model or "").strip():
        raise BadParameter("give the name of the model to pull, e.g. llama3.2:1b")
    client, host = _client_for(host, api_key, timeout_s=SERVER_TIMEOUT_S)
    status, fraction, n = "", 0.0, 0
    with server_errors(host, model, lambda: n):
        stream = client.pull(model.strip(), stream=True)
        try:
            for part in stream:
                n += 1
                status = part.status or status
                total, done = int(part.total or 0), int(part.completed or 0)
                fraction = 1.0 if status == "success" else done / total if total else fraction
                if progress is not None:
                    size = f" {done / 1e6:.1f} / {total / 1e6:.1f} MB" if total else ""
                    progress(fraction, f"{status}{size}")
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"pull of {model} cancelled (the server keeps what it downloaded)")
        except ollama.ResponseError as err:
            if err.status_code != -1:
                raise
            raise ServerError(
                f"pull of {model} from {host} failed: {err.error} — check the name (ollama.com/library lists them)"
            ) from err
        finally:
            stream.close()
    if status != "success":
        raise ServerError(f"pull of {model} from {host} ended with '{status or 'no status'}' instead of success")
    return status


def unload_model(model: str, host: str | None = None, api_key: str | None = None) -> None:
    """Ask the server to unload a model now (keep_alive 0)."""
    client, host = _client_for(host, api_key)
    with server_errors(host, model, timeout_s=30.0):
        client.generate(model=model, keep_alive=0)


def embed(
    texts: Sequence[str], model: str, host: str | None = None, api_key: str | None = None
) -> tuple[list[list[float]], EmbeddingStats]:
    """Embeddings of `texts` from /api/embed, with the request's wall time (seconds, measured here)."""
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise BadParameter("embed needs a non-empty list of strings")
    client, host = _client_for(host, api_key, timeout_s=SERVER_TIMEOUT_S)
    t0 = time.perf_counter()
    with server_errors(host, model):
        response = client.embed(model=model, input=texts)
    seconds = time.perf_counter() - t0
    vectors = [list(map(float, v)) for v in response.embeddings]
    stats = EmbeddingStats(
        n_texts=len(texts),
        n_tokens=int(response.prompt_eval_count or 0),
        seconds=seconds,
        peak_rss_bytes=current_rss_bytes(),
        extra={"server_total_s": (response.total_duration or 0) / 1e9, "load_s": (response.load_duration or 0) / 1e9},
    )
    return vectors, stats


# ---------------------------------------------------------------------------------------------- engine


class OllamaEngine(Engine):
    name = "ollama"
    label = "Ollama (server)"
    formats = ("remote",)
    modules = ("ollama", "httpx")

    def __init__(self) -> None:
        self._client = None
        self._host = DEFAULT_HOST
        self._config = LoadConfig()
        self._model = ""
        self._timeout_s = SERVER_TIMEOUT_S

    def resolve(self, model: str) -> ModelRef:
        """Server models are named by the server: no catalog lookup."""
        name = (model or "").strip()
        if not name:
            raise BadParameter("choose an Ollama model (the Servers tab lists what the server has)")
        return ModelRef(name, None, "remote", source="Ollama server")

    def list_models(self, config: LoadConfig | None = None) -> list[str]:
        config = config or LoadConfig()
        return [
            m.name
            for m in list_ollama_models(ollama_host(config), self._api_key(config), request_timeout_s(config, 30.0))
        ]

    @staticmethod
    def _api_key(config: LoadConfig) -> str | None:
        key = config.option("api_key")
        return str(key) if key else None

    def request_options(self, params: GenerationParams | None = None) -> dict:
        """Ollama `options` for a request: num_ctx from the load config, threads/GPU layers for a server on
        this machine (a remote server knows its own hardware), sampling from `params`."""
        cfg = self._config
        opts: dict = {"num_ctx": cfg.n_ctx}
        local = is_local(self._host)
        num_thread = cfg.option("num_thread", cfg.n_threads if local else None)
        if num_thread:
            opts["num_thread"] = int(num_thread)
        num_gpu = cfg.option("num_gpu", cfg.n_gpu_layers if local and cfg.n_gpu_layers >= 0 else None)
        if num_gpu is not None:
            opts["num_gpu"] = int(num_gpu)
        if params is not None:
            opts.update(
                seed=params.seed,
                temperature=params.temperature,
                top_k=params.top_k,
                top_p=params.top_p,
                num_predict=params.max_tokens,
            )
            if params.stop:
                opts["stop"] = list(params.stop)
        return opts

    def _keep_alive(self):
        value = self._config.option("keep_alive")
        return None if value in (None, "") else value

    def load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        config.validate()
        self._config = config
        self._host = ollama_host(config)
        self._timeout_s = request_timeout_s(config)
        self._client = make_client(self._host, self._api_key(config), self._timeout_s)
        self._model = model.name
        with server_errors(self._host, model.name, timeout_s=self._timeout_s):
            show = self._client.show(model.name).model_dump(by_alias=True)
            listing = self._client.list()
        size = next((int(m.size or 0) for m in listing.models if m.model in (model.name, f"{model.name}:latest")), None)
        info = model_info_from_show(model.name, show, size)
        if info.context_length and config.n_ctx > info.context_length:
            raise BadParameter(
                f"n_ctx {config.n_ctx} exceeds {model.name}'s training context of {info.context_length} tokens"
            )
        t0 = time.perf_counter()
        with server_errors(self._host, model.name, timeout_s=self._timeout_s):
            # An empty message list loads the model with these options (Ollama's documented load call).
            self._client.chat(
                model=model.name, messages=[], options=self.request_options(), keep_alive=self._keep_alive()
            )
            ps = self._client.ps()
        load_s = time.perf_counter() - t0
        vram = next((int(m.size_vram or 0) for m in ps.models if m.model in (model.name, f"{model.name}:latest")), 0)
        self._info = dataclasses.replace(
            info,
            n_ctx=config.n_ctx,
            device="gpu" if vram else "cpu",
            load_s=load_s,
            versions=(("ollama-python", metadata.version("ollama")), ("ollama server", self._version())),
        )
        return self._info

    def _version(self) -> str:
        try:
            return server_version(self._host, self._api_key(self._config), min(10.0, self._timeout_s))
        except LocalbenchError:
            return "unknown"

    def unload(self) -> None:
        """Forget the model; with option unload_after (the 'unload after a benchmark' choice) the
        server drops it from memory too (keep_alive 0)."""
        if self._client is not None and self._model and self._config.option("unload_after"):
            with contextlib.suppress(LocalbenchError):
                unload_model(self._model, self._host, self._api_key(self._config))
        self._client = None
        super().unload()

    def stream(
        self,
        prompt: Prompt,
        params: GenerationParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        check_prompt(prompt)
        params.validate()
        if self._client is None or self._info is None:
            raise BadParameter("ollama: no model is loaded")
        if is_token_prompt(prompt):
            raise BadParameter("Ollama takes text or chat messages, not token ids")
        options = self.request_options(params)
        keep_alive = self._keep_alive()
        times: list[float] = []
        timer = StreamTimer()
        with server_errors(self._host, self._model, lambda: len(times), self._timeout_s):
            if is_chat_prompt(prompt):
                parts = self._client.chat(
                    model=self._model,
                    messages=[dict(m) for m in prompt],
                    stream=True,
                    options=options,
                    keep_alive=keep_alive,
                )
            else:
                parts = self._client.generate(
                    model=self._model,
                    prompt=str(prompt),
                    raw=not self._info.chat_template,
                    stream=True,
                    options=options,
                    keep_alive=keep_alive,
                )
            try:
                for part in parts:
                    text = part.message.content if is_chat_prompt(prompt) else part.response
                    if text:
                        times.append(timer.tick())
                        yield Chunk(text=text, t_s=times[-1])
                    if part.done:
                        timer.finish()
                        client = client_timing(times, timer.elapsed(), timer.peak_rss)
                        stats = stats_from_ollama(part.model_dump(), client)
                        yield Chunk(text="", t_s=timer.elapsed(), n_tokens=0, stats=stats)
                        return
                    if cancel is not None and cancel.is_set():
                        break
            finally:
                parts.close()
        timer.finish()
        if cancel is not None and cancel.is_set():
            client = client_timing(times, timer.elapsed(), timer.peak_rss)
            final = {"done_reason": "cancelled", "eval_count": len(times)}
            yield Chunk(text="", t_s=timer.elapsed(), n_tokens=0, stats=stats_from_ollama(final, client))
            return
        raise ServerError(
            f"Ollama at {self._host} ended the reply without its final statistics after {len(times)} chunks — "
            "the server may have crashed; check its log and retry"
        )
