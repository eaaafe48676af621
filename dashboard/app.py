"""The dashboard: one Gradio Blocks app with one tab per module in dashboard/tabs/.

Each tab module exposes `build(ctx)`; the app places it inside `gr.Tab(...)`. Adding a tab is one
module and one line in TABS.
"""

from __future__ import annotations

import importlib

import gradio as gr

from dashboard.api_guard import guard_handlers
from dashboard.context import AppContext

TABS: list[tuple[str, str]] = [
    ("Chat", "dashboard.tabs.chat"),
    ("Models", "dashboard.tabs.models"),
    ("Quantization", "dashboard.tabs.quantization"),
    ("Compare", "dashboard.tabs.compare"),
    ("Arena", "dashboard.tabs.arena"),
    ("Queue", "dashboard.tabs.queue"),
    ("Embeddings", "dashboard.tabs.embeddings"),
    ("Memory", "dashboard.tabs.memory"),
    ("Benchmarks", "dashboard.tabs.benchmarks"),
    ("Results", "dashboard.tabs.results"),
    ("Servers", "dashboard.tabs.servers"),
    ("System", "dashboard.tabs.system"),
]

QUEUE_POLL_S = 0.02
"""How often Gradio's queue looks for a new event when it has none. Gradio's own 1 ms is a thousand
wake-ups a second: an idle dashboard took 8.5–9.2 % of a core on a 2-core VM, beside the model being
measured. 20 ms is at most 20 ms before a click's work starts."""
PROGRESS_POLL_S = 0.05
"""How often progress bars are sent (Gradio's default: 10 ms, also while nothing runs); 20 a second."""


def build_app(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="localbench") as demo:
        gr.Markdown(
            f"## localbench\nCompare local models on **{ctx.profile.chip}** "
            f"({ctx.profile.family}, {ctx.profile.ram_bytes / 2**30:.0f} GiB). Every figure is measured here; "
            "derived numbers say so."
        )
        for label, module in TABS:
            with gr.Tab(label, id=label.lower().replace(" ", "-")):
                importlib.import_module(module).build(ctx)
    guard_handlers(demo)
    demo.queue(default_concurrency_limit=1)
    quiet_queue(demo._queue)
    return demo


def quiet_queue(queue) -> None:
    """Gradio's queue polls at QUEUE_POLL_S and PROGRESS_POLL_S, not every millisecond (its attributes; no
    public setting exists)."""
    queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_POLL_S)
    queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, PROGRESS_POLL_S)
