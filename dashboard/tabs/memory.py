"""Memory tab: the live memory picture, the design target's (ADR 006) allocation plan scaled to
this machine, and the what-fits calculator.

The live view refreshes from a gr.Timer; every reading it shows is cheap (psutil, /proc, macOS
commands with short timeouts) and Ollama's /api/ps is polled on a background thread, so a slow
server never holds the page. Loaded models (this app's engine pool and Ollama's) each get an Unload
button. The plan is editable shares of RAM drawn beside live usage in an altair stacked bar; it is a
plan, not a measurement. The calculator plans any catalog model, GGUF file, HF/MLX folder, design-target
planning entry or Ollama model (ollama:NAME) at a quantization and context.
"""

from __future__ import annotations

import os
import threading
import time

import altair as alt
import gradio as gr
import pandas as pd

from core.errors import BadParameter, LocalbenchError
from core.units import GiB, fmt_bytes
from dashboard.context import AppContext
from dashboard.ui import as_int, warn
from models.quant_types import BITS_PER_WEIGHT
from planning.estimate import KV_BYTES_PER_ELEMENT, PLANNING_QUANTS
from planning.report import allocation_plan, model_budget, plan_report
from planning.specs import load_spec

REFRESH_S = 3.0
OLLAMA_POLL_S = 10.0
PLAN_COLUMNS = ["component", "share of RAM (%)", "GiB", "GB"]


# --- pure helpers (tested without a browser) -------------------------------------------------------


def plan_frame(plan) -> pd.DataFrame:
    return pd.DataFrame(
        [(r.component, round(r.fraction * 100, 1), round(r.bytes / GiB, 2), round(r.bytes / 1e9, 2)) for r in plan],
        columns=PLAN_COLUMNS,
    )


def fractions_from_frame(frame) -> dict[str, float]:
    """{component: share 0..1} from the edited plan table; BadParameter on a non-number."""
    if frame is None:
        raise BadParameter(f"the plan table is missing — send a frame with columns {', '.join(PLAN_COLUMNS)}")
    frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
    missing = [c for c in ("component", "share of RAM (%)") if c not in frame.columns]
    if missing:
        expected = ", ".join(PLAN_COLUMNS)
        raise BadParameter(f"the plan table lacks the column(s) {', '.join(missing)} — expected {expected}")
    out = {}
    for component, share in zip(frame["component"], frame["share of RAM (%)"], strict=True):
        try:
            out[str(component)] = float(share) / 100
        except (TypeError, ValueError):
            raise BadParameter(f"share of '{component}' must be a number of percent, got {share!r}") from None
    return out


