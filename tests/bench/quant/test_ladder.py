"""The quantization ladder on the real bundled SmolLM2-135M: files, K-quant fallback, catalog names, the
KLD ordering llama.cpp shows (Q8_0 < Q4_0 < Q2_K), cache atomicity, and every bad input of the issue."""

from __future__ import annotations

import io
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.quant import lab as quant_lab
from bench.quant import ladder
from core.errors import BadParameter, Cancelled, InsufficientDiskSpace, InvalidModelFile
from models import ladders
from tests.conftest import ROOT, run_app

TYPES = ["Q8_0", "Q4_K_M", "Q4_0", "Q2_K"]


@pytest.fixture(scope="module")
def smol_ladder(smollm2_ref):
    return ladder.build_ladder(smollm2_ref, TYPES, threads=1)


@pytest.fixture(scope="module")
def report(smol_ladder, localbench_home, hardware):
    """A real comparison: quality on 2 chunks (1,024 tokens), tiny speed tests, short answers; stored."""
    from bench.results.store import ResultStore

    settings = quant_lab.QuantSettings(
        variants=("F16", *TYPES),
        max_tokens=8,
        n_prompt=16,
        n_gen=4,
        repetitions=2,
        max_chunks=2,
        threads=2,
        quality_workers=2,  # two variants scored at once, one thread each
    )
    return quant_lab.compare_and_store(ResultStore(), "smollm2-135m", settings, hardware=hardware)


def test_reference_is_f16_dequantized_from_the_shipped_q4_1(smol_ladder):
    ref = smol_ladder.reference
    assert ref.variant == "F16" and ref.is_reference and ref.file_type == "F16"
    assert "dequantized from the Q4_1 source" in ref.note
    assert "dequantized from the Q4_1 source" in smol_ladder.reference_note
    assert 16.0 < ref.bpw < 16.2 and ref.n_params == 134_515_008
    assert [f.variant for f in smol_ladder.files] == ["F16", *TYPES]


def test_effective_bits_and_k_quant_fallback(smol_ladder):
    files = {f.variant: f for f in smol_ladder.files}
    assert files["Q8_0"].main_type == "q8_0" and not files["Q8_0"].k_fallback
    # width 576 is not a multiple of 256: Q4_K_M is mostly q5_0 and Q2_K mostly q4_0 (ANCHORS)
    assert files["Q4_K_M"].main_type == "q5_0" and files["Q4_K_M"].k_fallback
    assert files["Q2_K"].main_type == "q4_0" and files["Q2_K"].k_fallback
    assert files["Q4_K_M"].bpw > 6.0  # far above the nominal 4.89
    assert files["F16"].bpw > files["Q8_0"].bpw > files["Q4_K_M"].bpw > files["Q4_0"].bpw > files["Q2_K"].bpw
    for f in smol_ladder.files:
        assert f.model_size == Path(f.path).stat().st_size
        assert f.bpw == pytest.approx(f.model_size * 8 / f.n_params)


def test_catalog_lists_only_built_variants(smol_ladder):
    from models.catalog import list_models, model_names, resolve_model

    names = model_names()
    assert {"smollm2-135m@Q8_0", "smollm2-135m@Q2_K", "smollm2-135m@F16"} <= set(names)
    assert "smollm2-135m@Q3_K_M" not in names  # not built, not listed
    ref = resolve_model("smollm2-135m@Q4_0")
    assert ref.format == "gguf" and ref.path.endswith("Q4_0.gguf") and ref.chat
    assert "smollm2-135m@Q4_0" in [r.name for r in list_models()]


def test_kld_ordering_on_the_real_model(report):
    rows = {r.variant: r for r in report.rows}
    assert rows["F16"].is_reference and rows["F16"].kld_mean == 0.0 and rows["F16"].same_top1_pct == 100.0
    assert rows["Q8_0"].kld_mean < rows["Q4_0"].kld_mean < rows["Q2_K"].kld_mean
    assert rows["Q8_0"].same_top1_pct > rows["Q4_0"].same_top1_pct > rows["Q2_K"].same_top1_pct
    assert rows["Q8_0"].kld_mean < 0.02 and rows["Q2_K"].kld_mean > 0.1
    for r in report.rows:
        assert r.n_eval_tokens == 1024 and r.n_scored == 510 and r.ppl_ref == rows["F16"].ppl
        assert r.kld_median <= r.kld_p99 <= r.kld_max
        assert r.pp_avg_ts > 0 and r.tg_avg_ts > 0 and r.ttft_ms > 0 and r.peak_rss_bytes > 0
        assert r.answer_mode == "chat" and r.answer_tokens > 0
    assert rows["Q4_K_M"].adr006_target in ("pass", "fail")
    assert "ΔPPL" in report.criterion and "defined here as ΔPPL %" in report.criterion


