"""Quantization tab: build a model's GGUF ladder and compare the ticked variants side by side.

The user picks a model (bundled SmolLM2-135M or Gemma 3 270M, any GGUF by path, an HF safetensors original by
folder, and whatever extra sources other engines register), ticks variants, types a prompt and presses Compare.
From an original, the reference is the F16 GGUF llama.cpp's own converter makes from it, and the status names it
as the original; from a quantized GGUF it is the F16 dequantized from it, as the status says. Progress shows
in the tab and Cancel stops at the next step. The result: each variant's greedy answer in its own
column (chat or plain completion, said above the answers), a metrics table, an altair chart of
generation t/s against mean KLD with the Pareto frontier, size bars with effective bits per weight,
the design target's (ADR 006) verdict and a CSV download. The table is the CLI's
(bench.quant.summary.summary_frame); every column is in the CSV. Every run is stored (kind 'quant').
"""

from __future__ import annotations

import html
import math

import gradio as gr

from bench.quant import lab as quant_lab
from bench.quant import summary as quant_summary
from bench.quant.ladder import LADDER_TYPES
from core.errors import LocalbenchError
from dashboard.context import AppContext
from dashboard.ui import as_int, csv_file, session_of, warn

SCOPE = "quant"
COLUMN_WIDTHS = {
    "variant": "13%",
    "type": "8%",
    "size MiB": "7%",
    "bpw": "7%",
    "ΔPPL %": "7%",
    "KLD mean": "8%",
    "pp t/s": "13%",
    "tg t/s": "13%",
    "TTFT ms": "8%",
    "peak RSS MiB": "6%",
    "design target (ADR 006)": "10%",
}
"""Shares of the table's width per column of quant_summary.summary_frame: together 100 %, so the table
fits its column instead of scrolling sideways (the CSV keeps every column)."""


def _mib(frame):
    return (frame["model_size"] / 2**20).round(1)


KLD_TICKS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
"""x-axis ticks of the symlog KLD axis: far enough apart on it that their labels never collide."""


def pareto_chart(frame):
    """Generation t/s (mean ± sample stddev as error bars) against mean KLD (symlog axis), each variant
    labelled, Pareto frontier drawn."""
    import altair as alt

    data = frame[["variant", "kld_mean", "tg_avg_ts", "tg_stddev_ts", "bpw", "delta_ppl_pct"]].copy()
    data = data.dropna(subset=["kld_mean", "tg_avg_ts"])
    if data.empty:
        return None
    data["pareto"] = quant_summary.pareto_front(list(data["kld_mean"]), list(data["tg_avg_ts"]))
    data["frontier"] = data["pareto"].map({True: "on the Pareto frontier", False: "dominated"})
    sd = data["tg_stddev_ts"].fillna(0.0)
    data["tg_low"], data["tg_high"] = data["tg_avg_ts"] - sd, data["tg_avg_ts"] + sd
    top = float(data["kld_mean"].max())
    ticks = [t for t in KLD_TICKS if t <= max(top, 0.01) * 1.5] or [0.0]
    x = alt.X(
        "kld_mean:Q",
        title="mean KLD vs reference (nats, symlog)",
        scale=alt.Scale(type="symlog", constant=0.01, padding=14),  # the reference (KLD 0) off the axis line
        axis=alt.Axis(values=ticks, format="~g", labelOverlap="greedy"),
    )
    y_title = "generation t/s (mean ± sd of repetitions)"
    y = alt.Y("tg_avg_ts:Q", title=y_title, scale=alt.Scale(zero=False))
    base = alt.Chart(data).encode(x=x, y=y)
    bars = (
        alt.Chart(data)
        .mark_errorbar(ticks=True, color="#666")
        .encode(x=x, y=alt.Y("tg_low:Q", title=y_title), y2="tg_high:Q")
    )
    points = base.mark_circle(size=90).encode(
        color=alt.Color("frontier:N", title=None),
        tooltip=[
            "variant",
            alt.Tooltip("kld_mean:Q", format=".4f"),
            alt.Tooltip("tg_avg_ts:Q", format=".1f"),
            alt.Tooltip("tg_stddev_ts:Q", format=".1f"),
            alt.Tooltip("bpw:Q", format=".2f"),
            alt.Tooltip("delta_ppl_pct:Q", format=".2f"),
        ],
    )
    labels = base.mark_text(dx=8, dy=-8, align="left").encode(text="variant:N")
    front = alt.Chart(data[data["pareto"]].sort_values("kld_mean")).mark_line(strokeDash=[4, 3], color="gray")
    front = front.encode(x=x, y=y, order="kld_mean:Q")
    return (front + bars + points + labels).properties(
        title="Speed against quality loss (up-left is better; bars: ± 1 sd; dashed: Pareto frontier)",
        width=620,
        height=300,
    )


