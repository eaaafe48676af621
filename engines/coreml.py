"""Core ML engine (the design record's "Metal + ANE" path): what stands between localbench and the Neural Engine.

Core ML predicts only on macOS (Core ML.framework; coremltools' Linux wheel has no `libcoremlpython`), so
elsewhere the engine reports unavailable with that reason. Conversion runs on Linux too, but a causal LM
from this environment's transformers does not convert yet: tracing SmolLM2 (LlamaForCausalLM, transformers
5.23) and calling `coremltools.convert` (9.0, ML Program, fp16) stops at torch ops coremltools has no
converter for (`diff` in the packed-sequence check, `new_ones` in the mask, a `_cast` of a non-scalar
mask). Until that converts, availability says so on every platform, `blocker()` names it, and
`convert_causal_lm` is kept to reproduce it (it raises EngineUnavailable with coremltools' own message).
"""

from __future__ import annotations

import importlib.util
import platform

from core.errors import EngineUnavailable
from engines.base import Engine, LoadConfig, ModelInfo
from models.ref import ModelRef

CONVERSION_BLOCKER = (
    "coremltools 9.0 cannot convert transformers 5.23 causal LMs yet (no converter for the torch ops "
    "'diff' and 'new_ones' in the attention-mask code)"
)


def blocker(os_name: str | None = None) -> str:
    """Why the Core ML engine cannot run here ('' once nothing blocks it)."""
    os_name = os_name or platform.system()
    if importlib.util.find_spec("coremltools") is None:
        return "Python module 'coremltools' is not installed (pip install -r requirements.txt)"
    if os_name != "Darwin":
        return f"Core ML predicts only on macOS (Core ML.framework); on {os_name} coremltools can only convert"
    return CONVERSION_BLOCKER


def convert_causal_lm(hf_path: str, out_path: str, seq_len: int = 64) -> str:
    """Trace the HF causal LM at `hf_path` on a fixed (1, `seq_len`) window and save it as an fp16 ML Program
    `.mlpackage` at `out_path`; EngineUnavailable with coremltools' message when it does not convert."""
    import coremltools as ct
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_path, dtype=torch.float32, attn_implementation="eager").eval()

    class Logits(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):
            return self.inner(input_ids=input_ids, use_cache=False, return_dict=False)[0]

    example = torch.zeros(1, seq_len, dtype=torch.int64)
    traced = torch.jit.trace(Logits(model), (example,), check_trace=False)
    try:
        mlmodel = ct.convert(
            traced,
            inputs=[ct.TensorType(name="input_ids", shape=(1, seq_len), dtype=int)],
            outputs=[ct.TensorType(name="logits")],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.macOS13,
        )
    except (NotImplementedError, TypeError, ValueError, RuntimeError) as err:
        raise EngineUnavailable(f"coremltools {ct.__version__} cannot convert {hf_path}: {err}") from err
    mlmodel.save(out_path)
    return out_path


class CoreMLEngine(Engine):
    """Core ML on the Neural Engine, GPU and CPU (macOS only; see the module docstring for its state)."""

    name = "coreml"
    label = "Core ML (Neural Engine)"
    formats = ("hf",)
    modules = ("coremltools",)

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        why = blocker()
        return (False, why) if why else (True, "ok")

    def load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        raise EngineUnavailable(f"Core ML engine unavailable: {blocker()}")
