"""The embeddings benchmark corpus: ~2,000 English sentences of varied length, generated reproducibly.

A small grammar filled from fixed word lists by numpy's PCG64 generator with a fixed seed, so every
machine embeds the same texts (tests pin the corpus hash). Lengths are mixed on purpose: most texts
are one sentence, some are short paragraphs, and about 2% run past 256 tokens, so the truncation count
of models with a 256-token limit (all-MiniLM-L6-v2) is exercised. Users may bring their own corpus:
one text per line in a UTF-8 file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from core.errors import BadParameter

CORPUS_SIZE = 2000
CORPUS_SEED = 20261125
MAX_CORPUS_TEXTS = 200_000

_SUBJECTS = (
    "the engineer",
    "a small team",
    "the committee",
    "our neighbour",
    "the old library",
    "a curious student",
    "the city council",
    "the research group",
    "a local bakery",
    "the river",
    "the new model",
    "the farmer",
    "an anxious traveller",
    "the orchestra",
    "the museum",
    "a quiet cat",
    "the weather service",
    "the startup",
    "the hospital",
    "a retired teacher",
    "the satellite",
    "the football club",
    "the night train",
    "the editor",
)
_VERBS = (
    "measured",
    "repaired",
    "described",
    "ignored",
    "celebrated",
    "questioned",
    "painted",
    "delivered",
    "compared",
    "translated",
    "built",
    "observed",
    "rejected",
    "discovered",
    "cooked",
    "explained",
    "predicted",
    "borrowed",
    "protected",
    "carried",
    "tested",
    "planned",
    "recorded",
    "forgot",
)
_ADJECTIVES = (
    "bright",
    "heavy",
    "ancient",
    "unusual",
    "fragile",
    "green",
    "enormous",
    "precise",
    "noisy",
    "gentle",
    "expensive",
    "forgotten",
    "careful",
    "rapid",
    "narrow",
    "wooden",
    "digital",
    "seasonal",
    "broken",
    "quiet",
)
_OBJECTS = (
    "bridge",
    "report",
    "garden",
    "melody",
    "contract",
    "engine",
    "recipe",
    "map",
    "letter",
    "telescope",
    "database",
    "harvest",
    "painting",
    "schedule",
    "battery",
    "poem",
    "experiment",
    "window",
    "budget",
    "song",
)
_PLACES = (
    "near the harbour",
    "before dawn",
    "in the mountains",
    "after the storm",
    "on the third floor",
    "during the festival",
    "at the edge of town",
    "under the old oak",
    "in a crowded market",
    "across the border",
    "on a rainy Tuesday",
    "behind the station",
    "in the laboratory",
    "by the lake",
    "at midnight",
)
_CLAUSES = (
    "because nobody else had the time",
    "although the instructions were unclear",
    "while the others waited outside",
    "so that the results could be checked twice",
    "even though it cost more than expected",
    "as the evening light faded",
    "without asking for permission",
    "until the numbers finally agreed",
    "since the deadline had moved again",
    "whenever the wind changed direction",
)


def _sentence(rng: np.random.Generator) -> str:
    pick = lambda words: words[int(rng.integers(len(words)))]  # noqa: E731
    words = [pick(_SUBJECTS), pick(_VERBS), "the", pick(_ADJECTIVES), pick(_OBJECTS)]
    if rng.random() < 0.6:
        words.append(pick(_PLACES))
    if rng.random() < 0.35:
        words.append(pick(_CLAUSES))
    if rng.random() < 0.2:
        words.append(f"with {int(rng.integers(2, 999))} {pick(_ADJECTIVES)} {pick(_OBJECTS)}s")
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def make_corpus(n: int = CORPUS_SIZE, seed: int = CORPUS_SEED) -> list[str]:
    """`n` texts: 70% one sentence, 20% two to four, 8% five to twelve, 2% twenty to thirty (long)."""
    if not isinstance(n, int) or n < 1:
        raise BadParameter(f"the corpus is empty — ask for at least 1 sentence, got {n!r}")
    if n > MAX_CORPUS_TEXTS:
        raise BadParameter(f"{n} sentences is too many (limit {MAX_CORPUS_TEXTS})")
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        u = rng.random()
        k = (
            1
            if u < 0.70
            else int(rng.integers(2, 5))
            if u < 0.90
            else (int(rng.integers(5, 13)) if u < 0.98 else int(rng.integers(20, 31)))
        )
        texts.append(" ".join(_sentence(rng) for _ in range(k)))
    return texts


def corpus_digest(texts: list[str]) -> str:
    """sha256 of the texts joined by newlines (first 16 hex digits), to name a corpus in results."""
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]


def load_corpus_file(path: str | Path) -> list[str]:
    """One text per non-blank line of a UTF-8 file; BadParameter when there is none."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BadParameter(f"corpus file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadParameter(f"cannot read corpus file {p} as UTF-8 text: {err}") from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise BadParameter(f"the corpus is empty — {p.name} has no non-blank line (one text per line)")
    if len(texts) > MAX_CORPUS_TEXTS:
        raise BadParameter(f"{p.name} has {len(texts)} texts; the limit is {MAX_CORPUS_TEXTS}")
    return texts
