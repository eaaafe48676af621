"""The one way a speed run is run and stored: `run_and_store(store, settings, ...)` serves `bench` (the CLI),
Compare's speed test, accelerated-vs-CPU and the depth sweep alike, as `bench.quant.lab.compare_and_store`
does for the quantization lab.

`SpeedSettings` is the one settings record of kind 'speed': the compared (engine, model, load config) arms,
the tests, repetitions and method, and how the arms run — one arm alone; several interleaved repetition by
repetition (A1 B1 A2 B2 …, Compare) or one after another (the depth sweep); model-level loads of a
llama-bench cross-product (`plan`, the CLI's -mmp/--repack/-t/-b lists); a `--sweep` grid; an A/A pair; or
the accelerated device against the CPU. Loading goes through `get_engine` (the pool's `get`, or a tab's
wrapper that shows a conversion's progress), so this module knows no UI.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.speed.ab import ABRow, compare_runs
from bench.speed.interleave import Arm, ab_rows, labels, run_interleaved
from bench.speed.plan import Load
from bench.speed.record import SpeedResult
from bench.speed.runner import SpeedTest, run_speed
from bench.speed.speedup import SpeedupRow, compare_devices
from bench.speed.sweep import Grid, key_label, run_sweep
from core.errors import BadParameter
from core.progress import Progress
from engines.base import Engine, LoadConfig

ORDERS = ("interleaved", "sequential")
"""How several arms run: repetition by repetition (A1 B1 A2 B2 …) or each arm's tests in full, in turn."""


@dataclass(frozen=True)
class SpeedArm:
    """One compared model: an engine, a model (catalog name, path or server model) and its load config."""

    engine: str
    model: str
    config: LoadConfig


