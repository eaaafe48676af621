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
    return demo