def test_rows_are_stored_as_kind_quant(report):
    from bench.results.store import ResultStore

    stored = ResultStore().rows("quant", run_id=report.run_id)
    assert [r["variant"] for r in stored] == ["F16", *TYPES]
    assert stored[1]["kld_mean"] == pytest.approx(report.rows[1].kld_mean)


def test_cli_prints_one_row_per_variant(smol_ladder):
    args = "quant --variants F16,Q4_0 --chunks 1 -p 16 -n 4 -r 1 --max-tokens 4 -t 1 -o csv"
    proc = run_app(*args.split())
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(io.StringIO(proc.stdout))
    assert list(frame["variant"]) == ["F16", "Q4_0"]
    for col in (
        "variant",
        "model_size",
        "bpw",
        "ppl",
        "delta_ppl_pct",
        "kld_mean",
        "kld_p99",
        "same_top1_pct",
        "pp_avg_ts",
        "tg_avg_ts",
    ):
        assert col in frame.columns
    assert frame["kld_mean"].iloc[0] == 0.0 < frame["kld_mean"].iloc[1]
    assert (frame["n_eval_tokens"] == 512).all() and (frame["tg_avg_ts"] > 0).all()
    assert "dequantized from the Q4_1 source" in proc.stderr


def test_cli_table_is_the_tabs_table_and_its_log_is_quiet(smol_ladder):
    proc = run_app(*"quant --variants Q8_0 --chunks 1 -p 16 -n 4 -r 2 --max-tokens 4 -t 1".split())
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[0]
    for column in ("variant", "size MiB", "ΔPPL %", "KLD mean", "tg t/s", "peak RSS MiB", "design target (ADR 006)"):
        assert column in header, column
    assert "F16 (reference)" in proc.stdout and " ± " in proc.stdout  # the reference is a row; t/s mean ± sd
    assert "design target (ADR 006" in proc.stderr and "seed" not in proc.stderr.lower()
    noisy = [line for line in proc.stderr.splitlines() if re.search(r"traceback|warn|deprecat", line, re.I)]
    assert noisy == []


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, smol_ladder):
    short = tmp_path / "short.txt"
    short.write_text("Too short to make a chunk of 512 tokens.")
    proc = run_app("quant", "--variants", "Q8_0", "--eval-file", str(short), "--no-speed")
    assert proc.returncode == 2 and "at least one chunk of 512 tokens" in proc.stderr
    proc = run_app("quant", "--variants", "Q9_9")
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: unknown variant(s) Q9_9")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_target_not_lower_than_the_source_is_refused(smol_ladder, tmp_path):
    files = {f.variant: f for f in smol_ladder.files}
    with pytest.raises(BadParameter, match="Q8_0 is not lower than the source Q4_0"):
        ladder.quantize_file(files["Q4_0"].path, tmp_path / "up.gguf", "Q8_0")
    with pytest.raises(BadParameter, match="BF16 is not lower than the source F16"):
        ladder.build_ladder(files["F16"].path, ["BF16"])
    assert not (tmp_path / "up.gguf").exists()


def test_type_the_quantizer_refuses_gets_its_reason(smol_ladder, tmp_path):
    dst = tmp_path / "iq2.gguf"
    with pytest.raises(ladder.QuantizeFailed, match="refused IQ2_XXS .*imatrix"):
        ladder.quantize_file(smol_ladder.reference.path, dst, "IQ2_XXS", threads=1)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_unreadable_gguf_is_refused(tmp_path, smollm2_ref):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + os.urandom(4096))
    with pytest.raises(InvalidModelFile, match="not a readable GGUF"):
        ladder.build_ladder(str(garbage), ["Q4_0"])
    truncated = tmp_path / "truncated.gguf"
    with open(smollm2_ref.path, "rb") as fh:
        truncated.write_bytes(fh.read(5_000_000))
    with pytest.raises(InvalidModelFile, match="truncated"):
        ladder.build_ladder(str(truncated), ["Q4_0"])
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(InvalidModelFile, match="not a GGUF file"):
        ladder.build_ladder(str(text), ["Q4_0"])


