"""Proxies that run an engine in its own worker process (engines.worker) behind the same protocol.

`RemoteEngine("llamacpp")` is an `Engine`: load, stream, logits, tokenize, info and unload go to a
spawned worker that holds the model; resolving names and listing models stay here (they import no
engine library). The parent measures what the user sees — time to first token, gaps, wall clock —
from the moment each chunk arrives; the worker measures what only it can see (the library's counters
and its own memory). A worker that dies (signal, exit code, out-of-memory kill), stops answering
(no heartbeat for LIVENESS_S) or stops producing tokens (the idle deadline) raises EngineCrashed
with the signal and the last lines it printed, and the next request starts a fresh worker. Stop is
honoured within about a second even when the library or the server sends nothing: the stream
returns, the worker is told to cancel, and a worker that does not finish within CANCEL_GRACE_S is
killed. `RemoteObject` does the same for any other class (the embedder).
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from engines.base import Chunk, Engine, GenerationParams, GenerationStats, LoadConfig, ModelInfo, ModelRef, Prompt
from engines.errors import BadParameter, EngineCrashed
from engines.faults import signal_name
from engines.registry import EMBEDDERS, ENGINES, engine_class
from engines.worker import CANCEL

DEFAULT_IDLE_TIMEOUT_S = 300.0
"""No new token for this long ends a stream: 5 minutes covers a 30k-token prompt pass at 100 t/s.
`bench --timeout` and the Servers tab's field set it per run."""
DEFAULT_TOTAL_TIMEOUT_S = 3600.0
"""No request runs longer than an hour."""
LIVENESS_S = 20.0
"""A worker that sends no heartbeat for this long is hung (stopped, deadlocked): it is killed."""
CANCEL_GRACE_S = 1.0
"""After Stop, the worker has this long to finish before it is killed."""
STARTUP_TIMEOUT_S = 120.0
LOG_LINES = 50
"""Lines of each worker's output kept for messages and the log."""

_DEAD = object()
_request_ids = itertools.count(1)


