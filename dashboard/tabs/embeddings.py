"""Embeddings tab: sweep an embedding model over batch sizes, devices, precisions and backends.

The user picks a model (bundled all-MiniLM-L6-v2, a sentence-transformers folder or `ollama:<name>`),
the devices, precisions, backends and batch sizes, and presses Run. Progress shows in the tab, Cancel
stops at the next batch, and the result comes as a table, an altair chart of sentences/s against
batch size (one line per device/precision/backend) and a CSV download. Every run is stored (kind
'embed'); a cancelled or failed one is stored with that status. The ONNX option is offered only when
onnxruntime and onnx are installed; otherwise the tab says why. "Core ML (macOS)" shows a compute-units choice;
off macOS a run asking only for it gets the one-line reason as a warning and nothing is stored.
"""

from __future__ import annotations

import gradio as gr

from bench.embed.corpus import CORPUS_SIZE, load_corpus_file, make_corpus
from bench.embed.runner import DEFAULT_BATCH_SIZES, plan_embed_sweep, run_and_store, summary_frame, sweep_notes
from bench.results.export import to_frame
from core.errors import LocalbenchError
from dashboard.context import AppContext
from dashboard.ui import as_int, csv_file, session_of, warn
from engines.coreml import COMPUTE_UNITS
from engines.embeddings import BUNDLED_EMBED_MODEL, PRECISIONS, onnx_status, stored_embed_names
from machine.devices import embeddings_auto_device

SCOPE = "embed"
COLUMN_WIDTHS = ("9%", "7%", "9%", "6%", "11%", "9%", "9%", "9%", "9%", "10%", "12%")
"""Shares of the table's width per column of bench.embed.runner.summary_frame (together 100 %): the table
fits its column instead of scrolling sideways; the CSV keeps every field."""


def table_frame(frame):
    """The summary with readable headers ('sentences/s', 'p50 batch ms', …) and '—' where a figure is
    unknown (no device counter on the CPU), never an empty cell or 0."""
    table = summary_frame(frame)
    table = table.rename(columns=lambda c: c.replace("_per_s", "/s").replace("_", " ").replace("rss", "RSS"))
    return table.astype(object).where(table.notna(), "—")


def series_label(device: str, precision: str, backend: str) -> str:
    return f"{device}/{precision}/{backend}"


def throughput_chart(frame):
    """Altair line chart: sentences/s against batch size (log2 axis), one line per device/precision/backend."""
    import altair as alt

    data = frame[
        [
            "device",
            "precision",
            "backend",
            "batch_size",
            "sentences_per_s",
            "tokens_per_s",
            "p50_batch_ms",
            "p95_batch_ms",
        ]
    ].copy()
    data["series"] = [
        series_label(d, p, b) for d, p, b in zip(data["device"], data["precision"], data["backend"], strict=True)
    ]
    return (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "batch_size:Q",
                scale=alt.Scale(type="log", base=2),
                axis=alt.Axis(values=sorted({int(b) for b in data["batch_size"]})),
                title="batch size (texts)",
            ),
            y=alt.Y("sentences_per_s:Q", title="sentences/s (measured)"),
            color=alt.Color("series:N", title="device/precision/backend"),
            tooltip=[
                "series",
                "batch_size",
                alt.Tooltip("sentences_per_s:Q", format=".1f"),
                alt.Tooltip("tokens_per_s:Q", format=".0f"),
                alt.Tooltip("p50_batch_ms:Q", format=".2f"),
                alt.Tooltip("p95_batch_ms:Q", format=".2f"),
            ],
        )
        .properties(title="Embedding throughput against batch size", width=680, height=300)
    )


