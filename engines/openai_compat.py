"""OpenAI-compatible engine: any server speaking /v1/chat/completions, /v1/completions and /v1/models
(vLLM, SGLang, llama.cpp's server, `python -m llama_cpp.server`, mlx_lm.server, LM Studio), over httpx.

Replies stream as server-sent events. TTFT, ITL, TPOT and E2EL are measured here with vLLM's
definitions (engines.server_stats). When the server adds its own figures they are used and shown
beside ours: llama.cpp's `timings` block (prompt/generation milliseconds) first, else `usage` token
counts (asked for with stream_options.include_usage); with neither, streamed chunks are counted as
tokens and a plain-text prompt is counted by the server's tokenize endpoint when it has one.

The base URL comes from LoadConfig.options "base_url" (else OPENAI_BASE_URL, else
http://127.0.0.1:8080/v1), the key from options "api_key" (else OPENAI_API_KEY). Every failure is a
ServerError or ModelNotFound whose message says what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import urlsplit

from core.errors import TIMEOUT_HINT, BadParameter, LocalbenchError, ModelNotFound, ServerError
from engines.base import (
    SERVER_TIMEOUT_S,
    Chunk,
    Engine,
    GenerationParams,
    LoadConfig,
    ModelInfo,
    StreamTimer,
    http_timeout,
    request_timeout_s,
)
from engines.prompts import Prompt, check_prompt, is_chat_prompt, is_token_prompt
from engines.server_stats import client_timing, stats_from_openai
from models.ref import ModelRef

DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
START_HINT = "start one (e.g. `python -m llama_cpp.server --model M`, `vllm serve M`, `mlx_lm.server --model M`)"


def normalize_base_url(url: str) -> str:
    """'localhost:8000' → 'http://localhost:8000/v1'; a URL with a path keeps it."""
    text = (url or "").strip().rstrip("/")
    if not text:
        return DEFAULT_BASE_URL
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadParameter(f"'{url}' is not a server URL — use e.g. http://127.0.0.1:8000/v1")
    return text if parts.path not in ("", "/") else text + "/v1"


def openai_base_url(config: LoadConfig | None = None) -> str:
    url = config.option("base_url") if config is not None else None
    return normalize_base_url(str(url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL))


def openai_api_key(config: LoadConfig | None = None) -> str | None:
    key = config.option("api_key") if config is not None else None
    return str(key or os.environ.get("OPENAI_API_KEY") or "") or None


def server_root(base_url: str) -> str:
    """The URL without its trailing /v1, where servers keep their extra endpoints (/tokenize, /health)."""
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


@dataclass(frozen=True)
class ServedModel:
    """One entry of /v1/models."""

    id: str
    owned_by: str
    context_length: int | None
    """vLLM's max_model_len (or a server's context_length), when it reports one."""


@dataclass(frozen=True)
class OpenAIStatus:
    """What Test connection shows for an OpenAI-compatible server."""

    base_url: str
    models: tuple[ServedModel, ...]
    server: str
    """The HTTP Server header, e.g. 'uvicorn'."""
    latency_ms: float
    """Round trip of GET /v1/models, milliseconds, measured here."""


# ---------------------------------------------------------------------------------------------- errors


def not_reachable(base_url: str) -> str:
    return f"No OpenAI-compatible server is reachable at {base_url} — {START_HINT}, or fix the base URL"


def status_error(status: int, text: str, base_url: str, model: str = "") -> LocalbenchError:
    """The error for an HTTP error answer."""
    try:
        body = json.loads(text)
        err = body.get("error", body.get("detail", body)) if isinstance(body, dict) else body
        message = err.get("message", err) if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        message = text
    message = str(message).strip()[:200] or "no details"
    if status in (401, 403):
        return ServerError(
            f"{base_url} rejected the API key (HTTP {status}: {message}) — set the right key with --api-key, "
            "in the Servers tab or OPENAI_API_KEY"
        )
    if status == 404 and "model" in message.lower():
        return ModelNotFound(f"model '{model}' is not served by {base_url} ({message}) — pick one from /v1/models")
    if status == 404:
        return ServerError(
            f"{base_url} has no such endpoint (HTTP 404) — the base URL usually ends in /v1, "
            "e.g. http://127.0.0.1:8000/v1"
        )
    return ServerError(f"{base_url} answered HTTP {status}: {message} — check the server's log")


@contextlib.contextmanager
def http_errors(base_url: str, chunks=lambda: 0, timeout_s: float = SERVER_TIMEOUT_S) -> Iterator[None]:
    """httpx's exceptions as one actionable ServerError; `timeout_s` is the deadline the request ran under."""
    import httpx

    try:
        yield
    except LocalbenchError:
        raise
    except (httpx.ConnectError, httpx.ConnectTimeout) as err:
        raise ServerError(not_reachable(base_url)) from err
    except httpx.TimeoutException as err:
        n = chunks()
        when = f"after {n} chunks" if n else "before answering"
        raise ServerError(
            f"{base_url} sent nothing for {timeout_s:g} s {when} ({type(err).__name__}) — the server is overloaded, "
            f"stuck or the model is still loading; {TIMEOUT_HINT}, or lower the concurrency"
        ) from err
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as err:
        raise ServerError(
            f"{base_url} closed the connection mid-reply after {chunks()} chunks ({err}) — the server may have "
            "crashed or run out of memory; check its log and retry"
        ) from err
    except httpx.HTTPError as err:
        raise ServerError(f"{base_url}: {type(err).__name__}: {err} — check the base URL and the server") from err


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The `data:` payloads of a server-sent-event stream, one per data line (comments, `event:`,
    `id:` and blank separator lines are skipped). Every OpenAI-compatible server sends one JSON
    object per data line."""
    for line in lines:
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            yield value[1:] if value.startswith(" ") else value


# ---------------------------------------------------------------------------------------------- server facts


def _http(base_url: str, api_key: str | None, timeout_s: float):
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=http_timeout(timeout_s))


def _models_from(http, base_url: str) -> tuple[list[ServedModel], str]:
    with http_errors(base_url, timeout_s=http.timeout.read):
        r = http.get("/models")
    if r.status_code >= 400:
        raise status_error(r.status_code, r.text, base_url)
    try:
        data = r.json()["data"]
        models = [
            ServedModel(
                id=str(m["id"]),
                owned_by=str(m.get("owned_by") or ""),
                context_length=m.get("max_model_len") or m.get("context_length") or m.get("max_context_length"),
            )
            for m in data
        ]
    except (ValueError, KeyError, TypeError):
        raise ServerError(
            f"{base_url}/models did not answer like an OpenAI-compatible server (body {r.text[:60]!r}) — check the "
            "base URL and the server's log (mlx_lm.server sends an empty body when ~/.cache/huggingface/hub "
            "does not exist: create that folder)"
        ) from None
    return models, r.headers.get("server", "")


def list_served_models(
    base_url: str | None = None, api_key: str | None = None, timeout_s: float = 30.0
) -> list[ServedModel]:
    """Models the server serves (/v1/models)."""
    base_url = normalize_base_url(base_url) if base_url else openai_base_url()
    with _http(base_url, api_key, timeout_s) as http:
        return _models_from(http, base_url)[0]


def server_status(base_url: str | None = None, api_key: str | None = None, timeout_s: float = 30.0) -> OpenAIStatus:
    """Models, Server header and the /v1/models round trip: what the Servers tab's Test connection shows."""
    base_url = normalize_base_url(base_url) if base_url else openai_base_url()
    with _http(base_url, api_key, timeout_s) as http:
        t0 = time.perf_counter()
        models, server = _models_from(http, base_url)
        latency_ms = (time.perf_counter() - t0) * 1e3
    return OpenAIStatus(base_url, tuple(models), server, latency_ms)


