"""The worker process: one engine object lives here, driven over a pipe by its proxy (engines.process.proxy).

A loaded model runs in its own process (as Ollama's runners and vLLM's engine core do), so a native
crash, abort, hang or out-of-memory kill in an engine library ends this process and nothing else.
The child builds the object named by a dotted path ('engines.llamacpp:LlamaCppEngine'), then serves
requests one at a time: `call` a method, `stream` a generator method (items are sent as they are
produced, so generation never waits for the reader), `getattr`, and `memory`. A reader thread takes
`cancel` messages while a request runs; a heartbeat tells the parent the process is alive even while
a native call computes. The process's own memory (USS/PSS on Linux, physical footprint on macOS) is
sampled during every request and its peak is attached to the request's statistics: only this process
can see it, and it is this model's memory alone.

A worker never outlives its parent, even in the middle of a native decode call: on Linux the kernel
sends it SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG), and on every platform a watchdog thread
(the parent's pid changed) and the reader (the pipe closed) end the process at once with os._exit, which
works while the main thread computes in C.

Messages are tuples: parent → child `(req_id, op, payload)`, child → parent `(req_id, kind, payload)`
with kind 'ok', 'item', 'end', 'error' or 'beat' (req_id 0).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pickle
import queue
import sys
import threading
import time

CANCEL = "__localbench_cancel_event__"
"""Stands in for a threading.Event argument: the worker passes its own per-request event instead."""

HEARTBEAT_S = 0.5
"""How often the child says it is alive (the parent declares it hung after engines.process.supervisor.LIVENESS_S)."""

SAMPLE_S = 0.2
"""How often the child reads its own RSS while a request runs."""

PRIVATE_EVERY_S = 2.0
"""How often, at most, it reads its private memory (USS / footprint): that walks its page tables."""

WATCHDOG_S = 0.2
"""How often the child checks that its parent is still alive (its parent pid unchanged)."""

PR_SET_PDEATHSIG = 1
"""Linux prctl option: the signal this process gets when its parent dies (<linux/prctl.h>)."""


def main(
    conn, target: str, log_path: str | None = None, limits: dict | None = None, parent_pid: int | None = None
) -> None:
    """Entry point of the spawned worker process; `parent_pid`: the process that owns it (default: the
    parent it has now)."""
    die_with_parent(parent_pid or os.getppid())
    if log_path:
        _redirect_output(log_path)
    _apply_limits(limits or {})
    server = _Server(conn, target, (limits or {}).get("address_space_bytes"))
    server.serve()


def die_with_parent(parent_pid: int) -> None:
    """End this process the moment `parent_pid` dies: the kernel's parent-death signal on Linux, and a
    watchdog thread everywhere (macOS has no pdeathsig). A parent that died before the signal was armed
    is caught by the pid check right after it."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl (another libc): the watchdog still covers it
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCHDOG_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _redirect_output(log_path: str) -> None:
    """Send fds 1 and 2 (Python's and the native libraries' prints) to the worker's log file."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def _apply_limits(limits: dict) -> None:
    """No core file (a native crash in a worker holding a model would write gigabytes into the folder the
    app was started from, and the parent would see the death only once it is written), and the address-space
    cap where one is asked for."""
    try:
        import resource  # POSIX only
    except ImportError:
        return
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    except (ValueError, OSError):
        pass
    cap = limits.get("address_space_bytes")
    if cap:
        resource.setrlimit(resource.RLIMIT_AS, (int(cap), int(cap)))


def construct(target: str):
    """An instance of 'module:Class'."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)()


class MemorySampler:
    """This process's memory, sampled on a thread while a request runs; peaks kept per request.

    RSS is cheap (one counter) and is read every SAMPLE_S. The private figure (USS, or the macOS
    footprint) walks the process's page tables — 10–17 ms in a CUDA process, measured on an H200 host —
    so it is read at most every PRIVATE_EVERY_S, after each load, and when asked (`reading`); nothing
    is read on the request's own path.
    """

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process(os.getpid())
        self._lock = threading.Lock()
        self._active = threading.Event()
        self.peak_private: int | None = None
        self.peak_rss = 0
        self.last_private: int | None = None
        self.private_source = ""
        self._private_at = 0.0
        threading.Thread(target=self._loop, name="memory-sampler", daemon=True).start()

    def start_request(self) -> None:
        with self._lock:
            self.peak_private, self.peak_rss = None, 0
        self._active.set()

    def end_request(self) -> None:
        self._active.clear()

    def _loop(self) -> None:
        while True:
            self._active.wait()
            self.sample(private=time.monotonic() - self._private_at >= PRIVATE_EVERY_S)
            time.sleep(SAMPLE_S)

    def sample(self, private: bool = False) -> dict:
        rss = int(self._proc.memory_info().rss)
        now = {"rss_bytes": rss}
        if private:
            from machine.live_memory import own_memory

            now = own_memory()
            self._private_at = time.monotonic()
        with self._lock:
            self.peak_rss = max(self.peak_rss, rss)
            if now.get("private_bytes") is not None:
                self.last_private, self.private_source = now["private_bytes"], now.get("private_source", "")
                self.peak_private = max(self.peak_private or 0, now["private_bytes"])
        return now

    def peaks(self) -> tuple[int | None, str]:
        """(peak private bytes of this request — else the latest reading —, how it was read)."""
        with self._lock:
            value = self.peak_private if self.peak_private is not None else self.last_private
            return value, f"{self.private_source} (sampled every {PRIVATE_EVERY_S:.0f} s)" if value else ""

    def reading(self) -> dict:
        """Now and peak since the request started, plus the engine library's own counters."""
        from machine.live_memory import accelerator_readings

        now = self.sample(private=True)
        accel, _ = accelerator_readings()
        return {
            **now,
            "peak_private_bytes": self.peak_private,
            "peak_rss_bytes": self.peak_rss or None,
            "accelerators": [dataclasses.asdict(a) for a in accel],
        }