def log_dir() -> Path:
    from engines.paths import home

    path = home() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Activity:
    """Requests running at once across every worker of this process: a timing run that overlaps
    another request is `contended`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, list[bool]] = {}

    def start(self) -> int:
        rid = next(_request_ids)
        with self._lock:
            flag = [bool(self._active)]
            for other in self._active.values():
                other[0] = True
            self._active[rid] = flag
        return rid

    def end(self, rid: int) -> bool:
        """True when another request ran during this one."""
        with self._lock:
            return self._active.pop(rid, [False])[0]

    def busy(self) -> int:
        with self._lock:
            return len(self._active)


ACTIVITY = Activity()


class Worker:
    """One spawned process hosting one object, and the thread that reads everything it sends."""

    def __init__(self, target: str, label: str, limits: dict | None = None) -> None:
        self.label = label
        ctx = multiprocessing.get_context("spawn")
        self.log_path = log_dir() / f"worker-{label.replace('/', '_').replace(' ', '_')}-{uuid.uuid4().hex[:8]}.log"
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_child_main, args=(child, target, str(self.log_path), limits), name=f"localbench {label}"
        )
        self.proc.daemon = True
        t0 = time.perf_counter()
        _start_without_main(self.proc)
        child.close()
        self.started_s = time.perf_counter() - t0
        self._pending: dict[int, queue.Queue] = {}
        self._send_lock = threading.Lock()
        self.last_heard = time.monotonic()
        self.dead = False
        self._reader = threading.Thread(target=self._read, name=f"worker-reader {label}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def alive(self) -> bool:
        return not self.dead and self.proc.is_alive()

    def _read(self) -> None:
        while True:
            try:
                rid, kind, payload = self._conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an unpicklable reply: the worker is still usable, the request is not
                continue
            self.last_heard = time.monotonic()
            if kind == "beat":
                continue
            box = self._pending.get(rid)
            if box is not None:
                box.put((kind, payload, time.perf_counter()))
        self.dead = True
        self.proc.join(timeout=2)
        for box in list(self._pending.values()):
            box.put((_DEAD, None, time.perf_counter()))

    def send(self, op: str, payload, rid: int | None = None) -> tuple[int, queue.Queue]:
        rid = rid or next(_request_ids)
        box: queue.Queue = queue.Queue()
        self._pending[rid] = box
        try:
            with self._send_lock:
                self._conn.send((rid, op, payload))
        except (OSError, ValueError, BrokenPipeError) as err:
            self._pending.pop(rid, None)
            raise self.death_error(f"sending {op}") from err
        return rid, box

    def cancel(self, rid: int) -> None:
        try:
            with self._send_lock:
                self._conn.send((0, "cancel", rid))
        except (OSError, ValueError):
            pass

    def done(self, rid: int) -> None:
        self._pending.pop(rid, None)

    def next(self, box: queue.Queue, wait_s: float, doing: str):
        """The next (kind, payload, t) from a request's box, or None after `wait_s`; raises on death."""
        try:
            kind, payload, t = box.get(timeout=wait_s)
        except queue.Empty:
            if self.dead or not self.proc.is_alive():
                self.proc.join(timeout=2)
                raise self.death_error(doing) from None
            if time.monotonic() - self.last_heard > LIVENESS_S:
                self.kill()
                raise self.hung_error(doing) from None
            return None
        if kind is _DEAD:
            raise self.death_error(doing)
        return kind, payload, t

    def call(self, op: str, payload, doing: str, timeout_s: float | None = None):
        rid, box = self.send(op, payload)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                got = self.next(box, 0.1, doing)
                if got is None:
                    if deadline is not None and time.monotonic() > deadline:
                        self.kill()
                        raise EngineCrashed(f"{self.label}: no answer while {doing} after {timeout_s:.0f} s")
                    continue
                kind, value, _ = got
                if kind == "error":
                    raise value
                return value
        finally:
            self.done(rid)

    def output_tail(self, n: int = LOG_LINES) -> list[str]:
        """The last lines the worker and its libraries printed."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 64_000))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if line.strip()][-n:]

    def death_error(self, doing: str) -> EngineCrashed:
        code = self.proc.exitcode
        how = "died" if code is None else f"died with {signal_name(code)}"
        if code == -9:
            how += " (killed: out of memory, or by another process)"
        tail = self.output_tail()
        last = f" — last output: {tail[-1][:240]}" if tail else ""
        hint = _hint(code)
        return EngineCrashed(f"{self.label}: the worker {how} while {doing}{last} — {hint} (log: {self.log_path})")

    def hung_error(self, doing: str) -> EngineCrashed:
        return EngineCrashed(
            f"{self.label}: the worker stopped answering while {doing} (no heartbeat for {LIVENESS_S:.0f} s) "
            f"and was killed — the next request starts a fresh one (log: {self.log_path})"
        )

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.dead = True

    def close(self) -> None:
        """Ask the worker to exit (it unloads its model), kill it if it does not; the OS gets its memory back."""
        if self.proc.is_alive():
            try:
                with self._send_lock:
                    self._conn.send((0, "exit", None))
            except (OSError, ValueError):
                pass
            self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.kill()
        self.dead = True
        try:
            self._conn.close()
        except OSError:
            pass
        if self.proc.exitcode == 0:
            self.log_path.unlink(missing_ok=True)


_MAIN_LOCK = threading.Lock()


def _start_without_main(proc) -> None:
    """Start a spawned process without re-running the parent's main script in it.

    multiprocessing's spawn re-imports `__main__` in the child (as `__mp_main__`), which re-runs any
    script that lacks an `if __name__ == "__main__"` guard and costs the dashboard's imports. The
    worker needs nothing from it: while the process starts, `__main__` is a bare module.
    """
    import sys
    import types

    with _MAIN_LOCK:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            proc.start()
        finally:
            sys.modules["__main__"] = main


def _child_main(conn, target, log_path, limits):
    from engines.worker import main

    main(conn, target, log_path, limits)


def _finish_or_kill(source, cancel_sent: bool) -> None:
    """Let a request the caller left end within CANCEL_GRACE_S, else kill its worker."""
    if not cancel_sent:
        source.cancel()
    deadline = time.monotonic() + source.grace_s
    while time.monotonic() < deadline:
        try:
            got = source.next(0.05, "stopping")
        except EngineCrashed:
            return
        if got is not None and got[0] in ("end", "error"):
            return
    source.kill()


def _hint(code: int | None) -> str:
    if code == -9:
        return "try a smaller model or quantization, a shorter context, or close other models"
    if code in (-11, -6, -7, -4):
        return "a native fault in the engine library: try another quantization or engine, or report it upstream"
    return "the next request starts a fresh worker"


def _replace(obj, **changes):
    fields = {f.name for f in dataclasses.fields(obj)}
    return dataclasses.replace(obj, **{k: v for k, v in changes.items() if k in fields})


class RemoteEngine(Engine):
    """An engine whose model lives in a worker process; same protocol as the engine itself."""

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
        except EngineCrashed:
            self._stop_worker()
            raise
        except BaseException:
            self._stop_worker()
            raise
        load_s = time.perf_counter() - t0
        self._ref, self._config = model, config
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
        with self._lock:
            self._ensure_worker()
            return self._worker.call(
                "call", (method, args, kwargs), doing or f"running {method} on {self._ref.name}", self.total_timeout_s
            )

    def tokenize(self, text: str) -> list[int]:
        return self._call("tokenize", text)

    def logits(self, tokens, cancel: threading.Event | None = None):
        tokens = [int(t) for t in tokens]
        return self._call("logits", tokens, CANCEL, doing=f"computing logits of {len(tokens)} tokens")

    def synthetic_prompt(self, n_tokens: int, seed: int = 0) -> Prompt:
        return self._call("synthetic_prompt", n_tokens, seed)

    def memory(self) -> dict | None:
        """The worker's own memory now, its peak during the current request and the engine library's
        counters (engines.worker.MemorySampler); None when no worker runs. Answered while it streams."""
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


class _ThreadSource:
    """An in-process engine's stream (a server client) run on a thread, read like a worker request.

    When the request is stopped or abandoned the engine's cancel event is set; the thread ends at
    the next line the server sends or at the client's read timeout.
    """

    grace_s = 0.1
    """Nothing is lost by leaving a server's stream at once: its thread ends on its own."""

    def __init__(self, engine: Engine, prompt: Prompt, params: GenerationParams) -> None:
        self.box: queue.Queue = queue.Queue()
        self.event = threading.Event()
        self.pid = None
        self._thread = threading.Thread(
            target=self._run, args=(engine, prompt, params), name=f"stream {engine.name}", daemon=True
        )
        self._thread.start()

    def _run(self, engine: Engine, prompt: Prompt, params: GenerationParams) -> None:
        try:
            for item in engine.stream(prompt, params, self.event):
                self.box.put(("item", item, time.perf_counter()))
            self.box.put(("end", None, time.perf_counter()))
        except BaseException as err:  # handed to the reader, which raises it
            self.box.put(("error", err, time.perf_counter()))

    def next(self, wait_s: float, doing: str):
        try:
            return self.box.get(timeout=wait_s)
        except queue.Empty:
            return None

    def cancel(self) -> None:
        self.event.set()

    kill = cancel

    def alive(self) -> bool:
        return self._thread.is_alive()

    def done(self) -> None:
        self.event.set()


