"""Live side by side, headless: one prompt to 2–4 (engine, model) columns, each drained by its own thread.

Each column's generation runs in its own thread and puts what arrives (load done, chunks, the final
statistics, the worker's memory, an error) into that column's queue; `LiveRun.poll()` drains every
queue into the columns' state, so a UI can redraw all of them from one loop. Two modes:
- "fair": one column after another (load, then stream), so each speed figure has the CPU to itself;
- "simultaneous": every column loads first, then all stream at once; their figures share the machine
  and the engine marks them `contended`.
Engines come in through `get_engine(engine, model, n_ctx)`, so this module knows no pool or screen.
Also here, pure: ITL percentiles and where greedy answers stop agreeing (the first differing word).
"""

from __future__ import annotations

import itertools
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.stats import summarize
from core.errors import LocalbenchError
from engines.base import Chunk, Engine, GenerationParams, GenerationStats

MODES = ("fair", "simultaneous")
MEMORY_EVERY_S = 0.5
"""How often a streaming column reads its worker's memory."""

LIVE_COLUMNS = [
    "slot",
    "model",
    "engine",
    "n_ctx",
    "mode",
    "ttft_ms",
    "gen_tps",
    "median_itl_ms",
    "p95_itl_ms",
    "n_gen",
    "worker_peak_mib",
    "contended",
    "stop_reason",
    "error",
]
"""CSV columns of a live run, one row per column (vLLM's itl/ttft names, llama-bench's n_gen)."""


def itl_percentiles_ms(gaps_s: Sequence[float]) -> tuple[float | None, float | None]:
    """(p50, p95) of inter-token gaps in milliseconds; (None, None) without any gap."""
    if not gaps_s:
        return None, None
    s = summarize(gaps_s)
    return s.p50 * 1e3, s.p95 * 1e3


_WORD = re.compile(r"\S+")


def _words(text: str, complete: bool) -> list[re.Match]:
    """Words of the text; with complete=False the last one is left out when nothing follows it yet
    (a word still streaming may be cut: "Hel" is not a divergence from "Hello")."""
    found = list(_WORD.finditer(text))
    if not complete and found and found[-1].end() == len(text):
        found.pop()
    return found


def divergence(texts: Sequence[str], done: Sequence[bool] | None = None) -> int | None:
    """Index of the first word where the answers stop agreeing, or None while they all agree.

    An answer that has ended (done) with fewer words than another diverges where it ended; one still
    streaming only counts the words it has finished.
    """
    done = list(done) if done is not None else [True] * len(texts)
    words = [[m.group() for m in _words(t, d)] for t, d in zip(texts, done, strict=True)]
    if len(words) < 2:
        return None
    longest = max(len(w) for w in words)
    for i in range(longest):
        present = {w[i] for w in words if i < len(w)}
        ended = any(i >= len(w) and d for w, d in zip(words, done, strict=True))
        if len(present) > 1 or (ended and present):
            return i
        if any(i >= len(w) and not d for w, d in zip(words, done, strict=True)):
            return None  # a column has not got this far yet
    return None


def split_at_divergence(texts: Sequence[str], done: Sequence[bool] | None = None) -> list[tuple[str, str]]:
    """Each text as (agreed part, part from the first differing word on); the second is '' when none differs."""
    index = divergence(texts, done)
    out = []
    for text in texts:
        words = _words(text, True)
        if index is None or index >= len(words):
            out.append((text, ""))
        else:
            cut = words[index].start()
            out.append((text[:cut], text[cut:]))
    return out


