"""The model catalog: bundled models, LOCALBENCH_MODELS, paths, and clear errors."""

from __future__ import annotations

import shutil

import pytest

from core.errors import ModelNotFound
from models.catalog import MODEL_CONFIGS, list_models, model_names, resolve_model


def test_bundled_smollm2_is_the_default(smollm2_ref):
    assert smollm2_ref.name == "smollm2-135m"
    assert smollm2_ref.path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert smollm2_ref.chat and "bundled" in smollm2_ref.source


def test_gemma_is_a_base_model_assembled_into_the_cache():
    ref = resolve_model("gemma3-270m")
    assert ref.chat is False and "plain completion" in ref.note
    assert ref.path.endswith(".gguf")
    with open(ref.path, "rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_models_folder_and_paths(tmp_path, monkeypatch, smollm2_ref):
    shutil.copyfile(smollm2_ref.path, tmp_path / "my-model.gguf")
    monkeypatch.setenv("LOCALBENCH_MODELS", str(tmp_path))
    assert "my-model" in model_names()
    assert resolve_model("my-model").source == "LOCALBENCH_MODELS"
    assert resolve_model(str(tmp_path / "my-model.gguf")).format == "gguf"
    assert any(r.name == "my-model" for r in list_models())


def test_unknown_names_give_clear_errors(tmp_path):
    with pytest.raises(ModelNotFound, match="unknown model 'nope'.*smollm2-135m"):
        resolve_model("nope")
    with pytest.raises(ModelNotFound, match="not found"):
        resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFound, match="planning entry"):
        resolve_model("qwen3:8b")
    with pytest.raises(ModelNotFound, match="no model given"):
        resolve_model("")


def test_design_target_planning_entries_are_kept():
    assert set(MODEL_CONFIGS) == {"qwen3:8b", "gemma3:12b", "qwen3:30b-a3b"}
    assert all(cfg["quant"] == "Q4_K_M" for cfg in MODEL_CONFIGS.values())
