"""engines.coreml: registered, and honest about why it cannot run here (no Core ML off macOS; no causal-LM
conversion with this coremltools and transformers)."""

from __future__ import annotations

import platform

import pytest

from core.errors import EngineUnavailable
from engines import coreml
from engines.base import LoadConfig
from engines.registry import engine_status
from models.ref import ModelRef


def test_registered_and_unavailable_with_the_reason():
    rows = {name: (ok, why) for name, ok, why in engine_status()}
    ok, why = rows["coreml"]
    assert not ok and why == coreml.blocker()
    if platform.system() != "Darwin":
        assert why.startswith("Core ML predicts only on macOS")
    assert coreml.blocker("Darwin") == coreml.CONVERSION_BLOCKER


def test_load_raises_the_reason():
    with pytest.raises(EngineUnavailable, match="Core ML engine unavailable"):
        coreml.CoreMLEngine().load(ModelRef("x", "/nonexistent", "hf"), LoadConfig())


def test_coremltools_converts_a_torch_module_here(tmp_path):
    """The conversion half of coremltools works on this platform (the block is the LLM's ops, not the tool)."""
    ct = pytest.importorskip("coremltools")
    import torch

    traced = torch.jit.trace(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval(), torch.zeros(1, 8))
    ml = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1, 8))], convert_to="mlprogram")
    ml.save(str(tmp_path / "tiny.mlpackage"))
    assert (tmp_path / "tiny.mlpackage" / "Manifest.json").is_file()
