"""Results export and import: every run of a store to CSV, JSON or Markdown, and CSV or JSON back in.

JSON is `{"schema": SCHEMA, "runs": [...]}`, each run with its id, kind, date, status, settings, hardware
and rows. CSV has one line per result row (a run without rows gets one line with an empty `row_json`),
readable columns first (machine, model, engine, quant, test, avg_ts) and the run's JSON last, so it
comes back whole. Markdown is the history table, for reading only. Import validates each run, lists the
rejected ones with the reason, and skips run ids already stored: the same file twice adds nothing, and
runs keep their ids, dates and machine.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from bench.results.export import FORMULA_PREFIXES, render, to_csv
from bench.results.labels import machine_label, quant_of
from core.errors import BadParameter

SCHEMA = "localbench.results/1"
STATUSES = ("ok", "failed", "cancelled")
RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CSV_RUN_COLUMNS = ("run_id", "kind", "created_at", "status", "error", "settings_json", "hardware_json")
REQUIRED_ROW_FIELDS = {"speed": ("test", "avg_ts", "samples_ts"), "quant": ("variant",)}
"""Fields a row of these kinds must carry to be ours: a foreign CSV with the same kind names is rejected."""


@dataclass(frozen=True)
class Rejected:
    """A run (or the whole file) that was not imported, and why."""

    where: str
    """'run abc123', 'line 7' or the file name."""
    reason: str


def _first(run: dict, key: str) -> str:
    settings, rows = run.get("settings") or {}, run.get("rows") or []
    value = settings.get(key) or (rows[0].get(key) if rows else "")
    if not value and key == "engine" and settings.get("pairs"):
        value = ", ".join(sorted({p[0] for p in settings["pairs"]}))
    if not value and key == "model" and settings.get("pairs"):
        value = ", ".join(sorted({p[1] for p in settings["pairs"]}))
    return str(value or "")


def _quant(run: dict) -> str:
    rows = run.get("rows") or []
    types = {quant_of(r) for r in rows if r.get("file_type") or r.get("model_type")}
    types |= {r["variant"] for r in rows if r.get("variant")}
    return ", ".join(sorted(types))


def history_frame(runs: Sequence[dict]) -> pd.DataFrame:
    """One line per run, newest first: run_id, date, kind, status, model, engine, quant, machine, rows, error."""
    lines = [
        {
            "run_id": r["run_id"],
            "date": r["created_at"].replace("T", " ")[:16],
            "kind": r["kind"],
            "status": r["status"],
            "model": _first(r, "model"),
            "engine": _first(r, "engine"),
            "quant": _quant(r),
            "machine": machine_label(r.get("hardware") or {}) if r.get("hardware") else "",
            "rows": len(r.get("rows") or []),
            "error": r.get("error", ""),
        }
        for r in runs
    ]
    columns = ["run_id", "date", "kind", "status", "model", "engine", "quant", "machine", "rows", "error"]
    return pd.DataFrame(lines, columns=columns).iloc[::-1].reset_index(drop=True)


def export_text(runs: Sequence[dict], fmt: str) -> str:
    """The runs as 'json' (whole), 'csv' (one line per row, whole) or 'md' (the history table)."""
    if fmt == "json":
        return json.dumps({"schema": SCHEMA, "runs": list(runs)}, indent=2, default=str) + "\n"
    if fmt == "md":
        return render(history_frame(runs), "md") + "\n"
    if fmt != "csv":
        raise BadParameter(f"export formats are csv, json and md, not {fmt!r}")
    lines = []
    for run in runs:
        info = {"machine": machine_label(run.get("hardware") or {}), "model": _first(run, "model")}
        base = {
            "schema": SCHEMA,
            **{k: run.get(k, "") for k in ("run_id", "kind", "created_at", "status", "error")},
            **info,
            "engine": _first(run, "engine"),
            "settings_json": json.dumps(run.get("settings") or {}, default=str),
            "hardware_json": json.dumps(run.get("hardware") or {}, default=str),
        }
        for row in run.get("rows") or [{}]:
            quant = quant_of(row)
            readable = {"quant": quant, "test": row.get("test", ""), "avg_ts": row.get("avg_ts", "")}
            lines.append({**base, **readable, "row_json": json.dumps(row, default=str) if row else ""})
    return to_csv(pd.DataFrame(lines))


def _unquote(text: str) -> str:
    """Undo export's formula guard: "'=x" was written for "=x"."""
    return text[1:] if text.startswith("'") and text[1:2] in FORMULA_PREFIXES else text