def build(ctx: AppContext) -> None:
    accelerators = tuple(getattr(ctx.profile, "accelerators", ()))
    devices = ["cpu", *(d for d in ("cuda", "mps") if d in accelerators)]
    auto = embeddings_auto_device(accelerators, live=False)
    onnx_ok, onnx_reason = onnx_status()
    backends = ["torch", "onnx"] if onnx_ok else ["torch"]
    backends = [(b, b) for b in backends] + [("Core ML (macOS)", "coreml")]
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model = gr.Dropdown(
                [BUNDLED_EMBED_MODEL, *stored_embed_names()],
                value=BUNDLED_EMBED_MODEL,
                label="Embedding model",
                allow_custom_value=True,
                info="bundled, one from your HF cache (hf:ORG/REPO), a sentence-transformers folder path, or "
                "ollama:<name>",
                elem_id="embed-model",
            )
            device_pick = gr.CheckboxGroup(
                devices, value=[auto], label=f"Devices (auto here: {auto})", elem_id="embed-devices"
            )
            precision_pick = gr.CheckboxGroup(
                list(PRECISIONS), value=["fp32"], label="Precisions", elem_id="embed-precisions"
            )
            backend_pick = gr.CheckboxGroup(backends, value=["torch"], label="Backends", elem_id="embed-backends")
            compute_units = gr.Dropdown(
                list(COMPUTE_UNITS),
                value=["all"],
                multiselect=True,
                label="Core ML compute units",
                info="one row set per choice; Core ML runs the converted fp16 package (converted first if needed)",
                visible=False,
                elem_id="embed-compute-units",
            )
            backend_pick.change(
                lambda picked: gr.update(visible="coreml" in (picked or [])), backend_pick, compute_units, queue=False
            )
            if not onnx_ok:
                gr.Markdown(f"<sub>{onnx_reason}</sub>", elem_id="embed-onnx-note")
            batch_sizes = gr.Textbox(
                ",".join(map(str, DEFAULT_BATCH_SIZES)),
                label="Batch sizes (comma-separated)",
                elem_id="embed-batch-sizes",
            )
            sentences = gr.Number(
                CORPUS_SIZE, precision=0, label="Sentences from the built-in corpus", elem_id="embed-sentences"
            )
            warmup = gr.Radio(
                [("first batch", "batch"), ("one full pass", "pass"), ("none", "none")],
                value="batch",
                label="Warm-up per batch size (untimed)",
                info="a full pass shows steady state: on CUDA fp16/bf16 cuDNN plans each new padded shape once",
                elem_id="embed-warmup",
            )
            corpus_file = gr.File(
                label="…or your own corpus (.txt, one text per line)",
                file_types=[".txt"],
                type="filepath",
                elem_id="embed-corpus",
            )
            with gr.Row():
                run_button = gr.Button("Run", variant="primary", elem_id="embed-run")
                cancel_button = gr.Button("Cancel", variant="stop", elem_id="embed-cancel")
        with gr.Column(scale=3):
            status = gr.Markdown("Pick a model and the configurations, then press Run.", elem_id="embed-status")
            chart = gr.Plot(label="Throughput against batch size", elem_id="embed-chart")
            table = gr.Dataframe(
                label="Results (the columns read first; every column is in the CSV)",
                interactive=False,
                wrap=True,
                column_widths=list(COLUMN_WIDTHS),
                elem_id="embed-table",
            )
            download = gr.DownloadButton("Download CSV", elem_id="embed-download")
    gr.Markdown(
        "<sub>Method: an untimed warm-up per batch size (the first batch, or a whole pass), then every batch "
        "of the corpus (longest texts first, as "
        "`SentenceTransformer.encode` sorts) timed once; sentences/s and tokens/s are totals over the summed batch "
        "times (derived); p50/p95 over the batch latencies; peak device memory from torch's own counter, peak RSS "
        "from the OS (Linux: the kernel's high-water mark); agreement is the cosine with the fp32 CPU torch "
        "embeddings of the same texts.</sub>"
    )

    def run_sweep(
        model_name,
        device_list,
        precision_list,
        backend_list,
        sizes_text,
        n_sentences,
        warmup_mode,
        corpus_path,
        units_list,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        cancel = ctx.new_cancel(session_of(request), SCOPE)
        try:
            if corpus_path:
                texts, corpus_name = load_corpus_file(corpus_path), str(corpus_path).rsplit("/", 1)[-1]
            else:
                n = as_int(n_sentences, "sentences", 1)
                texts, corpus_name = make_corpus(n), f"builtin-{n}"
            server = dict(ctx.server_options.get("ollama", ()))
            plan = plan_embed_sweep(
                model_name,
                [s for s in str(sizes_text or "").split(",") if s.strip()],
                device_list or [],
                precision_list or [],
                backend_list or [],
                host=server.get("host"),
                api_key=server.get("api_key"),
                accelerators=accelerators,
                compute_units=units_list or [],
            )
            progress(0.0, desc="starting")
            results, run_id = run_and_store(
                ctx.store,
                plan,
                texts,
                settings={"corpus": corpus_name},
                hardware=ctx.profile.to_dict(),
                corpus_name=corpus_name,
                warmup=warmup_mode or "batch",
                progress=lambda f, m: progress(f, desc=m),
                cancel=cancel,
            )
        except LocalbenchError as err:
            return warn(err), gr.update(), gr.update(), gr.update()
        frame = to_frame(results)
        notes = "".join(f"<br>• {n}" for n in sweep_notes(plan, results))
        text = (
            f"**Done**: {len(results)} rows ({len(plan.configs)} configuration(s) × {len(plan.batch_sizes)} "
            f"batch size(s), {len(texts)} texts), stored as run `{run_id}`.{notes}"
        )
        return text, throughput_chart(frame), table_frame(frame), csv_file(frame, "localbench-embed")

    def cancel_sweep(request: gr.Request):
        ctx.cancel(session_of(request), SCOPE)

    run_button.click(
        run_sweep,
        [model, device_pick, precision_pick, backend_pick, batch_sizes, sentences, warmup, corpus_file, compute_units],
        [status, chart, table, download],
        concurrency_id="embed",
        show_progress_on=status,  # one progress bar, not one per output
    )
    cancel_button.click(cancel_sweep, None, None, queue=False)
