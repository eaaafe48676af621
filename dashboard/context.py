"""What every tab is given: hardware profile and config, the results store, the engine pool, cancels.

Tabs receive an AppContext in `build(ctx)` and read nothing from globals. Cancellation is a
threading.Event per (browser session, scope): a Run handler takes a fresh one, the tab's Cancel
button sets it, and the runner or engine stops at its next check.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from bench.results.store import ResultStore
from engines.process.pool import EnginePool
from planning.guard import guarded_pool


@dataclass
class AppContext:
    profile: object
    """machine.profile.HardwareProfile of this machine."""
    config: object
    """planning.runtime.RuntimeConfig chosen for it."""
    store: ResultStore
    pool: EnginePool
    server_options: dict[str, tuple[tuple[str, object], ...]] = field(default_factory=dict)
    """Per-engine LoadConfig options set in the UI (server URLs, API keys)."""
    _cancels: dict[tuple[str, str], threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_cancel(self, session: str | None, scope: str) -> threading.Event:
        """A fresh, unset cancel flag for this session's run in `scope` (e.g. 'chat')."""
        event = threading.Event()
        with self._lock:
            self._cancels[(session or "", scope)] = event
        return event

    def cancel(self, session: str | None, scope: str) -> bool:
        """Set the flag of this session's current run in `scope`; True if one was running."""
        with self._lock:
            event = self._cancels.get((session or "", scope))
        if event is None:
            return False
        event.set()
        return True


def create_context(store_path: str | None = None) -> AppContext:
    from machine.detect import detect_hardware
    from planning.runtime import optimal_config

    profile = detect_hardware()
    return AppContext(
        profile=profile,
        config=optimal_config(profile),
        store=ResultStore(store_path),
        pool=guarded_pool(),  # guarded by the memory planner's load guard
    )
