"""Benchmarks tab: the design record's scorecard (six criteria, verdicts from stored runs), with a CSV."""

from __future__ import annotations

import gradio as gr

from bench.results.export import to_frame
from bench.scorecard import load_evidence, scorecard
from dashboard.context import AppContext
from dashboard.ui import csv_file

INTRO = (
    "### Scorecard\nEach criterion of the design record, judged only from runs in the results store (this "
    "machine's and imported ones). `not measurable` says what is missing; a small model's figure is never "
    "scaled to an 8B verdict. How each is measured: docs/scorecard.md. Same table: `python app.py scorecard`."
)


def build(ctx: AppContext) -> None:
    def card():
        frame = to_frame(scorecard(*load_evidence(ctx.store)))
        return frame, csv_file(frame, "localbench-scorecard")

    gr.Markdown(INTRO)
    refresh = gr.Button("Refresh scorecard", elem_id="scorecard-refresh")
    table = gr.Dataframe(
        value=lambda: card()[0], label="Scorecard", interactive=False, wrap=True, elem_id="scorecard-table"
    )
    download = gr.DownloadButton("Download scorecard CSV", value=lambda: card()[1], elem_id="scorecard-download")
    refresh.click(card, None, [table, download])
