"""Loaded engines, shared by the UI tabs and the runners.

A model is loaded once per (engine, model, load settings) and reused; the least recently used one is
unloaded when more than `max_loaded` are resident. A guard, when one is given, is asked before every
load and may refuse it with a message that carries the numbers. The pool knows nothing of the memory
planner: whoever builds the pool injects the guard (planning.guard.guarded_pool builds a pool guarded
by the planner's check_load); guard=None loads unchecked. Making a pool on the main thread arms the
supervisor's SIGTERM handler: a terminated CLI or dashboard kills its workers first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from engines.base import Engine, LoadConfig, ModelInfo
from engines.registry import create_engine, engine_class
from models.ref import ModelRef

Factory = Callable[[str], Engine]
"""factory(engine_name) -> an Engine ready to load a model."""


def in_worker(engine_name: str) -> Engine:
    """The default: a local engine runs its model in its own worker process (engines.process.proxy.WorkerEngine);
    a server engine stays here, its streams under the same deadlines and Stop (GuardedEngine)."""
    from engines.process.proxy import WorkerEngine
    from engines.process.streams import GuardedEngine

    if "remote" in engine_class(engine_name).formats:
        return GuardedEngine(create_engine(engine_name))
    return WorkerEngine(engine_name)


def in_process(engine_name: str) -> Engine:
    """The engine in this process (benchmarks of the bare library; tests of the engine itself)."""
    return create_engine(engine_name)


Guard = Callable[[Engine, ModelRef, LoadConfig], None]
"""guard(engine, model, config) raises InsufficientMemory to refuse a load."""


@dataclass(frozen=True)
class PoolKey:
    engine: str
    model: str
    config: LoadConfig

    @property
    def label(self) -> str:
        return f"{self.model} on {self.engine}"


class EnginePool:
    """Engines with a model loaded, least recently used first."""

    def __init__(self, max_loaded: int = 4, guard: Guard | None = None, factory: Factory = in_worker) -> None:
        from engines.process.supervisor import end_workers_on_sigterm

        end_workers_on_sigterm()  # the CLI's and the dashboard's pool is made on the main thread
        self.max_loaded = max_loaded
        self.guard = guard
        self.factory = factory
        self._engines: OrderedDict[PoolKey, Engine] = OrderedDict()
        self._lock = threading.RLock()
        self._loading: dict[PoolKey, threading.Lock] = {}

    def get(self, engine_name: str, model: str, config: LoadConfig) -> Engine:
        """A loaded engine for this model and these settings, loading it if needed.

        Loads of different models run at the same time; two requests for the same one load it once.
        """
        engine_class(engine_name)  # unknown engine → UnknownEngine before any work
        key = PoolKey(engine_name, model, config)
        with self._lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._engines:
                    return self._engines[key]
            engine = self.factory(engine_name)
            ref = engine.resolve(model)
            if self.guard is not None and not config.allow_oversize:
                self.guard(engine, ref, config)
            engine.load(ref, config)
            evicted = []
            with self._lock:
                self._engines[key] = engine
                self._loading.pop(key, None)
                while len(self._engines) > self.max_loaded:
                    evicted.append(self._engines.popitem(last=False)[1])
        for old in evicted:
            old.unload()
        return engine

    def items(self) -> list[tuple[PoolKey, Engine]]:
        with self._lock:
            return list(self._engines.items())

    def loaded(self) -> list[tuple[PoolKey, ModelInfo]]:
        with self._lock:
            return [(k, e.info()) for k, e in self._engines.items()]

    def unload(self, key: PoolKey) -> None:
        with self._lock:
            engine = self._engines.pop(key, None)
        if engine is not None:
            engine.unload()

    def unload_all(self) -> None:
        for key in list(self._engines):
            self.unload(key)
