"""Compare tab, depth section: t/s against KV depth for each compared model and engine, an altair line chart
with error bars from the raw samples, beside the memory planner's maximum context for each model on this
machine (an estimate, stated beside the chart).

The runs are the speed runner's (bench.speed.runner.run_speed) at every depth asked for, one model after
another, stored as kind 'speed' with `depth_sweep` in the settings; the rows are bench.speed.depth's.
"""

from __future__ import annotations

from collections.abc import Callable

import altair as alt
import gradio as gr
import pandas as pd

from bench.results.export import to_frame
from bench.speed.depth import DEPTH_COLUMNS, depth_table, planned_for, samples_long
from bench.speed.orchestrate import SpeedSettings, arms_of
from bench.speed.plan import int_values
from bench.speed.runner import plan_tests
from core.errors import BadParameter, LocalbenchError
from dashboard.context import AppContext
from dashboard.names import display_name
from dashboard.pickers import load_config, tab_speed_run
from dashboard.ui import as_int, csv_file, session_of, warn

MAX_DEPTH = 1 << 17
"""The largest depth the section accepts, tokens."""


def parse_depths(text: str) -> list[int]:
    """'0,256' or '0,256-4096*2' → depths (llama-bench's list syntax); BadParameter on anything else."""
    try:
        depths = int_values(text or "")
    except ValueError:
        depths = []
    if not depths or any(not 0 <= d <= MAX_DEPTH for d in depths):
        raise BadParameter(
            f"depths: expected tokens between 0 and {MAX_DEPTH} such as 0,256 or 0,256-4096*2, got {text!r}"
        )
    return sorted(set(depths))


def depth_chart(frame: pd.DataFrame) -> alt.Chart:
    """Mean t/s against depth, one line per model · engine, one panel per test; error bars are ± one
    sample stddev of the raw repetitions."""
    long = samples_long(frame)
    long["label"] = [
        " · ".join(x for x in (m, display_name(e), c) if x)
        for m, e, c in zip(long["model"], long["engine"], long["config"], strict=True)
    ]
    base = alt.Chart(long).encode(
        x=alt.X("n_depth:Q", title="KV depth (tokens before the test)"),
        color=alt.Color("label:N", title="model · engine"),
    )
    line = base.mark_line(point=True).encode(
        y=alt.Y("mean(ts):Q", title="tokens/s (mean of repetitions)"),
        tooltip=["label:N", "test:N", "n_depth:Q", alt.Tooltip("mean(ts):Q", format=".2f", title="mean t/s")],
    )
    bars = base.mark_errorbar(extent="stdev").encode(y=alt.Y("ts:Q", title="tokens/s (mean of repetitions)"))
    return (line + bars).properties(width=340, height=220).facet(column=alt.Column("test:N", title=None))


def planner_markdown(frame: pd.DataFrame) -> str:
    lines = ["**Planner's maximum context on this machine** (planning.estimate — an estimate, not measured):"]
    lines += [f"- {p.model}: {p.sentence}" for p in planned_for(frame)]
    return "\n".join(lines)


def build(ctx: AppContext, slot_inputs: list, chosen: Callable, n_prompt, n_gen, reps, n_ctx) -> None:
    """The section's controls under the speed test; `chosen(values)` → [(slot, engine, model)]."""
    gr.Markdown("### Speed against KV depth (llama-bench -d)")
    with gr.Row():
        depths = gr.Textbox(
            value="0,256,1024", label="Depths (tokens), e.g. 0,256 or 0,512-4096*2", elem_id="cmp-depths"
        )
        run = gr.Button("Run depth sweep", variant="primary", elem_id="cmp-depth-run")
        cancel = gr.Button("Cancel", variant="stop", elem_id="cmp-depth-cancel")
    status = gr.Markdown("", elem_id="cmp-depth-status")
    planner = gr.Markdown("", elem_id="cmp-depth-planner")
    chart = gr.Plot(elem_id="cmp-depth-chart")
    table = gr.Dataframe(pd.DataFrame(columns=DEPTH_COLUMNS), interactive=False, elem_id="cmp-depth-table")
    download = gr.DownloadButton("Download CSV", elem_id="cmp-depth-csv")
    gr.Markdown(
        "Each test runs after a KV cache holding the depth's tokens (a random prompt prefix, untimed for tg; "
        "the row's `depth_method` says what was timed). The pp, tg and repetitions settings are the speed "
        "test's above; the context is raised to fit the deepest test."
    )

    def depth_run(e0, m0, e1, m1, e2, m2, ctx_tokens, pp, tg, repetitions, depth_text, request: gr.Request,
                  progress=gr.Progress()):  # fmt: skip
        slot_values = (e0, m0, e1, m1, e2, m2)
        cancel_event = ctx.new_cancel(session_of(request), "compare-depth")
        try:
            d = parse_depths(depth_text)
            tests = tuple(plan_tests([as_int(pp, "pp tokens", 0)], [as_int(tg, "tg tokens", 0)], [], d))
            needed = max((t.n_depth + t.n_prompt + t.n_gen for t in tests), default=0) + 64
            n_ctx_tokens = max(as_int(ctx_tokens, "context (tokens)", 16), needed)
            settings = SpeedSettings(
                arms=arms_of([(e, m) for _, e, m in chosen(slot_values)], lambda e: load_config(ctx, e, n_ctx_tokens)),
                tests=tests,
                repetitions=as_int(repetitions, "repetitions", 1, 100),
                order="sequential",
            )
            report = tab_speed_run(ctx, settings, progress, cancel_event)
        except LocalbenchError as err:
            return warn(err), gr.update(), gr.update(), gr.update(), gr.update()
        results = report.rows
        frame = to_frame(results)
        return (
            f"Done: {len(results)} rows at depths {', '.join(map(str, d))} stored (run {report.run_id}). "
            f"Method: {results[0].method if results else ''}.",
            planner_markdown(frame),
            depth_chart(frame),
            depth_table(frame).assign(engine=lambda t: t["engine"].map(display_name)),
            csv_file(frame, "localbench-depth"),
        )

    def stop(request: gr.Request):
        ctx.cancel(session_of(request), "compare-depth")

    run.click(
        depth_run,
        [*slot_inputs, n_ctx, n_prompt, n_gen, reps, depths],
        [status, planner, chart, table, download],
        concurrency_id="generate",
        show_progress_on=status,
    )
    cancel.click(stop, None, None, queue=False)
