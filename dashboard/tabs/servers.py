"""Servers tab: add a model server (an Ollama host, or an OpenAI-compatible base URL with an optional
API key), test the connection and see its status, and pull Ollama models with streamed progress.

A successful Test connection makes that endpoint the one the `ollama` or `openai` engine uses across
the app (AppContext.server_options), so the Chat tab lists and loads its models. Ollama's status shows
its version, its models (/api/tags) and what it holds in memory now (/api/ps); an OpenAI-compatible
server's shows /v1/models and the round trip of that call, measured here.
"""

from __future__ import annotations

import queue
import threading

import gradio as gr
import pandas as pd

from core.errors import BadParameter, LocalbenchError
from dashboard.context import AppContext
from dashboard.ui import session_of, warn
from engines.process.streams import DEFAULT_IDLE_TIMEOUT_S

KINDS = {"Ollama": "ollama", "OpenAI-compatible": "openai"}
MODEL_COLUMNS = ["model", "family", "parameters", "quantization", "size (GB)"]
LOADED_COLUMNS = ["model", "size (GiB)", "in GPU memory (GiB)", "context (tokens)", "unloads at"]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def ollama_frames(status) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(models, loaded) tables of an Ollama ServerStatus; GB = 1e9 bytes, GiB = 2^30 bytes."""
    models = pd.DataFrame(
        [
            (m.name, m.family, m.parameter_size, m.quantization_level, round(m.size_bytes / 1e9, 3))
            for m in status.models
        ],
        columns=MODEL_COLUMNS,
    )
    loaded = pd.DataFrame(
        [
            (
                m.name,
                round(m.size_bytes / 2**30, 3),
                round(m.size_vram_bytes / 2**30, 3),
                m.context_length,
                m.expires_at,
            )
            for m in status.loaded
        ],
        columns=LOADED_COLUMNS,
    )
    return models, loaded


def openai_frame(status) -> pd.DataFrame:
    return pd.DataFrame(
        [(m.id, m.owned_by, "", "", None) for m in status.models],
        columns=["model", "owned by", "parameters", "quantization", "size (GB)"],
    )


def active_markdown(ctx: AppContext) -> str:
    """Which endpoint each server engine uses now."""
    from engines.ollama import ollama_host
    from engines.openai_compat import openai_base_url

    lines = ["**Endpoints in use**"]
    for engine, label in (("ollama", "Ollama"), ("openai", "OpenAI-compatible")):
        options = dict(ctx.server_options.get(engine, ()))
        if engine == "ollama":
            url = options.get("host") or f"{ollama_host()} (default: OLLAMA_HOST or 127.0.0.1:11434)"
        else:
            url = options.get("base_url") or f"{openai_base_url()} (default: OPENAI_BASE_URL or 127.0.0.1:8080/v1)"
        key = " · API key set" if options.get("api_key") else ""
        unload = " · unloads after each benchmark" if options.get("unload_after") else ""
        lines.append(f"- `{engine}` ({label}): {url}{key}{unload}")
    return "\n".join(lines)


def check_timeout(value) -> float | None:
    """The Timeout field in seconds (None when left empty); BadParameter outside (0, 86400]."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise BadParameter(f"the Timeout field must be a number of seconds, got {value!r}") from None
    if not 0 < seconds <= 86_400:
        raise BadParameter(f"the Timeout field must be between 0 and 86400 seconds, got {value}")
    return seconds


def test_connection(
    ctx: AppContext, kind: str, url: str, api_key: str, unload_after: bool, idle_timeout_s: float | None = None
):
    """Status markdown, models table, loaded table; on success the endpoint is put in use."""
    engine = KINDS.get(kind)
    if engine is None:
        raise LocalbenchError(f"unknown server type {kind!r}")
    key = (api_key or "").strip() or None
    seconds = check_timeout(idle_timeout_s)
    if engine == "ollama":
        from engines.ollama import normalize_host, server_status

        host = normalize_host(url)
        status = server_status(host, key, seconds or DEFAULT_IDLE_TIMEOUT_S)
        models, loaded = ollama_frames(status)
        options = [("host", host)]
        text = (
            f"**Connected: Ollama {status.version}** at {host} — {plural(len(status.models), 'model')}, "
            f"{len(status.loaded)} loaded now. The Chat tab's `ollama` engine uses this server."
        )
    else:
        from engines.openai_compat import normalize_base_url, server_status

        base = normalize_base_url(url)
        status = server_status(base, key, seconds or DEFAULT_IDLE_TIMEOUT_S)
        models, loaded = openai_frame(status), pd.DataFrame(columns=LOADED_COLUMNS)
        options = [("base_url", base)]
        text = (
            f"**Connected: OpenAI-compatible server** at {base} ({status.server or 'no Server header'}) — "
            f"{plural(len(status.models), 'model')}; GET /v1/models took {status.latency_ms:.1f} ms (measured here). "
            "The Chat tab's `openai` engine uses this server."
        )
    if key:
        options.append(("api_key", key))
    if unload_after and engine == "ollama":
        options.append(("unload_after", True))
    if seconds is not None:
        options.append(("idle_timeout_s", seconds))
    ctx.server_options[engine] = tuple(options)
    return text, models, loaded


