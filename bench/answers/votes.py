"""Arena votes: one SQLite file under LOCALBENCH_HOME (arena.db), one row per vote, keyed by vote_id.

A vote keeps everything needed to audit or refit it later: the prompt, both answers, both models and
engines, which drawn model was shown as A (the randomized side), both generation statistics as JSON,
and the winner. `vote_id` is the primary key and inserts are `INSERT OR IGNORE`, so a double click or
a second import of the same file counts once. A connection per operation, like the results store.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from bench.answers.ratings import WINNERS
from bench.results.store import connect, init_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    vote_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    model_a TEXT NOT NULL,         -- entry label shown as A
    model_b TEXT NOT NULL,
    winner TEXT NOT NULL,          -- a | b | tie | both_bad
    engine_a TEXT NOT NULL DEFAULT '',
    engine_b TEXT NOT NULL DEFAULT '',
    swapped INTEGER NOT NULL DEFAULT 0,  -- 1 when the second drawn entry was shown as A
    prompt TEXT NOT NULL DEFAULT '',
    answer_a TEXT NOT NULL DEFAULT '',
    answer_b TEXT NOT NULL DEFAULT '',
    stats_a_json TEXT NOT NULL DEFAULT '{}',
    stats_b_json TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL DEFAULT 'ui'    -- ui | import
);
CREATE INDEX IF NOT EXISTS votes_created ON votes(created_at);
"""

IMPORT_COLUMNS = ("vote_id", "model_a", "model_b", "winner")
"""Required columns of `arena import` CSV files; prompt, answer_a, answer_b, engine_a, engine_b are optional."""
OPTIONAL_COLUMNS = ("prompt", "answer_a", "answer_b", "engine_a", "engine_b")
EXPORT_COLUMNS = ("swapped", "stats_a_json", "stats_b_json", "source", "created_at")
"""The further columns `arena export` writes: accepted, so our own export re-imports (source becomes 'import')."""


@dataclass(frozen=True)
class Vote:
    """One arena judgement."""

    vote_id: str
    model_a: str
    """Entry label shown on the A side."""
    model_b: str
    winner: str
    """a | b | tie | both_bad."""
    engine_a: str = ""
    engine_b: str = ""
    swapped: bool = False
    """True when the pair's second drawn entry was shown as A (the side coin came up heads)."""
    prompt: str = ""
    answer_a: str = ""
    answer_b: str = ""
    stats_a_json: str = "{}"
    """The A answer's GenerationStats as JSON (seconds and tokens per second in the field names)."""
    stats_b_json: str = "{}"
    source: str = "ui"
    created_at: str = ""
    """UTC ISO time; filled in when stored."""


def default_path() -> Path:
    from core.paths import home

    return home() / "arena.db"


def check_vote(vote: Vote) -> None:
    """ValueError with a reason for a vote that cannot be counted."""
    if not vote.vote_id.strip():
        raise ValueError("empty vote_id")
    if not vote.model_a.strip() or not vote.model_b.strip():
        raise ValueError("empty model_a or model_b")
    if vote.model_a == vote.model_b:
        raise ValueError(f"model_a and model_b are both {vote.model_a!r}: label the two entries apart")
    if vote.winner not in WINNERS:
        raise ValueError(f"winner {vote.winner!r} is not one of {', '.join(WINNERS)}")


