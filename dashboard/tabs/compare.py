"""Compare tab: live side by side (dashboard.tabs.live), the same prompt to up to three models one after
another, a llama-bench speed test of each, and t/s against KV depth (dashboard.tabs.compare_depth).

With two or three configurations the speed test interleaves their repetitions (A1 B1 A2 B2 …,
bench.speed.interleave; the order is in every row's `run_order`) and marks each difference against A as
significant or not (Welch's t-test on the raw samples), shown under the table and stored as kind 'ab'.

Below the live section, answers stream one model after another, never at once: on a shared CPU,
parallel generation would make every speed figure a measure of contention. The speed test is
`python app.py bench` in the browser: the same runner (warm-up, repetitions, mean ± sample stddev),
stored as kind 'speed', downloadable as CSV.
"""

from __future__ import annotations

import altair as alt
import gradio as gr
import pandas as pd

from bench.results.export import mean_pm_column, to_frame
from bench.results.labels import quant_of
from bench.speed.interleave import labels
from bench.speed.orchestrate import SpeedSettings, arms_of
from bench.speed.runner import plan_tests
from core.errors import BadParameter, LocalbenchError
from dashboard.context import AppContext
from dashboard.names import display_name, engine_choices
from dashboard.pickers import family_slots, load_config, model_choices, tab_speed_run
from dashboard.tabs import compare_depth, live
from dashboard.ui import as_int, csv_file, session_of, stats_markdown, warn
from engines.base import GenerationParams
from engines.registry import ENGINES

SLOTS = 3  # the handlers below take the three (engine, model) pairs positionally
SPEED_COLUMNS = [
    "arm",
    "model",
    "engine",
    "quant",
    "size MiB",
    "threads",
    "backend",
    "test",
    "t/s (mean ± sd)",
    "TTFT ms (mean)",
    "peak RSS MiB",
]
"""The columns users read first; the CSV keeps every llama-bench field."""