@dataclass
class LiveColumn:
    """One column's state, updated only by `LiveRun.poll()` (the UI thread)."""

    slot: int
    engine: str
    model: str
    n_ctx: int
    repeat: int = 1
    """2, 3, ... on a repeat of the same model with the same settings (it shares the first one's worker)."""
    status: str = "waiting"
    """'waiting', 'loading', 'ready', 'streaming', 'done', 'stopped' or 'failed'."""
    text: str = ""
    mode_note: str = ""
    """'chat template' or 'plain completion (no chat template)'."""
    arrivals_s: list[float] = field(default_factory=list)
    """Arrival time of every text chunk, seconds since the request started (measured here)."""
    tokens: int = 0
    memory_bytes: int | None = None
    """The worker's private memory at the last reading (USS on Linux)."""
    stats: GenerationStats | None = None
    error: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    events: queue.Queue = field(default_factory=queue.Queue)
    engine_obj: Engine | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "stopped", "failed")

    @property
    def label(self) -> str:
        """'model · engine', with ' #2' on a repeat."""
        return f"{self.model} · {self.engine}" + (f" #{self.repeat}" if self.repeat > 1 else "")

    def figures(self) -> dict:
        """TTFT ms, t/s, ITL p50/p95 ms, tokens and worker MiB: the engine's own once it reported,
        live figures measured here before that."""
        s = self.stats
        if s is not None:
            p50, p95 = itl_percentiles_ms(s.itl_s)
            private = s.worker_peak_private_bytes or self.memory_bytes
            return {
                "ttft_ms": s.ttft_s * 1e3 if s.gen_tokens or self.arrivals_s else None,  # stopped before any
                "gen_tps": s.gen_tps or None,
                "median_itl_ms": p50,
                "p95_itl_ms": p95,
                "n_gen": s.gen_tokens,
                "worker_peak_mib": private / 2**20 if private else None,
                "contended": s.contended,
                "stop_reason": s.stop_reason,
            }
        a = self.arrivals_s
        gaps = [b - x for x, b in itertools.pairwise(a)]
        p50, p95 = itl_percentiles_ms(gaps)
        span = a[-1] - a[0] if len(a) > 1 else 0.0
        return {
            "ttft_ms": a[0] * 1e3 if a else None,
            "gen_tps": (self.tokens - 1) / span if span > 0 else None,
            "median_itl_ms": p50,
            "p95_itl_ms": p95,
            "n_gen": self.tokens,
            "worker_peak_mib": self.memory_bytes / 2**20 if self.memory_bytes else None,
            "contended": False,
            "stop_reason": "",
        }

    def row(self, mode: str) -> dict:
        """This column as one stored/CSV row (LIVE_COLUMNS)."""
        f = self.figures() if (self.stats or self.arrivals_s) else dict.fromkeys(LIVE_COLUMNS)
        return {
            **{k: f.get(k) for k in LIVE_COLUMNS},
            "slot": self.slot + 1,
            "model": self.label,
            "engine": self.engine,
            "n_ctx": self.n_ctx,
            "mode": mode,
            "stop_reason": f.get("stop_reason") or ("error" if self.error else self.status),
            "error": self.error,
        }


GetEngine = Callable[[str, str, int], Engine]


def number_repeats(columns: Sequence[LiveColumn]) -> None:
    """Number the repeats of the same model with the same settings (they share one worker, so their
    requests run in turn)."""
    seen: dict[tuple, int] = {}
    for c in columns:
        key = (c.engine, c.model, c.n_ctx)
        seen[key] = c.repeat = seen.get(key, 0) + 1


