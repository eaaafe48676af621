"""The unattended compare queue: every prompt on every entry, one after another, stored as it goes.

Each finished (prompt, entry) answer is saved at once as its own run of kind 'compare_queue' in the
results store, tagged with the queue's id, so a crash or a Stop loses at most the answer in flight and
running the same queue id again resumes where it stopped. Answers run one at a time (fair timing: no
two generations share the CPU). Generation comes in as `answer(prompt, entry) -> (text, stats)`, like
the arena's, so this module knows no engine pool.

A queue's plan (its prompts, entries and settings) is itself a run of kind 'compare_queue_plan' with no
rows; its run id is the queue id, so `queue resume ID` and the Queue tab's Resume need nothing but the
store. `cells_frame` is one line per (prompt, entry) for the grid, the CSV and the JSONL alike.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.answers.entry import Answer, Entry, entry_label, make_pool
from core.errors import BadParameter, Cancelled, LocalbenchError

KIND = "compare_queue"
PLAN_KIND = "compare_queue_plan"
MAX_PROMPTS = 1000
STAT_COLUMNS = (
    "gen_tokens",
    "gen_tps",
    "ttft_s",
    "prompt_tokens",
    "prompt_tps",
    "wall_s",
    "load_s",
    "stop_reason",
    "worker_peak_private_bytes",
)
"""Per-answer statistics kept in the export: tokens, t/s, seconds, bytes (units in the names)."""
CELL_COLUMNS = ("queue_id", "prompt_index", "prompt", "entry", "engine", "model", "temperature", "seed", "status")
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
    if path.suffix not in (".txt", ".jsonl", ""):
        raise BadParameter(f"{path.name}: prompt files are .txt (one prompt per line) or .jsonl, not {path.suffix}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BadParameter(f"{path} is not UTF-8 text") from None
    return parse_prompts(text, jsonl=path.suffix == ".jsonl", name=str(path))


def parse_prompts(text: str, jsonl: bool = False, name: str = "the prompt text") -> list[str]:
    """Prompts from text: one per non-empty line, or JSONL objects with a non-empty 'prompt' field."""
    prompts = []
    for n, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        if jsonl:
            try:
                prompt = json.loads(line)["prompt"]
                if not isinstance(prompt, str) or not prompt.strip():
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise BadParameter(f"{name} line {n}: expected a JSON object with a non-empty 'prompt' text") from None
            prompts.append(prompt)
        else:
            prompts.append(line.strip())
    if not prompts:
        raise BadParameter(f"{name} has no prompts")
    if len(prompts) > MAX_PROMPTS:
        raise BadParameter(f"{name} has {len(prompts)} prompts; a queue takes at most {MAX_PROMPTS}")
    return prompts


def queue_entries(entries: Sequence[Entry]) -> list[Entry]:
    """Entries with unique labels (the same model twice is allowed and labelled ' #2'); one entry is fine."""
    if not entries:
        raise BadParameter("the queue needs at least one model entry")
    if len(entries) == 1:
        return [dataclasses.replace(entries[0], label=entries[0].label or entry_label(entries[0]))]
    return make_pool(entries)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a queue runs: every prompt on every entry, with these generation settings."""

    queue_id: str
    prompts: tuple[str, ...]
    entries: tuple[Entry, ...]
    max_tokens: int
    n_ctx: int
    """Context window in tokens, for every entry."""
    created_at: str = ""


def save_plan(
    store, prompts: Sequence[str], entries: Sequence[Entry], max_tokens: int, n_ctx: int, hardware: dict | None = None
) -> Plan:
    """Store a new queue's plan; its run id is the queue id."""
    entries = queue_entries(entries)
    if not prompts:
        raise BadParameter("the queue needs at least one prompt")
    settings = {
        "prompts": list(prompts),
        "entries": [dataclasses.asdict(e) for e in entries],
        "max_tokens": int(max_tokens),
        "n_ctx": int(n_ctx),
        "model": ", ".join(dict.fromkeys(e.model for e in entries)),
        "engine": ", ".join(dict.fromkeys(e.engine for e in entries)),
    }
    queue_id = store.save_run(PLAN_KIND, [], settings=settings, hardware=hardware)
    return load_plan(store, queue_id)