@dataclass(frozen=True)
class SpeedSettings:
    """What one speed run was asked for; `record()` is what the store keeps as the run's settings."""

    arms: tuple[SpeedArm, ...]
    tests: tuple[SpeedTest, ...]
    repetitions: int = 5
    warmup: bool = True
    seed: int = 0
    method: str = "auto"
    """auto | llama-bench | stream (bench.speed.runner.run_speed)."""
    order: str = "interleaved"
    """With several arms: ORDERS."""
    plan: tuple[tuple[Load, tuple[SpeedTest, ...]], ...] = ()
    """One arm's model loads, each with its tests (bench.speed.plan.cross_product); () = one load per arm."""
    sweep: Grid | None = None
    """`bench --sweep`: each load's tests are the grid's configurations, run interleaved (bench.speed.sweep)."""
    aa: bool = False
    """Run the tests a second time on the same loaded model and compare (the noise floor, stored as A2)."""
    device: str = ""
    """Accelerated vs CPU: the accelerated device ('metal', 'cuda', 'mps') the one arm is compared on."""
    timeout_s: float | None = None
    """Idle deadline of each loaded engine (seconds), where it has one; None: the engine's default."""

    def check(self) -> SpeedSettings:
        """BadParameter for what cannot run, before any load."""
        if not self.arms:
            raise BadParameter("nothing to measure: pick at least one model")
        if not self.tests:
            raise BadParameter("no test to run: give a prompt (pp) or generation (tg) length above 0")
        if not 1 <= self.repetitions <= 1000:
            raise BadParameter(f"repetitions must be between 1 and 1000, got {self.repetitions}")
        if self.order not in ORDERS:
            raise BadParameter(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if (self.plan or self.sweep or self.aa or self.device) and len(self.arms) != 1:
            raise BadParameter("load plans, sweeps, A/A runs and accelerated-vs-CPU take one model")
        if self.timeout_s is not None and not 0 < self.timeout_s <= 86_400:
            raise BadParameter(f"--timeout must be between 0 and 86400 seconds, got {self.timeout_s}")
        return self

    def record(self) -> dict:
        """The run's stored settings: the same keys whoever started it."""
        depths = sorted({t.n_depth for t in self.tests})
        out = {
            "engine": ", ".join(dict.fromkeys(a.engine for a in self.arms)),
            "model": ", ".join(dict.fromkeys(a.model for a in self.arms)),
            "pairs": [[a.engine, a.model] for a in self.arms],
            "tests": [t.name for t in self.tests],
            "depths": depths,
            "repetitions": self.repetitions,
            "warmup": self.warmup,
            "seed": self.seed,
            "method": self.method,
            "config": dataclasses.asdict(self.arms[0].config),
        }
        if len(self.arms) > 1:
            out["order"] = self.order
            if self.order == "interleaved":
                out["interleaved"] = {
                    label: f"{a.model} on {a.engine}"
                    for label, a in zip(labels(len(self.arms)), self.arms, strict=True)
                }
        if self.sweep is not None:
            out["sweep"] = {"grid": self.sweep.describe(), "default": key_label(self.sweep.default)}
        if self.aa:
            out["aa"] = "A1"
        if self.device:
            out["speedup"] = self.arms[0].engine
            out["device"] = self.device
        return out


@dataclass(frozen=True)
class SpeedReport:
    """A stored speed run: its id, its rows, and what was derived from them."""

    run_id: str
    rows: list[SpeedResult]
    settings: dict
    """As stored (SpeedSettings.record, plus what the run added)."""
    ab: list[ABRow] = field(default_factory=list)
    """Interleaved arms (stored as an 'ab' run) or an A/A pair: each arm against the first."""
    ab_run_id: str = ""
    """The 'ab' run of interleaved arms, or the A/A pair's second ('A2') speed run."""
    speedup: list[SpeedupRow] = field(default_factory=list)
    """Accelerated vs CPU: one row per test (derived ratio)."""


def _set_timeout(engine: Engine, timeout_s: float | None) -> None:
    if timeout_s is not None and hasattr(engine, "idle_timeout_s"):
        engine.idle_timeout_s = float(timeout_s)


def run_and_store(
    store,
    settings: SpeedSettings,
    *,
    hardware,
    get_engine: Callable[[str, str, LoadConfig], Engine],
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    loaded: Callable[[], int] | None = None,
) -> SpeedReport:
    """Run `settings` and store it as one 'speed' run (failed or cancelled runs are stored with their status
    and the error goes on to the caller). `get_engine(engine, model, config)` loads or reuses a model; the
    models stay loaded (the caller unloads them). `loaded()`: how many models are loaded now (the pool's), so
    several arms' rows count every other resident model; without it, the other arms."""
    settings.check()
    report = progress or (lambda fraction, message: None)
    kw = dict(repetitions=settings.repetitions, warmup=settings.warmup, seed=settings.seed, method=settings.method)
    speedup: list[SpeedupRow] = []
    last: tuple[Engine, LoadConfig] | None = None
    with store.recording("speed", settings.record(), hardware) as run:
        arm = settings.arms[0]
        if settings.device:
            speedup, rows = compare_devices(
                lambda cfg: get_engine(arm.engine, arm.model, cfg),
                arm.engine,
                settings.device,
                list(settings.tests),
                config=arm.config,
                repetitions=settings.repetitions,
                progress=report,
                cancel=cancel,
            )
        elif settings.plan or settings.sweep is not None:
            rows = []
            for load, load_tests in settings.plan or ((Load(), settings.tests),):
                config = load.config(arm.config)
                engine = get_engine(arm.engine, arm.model, config)
                _set_timeout(engine, settings.timeout_s)
                runner = run_speed if settings.sweep is None else run_sweep  # a sweep interleaves its configurations
                rows += runner(engine, load_tests, config=config, progress=report, cancel=cancel, **kw)
                last = engine, config
        else:
            rows, last = _run_arms(settings, get_engine, report, cancel, kw, loaded)
        run.rows = rows
    ab, ab_run_id = [], ""
    if settings.aa and last is not None:
        engine, config = last
        again = run_speed(engine, settings.tests, config=config, **{**kw, "warmup": False})
        with store.recording("speed", {**run.settings, "aa": "A2"}, hardware) as second:
            second.rows = again
        ab, ab_run_id = compare_runs(rows, again, "A1", "A2", order="A1 then A2, same loaded model"), second.run_id
    elif len(settings.arms) > 1 and settings.order == "interleaved":
        ab = ab_rows(rows)
        if ab:
            receipt = hardware if isinstance(hardware, dict) else dataclasses.asdict(hardware)
            ab_run_id = store.save_run("ab", ab, settings={**run.settings, "speed_run": run.run_id}, hardware=receipt)
    return SpeedReport(run.run_id, rows, run.settings, ab=ab, ab_run_id=ab_run_id, speedup=speedup)


def _run_arms(
    settings: SpeedSettings,
    get_engine: Callable[[str, str, LoadConfig], Engine],
    report: Progress,
    cancel: threading.Event | None,
    kw: dict,
    loaded: Callable[[], int] | None,
) -> tuple[list[SpeedResult], tuple[Engine, LoadConfig]]:
    """One arm alone; several interleaved (all loaded first: each runs with the others resident, a contended
    run its rows flag); or several one after another (each loaded just before its turn)."""
    n = len(settings.arms)

    def load(k: int, arm: SpeedArm) -> Engine:
        report(k / n, f"loading {arm.model} on {arm.engine}")
        engine = get_engine(arm.engine, arm.model, arm.config)
        _set_timeout(engine, settings.timeout_s)
        return engine

    def resident() -> int:
        return loaded() - 1 if loaded is not None else n - 1

    if n == 1:
        engine, config = load(0, settings.arms[0]), settings.arms[0].config
        return run_speed(engine, settings.tests, config=config, progress=report, cancel=cancel, **kw), (engine, config)
    if settings.order == "interleaved":
        engines = [load(k, arm) for k, arm in enumerate(settings.arms)]
        others = resident()
        arms = [
            Arm(label, engine, arm.config, others_resident=others)
            for label, engine, arm in zip(labels(n), engines, settings.arms, strict=True)
        ]
        rows = run_interleaved(arms, settings.tests, progress=report, cancel=cancel, **kw)
        return rows, (engines[-1], settings.arms[-1].config)
    rows: list[SpeedResult] = []
    for k, arm in enumerate(settings.arms):
        engine = load(k, arm)

        def each(fraction: float, message: str, k: int = k, label: str = f"{arm.model} on {arm.engine}") -> None:
            report((k + fraction) / n, f"{label}: {message}")

        rows += run_speed(
            engine, settings.tests, config=arm.config, progress=each, cancel=cancel, others_resident=resident(), **kw
        )
    return rows, (engine, arm.config)


def arms_of(pairs: Sequence[tuple[str, str]], config_of: Callable[[str], LoadConfig]) -> tuple[SpeedArm, ...]:
    """SpeedArms from (engine, model) pairs, each engine's load config from `config_of(engine)`."""
    return tuple(SpeedArm(engine, model.strip(), config_of(engine)) for engine, model in pairs)
