"""`python app.py queue` through the real command line on the bundled SmolLM2 (llama.cpp, in its worker):
3 prompts × 2 entries to CSV and JSONL, a run stopped by a real SIGINT (Ctrl-C) and resumed, bad input."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench.answers.queue import KIND, PLAN_KIND
from bench.results.store import ResultStore
from tests.conftest import ROOT, run_app

ENTRIES = ["--model", "smollm2-135m@llamacpp", "--model", "smollm2-135m@llamacpp,temperature=0.8,seed=1"]


def queue_id_of(stderr: str) -> str:
    found = re.search(r"queue ([0-9a-f]{12}): 3 prompts × 2 entries = 6 answers", stderr)
    assert found, stderr
    return found.group(1)


def test_run_three_prompts_on_two_entries_to_csv_and_jsonl(localbench_home, tmp_path):
    out = tmp_path / "answers.csv"
    done = run_app("queue", "run", "--prompts", "builtin", *ENTRIES, "-n", "8", "-t", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    queue_id = queue_id_of(done.stderr)
    assert "6 answered, 0 already stored, 0 failed" in done.stderr and f"wrote 6 answers to {out}" in done.stderr
    frame = pd.read_csv(out)
    assert len(frame) == 6 and set(frame["status"]) == {"ok"}
    assert frame.groupby("entry").size().tolist() == [3, 3]
    assert set(frame["entry"]) == {"smollm2-135m · llamacpp", "smollm2-135m · llamacpp · T=0.8 seed=1"}
    assert (frame["gen_tokens"] > 0).all() and (frame["gen_tps"] > 0).all() and (frame["ttft_s"] > 0).all()
    assert frame["answer"].str.len().gt(0).all() and frame["prompt_index"].tolist() == [0, 0, 1, 1, 2, 2]

    exported = run_app("queue", "export", queue_id, "-o", "jsonl")
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(lines) == 6 and [x["answer"] for x in lines] == frame["answer"].tolist()
    assert queue_id in run_app("queue", "list").stdout


def wait_until(predicate, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"queue exited with {proc.returncode} early: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the queue")
        time.sleep(0.05)


def test_ctrl_c_stops_cleanly_and_resume_runs_only_the_missing_cells(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "LOCALBENCH_HOME": str(home)}
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["Count to five.", "Name a fruit.", "Hi!"]))
    command = [sys.executable, str(ROOT / "app.py"), "queue", "run", "--prompts", str(prompts), *ENTRIES]
    proc = subprocess.Popen(
        [*command, "-n", "48", "-t", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: (home / "results.db").exists(), 120, proc)
        store = ResultStore(home / "results.db")
        wait_until(lambda: len(store.rows(KIND)) >= 2, 300, proc)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    queue_id = queue_id_of(err)
    stopped = re.search(r"stopped: (\d) of 6 answers stored", err)
    assert stopped and "Traceback" not in err, err
    n_stored = int(stopped.group(1))
    assert 2 <= n_stored < 6 and len(store.rows(KIND)) == n_stored
    assert out == ""

    resumed = run_app("queue", "resume", queue_id, "-t", "2", "-o", "csv", env={"LOCALBENCH_HOME": str(home)})
    assert resumed.returncode == 0, resumed.stderr
    assert f"{6 - n_stored} answered, {n_stored} already stored, 0 failed" in resumed.stderr
    frame = pd.read_csv(io.StringIO(resumed.stdout))
    assert len(frame) == 6 and set(frame["status"]) == {"ok"}
    cells = [(r["prompt_index"], r["entry"]) for r in store.rows(KIND)]
    assert len(cells) == 6 and len(set(cells)) == 6  # every cell once: nothing ran twice
    assert [r["run_id"] for r in store.runs(PLAN_KIND)] == [queue_id]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--prompts", "builtin", "--model", "smollm2-135m"], "expected MODEL@ENGINE"),
        (["run", "--prompts", "builtin", "--model", "smollm2-135m@nope"], "no engine 'nope'"),
        (["run", "--prompts", "builtin", "--model", "smollm2-135m@llamacpp,top_k=3"], "unknown setting"),
        (["run", "--prompts", "/nonexistent/p.txt", "--model", "smollm2-135m@llamacpp"], "no prompt file"),
        (["run", "--prompts", "builtin", "--model", "smollm2-135m@llamacpp", "-n", "0"], "--max-tokens"),
        (["resume", "0123456789ab"], "no queue with id"),
        (["export", "0123456789ab", "-o", "csv"], "no queue with id"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path):
    done = run_app("queue", *argv, env={"LOCALBENCH_HOME": str(tmp_path / "home")})
    assert done.returncode == 2 and message in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and done.stdout == ""


def test_bad_prompt_files_exit_2(tmp_path):
    env = {"LOCALBENCH_HOME": str(tmp_path / "home")}
    empty, broken = tmp_path / "empty.txt", tmp_path / "broken.jsonl"
    empty.write_text("\n  \n")
    broken.write_text('{"prompt": "ok"}\nnot json\n')
    for path, message in ((empty, "has no prompts"), (broken, "line 2: expected a JSON object")):
        done = run_app("queue", "run", "--prompts", str(path), "--model", "smollm2-135m@llamacpp", env=env)
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1
