"""The progress callback the UI and the CLI pass down to long work: `progress(fraction, message)`, with the
fraction done in [0, 1] and a short message saying what is happening. Runners call it; they never import UI code.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]
"""progress(fraction done in [0, 1], message)."""
