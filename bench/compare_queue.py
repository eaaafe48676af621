"""The unattended compare queue: every prompt on every entry, one after another, stored as it goes.

Each finished (prompt, entry) answer is saved at once as its own run of kind 'compare_queue' in the
results store, tagged with the queue's id, so a crash or a Stop loses at most the answer in flight and
running the same queue id again resumes where it stopped. Answers run one at a time (fair timing: no
two generations share the CPU). Generation comes in as `answer(prompt, entry) -> (text, stats)`, like
the arena's, so this module knows no engine pool.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.arena_round import Answer, Entry
from core.errors import BadParameter, Cancelled, LocalbenchError

KIND = "compare_queue"
BUILT_IN_PROMPTS = (
    "Name three primary colours.",
    "What is 12 times 7?",
    "Write one sentence about the sea.",
)


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a text file (one per non-empty line) or JSONL (objects with a 'prompt' field)."""
    path = Path(path)
    if not path.is_file():
        raise BadParameter(f"no prompt file at {path}")
    prompts = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                prompts.append(str(json.loads(line)["prompt"]))
            except (ValueError, KeyError, TypeError):
                raise BadParameter(f"{path} line {n}: expected a JSON object with a 'prompt' field") from None
        else:
            prompts.append(line.strip())
    if not prompts:
        raise BadParameter(f"{path} has no prompts")
    return prompts


def done_items(store, queue_id: str) -> set[tuple[int, str]]:
    """(prompt index, entry label) of the answers this queue already stored."""
    return {(r["prompt_index"], r["entry"]) for r in store.rows(KIND) if r.get("queue_id") == queue_id}


def run_queue(
    store,
    queue_id: str,
    prompts: Sequence[str],
    entries: Sequence[Entry],
    answer: Answer,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    hardware: dict,
) -> dict:
    """Run what is left of the queue; returns counts {'total', 'done', 'skipped', 'failed'}.

    `progress(done, total, message)` is called after each item; an item whose engine fails is stored
    as a failed run with its message and the queue goes on; `cancel` stops before the next item. Each
    run carries the `hardware` receipt."""
    if not prompts or not entries:
        raise BadParameter("the queue needs at least one prompt and one entry")
    already = done_items(store, queue_id)
    items = [(i, p, e) for i, p in enumerate(prompts) for e in entries]
    counts = {"total": len(items), "done": 0, "skipped": 0, "failed": 0}
    for k, (i, prompt, entry) in enumerate(items):
        if (i, entry.label) in already:
            counts["skipped"] += 1
            continue
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"queue {queue_id} stopped after {k} of {len(items)} answers — run it again to resume")
        settings = {"queue_id": queue_id, "prompt_index": i, "entry": entry.label}
        try:
            with store.recording(KIND, settings, hardware) as run:
                text, stats = answer(prompt, entry)
                row = {**settings, "prompt": prompt, "engine": entry.engine, "model": entry.model, "answer": text}
                row.update({f: v for f, v in dataclasses.asdict(stats).items() if f != "itl_s"})
                run.rows = [row]
        except Cancelled:
            raise
        except LocalbenchError:
            counts["failed"] += 1
        else:
            counts["done"] += 1
        if progress is not None:
            progress(k + 1, len(items), f"prompt {i + 1} on {entry.label}")
    return counts


def grid(store, queue_id: str):
    """Answers as a frame with prompts in rows and entries in columns."""
    import pandas as pd

    rows = [r for r in store.rows(KIND) if r.get("queue_id") == queue_id]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    table = frame.pivot_table(index=["prompt_index", "prompt"], columns="entry", values="answer", aggfunc="last")
    return table.reset_index()
