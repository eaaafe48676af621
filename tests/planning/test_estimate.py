"""The memory planner: formulas on published examples and llama.cpp's own figures, model metadata from
every source, verdicts, maximum context, the quantization recommendation and the allocation plan."""

from __future__ import annotations

import ctypes
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import units
from core.errors import BadParameter, InvalidModelFile
from planning import estimate, report, specs

ROOT = Path(__file__).resolve().parents[2]
GiB, MiB = 2**30, 2**20


# --- formulas on published examples ----------------------------------------------------------------


def test_llama3_8b_kv_cache_is_128_kib_per_token_and_1_gib_at_8k():
    # Llama 3 8B: 32 layers, 8 KV heads, head_dim 128 (ANCHORS: 128 KiB per token, 1 GiB at 8K)
    assert estimate.kv_bytes_per_token(32, 8, 128) == 128 * 1024
    assert estimate.kv_cache_bytes(32, 8, 128, 8192) == 1 * GiB
    assert estimate.kv_cache_bytes(32, 8, 128, 8192, "q8_0") == 1 * GiB * 34 // 64
    assert estimate.kv_cache_bytes(32, 8, 128, 8192, "q4_0") == 1 * GiB * 18 // 64
    assert estimate.kv_cache_bytes(32, 8, 128, 8192, n_parallel=4) == 4 * GiB


def test_design_target_planning_entry_qwen3_8b():
    spec = specs.spec_from_planning("qwen3:8b")
    est = estimate.estimate(spec, "Q4_K_M", 4096)
    assert est.weights_bytes == int(8.2e9 * 4.8944 / 8)  # params × published bpw / 8
    assert est.kv_bytes_per_token == 2 * 36 * 8 * 128 * 2  # 144 KiB
    # the design target (ADR 006) planned 5.2 GB at Q4_K_M; our weights alone are within 5 % of it
    assert est.weights_bytes / 1e9 == pytest.approx(5.2, rel=0.05)
    assert est.total_bytes > est.weights_bytes + est.kv_cache_bytes
    assert estimate.estimate(spec, None, 4096).weights_bytes == est.weights_bytes  # "as file": the planned type


def test_units_are_labelled():
    assert units.fmt_bytes(GiB) == "1.00 GiB (1.07 GB)"
    assert units.fmt_bytes(96 * MiB) == "96.0 MiB (100.7 MB)"


# --- against llama.cpp itself ------------------------------------------------------------------------

LOG_SCRIPT = """
import sys
from llama_cpp import Llama
for n_ctx in (2048, 8192):
    Llama(model_path=sys.argv[1], n_ctx=n_ctx, n_batch=512, n_threads=2, verbose=True).close()
"""


def test_compute_and_kv_buffers_match_llama_cpp_logs(smollm2_ref):
    """llama.cpp prints the buffers it allocates: the planner's formulas must agree with them."""
    done = subprocess.run(
        [sys.executable, "-c", LOG_SCRIPT, smollm2_ref.path], capture_output=True, text=True, timeout=180, cwd=ROOT
    )
    log = done.stderr + done.stdout
    compute = [float(x) for x in re.findall(r"sched_reserve:\s+CPU compute buffer size =\s+([\d.]+) MiB", log)]
    kv = [float(x) for x in re.findall(r"CPU KV buffer size =\s+([\d.]+) MiB", log)]
    assert len(compute) == 2 and len(kv) == 2, log[-2000:]
    spec = specs.spec_from_gguf(smollm2_ref.path)
    for n_ctx, measured_compute, measured_kv in zip((2048, 8192), compute, kv, strict=True):
        est = estimate.estimate(spec, None, n_ctx)
        assert est.kv_cache_bytes / MiB == pytest.approx(measured_kv, rel=1e-6)
        assert est.compute_bytes / MiB == pytest.approx(measured_compute, rel=0.02)


def _quantize(src: str, dst: Path, ftype: str) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.allow_requantize = True
    params.nthread = 2
    assert llama_cpp.llama_model_quantize(src.encode(), str(dst).encode(), ctypes.byref(params)) == 0