def guarded_stream(
    source, label: str, cancel: threading.Event | None, idle_timeout_s: float, total_timeout_s: float, load_s: float
) -> Iterator[Chunk]:
    """Chunks from `source`, timed as they arrive here, under the idle and total deadlines and Stop.

    Stop is checked every 50 ms whether or not anything arrives: the stream ends within
    CANCEL_GRACE_S even when the engine or server sends nothing. Only text counts as progress
    (keep-alive comments and empty lines never reach here as text).
    """
    activity = ACTIVITY.start()
    t0 = time.perf_counter()
    first_s, last_s, gaps, final = None, None, [], None
    cancelled = ended = False
    cancel_at = last_token = time.monotonic()
    try:
        while True:
            if cancel is not None and cancel.is_set() and not cancelled:
                cancelled, cancel_at = True, time.monotonic()
                source.cancel()
            if cancelled and time.monotonic() - cancel_at > source.grace_s:
                source.kill()  # it did not stop in time (a stuck server, a long prompt pass)
                break
            got = source.next(0.05, "generating")
            now = time.monotonic()
            if got is None:
                if not cancelled and now - last_token > idle_timeout_s:
                    source.kill()
                    raise EngineCrashed(
                        f"{label}: no new token for {idle_timeout_s:.0f} s (the idle deadline) — the request was "
                        "stopped; raise it with --timeout SECONDS (Servers tab: idle timeout) if the prompt pass "
                        "is this slow"
                    )
                if time.perf_counter() - t0 > total_timeout_s:
                    source.kill()
                    raise EngineCrashed(f"{label}: over {total_timeout_s:.0f} s in total — the request was stopped")
                continue
            kind, item, t_recv = got
            if kind == "error":
                ended = True
                raise item
            if kind == "end":
                ended = True
                break
            t = t_recv - t0
            if item.text:
                last_token = now
                if first_s is None:
                    first_s = t
                else:
                    gaps.append(t - last_s)
                last_s = t
            if item.stats is not None:
                final = item.stats
                continue
            yield dataclasses.replace(item, t_s=t)
    finally:
        if not ended and source.alive():  # abandoned or stopped: the worker must be free for the next request
            _finish_or_kill(source, cancelled)
        source.done()
        contended = ACTIVITY.end(activity)
    wall_s = time.perf_counter() - t0
    if final is None:  # stopped before the engine reported: what was seen here
        final = GenerationStats(
            ttft_s=first_s if first_s is not None else wall_s,
            prompt_tokens=0,
            prompt_s=0.0,
            prompt_tps=0.0,
            gen_tokens=0,
            gen_s=0.0,
            gen_tps=0.0,
            load_s=0.0,
            wall_s=wall_s,
            peak_rss_bytes=0,
            stop_reason="cancelled",
            source="stopped before the engine reported its counters",
        )
    stats = _replace(
        final,
        ttft_s=first_s if first_s is not None else final.ttft_s,
        wall_s=wall_s,
        itl_s=tuple(gaps) if gaps else final.itl_s,
        load_s=load_s or final.load_s,
        stop_reason="cancelled" if cancelled else final.stop_reason,
        engine_ttft_s=final.ttft_s,
        contended=contended,
        worker_pid=source.pid,
    )
    yield Chunk(text="", t_s=wall_s, n_tokens=0, stats=stats)