class _Server:
    def __init__(self, conn, target: str, memory_cap: int | None = None) -> None:
        self.conn = conn
        self.memory_cap = memory_cap
        self.target = target
        self.obj = None
        self.send_lock = threading.Lock()
        self.work: queue.Queue = queue.Queue()
        self.cancels: dict[int, threading.Event] = {}
        self.busy = threading.Event()
        self.memory = MemorySampler()

    def send(self, msg) -> None:
        with self.send_lock:
            self.conn.send(msg)

    def serve(self) -> None:
        # The heartbeat (builtins only) runs during the target's import; the reader starts after it. Unpickling
        # a request imports modules, and on its own thread that raced the import: dataclasses peeks at
        # sys.modules["typing"], so a class defined while the reader was importing typing failed with
        # "partially initialized module 'typing' has no attribute 'ClassVar'" (seen loading a model).
        # Requests sent meanwhile wait in the pipe.
        threading.Thread(target=self._beat, name="worker-heartbeat", daemon=True).start()
        try:
            self.obj = construct(self.target)
        except Exception as err:  # reported on the first request
            self.obj = err
        threading.Thread(target=self._read, name="worker-reader", daemon=True).start()
        while True:
            msg = self.work.get()
            if msg is None:
                break
            self._handle(*msg)
        unload = getattr(self.obj, "unload", None)
        if callable(unload):
            try:
                unload()
            except Exception:  # the process is ending anyway
                pass

    def _read(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):  # the parent went away (it always says 'exit' first): end now,
                os._exit(1)  # even mid-request — nobody is left to read the answer
            req_id, op, payload = msg
            if op == "cancel":
                event = self.cancels.get(payload)
                if event is not None:
                    event.set()
            elif op == "exit":
                self.work.put(None)
                return
            elif op == "memory":  # answered at once, also while a request runs
                try:
                    self.send((req_id, "ok", self.memory.reading()))
                except Exception as err:
                    self.send((req_id, "error", _picklable(err)))
            else:
                self.cancels[req_id] = threading.Event()
                self.work.put(msg)

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            try:
                self.send((0, "beat", self.busy.is_set()))
            except (OSError, ValueError, EOFError):
                return

    def _handle(self, req_id: int, op: str, payload) -> None:
        event = self.cancels[req_id]
        self.busy.set()
        self.memory.start_request()
        try:
            if isinstance(self.obj, Exception):
                raise self.obj
            if op == "getattr":
                value = getattr(self.obj, payload)
                self.send((req_id, "ok", ("callable", None) if callable(value) else ("value", value)))
            elif op == "call":
                method, args, kwargs = payload
                result = getattr(self.obj, method)(*_sub(args, event), **_sub_kw(kwargs, event))
                if method == "load":
                    self.memory.sample(private=True)  # the model's footprint once it is in place
                self.send((req_id, "ok", result))
            elif op == "stream":
                method, args, kwargs = payload
                for item in getattr(self.obj, method)(*_sub(args, event), **_sub_kw(kwargs, event)):
                    stats = getattr(item, "stats", None)
                    if stats is not None:
                        item = dataclasses.replace(item, stats=self._with_memory(stats))
                    self.send((req_id, "item", item))
                self.send((req_id, "end", None))
            else:
                raise ValueError(f"unknown worker op {op!r}")
        except BaseException as err:  # every failure goes back to the caller as its own exception
            self.send((req_id, "error", _picklable(self._out_of_memory(err, op, payload) or err)))
        finally:
            self.memory.end_request()
            self.busy.clear()
            self.cancels.pop(req_id, None)

    def _out_of_memory(self, err: BaseException, op: str, payload):
        """InsufficientMemory when a failure is an allocation that hit the worker's memory cap."""
        from core.errors import InsufficientMemory

        text = f"{type(err).__name__}: {err}"
        alloc = isinstance(err, MemoryError) or any(
            word in text.lower()
            for word in ("alloc", "out of memory", "cannot allocate", "failed to load", "failed to create", "mmap")
        )
        if not alloc or isinstance(err, InsufficientMemory) or not (self.memory_cap or isinstance(err, MemoryError)):
            return None
        what = payload[0] if op in ("call", "stream") else op
        cap = f" within the worker's memory limit of {self.memory_cap / 2**30:.2f} GiB" if self.memory_cap else ""
        return InsufficientMemory(
            f"out of memory: {what} could not allocate{cap} ({text[:200]}) — free memory, or pick a smaller "
            "model, quantization or context"
        )

    def _with_memory(self, stats):
        private, source = self.memory.peaks()
        fields = {f.name for f in dataclasses.fields(stats)}
        extra = {"worker_peak_private_bytes": private, "worker_memory_source": source}
        return dataclasses.replace(stats, **{k: v for k, v in extra.items() if k in fields})


def _sub(args, event):
    return tuple(event if isinstance(a, str) and a == CANCEL else a for a in args)


def _sub_kw(kwargs, event):
    return {k: (event if isinstance(v, str) and v == CANCEL else v) for k, v in kwargs.items()}


def _picklable(err: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else our own error with its message."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        from core.errors import EngineUnavailable

        return EngineUnavailable(f"{type(err).__name__}: {err}")