@pytest.mark.parametrize("ftype", ["Q8_0", "Q4_K_M"])
def test_weights_repriced_from_the_tensor_table_match_a_real_quantization(smollm2_ref, tmp_path, ftype):
    """SmolLM2's width 576 makes K-quants fall back; the planner predicts the real file within 5 %."""
    out = tmp_path / f"{ftype}.gguf"
    _quantize(smollm2_ref.path, out, ftype)
    predicted, _, bpw, method = estimate.weights_for(specs.spec_from_gguf(smollm2_ref.path), ftype)
    assert predicted == pytest.approx(out.stat().st_size, rel=0.05)
    assert "tensor table" in method
    if ftype == "Q4_K_M":  # nominal 4.89 bpw; the fallback makes it ~6
        assert bpw > 5.5
        real = specs.spec_from_gguf(str(out))
        assert real.file_type == "Q4_K_M" and estimate.weights_for(real, None)[0] == out.stat().st_size


def test_gguf_spec_reads_the_bundled_model(smollm2_ref):
    spec = specs.spec_from_gguf(smollm2_ref.path, "smollm2-135m")
    assert (spec.n_layers, spec.n_heads, spec.n_kv_heads, spec.head_dim) == (30, 9, 3, 64)
    assert (spec.n_embd, spec.n_vocab, spec.context_length) == (576, 49152, 8192)
    assert spec.n_params == 134515008 and spec.file_type == "Q4_1"
    assert specs.load_spec("smollm2-135m") == spec


def test_truncated_gguf_is_reported(smollm2_ref, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(Path(smollm2_ref.path).read_bytes()[: 20 * MiB])
    with pytest.raises(InvalidModelFile, match="truncated"):
        specs.spec_from_gguf(str(cut))


# --- HF and MLX folders -------------------------------------------------------------------------------


def _hf_folder(path: Path, config: dict, tensors: dict) -> Path:
    from safetensors.numpy import save_file

    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(path / "model.safetensors"))
    return path


HF_CONFIG = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_size": 64,
    "vocab_size": 100,
    "max_position_embeddings": 512,
    "torch_dtype": "bfloat16",
}


def test_hf_folder_spec(tmp_path):
    folder = _hf_folder(
        tmp_path / "tiny-hf",
        HF_CONFIG,
        {"embed.weight": np.zeros((100, 64), np.float16), "layer.weight": np.zeros((64, 64), np.float16)},
    )
    spec = specs.spec_from_folder(str(folder))
    assert spec.source == "HF folder" and spec.file_type == "BF16"
    assert (spec.n_layers, spec.n_kv_heads, spec.head_dim, spec.n_params) == (2, 2, 16, 100 * 64 + 64 * 64)
    est = estimate.estimate(spec, "F32", 512)
    assert est.weights_bytes == spec.n_params * 4
    assert est.kv_cache_bytes == 2 * 2 * 2 * 16 * 512 * 2


def test_mlx_folder_counts_packed_weights(tmp_path):
    config = {**HF_CONFIG, "quantization": {"group_size": 64, "bits": 4}}
    tensors = {
        "layer.weight": np.zeros((64, 8), np.uint32),
        "layer.scales": np.zeros((64, 1), np.float16),
        "layer.biases": np.zeros((64, 1), np.float16),
    }
    spec = specs.spec_from_folder(str(_hf_folder(tmp_path / "tiny-mlx", config, tensors)))
    assert spec.source == "MLX folder" and spec.file_type == "MLX-4bit"
    assert spec.n_params == 64 * 64  # 8 uint32 words hold 64 4-bit weights per row


def test_model_without_the_needed_metadata_names_the_field(tmp_path):
    config = {k: v for k, v in HF_CONFIG.items() if k != "num_hidden_layers"}
    folder = _hf_folder(tmp_path / "no-layers", config, {"w": np.zeros((4, 4), np.float16)})
    with pytest.raises(InvalidModelFile, match=r"layer count.*'n_layers'"):
        estimate.estimate(specs.spec_from_folder(str(folder)), None, 256)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidModelFile, match="no config.json"):
        specs.spec_from_folder(str(tmp_path / "empty"))
    no_params = specs.ModelSpec("x", "Ollama", n_layers=2, n_kv_heads=2, head_dim=16)
    with pytest.raises(InvalidModelFile, match="parameter count"):
        estimate.estimate(no_params, "Q4_K_M", 256)


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_ctx", "message"),
    [
        (0, "positive"),
        (-5, "positive"),
        (8193, "above smollm2-135m's maximum of 8192"),
        (1.5, "whole number"),
    ],
)
def test_absurd_context_is_refused(smollm2_ref, n_ctx, message):
    spec = specs.spec_from_gguf(smollm2_ref.path, "smollm2-135m")
    with pytest.raises(BadParameter, match=message):
        estimate.estimate(spec, None, n_ctx)


