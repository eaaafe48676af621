"""Hostile files through the real `results import` and `arena import` (issue 31): /dev/zero, a nesting bomb,
impossible figures, a short CSV line, a cell past the csv module's default limit and `arena export`'s own
output. Each is one line and exit 2 with the store unchanged, or it imports; never a traceback."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from bench.answers.votes import Vote, VoteStore
from bench.results.store import ResultStore
from bench.results.transfer import SCHEMA, export_text
from tests.bench.results.test_transfer import speed
from tests.bench.test_scorecard import XEON
from tests.conftest import run_app


@pytest.fixture
def home(tmp_path):
    """A LOCALBENCH_HOME with one run stored, and its environment for run_app."""
    root = tmp_path / "home"
    ResultStore(root / "results.db").save_run("speed", [speed("t")], hardware=XEON, settings={"model": "m"})
    return root


def fingerprint(home) -> str:
    runs = ResultStore(home / "results.db").export_runs()
    return hashlib.sha256(json.dumps(runs, sort_keys=True).encode()).hexdigest()


def refused(proc, says: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], proc.stderr


def test_results_import_refuses_hostile_files_in_one_line_and_keeps_the_store(home, tmp_path):
    env = {"LOCALBENCH_HOME": str(home)}
    before = fingerprint(home)
    refused(run_app("results", "import", "/dev/zero", env=env), "/dev/zero is not a regular file")

    bomb = tmp_path / "bomb.json"
    bomb.write_text(json.dumps({"schema": SCHEMA, "runs": []})[:-2] + "[" * 100_000 + "]" * 100_000 + "]}")
    refused(run_app("results", "import", str(bomb), env=env), "nests too deep")

    good = {"run_id": "good1", "kind": "speed", "created_at": "2026-01-01", "status": "ok", "rows": [speed("g")]}
    bad = {**good, "run_id": "bad1", "rows": [{**speed("b"), "avg_ts": math.nan}]}
    figures = tmp_path / "nan.json"
    figures.write_text(json.dumps({"schema": SCHEMA, "runs": [good, bad]}))
    refused(run_app("results", "import", str(figures), env=env), "run bad1: row 1 field avg_ts: nan is not a finite")

    header, line = export_text([good], "csv").splitlines()
    short = tmp_path / "short.csv"
    two_cells = ",".join(line.split(",")[:2])
    short.write_text(f"{header}\n{line}\n{two_cells}\n")
    refused(run_app("results", "import", str(short), env=env), "line 3: 2 cells where the header has 15")
    assert fingerprint(home) == before


def test_results_export_of_a_large_row_re_imports(home, tmp_path):
    ResultStore(home / "results.db").save_run("speed", [speed("big", notes="n" * 300_000)], hardware=XEON)
    exported = tmp_path / "runs.csv"
    assert (
        run_app("results", "export", "-o", "csv", "--out", str(exported), env={"LOCALBENCH_HOME": str(home)}).returncode
        == 0
    )
    other = {"LOCALBENCH_HOME": str(tmp_path / "other")}
    proc = run_app("results", "import", str(exported), env=other)
    assert proc.returncode == 0 and "imported 2 run(s)" in proc.stdout, proc.stderr
    assert fingerprint(tmp_path / "other") == fingerprint(home)


def test_arena_export_re_imports_and_hostile_files_are_one_line(tmp_path):
    db = tmp_path / "arena.db"
    VoteStore(db).add(
        [Vote("v1", "x", "y", "a", answer_a="a" * 200_000, swapped=True), Vote("v2", "y", "x", "b", prompt="=2")]
    )
    exported = run_app("arena", "--db", str(db), "export")
    assert exported.returncode == 0
    (tmp_path / "votes.csv").write_text(exported.stdout)
    other = str(tmp_path / "other.db")
    proc = run_app("arena", "--db", other, "import", str(tmp_path / "votes.csv"))
    assert proc.returncode == 0 and "imported 2 new vote(s), 0 already stored, 0 rejected" in proc.stdout, proc.stderr
    assert [(v.vote_id, v.swapped, v.prompt, len(v.answer_a)) for v in VoteStore(other).votes()] == [
        ("v1", True, "", 200_000),
        ("v2", False, "=2", 0),
    ]

    refused(run_app("arena", "--db", other, "import", "/dev/zero"), "/dev/zero is not a regular file")
    short = tmp_path / "short.csv"
    short.write_text("vote_id,model_a,model_b,winner\nv9,x\n")
    proc = run_app("arena", "--db", other, "import", str(short))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "rejected: row 2: 2 cells where the header has 4" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no usable votes")
    assert VoteStore(other).count() == 2
