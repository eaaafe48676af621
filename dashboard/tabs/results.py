"""Results tab: the history of every run from every machine, filters, a compare view with a chart, delete,
CSV downloads and import of an exported file. The same history is `python app.py results
list|export|import|delete`; Import is the CLI's own path (bench.results.transfer.import_file): at most 50 MiB
of a regular file is read, every run is validated before anything is written (a file with a bad run is
refused whole, with the first reason), and run ids already stored are skipped."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from bench.results.export import to_frame
from bench.results.transfer import export_text, history_frame, import_file
from bench.speed.ab import SampledTest, compare_runs
from core.errors import BadParameter, LocalbenchError
from dashboard.context import AppContext
from dashboard.ui import csv_file, warn

ALL = "(all)"
FILTERS = ("kind", "status", "model", "engine", "machine")
COMPARE_COLUMNS = [
    "run_id",
    "model",
    "engine",
    "device",
    "test",
    "avg_ts",
    "stddev_ts",
    "cv_pct",
    "noisy",
    "contended",
    "avg_ttft_ms",
    "roofline_pct",
]


def filtered(history: pd.DataFrame, values: dict[str, str]) -> pd.DataFrame:
    """The history rows matching every filter that is not (all) (pure)."""
    out = history
    for column, value in values.items():
        if value and value != ALL:
            out = out[out[column] == value]
    return out.reset_index(drop=True)


def compare_frames(store, run_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(rows of the chosen speed runs, their chart data, a note on significance between the first two)."""
    if not run_ids:
        raise BadParameter("tick nothing? type one or more run ids (from the history) to compare")
    rows = [r for rid in run_ids for r in store.rows("speed", rid)]
    if not rows:
        raise BadParameter(f"no speed rows in run(s) {', '.join(run_ids)} — only speed runs can be compared")
    frame = to_frame(rows)
    table = frame[[c for c in COMPARE_COLUMNS if c in frame.columns]].round(2)
    # one bar per (test, run): a colour per run on a shared x would stack the runs
    label = frame["test"].astype(str) + " · " + frame["run_id"].astype(str)
    chart = pd.DataFrame({"test_run": label, "avg_ts": frame["avg_ts"], "run": frame["run_id"]})
    note = ""
    if len(run_ids) >= 2:
        try:
            first, second = ([SampledTest.from_row(r) for r in rows if r["run_id"] == rid] for rid in run_ids[:2])
        except ValueError as err:  # an imported row without its samples
            return table, chart, f"{run_ids[0]} vs {run_ids[1]}: no significance test — {err}"
        lines = []
        for c in compare_runs(first, second, run_ids[0], run_ids[1]):
            verdict = "**significant**" if c.significant else "not significant"
            lines.append(
                f"- {c.test}: {c.a_avg_ts:.1f} → {c.b_avg_ts:.1f} t/s ({c.diff_pct:+.1f} %), p = {c.p_value:.3g}: "
                f"{verdict}"
            )
        note = f"{run_ids[0]} vs {run_ids[1]}, Welch's t-test on the raw samples (p < 0.05):\n" + "\n".join(lines)
    return table, chart, note


def export_file(runs: list[dict]) -> str:
    """The runs as a results-export CSV (what `results export -o csv` writes) in a temp file, for download."""
    folder = Path(tempfile.mkdtemp(prefix="localbench-"))
    path = folder / "localbench-results-export.csv"
    path.write_text(export_text(runs, "csv"), encoding="utf-8")
    return str(path)


