"""Results export and import: every run of a store to CSV, JSON or Markdown, and CSV or JSON back in.

JSON is `{"schema": SCHEMA, "runs": [...]}`, each run with its id, kind, date, status, settings, hardware
and rows. CSV has one line per result row (a run without rows gets one line with an empty `row_json`),
readable columns first (machine, model, engine, quant, test, avg_ts) and the run's JSON last, so it
comes back whole. Markdown is the history table, for reading only. Import reads at most
MAX_IMPORT_BYTES of a regular file, validates every run and every row against the row schema (types; token
counts and sizes whole numbers >= 0; rates, times and sizes never negative or infinite; samples finite)
before anything is written, and refuses the whole file when one run is bad, so the store is unchanged. Run
ids already stored are skipped: the same file twice adds nothing, and runs keep their ids, dates and machine.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import math
import os
import re
import stat
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
CSV_COLUMNS = (
    "schema",
    *CSV_RUN_COLUMNS[:5],
    "machine",
    "model",
    "engine",
    *CSV_RUN_COLUMNS[5:],
    "quant",
    "test",
    "avg_ts",
    "row_json",
)
"""The export's CSV columns in order (an empty store still writes the header, so it re-imports)."""
REQUIRED_ROW_FIELDS = {"speed": ("test", "avg_ts", "samples_ts"), "quant": ("variant",)}
"""Fields a row of these kinds must carry to be ours: a foreign CSV with the same kind names is rejected."""
MAX_IMPORT_BYTES = 50 * 1024 * 1024
"""The largest file `results import`, `arena import` and the Results tab's Import read (50 MiB); one CSV cell
may be as large, so our own export of a run with a large row re-imports."""
MAX_DEPTH = 32
"""Deepest nesting of objects and lists a run may carry (our own runs nest a few levels)."""
COUNT_FIELDS = frozenset(
    {"n_prompt", "n_gen", "n_depth", "model_size", "model_n_params", "n_params", "repetitions", "warmup_runs"}
)
"""Token counts and sizes: whole numbers >= 0."""
FIGURE_SUFFIXES = ("_ts", "_tps", "_per_s", "throughput", "_ns", "_ms", "_s", "_bytes", "_gbs", "_gb", "_tokens")
"""Rates, times and sizes by their unit suffix: a number >= 0 (or a list of them), never infinite; None or
NaN only where a record writes it for a figure it did not measure (avg_ttft_ms on llama-bench's path)."""
MAX_FIGURE = 1e18
"""No rate, time, size or count of ours comes near it (1e18 bytes is an exabyte, 1e18 ns three decades)."""
FINITE_FIELDS = frozenset({"avg_ts", "avg_ns"})
"""Figures a row exists to carry: never NaN either."""


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
    return to_csv(pd.DataFrame(lines, columns=CSV_COLUMNS))


def unquote(text: str) -> str:
    """Undo export's formula guard (bench.results.export.csv_safe): "'=x" was written for "=x"."""
    return text[1:] if text.startswith("'") and text[1:2] in FORMULA_PREFIXES else text


@contextlib.contextmanager
def csv_cells_up_to(limit: int = MAX_IMPORT_BYTES):
    """Let the csv module read cells as large as the file cap (its default, 131,072 characters, refuses our
    own export of a large row), restoring the process-wide limit afterwards."""
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _runs_from_csv(text: str) -> tuple[list[dict], list[Rejected]]:
    with csv_cells_up_to():
        try:
            return _read_csv(text)
        except csv.Error as err:  # a NUL byte, a cell past the cap: the file is not one of our exports
            raise BadParameter(f"not a readable CSV export: {err}") from None


