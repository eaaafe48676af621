"""Records to a pandas frame, and the frame to CSV, JSON, JSONL, SQL or Markdown (the generic writers).

`to_frame(records)` is the one path from records to every view (table, CSV, chart). Sample tuples
become space-separated strings in CSV. Text cells that a spreadsheet would run as a formula (starting
with =, +, -, @, tab or CR) are prefixed with a single quote, per OWASP's CSV-injection advice.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence

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
        return to_jsonl(frame) if fmt == "jsonl" else to_sql(frame, table)
    if fmt == "md":
        return to_markdown(frame)
    buf = io.StringIO()
    with pd.option_context("display.max_columns", None, "display.width", 200):
        buf.write(frame.to_string(index=False))
    return buf.getvalue()


def _json_value(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy / pandas scalars
        return _json_value(value.item())
    if isinstance(value, tuple):
        return list(value)
    return value


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: (None if v is pd.NA else _json_value(v)) for k, v in r.items()}
        for r in frame.astype(object).to_dict("records")
    ]


def to_jsonl(frame: pd.DataFrame, bool_fields: Iterable[str] = ()) -> str:
    """One JSON object per row per line; `bool_fields` written as true/false (llama-bench's flags)."""
    lines = []
    for rec in _records(frame):
        for f in bool_fields:
            if rec.get(f) is not None:
                rec[f] = bool(rec[f])
        lines.append(json.dumps(rec, ensure_ascii=False, default=str))
    return "\n".join(lines) + ("\n" if lines else "")


def _column_type(values: list) -> str:
    known = [v for v in values if v is not None]
    if known and all(isinstance(v, (bool, int)) for v in known):
        return "INTEGER"
    if known and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in known):
        return "REAL"
    return "TEXT"


def _sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value) if math.isfinite(value) else "NULL"
    if isinstance(value, (list, tuple, dict)):
        value = json.dumps(value)
    return "'" + str(value).replace("'", "''") + "'"


def _sql_name(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a column name: {name!r}")
    return name


def to_sql(frame: pd.DataFrame, table: str, column_types: Mapping[str, str] | None = None) -> str:
    """sql as llama-bench writes it: CREATE TABLE IF NOT EXISTS `table`, then one INSERT per row (lists as
    JSON text); a column's type from `column_types`, else INTEGER, REAL or TEXT by its values."""
    records = _records(frame)
    columns = [_sql_name(c) for c in frame.columns]
    given = column_types or {}
    types = {c: given.get(c) or _column_type([r[c] for r in records]) for c in columns}
    lines = [f"CREATE TABLE IF NOT EXISTS {_sql_name(table)} ("]
    lines += [f"  {c} {types[c]}{',' if i < len(columns) - 1 else ''}" for i, c in enumerate(columns)]
    lines += [");", ""]
    names = ", ".join(columns)
    for r in records:
        values = ", ".join(_sql_literal(r[c]) for c in columns)
        lines.append(f"INSERT INTO {table} ({names}) VALUES ({values});")
    return "\n".join(lines) + "\n"


def to_json_array(frame: pd.DataFrame, bool_fields: Iterable[str] = ()) -> str:
    """A JSON array of the rows, one per line as in to_jsonl."""
    return "[\n" + ",\n".join("  " + line for line in to_jsonl(frame, bool_fields).splitlines()) + "\n]\n"