def test_not_enough_disk_space_builds_nothing(smol_ladder, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**11, 10**11, 50 * 2**20))
    with pytest.raises(InsufficientDiskSpace, match="not enough disk space .* LOCALBENCH_HOME"):
        ladder.build_ladder("smollm2-135m", ["Q3_K_M"])
    assert "Q3_K_M" not in ladders.built_variants("smollm2-135m")


def test_eval_text_shorter_than_one_chunk_stops_before_building(smol_ladder):
    settings = quant_lab.QuantSettings(variants=("Q6_K",), eval_text="A few words only.", speed=False)
    with pytest.raises(BadParameter, match="at least one chunk of 512 tokens"):
        quant_lab.compare("smollm2-135m", settings)
    assert "Q6_K" not in ladders.built_variants("smollm2-135m")


def test_cancel_during_the_build_keeps_finished_files_only(smol_ladder):
    cancel = threading.Event()

    def progress(fraction, message):
        if message.startswith("building Q5_0"):
            cancel.set()  # the quantizer still runs Q5_0; its file must be discarded

    with pytest.raises(Cancelled, match="cancelled during Q5_0"):
        ladder.build_ladder("smollm2-135m", ["Q5_1", "Q5_0", "Q3_K_S"], threads=1, progress=progress, cancel=cancel)
    built = ladders.built_variants("smollm2-135m")
    assert "Q5_1" in built and "Q5_0" not in built and "Q3_K_S" not in built
    assert not list((ladders.ladder_root() / "smollm2-135m").glob(".*partial*"))


def test_cancel_midway_through_a_comparison_is_stored_as_cancelled(smol_ladder, hardware):
    from bench.results.store import ResultStore

    cancel = threading.Event()

    def progress(fraction, message):
        if message.startswith("Q8_0: quality chunk 1/"):
            cancel.set()  # midway through the quality sweep

    settings = quant_lab.QuantSettings(variants=("Q8_0", "Q4_0", "Q2_K"), speed=False, max_chunks=2, max_tokens=4)
    with pytest.raises(Cancelled):
        quant_lab.compare_and_store(
            ResultStore(), "smollm2-135m", settings, hardware=hardware, progress=progress, cancel=cancel
        )
    last = ResultStore().runs("quant")[0]
    assert last["status"] == "cancelled" and last["n_rows"] == 0 and "cancelled" in last["error"]


KILLER = """
import sys
from bench.quant import ladder
ladder.quantize_file(sys.argv[1], __import__('pathlib').Path(sys.argv[2]), 'Q5_K_S', threads=1)
"""


def test_a_build_killed_midway_leaves_no_usable_looking_file(smol_ladder):
    folder = ladders.ladder_root() / "smollm2-135m"
    final = folder / "Q5_K_S.gguf"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLER, smol_ladder.reference.path, str(final)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 60
    partial = []
    while time.monotonic() < deadline and not partial:
        partial = [p for p in folder.glob(".Q5_K_S.gguf.partial-*") if p.stat().st_size > 0]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial, "the quantizer never started writing"
    assert not final.exists()  # the real name never appeared
    assert "Q5_K_S" not in ladders.built_variants("smollm2-135m")
    assert "smollm2-135m@Q5_K_S" not in [r.name for r in ladders.ladder_models()]
    # a later build sweeps the stale temporary and builds the file properly
    old = time.time() - ladder.STALE_PARTIAL_S - 10
    for p in partial:
        os.utime(p, (old, old))
    lad = ladder.build_ladder("smollm2-135m", ["Q5_K_S"], threads=1)
    assert lad.file("Q5_K_S").path == str(final) and final.exists()
    assert not list(folder.glob(".Q5_K_S.gguf.partial-*"))


def test_base_model_answers_in_plain_completion():
    """Gemma 3 270M is a base model without a chat template: its answers run as plain completion."""
    from dashboard.tabs.quantization import answers_html

    settings = quant_lab.QuantSettings(
        variants=("Q4_0",), quality=False, speed=False, max_tokens=8, prompt="The capital of France is", threads=2
    )
    report = quant_lab.compare("gemma3-270m", settings)
    row = report.rows[0]
    assert report.answer_mode == row.answer_mode == "plain completion" and row.answer.strip()
    assert "F16 dequantized from the Q4_K_M source" in report.reference_note
    assert "Mode: plain completion</b> (gemma3-270m has no chat template)" in answers_html(report)
    assert math.isnan(row.kld_mean) and row.quality_method == "not measured"