def _read_csv(text: str) -> tuple[list[dict], list[Rejected]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in (*CSV_RUN_COLUMNS, "row_json", "schema") if c not in (reader.fieldnames or ())]
    if missing:
        return [], [Rejected("file", f"not a localbench results CSV: no column(s) {', '.join(missing)}")]
    runs: dict[str, dict] = {}
    rejected = []
    width = len(reader.fieldnames or ())
    for line_no, line in enumerate(reader, start=2):
        if None in line or None in line.values():  # DictReader's marks of a short or a long line
            cells = width + len(line.get(None) or ()) - sum(v is None for v in line.values())
            rejected.append(Rejected(f"line {line_no}", f"{cells} cells where the header has {width}"))
            continue
        if line["schema"] != SCHEMA:
            rejected.append(Rejected(f"line {line_no}", f"schema {line['schema']!r}, expected {SCHEMA!r}"))
            continue
        try:
            run = runs.setdefault(
                line["run_id"],
                {
                    **{k: unquote(line[k]) for k in ("run_id", "kind", "created_at", "status", "error")},
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
        except RecursionError:
            rejected.append(Rejected(f"line {line_no}", "a JSON cell nests too deep to be one of our exports"))
            runs.pop(line["run_id"], None)
        except ValueError as err:  # a number of more than 4,300 digits
            rejected.append(Rejected(f"line {line_no}", f"a JSON cell cannot be read: {str(err)[:80]}"))
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
        except RecursionError:
            raise BadParameter(f"{name} nests too deep to be a localbench export (a JSON nesting bomb?)") from None
        except ValueError as err:  # a number of more than 4,300 digits
            raise BadParameter(f"{name} cannot be read as JSON: {str(err)[:80]}") from None
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
    if not isinstance(run.get("error", ""), str):
        return "error is not text"
    if _depth(run) > MAX_DEPTH:
        return f"nests deeper than {MAX_DEPTH} levels: not one of our runs"
    for i, row in enumerate(rows):
        lacking = [f for f in REQUIRED_ROW_FIELDS.get(run["kind"], ()) if f not in row]
        if lacking:
            return f"row {i + 1} of kind {run['kind']} lacks {', '.join(lacking)}"
        reason = check_row(row)
        if reason:
            return f"row {i + 1} {reason}"
    return ""


def _depth(value) -> int:
    """How deep objects and lists nest in `value` (iterative: a deep value must not exhaust the stack)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: int | float) -> str:
    if isinstance(value, int) and abs(value) > 10**21:  # an int too large for a float's format
        return f"a {len(str(abs(value)))}-digit number"
    return f"{value:.6g}"


def _figure_problem(value, whole: bool, finite: bool) -> str:
    """'' when `value` can be a figure of this kind, else what is wrong with it."""
    if not _is_number(value):
        return f"{json.dumps(value, default=str)[:40]} is not a number"
    if isinstance(value, float) and (math.isinf(value) or (finite and math.isnan(value))):
        return f"{value} is not a finite number"
    if value < 0:
        return f"{_shown(value)} is negative"
    if value > MAX_FIGURE:
        return f"{_shown(value)} is beyond any real figure (above {MAX_FIGURE:g})"
    if whole and not (isinstance(value, int) or value.is_integer()):
        return f"{_shown(value)} is not a whole number"
    return ""


def check_row(row: dict) -> str:
    """'' when every figure of a stored row is possible, else 'field NAME: why' for the first that is not
    (pure): token counts and sizes whole numbers >= 0, rates, times and sizes numbers >= 0 and never
    infinite (NaN only for one not measured, never in avg_ts), sample lists finite numbers >= 0."""
    for key, value in row.items():
        if not isinstance(key, str):
            continue
        is_count = key in COUNT_FIELDS
        is_samples = key.startswith("samples_")
        if not (is_count or is_samples or key.endswith(FIGURE_SUFFIXES)):
            continue
        if value is None and not (is_samples or key in FINITE_FIELDS):  # None: a figure not known
            continue
        if isinstance(value, list):
            for j, item in enumerate(value):
                problem = _figure_problem(item, whole=is_count, finite=True)
                if problem:
                    return f"field {key}[{j}]: {problem}"
            continue
        if is_samples:
            return f"field {key}: {json.dumps(value, default=str)[:40]} is not a list of samples"
        problem = _figure_problem(value, whole=is_count, finite=is_count or key in FINITE_FIELDS)
        if problem:
            return f"field {key}: {problem}"
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
    name: str = ""
    """The file's name, as messages show it."""

    def reasons(self) -> str:
        """The first rejection in one line ('mac.json, run ab12, row 2 field avg_ts: ...'), with how many more."""
        if not self.rejected:
            return ""
        first = self.rejected[0]
        where = self.name if first.where in ("file", self.name) else ", ".join(filter(None, (self.name, first.where)))
        more = f" (and {len(self.rejected) - 1} more rejected)" if len(self.rejected) > 1 else ""
        return f"{where}: {first.reason}{more} — the file was refused whole: nothing was imported"


def read_capped(path, name: str | None = None, cap: int = MAX_IMPORT_BYTES) -> str:
    """The UTF-8 text of an import file, reading at most `cap` + 1 bytes; BadParameter (one line naming the
    cap) for a missing or non-regular file (a device, a pipe: /dev/zero never ends) or one over the cap."""
    name = name or str(path)
    limit = f"{cap / 2**20:g} MiB"
    try:
        info = os.stat(path)
    except OSError as err:
        raise BadParameter(f"cannot read {name}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadParameter(f"{name} is not a regular file — import an exported CSV or JSON file (at most {limit})")
    too_big = f"{name} is over the {limit} import limit — import a smaller export (one machine's runs at a time)"
    if info.st_size > cap:
        raise BadParameter(too_big)
    try:
        with open(path, "rb") as fh:
            data = fh.read(cap + 1)
    except OSError as err:
        raise BadParameter(f"cannot read {name}: {err.strerror or err}") from None
    if len(data) > cap:  # it grew since the stat
        raise BadParameter(too_big)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadParameter(f"{name} is not UTF-8 text — save it as UTF-8 (CSV or JSON)") from None


def import_file(store, path: str, name: str | None = None) -> ImportResult:
    """Read, validate and import an exported CSV or JSON file into `store` (the CLI's and the Results tab's
    one path). Every run is checked before anything is written: when one is rejected, nothing is imported
    and the result lists the rejections. BadParameter when the file cannot be read or is no export at all."""
    name = name or str(path)
    runs, rejected = parse_export(read_capped(path, name), name)
    if rejected:
        return ImportResult([], [], rejected, name)
    added, skipped = store.import_runs(runs)
    return ImportResult(added, skipped, [], name)
