"""Session fixtures for the MLX and PyTorch engine tests: the bundled SmolLM2 converted by our own code
(models.convert) once per session into the session's LOCALBENCH_HOME, and engines loaded from it.

Imported by tests/engines/test_convert.py, test_torch_hf.py and test_mlx.py. A fixture imported into
several modules runs once per module, but every run after the first finds the conversion cached on disk
(a manifest read), so the conversion itself happens once per session.
"""

from __future__ import annotations

import pytest

from engines.base import LoadConfig


@pytest.fixture(scope="session")
def hf_ref(localbench_home):
    """smollm2-135m@hf-bf16: the bundled Q4_1 GGUF dequantized to bf16 safetensors."""
    from models import convert

    return convert.convert("smollm2-135m", "hf", progress=lambda f, m: None)


@pytest.fixture(scope="session")
def mlx_refs(hf_ref):
    """{'mlx-bf16': ref, 'mlx-8bit': ref, 'mlx-4bit': ref}, made from the HF copy by mlx_lm.convert."""
    from models import convert

    return {
        t: convert.convert("smollm2-135m", t, progress=lambda f, m: None) for t in ("mlx-bf16", "mlx-8bit", "mlx-4bit")
    }


@pytest.fixture(scope="session")
def torch_engine(hf_ref):
    """The HF copy loaded on the torch engine (CPU, bf16, n_ctx 2048). One thread: on this shared 2-core VM,
    torch's two OpenMP threads stall behind other processes (seconds per token), one thread does not."""
    from engines.torch_hf import TorchEngine

    engine = TorchEngine()
    engine.load(hf_ref, LoadConfig(n_ctx=2048, n_threads=1, device="cpu", dtype="bf16"))
    yield engine
    engine.unload()


@pytest.fixture(scope="session")
def mlx_engine(mlx_refs):
    """smollm2-135m@mlx-bf16 loaded on the MLX engine (CPU here; MLX's quantized CPU kernels are slow)."""
    from engines.mlx import MlxEngine

    engine = MlxEngine()
    engine.load(mlx_refs["mlx-bf16"], LoadConfig(n_ctx=2048, n_threads=2, device="cpu"))
    yield engine
    engine.unload()
