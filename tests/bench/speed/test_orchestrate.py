"""bench.speed.orchestrate: the one run-and-store path of a speed run, on a scripted engine and a real store.

The scripted engine replays queued statistics (the runner's arithmetic and the run's bookkeeping only);
the real engines run this same path in the CLI and dashboard tests.
"""

from __future__ import annotations

import json
import threading

import pytest

from bench.results.store import ResultStore
from bench.speed.orchestrate import SpeedArm, SpeedSettings, run_and_store
from bench.speed.record import SpeedResult
from bench.speed.runner import plan_tests
from core.errors import BadParameter, Cancelled
from engines.base import LoadConfig
from tests.bench.speed.test_runner import ScriptedEngine

HARDWARE = {"chip": "test CPU", "ram_bytes": 8 * 2**30}
CONFIG = LoadConfig(n_ctx=512, n_threads=1)


def engines_for(tps: dict[str, list[float]]):
    """get_engine over scripted engines, one per model, and the log of loads."""
    made, loads = {}, []

    def get_engine(engine: str, model: str, config: LoadConfig):
        loads.append((engine, model))
        if model not in made:
            made[model] = ScriptedEngine(tps[model])
        return made[model]

    return get_engine, loads


def test_one_arm_is_stored_as_one_speed_run_that_reads_back_as_records(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    get_engine, loads = engines_for({"m": [100.0] * 10})
    settings = SpeedSettings(arms=(SpeedArm("scripted", "m", CONFIG),), tests=tuple(plan_tests([], [8])), repetitions=3)
    report = run_and_store(store, settings, hardware=HARDWARE, get_engine=get_engine)
    assert loads == [("scripted", "m")] and [r.test for r in report.rows] == ["tg8"]
    (run,) = store.runs("speed")
    assert run["run_id"] == report.run_id and run["status"] == "ok"
    stored = json.loads(run["settings_json"])
    assert stored["engine"] == "scripted" and stored["model"] == "m" and stored["tests"] == ["tg8"]
    assert stored["pairs"] == [["scripted", "m"]] and stored["repetitions"] == 3 and stored["depths"] == [0]
    # the stored row comes back as the record it was
    (row,) = store.rows("speed", report.run_id)
    assert SpeedResult.from_row(row) == report.rows[0]
    assert report.ab == [] and report.speedup == []


def test_two_arms_interleave_and_store_their_ab_comparison(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    get_engine, _ = engines_for({"a": [100.0] * 10, "b": [50.0] * 10})
    arms = (SpeedArm("scripted", "a", CONFIG), SpeedArm("scripted", "b", CONFIG))
    settings = SpeedSettings(arms=arms, tests=tuple(plan_tests([], [8])), repetitions=2)
    report = run_and_store(store, settings, hardware=HARDWARE, get_engine=get_engine, loaded=lambda: 2)
    assert [r.arm for r in report.rows] == ["A", "B"] and report.rows[0].run_order == "A1 B1 A2 B2"
    assert all(r.contended for r in report.rows)  # the other arm stayed loaded beside each
    assert report.settings["interleaved"] == {"A": "a on scripted", "B": "b on scripted"}
    assert report.settings["order"] == "interleaved"
    (ab,) = report.ab
    assert ab.a_avg_ts == pytest.approx(100.0, rel=0.05) and ab.b_avg_ts == pytest.approx(50.0, rel=0.05)
    (ab_run,) = store.runs("ab")
    assert ab_run["run_id"] == report.ab_run_id


def test_sequential_arms_run_one_after_another(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    get_engine, loads = engines_for({"a": [100.0] * 10, "b": [50.0] * 10})
    arms = (SpeedArm("scripted", "a", CONFIG), SpeedArm("scripted", "b", CONFIG))
    settings = SpeedSettings(arms=arms, tests=tuple(plan_tests([], [8])), repetitions=2, order="sequential")
    report = run_and_store(store, settings, hardware=HARDWARE, get_engine=get_engine)
    assert [r.model for r in report.rows] == ["m", "m"] and [r.arm for r in report.rows] == ["", ""]
    assert [r.avg_ts for r in report.rows] == [pytest.approx(100.0, rel=0.05), pytest.approx(50.0, rel=0.05)]
    assert loads == [("scripted", "a"), ("scripted", "b")] and store.runs("ab") == []


def test_aa_stores_a_second_run_and_compares(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    get_engine, _ = engines_for({"m": [100.0] * 20})
    settings = SpeedSettings(arms=(SpeedArm("scripted", "m", CONFIG),), tests=tuple(plan_tests([], [8])), aa=True)
    report = run_and_store(store, settings, hardware=HARDWARE, get_engine=get_engine)
    runs = {r["run_id"]: r for r in store.runs("speed")}
    assert set(runs) == {report.run_id, report.ab_run_id}
    assert [a.a_label + a.b_label for a in report.ab] == ["A1A2"]


def test_bad_settings_fail_before_any_load_and_a_cancel_is_stored_as_cancelled(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    get_engine, loads = engines_for({"m": [100.0] * 10})
    arm = SpeedArm("scripted", "m", CONFIG)
    with pytest.raises(BadParameter, match="repetitions"):
        run_and_store(store, SpeedSettings(arms=(arm,), tests=tuple(plan_tests([], [8])), repetitions=0),
                      hardware=HARDWARE, get_engine=get_engine)  # fmt: skip
    with pytest.raises(BadParameter, match="at least one model"):
        run_and_store(store, SpeedSettings(arms=(), tests=()), hardware=HARDWARE, get_engine=get_engine)
    assert loads == [] and store.runs("speed") == []
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        run_and_store(store, SpeedSettings(arms=(arm,), tests=tuple(plan_tests([], [8]))), hardware=HARDWARE,
                      get_engine=get_engine, cancel=cancel)  # fmt: skip
    (run,) = store.runs("speed")
    assert run["status"] == "cancelled" and store.rows("speed", run["run_id"]) == []