def build(ctx: AppContext) -> None:
    def history() -> pd.DataFrame:
        return history_frame(ctx.store.export_runs())

    def choices(frame: pd.DataFrame, column: str) -> list[str]:
        return [ALL, *sorted({str(v) for v in frame[column] if v})]

    def show(*values):
        stored = ctx.store.export_runs()
        shown = filtered(history_frame(stored), dict(zip(FILTERS, values, strict=True)))
        if shown.empty:
            return shown, None, None
        keep = set(shown["run_id"])
        return shown, csv_file(shown, "localbench-history"), export_file([r for r in stored if r["run_id"] in keep])

    with gr.Row():
        boxes = {
            c: gr.Dropdown([ALL], value=ALL, label=c.capitalize(), allow_custom_value=True, elem_id=f"results-{c}")
            for c in FILTERS
        }
        refresh = gr.Button("Refresh", elem_id="results-refresh")
    runs = gr.Dataframe(value=history, label="History (newest first)", interactive=False, elem_id="results-runs")
    with gr.Row():
        download = gr.DownloadButton(
            "Download history CSV", value=lambda: show(*[ALL] * len(FILTERS))[1], elem_id="results-download"
        )
        export = gr.DownloadButton(
            "Download export CSV (the shown runs whole, to import elsewhere)",
            value=lambda: show(*[ALL] * len(FILTERS))[2],
            elem_id="results-export",
        )
    with gr.Row():
        ids = gr.Textbox(label="Run ids (comma-separated)", elem_id="results-ids")
        compare = gr.Button("Compare these runs", elem_id="results-compare")
        delete = gr.Button("Delete these runs", variant="stop", elem_id="results-delete")
    status = gr.Markdown(elem_id="results-status")
    with gr.Row():
        upload = gr.File(
            label="Import a results export (CSV or JSON, from `results export` or the download above)",
            file_types=[".csv", ".json"],
            elem_id="results-import-file",
        )
        import_button = gr.Button("Import", elem_id="results-import")
    import_status = gr.Markdown(elem_id="results-import-status")
    rows = gr.Dataframe(label="Rows of the compared runs", interactive=False, elem_id="results-rows")
    chart = gr.BarPlot(x="test_run", y="avg_ts", color="run", label="t/s by test and run", elem_id="results-chart")

    def load(*values):
        # choices change only here: updating them from a filter's own event would fire it again
        full = history()
        return *[gr.update(choices=choices(full, c)) for c in FILTERS], *show(*values)

    def parse_ids(text: str) -> list[str]:
        return [x.strip() for x in (text or "").replace(" ", ",").split(",") if x.strip()]

    def do_compare(text: str):
        try:
            table, data, note = compare_frames(ctx.store, parse_ids(text))
        except LocalbenchError as err:
            return warn(err), gr.update(), gr.update()
        return note or f"{len(table)} rows", table, data

    def do_delete(text: str, *values):
        chosen = parse_ids(text)
        known = set(history()["run_id"])
        unknown = [r for r in chosen if r not in known]
        message = f"no stored run with id {', '.join(unknown)}" if unknown else f"deleted {len(chosen)} run(s)"
        for run_id in [] if unknown else chosen:
            ctx.store.delete_run(run_id)
        return message, *load(*values)

    def do_import(file, *values):
        try:
            if not file:
                raise BadParameter("no file chosen — drop an exported CSV or JSON file first")
            path = file if isinstance(file, str) else file.name
            result = import_file(ctx.store, path, name=Path(path).name)
        except LocalbenchError as err:
            return warn(err), *[gr.skip()] * len(outputs)
        message = (
            f"imported {len(result.added)} runs, skipped {len(result.skipped)} duplicates, "
            f"rejected {len(result.rejected)} rows" + (f": {result.reasons()}" if result.rejected else "")
        )
        return message, *load(*values)

    inputs = list(boxes.values())
    outputs = [*boxes.values(), runs, download, export]
    refresh.click(load, inputs, outputs)
    for box in boxes.values():
        box.input(show, inputs, [runs, download, export])
    compare.click(do_compare, ids, [status, rows, chart])
    delete.click(do_delete, [ids, *inputs], [status, *outputs])
    import_button.click(do_import, [upload, *inputs], [import_status, *outputs])