def speed_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The on-screen speed table of a to_frame() of speed records."""
    return pd.DataFrame(
        {
            "arm": frame.get("arm", ""),
            "model": frame["model"],
            "engine": frame["engine"].map(display_name),
            "quant": [quant_of(r) for r in frame.to_dict("records")],  # file_type: Q4_1, Q4_K_M, 4bit
            "size MiB": (frame["model_size"] / 2**20).round(1),
            "threads": frame["n_threads"],
            "backend": frame["backends"],
            "test": frame["test"],
            "t/s (mean ± sd)": mean_pm_column(frame["avg_ts"], frame["stddev_ts"]),
            "TTFT ms (mean)": frame["avg_ttft_ms"].round(1),
            "peak RSS MiB": (frame["peak_rss_bytes"] / 2**20).round(0),
        },
        columns=SPEED_COLUMNS,
    )


def speed_chart(frame: pd.DataFrame) -> alt.Chart:
    """Mean t/s per model and test with ± stddev error bars (measured). One bar a row: interleaved arms of the
    same model · engine get their arm in the label, and bars never stack (a stacked bar would show a sum)."""
    arm = frame["arm"].fillna("").astype(str) if "arm" in frame else pd.Series("", index=frame.index)
    data = frame.assign(
        label=arm.where(arm == "", arm + " · ") + frame["model"] + " · " + frame["engine"],
        lo=frame["avg_ts"] - frame["stddev_ts"],
        hi=frame["avg_ts"] + frame["stddev_ts"],
    )
    base = alt.Chart(data).encode(y=alt.Y("label:N", title=None))
    bars = base.mark_bar().encode(
        x=alt.X("avg_ts:Q", title="tokens/s (mean of repetitions)", stack=None),
        color=alt.Color("label:N", legend=None),
        tooltip=["model", "engine", "test", "avg_ts", "stddev_ts", "avg_ttft_ms"],
    )
    errors = base.mark_rule(color="black").encode(x="lo:Q", x2="hi:Q")
    layered = (bars + errors).properties(width=720)
    return layered.facet(row=alt.Row("test:N", title=None)).resolve_scale(x="independent")


def ab_markdown(rows, arms: dict[str, str]) -> str:
    """The A/B verdicts under the speed table: each arm against A, per test (derived from raw samples)."""
    if not rows:
        return ""
    lines = [
        f"**A/B** ({rows[0].order}): " + "; ".join(f"{label} = {what}" for label, what in arms.items()),
        "",
        "| test | vs | A t/s (mean) | other t/s (mean) | difference % | p | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "**significant**" if r.significant else "not significant"
        p = f"{r.p_value:.3g}" if r.p_value == r.p_value else "—"
        diff = f"{r.diff_pct:+.1f}" if r.diff_pct == r.diff_pct else "—"
        pair = f"{r.b_label} vs {r.a_label}"
        lines.append(f"| {r.test} | {pair} | {r.a_avg_ts:.2f} | {r.b_avg_ts:.2f} | {diff} | {p} | {verdict} |")
    lines += ["", f"{rows[0].method}. Stored as kind 'ab' beside the speed run."]
    return "\n".join(lines)


def build(ctx: AppContext) -> None:
    live.build(ctx)
    gr.Markdown("### One after another, with a speed test")
    engines = list(ENGINES)
    slots = []
    with gr.Row():
        for i in range(SLOTS):
            with gr.Column(min_width=220):
                engine = gr.Dropdown(
                    engine_choices(engines), value=engines[0], label=f"Engine {i + 1}", elem_id=f"cmp-engine-{i}"
                )
                model = gr.Dropdown(
                    choices=model_choices(ctx, engines[0]),
                    value="smollm2-135m" if i < 2 else None,
                    label=f"Model {i + 1}" + (" (optional)" if i >= 2 else ""),
                    allow_custom_value=True,
                    elem_id=f"cmp-model-{i}",
                )
                engine.change(lambda e: gr.update(choices=model_choices(ctx, e)), engine, model)
                slots.append((engine, model))
    with gr.Row():
        every_engine = gr.Button(
            "Model 1 on every engine (its other files: GGUF on llama.cpp, MLX, safetensors on torch)",
            size="sm",
            elem_id="cmp-every-engine",
        )
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", scale=4, elem_id="cmp-prompt")
        max_tokens = gr.Number(value=64, precision=0, label="Max tokens", scale=1, elem_id="cmp-max-tokens")
        n_ctx = gr.Number(value=ctx.config.num_ctx, precision=0, label="Context (tokens)", scale=1)
    with gr.Row():
        generate = gr.Button("Generate side by side", variant="primary", elem_id="cmp-generate")
    answers, answer_stats = [], []
    with gr.Row():
        for i in range(SLOTS):
            with gr.Column(min_width=220):
                answers.append(
                    gr.Textbox(label=f"Answer {i + 1}", lines=8, interactive=False, elem_id=f"cmp-answer-{i}")
                )
                answer_stats.append(gr.Markdown("", elem_id=f"cmp-stats-{i}"))
    gr.Markdown(
        "Greedy (temperature 0, seed 0) so differences come from the models, not from sampling. "
        "Models run one after another so their speed figures do not compete for the CPU."
    )

    gr.Markdown("### Speed test (llama-bench style)")
    with gr.Row():
        n_prompt = gr.Number(value=128, precision=0, label="pp: prompt tokens", elem_id="cmp-pp")
        n_gen = gr.Number(value=32, precision=0, label="tg: generated tokens", elem_id="cmp-tg")
        reps = gr.Number(value=3, precision=0, label="Repetitions", elem_id="cmp-reps")
    with gr.Row():
        run_bench = gr.Button("Run speed test", variant="primary", elem_id="cmp-bench")
        cancel_bench = gr.Button("Cancel", variant="stop", elem_id="cmp-cancel")
    bench_status = gr.Markdown("", elem_id="cmp-bench-status")
    bench_table = gr.Dataframe(pd.DataFrame(columns=SPEED_COLUMNS), interactive=False, elem_id="cmp-bench-table")
    bench_chart = gr.Plot(elem_id="cmp-bench-chart")
    bench_csv = gr.DownloadButton("Download CSV", elem_id="cmp-bench-csv")
    bench_ab = gr.Markdown("", elem_id="cmp-ab")

    slot_inputs = [c for pair in slots for c in pair]

    def fill_family(model_name):
        """The slots filled with model 1's family, one file per engine format, up to SLOTS."""
        return family_slots(ctx, model_name, SLOTS)[1]

    every_engine.click(fill_family, slots[0][1], slot_inputs)
    compare_depth.build(ctx, slot_inputs, lambda values: chosen(values), n_prompt, n_gen, reps, n_ctx)

    gr.Markdown("### Accelerated vs CPU (the design target (ADR 006): ≥ 3×, docs/scorecard.md)")
    with gr.Row():
        run_speedup = gr.Button("Compare model 1 on its accelerator and on the CPU", elem_id="cmp-speedup-run")
    speedup_out = gr.Markdown("", elem_id="cmp-speedup")

    def chosen(values) -> list[tuple[int, str, str]]:
        """(slot, engine, model) of every slot with a model picked."""
        pairs = [(i, values[2 * i], (values[2 * i + 1] or "").strip()) for i in range(SLOTS)]
        pairs = [p for p in pairs if p[2]]
        if not pairs:
            raise BadParameter("pick at least one model")
        return pairs

    def side_by_side(e0, m0, e1, m1, e2, m2, text, max_toks, ctx_tokens, request: gr.Request):
        slot_values = (e0, m0, e1, m1, e2, m2)
        texts, stats = [""] * SLOTS, [""] * SLOTS
        cancel = ctx.new_cancel(session_of(request), "compare")
        try:
            if not (text or "").strip():
                raise BadParameter("the prompt is empty — type something to compare")
            params = GenerationParams(max_tokens=as_int(max_toks, "max tokens", 1), temperature=0.0, seed=0)
            params.validate()
            pairs = chosen(slot_values)
        except LocalbenchError as err:
            stats[0] = warn(err)
            yield *texts, *stats
            return
        for i, engine_name, model_name in pairs:
            try:
                stats[i] = "Loading…"
                yield *texts, *stats
                eng = ctx.pool.get(engine_name, model_name, load_config(ctx, engine_name, ctx_tokens))
                info = eng.info()
                request_prompt = [{"role": "user", "content": text}] if info.chat_template else text
                mode = "chat template" if info.chat_template else "plain completion (no chat template)"
                for chunk in eng.stream(request_prompt, params, cancel):
                    if chunk.stats is not None:
                        stats[i] = stats_markdown(chunk.stats, mode=f"{info.name} on {info.engine}: {mode}.")
                    else:
                        texts[i] += chunk.text
                    yield *texts, *stats
            except LocalbenchError as err:
                stats[i] = warn(err)
                yield *texts, *stats

    def speed(e0, m0, e1, m1, e2, m2, ctx_tokens, pp, tg, repetitions, request: gr.Request, progress=gr.Progress()):
        slot_values = (e0, m0, e1, m1, e2, m2)
        cancel = ctx.new_cancel(session_of(request), "compare-bench")
        try:
            settings = SpeedSettings(
                arms=arms_of([(e, m) for _, e, m in chosen(slot_values)], lambda e: load_config(ctx, e, ctx_tokens)),
                tests=tuple(plan_tests([as_int(pp, "pp tokens", 0)], [as_int(tg, "tg tokens", 0)])),
                repetitions=as_int(repetitions, "repetitions", 1, 100),
            )
            report = tab_speed_run(ctx, settings, progress, cancel)
        except LocalbenchError as err:
            # Cancel or a failure keeps the previous successful results on screen; the status says what happened.
            return warn(err), gr.update(), gr.update(), gr.update(), gr.update()
        frame = to_frame(report.rows)
        method = report.rows[0].method if report.rows else ""
        arms = settings.arms
        names = {k: f"{a.model} on {display_name(a.engine)}" for k, a in zip(labels(len(arms)), arms, strict=True)}
        return (
            f"Done: {len(report.rows)} rows stored. Method: {method}.",
            speed_table(frame),
            speed_chart(frame),
            csv_file(frame, "localbench-speed"),
            ab_markdown(report.ab, names),
        )

    def speedup(e0, m0, ctx_tokens, pp, tg, repetitions, request: gr.Request, progress=gr.Progress()):
        from bench.speed.speedup import TARGET_SPEEDUP, accelerated_device

        cancel = ctx.new_cancel(session_of(request), "compare-bench")
        try:
            if not (m0 or "").strip():
                raise BadParameter("pick model 1 first")
            device, sentence = accelerated_device(e0, ctx.profile)
            if device is None:
                return f"{sentence}. Here only CPU figures exist: use the speed test above."
            settings = SpeedSettings(
                arms=arms_of([(e0, m0)], lambda e: load_config(ctx, e, ctx_tokens)),
                tests=tuple(plan_tests([as_int(pp, "pp tokens", 0)], [as_int(tg, "tg tokens", 0)])),
                repetitions=as_int(repetitions, "repetitions", 1, 100),
                device=device,
            )
            rows = tab_speed_run(ctx, settings, progress, cancel).speedup
        except LocalbenchError as err:
            return warn(err)
        lines = [f"{sentence}. Speed-up = accelerated mean t/s ÷ CPU mean t/s (derived):", ""]
        for r in rows:
            verdict = "meets" if r.meets_target_3x else "misses"
            lines.append(
                f"- **{r.test}**: {r.accelerated_avg_ts:.1f} ± {r.accelerated_stddev_ts:.1f} t/s on {device} vs "
                f"{r.cpu_avg_ts:.1f} ± {r.cpu_stddev_ts:.1f} t/s on cpu → **{r.speedup_x:.2f}×** "
                f"({verdict} the design target (ADR 006) of ≥ {TARGET_SPEEDUP:.0f}×)"
            )
        return "\n".join(lines)

    def cancel_speed(request: gr.Request):
        ctx.cancel(session_of(request), "compare-bench")

    generate.click(
        side_by_side,
        [*slot_inputs, prompt, max_tokens, n_ctx],
        [*answers, *answer_stats],
        concurrency_id="generate",
        show_progress_on=answer_stats[0],
    )
    run_bench.click(
        speed,
        [*slot_inputs, n_ctx, n_prompt, n_gen, reps],
        [bench_status, bench_table, bench_chart, bench_csv, bench_ab],
        concurrency_id="generate",
        show_progress_on=bench_status,
    )
    cancel_bench.click(cancel_speed, None, None, queue=False)
    run_speedup.click(
        speedup,
        [slots[0][0], slots[0][1], n_ctx, n_prompt, n_gen, reps],
        speedup_out,
        concurrency_id="generate",
    )
