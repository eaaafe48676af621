"""bench.speed.interleave: A/B repetitions interleaved (A1 B1 A2 B2 …), merged per arm with every raw sample, and each
difference tested on the raw samples; real llama.cpp runs of the bundled models."""

from __future__ import annotations

import math
import threading

import pytest

from bench.speed.interleave import Arm, ab_rows, labels, run_interleaved, turn_order
from bench.speed.runner import plan_tests
from core.errors import BadParameter
from engines.base import LoadConfig


def test_turn_order_and_labels():
    assert labels(3) == ["A", "B", "C"]
    assert turn_order(["A", "B"], 3) == ["A1", "B1", "A2", "B2", "A3", "B3"]
    with pytest.raises(BadParameter):
        labels(0)


@pytest.fixture(scope="module")
def gemma_engine():
    from engines.llamacpp import LlamaCppEngine
    from models.catalog import resolve_model

    engine = LlamaCppEngine()
    engine.load(resolve_model("gemma3-270m"), LoadConfig(n_ctx=2048, n_threads=2))
    yield engine
    engine.unload()


def test_interleaved_rows_keep_every_sample_and_the_order(llama_engine, gemma_engine):
    config = LoadConfig(n_ctx=2048, n_threads=2)
    tests = plan_tests([16], [8])
    arms = [Arm("A", llama_engine, config), Arm("B", gemma_engine, config, others_resident=1)]
    rows = run_interleaved(arms, tests, repetitions=3)
    assert [(r.arm, r.test) for r in rows] == [("A", "pp16"), ("A", "tg8"), ("B", "pp16"), ("B", "tg8")]
    assert {r.model for r in rows if r.arm == "A"} == {"smollm2-135m"}
    for r in rows:
        assert r.run_order == "A1 B1 A2 B2 A3 B3" and r.method.startswith("interleaved A1 B1")
        assert r.repetitions == 3 and len(r.samples_ts) == 3 and len(r.samples_ns) == 3
        assert math.isclose(r.avg_ts, sum(r.samples_ts) / 3)
        assert r.bench_method == "llama-bench" and r.warmup_runs == 3  # a fresh context per turn: warm-up each
    assert all(r.contended for r in rows if r.arm == "B")  # another model resident: said, not hidden
    comparison = ab_rows(rows)
    assert [(c.test, c.a_label, c.b_label) for c in comparison] == [("pp16", "A", "B"), ("tg8", "A", "B")]
    for c in comparison:
        assert 0 <= c.p_value <= 1 and c.significant == (c.p_value < 0.05)
        assert c.order == "interleaved A1 B1 A2 B2 A3 B3" and "Welch" in c.method
    a_tg, b_tg = rows[1], rows[3]
    tg = comparison[1]  # the difference is the raw samples' (no sign asserted: a shared CPU may reorder them)
    assert math.isclose(tg.a_avg_ts, a_tg.avg_ts) and math.isclose(tg.b_avg_ts, b_tg.avg_ts)
    assert math.isclose(tg.diff_pct, (b_tg.avg_ts - a_tg.avg_ts) / a_tg.avg_ts * 100)


@pytest.mark.parametrize(
    "kwargs, bench_method, warmups",
    [
        ({"method": "stream"}, "stream", [1, 1]),  # streaming turns warm up once per arm
        # the dashboard passes a Cancel event: llama.cpp still goes through bench_decode (it stops on the event),
        # a fresh context per turn, so a warm-up per turn
        ({"cancel": threading.Event()}, "llama-bench", [2, 2]),
    ],
    ids=["stream", "cancellable"],
)
def test_turns_warm_up_as_their_method_needs(llama_engine, kwargs, bench_method, warmups):
    config = LoadConfig(n_ctx=2048, n_threads=2)
    rows = run_interleaved(
        [Arm("A", llama_engine, config), Arm("B", llama_engine, config)], plan_tests([0], [4]), repetitions=2, **kwargs
    )
    assert [r.warmup_runs for r in rows] == warmups and all(r.bench_method == bench_method for r in rows)
    assert rows[0].run_order == "A1 B1 A2 B2" and len(ab_rows(rows)) == 1
