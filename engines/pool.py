"""Loaded engines, shared by the UI tabs and the runners.

A model is loaded once per (engine, model, load settings) and reused; the least recently used one is
unloaded when more than `max_loaded` are resident. A guard, when one is given, is asked before every
load and may refuse it with a message that carries the numbers. The pool knows nothing of the memory
planner: whoever builds the pool injects the guard (planning.guard.guarded_pool builds a pool guarded
by the planner's check_load); guard=None loads unchecked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from engines.base import Engine, LoadConfig, ModelInfo
from engines.registry import create_engine, engine_class
from models.ref import ModelRef

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

    def __init__(self, max_loaded: int = 4, guard: Guard | None = None) -> None:
        self.max_loaded = max_loaded
        self.guard = guard
        self._engines: OrderedDict[PoolKey, Engine] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, engine_name: str, model: str, config: LoadConfig) -> Engine:
        """A loaded engine for this model and these settings, loading it if needed."""
        engine_class(engine_name)  # unknown engine → UnknownEngine before any work
        key = PoolKey(engine_name, model, config)
        with self._lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key]
            engine = create_engine(engine_name)
            ref = engine.resolve(model)
            if self.guard is not None and not config.allow_oversize:
                self.guard(engine, ref, config)
            engine.load(ref, config)
            self._engines[key] = engine
            while len(self._engines) > self.max_loaded:
                _, old = self._engines.popitem(last=False)
                old.unload()
            return engine

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
