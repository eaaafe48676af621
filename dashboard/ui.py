"""Small helpers shared by tabs: user-facing errors, number parsing, CSV files for download, and the
statistics line shown under a reply (Chat, Compare, Arena)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from core.errors import BadParameter, LocalbenchError
from engines.base import GenerationStats


def warn(err: BaseException) -> str:
    """Show a LocalbenchError as a toast and return its text for an inline status line."""
    message = str(err) if isinstance(err, LocalbenchError) else f"unexpected error: {type(err).__name__}: {err}"
    gr.Warning(message)
    return f"⚠️ {message}"


def as_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer from a UI number field, or BadParameter naming the field."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadParameter(f"{name} must be a number, got {value!r}") from None
    if number != int(number):
        raise BadParameter(f"{name} must be a whole number, got {value}")
    number = int(number)
    if minimum is not None and number < minimum:
        raise BadParameter(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise BadParameter(f"{name} must be at most {maximum}, got {number}")
    return number


def csv_file(frame, stem: str) -> str:
    """Write the frame as a CSV (formula-safe) in a temp folder and return its path for download."""
    from bench.results.export import to_csv

    folder = Path(tempfile.mkdtemp(prefix="localbench-"))
    path = folder / f"{stem}.csv"
    to_csv(frame, str(path))
    return str(path)


def conversion_progress(progress, cancel):
    """A context in which on-demand conversions (MLX/torch engines given a GGUF-only model) report to the
    tab's gr.Progress and stop on its cancel flag."""
    from models.convert import reporting

    return reporting(lambda fraction, message: progress(fraction, desc=message), cancel)


def session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


def stats_markdown(stats: GenerationStats | None, live: dict | None = None, mode: str = "") -> str:
    """The statistics line under the chat, with units in every label; '—' where a figure is unknown."""
    if stats is not None:
        private = stats.worker_peak_private_bytes
        cancelled = stats.stop_reason == "cancelled"
        if private:
            memory = (
                f"**model's worker** {private / 2**20:.0f} MiB peak "
                f"({stats.worker_memory_source or 'private memory'}), RSS {stats.peak_rss_bytes / 2**20:.0f} MiB"
            )
        elif stats.worker_pid is None:  # a server engine: the model's process is the server's
            memory = "**memory** — (not measured: the model runs on a server)"
        elif cancelled:
            memory = "**memory** — (not measured: cancelled before the model's worker reported it)"
        else:
            memory = "**memory** — (not reported by the model's worker)"
        body = (
            ("**cancelled** — what was measured up to the cancel: " if cancelled else "")
            + f"**TTFT** {stats.ttft_s * 1e3:.1f} ms · **prompt** {count_text(stats.prompt_tokens)} tok at "
            f"{rate_text(stats.prompt_tps)} t/s · **generation** {count_text(stats.gen_tokens)} tok at "
            f"{rate_text(stats.gen_tps)} t/s · **wall** {stats.wall_s:.2f} s"
            + (f" · **load** {stats.load_s:.2f} s" if stats.load_s else "")
            + f" · {memory} · **stop** {stats.stop_reason}"
            + (" · **contended** (another request ran at the same time)" if stats.contended else "")
        )
        source = f"<br><sub>timings: {stats.source or 'wall clock'}; TTFT measured here. {mode}</sub>"
        return body + source
    if live:
        return (
            f"**TTFT** {live['ttft_ms']:.1f} ms · **generation** {live['tokens']} chunks at "
            f"{live['tps']:.1f} t/s (live, measured here) · streaming…"
        )
    return "No reply yet."


def count_text(n: int) -> str:
    """A token count for a statistics line; '—' when it is 0 (not reported)."""
    return str(n) if n else "—"


def rate_text(tps: float) -> str:
    """A rate in tokens/s to one decimal for a statistics line; '—' when it is 0 (not reported)."""
    return f"{tps:.1f}" if tps else "—"
