"""Errors a user can act on.

Every failure that reaches a user is one of these: the message says what went wrong and what to do,
in one line, so the CLI can print it and exit 2 and the UI can show it as a warning instead of a
traceback. Library exceptions are caught at the engine boundary and re-raised as one of these.
"""

from __future__ import annotations


class LocalbenchError(Exception):
    """Base class: `str(err)` is the whole user-facing message."""


class BadParameter(LocalbenchError):
    """A setting is out of range (max tokens 0, n_ctx 10**9, empty prompt, batch size -1, ...)."""


class ModelNotFound(LocalbenchError):
    """No model by that name or path."""


class InvalidModelFile(LocalbenchError):
    """The file exists but cannot be read as the format it claims (not GGUF, truncated, corrupt)."""


class UnknownEngine(LocalbenchError):
    """No engine by that name."""


class EngineUnavailable(LocalbenchError):
    """The engine exists but cannot run here (library missing, device absent, unsupported dtype)."""


class PromptTooLong(BadParameter):
    """The prompt plus the requested generation does not fit the context window."""


class ServerError(LocalbenchError):
    """A model server is unreachable, answered with an error, timed out or broke the protocol."""


class InsufficientMemory(LocalbenchError):
    """A load would not fit in memory (the load guard), or the device ran out of memory."""


class Cancelled(LocalbenchError):
    """The user cancelled a long run; partial work was discarded or stored as cancelled."""


class EngineCrashed(LocalbenchError):
    """An engine's worker process died (signal, abort, out-of-memory kill) or stopped answering.

    The message names the engine, the model, the signal or exit code, the last line the library
    printed and what to try; the dashboard keeps serving and the next request starts a fresh worker.
    """


class IncompleteRun(LocalbenchError):
    """A timed test did not do its work (fewer tokens than it forced, zero time): a failed run, not a figure."""


class InsufficientDiskSpace(LocalbenchError):
    """Not enough free disk space under LOCALBENCH_HOME for the files a build or conversion would write."""


TIMEOUT_HINT = "raise it with --timeout SECONDS (in the dashboard: the Servers tab's Timeout field)"
"""Where a deadline is set, for every message about a wait that ran past it (CLI flag and UI field)."""
