"""Conversions for real: the bundled SmolLM2 GGUF → HF safetensors (transformers' GGUF loader) → MLX
bf16 / 8-bit / 4-bit (mlx_lm.convert), cached under the session's LOCALBENCH_HOME; the catalog provider;
interrupted conversions (cancel midway, process killed) leave nothing that lists as a model; bad input
(no config.json, unsupported architecture) gets one clear message; the `convert` command.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.errors import BadParameter, Cancelled, InvalidModelFile
from engines.base import LoadConfig
from models import catalog, convert, converted, hf_folder
from tests.conftest import ROOT, run_app
from tests.engines.converted import hf_ref, mlx_refs  # noqa: F401  (session fixtures)


def test_gguf_to_hf_is_bf16_dequantized_and_listed(hf_ref):  # noqa: F811
    folder = Path(hf_ref.path)
    assert hf_ref.name == "smollm2-135m@hf-bf16" and hf_ref.format == "hf"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["dtype"] == "bfloat16"
    assert "quantization_config" not in config  # GgufConfig(dequantize=True): a plain, savable model
    manifest = converted.read_manifest(folder)
    assert manifest["source_type"] == "Q4_1" and manifest["source_format"] == "gguf"
    assert "dequantized" in hf_ref.note and "Q4_1" in hf_ref.note
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert 2 * 134e6 < weights < 2 * 136e6  # 134.5 M parameters × 2 bytes
    assert not convert.partial_folders(folder)
    # the catalog lists it, and resolves its name, through the provider
    assert hf_ref.name in [r.name for r in catalog.list_models()]
    assert catalog.resolve_model(hf_ref.name).path == hf_ref.path


def test_mlx_variants_are_quantized_with_group_size_64(mlx_refs):  # noqa: F811
    sizes = {}
    for key, ref in mlx_refs.items():
        config = json.loads((Path(ref.path) / "config.json").read_text())
        quant = config.get("quantization")
        if key == "mlx-bf16":
            assert quant is None
        else:
            assert quant["group_size"] == 64 and quant["bits"] == int(key.split("-")[1][0])
        assert ref.format == "mlx" and "Q4_1" in ref.note
        sizes[key] = sum(p.stat().st_size for p in Path(ref.path).glob("*.safetensors"))
    assert sizes["mlx-4bit"] < sizes["mlx-8bit"] < sizes["mlx-bf16"]
    # mlx-lm reads only the top-level RoPE keys, which transformers 5 no longer writes
    assert config["rope_theta"] == 100000.0 == config["rope_parameters"]["rope_theta"]
    bpw = converted.read_manifest(Path(mlx_refs["mlx-4bit"].path))["mlx_bits_per_weight"]
    assert 4.0 < bpw < 5.0  # 4 bits + a bf16 scale and bias per 64 weights ≈ 4.5


def test_legacy_rope_keys():
    gemma3 = {
        "rope_parameters": {
            "full_attention": {"rope_theta": 1e6, "rope_type": "default"},
            "sliding_attention": {"rope_theta": 1e4, "rope_type": "default"},
        }
    }
    assert hf_folder.legacy_rope_keys(gemma3) == {"rope_theta": 1e6, "rope_local_base_freq": 1e4}
    scaled = {"rope_parameters": {"rope_theta": 5e5, "rope_type": "llama3", "factor": 8.0}}
    assert hf_folder.legacy_rope_keys(scaled) == {
        "rope_theta": 5e5,
        "rope_scaling": {"rope_type": "llama3", "type": "llama3", "factor": 8.0},
    }
    assert hf_folder.legacy_rope_keys({"rope_theta": 1e4, "rope_parameters": {"rope_theta": 1e4}}) == {}
    assert hf_folder.legacy_rope_keys({"model_type": "llama"}) == {}


def test_cached_conversions_return_at_once_and_listing_never_converts(hf_ref, tmp_path, monkeypatch):  # noqa: F811
    t0 = time.perf_counter()
    again = convert.convert("smollm2-135m", "hf", progress=lambda f, m: None)
    assert again == hf_ref and time.perf_counter() - t0 < 1.0
    # on-demand conversions inside engine.resolve report to whatever the caller installed (CLI bar, gr.Progress)
    from engines.torch_hf import TorchEngine

    seen = []
    with convert.reporting(lambda f, m: seen.append((f, m))):
        assert TorchEngine().resolve("smollm2-135m") == hf_ref
    assert seen == [(1.0, "smollm2-135m@hf-bf16 is already converted")]
    # a fresh home: names are offered, nothing is converted or written by listing
    monkeypatch.setenv("LOCALBENCH_HOME", str(tmp_path))
    assert converted.converted_models() == []
    names = catalog.engine_model_names("mlx")
    assert "smollm2-135m" in names and "smollm2-135m@mlx-4bit" in names and "smollm2-135m@hf-bf16" not in names
    assert "smollm2-135m@hf-bf16" in catalog.engine_model_names("torch")
    assert list(converted.root().iterdir()) == []


def test_cancel_midway_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALBENCH_HOME", str(tmp_path))
    cancel = threading.Event()
    seen = []

    def progress(fraction, message):
        seen.append(message)
        if "tensors (32/" in message:
            cancel.set()  # the user presses Cancel while tensors are being dequantized

    with pytest.raises(Cancelled, match="cancelled; nothing was kept"):
        convert.convert("smollm2-135m", "hf", progress=progress, cancel=cancel)
    final = converted.variant_dir("smollm2-135m", "hf-bf16")
    assert any("tensors (16/272)" in m for m in seen)
    assert not final.exists() and not convert.partial_folders(final)
    assert converted.converted_models() == []


def test_killed_conversion_never_lists_and_is_cleaned_up(tmp_path):
    """A conversion killed midway (power cut, kill -9) leaves only a hidden partial folder."""
    env = {**os.environ, "LOCALBENCH_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "convert", "--model", "smollm2-135m", "--to", "hf"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    final = tmp_path / "cache" / "converted" / "smollm2-135m@hf-bf16"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any((p / convert.OWNER).exists() for p in convert.partial_folders(final)):
        assert proc.poll() is None, "the conversion ended before it could be interrupted"
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partials = convert.partial_folders(final)
    assert partials and not final.exists()
    old_home = os.environ["LOCALBENCH_HOME"]
    os.environ["LOCALBENCH_HOME"] = str(tmp_path)
    try:
        assert converted.converted_models() == []
        assert converted.converted_ref("smollm2-135m@hf-bf16") is None
        assert convert.clean_stale_partials(final) == partials  # its process is gone: removed
        assert not convert.partial_folders(final)
    finally:
        os.environ["LOCALBENCH_HOME"] = old_home


def test_live_partial_is_not_removed(tmp_path):
    final = tmp_path / "x@hf-bf16"
    tmp = tmp_path / ".x@hf-bf16.partial-1234abcd"
    convert._claim(tmp)  # owned by this (live) process
    assert convert.clean_stale_partials(final) == [] and tmp.exists()


def test_hf_folder_without_config_json(hf_ref, tmp_path):  # noqa: F811
    from engines.mlx import MlxEngine
    from engines.torch_hf import TorchEngine

    folder = tmp_path / "no-config"
    folder.mkdir()
    shutil.copy(Path(hf_ref.path) / "model.safetensors", folder / "model.safetensors")
    ref = catalog.resolve_model(str(folder))
    for engine in (TorchEngine(), MlxEngine()):
        with pytest.raises(InvalidModelFile, match="has no config.json, so it is not a Hugging Face model folder"):
            engine.load(engine.resolve(str(folder)), LoadConfig(n_ctx=512))
    with pytest.raises(InvalidModelFile, match="no config.json"):
        convert.convert(ref, "mlx-4bit", progress=lambda f, m: None)
    done = run_app("bench", "--engine", "torch", "--model", str(folder), "-p", "8", "-n", "4", "-r", "1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and "config.json" in done.stderr


def test_unsupported_architecture(hf_ref, tmp_path):  # noqa: F811
    from engines.mlx import MlxEngine
    from engines.torch_hf import TorchEngine

    folder = tmp_path / "madeup-hf"
    folder.mkdir()
    shutil.copy(Path(hf_ref.path) / "model.safetensors", folder / "model.safetensors")
    config = json.loads((Path(hf_ref.path) / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "madeup", "architectures": ["Madeup"]}))
    for engine in (TorchEngine(), MlxEngine()):
        with pytest.raises(InvalidModelFile, match="unsupported architecture 'madeup'"):
            engine.load(catalog.resolve_model(str(folder)), LoadConfig(n_ctx=512))
    # a real GGUF file whose architecture transformers' GGUF loader does not know
    import gguf
    import numpy as np

    path = tmp_path / "madeup.gguf"
    writer = gguf.GGUFWriter(str(path), "madeup")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.ones((16, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(InvalidModelFile, match="unsupported architecture 'madeup'.*llama.cpp engine"):
        convert.convert(str(path), "hf", progress=lambda f, m: None)
    assert "gemma3" in hf_folder.gguf_supported_architectures()  # Gemma 3 270M converts too (README)


def test_names_are_checked(hf_ref):  # noqa: F811
    with pytest.raises(BadParameter, match="unknown variant 'mlx-3bit'"):
        convert.resolve_for_engine("mlx", "smollm2-135m@mlx-3bit", "mlx-bf16")
    with pytest.raises(BadParameter, match="for the mlx engine — choose --engine mlx"):
        convert.resolve_for_engine("torch", "smollm2-135m@mlx-4bit", "hf-bf16")
    with pytest.raises(BadParameter, match="unknown conversion target"):
        convert.convert("smollm2-135m", "onnx")
    assert convert.resolve_for_engine("torch", "smollm2-135m", "hf-bf16") == hf_ref
    by_path = convert.resolve_for_engine("torch", hf_ref.path, "hf-bf16")  # a folder path loads as it is
    assert (by_path.path, by_path.format) == (hf_ref.path, "hf")


def test_convert_command(mlx_refs):  # noqa: F811
    done = run_app("convert", "--model", "smollm2-135m", "--to", "mlx-4bit")
    assert done.returncode == 0, done.stderr
    name, path, note = done.stdout.strip().split("\t")
    assert (name, path) == ("smollm2-135m@mlx-4bit", mlx_refs["mlx-4bit"].path) and "group size 64" in note
    listed = run_app("convert", "--list")
    assert {line.split("\t")[0] for line in listed.stdout.splitlines()} >= {
        "smollm2-135m@hf-bf16",
        "smollm2-135m@mlx-bf16",
        "smollm2-135m@mlx-8bit",
        "smollm2-135m@mlx-4bit",
    }
    bad = run_app("convert", "--model", "no-such-model", "--to", "hf")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: unknown model 'no-such-model'")


def test_quant_lab_rows(mlx_refs):  # noqa: F811
    from bench.quant import lab as quant_lab

    labels = quant_lab.variant_choices("smollm2-135m")
    assert {"MLX bf16", "MLX 8-bit", "MLX 4-bit", "torch bf16", "torch fp32"} <= set(labels)
    rows = {v.label: v for v in quant_lab.extra_variants("smollm2-135m")}
    assert rows["torch fp32"].engine == "torch" and rows["torch fp32"].dtype == "fp32"
    assert rows["MLX 4-bit"].model == "smollm2-135m@mlx-4bit"
    assert quant_lab.extra_variants(mlx_refs["mlx-4bit"].path) == []  # only GGUF sources get rows
