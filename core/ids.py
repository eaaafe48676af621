"""Identifiers that stay text in every tool that reads our CSV files."""

from __future__ import annotations

import uuid
from collections.abc import Callable


def _reads_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def new_id(n: int = 12, draw: Callable[[], str] = lambda: uuid.uuid4().hex) -> str:
    """`n` random hex digits that no CSV reader takes for a number.

    A hex id such as '5869698e0781' is a float to pandas (5869698 × 10^781: inf), and '004215938871' an
    integer that loses its zeros, in pandas and in spreadsheets; a CSV's ids would then no longer match the
    store's. About 1 draw in 130 of 12 digits is such an id; it is drawn again.
    """
    while True:
        candidate = draw()[:n]
        if not _reads_as_number(candidate):
            return candidate
