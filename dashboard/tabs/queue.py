"""Queue tab: the unattended compare queue — a prompt set on 2–4 (engine, model) entries, one answer at a time.

The prompt set is the built-in short set, pasted text (one prompt per line) or an uploaded .txt/.jsonl file.
Run stores the queue's plan, then each answer as soon as it is finished (bench.answers.queue, in the results
store), so Stop or a crash loses at most the answer in flight: pick the queue under "Stored queues" and
Resume runs only the missing cells. The grid puts prompts in rows and entries in columns, each cell the
answer and its statistics line; CSV and JSONL downloads are `python app.py queue export` of the same queue.
"""

from __future__ import annotations

import dataclasses
import html
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from bench.answers.entry import Entry, engine_answer
from bench.answers.queue import (
    BUILT_IN_PROMPTS,
    cells_frame,
    export_cells,
    list_plans,
    load_plan,
    parse_prompts,
    queue_entries,
    read_prompts,
    run_queue,
    save_plan,
)
from core.errors import BadParameter, Cancelled, LocalbenchError
from dashboard.context import AppContext
from dashboard.pickers import entry_picker, load_config, with_entry
from dashboard.ui import as_int, session_of, warn

SOURCES = ["Built-in short set (3 prompts)", "Paste (one prompt per line)", "Upload a .txt or .jsonl file"]
MAX_ENTRIES = 4


def stats_line(cell: dict) -> str:
    """'N tokens · X t/s · TTFT Y ms' for a grid cell, plus the model's load time when this answer loaded it;
    '—' where a figure is unknown (pure)."""

    def known(value) -> bool:
        return value is not None and value == value  # NaN is unknown

    tokens = f"{int(cell['gen_tokens'])} tokens" if known(cell.get("gen_tokens")) else "— tokens"
    tps = f"{cell['gen_tps']:.1f} t/s" if known(cell.get("gen_tps")) and cell["gen_tps"] > 0 else "— t/s"
    ttft = f"TTFT {cell['ttft_s'] * 1e3:.0f} ms" if known(cell.get("ttft_s")) else "TTFT — ms"
    load = (
        f" · load {cell['load_s']:.1f} s before this answer, not in its TTFT"
        if known(cell.get("load_s")) and cell["load_s"] > 0
        else ""
    )
    return f"{tokens} · {tps} · {ttft}{load}"


def grid_html(plan, cells: pd.DataFrame) -> str:
    """Prompts in rows, entries in columns; each cell the answer and its statistics line (pure)."""
    by_cell = {(c["prompt_index"], c["entry"]): c for c in cells.to_dict(orient="records")}
    head = "".join(f"<th>{html.escape(e.label)}</th>" for e in plan.entries)
    body = []
    for i, prompt in enumerate(plan.prompts):
        tds = []
        for e in plan.entries:
            cell = by_cell.get((i, e.label))
            if cell is None:
                tds.append('<td class="queue-missing">— not run yet</td>')
            elif cell["status"] != "ok":
                tds.append(f'<td class="queue-failed">⚠️ {html.escape(str(cell["error"]))}</td>')
            else:
                tds.append(
                    f'<td class="queue-cell"><div class="queue-answer">{html.escape(cell["answer"])}</div>'
                    f'<div class="queue-stats"><small>{stats_line(cell)}</small></div></td>'
                )
        body.append(f"<tr><th>{i + 1}. {html.escape(prompt)}</th>{''.join(tds)}</tr>")
    style = (
        "<style>#queue-grid table{border-collapse:collapse;width:100%}#queue-grid td,#queue-grid th{border:1px "
        "solid #8884;padding:6px;vertical-align:top;text-align:left}.queue-answer{white-space:pre-wrap}</style>"
    )
    note = (
        f"<p>Queue <code>{plan.queue_id}</code>: {len(cells[cells['status'] == 'ok'])} of "
        f"{len(plan.prompts) * len(plan.entries)} answers stored. Tokens are generated tokens; t/s is the "
        "generation rate (engine counters where it has them); TTFT is measured here, request to first text.</p>"
    )
    return f"{style}{note}<table><tr><th>prompt</th>{head}</tr>{''.join(body)}</table>"