# ---------------------------------------------------------------------------------------------- engine


class OpenAIEngine(Engine):
    name = "openai"
    label = "OpenAI-compatible server"
    formats = ("remote",)
    modules = ("httpx",)

    def __init__(self) -> None:
        self._http = None
        self._base_url = DEFAULT_BASE_URL
        self._model = ""
        self._tokenize_route: str | None = None

    def resolve(self, model: str) -> ModelRef:
        """Server models are named by the server: no catalog lookup."""
        name = (model or "").strip()
        if not name:
            raise BadParameter("choose a model the server serves (the Servers tab lists them)")
        return ModelRef(name, None, "remote", source="OpenAI-compatible server")

    def list_models(self, config: LoadConfig | None = None) -> list[str]:
        return [
            m.id
            for m in list_served_models(
                openai_base_url(config), openai_api_key(config), request_timeout_s(config, 30.0)
            )
        ]

    def load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        config.validate()
        self._base_url = openai_base_url(config)
        self._http = _http(self._base_url, openai_api_key(config), request_timeout_s(config))
        t0 = time.perf_counter()
        models, server = _models_from(self._http, self._base_url)
        served = {m.id: m for m in models}
        if model.name not in served:
            listing = ", ".join(sorted(served)) or "nothing"
            raise ModelNotFound(f"model '{model.name}' is not served by {self._base_url} — it serves: {listing}")
        self._model = model.name
        context = served[model.name].context_length
        if context and config.n_ctx > context:
            raise BadParameter(f"n_ctx {config.n_ctx} exceeds the {context} tokens {model.name} is served with")
        self._info = ModelInfo(
            name=model.name,
            engine=self.name,
            format="remote",
            context_length=int(context) if context else None,
            n_ctx=config.n_ctx,
            backend="remote",
            device="server",
            load_s=time.perf_counter() - t0,
            versions=(("httpx", metadata.version("httpx")), ("server", server or "unknown")),
        )
        return self._info

    def unload(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http = None
        super().unload()

    def _body(self, prompt: Prompt, params: GenerationParams) -> tuple[str, dict]:
        body: dict = {
            "model": self._model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        if params.top_k != GenerationParams.top_k:
            body["top_k"] = params.top_k
        if params.stop:
            body["stop"] = list(params.stop)
        if params.ignore_eos:  # vLLM and llama.cpp read ignore_eos; llama-cpp-python and vLLM min_tokens
            body.update(ignore_eos=True, min_tokens=params.max_tokens)
        if is_chat_prompt(prompt):
            return "/chat/completions", {**body, "messages": [dict(m) for m in prompt]}
        return "/completions", {**body, "prompt": str(prompt)}

    def stream(
        self,
        prompt: Prompt,
        params: GenerationParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        check_prompt(prompt)
        params.validate()
        if self._http is None:
            raise BadParameter("openai: no model is loaded")
        if is_token_prompt(prompt):
            raise BadParameter("OpenAI-compatible servers take text or chat messages, not token ids")
        path, body = self._body(prompt, params)
        chat = path == "/chat/completions"
        times: list[float] = []
        usage = timings = finish = None
        done = cancelled = False
        timer = StreamTimer()
        waited = self._http.timeout.read
        with http_errors(self._base_url, lambda: len(times), waited), self._http.stream("POST", path, json=body) as r:
            if r.status_code >= 400:
                r.read()
                raise status_error(r.status_code, r.text, self._base_url, self._model)
            for data in iter_sse_data(r.iter_lines()):
                if data.strip() == "[DONE]":
                    done = True
                    break
                try:
                    obj = json.loads(data)
                except json.JSONDecodeError:
                    raise ServerError(
                        f"{self._base_url} sent a malformed SSE line after {len(times)} chunks ({data[:80]!r}) — "
                        "is this an OpenAI-compatible endpoint? Check the base URL and the server's log"
                    ) from None
                if not isinstance(obj, dict):
                    raise ServerError(f"{self._base_url} sent an unexpected SSE payload ({data[:80]!r})")
                if obj.get("error"):
                    raise ServerError(
                        f"{self._base_url} reported an error mid-reply: {obj['error']} — check the server's log"
                    )
                usage = obj.get("usage") or usage
                timings = obj.get("timings") or timings
                for choice in obj.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                    if text:
                        times.append(timer.tick())
                        yield Chunk(text=text, t_s=times[-1])
                    finish = choice.get("finish_reason") or finish
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
        timer.finish()
        client = client_timing(times, timer.elapsed(), timer.peak_rss)
        if cancelled:
            stats = stats_from_openai(client, usage, timings, "cancelled")
        elif not done and finish is None:
            raise ServerError(
                f"{self._base_url} ended the reply without finishing it after {len(times)} chunks — the server may "
                "have crashed; check its log and retry"
            )
        else:
            hint = 0 if usage or timings or chat else self.count_tokens(str(prompt))
            stats = stats_from_openai(client, usage, timings, finish or "stop", hint)
        yield Chunk(text="", t_s=client.e2el_s, n_tokens=0, stats=stats)

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` by the server's own tokenizer endpoint (llama-cpp-python's /extras/tokenize,
        vLLM's and llama.cpp's /tokenize); 0 when it has none. Used only when the stream had no usage."""
        import httpx

        root = server_root(self._base_url)
        routes = {
            f"{root}/extras/tokenize": {"input": text, "model": self._model},
            f"{root}/tokenize": {"model": self._model, "prompt": text, "content": text},
        }
        order = [self._tokenize_route] if self._tokenize_route else list(routes)
        for url in order:
            try:
                r = self._http.post(url, json=routes[url])
                if r.status_code == 200:
                    body = r.json()
                    n = body.get("count") or len(body.get("tokens") or [])
                    if n:
                        self._tokenize_route = url
                        return int(n)
            except (httpx.HTTPError, ValueError, AttributeError):
                continue
        return 0
