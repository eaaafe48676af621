"""System tab: this machine's hardware profile, the chosen configuration with its reasons, and which
engines are usable here (with the reason for each one that is not)."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from dashboard.context import AppContext


def profile_frame(profile) -> pd.DataFrame:
    return pd.DataFrame(profile.summary_rows(), columns=["property", "value"])


def config_markdown(config) -> str:
    lines = [
        f"**Backend** {config.backend} · **device** {config.device} · **quantization** {config.quantization} · "
        f"**context** {config.num_ctx} tokens · **threads** {config.n_threads} · "
        f"**GPU layers** {config.n_gpu_layers} · **memory multiplier** {config.memory_multiplier}×",
        "",
        "Why:",
    ]
    lines += [f"- {reason}" for reason in config.reasons]
    return "\n".join(lines)


def engines_frame() -> pd.DataFrame:
    from engines.registry import engine_status

    return pd.DataFrame(
        [(name, "yes" if ok else "no", "" if ok else reason) for name, ok, reason in engine_status()],
        columns=["engine", "usable", "why not"],
    )


def build(ctx: AppContext) -> None:
    gr.Markdown("### Hardware profile")
    gr.Dataframe(profile_frame(ctx.profile), interactive=False, elem_id="system-profile")
    from machine.power import power_status

    gr.Markdown(f"**Power readings during runs:** {power_status()}", elem_id="system-power")
    gr.Markdown("### Chosen configuration")
    gr.Markdown(config_markdown(ctx.config), elem_id="system-config")
    gr.Markdown("### Engines")
    gr.Dataframe(engines_frame(), interactive=False, elem_id="system-engines")