def test_unknown_quantization_and_kv_type(smollm2_ref):
    spec = specs.spec_from_gguf(smollm2_ref.path)
    with pytest.raises(BadParameter, match="unknown quantization 'Q9_X'"):
        estimate.estimate(spec, "Q9_X", 512)
    with pytest.raises(BadParameter, match="unknown KV cache type"):
        estimate.estimate(spec, None, 512, kv_type="q3")
    assert estimate.normalize_quant("q4_k_m") == "Q4_K_M" and estimate.normalize_quant("4bit") == "MLX-4bit"
    assert estimate.normalize_quant("as file") is None and estimate.normalize_quant("fp16") == "F16"


# --- verdicts, maximum context, recommendation ------------------------------------------------------------


def test_fit_thresholds():
    margin = estimate.margin_bytes(16 * GiB)
    assert margin == int(0.05 * 16 * GiB)
    assert estimate.margin_bytes(4 * GiB) == 512 * MiB
    assert estimate.fit(8 * GiB - margin, 8 * GiB, 16 * GiB, "x").verdict == "fits"
    assert estimate.fit(8 * GiB - margin + 1, 8 * GiB, 16 * GiB, "x").verdict == "tight"
    assert estimate.fit(8 * GiB + 1, 8 * GiB, 16 * GiB, "x").verdict == "does not fit"
    assert estimate.fit(1, None, None, "GPU").verdict == "n/a"


def test_max_context_is_the_largest_that_fits():
    spec = specs.spec_from_planning("qwen3:8b")
    budget = estimate.estimate(spec, "Q4_K_M", 20480).total_bytes
    best = estimate.max_context(spec, "Q4_K_M", budget)
    assert best == 20480
    assert estimate.estimate(spec, "Q4_K_M", best + 256).total_bytes > budget
    assert estimate.max_context(spec, "Q4_K_M", 1 * GiB) == 0  # weights alone are ~5 GB
    assert estimate.max_context(spec, "Q4_K_M", 10**12) == 40960  # capped at the model's maximum
    rows = estimate.context_table(spec, 10 * GiB)  # Q8_0 weights are 8.7 GB, F16 16.4 GB
    by_quant = {r.quantization: r.max_ctx for r in rows}
    assert by_quant["F16"] == 0 and by_quant["Q4_K_M"] > by_quant["Q8_0"] > 0


def test_recommendation_follows_the_design_target_table_then_steps_down():
    spec = specs.spec_from_planning("gemma3:12b")  # 12.2 B → the design target's 8B/12B/30B class → Q4_K_M
    roomy = estimate.recommend(spec, 8192, 64 * GiB, "test budget")
    assert roomy.quantization == roomy.adr006_choice == "Q4_K_M"
    assert "There is room for Q5_K_M" in " ".join(roomy.reasons)
    q4 = estimate.estimate(spec, "Q4_K_M", 8192).total_bytes
    tight = estimate.recommend(spec, 8192, q4 - 1, "test budget")
    assert tight.quantization == "Q4_K_S"
    assert any("one step down to Q4_K_S" in r for r in tight.reasons)
    none = estimate.recommend(spec, 8192, 2 * GiB, "test budget")
    assert none.quantization is None and "Nothing" in none.reasons[-1]
    small = estimate.recommend(specs.spec_from_planning("qwen3:8b"), 4096, 64 * GiB, "x")
    assert small.adr006_choice == "Q4_K_M"  # 8.2 B is above the 7B class


