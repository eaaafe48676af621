"""Chat tab: pick an engine and a model, chat with streamed replies and live statistics.

Statistics update while the reply streams (TTFT, tokens, live generation t/s measured here) and are
replaced by the engine's own figures when the reply ends. Base models without a chat template run as
plain completion, and the tab says so. Stop cancels the generation; errors show as warnings.
"""

from __future__ import annotations

import time

import gradio as gr

from core.errors import BadParameter, LocalbenchError, PromptTooLong
from dashboard.context import AppContext
from dashboard.names import engine_choices
from dashboard.pickers import load_config, model_choices
from dashboard.ui import as_int, conversion_progress, count_text, rate_text, session_of, stats_markdown, warn
from engines.base import GenerationParams, GenerationStats
from engines.registry import ENGINES

UPDATE_EVERY_S = 0.05  # browser updates while streaming: ~20 per second is smooth and cheap


FOOTER = "\n\n<sub>reply stats: "
"""Start of the statistics footer under each reply (shown in the bubble, never sent back to the model)."""


def reply_footer(stats: GenerationStats, info) -> str:
    """One line under a reply: tokens, t/s, TTFT, device and dtype; 'stopped' on a cancelled reply."""
    parts = [
        f"{count_text(stats.gen_tokens)} tok",
        f"{rate_text(stats.gen_tps)} t/s",
        f"TTFT {stats.ttft_s * 1e3:.0f} ms",
        f"{info.device or '—'} {info.dtype or info.file_type or ''}".strip(),
    ]
    if stats.stop_reason == "cancelled":
        parts.append("**stopped**")
    if stats.contended:
        parts.append("contended")
    return FOOTER + " · ".join(parts) + "</sub>"


def strip_footer(text: str) -> str:
    return text.split(FOOTER, 1)[0]


