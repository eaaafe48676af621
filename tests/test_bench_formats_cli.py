"""`bench -o jsonl|sql` in llama-bench's fields, `-t`/`-b` lists in the cross-product, and the depth table;
real runs of the bundled SmolLM2-135M on llama.cpp."""

from __future__ import annotations

import io
import json
import math
import sqlite3

import pandas as pd

from bench.speed.llama_format import LLAMA_BENCH_FIELDS
from tests.conftest import run_app

SMALL = ("bench", "--engine", "llamacpp", "--model", "smollm2-135m", "--repack", "0")


def test_sql_output_loads_into_sqlite(tmp_path):
    proc = run_app(*SMALL, "-p", "16", "-n", "4", "-r", "2", "-t", "2", "-o", "sql")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CREATE TABLE IF NOT EXISTS llama_bench (")
    db = sqlite3.connect(tmp_path / "bench.sqlite")
    db.executescript(proc.stdout)
    columns = [row[1] for row in db.execute("PRAGMA table_info(llama_bench)")]
    assert tuple(columns) == LLAMA_BENCH_FIELDS  # llama-bench's table exactly: both tools append to one database
    full = [row[1] for row in db.execute("PRAGMA table_info(localbench_speed)")]
    assert tuple(full[: len(LLAMA_BENCH_FIELDS)]) == LLAMA_BENCH_FIELDS
    assert {"samples_ns", "samples_ts", "engine", "test", "bench_method"} <= set(full)
    types = {row[1]: row[2] for row in db.execute("PRAGMA table_info(localbench_speed)")}
    assert (types["n_threads"], types["avg_ts"], types["model_type"], types["repack"]) == (
        "INTEGER",
        "REAL",
        "TEXT",
        "INTEGER",
    )
    rows = db.execute(
        "SELECT n_prompt, n_gen, n_threads, avg_ts, stddev_ts, repack, flash_attn, samples_ts, build_number "
        "FROM localbench_speed ORDER BY n_gen"
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(16, 0, 2), (0, 4, 2)]
    assert all(r[3] > 0 and r[4] >= 0 and r[5] == 0 and r[6] == -1 for r in rows)
    assert all(len(json.loads(r[7])) == 2 for r in rows)
    assert all(r[8] is None for r in rows)  # unknown is NULL, never 0
    db.executescript(proc.stdout)  # llama-bench appends: a second file into the same database adds rows
    assert db.execute("SELECT COUNT(*) FROM llama_bench").fetchone()[0] == 4
    assert db.execute("SELECT COUNT(*) FROM localbench_speed").fetchone()[0] == 4


def test_sql_output_appends_to_a_database_llama_bench_made_first(tmp_path):
    """`llama-bench -o sql | sqlite3 db` makes llama_bench with its fields only (no samples); ours then adds to it."""
    proc = run_app(*SMALL, "-p", "8", "-n", "0", "-r", "1", "-t", "2", "-o", "sql")
    assert proc.returncode == 0, proc.stderr
    db = sqlite3.connect(tmp_path / "llama-bench.sqlite")
    db.execute(f"CREATE TABLE llama_bench ({', '.join(LLAMA_BENCH_FIELDS)})")  # as llama-bench's sql printer
    db.executescript(proc.stdout)
    rows = db.execute("SELECT n_prompt, n_gen, n_threads, n_batch, model_type FROM llama_bench").fetchall()
    assert rows == [(8, 0, 2, 2048, "llama 256M Q4_1")]  # llama-bench's default -b; llama_model_desc, as it prints


def test_jsonl_thread_and_batch_lists_one_load_in_llama_bench_order():
    proc = run_app(*SMALL, "-p", "16", "-n", "0", "-r", "1", "-t", "1-2", "-b", "8,16", "-o", "jsonl")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 4 and all(isinstance(r, dict) for r in rows)
    assert list(rows[0])[: len(LLAMA_BENCH_FIELDS)] == list(LLAMA_BENCH_FIELDS)
    assert list(rows[0])[len(LLAMA_BENCH_FIELDS) : len(LLAMA_BENCH_FIELDS) + 2] == ["samples_ns", "samples_ts"]
    assert [(r["n_batch"], r["n_threads"]) for r in rows] == [(8, 1), (8, 2), (16, 1), (16, 2)]
    assert all(r["repack"] is False and r["no_kv_offload"] is False and r["split_mode"] == "layer" for r in rows)
    assert all(r["avg_ts"] > 0 and isinstance(r["avg_ns"], int) and len(r["samples_ts"]) == 1 for r in rows)
    assert len({r["load_s"] for r in rows}) == 1  # threads and batch are context settings: one model load


def test_streaming_path_reloads_per_thread_count():
    proc = run_app(*SMALL, "--method", "stream", "-p", "0", "-n", "4", "-r", "1", "-t", "1,2", "-o", "csv")
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(io.StringIO(proc.stdout))
    assert list(frame["n_threads"]) == [1, 2] and (frame["bench_method"] == "stream").all()
    assert frame["load_s"].nunique() == 2  # on the streaming path threads are fixed at load


def test_depth_table_with_the_planners_maximum_context():
    proc = run_app(*SMALL, "-p", "0", "-n", "4", "-r", "2", "-t", "2", "-d", "0,32")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "t/s against KV depth" in out and "| depth (tokens) |" in out
    assert "| tg4 | 0 |" in out and "| tg4 | 32 |" in out
    assert "planner's maximum context for smollm2-135m on this machine:" in out and "an estimate" in out
    csv = run_app(*SMALL, "-p", "0", "-n", "4", "-r", "1", "-t", "2", "-d", "0,32", "-o", "csv")
    assert csv.returncode == 0 and "t/s against KV depth" in csv.stderr  # stdout stays plain CSV
    assert len(pd.read_csv(io.StringIO(csv.stdout))) == 2


def test_bad_thread_and_batch_lists_are_one_line():
    for args, message in (
        (("-t", "0-2"), "must be at least 1, got 0"),
        (("-b", "0,8"), "-b: values must be >= 1, got 0"),
        (("-t", "2-1"), "expected comma-separated integers or ranges"),
    ):
        proc = run_app(*SMALL, "-p", "8", "-n", "0", "-r", "1", *args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and message in proc.stderr, proc.stderr


def test_sweep_runs_the_grid_and_the_default_and_reports_the_ratio():
    """`bench --sweep` on the bundled model: threads 1,2 × the given batches × fa 0,1, plus the default point
    (the planner's threads, n_batch 2048, fa auto); the report's ratio is the default's mean ÷ the best's."""
    from machine.detect import detect_hardware
    from planning.runtime import optimal_config

    threads = optimal_config(detect_hardware()).n_threads
    proc = run_app(*SMALL, "--sweep", "-p", "16", "-n", "4", "-r", "2", "-b", "256,2048", "-o", "jsonl")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    keys = {(r["test"], r["n_threads"], r["n_batch"], r["flash_attn"]) for r in rows}
    grid = {
        (test, t, b, fa)
        for test in ("pp16", "tg4")
        for t in sorted({1, 2, threads})
        for b in (256, 2048)
        for fa in (0, 1)
    }
    assert grid <= keys and {("pp16", threads, 2048, -1), ("tg4", threads, 2048, -1)} <= keys
    assert len(rows) == len(keys) == len(grid) + 2 and all(r["bench_method"] == "llama-bench" for r in rows)
    assert "## Sweep: the default configuration beside the fastest" in proc.stderr  # machine format on stdout
    assert len({r["run_order"] for r in rows}) == 1 and "round-robin" in rows[0]["run_order"]  # interleaved
    for test in ("pp16", "tg4"):
        mine = [r for r in rows if r["test"] == test]
        best = max(mine, key=lambda r: r["avg_ts"])
        default = next(r for r in mine if r["flash_attn"] == -1)
        pairs = zip(samples(default), samples(best), strict=True)  # round k of the default with round k of the best
        ratio = math.prod(d / b for d, b in pairs) ** (1 / 2)
        line = next(x for x in proc.stderr.splitlines() if x.startswith(f"| smollm2-135m | {test} |"))
        assert f"| {ratio:.3f} |" in line, line
        assert f"t {threads}, b 2048, fa auto" in line
    assert "best on all tests together: t " in proc.stderr


def samples(row: dict) -> list[float]:
    value = row["samples_ts"]
    return json.loads(value) if isinstance(value, str) else list(value)


def test_sweep_bad_input_is_one_line_and_exit_2():
    for args, message in (
        (("--engine", "ollama", "--model", "smollm2-135m"), "--sweep varies llama.cpp's context settings"),
        ((*SMALL, "--method", "stream"), "with --method stream has none"),
        ((*SMALL, "-ub", "256,512"), "--sweep: give one value of -ub"),
        ((*SMALL, "-fa", "sometimes"), "flash_attn must be auto, on or off"),
        ((*SMALL, "--aa"), "--sweep and --aa: run one at a time"),
    ):
        proc = run_app(*(args if args[0] == "bench" else ("bench", *args)), "--sweep", "-p", "8", "-n", "0", "-r", "1")
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_markdown_shows_the_settings_that_vary_between_rows():
    proc = run_app(*SMALL, "-p", "8", "-n", "0", "-r", "1", "-fa", "auto,0", "-b", "256,512")
    assert proc.returncode == 0, proc.stderr
    header, _, *lines = proc.stdout.splitlines()
    assert "| threads | n_batch | n_ubatch | fa | test |" in header, header
    cells = [[c.strip() for c in line.split("|")[7:10]] for line in lines if line.startswith("| llama")]
    # llama-bench's nesting: b, then fa; n_ubatch is its 512 clamped to each test's own n_batch (as llama.cpp
    # does), not the loaded context's (the first -b, 256)
    assert cells == [["256", "256", "auto"], ["256", "256", "0"], ["512", "512", "auto"], ["512", "512", "0"]]
