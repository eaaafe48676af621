"""Small helpers shared by tabs: user-facing errors, number parsing, CSV files for download."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from core.errors import BadParameter, LocalbenchError


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