class GuardedEngine(Engine):
    """A server engine (Ollama, OpenAI-compatible) in this process, its streams under the same
    deadlines and Stop as a worker's: the server is the model's process, so nothing native runs here
    and requests may run concurrently (the serving benchmark)."""

    def __init__(
        self,
        engine: Engine,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S,
    ) -> None:
        self._inner = engine
        self.name, self.label, self.formats, self.modules = engine.name, engine.label, engine.formats, engine.modules
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s

    def availability(self) -> tuple[bool, str]:  # type: ignore[override]
        return type(self._inner).availability()

    def resolve(self, model: str) -> ModelRef:
        return self._inner.resolve(model)

    def list_models(self, config: LoadConfig | None = None) -> list[str]:
        return self._inner.list_models(config)

    def load(self, model: ModelRef, config: LoadConfig) -> ModelInfo:
        return self._inner.load(model, config)

    def info(self) -> ModelInfo:
        return self._inner.info()

    def unload(self) -> None:
        self._inner.unload()

    def tokenize(self, text: str) -> list[int]:
        return self._inner.tokenize(text)

    def synthetic_prompt(self, n_tokens: int, seed: int = 0) -> Prompt:
        return self._inner.synthetic_prompt(n_tokens, seed)

    def logits(self, tokens, cancel: threading.Event | None = None):
        return self._inner.logits(tokens, cancel)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.__dict__["_inner"], name)

    def stream(
        self, prompt: Prompt, params: GenerationParams, cancel: threading.Event | None = None
    ) -> Iterator[Chunk]:
        from engines.prompts import check_prompt

        check_prompt(prompt)
        params.validate()
        label = f"{self.label or self.name} · {self._inner.info().name}"
        source = _ThreadSource(self._inner, prompt, params)
        yield from guarded_stream(source, label, cancel, self.idle_timeout_s, self.total_timeout_s, 0.0)


class RemoteObject:
    """Any class by dotted path in a worker process: method calls are forwarded (the embedder)."""

    def __init__(self, target: str, label: str, limits: dict | None = None) -> None:
        self._target, self._label, self._limits = target, label, limits
        self._worker: Worker | None = None
        self._lock = threading.Lock()

    @classmethod
    def embedder(cls, name: str = "sentence-transformers", limits: dict | None = None) -> RemoteObject:
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
        with self._lock:
            kind, value = self._ensure().call("getattr", name, f"reading {name}", 30)
        if kind == "callable":
            return lambda *args, **kwargs: self.call(name, *args, **kwargs)
        return value

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None
