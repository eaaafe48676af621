"""Live side by side (in the Compare tab): one prompt streamed to 2–4 columns, any mix of engines and models.

bench.answers.live runs each column's generation in its own thread; the handler here is one generator that
drains them and redraws every column about every 100 ms, with a live line under each (TTFT, t/s,
ITL p50/p95, tokens, worker memory). "Fair timing" runs the columns one after another, "simultaneous"
all at once (rows marked contended). Greedy answers are highlighted from the first word where they
differ. Each column has its own Stop; the run is stored as kind 'live' with a CSV of the per-column stats.
"""

from __future__ import annotations

import dataclasses
import html
import time

import gradio as gr
import pandas as pd

from bench.answers.live import LIVE_COLUMNS, LiveColumn, LiveRun, split_at_divergence
from core.errors import BadParameter, LocalbenchError
from dashboard.context import AppContext
from dashboard.names import display_name, engine_choices
from dashboard.pickers import family_slots, load_config, model_choices
from dashboard.ui import as_int, csv_file, session_of, warn
from engines.base import GenerationParams
from engines.registry import ENGINES

MAX_COLUMNS = 4
REDRAW_S = 0.1
MODE_CHOICES = [("Fair timing (one after another)", "fair"), ("Simultaneous (all at once)", "simultaneous")]
MODE_HELP = {
    "fair": (
        "**Fair timing:** the columns run one after another — each loads, then streams, while the others "
        "wait — so every TTFT, t/s and ITL is what that model does with the machine to itself. Quote these."
    ),
    "simultaneous": (
        "**Simultaneous:** every column loads first, then all stream at the same time. You watch them race, "
        "but they share the CPU, GPU and memory bandwidth: each t/s is lower and each ITL longer than alone, "
        "and the rows are marked **contended**. Don't quote them as a model's speed."
    ),
}
STATUS_TEXT = {
    "waiting": "waiting (fair timing: runs after the columns before it)",
    "loading": "loading…",
    "ready": "loaded, waiting for the others to load",
    "streaming": "streaming…",
}


def _ms(value) -> str:
    return f"{value:.0f}" if value is not None else "—"


def live_line(c: LiveColumn) -> str:
    """The figures under a column: TTFT ms, t/s, ITL p50/p95 ms, tokens, worker MiB, and its state."""
    if c.status == "failed":
        return f"⚠️ {c.error}"
    if c.stats is None and not c.arrivals_s:
        return STATUS_TEXT.get(c.status, "stopped before it started" if c.status == "stopped" else c.status)
    f = c.figures()
    parts = [
        f"**TTFT** {_ms(f['ttft_ms'])} ms",
        f"**{f['gen_tps']:.1f}** t/s" if f["gen_tps"] else "**—** t/s",
        f"**ITL** p50 {_ms(f['median_itl_ms'])} / p95 {_ms(f['p95_itl_ms'])} ms",
        f"**{f['n_gen']}** tok",
        f"**worker** {f['worker_peak_mib']:.0f} MiB" if f["worker_peak_mib"] else "**worker** — MiB",
    ]
    if f["contended"]:
        parts.append("**contended**")
    if c.status == "streaming":
        parts.append("streaming… (live, measured here)")
    elif c.status == "stopped":
        parts.append("**stopped**")
    elif c.stats is not None:
        parts.append(f"done ({c.stats.stop_reason}; engine's figures)")
    return " · ".join(parts)


def answer_html(c: LiveColumn, agreed: str, diverged: str) -> str:
    """A column's answer; the part from the first differing word on is bold."""
    repeat = f" #{c.repeat}" if c.repeat > 1 else ""
    head = f"{c.model} · {display_name(c.engine)}{repeat} · n_ctx {c.n_ctx}" + (
        f" — {c.mode_note}" if c.mode_note else ""
    )
    body = html.escape(agreed) + (
        f'<b class="live-diverge" style="background:rgba(255,200,0,.25)">{html.escape(diverged)}</b>'
        if diverged
        else ""
    )
    return (
        f'<div class="live-label"><sub>{html.escape(head)}</sub></div>'
        f'<div class="live-text" style="white-space:pre-wrap;min-height:8em">{body}</div>'
    )


