"""`python app.py suite --quick`: the verification plan's steps run and store, then the scorecard."""

from __future__ import annotations

import sqlite3

from tests.conftest import run_app


def test_suite_quick_runs_the_speed_step_and_prints_six_criteria(localbench_home):
    bad = run_app("suite", "--quick", "--engines", "llamacpp,nosuch", timeout=60)
    assert bad.returncode == 2 and "unknown engine 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr
    proc = run_app("suite", "--quick", "--engines", "llamacpp", "--skip", "quality", "-o", "csv", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "suite: speed on llamacpp" in proc.stderr and "suite: power:" in proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("criterion,") and len(lines) == 7
    with sqlite3.connect(localbench_home / "results.db") as db:
        kinds = {k for (k,) in db.execute("SELECT kind FROM runs WHERE status='ok'").fetchall()}
    assert "speed" in kinds
