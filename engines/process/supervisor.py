"""The parent's side of a worker process: spawn it, read everything it sends, notice when it dies.

`Worker` starts one spawned process hosting one object (engines.process.worker), sends it requests over a
pipe and keeps a reader thread that files every reply, chunk and heartbeat as it arrives, so a
worker never waits for a slow consumer. A worker that exits or is killed (signal, abort,
out-of-memory kill) or sends no heartbeat for LIVENESS_S becomes an EngineCrashed that names the
signal, the last line the library printed, what to try and the worker's log file (its stdout and
stderr, native libraries included).

No worker outlives this process: each one watches its parent (engines.process.worker.die_with_parent), and
here every live worker is killed at interpreter exit and on SIGTERM (`end_workers_on_sigterm`, installed by
the first pool or worker made on the main thread). On Linux the parent-death signal follows the thread that
started the process, so every worker is started from one spawner thread that lives as long as this process
(a worker started from a Gradio handler thread would otherwise die with that thread).
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import os
import queue
import signal
import threading
import time
import uuid
import weakref
from pathlib import Path

from core.errors import EngineCrashed
from engines.process.faults import signal_name

LIVENESS_S = 20.0
"""A worker that sends no heartbeat for this long is hung (stopped, deadlocked): it is killed."""
STARTUP_TIMEOUT_S = 600.0
"""A load (start-up, canaries, reading the weights) that has not answered in 10 minutes is given up."""
DEATH_WAIT_S = 10.0
"""How long a death's message waits for the exit status (the signal it names) after the pipe closed."""
LOG_LINES = 50
"""Lines of each worker's output kept for messages and the log."""

_DEAD = object()
_request_ids = itertools.count(1)
_live: weakref.WeakSet[Worker] = weakref.WeakSet()
"""Every worker started here and not closed yet: what `end_all` kills."""


def log_dir() -> Path:
    from core.paths import home

    path = home() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Worker:
    """One spawned process hosting one object, and the thread that reads everything it sends."""

    def __init__(self, target: str, label: str, limits: dict | None = None) -> None:
        self.label = label
        ctx = multiprocessing.get_context("spawn")
        self.log_path = log_dir() / f"worker-{label.replace('/', '_').replace(' ', '_')}-{uuid.uuid4().hex[:8]}.log"
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_child_main,
            args=(child, target, str(self.log_path), limits, os.getpid()),
            name=f"localbench {label}",
        )
        self.proc.daemon = True
        end_workers_on_sigterm()
        t0 = time.perf_counter()
        _spawn(self.proc)
        _live.add(self)
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
                raise self.death_error(doing) from None
            if time.monotonic() - self.last_heard > LIVENESS_S:
                self.kill()
                raise self.hung_error(doing) from None
            return None
        if kind is _DEAD:
            raise self.death_error(doing)
        return kind, payload, t

    def call(self, op: str, payload, doing: str, timeout_s: float | None = None, cancel=None):
        """Send a request and wait for its answer. `cancel` (a threading.Event): once set, the worker is told
        to cancel the request (its own event, see engines.process.worker) and the call waits for its answer, which is
        Cancelled where the request looks at its event."""
        rid, box = self.send(op, payload)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        told = False
        try:
            while True:
                if cancel is not None and not told and cancel.is_set():
                    self.cancel(rid)
                    told = True
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
        if self.proc.exitcode is None:  # its pipe closed first; on a loaded machine the exit status lags
            self.proc.join(timeout=DEATH_WAIT_S)
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
        _live.discard(self)

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
        _live.discard(self)
        try:
            self._conn.close()
        except OSError:
            pass
        if self.proc.exitcode == 0:
            self.log_path.unlink(missing_ok=True)


def end_all() -> None:
    """SIGKILL every live worker now (interpreter exit, SIGTERM): a model holds nothing a clean exit must save."""
    for worker in list(_live):
        try:
            if worker.proc.is_alive():
                worker.proc.kill()
        except (OSError, ValueError, AttributeError):  # already reaped, or never started
            pass
        worker.dead = True


atexit.register(end_all)

_previous_sigterm: object = None


def end_workers_on_sigterm() -> None:
    """On SIGTERM, kill this process's workers, then go on as before: the handler that was installed, else
    KeyboardInterrupt, so the CLI stores its run as cancelled and the dashboard closes its server. Installed
    once, from the main thread only (Python's rule); a SIGTERM that was ignored stays ignored."""
    global _previous_sigterm
    if _previous_sigterm is not None or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN or previous is None:  # ignored, or set outside Python: leave it
        return
    _previous_sigterm = previous
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum, frame) -> None:
    end_all()
    if callable(_previous_sigterm):
        _previous_sigterm(signum, frame)
        return
    raise KeyboardInterrupt("terminated (SIGTERM)")


_spawn_queue: queue.Queue = queue.Queue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawn(proc) -> None:
    """Start `proc` from the one spawner thread (see the module's docstring), waiting until it is started."""
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawn_loop, name="worker-spawner", daemon=True)
            _spawner.start()
    done: queue.Queue = queue.Queue(maxsize=1)
    _spawn_queue.put((proc, done))
    err = done.get()
    if err is not None:
        raise err


def _spawn_loop() -> None:
    while True:
        proc, done = _spawn_queue.get()
        try:
            _start_without_main(proc)
        except BaseException as err:  # goes back to the caller's thread
            done.put(err)
        else:
            done.put(None)


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


def _child_main(conn, target, log_path, limits, parent_pid=None):
    from engines.process.worker import main

    main(conn, target, log_path, limits, parent_pid)


def _hint(code: int | None) -> str:
    if code == -9:
        return "try a smaller model or quantization, a shorter context, or close other models"
    if code in (-11, -6, -7, -4):
        return "a native fault in the engine library: try another quantization or engine, or report it upstream"
    return "the next request starts a fresh worker"