def download_files(plan, cells: pd.DataFrame) -> tuple[str, str]:
    """The queue's cells as CSV and JSONL files in a temp folder (for the download buttons)."""
    folder = Path(tempfile.mkdtemp(prefix="localbench-queue-"))
    paths = []
    for fmt in ("csv", "jsonl"):
        path = folder / f"localbench-queue-{plan.queue_id}.{fmt}"
        path.write_text(export_cells(cells, fmt), encoding="utf-8")
        paths.append(str(path))
    return paths[0], paths[1]


def entries_markdown(entries: list[Entry]) -> str:
    """The chosen entries with the labels the grid will show (the same model twice gets ' #2')."""
    if not entries:
        return "Entries: none yet — add 2 to 4."
    labels = " | ".join(f"`{e.label}`" for e in queue_entries(entries))
    return f"Entries ({len(entries)}): {labels}" + (" — add at least one more." if len(entries) < 2 else "")


def prompts_of(source: str, pasted: str, upload) -> list[str]:
    """The chosen prompt set, or BadParameter with one line."""
    if source == SOURCES[0]:
        return list(BUILT_IN_PROMPTS)
    if source == SOURCES[1]:
        return parse_prompts(pasted, name="the pasted text")
    if not upload:
        raise BadParameter("no file uploaded — drop a .txt (one prompt per line) or .jsonl file first")
    return read_prompts(upload if isinstance(upload, str) else upload.name)


def plan_choices(store) -> list[tuple[str, str]]:
    """(label, queue id) of every stored queue, newest first."""
    return [
        (f"{p['queue_id']} · {p['done']}/{p['total']} · {p['created_at'][:16]}", p["queue_id"])
        for p in list_plans(store)
    ]


