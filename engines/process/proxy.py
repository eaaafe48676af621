"""Proxies that run an engine in its own worker process (engines.process.worker) behind the same protocol.

`WorkerEngine("llamacpp")` is an `Engine`: load, stream, logits, tokenize, info and unload go to a
spawned worker that holds the model; resolving names and listing models stay here (they import no
engine library). The parent measures what the user sees — time to first token, gaps, wall clock —
from the moment each chunk arrives; the worker measures what only it can see (the library's counters
and its own memory). A worker that dies (signal, exit code, out-of-memory kill), stops answering
(no heartbeat for LIVENESS_S) or stops producing tokens (the idle deadline) raises EngineCrashed
with the signal and the last lines it printed, and the next request starts a fresh worker. Stop is
honoured within about a second even when the library or the server sends nothing: the stream
returns within CANCEL_GRACE_S, the worker is told to cancel and finishes the request in the background
(engines.process.streams.drain: killed only if it is still busy after DRAIN_S). `WorkerObject` does the same
for any other class (the embedder).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from core.errors import BadParameter
from engines.base import Chunk, Engine, GenerationParams, LoadConfig, ModelInfo, ModelRef, Prompt
from engines.process.streams import (
    CANCEL_GRACE_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_TOTAL_TIMEOUT_S,
    _replace,
    guarded_stream,
)
from engines.process.supervisor import STARTUP_TIMEOUT_S, Worker
from engines.process.worker import CANCEL
from engines.registry import EMBEDDERS, ENGINES, engine_class


class WorkerEngine(Engine):
    """An engine whose model lives in a worker process; same protocol as the engine itself."""

    runs_in_worker = True
    """Every load imports the engine's library anew, in its own process (the memory guard counts it)."""

    def __init__(
        self,
        engine: str,
        limits: dict | None = None,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S,
    ) -> None:
        self._cls = engine_class(engine)
        self.name = self._cls.name
        self.label = self._cls.label
        self.formats = self._cls.formats
        self.modules = self._cls.modules
        self._local = self._cls()
        self._target = ENGINES[engine]
        self.limits = limits
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s
        self._worker: Worker | None = None
        self._ref: ModelRef | None = None
        self._config: LoadConfig | None = None
        self._info: ModelInfo | None = None
        self._unreported_load_s = 0.0
        self._lock = threading.Lock()
        self.restarts = 0

    # --- what stays in this process ---------------------------------------------------------------

    def availability(self) -> tuple[bool, str]:  # type: ignore[override]
        return self._cls.availability()

    def resolve(self, model: str) -> ModelRef:
        return self._local.resolve(model)

    def list_models(self, config: LoadConfig | None = None) -> list[str]:
        return self._local.list_models(config)

    @property
    def pid(self) -> int | None:
        """The worker's process id, while one runs."""
        return self._worker.pid if self._worker and self._worker.alive() else None

    @property
    def log_path(self) -> Path | None:
        return self._worker.log_path if self._worker else None

    # --- what goes to the worker ------------------------------------------------------------------

    def load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        with self._lock:
            return self._load(model, config)

    def _load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        self._stop_worker()
        t0 = time.perf_counter()
        label = f"{self._cls.label or self.name} · {model.name}"
        self._worker = Worker(self._target, label, self.limits)
        try:
            info = self._worker.call("call", ("load", (model, config), {}), f"loading {model.name}", STARTUP_TIMEOUT_S)
        except BaseException:
            self._stop_worker()
            raise
        load_s = time.perf_counter() - t0
        self._ref, self._config = model, config
        self.idle_timeout_s = float(config.option("idle_timeout_s", self.idle_timeout_s))
        self._info = _replace(info, load_s=load_s)
        self._unreported_load_s = load_s
        return self._info

    def _ensure_worker(self) -> None:
        """A fresh worker with the same model when the last one died."""
        if self._worker is not None and self._worker.alive():
            return
        if self._ref is None:
            raise BadParameter(f"{self.name}: no model is loaded")
        self.restarts += 1
        self._load(self._ref, self._config)

    def info(self) -> ModelInfo:
        if self._info is None:
            raise BadParameter(f"{self.name}: no model is loaded")
        return self._info

    def unload(self) -> None:
        with self._lock:
            self._stop_worker()
            self._ref = self._config = self._info = None

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def kill_worker(self) -> None:
        """Kill the worker now (the next request starts a fresh one)."""
        if self._worker is not None:
            self._worker.kill()

    def _call(self, method: str, *args, doing: str | None = None, **kwargs):
        """`method` on the worker's engine. A `cancel` event among the keyword arguments stays here: the
        engine gets the worker's own event in its place, set when this one is (Worker.call)."""
        cancel = kwargs.pop("cancel", None)
        if cancel is not None:
            kwargs["cancel"] = CANCEL
        with self._lock:
            self._ensure_worker()
            return self._worker.call(
                "call",
                (method, args, kwargs),
                doing or f"running {method} on {self._ref.name}",
                self.total_timeout_s,
                cancel=cancel,
            )

    def tokenize(self, text: str) -> list[int]:
        return self._call("tokenize", text)

    def logits(self, tokens, cancel: threading.Event | None = None):
        tokens = [int(t) for t in tokens]
        return self._call("logits", tokens, cancel=cancel, doing=f"computing logits of {len(tokens)} tokens")

    def synthetic_prompt(self, n_tokens: int, seed: int = 0) -> Prompt:
        return self._call("synthetic_prompt", n_tokens, seed)

    def memory(self) -> dict | None:
        """The worker's own memory now, its peak during the current request and the engine library's
        counters (engines.process.worker.MemorySampler); None when no worker runs. Answered while it streams."""
        worker = self._worker
        if worker is None or not worker.alive():
            return None
        return worker.call("memory", None, "reading its memory", 10)

    def __getattr__(self, name: str):
        """Other public attributes of the engine (n_threads, repack, device_reason, ...) come from the worker."""
        if name.startswith("_") or self.__dict__.get("_worker") is None:
            raise AttributeError(name)
        with self._lock:
            self._ensure_worker()
            kind, value = self._worker.call("getattr", name, f"reading {name}", 30)
        if kind == "callable":
            return lambda *args, **kwargs: self._call(name, *args, **kwargs)
        return value

    def stream(
        self, prompt: Prompt, params: GenerationParams, cancel: threading.Event | None = None
    ) -> Iterator[Chunk]:
        from engines.prompts import check_prompt

        check_prompt(prompt)
        params.validate()
        with self._lock:
            self._ensure_worker()
            load_s, self._unreported_load_s = self._unreported_load_s, 0.0
            worker = self._worker
            rid, box = worker.send("stream", ("stream", (prompt, params, CANCEL), {}))
            source = _WorkerSource(worker, rid, box)
            yield from guarded_stream(
                source, f"{self.label} · {self._ref.name}", cancel, self.idle_timeout_s, self.total_timeout_s, load_s
            )


