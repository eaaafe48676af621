"""Family keys on real files: the bundled SmolLM2 GGUF and the HF and MLX folders our converter makes
from it share one key; Gemma 3 270M and a base model of the same size get others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models import catalog
from models.stores.family import estimate_params, family_from_config, family_from_gguf
from models.stores.headers import gguf_facts
from tests.engines.converted import hf_ref, mlx_refs  # noqa: F401  (session fixtures)


def config_of(folder: str) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())


def test_same_model_in_three_formats(hf_ref, mlx_refs):  # noqa: F811
    gguf_key = family_from_gguf(gguf_facts(catalog.smollm2_path()))
    assert gguf_key == "smollm2-135m-instruct"
    for ref in (hf_ref, *mlx_refs.values()):
        assert family_from_config(config_of(ref.path), ref.name, chat=ref.chat) == gguf_key, ref.name
    # Hub names of the same model, as the HF cache and LM Studio hold them
    config = config_of(hf_ref.path)
    for repo in (
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "mlx-community/SmolLM2-135M-Instruct-4bit",
        "mlx-community/SmolLM2-135M-Instruct-bf16",
        "bartowski/SmolLM2-135M-Instruct-GGUF",
        "someone/SmolLM2-135M-Instruct-Q4_K_M-GGUF",
    ):
        assert family_from_config(config, repo) == gguf_key, repo


def test_base_and_instruct_differ(hf_ref):  # noqa: F811
    config = config_of(hf_ref.path)
    assert family_from_config(config, "HuggingFaceTB/SmolLM2-135M") == "smollm2-135m"
    assert (
        family_from_config(config, "HuggingFaceTB/SmolLM2-135M", chat=True) == "smollm2-135m"
    )  # a base with a template
    assert family_from_config({}, "google/gemma-3-270m-it") == "gemma-3-270m-instruct"
    assert family_from_config({}, "unsloth/gemma-3-270m-it-GGUF") == "gemma-3-270m-instruct"


def test_gemma_is_another_family():
    gemma = family_from_gguf(gguf_facts(catalog.gemma3_path()))
    assert gemma == "gemma-3-270m"
    assert family_from_config({}, "google/gemma-3-270m") == gemma
    assert gemma != family_from_gguf(gguf_facts(catalog.smollm2_path()))


@pytest.mark.parametrize(
    ("repo", "key"),
    [
        ("mlx-community/Qwen3-4B-Instruct-2507-MLX-4bit", "qwen3-4b-2507-instruct"),
        ("Qwen/Qwen3-4B", "qwen3-4b"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b-v0.3-instruct"),
        ("Qwen/Qwen3-30B-A3B", "qwen3-30b-a3b"),
        ("lmstudio-community/Meta-Llama-3.1-8B-Instruct-GGUF", "meta-llama-3.1-8b-instruct"),
    ],
)
def test_hub_names(repo, key):
    assert family_from_config({}, repo) == key


def test_unnamed_folder_falls_back_to_architecture_and_size(hf_ref):  # noqa: F811
    config = {k: v for k, v in config_of(hf_ref.path).items() if not k.startswith("_")}
    assert estimate_params(config) == 134_515_008  # the GGUF's tensor count, from config sizes alone
    assert family_from_config(config, "") == "llama-135m"
