"""The results store: SQLite in WAL mode under LOCALBENCH_HOME (results.db).

A run is a unit of work (a `bench` invocation, a quantization comparison, an embeddings sweep). Its
rows are the records it produced, kept as JSON with the record's kind, so every runner shares one
store without schema changes. Each finished run is committed at once in one transaction; a run that
failed or was cancelled is stored with that status and no numbers, so nothing half-done reads as a
result. Every site that runs something and stores it does so through `ResultStore.recording`, so the
outcome (ok, failed with its one-line message, cancelled) and the hardware receipt are recorded the
same way everywhere. A connection per operation keeps it safe across the UI's worker threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from core.ids import new_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,          -- ok | failed | cancelled
    error TEXT NOT NULL DEFAULT '',
    settings_json TEXT NOT NULL DEFAULT '{}',
    hardware_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    kind TEXT NOT NULL,
    row_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_run ON results(run_id);
CREATE INDEX IF NOT EXISTS results_kind ON results(kind);
"""


def default_path() -> Path:
    from core.paths import home

    return home() / "results.db"


def as_row(record) -> dict:
    """A record (dataclass or dict) as a JSON-able dict; tuples become lists."""
    row = dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)
    return json.loads(json.dumps(row, default=str))


def outcome(err: BaseException) -> tuple[str, str]:
    """(status, one-line message) of a run that raised `err`: Ctrl-C or `Cancelled` is 'cancelled',
    anything else 'failed'. A library's own exception keeps its type name in the message."""
    from core.errors import Cancelled, LocalbenchError

    status = "cancelled" if isinstance(err, (Cancelled, KeyboardInterrupt)) else "failed"
    text = " ".join(str(err).split())
    if not isinstance(err, LocalbenchError):
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return status, text


@dataclasses.dataclass
class Recording:
    """A run being recorded: the block sets `rows` (and may add to `settings`); an outcome known without
    an exception (a reply the user stopped) is set in `status` and `error`. `run_id` is set on exit."""

    settings: dict
    rows: list = dataclasses.field(default_factory=list)
    status: str = "ok"
    error: str = ""
    run_id: str = ""


def init_db(path: Path, schema: str) -> None:
    """Create the folder and the tables of a SQLite store (write-ahead log, so readers never block)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a SQLite store as one transaction: commit on success, roll back on error."""
    db = sqlite3.connect(path, timeout=30)
    try:
        with db:
            yield db
    finally:
        db.close()