class _WorkerSource:
    """One streamed request in a worker process."""

    grace_s = CANCEL_GRACE_S
    """A local engine stops at its next token: worth a moment's wait to keep its model loaded."""

    def __init__(self, worker: Worker, rid: int, box: queue.Queue) -> None:
        self.worker, self.rid, self.box = worker, rid, box
        self.pid = worker.pid

    def next(self, wait_s: float, doing: str):
        return self.worker.next(self.box, wait_s, doing)

    def cancel(self) -> None:
        self.worker.cancel(self.rid)

    def kill(self) -> None:
        self.worker.kill()

    def alive(self) -> bool:
        return self.worker.alive()

    def done(self) -> None:
        self.worker.done(self.rid)


class WorkerObject:
    """Any class by dotted path in a worker process: method calls are forwarded (the embedder)."""

    def __init__(self, target: str, label: str, limits: dict | None = None) -> None:
        self._target, self._label, self._limits = target, label, limits
        self._worker: Worker | None = None
        self._lock = threading.Lock()
        self._methods: set[str] = set()  # names the worker said are methods: later calls skip that round trip

    @classmethod
    def embedder(cls, name: str = "sentence-transformers", limits: dict | None = None) -> WorkerObject:
        return cls(EMBEDDERS[name], name, limits)

    def _ensure(self) -> Worker:
        if self._worker is None or not self._worker.alive():
            self._worker = Worker(self._target, self._label, self._limits)
        return self._worker

    @property
    def pid(self) -> int | None:
        return self._worker.pid if self._worker and self._worker.alive() else None

    def call(self, method: str, *args, **kwargs):
        with self._lock:
            return self._ensure().call("call", (method, args, kwargs), f"running {method}", DEFAULT_TOTAL_TIMEOUT_S)

    def memory(self) -> dict:
        with self._lock:
            return self._ensure().call("memory", None, "reading its memory", 30)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._methods:
            with self._lock:
                kind, value = self._ensure().call("getattr", name, f"reading {name}", 30)
            if kind != "callable":
                return value
            self._methods.add(name)
        return lambda *args, **kwargs: self.call(name, *args, **kwargs)

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None