def load_plan(store, queue_id: str) -> Plan:
    """The stored plan of a queue, or BadParameter naming the known ones."""
    for run in store.runs(PLAN_KIND):
        if run["run_id"] == queue_id:
            s = json.loads(run["settings_json"])
            return Plan(
                queue_id=queue_id,
                prompts=tuple(s["prompts"]),
                entries=tuple(Entry(**e) for e in s["entries"]),
                max_tokens=int(s["max_tokens"]),
                n_ctx=int(s["n_ctx"]),
                created_at=run["created_at"],
            )
    known = ", ".join(r["run_id"] for r in store.runs(PLAN_KIND)[:5]) or "none yet"
    raise BadParameter(f"no queue with id {queue_id!r} in {store.path} (recent: {known}) — see `queue list`")


def list_plans(store) -> list[dict]:
    """Every stored queue, newest first: queue_id, created_at, prompts, entries, total, done answers."""
    done: dict[str, int] = {}
    for r in store.rows(KIND):
        done[r.get("queue_id")] = done.get(r.get("queue_id"), 0) + 1
    out = []
    for run in store.runs(PLAN_KIND):
        s = json.loads(run["settings_json"])
        total = len(s["prompts"]) * len(s["entries"])
        out.append(
            {
                "queue_id": run["run_id"],
                "created_at": run["created_at"],
                "prompts": len(s["prompts"]),
                "entries": " | ".join(e["label"] for e in s["entries"]),
                "total": total,
                "done": min(done.get(run["run_id"], 0), total),
            }
        )
    return out


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
    as a failed run with its message and the queue goes on; `cancel` stops before the next item, and an
    answer stopped mid-generation is stored as cancelled, without rows, so a resume runs it again. Each
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


def cells_frame(store, plan: Plan):
    """One line per stored (prompt, entry) answer in plan order: the ok answer where there is one, else the
    last failure with its error (an answer stopped midway is a missing cell, as before it ran). Statistics
    columns carry their units; a figure not measured is empty."""
    import pandas as pd

    ok = {(r["prompt_index"], r["entry"]): r for r in store.rows(KIND) if r.get("queue_id") == plan.queue_id}
    failed = {}
    for run in reversed(store.runs(KIND)):  # oldest first, so the last failure wins
        s = json.loads(run["settings_json"])
        if run["status"] == "failed" and s.get("queue_id") == plan.queue_id:  # a stopped answer stays missing
            failed[(s["prompt_index"], s["entry"])] = run
    lines = []
    for i, prompt in enumerate(plan.prompts):
        for e in plan.entries:
            row, bad = ok.get((i, e.label)), failed.get((i, e.label))
            if row is None and bad is None:
                continue
            base = {
                "queue_id": plan.queue_id,
                "prompt_index": i,
                "prompt": prompt,
                "entry": e.label,
                "engine": e.engine,
                "model": e.model,
                "temperature": e.temperature,
                "seed": e.seed,
            }
            if row is not None:
                stats = {c: row.get(c) for c in STAT_COLUMNS}
                lines.append(
                    {**base, "status": "ok", "answer": row["answer"], **stats, "error": "", "run_id": row["run_id"]}
                )
            else:
                lines.append(
                    {
                        **base,
                        "status": bad["status"],
                        "answer": "",
                        **dict.fromkeys(STAT_COLUMNS),
                        "error": bad["error"],
                        "run_id": bad["run_id"],
                    }
                )
    return pd.DataFrame(lines, columns=[*CELL_COLUMNS, "answer", *STAT_COLUMNS, "error", "run_id"])


def export_cells(frame, fmt: str) -> str:
    """The cells as 'csv' (formula-safe) or 'jsonl' (one JSON object per line; unknown figures are null)."""
    from bench.results.export import to_csv

    if fmt == "csv":
        return to_csv(frame)
    if fmt != "jsonl":
        raise BadParameter(f"queue exports are csv or jsonl, not {fmt!r}")
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
