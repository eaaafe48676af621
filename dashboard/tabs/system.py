"""System tab: this machine's hardware profile with its CPU instruction sets, the chosen configuration
with its reasons, the library versions, llama.cpp's own build info and repack verdict, and which engines
are usable here — server engines say "installed" (the client library) apart from "reachable" (a server
answered)."""

from __future__ import annotations

import os
import platform
import urllib.error
import urllib.request
from datetime import datetime
from importlib import metadata

import gradio as gr
import pandas as pd

from dashboard.context import AppContext
from dashboard.names import display_name
from machine.detect import cpu_flags

LIBRARIES = (
    "llama-cpp-python",
    "mlx",
    "mlx-lm",
    "torch",
    "transformers",
    "sentence-transformers",
    "ollama",
    "openai",
    "gradio",
    "numpy",
    "pandas",
)
"""Distributions whose versions matter to a result (read from metadata: nothing is imported)."""

# (label, Linux /proc/cpuinfo flag, macOS sysctl key) — x86 first, then Arm.
CPU_FEATURES = (
    ("AVX", "avx", None),
    ("AVX2", "avx2", None),
    ("FMA", "fma", None),
    ("F16C", "f16c", None),
    ("AVX-512", "avx512f", None),
    ("AVX-512 VNNI", "avx512_vnni", None),
    ("AVX-512 BF16", "avx512_bf16", None),
    ("AVX-VNNI", "avx_vnni", None),
    ("AMX-TILE", "amx_tile", None),
    ("AMX-INT8", "amx_int8", None),
    ("AMX-BF16", "amx_bf16", None),
    ("NEON", "asimd", "hw.optional.neon"),
    ("Arm dot product", "asimddp", "hw.optional.arm.FEAT_DotProd"),
    ("Arm I8MM", "i8mm", "hw.optional.arm.FEAT_I8MM"),
    ("Arm BF16", "bf16", "hw.optional.arm.FEAT_BF16"),
    ("SVE", "sve", None),
    ("SME", "sme", "hw.optional.arm.FEAT_SME"),
    ("SME2", "sme2", "hw.optional.arm.FEAT_SME2"),
)

SERVER_ENGINES = {"ollama": "http://127.0.0.1:11434", "openai": "http://127.0.0.1:8080/v1"}


def cpu_features(flags: set[str]) -> list[str]:
    """Labels of the instruction sets in `flags` (machine.detect.cpu_flags: Linux /proc/cpuinfo flags, or the
    macOS sysctl keys set to 1)."""
    return [label for label, flag, key in CPU_FEATURES if flag in flags or (key is not None and key in flags)]


def profile_frame(profile) -> pd.DataFrame:
    rows = list(profile.summary_rows())
    rows.append(("CPU instruction sets", ", ".join(cpu_features(cpu_flags())) or "none detected"))
    return pd.DataFrame(rows, columns=["property", "value"])


def config_markdown(config) -> str:
    lines = [
        f"**Backend** {config.backend} · **device** {config.device} · **quantization** {config.quantization} · "
        f"**context** {config.num_ctx} tokens · **threads** {config.n_threads} · "
        f"**GPU layers** {config.n_gpu_layers}",
        "",
        "Why:",
    ]
    # The coarse "weights × multiplier" rule is the quantization picker's shortcut; the Memory tab plans
    # memory component by component, so the shortcut is not shown as the memory plan.
    lines += [f"- {reason}" for reason in config.reasons if not reason.startswith("Memory planning:")]
    lines.append("- Memory: planned component by component (weights, KV cache, compute buffers) in the Memory tab.")
    return "\n".join(lines)


def library_frame() -> pd.DataFrame:
    rows = []
    for name in LIBRARIES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return pd.DataFrame([("python", platform.python_version()), *rows], columns=["library", "version"])


def reachable(url: str, timeout_s: float = 1.0) -> bool:
    """True if anything answers HTTP at `url` (an error status counts: the server is up)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def server_url(ctx: AppContext, engine: str) -> str:
    options = dict(ctx.server_options.get(engine, ()))
    if engine == "ollama":
        url = options.get("host") or os.environ.get("OLLAMA_HOST") or SERVER_ENGINES["ollama"]
        return url if "://" in url else f"http://{url}"
    return options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or SERVER_ENGINES["openai"]


def engines_frame(ctx: AppContext) -> pd.DataFrame:
    from engines.registry import engine_status

    rows = []
    for name, ok, reason in engine_status():
        if name in SERVER_ENGINES:
            url = server_url(ctx, name)
            probe = url.rstrip("/") + ("/api/version" if name == "ollama" else "/models")
            up = ok and reachable(probe)
            status = f"{'installed' if ok else 'not installed'} · {'reachable' if up else 'not reachable'} at {url}"
            why = reason if not ok else "" if up else "start the server, or set its URL in the Servers tab"
        else:
            status, why = ("usable" if ok else "not usable"), ("" if ok else reason)
        rows.append((display_name(name), name, status, why))
    return pd.DataFrame(rows, columns=["engine", "id", "status", "why not"])


def repack_frame() -> pd.DataFrame:
    """llama.cpp's CPU weight-repack canary verdicts (engines/process/faults.py), newest first."""
    from engines.process.faults import cached_verdicts

    rows = [
        (
            v.key,
            "crashes: repack off" if v.crashed else "works: repack on" if v.conclusive else "inconclusive: repack off",
            v.detail,
            datetime.fromtimestamp(v.measured_at).strftime("%Y-%m-%d %H:%M"),
        )
        for v in cached_verdicts("llamacpp-repack")
    ]
    return pd.DataFrame(rows, columns=["key", "verdict", "canary", "measured"])


def llama_system_info() -> str:
    """llama.cpp's `llama_print_system_info()` (its compiled-in CPU features and backends)."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed."
    import llama_cpp

    info = llama_cpp.llama_print_system_info()
    text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    return f"llama.cpp {getattr(llama_cpp, '__version__', '?')}: `{text.strip()}`"


def build(ctx: AppContext) -> None:
    gr.Markdown("### Hardware profile")
    gr.Dataframe(profile_frame(ctx.profile), interactive=False, wrap=True, elem_id="system-profile")
    from machine.power import power_status

    gr.Markdown(f"**Power readings during runs:** {power_status()}", elem_id="system-power")
    gr.Markdown("### Chosen configuration")
    gr.Markdown(config_markdown(ctx.config), elem_id="system-config")
    gr.Markdown("### Engines")
    engines = gr.Dataframe(engines_frame(ctx), interactive=False, wrap=True, elem_id="system-engines")
    recheck = gr.Button("Check the servers again", size="sm", elem_id="system-recheck")
    recheck.click(lambda: engines_frame(ctx), None, engines)
    gr.Markdown("### llama.cpp")
    info = gr.Markdown("Press the button to read llama.cpp's build info (loads the library).", elem_id="system-llama")
    show = gr.Button("Show llama.cpp system info", size="sm", elem_id="system-llama-run")
    show.click(llama_system_info, None, info)
    gr.Dataframe(
        repack_frame(),
        interactive=False,
        wrap=True,
        label="CPU weight repack (canary verdicts)",
        elem_id="system-repack",
    )
    gr.Markdown("### Library versions")
    gr.Dataframe(library_frame(), interactive=False, elem_id="system-libraries")