def usage_chart(plan, snap) -> alt.Chart:
    """Two stacked bars of the same height (RAM): the plan, and live usage now."""
    rows = [("Plan (not a measurement)", r.component, r.bytes / GiB) for r in plan]
    unplanned = snap.total_bytes - sum(r.bytes for r in plan)
    if unplanned > 0:
        rows.append(("Plan (not a measurement)", "Unplanned", unplanned / GiB))
    other = max(0, snap.total_bytes - snap.available_bytes - snap.process_rss_bytes)
    rows += [
        ("Live now (psutil)", "localbench process (RSS)", snap.process_rss_bytes / GiB),
        ("Live now (psutil)", "Everything else in use", other / GiB),
        ("Live now (psutil)", "Available", snap.available_bytes / GiB),
    ]
    data = pd.DataFrame(rows, columns=["bar", "component", "GiB"])
    data["order"] = range(len(data))
    return (
        alt.Chart(data, title=f"RAM {snap.total_bytes / GiB:.1f} GiB ({snap.total_bytes / 1e9:.1f} GB)")
        .mark_bar()
        .encode(
            x=alt.X("bar:N", title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("GiB:Q", title="GiB (2^30 bytes)", stack="zero"),
            color=alt.Color("component:N", title="component", legend=alt.Legend(labelLimit=240)),
            order=alt.Order("order:Q"),
            tooltip=["bar", "component", alt.Tooltip("GiB:Q", format=".2f")],
        )
        .properties(width=260, height=320, description=chart_description(plan, snap))
    )


COMPONENT_FIELDS = [
    ("Model weights", "weights_bytes"),
    ("CPU repack copy", "repack_bytes"),
    ("KV cache", "kv_cache_bytes"),
    ("Compute buffers", "compute_bytes"),
    ("CPU work buffer", "cpu_work_bytes"),
    ("Runtime overhead", "overhead_bytes"),
]


def components_chart(report) -> alt.Chart:
    """One stacked bar of the planned components (GiB) against available memory and the planning budget."""
    est, machine = report["estimate"], report["machine"]
    bars = pd.DataFrame(
        [
            {"plan": "this model", "component": name, "GiB": est.get(field, 0) / GiB, "order": i}
            for i, (name, field) in enumerate(COMPONENT_FIELDS)
            if est.get(field)
        ]
    )
    limits = pd.DataFrame(
        [
            {"limit": "available now", "GiB": machine["available_bytes"] / GiB},
            {"limit": f"budget ({report['budget']['what']})", "GiB": report["budget"]["bytes"] / GiB},
        ]
    )
    stack = (
        alt.Chart(bars)
        .mark_bar()
        .encode(
            x=alt.X("sum(GiB):Q", title="GiB (planned, derived)"),
            y=alt.Y("plan:N", title=None),
            color=alt.Color("component:N", sort=[n for n, _ in COMPONENT_FIELDS], legend=alt.Legend(orient="bottom")),
            order="order:Q",
            tooltip=["component", alt.Tooltip("GiB:Q", format=".2f")],
        )
    )
    rules = (
        alt.Chart(limits)
        .mark_rule(strokeDash=[4, 3], size=2)
        .encode(x="GiB:Q", color=alt.value("#d62728"), tooltip=["limit", alt.Tooltip("GiB:Q", format=".2f")])
    )
    labels = alt.Chart(limits).mark_text(align="left", dx=4, dy=-18).encode(x="GiB:Q", text="limit:N")
    return (stack + rules + labels).properties(height=110, title="Planned components against memory")


def chart_description(plan, snap) -> str:
    """The chart's numbers in words (its accessible label)."""
    planned = ", ".join(f"{r.component} {r.bytes / GiB:.1f} GiB" for r in plan)
    return (
        f"Plan (not a measurement): {planned}. Live now (psutil): available {snap.available_bytes / GiB:.1f} GiB, "
        f"localbench process {snap.process_rss_bytes / GiB:.2f} GiB of {snap.total_bytes / GiB:.1f} GiB RAM."
    )


def live_frame(snap) -> pd.DataFrame:
    return pd.DataFrame(snap.rows(), columns=["reading", "value", "source"])


class OllamaWatcher:
    """Ollama's loaded models (/api/ps), polled on a background thread; reading never blocks."""

    def __init__(self, host: str | None) -> None:
        self.host = host
        self.rows: list[dict] = []
        self.note = ""
        self._t = 0.0
        self._busy = False
        self._lock = threading.Lock()

    def read(self, force: bool = False) -> tuple[list[dict], str]:
        with self._lock:
            stale = force or time.monotonic() - self._t > OLLAMA_POLL_S
            if stale and not self._busy:
                self._busy = True
                threading.Thread(target=self._poll, daemon=True).start()
            return list(self.rows), self.note

    def _poll(self) -> None:
        import importlib.util

        rows, note = [], ""
        if importlib.util.find_spec("engines.ollama") is None:
            note = "Ollama models are not listed: the Ollama engine (engines/ollama.py) is not installed"
        else:
            from engines.ollama import loaded_models

            try:
                for m in loaded_models(self.host):
                    rows.append(
                        {
                            "kind": "ollama",
                            "id": f"ollama:{m.name}",
                            "name": m.name,
                            "engine": "ollama",
                            "detail": f"size {fmt_bytes(m.size_bytes)}, in VRAM {fmt_bytes(m.size_vram_bytes)} "
                            f"(Ollama /api/ps), expires {m.expires_at or 'never'}",
                        }
                    )
            except LocalbenchError as err:
                note = f"Ollama: {err}"
        with self._lock:
            self.rows, self.note, self._t, self._busy = rows, note, time.monotonic(), False


def worker_memory_text(engine) -> str:
    """The model's own measured memory: its worker process's footprint and the engine's counters."""
    reader = getattr(engine, "memory", None)
    if reader is None:
        return "memory not measured (remote: the server holds the model)"
    try:
        reading = reader()
    except LocalbenchError as err:
        return f"worker memory unreadable ({err})"
    if not reading:
        return "no worker running (it starts on the next request)"
    text = (
        f"measured: {reading.get('private_source', 'worker')} {fmt_bytes(reading.get('private_bytes'))}, "
        f"RSS {fmt_bytes(reading.get('rss_bytes'))} (worker pid {engine.pid})"
    )
    for acc in reading.get("accelerators", []):
        text += f"; {acc['name']} in use {fmt_bytes(acc['used_bytes'])}"
    return text


def pool_rows(ctx: AppContext) -> list[dict]:
    """This app's loaded engines with the planner's estimate for each (derived)."""
    from engines.registry import create_engine
    from models.convert import reporting
    from planning.guard import estimate_for_load

    rows = []
    for key, engine in ctx.pool.items():
        info = engine.info()
        planned = ""
        try:
            with reporting(lambda fraction, message: None):  # resolving must not log "already converted"
                ref = create_engine(key.engine).resolve(key.model)
            est = estimate_for_load(key.engine, ref, key.config)
            planned = f", planned {fmt_bytes(est.total_bytes)} (derived)" if est else ""
        except LocalbenchError:
            pass
        rows.append(
            {
                "kind": "pool",
                "id": repr(key),
                "name": info.name,
                "engine": key.engine,
                "detail": f"{info.file_type or info.dtype}, n_ctx {info.n_ctx}, weights "
                f"{fmt_bytes(info.model_size_bytes)} on disk{planned}; {worker_memory_text(engine)}",
            }
        )
    return rows


def calculate(ctx: AppContext, model: str, quant: str, n_ctx, kv_type: str, n_parallel, host: str | None = None):
    """(summary markdown, components frame, max-context frame) for the calculator."""
    import psutil

    spec = load_spec(model, host)
    report = plan_report(
        spec,
        quant,
        as_int(n_ctx, "context (tokens)"),
        ram_bytes=ctx.profile.ram_bytes,
        available_bytes=psutil.virtual_memory().available,
        gpu_share_bytes=ctx.profile.accelerator_memory_bytes,
        gpu_source=ctx.profile.accelerator_memory_source,
        offload=ctx.config.device != "cpu",
        kv_type=kv_type,
        n_parallel=as_int(n_parallel, "parallel sequences", 1, 256),
    )
    est, fits, rec = report["estimate"], report["fits"], report["recommendation"]
    lines = [
        f"**{spec.name}** ({spec.source}) at **{est['quantization']}**, {est['n_ctx']} tokens, KV {est['kv_type']}: "
        f"total **{fmt_bytes(est['total_bytes'])}** (planned, derived)",
        f"- Available memory: **{fits['available_memory']['verdict']}** — {fits['available_memory']['detail']}",
        f"- GPU-usable share: **{fits['gpu_share']['verdict']}** — {fits['gpu_share']['detail']}",
        f"- Recommended quantization: **{rec['quantization'] or 'none fits'}**",
        *[f"  - {reason}" for reason in rec["reasons"]],
        *[f"- Note: {note}" for note in (*est["notes"], *([spec.note] if spec.note else []))],
    ]
    components = pd.DataFrame(report["components"], columns=["component", "size", "how"])
    contexts = pd.DataFrame(
        [
            (
                r["quantization"],
                fmt_bytes(r["weights_bytes"]),
                round(r["bits_per_weight"], 2),
                r["max_ctx"] or "does not fit",
            )
            for r in report["max_context"]
        ],
        columns=["quantization", "weights", "bpw (derived)", f"max context (tokens) within {report['budget']['what']}"],
    )
    return "\n".join(lines), components, contexts, components_chart(report)


# --- the tab ---------------------------------------------------------------------------------------


def build(ctx: AppContext) -> None:
    from machine.live_memory import snapshot
    from models.catalog import MODEL_CONFIGS, model_names

    ram = ctx.profile.ram_bytes
    host = dict(ctx.server_options.get("ollama", ())).get("host")
    watcher = OllamaWatcher(host)

    gr.Markdown("### Live memory")
    with gr.Row():
        live_on = gr.Checkbox(True, label=f"Refresh every {REFRESH_S:g} s", elem_id="memory-live-on")
        refresh = gr.Button("Refresh now", size="sm", elem_id="memory-refresh")
    live = gr.Dataframe(live_frame(snapshot()), interactive=False, wrap=True, elem_id="memory-live")
    gr.Markdown("### Loaded models")
    loaded = gr.State([])
    loaded_status = gr.Markdown("", elem_id="memory-loaded-status")
    ollama_note = gr.Markdown("", elem_id="memory-ollama-note")
    allow = gr.Checkbox(
        False,
        label="Load anyway: allow loads the memory estimate says will not fit (override)",
        elem_id="memory-allow-oversize",
    )

    @gr.render(inputs=loaded)
    def render_loaded(rows):
        if not rows:
            gr.Markdown("No model is loaded (this app's engines or Ollama).", elem_id="memory-loaded-empty")
        for i, row in enumerate(rows):
            with gr.Row(equal_height=True):
                gr.Markdown(f"**{row['name']}** on {row['engine']} — {row['detail']}", elem_id=f"memory-loaded-{i}")
                button = gr.Button("Unload", size="sm", variant="stop", scale=0, elem_id=f"memory-unload-{i}")
            button.click(lambda row=row: unload(row), None, [loaded, loaded_status])

    gr.Markdown(
        "### Allocation plan — the design target's (ADR 006, docs/memory.md) table scaled to this machine's RAM "
        "(a plan, not a measurement)"
    )
    with gr.Row():
        with gr.Column(scale=1):
            plan_table = gr.Dataframe(
                plan_frame(allocation_plan(ram)),
                interactive=True,
                static_columns=[0, 2, 3],
                elem_id="memory-plan",
                label="Edit the shares (%); the sizes follow",
            )
            plan_status = gr.Markdown(
                f"Model share of the plan: {fmt_bytes(model_budget(allocation_plan(ram)))}",
                elem_id="memory-plan-status",
            )
            reset = gr.Button("Reset to the design target's plan", size="sm", elem_id="memory-plan-reset")
        with gr.Column(scale=1):
            chart = gr.Plot(usage_chart(allocation_plan(ram), snapshot()), elem_id="memory-chart", show_label=False)

    gr.Markdown("### What fits? Plan a model × quantization × context")
    with gr.Row():
        choices = list(dict.fromkeys([*model_names(), *MODEL_CONFIGS]))
        model = gr.Dropdown(
            choices,
            value=choices[0],
            allow_custom_value=True,
            label="Model",
            elem_id="memory-calc-model",
            info="any model on this machine (see the Models tab), hf:ORG/REPO[:QUANT] (read from the Hub, no "
            "download), a parameter count with a quantization (8B, 135M), a path, or a planning entry (qwen3:8b)",
        )
        quant = gr.Dropdown(
            ["as file", *PLANNING_QUANTS, *[q for q in BITS_PER_WEIGHT if q not in PLANNING_QUANTS]],
            value="as file",
            label="Quantization",
            elem_id="memory-calc-quant",
        )
        n_ctx = gr.Number(value=ctx.config.num_ctx, precision=0, label="Context (tokens)", elem_id="memory-calc-ctx")
        kv_type = gr.Dropdown(list(KV_BYTES_PER_ELEMENT), value="f16", label="KV cache type", elem_id="memory-calc-kv")
        parallel = gr.Number(value=1, precision=0, label="Parallel sequences", elem_id="memory-calc-parallel")
    run = gr.Button("Estimate", variant="primary", elem_id="memory-calc-run")
    result = gr.Markdown("Pick a model and press Estimate.", elem_id="memory-calc-result")
    calc_chart = gr.Plot(None, elem_id="memory-calc-chart", show_label=False)
    components = gr.Dataframe(
        pd.DataFrame(columns=["component", "size", "how"]),
        interactive=False,
        wrap=True,
        elem_id="memory-calc-components",
    )
    contexts = gr.Dataframe(
        pd.DataFrame(columns=["quantization", "weights", "bpw (derived)", "max context (tokens)"]),
        interactive=False,
        elem_id="memory-calc-contexts",
    )
    timer = gr.Timer(REFRESH_S, active=True)

    def current_plan(frame):
        try:
            return allocation_plan(ram, fractions_from_frame(frame))
        except LocalbenchError:
            return allocation_plan(ram)

    def tick(frame):
        snap = snapshot()
        ollama_rows, note = watcher.read()
        rows = pool_rows(ctx) + ollama_rows
        # The Ollama note has its own line (an Unload confirmation stays put) and is shown only to
        # people who use Ollama: a host was set, or it has models loaded.
        uses_ollama = bool(ollama_rows) or bool(host) or bool(os.environ.get("OLLAMA_HOST"))
        return live_frame(snap), usage_chart(current_plan(frame), snap), rows, note if uses_ollama else ""

    def unload(row):
        try:
            if row["kind"] == "pool":
                for key, _ in ctx.pool.loaded():
                    if repr(key) == row["id"]:
                        ctx.pool.unload(key)
            else:
                from engines.ollama import unload_model

                unload_model(row["name"], host)
            message = f"Unloaded {row['name']} ({row['engine']})."
        except LocalbenchError as err:
            message = warn(err)
        return pool_rows(ctx) + watcher.read(force=True)[0], message

    def edit_plan(frame):
        try:
            plan = allocation_plan(ram, fractions_from_frame(frame))
        except LocalbenchError as err:
            return gr.update(), warn(err), gr.update()
        status = f"Model share of the plan (weights + context): {fmt_bytes(model_budget(plan))}"
        return plan_frame(plan), status, usage_chart(plan, snapshot())

    def estimate_click(model_name, quant_name, ctx_tokens, kv, par):
        try:
            return calculate(ctx, model_name, quant_name, ctx_tokens, kv, par, host)
        except LocalbenchError as err:  # clear the previous estimate: tables under a warning read as its answer
            empty = pd.DataFrame(columns=["component", "size", "how"])
            return warn(err), empty, pd.DataFrame(columns=["quantization", "weights", "bpw (derived)"]), None

    live_outputs = [live, chart, loaded, ollama_note]
    timer.tick(tick, plan_table, live_outputs, show_progress="hidden", concurrency_id="memory-live")
    refresh.click(tick, plan_table, live_outputs, concurrency_id="memory-live")
    live_on.change(lambda on: gr.Timer(active=on), live_on, timer)
    plan_table.input(edit_plan, plan_table, [plan_table, plan_status, chart])
    reset.click(lambda: edit_plan(plan_frame(allocation_plan(ram))), None, [plan_table, plan_status, chart])
    run.click(
        estimate_click,
        [model, quant, n_ctx, kv_type, parallel],
        [result, components, contexts, calc_chart],
        concurrency_id="memory-calc",
    )
    allow.change(lambda on: set_override(ctx, on), allow, loaded_status)


def set_override(ctx: AppContext, allow_oversize: bool) -> str:
    """Turn the engine pool's load guard off (the user's explicit override) or back on."""
    from planning.guard import check_load

    ctx.pool.guard = None if allow_oversize else check_load
    if allow_oversize:
        return "⚠️ Load guard off: models load even when the estimate says they will not fit."
    return "Load guard on: loads that the estimate says will not fit are refused."
