"""The lab started from an HF safetensors original: llama.cpp's converter makes the F16 GGUF reference, the ladder
is quantized from it, mlx_lm.convert makes the MLX 8-bit and 4-bit rows from the same folder, every row is scored
on the same token windows, and every output names the reference as the original.

The test's "original" is the bundled Q4_1 dequantized to bf16 safetensors by our own converter (no true original
exists here), so its figures mean little; the code path is the user's. MLX's quantized kernels take ~30 s per
forward pass on this CPU whatever its length, so quality runs on one 16-token window (7 scored positions)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from bench.quant import lab as quant_lab
from bench.quant.summary import summary_frame, to_frame
from tests.conftest import run_app
from tests.engines.converted import hf_ref  # noqa: F401  (session fixture)

LABELS = ("Q8_0", "Q4_K_M", "MLX 8-bit", "MLX 4-bit")


@pytest.fixture(scope="module")
def report(hf_ref, localbench_home, hardware):  # noqa: F811
    from bench.results.store import ResultStore

    settings = quant_lab.QuantSettings(
        variants=LABELS,
        speed=False,
        answers=False,
        max_chunks=1,
        window=16,
        threads=2,
        quality_workers=2,  # the two MLX rows scored at once, one thread each
    )
    return quant_lab.compare_and_store(ResultStore(), hf_ref.path, settings, hardware=hardware)


def test_the_folder_offers_the_ladder_and_the_mlx_rows(hf_ref):  # noqa: F811
    choices = quant_lab.variant_choices(hf_ref.path)
    assert {"F16", "Q8_0", "Q4_K_M", "Q2_K", "MLX bf16", "MLX 8-bit", "MLX 4-bit", "torch bf16"} <= set(choices)
    assert quant_lab.default_variants(hf_ref.path)[-2:] == ("MLX 8-bit", "MLX 4-bit")
    assert quant_lab.default_variants("smollm2-135m") == quant_lab.DEFAULT_VARIANTS
    assert quant_lab.canonical_labels(hf_ref.path, ["q4_k_m", "mlx-4bit", "Q9_9"]) == ["Q4_K_M", "MLX 4-bit", "Q9_9"]
    assert hf_ref.name in quant_lab.source_models()


def test_every_row_is_scored_against_the_original(report, hf_ref):  # noqa: F811
    folder = str(Path(hf_ref.path).resolve())
    assert [r.variant for r in report.rows] == ["F16", *LABELS]
    rows = {r.variant: r for r in report.rows}
    assert rows["F16"].is_reference and rows["F16"].kld_mean == 0.0 and rows["F16"].engine == "llamacpp"
    assert rows["F16"].model_name.endswith("/F16.gguf") and rows["F16"].main_type == "f16"
    assert rows["MLX 8-bit"].engine == rows["MLX 4-bit"].engine == "mlx"
    assert "made by mlx_lm.convert from the original: BF16 safetensors" in rows["MLX 4-bit"].note
    for r in report.rows:
        assert r.reference_origin.startswith(f"original: BF16 safetensors (folder {folder}")
        assert r.reference_origin.endswith("→ F16 GGUF")
        assert r.n_scored == 7 and r.n_eval_tokens == 16 and r.ppl_ref == rows["F16"].ppl
        assert not math.isnan(r.kld_mean) and "n_ctx 16" in r.quality_method
    for label in LABELS:
        assert rows[label].kld_mean > 0.0 and 0 < rows[label].bpw < rows["F16"].bpw
    assert rows["MLX 8-bit"].bpw > rows["MLX 4-bit"].bpw
    assert "quantized from the F16 GGUF of the original" in rows["Q4_K_M"].note
    assert report.reference_origin == rows["F16"].reference_origin
    assert "Reference: the original, converted to F16 GGUF by llama.cpp's own converter" in report.reference_note
    assert f"Measured against the original (BF16 safetensors (folder {folder}" in report.criterion


def test_stored_rows_and_the_table_name_the_original(report):
    from bench.results.store import ResultStore

    stored = ResultStore().rows("quant", run_id=report.run_id)
    assert [r["variant"] for r in stored] == ["F16", *LABELS]
    assert all(r["reference_origin"].startswith("original: BF16 safetensors") for r in stored)
    run = ResultStore().runs("quant")[0]
    assert run["run_id"] == report.run_id
    table = summary_frame(to_frame(report.rows))
    assert table["variant"].iloc[0] == "F16 (reference: original)"


def test_a_second_run_reuses_the_cached_f16_gguf(report, hf_ref):  # noqa: F811
    f16 = report.rows[0].model_name
    mtime = os.stat(f16).st_mtime_ns
    messages = []
    settings = quant_lab.QuantSettings(variants=("Q8_0",), quality=False, speed=False, answers=False, threads=2)
    again = quant_lab.compare(hf_ref.path, settings, progress=lambda f, m: messages.append(m))
    assert any(m.endswith("F16 GGUF of smollm2-135m-hf-bf16: cached") for m in messages)
    assert os.stat(f16).st_mtime_ns == mtime and again.rows[0].model_name == f16
    assert not any("converting" in m and "F16 GGUF with" in m for m in messages)


def test_cli_lists_and_labels_the_original(report, hf_ref):  # noqa: F811
    listed = run_app("quant", "--model", hf_ref.path, "--list")
    assert listed.returncode == 0, listed.stderr
    lines = dict(line.split("\t") for line in listed.stdout.splitlines())
    assert lines["Q8_0"] == "built" and lines["Q2_K"] == "not built" and {"F16", "MLX 8-bit"} <= set(lines)
    proc = run_app(
        *("quant", "--model", hf_ref.path, "--variants", "q8_0", "--no-quality", "--no-speed", "--no-answers")
    )
    assert proc.returncode == 0, proc.stderr
    assert "Reference: original: BF16 safetensors (folder" in proc.stderr
    assert "F16 (reference: original)" in proc.stdout
    as_json = run_app(
        *("quant", "--model", hf_ref.path, "--variants", "q8_0,mlx-4bit", "--no-quality", "--no-speed", "--no-answers"),
        "-o",
        "json",
    )
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert [r["variant"] for r in rows] == ["F16", "Q8_0", "MLX 4-bit"]
    assert all(r["reference_origin"].startswith("original: BF16 safetensors (folder") for r in rows)