class VoteStore:
    """Arena votes in one SQLite file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        init_db(self.path, SCHEMA)

    def _connect(self):
        return connect(self.path)

    def add(self, votes: Iterable[Vote]) -> int:
        """Store votes (checked first; ValueError on a bad one); returns how many were new."""
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        rows = []
        for v in votes:
            check_vote(v)
            row = asdict(v)
            row["created_at"] = v.created_at or now
            row["swapped"] = int(v.swapped)
            rows.append(row)
        if not rows:
            return 0
        cols = list(rows[0])
        sql = f"INSERT OR IGNORE INTO votes ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        with self._connect() as db:
            before = db.total_changes
            db.executemany(sql, [tuple(r[c] for c in cols) for r in rows])
            return db.total_changes - before

    def votes(self) -> list[Vote]:
        """Every vote, oldest first."""
        names = [f.name for f in fields(Vote)]
        with self._connect() as db:
            cur = db.execute(f"SELECT {', '.join(names)} FROM votes ORDER BY created_at, rowid")
            rows = [dict(zip(names, row, strict=True)) for row in cur]
        return [Vote(**{**r, "swapped": bool(r["swapped"])}) for r in rows]

    def triples(self) -> list[tuple[str, str, str]]:
        """(model_a, model_b, winner) of every vote, for bench.answers.ratings."""
        return [(v.model_a, v.model_b, v.winner) for v in self.votes()]

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM votes").fetchone()[0]


def read_votes_file(path: str | Path) -> tuple[list[Vote], list[str]]:
    """Votes from a CSV file of at most bench.results.transfer.MAX_IMPORT_BYTES (a device or a pipe is
    refused); BadParameter, one line, for a file that cannot be read as CSV at all."""
    from bench.results.transfer import read_capped

    return parse_votes_csv(read_capped(path))


def parse_votes_csv(text: str) -> tuple[list[Vote], list[str]]:
    """Votes from CSV text, and one reason per rejected row ('row 3: winner 'left' is not one of …').

    Unknown columns reject the whole file (a typo in a header would otherwise drop data silently); a cell
    may be as large as the import cap, so our own export of a long answer re-imports."""
    from bench.results.transfer import csv_cells_up_to
    from core.errors import BadParameter

    with csv_cells_up_to():
        try:
            return _parse_votes(text)
        except csv.Error as err:  # a NUL byte, a cell past the cap
            raise BadParameter(f"not a readable votes CSV: {err}") from None


def _cell_text(row: dict, key: str) -> str:
    from bench.results.transfer import unquote

    return unquote((row.get(key) or "").strip())


def _export_fields(row: dict) -> dict:
    """The `arena export` columns of a row as Vote fields; ValueError naming a cell that cannot be one."""
    out: dict = {}
    swapped = _cell_text(row, "swapped").lower()
    if swapped not in ("", "true", "false", "1", "0"):
        raise ValueError(f"swapped {swapped!r} is not true or false")
    out["swapped"] = swapped in ("true", "1")
    for key in ("stats_a_json", "stats_b_json"):
        text = _cell_text(row, key) or "{}"
        try:
            stats = json.loads(text)
        except (ValueError, RecursionError):  # broken JSON, a nesting bomb, a number of 4,300+ digits
            raise ValueError(f"{key} is not JSON") from None
        if not isinstance(stats, dict):
            raise ValueError(f"{key} is not a JSON object")
        out[key] = text
    created = _cell_text(row, "created_at")
    if created:
        try:
            dt.datetime.fromisoformat(created)
        except ValueError:
            raise ValueError(f"created_at {created[:40]!r} is not an ISO date") from None
        out["created_at"] = created
    return out


def _parse_votes(text: str) -> tuple[list[Vote], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in IMPORT_COLUMNS if c not in header]
    unknown = [c for c in header if c not in IMPORT_COLUMNS + OPTIONAL_COLUMNS + EXPORT_COLUMNS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        expected = ", ".join(IMPORT_COLUMNS) + " (optional: " + ", ".join(OPTIONAL_COLUMNS + EXPORT_COLUMNS) + ")"
        return [], [f"{'; '.join(parts)} — expected {expected}"]
    votes, rejected, seen = [], [], set()
    for n, row in enumerate(reader, start=2):  # row 1 is the header
        if None in row or None in row.values():  # DictReader's marks of a long or a short line
            cells = len(header) + len(row.get(None) or ()) - sum(v is None for v in row.values())
            rejected.append(f"row {n}: {cells} cells where the header has {len(header)}")
            continue
        try:
            extra = _export_fields(row)
            cells = {k: _cell_text(row, k) for k in IMPORT_COLUMNS + OPTIONAL_COLUMNS}
            vote = Vote(**cells, **extra, source="import")
            check_vote(vote)
        except ValueError as err:
            rejected.append(f"row {n}: {err}")
            continue
        if vote.vote_id in seen:
            rejected.append(f"row {n}: vote_id {vote.vote_id!r} repeats an earlier row")
            continue
        seen.add(vote.vote_id)
        votes.append(vote)
    return votes, rejected


def votes_frame(votes: Sequence[Vote]):
    """Votes as a pandas frame (for `arena export` and the tab's download); stats stay JSON text."""
    import pandas as pd

    return pd.DataFrame([asdict(v) for v in votes], columns=[f.name for f in fields(Vote)])


def stats_json(stats) -> str:
    """A GenerationStats (or None) as the JSON kept with a vote; per-token gaps are left out."""
    if stats is None:
        return "{}"
    row = {k: v for k, v in asdict(stats).items() if k != "itl_s"}
    return json.dumps(row, default=str)