class ResultStore:
    """Runs and their result rows in one SQLite file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        init_db(self.path, SCHEMA)

    def _connect(self):
        return connect(self.path)

    def save_run(
        self,
        kind: str,
        records: Sequence,
        *,
        status: str = "ok",
        error: str = "",
        settings: dict | None = None,
        hardware: dict | None = None,
    ) -> str:
        """Store a finished run and its rows in one transaction; returns its run_id."""
        if status not in ("ok", "failed", "cancelled"):
            raise ValueError(f"bad status {status!r}")
        run_id = new_id(12)
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        rows = [as_row(r) for r in records] if status == "ok" else []
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    kind,
                    now,
                    status,
                    error,
                    json.dumps(settings or {}, default=str),
                    json.dumps(hardware or {}, default=str),
                ),
            )
            db.executemany(
                "INSERT INTO results (run_id, kind, row_json) VALUES (?, ?, ?)",
                [(run_id, kind, json.dumps(r)) for r in rows],
            )
        return run_id

    @contextlib.contextmanager
    def recording(self, kind: str, settings: dict, hardware) -> Iterator[Recording]:
        """Run the block and store its outcome as one run of `kind` with the hardware receipt (a
        HardwareProfile or its dict): ok with `run.rows`, or, when the block raises, failed or cancelled
        (see `outcome`) with no rows; the exception goes on to the caller."""
        receipt = hardware if isinstance(hardware, dict) else hardware.to_dict()
        if not receipt:
            raise ValueError("a run is stored with its hardware receipt")
        run = Recording(dict(settings))
        try:
            yield run
        except (Exception, KeyboardInterrupt) as err:
            status, message = outcome(err)
            run.run_id = self.save_run(kind, [], status=status, error=message, settings=run.settings, hardware=receipt)
            raise
        run.run_id = self.save_run(
            kind, run.rows, status=run.status, error=run.error, settings=run.settings, hardware=receipt
        )

    def runs(self, kind: str | None = None) -> list[dict]:
        """Every run, newest first, with its row count."""
        sql = (
            "SELECT r.run_id, r.kind, r.created_at, r.status, r.error, r.settings_json, "
            "(SELECT COUNT(*) FROM results x WHERE x.run_id = r.run_id) AS n_rows FROM runs r"
        )
        args: tuple = ()
        if kind:
            sql += " WHERE r.kind = ?"
            args = (kind,)
        with self._connect() as db:
            cur = db.execute(sql + " ORDER BY r.created_at DESC, r.rowid DESC", args)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def rows(self, kind: str | None = None, run_id: str | None = None) -> list[dict]:
        """Result rows (oldest first), each with its run_id and created_at added."""
        sql = "SELECT x.run_id, r.created_at, x.row_json FROM results x JOIN runs r USING (run_id) WHERE 1=1"
        args: list = []
        if kind:
            sql += " AND x.kind = ?"
            args.append(kind)
        if run_id:
            sql += " AND x.run_id = ?"
            args.append(run_id)
        with self._connect() as db:
            out = []
            for rid, created, row_json in db.execute(sql + " ORDER BY x.id", args):
                out.append({"run_id": rid, "created_at": created, **json.loads(row_json)})
            return out

    def delete_run(self, run_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM results WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def hardware(self) -> dict[str, dict]:
        """Each run's stored hardware (a HardwareProfile as a dict), by run id."""
        with self._connect() as db:
            return {rid: json.loads(h or "{}") for rid, h in db.execute("SELECT run_id, hardware_json FROM runs")}

    def export_runs(self) -> list[dict]:
        """Every run, oldest first, with its settings, hardware and rows: what `results export` writes."""
        with self._connect() as db:
            cur = db.execute("SELECT * FROM runs ORDER BY created_at, rowid")
            cols = [c[0] for c in cur.description]
            runs = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
            rows: dict[str, list[dict]] = {}
            for rid, row_json in db.execute("SELECT run_id, row_json FROM results ORDER BY id"):
                rows.setdefault(rid, []).append(json.loads(row_json))
        return [
            {
                "run_id": r["run_id"],
                "kind": r["kind"],
                "created_at": r["created_at"],
                "status": r["status"],
                "error": r["error"],
                "settings": json.loads(r["settings_json"] or "{}"),
                "hardware": json.loads(r["hardware_json"] or "{}"),
                "rows": rows.get(r["run_id"], []),
            }
            for r in runs
        ]

    def import_runs(self, runs: Sequence[dict]) -> tuple[list[str], list[str]]:
        """Insert runs (export_runs' shape, already validated) keeping their ids, dates and hardware, in one
        transaction; a run id already stored is skipped, so importing a file twice adds nothing.
        Returns (added ids, skipped ids)."""
        added, skipped = [], []
        with self._connect() as db:
            have = {rid for (rid,) in db.execute("SELECT run_id FROM runs")}
            for run in runs:
                if run["run_id"] in have:
                    skipped.append(run["run_id"])
                    continue
                db.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        run["run_id"],
                        run["kind"],
                        run["created_at"],
                        run["status"],
                        run.get("error", ""),
                        json.dumps(run.get("settings") or {}, default=str),
                        json.dumps(run.get("hardware") or {}, default=str),
                    ),
                )
                db.executemany(
                    "INSERT INTO results (run_id, kind, row_json) VALUES (?, ?, ?)",
                    [(run["run_id"], run["kind"], json.dumps(r, default=str)) for r in run["rows"]],
                )
                have.add(run["run_id"])
                added.append(run["run_id"])
        return added, skipped