def size_chart(frame):
    """File size per variant (MiB), labelled with the effective bits per weight."""
    import altair as alt

    data = frame[["variant", "model_size", "bpw", "main_type"]].copy()
    data["size_mib"] = _mib(frame)
    data["bpw_label"] = [f"{b:.2f} bpw" if not math.isnan(b) else "" for b in data["bpw"]]
    order = list(data["variant"])
    base = alt.Chart(data).encode(y=alt.Y("variant:N", sort=order, title=None))
    bars = base.mark_bar().encode(
        x=alt.X("size_mib:Q", title="file size (MiB)"),
        color=alt.Color("main_type:N", title="real type (most bytes)", legend=alt.Legend(orient="bottom")),
        tooltip=["variant", "main_type", alt.Tooltip("size_mib:Q", format=".1f"), alt.Tooltip("bpw:Q", format=".3f")],
    )
    text = base.mark_text(align="left", dx=4).encode(x="size_mib:Q", text="bpw_label:N")
    return (bars + text).properties(
        title="Size on disk and effective bits per weight (derived)", width=460, height=max(120, 26 * len(data))
    )


def answers_html(report: quant_lab.QuantReport) -> str:
    """Each variant's answer in its own column, with the mode said once above them."""
    if not report.rows:
        return ""
    mode = report.answer_mode
    why = "the model's chat template" if mode == "chat" else f"{html.escape(report.model)} has no chat template"
    cols = []
    for r in report.rows:
        cols.append(
            f"<div class='quant-answer' style='border:1px solid #ccc;border-radius:6px;padding:8px'>"
            f"<b>{html.escape(r.variant)}</b> <sub>{r.bpw:.2f} bpw · {r.answer_tokens} tokens</sub>"
            f"<div style='white-space:pre-wrap;margin-top:6px'>{html.escape(r.answer)}</div></div>"
        )
    grid = (
        f"<div style='display:grid;grid-template-columns:repeat({len(cols)}, minmax(160px, 1fr));gap:8px'>"
        + "".join(cols)
        + "</div>"
    )
    return (
        f"<p id='quant-mode'><b>Mode: {html.escape(mode)}</b> ({why}); greedy (temperature 0), seed {report.seed} "
        f"for every variant.</p>{grid}"
    )


def status_markdown(report: quant_lab.QuantReport, run_id: str) -> str:
    t = report.timings_s
    first = report.rows[0] if report.rows else None
    evaluation = (
        f"Evaluation: {report.eval_source}; {first.n_eval_tokens} tokens in {first.n_chunks} chunk(s) of 512, "
        f"{first.n_scored} positions scored."
        if first is not None and first.n_chunks
        else "Quality not measured."
    )
    origin = f"**Reference — {html.escape(report.reference_origin)}**<br>" if report.reference_origin else ""
    return (
        f"**Done**: {len(report.rows)} variants of {report.model}, stored as run `{run_id}` (kind quant).<br>"
        f"{origin}**{report.criterion}**<br>{report.reference_note}<br>{evaluation} "
        f"Wall time: build {t['build']:.1f} s · reference {t['reference']:.1f} s · quality {t['quality']:.1f} s · "
        f"speed {t['speed']:.1f} s · answers {t['answers']:.1f} s · total {t['total']:.1f} s."
    )


def _choices_update(model: str):
    try:
        choices = quant_lab.variant_choices(model)
        built = quant_lab.built_choices(model)
    except LocalbenchError as err:
        warn(err)
        return gr.update()
    info = f"in the cache: {', '.join(built)}" if built else "none built yet — ticked types are built on Compare"
    return gr.update(choices=choices, info=info)


