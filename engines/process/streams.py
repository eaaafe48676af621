"""Streams under deadlines and Stop, whatever produces them: a worker's request or a server client.

`guarded_stream` times every chunk as it arrives in this process (TTFT, gaps, wall clock: what the
user sees), ends a stream that yields no new token for the idle deadline or runs past the total
one, and honours Stop within about a second even when nothing arrives. `Activity` marks requests
that overlapped another as contended. `GuardedEngine` puts a server engine (Ollama,
OpenAI-compatible) under the same rules without a worker: the server is the model's process.
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
import time
from collections.abc import Iterator

from core.errors import TIMEOUT_HINT, EngineCrashed
from engines.base import Chunk, Engine, GenerationParams, GenerationStats, LoadConfig, ModelInfo, ModelRef, Prompt

DEFAULT_IDLE_TIMEOUT_S = 300.0
"""No new token for this long ends a stream: 5 minutes covers a 30k-token prompt pass at 100 t/s.
`bench --timeout` and the Servers tab's field set it per run."""
DEFAULT_TOTAL_TIMEOUT_S = 3600.0
"""No request runs longer than an hour."""
CANCEL_GRACE_S = 1.0
"""After Stop, the stream waits this long for the engine's own final figures, then returns anyway."""
_request_ids = itertools.count(1)


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


DRAIN_S = 60.0
"""A stopped request may finish in the background this long (a long prompt pass ends at its next
token check); a worker still busy with it after that is killed, so the next request is not stuck."""


def drain(source, deadline_s: float = DRAIN_S) -> None:
    """Wait (on the caller's thread) until a stopped request ends, else kill its worker; then free it."""
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline:
            try:
                got = source.next(0.1, "stopping")
            except EngineCrashed:
                return
            if got is not None and got[0] in ("end", "error"):
                return
        source.kill()
    finally:
        source.done()


def _replace(obj, **changes):
    fields = {f.name for f in dataclasses.fields(obj)}
    return dataclasses.replace(obj, **{k: v for k, v in changes.items() if k in fields})


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
                break  # Stop returns now; the request ends in the background (see `drain`)
            got = source.next(0.05, "generating")
            now = time.monotonic()
            if got is None:
                if not cancelled and now - last_token > idle_timeout_s:
                    source.kill()
                    raise EngineCrashed(
                        f"{label}: no new token for {idle_timeout_s:.0f} s (the idle deadline) — the request was "
                        f"stopped; {TIMEOUT_HINT} if the prompt pass is this slow"
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
        if not ended and source.alive():  # stopped or abandoned: let it end without holding the caller
            if not cancelled:
                source.cancel()
            threading.Thread(target=drain, args=(source,), name="drain", daemon=True).start()
        else:
            source.done()
        contended = ACTIVITY.end(activity)
    wall_s = time.perf_counter() - t0
    if final is None:  # stopped before the engine reported: what was seen here
        n_seen = len(gaps) + (first_s is not None)
        gen_s = (last_s - first_s) if n_seen > 1 else 0.0
        final = GenerationStats(
            ttft_s=first_s if first_s is not None else wall_s,
            prompt_tokens=0,
            prompt_s=0.0,
            prompt_tps=0.0,
            gen_tokens=n_seen,
            gen_s=gen_s,
            gen_tps=(n_seen - 1) / gen_s if gen_s > 0 else 0.0,
            load_s=0.0,
            wall_s=wall_s,
            peak_rss_bytes=0,
            stop_reason="cancelled",
            source="stopped before the engine reported: chunks counted and timed here (wall clock)",
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
        self.idle_timeout_s = float(config.option("idle_timeout_s", self.idle_timeout_s))
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