def test_plan_report_is_json_ready(smollm2_ref):
    spec = specs.spec_from_gguf(smollm2_ref.path, "smollm2-135m")
    out = report.plan_report(
        spec,
        "Q4_K_M",
        8192,
        ram_bytes=24 * GiB,
        available_bytes=16 * GiB,
        gpu_share_bytes=16 * GiB,
        gpu_source="test",
        offload=True,
    )
    json.dumps(out)
    assert out["fits"]["available_memory"]["verdict"] == "fits"
    assert out["fits"]["gpu_share"]["verdict"] == "fits"
    assert out["estimate"]["repack_bytes"] == 0  # offloaded: no CPU repack
    assert out["recommendation"]["adr006_choice"] == "Q8_0"  # 0.13 B is the 3B class
    assert out["max_context"][0]["quantization"] == "Q4_1 (as file)"


# --- the design target's allocation plan ----------------------------------------------------------------


def test_allocation_plan_scales_the_design_target_table():
    table = {r.component: r.bytes for r in report.allocation_plan(64 * 10**9)}
    assert table["OS"] == 6 * 10**9 and table["Applications"] == 8 * 10**9
    assert table["Embeddings / RAG"] == 2 * 10**9 and table["Buffers / cache"] == 4 * 10**9
    plan = report.allocation_plan(24 * GiB)
    assert sum(r.fraction for r in plan) == pytest.approx(1.0)
    assert report.model_budget(plan) == pytest.approx(24 * GiB * 44 / 64, rel=1e-6)
    edited = report.allocation_plan(24 * GiB, {"Applications": 0.25, "Model weights": 0.4375})
    assert {r.component: r.fraction for r in edited}["Applications"] == 0.25


def test_allocation_plan_refuses_more_than_all_of_ram():
    with pytest.raises(BadParameter, match="adds up to 113 %"):
        report.allocation_plan(24 * GiB, {"OS": 0.22})
    with pytest.raises(BadParameter, match="between 0 % and 100 %"):
        report.allocation_plan(24 * GiB, {"OS": -0.1})
    with pytest.raises(BadParameter, match="unknown plan component"):
        report.allocation_plan(24 * GiB, {"GPU": 0.1})


# --- Ollama models (the loopback fake speaking Ollama's documented API) ------------------------------------


def test_ollama_model_spec_from_show_and_tags(fake_ollama, smollm2_ref):
    spec = specs.load_spec("ollama:smollm2:135m", fake_ollama.url)
    assert spec.source == "Ollama"
    assert (spec.n_layers, spec.n_kv_heads, spec.head_dim, spec.context_length) == (30, 3, 64, 8192)
    assert spec.file_bytes == Path(smollm2_ref.path).stat().st_size
    est = estimate.estimate(spec, None, 2048)
    assert est.kv_cache_bytes == 45 * MiB
    assert specs.load_spec("smollm2:135m", fake_ollama.url).source == "Ollama"  # not in the catalog: asks Ollama


# --- the CLI ----------------------------------------------------------------------------------------------


def test_plan_cli_json():
    from tests.conftest import run_app

    done = run_app("plan", "--model", "smollm2-135m", "--quant", "Q4_K_M", "--ctx", "8192", "-o", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    est = report["estimate"]
    assert (est["quantization"], est["n_ctx"], est["kv_cache_bytes"]) == ("Q4_K_M", 8192, 180 * MiB)
    assert (
        est["total_bytes"]
        == est["weights_bytes"]
        + est["kv_cache_bytes"]
        + est["compute_bytes"]
        + est["cpu_work_bytes"]
        + est["overhead_bytes"]
    )
    assert report["fits"]["available_memory"]["verdict"] in ("fits", "tight", "does not fit")
    assert report["recommendation"]["quantization"] and report["units"].startswith("sizes in bytes")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ctx", "0"], "context must be a positive number of tokens, got 0"),
        (["--model", "qwen3:8b", "--ctx", "50000"], "above qwen3:8b's maximum of 40960 tokens"),
        (["--quant", "Q9"], "unknown quantization 'Q9'"),
    ],
)
def test_plan_cli_bad_input_is_one_line_and_exit_2(args, message):
    from tests.conftest import run_app

    done = run_app("plan", *args)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and message in done.stderr