class LiveRun:
    """The columns of one prompt, their threads, and the mode's order."""

    def __init__(
        self,
        columns: Sequence[LiveColumn],
        prompt: str,
        params: GenerationParams,
        get_engine: GetEngine,
        mode: str = "fair",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.columns, self.prompt, self.params = list(columns), prompt, params
        self.get_engine, self.mode = get_engine, mode
        number_repeats(self.columns)
        self.version = 0
        """Bumped whenever poll() changed something worth redrawing."""

    # --- threads ----------------------------------------------------------------------------------

    def _load(self, c: LiveColumn) -> None:
        try:
            eng = self.get_engine(c.engine, c.model, c.n_ctx)
            c.events.put(("loaded", eng))
        except LocalbenchError as err:
            c.events.put(("error", str(err)))
        except Exception as err:  # one column's failure must not end the others
            c.events.put(("error", f"unexpected error: {type(err).__name__}: {err}"))

    def _stream(self, c: LiveColumn, eng: Engine) -> None:
        done = threading.Event()
        if hasattr(type(eng), "memory"):
            threading.Thread(target=self._watch_memory, args=(c, eng, done), daemon=True).start()
        try:
            info = eng.info()
            prompt = [{"role": "user", "content": self.prompt}] if info.chat_template else self.prompt
            c.events.put(("mode", "chat template" if info.chat_template else "plain completion (no chat template)"))
            for chunk in eng.stream(prompt, self.params, c.cancel):
                c.events.put(("chunk", chunk))
        except LocalbenchError as err:
            c.events.put(("error", str(err)))
        except Exception as err:
            c.events.put(("error", f"unexpected error: {type(err).__name__}: {err}"))
        finally:
            done.set()
            c.events.put(("end", None))

    @staticmethod
    def _watch_memory(c: LiveColumn, eng: Engine, done: threading.Event) -> None:
        while not done.wait(MEMORY_EVERY_S):
            try:
                reading = eng.memory()
            except Exception:  # a missed reading only leaves the last one on screen
                continue
            if reading and reading.get("private_bytes"):
                c.events.put(("memory", reading["private_bytes"]))

    def _start(self, c: LiveColumn, phase: str) -> None:
        if phase == "load":
            c.status = "loading"
            threading.Thread(target=self._load, args=(c,), name=f"live-load-{c.slot}", daemon=True).start()
        else:
            c.status = "streaming"
            threading.Thread(
                target=self._stream, args=(c, c.engine_obj), name=f"live-stream-{c.slot}", daemon=True
            ).start()
        self.version += 1

    # --- the UI thread ----------------------------------------------------------------------------

    def start(self) -> None:
        """Fair: load the first column. Simultaneous: load every column at once."""
        for c in self.columns if self.mode == "simultaneous" else self.columns[:1]:
            self._start(c, "load")

    def poll(self) -> bool:
        """Drain every column's queue; start what the mode says comes next. True while anything runs."""
        for c in self.columns:
            while True:
                try:
                    kind, value = c.events.get_nowait()
                except queue.Empty:
                    break
                self._apply(c, kind, value)
        self._advance()
        return not self.finished

    def _apply(self, c: LiveColumn, kind: str, value) -> None:
        self.version += 1
        if kind == "loaded":
            c.engine_obj, c.status = value, "ready"
        elif kind == "mode":
            c.mode_note = value
        elif kind == "memory":
            c.memory_bytes = value
        elif kind == "chunk":
            chunk: Chunk = value
            if chunk.stats is not None:
                c.stats = chunk.stats
            elif chunk.text:
                c.text += chunk.text
                c.arrivals_s.append(chunk.t_s)
                c.tokens += chunk.n_tokens
        elif kind == "error":
            c.error, c.status = value, "failed"
        elif kind == "end" and c.status != "failed":
            c.status = "stopped" if (c.stats and c.stats.stop_reason == "cancelled") or c.cancel.is_set() else "done"

    def _advance(self) -> None:
        for c in self.columns:
            if c.status in ("waiting", "ready") and c.cancel.is_set():
                c.status = "stopped"
                self.version += 1
        if self.mode == "simultaneous":
            # every load ends (ready or failed) before any stream starts, so the streams start together
            if all(c.status != "loading" for c in self.columns):
                for c in self.columns:
                    if c.status == "ready":
                        self._start(c, "stream")
            return
        if any(c.status in ("loading", "streaming") for c in self.columns):
            return
        for c in self.columns:
            if c.status == "ready":
                self._start(c, "stream")
                return
            if c.status == "waiting":
                self._start(c, "load")
                return

    @property
    def finished(self) -> bool:
        return all(c.finished for c in self.columns)

    def stop(self, slot: int | None = None) -> None:
        """Stop one column (by slot) or all of them."""
        for c in self.columns:
            if slot is None or c.slot == slot:
                c.cancel.set()

    def run(self, every_s: float = 0.1, timeout_s: float | None = None) -> list[LiveColumn]:
        """Start and poll until every column ends (headless use and tests)."""
        self.start()
        t0 = time.monotonic()
        while self.poll():
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                self.stop()
            time.sleep(every_s)
        return self.columns
