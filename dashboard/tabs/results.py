"""Results tab: every stored run, and the rows of any kind as a table with a CSV download."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from bench.export import to_frame
from dashboard.context import AppContext
from dashboard.ui import csv_file


def build(ctx: AppContext) -> None:
    with gr.Row():
        kind = gr.Dropdown(
            ["speed", "chat"], value="speed", label="Kind", allow_custom_value=True, elem_id="results-kind"
        )
        refresh = gr.Button("Refresh", elem_id="results-refresh")
    runs = gr.Dataframe(label="Runs (newest first)", interactive=False, elem_id="results-runs")
    rows = gr.Dataframe(label="Result rows", interactive=False, elem_id="results-rows")
    download = gr.DownloadButton("Download CSV", elem_id="results-download")

    def load(kind_name: str):
        run_list = pd.DataFrame(ctx.store.runs(kind_name or None))
        if not run_list.empty:
            run_list = run_list.drop(columns=["settings_json"])
        frame = to_frame(ctx.store.rows(kind_name or None))
        path = csv_file(frame, f"localbench-{kind_name or 'all'}") if not frame.empty else None
        kinds = sorted({r["kind"] for r in ctx.store.runs()} | {"speed", "chat"})
        return gr.update(choices=kinds), run_list, frame, path

    refresh.click(load, kind, [kind, runs, rows, download])
    kind.change(load, kind, [kind, runs, rows, download])