def _runs_from_csv(text: str) -> tuple[list[dict], list[Rejected]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in (*CSV_RUN_COLUMNS, "row_json", "schema") if c not in (reader.fieldnames or ())]
    if missing:
        return [], [Rejected("file", f"not a localbench results CSV: no column(s) {', '.join(missing)}")]
    runs: dict[str, dict] = {}
    rejected = []
    for line_no, line in enumerate(reader, start=2):
        if line["schema"] != SCHEMA:
            rejected.append(Rejected(f"line {line_no}", f"schema {line['schema']!r}, expected {SCHEMA!r}"))
            continue
        try:
            run = runs.setdefault(
                line["run_id"],
                {
                    **{k: _unquote(line[k]) for k in ("run_id", "kind", "created_at", "status", "error")},
                    "settings": json.loads(line["settings_json"] or "{}"),
                    "hardware": json.loads(line["hardware_json"] or "{}"),
                    "rows": [],
                },
            )
            if line["row_json"]:
                run["rows"].append(json.loads(line["row_json"]))
        except json.JSONDecodeError as err:
            rejected.append(Rejected(f"line {line_no}", f"broken JSON in a cell: {err.msg}"))
            runs.pop(line["run_id"], None)
    return list(runs.values()), rejected


def parse_export(text: str, name: str = "file") -> tuple[list[dict], list[Rejected]]:
    """(runs, rejected) from an export's text, JSON or CSV; raises BadParameter when it is neither."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise BadParameter(f"{name} is not valid JSON (line {err.lineno}: {err.msg})") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            return [], [Rejected(name, f"not a localbench results export: schema {found!r}, expected {SCHEMA!r}")]
        runs = data.get("runs")
        if not isinstance(runs, list):
            return [], [Rejected(name, "'runs' is not a list")]
        return validate(runs)
    if stripped.startswith(("schema,", '"schema"')) or "run_id" in stripped.split("\n", 1)[0]:
        runs, rejected = _runs_from_csv(text)
        good, bad = validate(runs)
        return good, rejected + bad
    raise BadParameter(f"{name} is neither a localbench JSON nor CSV export (Markdown exports are for reading)")


def check_run(run) -> str:
    """'' when the run is importable, else why not (pure)."""
    if not isinstance(run, dict):
        return "not an object"
    if not isinstance(run.get("run_id"), str) or not RUN_ID.match(run["run_id"]):
        return f"bad run_id {run.get('run_id')!r}"
    if not isinstance(run.get("kind"), str) or not run["kind"] or len(run["kind"]) > 64:
        return f"bad kind {run.get('kind')!r}"
    try:
        dt.datetime.fromisoformat(str(run.get("created_at")))
    except ValueError:
        return f"created_at {run.get('created_at')!r} is not an ISO date"
    if run.get("status") not in STATUSES:
        return f"status {run.get('status')!r} is not one of {', '.join(STATUSES)}"
    for key in ("settings", "hardware"):
        if not isinstance(run.get(key, {}), dict):
            return f"{key} is not an object"
    rows = run.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return "rows is not a list of objects"
    if run["status"] != "ok" and rows:
        return f"a {run['status']} run carries rows: a failed run has no figures"
    for i, row in enumerate(rows):
        lacking = [f for f in REQUIRED_ROW_FIELDS.get(run["kind"], ()) if f not in row]
        if lacking:
            return f"row {i + 1} of kind {run['kind']} lacks {', '.join(lacking)}"
    return ""


def validate(runs: Sequence) -> tuple[list[dict], list[Rejected]]:
    """Split runs into importable ones and rejections; a run id twice in one file is rejected the second time."""
    good, rejected, seen = [], [], set()
    for i, run in enumerate(runs):
        where = f"run {run.get('run_id')}" if isinstance(run, dict) and run.get("run_id") else f"run #{i + 1}"
        reason = check_run(run)
        if not reason and run["run_id"] in seen:
            reason = "the same run id appears earlier in the file"
        if reason:
            rejected.append(Rejected(where, reason))
            continue
        seen.add(run["run_id"])
        good.append({**run, "error": str(run.get("error", ""))})
    return good, rejected


@dataclass(frozen=True)
class ImportResult:
    """What importing one export file did."""

    added: list[str]
    """Run ids now stored."""
    skipped: list[str]
    """Run ids that were already stored (a second import of the same file skips them all)."""
    rejected: list[Rejected]

    def reasons(self) -> str:
        return "; ".join(f"{r.where}: {r.reason}" for r in self.rejected)


def import_file(store, path: str, name: str | None = None) -> ImportResult:
    """Read, validate and import an exported CSV or JSON file into `store` (the CLI's and the Results tab's
    one path); BadParameter when the file cannot be read or is no export at all."""
    name = name or str(path)
    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as err:
        raise BadParameter(f"cannot read {name}: {err}") from None
    runs, rejected = parse_export(text, name)
    added, skipped = store.import_runs(runs)
    return ImportResult(added, skipped, rejected)
