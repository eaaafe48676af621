"""Results tab: every stored run, and the rows of any kind as a table with a CSV download."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from bench.export import to_frame
from dashboard.context import AppContext
from dashboard.ui import csv_file

DEFAULT_KINDS = ["speed", "chat"]


def build(ctx: AppContext) -> None:
    def runs_frame(kind_name: str | None) -> pd.DataFrame:
        frame = pd.DataFrame(ctx.store.runs(kind_name or None))
        return frame.drop(columns=["settings_json"]) if not frame.empty else frame

    def rows_frame(kind_name: str | None) -> pd.DataFrame:
        return to_frame(ctx.store.rows(kind_name or None))

    with gr.Row():
        kind = gr.Dropdown(DEFAULT_KINDS, value="speed", label="Kind", allow_custom_value=True, elem_id="results-kind")
        refresh = gr.Button("Refresh", elem_id="results-refresh")
    runs = gr.Dataframe(
        value=lambda: runs_frame("speed"), label="Runs (newest first)", interactive=False, elem_id="results-runs"
    )
    rows = gr.Dataframe(
        value=lambda: rows_frame("speed"), label="Result rows", interactive=False, elem_id="results-rows"
    )
    download = gr.DownloadButton("Download CSV", elem_id="results-download")

    def load(kind_name: str):
        frame = rows_frame(kind_name)
        path = csv_file(frame, f"localbench-{kind_name or 'all'}") if not frame.empty else None
        kinds = sorted({r["kind"] for r in ctx.store.runs()} | set(DEFAULT_KINDS))
        return gr.update(choices=kinds), runs_frame(kind_name), frame, path

    refresh.click(load, kind, [kind, runs, rows, download])
    kind.change(load, kind, [kind, runs, rows, download])
