"""Known native faults of engine libraries: a canary in a child process decides, a fallback follows.

Some library paths crash natively on some machines (llama.cpp's AMX weight repack segfaults on Intel
Sapphire Rapids and later, ggml-org/llama.cpp#20824). A crash there would take down whatever process
loads the model, so each known fault carries a canary: a short run of the risky path in a child
process. The verdict (passed, or died with a signal) is cached per key under
LOCALBENCH_HOME/cache/faults, where the key names what decides it (CPU flags × library version ×
tensor type), so a canary runs once per machine and model type. Engines register their faults here;
the verdicts are shown in `doctor` and the System tab with the reason and the upstream issue, and
every result row records the setting that was used. Nothing here imports an engine library.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core.paths import cache_dir
from machine import detect

CANARY_TIMEOUT_S = 180.0
"""A canary that neither finishes nor crashes in this time is inconclusive (the safe setting is used)."""


@dataclass(frozen=True)
class KnownFault:
    """A native fault some library has on some machines, and the setting that avoids it."""

    name: str
    """Short id, e.g. 'llamacpp-repack'."""
    engine: str
    setting: str
    """The setting the fallback changes, under the name users know (llama-bench's 'repack')."""
    upstream: str
    """Where the fault is tracked, e.g. 'ggml-org/llama.cpp#20824'."""
    summary: str
    """One line: what crashes and what the fallback does."""


@dataclass(frozen=True)
class Verdict:
    """What a canary found for one key."""

    fault: str
    key: str
    """Human-readable key: what the verdict depends on."""
    crashed: bool
    """True when the risky path died natively (signal or abort) in the canary."""
    conclusive: bool
    """False when the canary failed for another reason or timed out; the safe setting is used then."""
    detail: str
    """What the canary did: 'passed in 1.2 s', 'died with SIGSEGV', ..."""
    canary_s: float
    """Wall time of the canary run."""
    measured_at: float
    """Unix time of the canary run."""

    @property
    def risky_path_ok(self) -> bool:
        """True only when a canary ran the risky path and it passed."""
        return self.conclusive and not self.crashed


FAULTS: dict[str, KnownFault] = {}
"""Registered faults by name (engines register theirs on import)."""


def register(fault: KnownFault) -> KnownFault:
    FAULTS[fault.name] = fault
    return fault


def cpu_flags() -> str:
    """The CPU's feature flags (machine.detect.cpu_flags) as one sorted string; on macOS the brand string
    instead ('' where neither can be read)."""
    if sys.platform != "darwin":
        return " ".join(sorted(detect.cpu_flags()))
    try:  # the brand string, as canary keys on macOS always were: a new key would run every canary again
        out = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
        ).stdout
        return out.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cache_file(fault: str) -> Path:
    return cache_dir("faults") / f"{fault}.json"


def _load(fault: str) -> dict:
    try:
        return json.loads(_cache_file(fault).read_text())
    except (OSError, ValueError):
        return {}


def _store(fault: str, digest: str, verdict: Verdict) -> None:
    entries = _load(fault)
    entries[digest] = asdict(verdict)
    path = _cache_file(fault)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(entries, indent=1))
    os.replace(tmp, path)


def cached_verdicts(fault: str) -> list[Verdict]:
    """Every verdict on record for a fault, newest first."""
    rows = [Verdict(**v) for v in _load(fault).values()]
    return sorted(rows, key=lambda v: v.measured_at, reverse=True)


def signal_name(returncode: int) -> str:
    """'SIGSEGV' for a child that died with signal 11 (returncode -11); 'exit 3' otherwise."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit {returncode}"


def run_canary(fault: str, key: dict[str, str], argv: list[str], timeout_s: float = CANARY_TIMEOUT_S) -> Verdict:
    """The verdict for `key`, from the cache or from running `argv` (a Python child) once.

    The child exits 0 when the risky path works. A child killed by a signal (SIGSEGV, SIGABRT, SIGBUS,
    SIGILL) means the path crashes; any other failure or a time-out is inconclusive and not cached,
    so it is tried again next time.
    """
    label = ", ".join(f"{k}={v}" for k, v in key.items() if k != "cpu_flags")
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    hit = _load(fault).get(digest)
    if hit:
        return Verdict(**hit)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_project_root(), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, *argv],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return Verdict(fault, label, False, False, f"canary timed out after {timeout_s:.0f} s", timeout_s, time.time())
    elapsed = time.perf_counter() - t0
    if proc.returncode == 0:
        verdict = Verdict(fault, label, False, True, f"canary passed in {elapsed:.1f} s", elapsed, time.time())
    elif proc.returncode < 0:
        verdict = Verdict(
            fault, label, True, True, f"canary died with {signal_name(proc.returncode)}", elapsed, time.time()
        )
    else:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or [""]
        return Verdict(
            fault,
            label,
            False,
            False,
            f"canary failed ({signal_name(proc.returncode)}): {tail[0][:200]}",
            elapsed,
            time.time(),
        )
    _store(fault, digest, verdict)
    return verdict


def _project_root() -> str:
    return str(Path(__file__).resolve().parents[2])