def build(ctx: AppContext) -> None:
    engines = list(ENGINES)
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            engine = gr.Dropdown(engine_choices(engines), value=engines[0], label="Engine", elem_id="chat-engine")
            model = gr.Dropdown(
                choices=model_choices(ctx, engines[0]),
                value="smollm2-135m",
                label="Model",
                allow_custom_value=True,
                elem_id="chat-model",
                info="catalog name, or a path to a GGUF file",
            )
            system = gr.Textbox(label="System prompt", lines=2, elem_id="chat-system")
            temperature = gr.Slider(0, 2, value=0.0, step=0.05, label="Temperature (0 = greedy)")
            max_tokens = gr.Number(value=128, precision=0, label="Max tokens", elem_id="chat-max-tokens")
            seed = gr.Number(value=0, precision=0, label="Seed")
            n_ctx = gr.Number(value=ctx.config.num_ctx, precision=0, label="Context (tokens)", elem_id="chat-n-ctx")
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="Conversation", height=420, elem_id="chat-box")
            prompt = gr.Textbox(label="Message", placeholder="Type a message and press Enter", elem_id="chat-prompt")
            with gr.Row():
                send = gr.Button("Send", variant="primary", elem_id="chat-send")
                stop = gr.Button("Stop", variant="stop", elem_id="chat-stop")
                clear = gr.Button("Clear", elem_id="chat-clear")
                export = gr.Button("Export conversation", elem_id="chat-export")
            stats = gr.Markdown("No reply yet.", elem_id="chat-stats")
            export_files = gr.File(
                label="Conversation (Markdown and JSON)",
                file_count="multiple",
                visible=False,
                elem_id="chat-export-file",
            )

    def respond(
        engine_name,
        model_name,
        system_prompt,
        temp,
        max_toks,
        seed_value,
        ctx_tokens,
        history,
        text,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        history = list(history or [])
        cancel = ctx.new_cancel(session_of(request), "chat")
        try:
            if not (text or "").strip():
                raise BadParameter("the message is empty — type something to send")
            params = GenerationParams(
                max_tokens=as_int(max_toks, "max tokens", 1),
                temperature=float(temp),
                seed=as_int(seed_value, "seed", 0),
            ).validate()
            config = load_config(ctx, engine_name, ctx_tokens)
            yield history + [{"role": "user", "content": text}], "Loading model…", ""
            with conversion_progress(progress, cancel):
                eng = ctx.pool.get(engine_name, model_name, config)
        except LocalbenchError as err:
            yield history, warn(err), text
            return
        info = eng.info()
        before = history
        history = history + [{"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        dropped = 0  # earlier messages left out so that the conversation fits the context window
        while True:
            request_prompt, mode = _request_for(info, before[dropped:], system_prompt, text)
            note = f" Trimmed the {dropped} oldest messages to fit the context window." if dropped else ""
            reply, last_push, ttft_ms, n = "", 0.0, 0.0, 0
            try:
                for chunk in eng.stream(request_prompt, params, cancel):
                    if chunk.stats is not None:
                        history[-1]["content"] = reply + reply_footer(chunk.stats, info)
                        yield history, stats_markdown(chunk.stats, mode=mode + note), ""
                        _store_chat(ctx, info, params, chunk.stats)
                        return
                    reply += chunk.text
                    n += 1
                    if n == 1:
                        ttft_ms, first_t = chunk.t_s * 1e3, chunk.t_s
                    now = time.perf_counter()
                    if now - last_push >= UPDATE_EVERY_S:
                        last_push = now
                        live_tps = (n - 1) / (chunk.t_s - first_t) if n > 1 and chunk.t_s > first_t else 0.0
                        history[-1]["content"] = reply
                        yield history, stats_markdown(None, {"ttft_ms": ttft_ms, "tokens": n, "tps": live_tps}), ""
            except PromptTooLong as err:
                if n == 0 and dropped < len(before):
                    dropped = min(len(before), dropped + 2)  # one exchange at a time, oldest first
                    continue
                # the message alone does not fit: roll the turn back so the next message works
                yield (
                    before,
                    warn(
                        PromptTooLong(
                            f"this message does not fit the context window of {info.n_ctx} tokens even without "
                            f"earlier messages ({err}) — shorten it, or raise Context (tokens)"
                        )
                    ),
                    text,
                )
                return
            except LocalbenchError as err:
                history[-1]["content"] = reply
                yield history, warn(err), ""
                return

    def stop_generation(request: gr.Request, progress=gr.Progress()):
        ctx.cancel(session_of(request), "chat")

    inputs = [engine, model, system, temperature, max_tokens, seed, n_ctx, chatbot, prompt]
    outputs = [chatbot, stats, prompt]
    # Chats with different models run at once (each model has its own worker; one worker serves its
    # requests in turn); timing runs elsewhere stay alone and flag overlap as contended.
    send_event = send.click(respond, inputs, outputs, concurrency_id="chat", concurrency_limit=16)
    submit_event = prompt.submit(respond, inputs, outputs, concurrency_id="chat", concurrency_limit=16)
    stop.click(stop_generation, None, None, queue=False)
    clear.click(lambda: ([], "No reply yet."), None, [chatbot, stats], cancels=[send_event, submit_event])

    export.click(lambda h: gr.update(value=export_conversation(h), visible=True), chatbot, export_files)

    def on_engine(engine_name):
        choices = model_choices(ctx, engine_name)  # the old engine's model name would fail on this one
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    engine.change(on_engine, engine, model)


def export_conversation(history) -> list[str]:
    """The conversation as Markdown and JSON files, each reply with its statistics line."""
    import json
    import re
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="localbench-chat-"))
    messages = []
    for m in history or []:
        content = m["content"] if isinstance(m.get("content"), str) else _text_of(m.get("content"))
        body, _, footer = content.partition(FOOTER)
        stats = re.sub(r"</?sub>|\*\*", "", footer).strip()
        messages.append({"role": m["role"], "content": body, **({"stats": stats} if stats else {})})
    md = "\n\n".join(
        f"**{m['role']}**: {m['content']}" + (f"\n\n_{m['stats']}_" if m.get("stats") else "") for m in messages
    )
    (folder / "conversation.md").write_text(md + "\n")
    (folder / "conversation.json").write_text(json.dumps(messages, indent=1, ensure_ascii=False))
    return [str(folder / "conversation.md"), str(folder / "conversation.json")]


def _request_for(info, history: list, system_prompt: str | None, text: str):
    """(prompt, mode line) for this engine: the conversation through the chat template, or plain text."""
    if not info.chat_template:
        return text, f"Mode: plain completion — {info.name} has no chat template."
    turns = [{"role": m["role"], "content": _text_of(m["content"])} for m in history]
    if (system_prompt or "").strip():
        turns.insert(0, {"role": "system", "content": system_prompt})
    return turns + [{"role": "user", "content": text}], f"Mode: chat ({info.name}'s chat template)."


def _text_of(content) -> str:
    """Chatbot message content as plain text (Gradio 6 may hand back a list of parts)."""
    if isinstance(content, str):
        return strip_footer(content)
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)


def _store_chat(ctx: AppContext, info, params: GenerationParams, stats: GenerationStats) -> None:
    """Each chat reply's statistics go to the store (kind 'chat'), so they can be exported."""
    import dataclasses

    row = {
        "model": info.name,
        "engine": info.engine,
        "model_type": f"{info.arch} {info.file_type}",
        "backend": info.backend,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        **{k: v for k, v in dataclasses.asdict(stats).items() if k != "itl_s"},
    }
    with ctx.store.recording("chat", {"engine": info.engine, "model": info.name}, ctx.profile) as run:
        run.rows = [row]
        if stats.stop_reason == "cancelled":
            run.status = "cancelled"