def stats_frame(run: LiveRun) -> pd.DataFrame:
    """One row per column (LIVE_COLUMNS), for the CSV."""
    return pd.DataFrame([c.row(run.mode) for c in run.columns], columns=LIVE_COLUMNS)


def build(ctx: AppContext) -> None:
    engines = list(ENGINES)
    gr.Markdown("### Live side by side")
    with gr.Row():
        n_columns = gr.Radio([2, 3, 4], value=2, label="Columns", elem_id="live-n", scale=1)
        mode = gr.Radio(MODE_CHOICES, value="fair", label="Timing", elem_id="live-mode", scale=2)
    mode_help = gr.Markdown(MODE_HELP["fair"], elem_id="live-mode-help")
    boxes, pickers, answers, lines, stops = [], [], [], [], []
    with gr.Row():
        for i in range(MAX_COLUMNS):
            with gr.Column(min_width=220, visible=i < 2) as box:
                engine = gr.Dropdown(
                    engine_choices(engines), value=engines[0], label=f"Engine {i + 1}", elem_id=f"live-engine-{i}"
                )
                model = gr.Dropdown(
                    choices=model_choices(ctx, engines[0]),
                    value="smollm2-135m",
                    label=f"Model {i + 1}",
                    allow_custom_value=True,
                    elem_id=f"live-model-{i}",
                )
                n_ctx = gr.Number(
                    value=ctx.config.num_ctx, precision=0, label="Context (tokens)", elem_id=f"live-ctx-{i}"
                )
                engine.change(lambda e: gr.update(choices=model_choices(ctx, e)), engine, model)
                answers.append(gr.HTML("", elem_id=f"live-answer-{i}"))
                lines.append(gr.Markdown("", elem_id=f"live-line-{i}"))
                stops.append(gr.Button("Stop", variant="stop", size="sm", elem_id=f"live-stop-{i}"))
            boxes.append(box)
            pickers.append((engine, model, n_ctx))
    with gr.Row():
        every_engine = gr.Button(
            "Model 1 on every engine (its other files: GGUF on llama.cpp, MLX, safetensors on torch)",
            size="sm",
            elem_id="live-every-engine",
        )
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", scale=4, elem_id="live-prompt")
        max_tokens = gr.Number(value=64, precision=0, label="Max tokens", scale=1, elem_id="live-max-tokens")
        temperature = gr.Slider(0, 2, value=0.0, step=0.05, label="Temperature (0 = greedy)", scale=1)
        seed = gr.Number(value=0, precision=0, label="Seed", scale=1, elem_id="live-seed")
    with gr.Row():
        go = gr.Button("Stream side by side", variant="primary", elem_id="live-go")
        stop_all = gr.Button("Stop all", variant="stop", elem_id="live-stop-all")
        csv = gr.DownloadButton("Download CSV", elem_id="live-csv")
    status = gr.Markdown(
        "Greedy (temperature 0) with one seed for every column: the text from the first word where the "
        "answers differ is **bold**.",
        elem_id="live-status",
    )

    def columns_from(data: dict, session: str) -> list[LiveColumn]:
        n = int(data[n_columns])
        columns = []
        for i, (engine, model, n_ctx) in enumerate(pickers[:n]):
            name = (data[model] or "").strip()
            if not name:
                raise BadParameter(f"pick a model in column {i + 1}, or show fewer columns")
            columns.append(
                LiveColumn(
                    slot=i,
                    engine=data[engine],
                    model=name,
                    n_ctx=as_int(data[n_ctx], f"context of column {i + 1}", 16),
                    cancel=ctx.new_cancel(session, f"live-{i}"),
                )
            )
        return columns

    def draw(run: LiveRun | None, note: str, csv_path=None) -> dict:
        out = {status: note}
        if csv_path is not None:
            out[csv] = csv_path
        if run is None:
            return out | {a: "" for a in answers} | {line: "" for line in lines}
        # a stopped or failed answer ends early for no reason of its model's: it takes no part
        compared = [c for c in run.columns if c.status not in ("stopped", "failed")]
        parts = {c.slot: (c.text, "") for c in run.columns}
        if run.params.temperature == 0 and len(compared) > 1:
            split = split_at_divergence([c.text for c in compared], [c.finished for c in compared])
            parts |= {c.slot: p for c, p in zip(compared, split, strict=True)}
        for i in range(MAX_COLUMNS):
            c = next((c for c in run.columns if c.slot == i), None)
            out[answers[i]] = answer_html(c, *parts[i]) if c else ""
            out[lines[i]] = live_line(c) if c else ""
        return out

    def stream_all(data: dict, request: gr.Request):
        session = session_of(request)
        try:
            text = data[prompt] or ""
            if not text.strip():
                raise BadParameter("the prompt is empty — type something to compare")
            params = GenerationParams(
                max_tokens=as_int(data[max_tokens], "max tokens", 1),
                temperature=float(data[temperature]),
                seed=as_int(data[seed], "seed", 0),
            ).validate()
            columns = columns_from(data, session)
        except LocalbenchError as err:
            yield draw(None, warn(err))
            return

        def get_engine(engine_name: str, model_name: str, n_ctx: int):
            return ctx.pool.get(engine_name, model_name, load_config(ctx, engine_name, n_ctx))

        run = LiveRun(columns, text, params, get_engine, mode=data[mode])
        shared = len({(c.engine, c.model, c.n_ctx) for c in columns}) < len(columns)
        note = MODE_HELP[run.mode] + (
            " The same model with the same settings twice shares one worker: its requests run in turn."
            if shared
            else ""
        )
        run.start()
        drawn, warned = -1, set()
        try:
            while True:
                running = run.poll()
                for c in run.columns:
                    if c.status == "failed" and c.slot not in warned:
                        warned.add(c.slot)
                        gr.Warning(f"column {c.slot + 1}: {c.error}")
                if run.version != drawn or not running:
                    drawn = run.version
                    yield draw(run, note + " Streaming…" if running else note)
                if not running:
                    break
                time.sleep(REDRAW_S)
        finally:
            run.stop()  # the browser went away, or the run ended: nothing keeps generating
        frame = stats_frame(run)
        ok = [c for c in run.columns if c.stats is not None]
        state = "ok" if ok else ("cancelled" if all(c.status == "stopped" for c in run.columns) else "failed")
        rows = [c.row(run.mode) | {"answer": c.text, "prompt": text} for c in run.columns]
        settings = {
            "mode": run.mode,
            "columns": [(c.engine, c.model, c.n_ctx) for c in run.columns],
            **dataclasses.asdict(params),
        }
        with ctx.store.recording("live", settings, ctx.profile) as record:
            record.rows, record.status = rows, state
            record.error = "; ".join(f"column {c.slot + 1}: {c.error}" for c in run.columns if c.error)
        counts = {k: sum(c.status == k for c in run.columns) for k in ("done", "stopped", "failed")}
        summary = (
            f"Done: {counts['done']} finished, {counts['stopped']} stopped, {counts['failed']} failed; "
            "stored as kind 'live'. " + note
        )
        yield draw(run, summary, csv_file(frame, "localbench-live"))

    def stop_column(i: int):
        def stop(request: gr.Request):
            ctx.cancel(session_of(request), f"live-{i}")

        return stop

    def stop_every(request: gr.Request):
        for i in range(MAX_COLUMNS):
            ctx.cancel(session_of(request), f"live-{i}")

    inputs = {n_columns, mode, prompt, max_tokens, temperature, seed, *(p for trio in pickers for p in trio)}
    go.click(
        stream_all,
        inputs,
        [status, csv, *answers, *lines],
        concurrency_id="generate",
        show_progress="hidden",
    )
    for i, button in enumerate(stops):
        button.click(stop_column(i), None, None, queue=False)
    stop_all.click(stop_every, None, None, queue=False)
    n_columns.change(lambda n: [gr.update(visible=i < int(n)) for i in range(MAX_COLUMNS)], n_columns, boxes)

    def fill_family(model_name):
        count, updates = family_slots(ctx, model_name, MAX_COLUMNS)
        return [gr.update(value=max(2, count)) if count else gr.update(), *updates]

    every_engine.click(fill_family, pickers[0][1], [n_columns, *[c for e, m, _ in pickers for c in (e, m)]])
    mode.change(lambda m: MODE_HELP[m], mode, mode_help)
