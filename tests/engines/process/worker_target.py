"""A worker target for tests/engines/process/test_worker.py: it records the threads running while it is imported."""

import threading

THREADS_AT_IMPORT = sorted(t.name for t in threading.enumerate())


class ThreadsAtImport:
    def names(self) -> list[str]:
        return THREADS_AT_IMPORT
