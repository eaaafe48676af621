"""Results export and import: round trips keep ids and machine; malformed, foreign and duplicate files."""

from __future__ import annotations

import json

import pytest

from bench.results.store import ResultStore
from bench.results.transfer import SCHEMA, export_text, history_frame, parse_export
from core.errors import BadParameter
from tests.bench.test_scorecard import XEON
from tests.bench.test_scorecard import speed as fixture_row


def speed(run_id, **kw):
    return {k: v for k, v in fixture_row(run_id, **kw).items() if k not in ("run_id", "created_at")}


@pytest.fixture
def store(tmp_path):
    s = ResultStore(tmp_path / "a.db")
    s.save_run(
        "speed",
        [speed("x"), speed("x", test="pp64", n_prompt=64, n_gen=0)],
        hardware=XEON,
        settings={"engine": "llamacpp", "model": "=cmd"},
    )
    s.save_run("speed", [], status="failed", error="-boom", settings={"engine": "torch", "model": "m"})
    return s


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_round_trip_twice_adds_each_run_once(store, tmp_path, fmt):
    text = export_text(store.export_runs(), fmt)
    other = ResultStore(tmp_path / f"b-{fmt}.db")
    for attempt in range(2):
        runs, rejected = parse_export(text)
        assert rejected == []
        added, skipped = other.import_runs(runs)
        assert (len(added), len(skipped)) == ((2, 0) if attempt == 0 else (0, 2))
    mine, theirs = store.export_runs(), other.export_runs()
    assert [r["run_id"] for r in mine] == [r["run_id"] for r in theirs]
    assert theirs == mine  # ids, dates, machine, settings, rows and errors all kept
    assert len(other.rows("speed")) == 2


def test_history_has_the_columns_users_filter_on(store):
    frame = history_frame(store.export_runs())
    assert list(frame.columns)[:8] == ["run_id", "date", "kind", "status", "model", "engine", "quant", "machine"]
    assert frame["status"].tolist() == ["failed", "ok"]  # newest first
    assert frame["quant"].tolist()[1] == "Q4_K_M" and frame["machine"].tolist()[1] == "Intel Xeon, 8 GiB RAM"
    assert "| run_id |" in export_text(store.export_runs(), "md")


def test_malformed_files_are_one_clear_error():
    with pytest.raises(BadParameter, match="not valid JSON"):
        parse_export('{"schema": ', "x.json")
    with pytest.raises(BadParameter, match="neither"):
        parse_export("| a | b |\n| --- | --- |\n", "x.md")


def test_foreign_schema_is_rejected_with_the_reason():
    runs, rejected = parse_export(json.dumps({"schema": "other/2", "runs": []}), "f.json")
    assert runs == [] and "schema 'other/2'" in rejected[0].reason
    runs, rejected = parse_export("run_id,model,avg_ts\n1,m,3\n", "f.csv")
    assert runs == [] and "no column(s)" in rejected[0].reason
    bad_rows = {
        "schema": SCHEMA,
        "runs": [
            {"run_id": "a1", "kind": "speed", "created_at": "2026-01-01T00:00:00", "status": "ok", "rows": [{"x": 1}]},
            {"run_id": "a2", "kind": "speed", "created_at": "yesterday", "status": "ok", "rows": []},
            {"run_id": "a b", "kind": "speed", "created_at": "2026-01-01", "status": "ok", "rows": []},
            {"run_id": "a3", "kind": "speed", "created_at": "2026-01-01", "status": "failed", "rows": [{"test": 1}]},
            {"run_id": "a4", "kind": "chat", "created_at": "2026-01-01", "status": "ok", "rows": []},
        ],
    }
    runs, rejected = parse_export(json.dumps(bad_rows))
    assert [r["run_id"] for r in runs] == ["a4"]
    reasons = {r.where: r.reason for r in rejected}
    assert "lacks test, avg_ts, samples_ts" in reasons["run a1"]
    assert "not an ISO date" in reasons["run a2"] and "bad run_id" in reasons["run a b"]
    assert "failed run has no figures" in reasons["run a3"]


def test_a_run_twice_in_one_file_is_rejected_the_second_time(store):
    runs = store.export_runs()
    text = json.dumps({"schema": SCHEMA, "runs": [*runs, runs[0]]})
    good, rejected = parse_export(text)
    assert len(good) == 2 and "appears earlier" in rejected[0].reason


def test_quant_label_comes_from_file_type_not_llama_cpps_description():
    from bench.results.labels import quant_of

    # llama.cpp's llama_model_desc (llama-bench's model_type) names K-quants 'Q4_K - Medium'
    assert quant_of({"model_type": "gemma3 270M Q4_K - Medium", "file_type": "Q4_K_M"}) == "Q4_K_M"
    assert quant_of({"model_type": "llama 135M Q4_1"}) == "Q4_1"  # a row stored before file_type
    assert quant_of({"variant": "Q8_0"}) == "Q8_0" and quant_of({}) == ""
