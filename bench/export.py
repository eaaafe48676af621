"""Records to a pandas frame, and the frame to CSV, JSON or Markdown.

`to_frame(records)` is the one path from records to every view (table, CSV, chart). Sample tuples
become space-separated strings in CSV. Text cells that a spreadsheet would run as a formula (starting
with =, +, -, @, tab or CR) are prefixed with a single quote, per OWASP's CSV-injection advice.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def to_frame(records: Sequence) -> pd.DataFrame:
    """One row per record (dataclass or dict), columns in field order."""
    rows = [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(r) for r in records]
    return pd.DataFrame(rows)


def mean_pm_column(avg: Sequence[float], sd: Sequence[float], digits: int = 2, missing: str = "") -> list[str]:
    """'mean ± stddev' strings for a table column; `missing` where the mean is NaN (not measured)."""
    return [f"{a:.{digits}f} ± {s:.{digits}f}" if a == a else missing for a, s in zip(avg, sd, strict=True)]


def _cell(value):
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    if isinstance(value, dict):
        value = json.dumps(value, default=str)
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot run as spreadsheet formulas and whose lists are flat strings."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype).startswith("str"):
            out[col] = out[col].map(_cell)
    return out


def to_csv(frame: pd.DataFrame, path: str | None = None) -> str:
    """CSV text (also written to `path` when given)."""
    text = csv_safe(frame).to_csv(index=False)
    if path:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return text


def to_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", indent=2, default_handler=str)


def to_markdown(frame: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    """A GitHub-flavoured Markdown table."""

    def fmt(v) -> str:
        if isinstance(v, float):
            return floatfmt.format(v)
        if isinstance(v, (list, tuple)):
            return " ".join(str(x) for x in v)
        return str(v).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    sep = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, sep, *body])


def render(frame: pd.DataFrame, fmt: str, table: str = "results") -> str:
    """The frame as 'csv', 'json', 'jsonl' (one object a line), 'sql' (CREATE TABLE `table` and INSERTs),
    'md' or 'table' (plain aligned text)."""
    if fmt == "csv":
        return to_csv(frame)
    if fmt == "json":
        return to_json(frame)
    if fmt in ("jsonl", "sql"):
        from bench.llama_format import to_jsonl, to_sql

        return to_jsonl(frame) if fmt == "jsonl" else to_sql(frame, table)
    if fmt == "md":
        return to_markdown(frame)
    buf = io.StringIO()
    with pd.option_context("display.max_columns", None, "display.width", 200):
        buf.write(frame.to_string(index=False))
    return buf.getvalue()


def render_speed(frame: pd.DataFrame, fmt: str) -> str:
    """Speed rows (a to_frame()) as csv, json, jsonl or sql with llama-bench's fields first (bench.llama_format)."""
    from bench import llama_format

    lb = llama_format.llama_bench_frame(frame)
    if fmt == "csv":
        return to_csv(lb)
    if fmt == "json":
        return llama_format.to_json(lb)
    if fmt == "jsonl":
        return llama_format.to_jsonl(lb)
    if fmt == "sql":
        return llama_format.to_speed_sql(lb)
    raise ValueError(f"not a llama-bench output format: {fmt!r}")
