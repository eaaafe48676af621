"""The load guard on real loads of the bundled model: it refuses with the numbers, the override
loads anyway, and the estimate it uses matches what a fresh process really takes."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import InsufficientMemory
from engines.base import GenerationParams, LoadConfig
from engines.process.pool import EnginePool
from planning.estimate import estimate
from planning.guard import check_load, estimate_for_load, guarded_pool
from planning.specs import spec_from_gguf

ROOT = Path(__file__).resolve().parents[2]
GiB, MiB = 2**30, 2**20
CONFIG = LoadConfig(n_ctx=2048, n_threads=2)


def test_the_guarded_pool_asks_the_planner_and_a_bare_pool_asks_nobody():
    assert guarded_pool().guard is check_load
    assert EnginePool().guard is None


def test_guard_refuses_a_load_that_cannot_fit_and_the_override_loads_it(smollm2_ref):
    low = functools.partial(check_load, available_bytes=600 * MiB, total_bytes=24 * GiB)
    pool = EnginePool(max_loaded=1, guard=low)
    with pytest.raises(InsufficientMemory) as err:
        pool.get("llamacpp", "smollm2-135m", CONFIG)
    message = str(err.value)
    assert "smollm2-135m on llamacpp at n_ctx 2048 needs about" in message
    assert "600.0 MiB" in message and "1.20 GiB" in message  # available, and the 5 %-of-24-GiB margin
    assert "kv cache 45.0 MiB" in message and "--allow-oversize" in message
    assert pool.loaded() == []
    # the user's explicit override: the same pool, the same injected figure, a real load
    engine = pool.get("llamacpp", "smollm2-135m", LoadConfig(n_ctx=2048, n_threads=2, allow_oversize=True))
    text, stats = engine.generate("The capital of France is", GenerationParams(max_tokens=4))
    assert stats.gen_tokens > 0 and text
    assert (
        check_load(
            "llamacpp",
            smollm2_ref,
            LoadConfig(n_ctx=2048, allow_oversize=True),
            available_bytes=1,
            total_bytes=24 * GiB,
        )
        is None
    )
    pool.unload_all()


def test_guard_lets_a_load_that_fits_through(smollm2_ref):
    est = check_load("llamacpp", smollm2_ref, CONFIG, available_bytes=4 * GiB, total_bytes=24 * GiB)
    assert est.n_ctx == 2048 and 200 * MiB < est.total_bytes < 400 * MiB
    pool = EnginePool(max_loaded=1, guard=functools.partial(check_load, available_bytes=4 * GiB, total_bytes=24 * GiB))
    engine = pool.get("llamacpp", "smollm2-135m", CONFIG)
    assert engine.info().n_ctx == 2048
    pool.unload_all()


def test_server_models_are_not_guarded(smollm2_ref):
    from models.ref import ModelRef

    remote = ModelRef("smollm2:135m", None, "remote")
    assert check_load("ollama", remote, CONFIG, available_bytes=1, total_bytes=GiB) is None


MEASURE = """
import json, sys, psutil
sys.path.insert(0, sys.argv[1])
from engines.base import LoadConfig
from models.catalog import resolve_model
from engines.llamacpp import LlamaCppEngine
import llama_cpp  # the library import is not the model's memory
proc = psutil.Process()
ref = resolve_model("smollm2-135m")
engine = LlamaCppEngine()
before = proc.memory_info().rss
engine.load(ref, LoadConfig(n_ctx=int(sys.argv[2]), n_threads=2))
print(json.dumps({"rss_increase_bytes": proc.memory_info().rss - before}))
"""


@pytest.mark.parametrize("n_ctx", [2048, 8192])
def test_estimate_matches_the_measured_rss_increase_of_a_fresh_process(smollm2_ref, n_ctx):
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(ROOT), str(n_ctx)], capture_output=True, text=True, timeout=180, check=True
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])["rss_increase_bytes"]
    est = estimate(spec_from_gguf(smollm2_ref.path), None, n_ctx, cpu_only=True)
    assert est.resident_bytes == pytest.approx(measured, rel=0.15)
    assert est.total_bytes >= measured  # the planning figure (with the compute reserve) is an upper bound
    guarded = estimate_for_load("llamacpp", smollm2_ref, LoadConfig(n_ctx=n_ctx, n_threads=2))
    assert guarded.total_bytes >= est.total_bytes


def test_library_import_costs_are_keyed_by_registered_engine_names(smollm2_ref, monkeypatch):
    from engines.registry import ENGINES
    from planning.guard import LIBRARY_IMPORT_BYTES

    assert set(LIBRARY_IMPORT_BYTES) <= set(ENGINES)
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as in a process that has not imported torch yet
    est = estimate_for_load("torch", smollm2_ref, CONFIG)
    assert any("for importing torch" in note for note in est.notes)
    assert est.overhead_bytes >= LIBRARY_IMPORT_BYTES["torch"][1]
