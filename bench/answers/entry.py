"""What answers are compared between: an entry is an (engine, model) pair with its sampling settings and a
unique label, and `Answer` is how an answer is generated for it.

The same model twice is allowed when the labels differ (another seed or temperature, or a "#2" suffix). The
arena, the live race and the prompt queue all draw from entries; `engine_answer` is the `Answer` for an
already-loaded engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from core.errors import BadParameter
from engines.base import GenerationParams, GenerationStats


@dataclass(frozen=True)
class Entry:
    """One contestant: an engine, a model and how it samples."""

    engine: str
    model: str
    temperature: float = 0.0
    """0 = greedy."""
    seed: int = 0
    label: str = ""
    """Unique name on the leaderboard; `entry_label` fills it in."""


def entry_label(entry: Entry) -> str:
    """'model · engine', plus the sampling settings when they are not greedy."""
    base = f"{entry.model} · {entry.engine}"
    return base if entry.temperature == 0 else f"{base} · T={entry.temperature:g} seed={entry.seed}"


def make_pool(entries: Sequence[Entry]) -> list[Entry]:
    """Entries with unique labels (a repeated one gets ' #2', ' #3'); BadParameter below two."""
    pool, seen = [], {}
    for e in entries:
        label = e.label or entry_label(e)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} #{seen[label]}"
        pool.append(replace(e, label=label))
    if len(pool) < 2:
        raise BadParameter(f"the arena needs at least two entries in its pool, it has {len(pool)} — add another")
    return pool


Answer = Callable[[str, Entry], tuple[str, GenerationStats]]
"""answer(prompt, entry) -> (text, stats): one full generation."""


def engine_answer(
    engine, prompt: str, entry: Entry, max_tokens: int, cancel: threading.Event | None = None
) -> tuple[str, GenerationStats]:
    """One full answer from a loaded engine: chat template when the model has one, else plain text."""
    params = GenerationParams(max_tokens=max_tokens, temperature=entry.temperature, seed=entry.seed).validate()
    request = [{"role": "user", "content": prompt}] if engine.info().chat_template else prompt
    text, stats = "", None
    for chunk in engine.stream(request, params, cancel):
        if chunk.stats is not None:
            stats = chunk.stats
        else:
            text += chunk.text
    return text, stats
