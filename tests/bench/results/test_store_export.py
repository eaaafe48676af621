"""Results store round-trips and exports: CSV read back by pandas gives equal values."""

from __future__ import annotations

import io
import sqlite3
import threading
from dataclasses import dataclass

import pandas as pd
import pytest

from bench.results.export import render, to_csv, to_frame, to_markdown
from bench.results.store import ResultStore
from core.errors import Cancelled, ModelNotFound


@dataclass(frozen=True)
class Row:
    model_filename: str
    avg_ts: float
    stddev_ts: float
    n_prompt: int
    samples_ts: tuple[float, ...]


ROWS = [
    Row("smollm2.gguf", 151.25, 1.5, 512, (150.0, 152.5)),
    Row("gemma.gguf", 97.125, 0.25, 128, (97.0, 97.25)),
]


def test_store_round_trip_and_wal(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    run_id = store.save_run("speed", ROWS, settings={"engine": "llamacpp"})
    rows = store.rows("speed")
    assert [r["run_id"] for r in rows] == [run_id, run_id]
    assert rows[0]["avg_ts"] == 151.25 and rows[1]["samples_ts"] == [97.0, 97.25]
    assert store.runs()[0]["n_rows"] == 2
    with sqlite3.connect(tmp_path / "r.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_failed_and_cancelled_runs_store_no_numbers(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    store.save_run("speed", ROWS, status="failed", error="server died")
    store.save_run("speed", ROWS, status="cancelled")
    runs = store.runs("speed")
    assert {r["status"] for r in runs} == {"failed", "cancelled"}
    assert all(r["n_rows"] == 0 for r in runs)
    assert store.rows("speed") == []
    assert runs[-1]["error"] == "server died" or runs[0]["error"] == "server died"


def test_concurrent_writers_lose_nothing(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    threads = [threading.Thread(target=lambda: [store.save_run("speed", ROWS) for _ in range(5)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.rows("speed")) == 4 * 5 * 2
    # reopening the file sees the same rows (committed, not cached)
    assert len(ResultStore(tmp_path / "r.db").rows("speed")) == 40


def test_csv_round_trip_gives_equal_values():
    frame = to_frame(ROWS)
    back = pd.read_csv(io.StringIO(to_csv(frame)))
    assert list(back.columns) == list(frame.columns)
    pd.testing.assert_series_equal(back["avg_ts"], frame["avg_ts"])
    pd.testing.assert_series_equal(back["n_prompt"], frame["n_prompt"])
    assert list(back["model_filename"]) == ["smollm2.gguf", "gemma.gguf"]
    assert back["samples_ts"][0] == "150.0 152.5"


def test_csv_neutralises_spreadsheet_formulas():
    names = ['=HYPERLINK("x").gguf', "+1.gguf", "-2.gguf", "@SUM(A1).gguf", "ok.gguf"]
    frame = to_frame([Row(n, 1.0, 0.0, 1, ()) for n in names])
    back = pd.read_csv(io.StringIO(to_csv(frame)))
    for cell in back["model_filename"][:4]:
        assert cell.startswith("'"), cell
    assert back["model_filename"][4] == "ok.gguf"
    # numbers, negative ones included, stay numbers
    neg = pd.read_csv(io.StringIO(to_csv(pd.DataFrame({"delta": [-1.5, 2.0]}))))
    assert list(neg["delta"]) == [-1.5, 2.0]


def test_markdown_and_json_render():
    frame = to_frame(ROWS)
    md = to_markdown(frame)
    assert md.splitlines()[0].startswith("| model_filename | avg_ts")
    assert "151.25" in md
    assert '"avg_ts":151.25' in render(frame, "json").replace(" ", "")


def _stored(store: ResultStore) -> dict:
    (run,) = store.export_runs()
    return run


def test_recording_stores_an_ok_run_with_its_rows_and_hardware(tmp_path, hardware):
    store = ResultStore(tmp_path / "r.db")
    with store.recording("speed", {"engine": "llamacpp"}, hardware) as run:
        run.rows = ROWS
        run.settings["extra"] = 1
    stored = _stored(store)
    assert stored["run_id"] == run.run_id and stored["status"] == "ok" and stored["error"] == ""
    assert stored["settings"] == {"engine": "llamacpp", "extra": 1}
    assert stored["hardware"] == hardware and stored["hardware"]["ram_bytes"] > 0
    assert [r["model_filename"] for r in stored["rows"]] == [r.model_filename for r in ROWS]


@pytest.mark.parametrize(
    "err, message",
    [
        (ModelNotFound("no model named 'x'\n  try `localbench doctor`"), "no model named 'x' try `localbench doctor`"),
        (RuntimeError("CUDA out of memory"), "RuntimeError: CUDA out of memory"),
    ],
)
def test_recording_stores_a_failed_run_with_a_one_line_message_and_hardware(tmp_path, hardware, err, message):
    store = ResultStore(tmp_path / "r.db")
    with pytest.raises(type(err)), store.recording("quant", {"model": "x"}, hardware) as run:
        run.rows = ROWS  # rows set before the failure are not stored
        raise err
    stored = _stored(store)
    assert (stored["status"], stored["error"], stored["rows"]) == ("failed", message, [])
    assert stored["hardware"] == hardware and stored["run_id"] == run.run_id


@pytest.mark.parametrize("err", [Cancelled("embeddings benchmark cancelled by the user"), KeyboardInterrupt()])
def test_recording_stores_a_cancelled_run_never_a_failed_one(tmp_path, hardware, err):
    store = ResultStore(tmp_path / "r.db")
    with pytest.raises(type(err)), store.recording("embed", {}, hardware):
        raise err
    stored = _stored(store)
    assert stored["status"] == "cancelled" and stored["rows"] == [] and stored["hardware"] == hardware
    assert stored["error"] == (str(err) or "KeyboardInterrupt")


def test_recording_takes_a_profile_and_refuses_a_run_without_hardware(tmp_path):
    from machine.detect import detect_hardware

    store = ResultStore(tmp_path / "r.db")
    profile = detect_hardware()
    with store.recording("chat", {}, profile) as run:
        run.status = "cancelled"  # an outcome known without an exception: the user stopped the reply
    stored = _stored(store)
    assert stored["status"] == "cancelled" and stored["hardware"]["chip"] == profile.chip
    with pytest.raises(ValueError, match="hardware receipt"), store.recording("chat", {}, {}):
        pass