def build(ctx: AppContext) -> None:
    gr.Markdown(
        "Unattended compare queue: every prompt on every entry, one answer at a time (fair timing), each "
        "answer stored as soon as it is done. Stop, or a crash, loses at most the answer in flight: "
        "Resume runs only the missing cells."
    )
    with gr.Row():
        source = gr.Radio(SOURCES, value=SOURCES[0], label="Prompt set", elem_id="queue-source")
    with gr.Row():
        pasted = gr.Textbox(label="Prompts (one per line)", lines=4, elem_id="queue-paste")
        upload = gr.File(label="Prompt file (.txt or .jsonl)", file_types=[".txt", ".jsonl"], elem_id="queue-upload")
    engine, model, temperature, seed, add, clear = entry_picker(ctx, "queue", "Add entry", "Clear entries")
    add_family = gr.Button("Add this model on every engine", size="sm", elem_id="queue-add-family")
    entries_state = gr.State([])
    entries_md = gr.Markdown(entries_markdown([]), elem_id="queue-entries")
    with gr.Row():
        max_tokens = gr.Number(value=64, precision=0, label="Max tokens per answer", elem_id="queue-max-tokens")
        n_ctx = gr.Number(value=ctx.config.num_ctx, precision=0, label="Context (tokens)", elem_id="queue-ctx")
    with gr.Row():
        run_button = gr.Button("Run queue", variant="primary", elem_id="queue-run")
        stop = gr.Button("Stop", variant="stop", elem_id="queue-stop")
    status = gr.Markdown("", elem_id="queue-status")
    with gr.Row():
        stored = gr.Dropdown(
            plan_choices(ctx.store),
            label="Stored queues (id · answers done / total · date)",
            scale=3,
            elem_id="queue-pick",
        )
        refresh = gr.Button("Refresh list", elem_id="queue-refresh")
        show = gr.Button("Show", elem_id="queue-show")
        resume = gr.Button("Resume", elem_id="queue-resume")
    grid = gr.HTML("", elem_id="queue-grid")
    with gr.Row():
        csv_button = gr.DownloadButton("Download CSV", elem_id="queue-csv")
        jsonl_button = gr.DownloadButton("Download JSONL", elem_id="queue-jsonl")

    def queue_choices(selected: str | None = None):
        choices = plan_choices(ctx.store)
        return gr.update(choices=choices, value=selected if selected in {c[1] for c in choices} else None)

    def add_entry(engine_name, model_name, temp, seed_value, entries):
        entries = with_entry(entries, engine_name, model_name, temp, seed_value, limit=MAX_ENTRIES)
        return entries, entries_markdown(entries)

    def add_every_engine(model_name, temp, seed_value, entries):
        """The picked model and its family's other formats, each on the engine that runs it (planning.inventory)."""
        from planning.inventory import family_runs

        runs = family_runs((model_name or "").strip())
        if not runs:
            gr.Warning(f"{model_name or 'no model'} is not a model file on this machine — pick one first")
        for engine_name, name in runs:
            entries = with_entry(entries, engine_name, name, temp, seed_value, limit=MAX_ENTRIES)
        return entries, entries_markdown(entries)

    def shown(plan, message: str):
        cells = cells_frame(ctx.store, plan)
        csv_path, jsonl_path = download_files(plan, cells)
        return message, grid_html(plan, cells), csv_path, jsonl_path, queue_choices(plan.queue_id)

    def execute(plan, request, progress):
        cancel = ctx.new_cancel(session_of(request), "queue")

        def answer(prompt, entry):
            config = load_config(ctx, entry.engine, plan.n_ctx)
            text, stats = engine_answer(
                ctx.pool.get(entry.engine, entry.model, config), prompt, entry, plan.max_tokens, cancel
            )
            if cancel.is_set() or (stats is not None and stats.stop_reason == "cancelled"):
                raise Cancelled("stopped mid-answer: that answer was not stored")
            return text, stats

        total = len(plan.prompts) * len(plan.entries)
        progress(0, desc=f"queue {plan.queue_id}: starting")
        try:
            counts = run_queue(
                ctx.store,
                plan.queue_id,
                plan.prompts,
                plan.entries,
                answer,
                lambda done, n, message: progress(done / n, desc=f"{done}/{n}: {message}"),
                cancel,
                hardware=dataclasses.asdict(ctx.profile),
            )
        except Cancelled:
            done = int((cells_frame(ctx.store, plan)["status"] == "ok").sum())
            return shown(plan, f"Stopped: {done} of {total} answers stored. Resume runs the rest.")
        message = (
            f"Done: queue `{plan.queue_id}`, {counts['done']} answered, {counts['skipped']} already stored, "
            f"{counts['failed']} failed."
        )
        return shown(plan, message + (" Resume retries the failed ones." if counts["failed"] else ""))

    def run_new(src, text, file, entries, max_toks, ctx_tokens, request: gr.Request, progress=gr.Progress()):
        try:
            if not 2 <= len(entries) <= MAX_ENTRIES:
                raise BadParameter(f"add 2 to {MAX_ENTRIES} entries to compare, the queue has {len(entries)}")
            prompts = prompts_of(src, text, file)
            limit = as_int(max_toks, "max tokens", 1, 32_768)
            window = as_int(ctx_tokens, "context (tokens)", 16)
            plan = save_plan(ctx.store, prompts, entries, limit, window, hardware=dataclasses.asdict(ctx.profile))
        except LocalbenchError as err:
            return warn(err), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return execute(plan, request, progress)

    def run_resume(queue_id, request: gr.Request, progress=gr.Progress()):
        try:
            if not queue_id:
                raise BadParameter("pick a stored queue to resume (Refresh list if it is not there)")
            plan = load_plan(ctx.store, queue_id)
        except LocalbenchError as err:
            return warn(err), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return execute(plan, request, progress)

    def show_queue(queue_id):
        try:
            if not queue_id:
                raise BadParameter("pick a stored queue to show")
            plan = load_plan(ctx.store, queue_id)
        except LocalbenchError as err:
            return warn(err), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return shown(plan, f"Queue `{plan.queue_id}` from {plan.created_at[:16]}.")

    def stop_queue(request: gr.Request):
        ctx.cancel(session_of(request), "queue")

    outputs = [status, grid, csv_button, jsonl_button, stored]
    add.click(add_entry, [engine, model, temperature, seed, entries_state], [entries_state, entries_md])
    add_family.click(add_every_engine, [model, temperature, seed, entries_state], [entries_state, entries_md])
    clear.click(lambda: ([], entries_markdown([])), None, [entries_state, entries_md])
    run_button.click(
        run_new,
        [source, pasted, upload, entries_state, max_tokens, n_ctx],
        outputs,
        concurrency_id="generate",
        show_progress_on=status,
    )
    resume.click(run_resume, stored, outputs, concurrency_id="generate", show_progress_on=status)
    stop.click(stop_queue, None, None, queue=False)
    show.click(show_queue, stored, outputs)
    refresh.click(queue_choices, None, stored)
