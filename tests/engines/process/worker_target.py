"""A worker target for tests/engines/process/test_worker.py: it records the threads running while it is imported,
and can keep its main thread busy in a call that releases the GIL (as a native decode does)."""

import threading
import time

THREADS_AT_IMPORT = sorted(t.name for t in threading.enumerate())


class ThreadsAtImport:
    def names(self) -> list[str]:
        return THREADS_AT_IMPORT

    def busy(self, seconds: float) -> None:
        """Block the worker's main thread for `seconds` (time.sleep, like a C call, releases the GIL)."""
        time.sleep(seconds)
