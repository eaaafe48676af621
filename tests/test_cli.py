"""The command line: `bench` prints a llama-bench table and stores it; bad input is one line and exit 2."""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT, run_app

HEAVY = ("llama_cpp", "torch", "mlx", "mlx_lm", "transformers", "sentence_transformers", "gradio")


def test_help_imports_no_engine_library():
    code = f"import sys, app; app.build_parser().format_help(); print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert run_app("--help").returncode == 0


def test_bench_csv_has_llama_bench_columns_and_is_stored(localbench_home):
    proc = run_app(
        "bench",
        "--engine",
        "llamacpp",
        "--model",
        "smollm2-135m",
        "-p",
        "32",
        "-n",
        "8",
        "-r",
        "2",
        "-t",
        "2",
        "-o",
        "csv",
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(io.StringIO(proc.stdout))
    for col in (
        "model_filename",
        "model_size",
        "model_n_params",
        "n_threads",
        "n_gpu_layers",
        "n_prompt",
        "n_gen",
        "avg_ts",
        "stddev_ts",
        "avg_ns",
        "stddev_ns",
        "samples_ts",
        "test",
        "backends",
        "n_depth",
        "n_ubatch",
        "type_k",
        "type_v",
        "flash_attn",
        "use_mmap",
        "repack",
        "bench_method",
    ):
        assert col in frame.columns, col
    assert list(frame["test"]) == ["pp32", "tg8"]
    assert (frame["avg_ts"] > 0).all() and (frame["n_threads"] == 2).all()
    assert frame["model_n_params"][0] == 134_515_008
    assert (frame["bench_method"] == "llama-bench").all() and (frame["flash_attn"] == -1).all()
    assert (frame["type_k"] == "f16").all() and (frame["n_depth"] == 0).all()
    with sqlite3.connect(localbench_home / "results.db") as db:
        assert db.execute("SELECT COUNT(*) FROM results WHERE kind='speed'").fetchone()[0] >= 2


def test_bench_depth_and_flash_attn_lists_run_as_a_cross_product():
    proc = run_app(
        *("bench", "--model", "smollm2-135m", "-p", "0", "-n", "4", "-d", "0,8", "-fa", "0,1", "-r", "1"),
        *("-t", "2", "--repack", "0", "-o", "csv"),
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(io.StringIO(proc.stdout))
    assert list(frame["test"]) == ["tg4", "tg4 @ d8", "tg4", "tg4 @ d8"]
    assert list(frame["n_depth"]) == [0, 8, 0, 8] and list(frame["flash_attn"]) == [0, 0, 1, 1]
    assert (frame["repack"] == 0).all() and (frame["avg_ts"] > 0).all()
    assert frame["depth_method"].fillna("").str.startswith("KV prefilled with 8").tolist() == [False, True] * 2


def test_bench_markdown_to_file(tmp_path):
    out = tmp_path / "table.md"
    proc = run_app("bench", "--model", "smollm2-135m", "-p", "16", "-n", "0", "-r", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("| model | size_MiB") and "pp16" in text and "±" in text


def test_formula_like_model_name_is_neutralised_in_csv(tmp_path, smollm2_ref):
    evil = tmp_path / "=HYPERLINK(1).gguf"
    shutil.copyfile(smollm2_ref.path, evil)
    proc = run_app("bench", "--model", str(evil), "-p", "16", "-n", "0", "-r", "1", "-o", "csv")
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(io.StringIO(proc.stdout))
    # the model's name is the file's stem, '=HYPERLINK(1)': quoted so a spreadsheet shows it as text
    assert frame["model"][0] == "'=HYPERLINK(1)"
    assert frame["model_filename"][0].endswith("=HYPERLINK(1).gguf")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--engine", "nope"], "unknown engine 'nope'"),
        (["bench", "--model", "nope"], "unknown model 'nope'"),
        (["bench", "--model", "/no/such/file.gguf"], "model file not found"),
        (["bench", "-r", "0", "-p", "8", "-n", "0"], "repetitions must be between"),
        (["bench", "--ctx", "999999999"], "n_ctx 999999999 is absurd"),
        (["bench", "-p", "0", "-n", "0"], "no test to run"),
        (["bench", "-d", "-1"], "-d: depths must be integers >= 0"),
        (["bench", "-ctk", "q9"], "unknown KV cache type 'q9'"),
        (["bench", "-fa", "maybe"], "flash_attn must be auto, on or off"),
        (["bench", "--engine", "ollama", "-fa", "1"], "are llama.cpp settings; engine ollama has none"),
        (["serve", "--host", "0.0.0.0"], "add --auth user:password"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = run_app(*args)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_not_a_gguf_file_exit_2(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04 definitely a zip")
    proc = run_app("bench", "--model", str(bad), "-p", "8", "-n", "0", "-r", "1")
    assert proc.returncode == 2 and "not a GGUF file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_failed_run_is_stored_as_failed(localbench_home):
    run_app("bench", "--model", "/no/such/file.gguf")
    with sqlite3.connect(localbench_home / "results.db") as db:
        rows = db.execute("SELECT status, error FROM runs WHERE status='failed'").fetchall()
    assert any("not found" in err for _, err in rows)


@pytest.mark.parametrize("command", ["bench", "quant"])
def test_zero_threads_is_an_error_not_the_default(command):
    proc = run_app(command, "-t", "0", timeout=60)
    assert proc.returncode == 2
    assert "must be at least 1, got 0" in proc.stderr


@pytest.mark.parametrize("model", ["smollm2-135m", "qwen3:8b"])
def test_doctor_and_plan_recommend_the_same_quantization(model, localbench_home):
    import json

    plan = run_app("plan", "--model", model, "--ctx", "2048", "-o", "json")
    doctor = run_app("doctor", "--no-bandwidth-probe", "--model", model, "--ctx", "2048", "-o", "json")
    assert plan.returncode == 0, plan.stderr
    planned, doctored = json.loads(plan.stdout), json.loads(doctor.stdout)
    assert doctored["recommended_quantization"] == planned["recommended_quantization"]
    assert doctored["config"]["quantization"] == (planned["recommended_quantization"] or "none fits")
