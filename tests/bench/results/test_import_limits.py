"""Hostile imports (issue 31): size caps, nesting bombs, broken CSV lines, huge cells and impossible figures are
refused whole with one reason naming the run, row and field, the store unchanged; our own exports, a large row
and NaN for a figure not measured included, always re-import."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math

import pytest

from bench.results.store import ResultStore
from bench.results.transfer import (
    MAX_IMPORT_BYTES,
    SCHEMA,
    check_row,
    export_text,
    import_file,
    parse_export,
    read_capped,
)
from core.errors import BadParameter
from tests.bench.results.test_transfer import speed
from tests.bench.test_scorecard import XEON


def fingerprint(store: ResultStore) -> str:
    return hashlib.sha256(json.dumps(store.export_runs(), sort_keys=True).encode()).hexdigest()


@pytest.fixture
def target(tmp_path):
    """A store with one run already in it, to show a refused import leaves it as it was."""
    store = ResultStore(tmp_path / "target.db")
    store.save_run("speed", [speed("t")], hardware=XEON, settings={"engine": "llamacpp", "model": "m"})
    return store


def run_with(row: dict, run_id: str = "bad1") -> dict:
    return {"run_id": run_id, "kind": "speed", "created_at": "2026-01-01T00:00:00", "status": "ok", "rows": [row]}


def write_json(path, *runs) -> str:
    path.write_text(json.dumps({"schema": SCHEMA, "runs": list(runs)}))
    return str(path)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("avg_ts", "fast", 'field avg_ts: "fast" is not a number'),
        ("avg_ts", math.nan, "field avg_ts: nan is not a finite number"),
        ("avg_ts", -1e308, "field avg_ts: -1e+308 is negative"),
        ("avg_ts", math.inf, "field avg_ts: inf is not a finite number"),
        ("avg_ts", None, "field avg_ts: null is not a number"),
        ("avg_ts", True, "field avg_ts: true is not a number"),
        ("n_prompt", "lots", 'field n_prompt: "lots" is not a number'),
        ("n_prompt", 1.5, "field n_prompt: 1.5 is not a whole number"),
        ("n_gen", -3, "field n_gen: -3 is negative"),
        ("samples_ts", [1.0, math.inf], "field samples_ts[1]: inf is not a finite number"),
        ("samples_ts", [math.nan], "field samples_ts[0]: nan is not a finite number"),
        ("samples_ts", "1 2 3", "is not a list of samples"),
        ("peak_rss_bytes", -(2**40), "is negative"),
        ("avg_ttft_ms", math.inf, "field avg_ttft_ms: inf is not a finite number"),
        ("load_s", "slow", "field load_s"),
        ("avg_ts", 1e308, "field avg_ts: 1e+308 is beyond any real figure"),
        ("model_size", 10**400, "field model_size: a 401-digit number is beyond any real figure"),
        ("model_size", -(10**400), "field model_size: a 401-digit number is negative"),
    ],
)
def test_impossible_figures_refuse_the_file_naming_run_row_and_field(target, tmp_path, field, value, says):
    before = fingerprint(target)
    good = run_with(speed("g"), "good1")
    path = write_json(tmp_path / "bad.json", good, run_with({**speed("b"), field: value}))
    result = import_file(target, path, name="bad.json")
    assert result.added == [] and result.skipped == []
    message = result.reasons()
    assert message.startswith("bad.json, run bad1: row 1 ") and says in message, message
    assert "nothing was imported" in message and "\n" not in message
    assert fingerprint(target) == before  # the good run beside it was not written either


def test_figures_our_records_leave_unmeasured_still_import(target, tmp_path):
    # llama-bench's path stores avg_ttft_ms NaN; unknown private memory is None; a flash_attn of -1 is 'auto'
    row = {**speed("r"), "avg_ttft_ms": math.nan, "worker_peak_private_bytes": None, "flash_attn": -1}
    assert check_row(row) == ""
    result = import_file(target, write_json(tmp_path / "ok.json", run_with(row, "fine1")))
    assert result.added == ["fine1"] and result.rejected == []


def test_devices_and_files_over_the_cap_are_refused_in_one_line(tmp_path):
    with pytest.raises(BadParameter, match=r"/dev/zero is not a regular file .*at most 50 MiB"):
        read_capped("/dev/zero")
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:  # sparse: cap + 1 bytes without writing them
        fh.truncate(MAX_IMPORT_BYTES + 1)
    with pytest.raises(BadParameter, match=r"big.json is over the 50 MiB import limit"):
        read_capped(big)
    with pytest.raises(BadParameter, match="cannot read"):
        read_capped(tmp_path / "missing.json")


def test_a_50_mb_export_under_the_cap_imports(target, tmp_path):
    text = export_text([run_with(speed("x"), "padded1")], "json")
    path = tmp_path / "50mb.json"
    path.write_text(text[:-2] + " " * (50_000_000 - len(text)) + "}\n")
    assert path.stat().st_size == 50_000_000 < MAX_IMPORT_BYTES
    assert import_file(target, str(path)).added == ["padded1"]


def test_nesting_bombs_are_refused(target, tmp_path):
    before = fingerprint(target)
    bomb = tmp_path / "bomb.json"
    bomb.write_text(json.dumps({"schema": SCHEMA, "runs": []})[:-2] + "[" * 200_000 + "]" * 200_000 + "]}")
    with pytest.raises(BadParameter, match="nests too deep"):
        import_file(target, str(bomb), name="bomb.json")
    deep: object = 1
    for _ in range(100):  # readable by json, but deeper than any run of ours
        deep = [deep]
    result = import_file(target, write_json(tmp_path / "deep.json", run_with({**speed("d"), "notes": deep})))
    assert "nests deeper than 32 levels" in result.reasons()
    lines = list(csv.DictReader(io.StringIO(export_text([run_with(speed("c"), "csvbomb")], "csv"))))
    with open(tmp_path / "bomb.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerow({**lines[0], "settings_json": "[" * 100_000})
    assert "line 2: a JSON cell nests too deep" in import_file(target, str(tmp_path / "bomb.csv")).reasons()
    assert fingerprint(target) == before


def test_numbers_python_will_not_read_are_a_message(target, tmp_path):
    huge = "9" * 5000  # past Python's 4,300-digit limit on reading an int
    (tmp_path / "digits.json").write_text(f'{{"schema": "{SCHEMA}", "runs": [{huge}]}}')
    with pytest.raises(BadParameter, match="digits.json cannot be read as JSON: Exceeds the limit"):
        import_file(target, str(tmp_path / "digits.json"), name="digits.json")
    lines = list(csv.DictReader(io.StringIO(export_text([run_with(speed("c"), "digits1")], "csv"))))
    with open(tmp_path / "digits.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerow({**lines[0], "hardware_json": f'{{"ram_bytes": {huge}}}'})
    assert "line 2: a JSON cell cannot be read" in import_file(target, str(tmp_path / "digits.csv")).reasons()


def test_short_and_long_csv_lines_are_refused_by_line(target, tmp_path):
    before = fingerprint(target)
    header, line = export_text([run_with(speed("s"), "short1")], "csv").splitlines()
    for text, cells in ((f"{header}\n{line}\nschema,x,y\n", 3), (f"{header}\n{line},extra,more\n", 17)):
        (tmp_path / "lines.csv").write_text(text)
        result = import_file(target, str(tmp_path / "lines.csv"), name="lines.csv")
        assert f": {cells} cells where the header has 15" in result.reasons(), result.reasons()
    assert fingerprint(target) == before


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_our_own_export_of_a_large_row_round_trips(tmp_path, fmt):
    source = ResultStore(tmp_path / "source.db")
    long_note = "x" * 1_000_000  # far past the csv module's 131,072-character default cell limit
    source.save_run(
        "speed",
        [speed("big", notes=long_note, avg_ttft_ms=math.nan), speed("small")],
        hardware=XEON,
        settings={"engine": "llamacpp", "model": "=m"},
    )
    source.save_run("speed", [], status="failed", error="-boom", settings={})
    path = tmp_path / f"export.{fmt}"
    path.write_text(export_text(source.export_runs(), fmt))
    other = ResultStore(tmp_path / "other.db")
    result = import_file(other, str(path))
    assert result.rejected == [] and len(result.added) == 2
    assert json.dumps(other.export_runs()) == json.dumps(source.export_runs())  # NaN kept as NaN


def test_an_empty_stores_export_re_imports():
    for fmt in ("csv", "json"):
        assert parse_export(export_text([], fmt)) == ([], [])