def build(ctx: AppContext) -> None:
    from engines.ollama import ollama_host

    gr.Markdown(
        "### Model servers\nAdd an **Ollama** host or an **OpenAI-compatible** base URL (vLLM, SGLang, "
        "llama.cpp server, `python -m llama_cpp.server`, mlx_lm.server, LM Studio) and test it. A working "
        "endpoint is used by the `ollama` / `openai` engine in the Chat tab and the `bench` command."
    )
    with gr.Row():
        kind = gr.Radio(list(KINDS), value="Ollama", label="Server type", elem_id="servers-kind")
        url = gr.Textbox(
            value=ollama_host(),
            label="URL",
            elem_id="servers-url",
            info="Ollama host, e.g. http://127.0.0.1:11434 · OpenAI base URL, e.g. http://127.0.0.1:8000/v1",
        )
        api_key = gr.Textbox(label="API key (optional)", type="password", elem_id="servers-api-key")
    unload_after = gr.Checkbox(
        value=False,
        label="Ollama: unload the model from the server after each benchmark (keep_alive 0)",
        elem_id="servers-unload",
    )
    idle_timeout = gr.Number(
        value=DEFAULT_IDLE_TIMEOUT_S,
        precision=0,
        label="Timeout (s): the longest wait for the server's answer, and for each new token of a reply",
        info="the CLI's --timeout; keep-alive comments do not count as progress; 300 s covers a 30k-token "
        "prompt pass at 100 t/s",
        elem_id="servers-idle-timeout",
    )
    with gr.Row():
        test = gr.Button("Test connection", variant="primary", elem_id="servers-test")
        refresh = gr.Button("Refresh status", elem_id="servers-refresh")
    status = gr.Markdown("No endpoint tested yet.", elem_id="servers-status")
    gr.Markdown("#### Models on the server")
    models = gr.Dataframe(pd.DataFrame(columns=MODEL_COLUMNS), interactive=False, elem_id="servers-models")
    gr.Markdown("#### Loaded now (Ollama /api/ps; GiB = 2^30 bytes)")
    loaded = gr.Dataframe(pd.DataFrame(columns=LOADED_COLUMNS), interactive=False, elem_id="servers-loaded")
    active = gr.Markdown(active_markdown(ctx), elem_id="servers-active")
    gr.Markdown("#### Pull an Ollama model")
    with gr.Row():
        pull_name = gr.Textbox(label="Model to pull", placeholder="e.g. llama3.2:1b", elem_id="servers-pull-name")
        pull = gr.Button("Pull", elem_id="servers-pull")
        cancel_pull = gr.Button("Cancel pull", variant="stop", elem_id="servers-pull-cancel")
    pull_status = gr.Markdown("", elem_id="servers-pull-status")

    def on_test(kind_value, url_value, key_value, unload_value, idle_value):
        try:
            text, model_frame, loaded_frame = test_connection(
                ctx, kind_value, url_value, key_value, unload_value, idle_value
            )
        except LocalbenchError as err:
            return warn(err), gr.update(), gr.update(), active_markdown(ctx)
        return text, model_frame, loaded_frame, active_markdown(ctx)

    def on_kind(kind_value):
        from engines.openai_compat import openai_base_url

        current = dict(ctx.server_options.get(KINDS[kind_value], ()))
        if KINDS[kind_value] == "ollama":
            return gr.update(value=current.get("host") or ollama_host())
        return gr.update(value=current.get("base_url") or openai_base_url())

    def on_pull(kind_value, url_value, key_value, name, request: gr.Request):
        from engines.ollama import pull_model

        if KINDS.get(kind_value) != "ollama":
            yield (
                warn(LocalbenchError("pulling models works with Ollama servers — choose Server type Ollama")),
                gr.update(),
            )
            return
        cancel = ctx.new_cancel(session_of(request), "pull")
        updates: queue.Queue = queue.Queue()
        outcome: dict = {}

        def work() -> None:
            try:
                pull_model(
                    name,
                    url_value,
                    (key_value or "").strip() or None,
                    progress=lambda f, m: updates.put((f, m)),
                    cancel=cancel,
                )
            except LocalbenchError as err:
                outcome["error"] = err
            finally:
                updates.put(None)

        threading.Thread(target=work, name="ollama-pull", daemon=True).start()
        yield f"Pulling **{name}**…", gr.update()
        while True:
            item = updates.get()
            if item is None:
                break
            fraction, message = item
            yield f"Pulling **{name}** — {message} ({fraction * 100:.0f} %)", gr.update()
        if "error" in outcome:
            yield warn(outcome["error"]), gr.update()
            return
        try:
            from engines.ollama import list_ollama_models

            listing = list_ollama_models(url_value, (key_value or "").strip() or None)
        except LocalbenchError as err:
            yield warn(err), gr.update()
            return
        frame = pd.DataFrame(
            [(m.name, m.family, m.parameter_size, m.quantization_level, round(m.size_bytes / 1e9, 3)) for m in listing],
            columns=MODEL_COLUMNS,
        )
        yield f"Pulled **{name}** — it is on the server now.", frame

    inputs = [kind, url, api_key, unload_after, idle_timeout]
    test.click(on_test, inputs, [status, models, loaded, active])
    refresh.click(on_test, inputs, [status, models, loaded, active])
    kind.change(on_kind, kind, url)

    def on_cancel_pull(request: gr.Request) -> None:
        ctx.cancel(session_of(request), "pull")

    pull.click(on_pull, [kind, url, api_key, pull_name], [pull_status, models], concurrency_id="pull")
    cancel_pull.click(on_cancel_pull, None, None, queue=False)
