"""`bench --aa`, `scorecard` and `results export/import` through the real command line and a real model."""

from __future__ import annotations

import io
import json

import pandas as pd

from tests.conftest import run_app


def test_aa_export_import_twice_and_scorecard(localbench_home, tmp_path):
    aa = run_app("bench", "--engine", "llamacpp", "-p", "0", "-n", "8", "-r", "3", "-t", "2", "--aa", "-o", "csv")
    assert aa.returncode == 0, aa.stderr
    pair = pd.read_csv(io.StringIO(aa.stdout))
    assert pair["test"].tolist() == ["tg8"] and {"diff_pct", "p_value", "significant", "order"} <= set(pair.columns)
    assert "noise floor" in aa.stderr

    export = tmp_path / "runs.json"
    assert run_app("results", "export", "-o", "json", "--out", str(export)).returncode == 0
    runs = json.loads(export.read_text())["runs"]
    aa_runs = [r for r in runs if r["settings"].get("aa")]
    assert len(aa_runs) >= 2
    tg = aa_runs[-1]["rows"][0]
    assert tg["roofline_note"].startswith("derived") and tg["bytes_per_token"] > 90e6 and "cv_pct" in tg
    assert tg["os_info"] and tg["cpu_flags"] and tg["n_cpus"] >= 1

    other = {"LOCALBENCH_HOME": str(tmp_path / "other-home")}
    first = run_app("results", "import", str(export), env=other)
    second = run_app("results", "import", str(export), env=other)
    assert first.returncode == 0 and f"imported {len(runs)} run(s)" in first.stdout, first.stderr
    assert second.returncode == 0 and f"imported 0 run(s), skipped {len(runs)}" in second.stdout
    again = run_app("results", "export", "-o", "json", env=other)
    assert json.loads(again.stdout)["runs"] == runs  # ids, dates and machine kept

    csv_out = run_app("results", "export", "-o", "csv", env=other)
    assert "run_id" in csv_out.stdout.splitlines()[0]
    card = run_app("scorecard", "-o", "csv", env=other)
    frame = pd.read_csv(io.StringIO(card.stdout))
    assert len(frame) == 6 and set(frame["verdict"]) <= {"pass", "fail", "not measurable"}
    assert list(frame.columns) == [
        "criterion",
        "target",
        "measured",
        "model",
        "machine",
        "verdict",
        "reason",
        "evidence",
    ]
    eight_b = frame[frame["criterion"].str.contains("8B")].iloc[0]
    assert eight_b["verdict"] == "not measurable"

    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "someone-else/1", "runs": []}')
    rejected = run_app("results", "import", str(bad), env=other)
    assert rejected.returncode == 2 and "not a localbench results export" in rejected.stderr
    assert len(rejected.stderr.strip().splitlines()) == 1 and rejected.stdout == ""
