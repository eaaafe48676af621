"""One blind arena round, headless: draw two entries from a pool, randomize the sides, buffer both answers.

An entry is an (engine, model) pair with its sampling settings and a unique label; the same model
twice is allowed when the labels differ (another seed or temperature, or a "#2" suffix). Both answers
are generated in full before either is shown, so streaming speed cannot reveal which engine is which.
Generation comes in as one callable, `answer(prompt, entry) -> (text, stats)`, so this module knows no
engine pool (bench.answers.entry has the entries and `engine_answer`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bench.answers.entry import Answer, Entry
from bench.answers.votes import Vote, stats_json
from core.errors import BadParameter
from core.ids import new_id
from engines.base import GenerationStats


@dataclass(frozen=True)
class Round:
    """A drawn pair, shown as A and B, and (once generated) both buffered answers."""

    vote_id: str
    a: Entry
    b: Entry
    swapped: bool
    """True when the second drawn entry is shown as A."""
    prompt: str = ""
    answer_a: str = ""
    answer_b: str = ""
    stats_a: GenerationStats | None = None
    stats_b: GenerationStats | None = None


def draw(pool: Sequence[Entry], rng: random.Random) -> Round:
    """Two different entries at random and a fair coin for which one is A; a fresh vote_id."""
    if len(pool) < 2:
        raise BadParameter("the arena needs at least two entries in its pool")
    first, second = rng.sample(list(pool), 2)
    swapped = rng.random() < 0.5
    a, b = (second, first) if swapped else (first, second)
    return Round(vote_id=new_id(32), a=a, b=b, swapped=swapped)


def play(round_: Round, prompt: str, answer: Answer) -> Round:
    """Both answers generated in full (A first, then B), with a fresh vote_id: nothing is shown until
    both exist. Regenerating is playing the same round again."""
    if not (prompt or "").strip():
        raise BadParameter("the prompt is empty — type something for both models to answer")
    text_a, stats_a = answer(prompt, round_.a)
    text_b, stats_b = answer(prompt, round_.b)
    return replace(
        round_,
        vote_id=new_id(32),
        prompt=prompt,
        answer_a=text_a,
        answer_b=text_b,
        stats_a=stats_a,
        stats_b=stats_b,
    )


def vote_of(round_: Round, winner: str) -> Vote:
    """The Vote to store for this round (its vote_id makes a repeated click count once)."""
    if not round_.prompt:
        raise BadParameter("nothing to vote on yet — send a prompt first")
    return Vote(
        vote_id=round_.vote_id,
        model_a=round_.a.label,
        model_b=round_.b.label,
        winner=winner,
        engine_a=round_.a.engine,
        engine_b=round_.b.engine,
        swapped=round_.swapped,
        prompt=round_.prompt,
        answer_a=round_.answer_a,
        answer_b=round_.answer_b,
        stats_a_json=stats_json(round_.stats_a),
        stats_b_json=stats_json(round_.stats_b),
    )