def build(ctx: AppContext) -> None:
    models = quant_lab.source_models()
    default_model = "smollm2-135m" if "smollm2-135m" in models else None
    built = quant_lab.built_choices(default_model) if default_model else []
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            model = gr.Dropdown(
                models,
                value=default_model,
                label="Model",
                allow_custom_value=True,
                info="catalog name, a path to a GGUF file, or an HF safetensors folder (the original: BF16/F16/F32)",
                elem_id="quant-model",
            )
            variants = gr.CheckboxGroup(
                quant_lab.variant_choices(default_model) if default_model else list(LADDER_TYPES),
                value=list(quant_lab.DEFAULT_VARIANTS),
                label="Variants to compare",
                info=f"in the cache: {', '.join(built)}" if built else "ticked types are built on Compare",
                elem_id="quant-variants",
            )
            prompt = gr.Textbox(
                quant_lab.DEFAULT_PROMPT,
                label="Prompt (greedy answers, same random seed)",
                lines=2,
                elem_id="quant-prompt",
            )
            with gr.Row():
                max_tokens = gr.Number(48, precision=0, label="Answer tokens", elem_id="quant-max-tokens")
                seed = gr.Number(0, precision=0, label="Random seed", elem_id="quant-seed")
            with gr.Row():
                n_prompt = gr.Number(256, precision=0, label="pp tokens", elem_id="quant-pp")
                n_gen = gr.Number(64, precision=0, label="tg tokens", elem_id="quant-tg")
                reps = gr.Number(3, precision=0, label="Repetitions", elem_id="quant-reps")
            workers = gr.Number(
                1, precision=0, label="Quality workers (variants scored at once)", elem_id="quant-workers"
            )
            chunks = gr.Number(
                0, precision=0, label="Evaluation chunks of 512 tokens (0 = the whole text)", elem_id="quant-chunks"
            )
            with gr.Row():
                run_button = gr.Button("Compare", variant="primary", elem_id="quant-run")
                cancel_button = gr.Button("Cancel", variant="stop", elem_id="quant-cancel")
        with gr.Column(scale=3):
            status = gr.Markdown("Pick a model, tick variants and press Compare.", elem_id="quant-status")
            answers = gr.HTML("", elem_id="quant-answers")
            table = gr.Dataframe(
                label="Metrics (the columns read first; every column is in the CSV)",
                interactive=False,
                wrap=True,
                column_widths=list(COLUMN_WIDTHS.values()),
                max_height=800,
                elem_id="quant-table",
            )
            chart = gr.Plot(label="Generation speed against KL divergence", show_label=False, elem_id="quant-chart")
            sizes = gr.Plot(label="File sizes", show_label=False, elem_id="quant-sizes")
            download = gr.DownloadButton("Download CSV", elem_id="quant-csv")
    gr.Markdown(
        "<sub>Method — quality: the reference is the F16 GGUF (made by llama.cpp's converter from an HF original, or "
        "dequantized from a quantized GGUF). The evaluation text is tokenized once with its tokenizer and cut "
        "into chunks of 512 tokens; as llama-perplexity does, the second half of each chunk is scored. KLD is "
        "KL(reference ‖ variant) per position in nats; same top-1 % compares the most likely token; Δp is the change "
        "in the correct token's probability. The reference logits are computed once and cached. Speed: "
        "llama-bench-style pp and tg tests, one warm-up then the repetitions, mean ± sample stddev, random-token "
        "prompts; TTFT is the mean over the pp runs; peak RSS is this process's while the variant ran. Sizes are "
        f"file bytes; bpw = bytes × 8 / parameters (derived). {quant_summary.TARGET_DEFINITION}</sub>"
    )

    def run_compare(
        model_name,
        ticked,
        prompt_text,
        answer_tokens,
        seed_value,
        pp,
        tg,
        repetitions,
        n_chunks,
        n_workers,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        from engines.process.pool import EnginePool

        cancel = ctx.new_cancel(session_of(request), SCOPE)
        try:
            chunk_count = as_int(n_chunks, "evaluation chunks", 0)
            settings = quant_lab.QuantSettings(
                variants=tuple(ticked or ()),
                prompt=prompt_text or "",
                max_tokens=as_int(answer_tokens, "answer tokens", 1, 4096),
                seed=as_int(seed_value, "seed", 0),
                n_prompt=as_int(pp, "pp tokens", 1),
                n_gen=as_int(tg, "tg tokens", 1),
                repetitions=as_int(repetitions, "repetitions", 1, 100),
                max_chunks=chunk_count or None,
                threads=ctx.config.n_threads,
                quality_workers=as_int(n_workers, "quality workers", 1, 16),
            ).validate()
            progress(0.0, desc="starting")
            report = quant_lab.compare_and_store(
                ctx.store,
                model_name,
                settings,
                hardware=ctx.profile.to_dict(),
                pool=EnginePool(max_loaded=1, guard=ctx.pool.guard),
                progress=lambda f, m: progress(f, desc=m),
                cancel=cancel,
            )
        except LocalbenchError as err:
            return warn(err), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        frame = quant_summary.to_frame(report.rows)
        return (
            status_markdown(report, report.run_id),
            answers_html(report),
            quant_summary.summary_frame(frame),
            pareto_chart(frame),
            size_chart(frame),
            csv_file(frame, f"localbench-quant-{report.model}"),
        )

    def cancel_compare(request: gr.Request):
        ctx.cancel(session_of(request), SCOPE)

    run_button.click(
        run_compare,
        [model, variants, prompt, max_tokens, seed, n_prompt, n_gen, reps, chunks, workers],
        [status, answers, table, chart, sizes, download],
        concurrency_id="quant",
        show_progress_on=status,  # one progress bar, not one per output
    )
    cancel_button.click(cancel_compare, None, None, queue=False)
    model.change(_choices_update, model, variants)
