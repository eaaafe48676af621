"""Models tab: every model on this machine, where it was found and whether it fits here, and a Fetch box
for `hf:ORG/REPO[:QUANT]` that shows the download size and the planner's verdict before any weights move.

The stores are the ones the user's tools already fill (models.stores: the Hugging Face cache, LM Studio,
Ollama, llama.cpp's cache, LOCALBENCH_MODELS); the table is planning.inventory's, as `python app.py models`
prints it, and downloads as CSV with every field.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from core.errors import BadParameter, LocalbenchError
from dashboard.context import AppContext
from dashboard.ui import csv_file, session_of, warn
from planning.inventory import plan_summary

SCOPE = "fetch"


def where_text() -> str:
    """Where each store is looked for on this machine, and whether it is there."""
    from models.stores import STORES, store_roots

    lines = ["Models are found where your tools keep them:"]
    for source in STORES:
        roots = store_roots(source)
        none = "not set" if source == "LOCALBENCH_MODELS" else "none of its usual folders exists here"
        shown = ", ".join(f"`{r}`" + ("" if r.exists() else " (absent)") for r in roots) or none
        lines.append(f"- **{source}**: {shown}")
    lines.append(
        "\nSet LOCALBENCH_MODELS to a folder of GGUF files or HF/MLX folders (searched recursively), or point "
        "HF_HOME, OLLAMA_MODELS or LLAMA_CACHE elsewhere; any path also works as a model name."
    )
    return "\n".join(lines)


def inventory_frames(ctx: AppContext):
    """(short table, every field) for the machine's models now."""
    from models.catalog import all_entries
    from planning.inventory import DISPLAY_COLUMNS, display_row, inventory

    rows = inventory(ctx.profile, entries=all_entries())
    short = pd.DataFrame([display_row(r) for r in rows], columns=list(DISPLAY_COLUMNS))
    return short, pd.DataFrame([r.to_row() for r in rows])


def build(ctx: AppContext) -> None:
    gr.Markdown(where_text(), elem_id="models-where")
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", elem_id="models-refresh")
    try:
        short, full = inventory_frames(ctx)
        first_csv = csv_file(full, "localbench-models")
    except LocalbenchError as err:
        short, first_csv = pd.DataFrame(), None
        warn(err)
    table = gr.Dataframe(short, interactive=False, wrap=True, elem_id="models-table", label="Models on this machine")
    download = gr.File(first_csv, label="CSV (every field)", elem_id="models-csv")

    gr.Markdown("### Fetch a model from the Hugging Face Hub")
    with gr.Row():
        name = gr.Textbox(
            label="hf:ORG/REPO or hf:ORG/REPO:QUANT",
            placeholder="hf:ORG/REPO:Q4_K_M",
            elem_id="models-fetch-name",
            scale=3,
        )
        anyway = gr.Checkbox(False, label="download even if it does not fit", elem_id="models-fetch-anyway")
    with gr.Row():
        check = gr.Button("Check size and fit", elem_id="models-fetch-check")
        fetch = gr.Button("Download", variant="primary", elem_id="models-fetch-run")
        stop = gr.Button("Cancel", variant="stop", elem_id="models-fetch-cancel")
    status = gr.Markdown(
        "Type a repo id and press Check: nothing is downloaded until you press Download.", elem_id="models-fetch-status"
    )

    def show():
        try:
            short, full = inventory_frames(ctx)
        except LocalbenchError as err:
            return gr.update(), gr.update(), warn(err)
        return short, csv_file(full, "localbench-models"), gr.update()

    def plan_of(text):
        from models import hub
        from planning.inventory import remote_verdict

        spec = hub.parse_spec((text or "").strip())
        plan = hub.remote_plan(spec)
        return spec, plan, remote_verdict(plan, ctx.profile)  # the machine the table's verdicts are for

    def check_fetch(text):
        try:
            _, plan, verdict = plan_of(text)
        except LocalbenchError as err:
            return warn(err)
        return f"**{plan.name}**: {plan_summary(plan)}. Here: **{verdict.verdict}** — {verdict.why}."

    def run_fetch(text, force, request: gr.Request, progress=gr.Progress()):
        from models import hub

        cancel = ctx.new_cancel(session_of(request), SCOPE)
        try:
            spec, plan, verdict = plan_of(text)
            if verdict.verdict == "does not fit" and not force:
                raise BadParameter(
                    f"{spec.name} does not fit this machine ({verdict.why}) — tick 'download even if it does "
                    "not fit' to download it anyway"
                )
            progress(0.0, desc=f"fetching {spec.name}")
            entry = hub.fetch(spec, progress=lambda f, m: progress(f, desc=m), cancel=cancel)
        except LocalbenchError as err:
            return warn(err), gr.update(), gr.update()
        short, full = inventory_frames(ctx)
        message = f"Fetched **{entry.name}** ({plan_summary(plan)}) into `{entry.path}` — pick it in any model list."
        return message, short, csv_file(full, "localbench-models")

    def cancel_fetch(request: gr.Request):
        ctx.cancel(session_of(request), SCOPE)

    refresh.click(show, None, [table, download, status])
    check.click(check_fetch, name, status, concurrency_id="fetch-check")
    fetch.click(run_fetch, [name, anyway], [status, table, download], concurrency_id="fetch", show_progress_on=status)
    stop.click(cancel_fetch, None, None, queue=False)
