"""Power readings around a run: watts sampled while it runs, then mean and peak W, joules and tokens per joule.

One interface for every source: `power_sampler()` returns a `PowerSampler` (or says why none is available
here), `start()` before the run, `stop()` after it gives a `PowerReading`. Sources, in order: on macOS
`macmon pipe` (IOReport counters, no sudo; the `macmon-lib` wheel is not on this project's registry, so
the CLI is used) and `powermetrics` when it can run without a password; on NVIDIA GPUs NVML's
`nvmlDeviceGetPowerUsage`; on Linux the RAPL powercap energy counters. The parsers of their output are pure
and tested on recorded samples; runners take `sampler.start`/`sampler.stop` as an optional callback.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

RAPL_GLOB = "/sys/class/powercap/intel-rapl:*/energy_uj"
"""Package-level RAPL counters (microjoules); sub-zones (intel-rapl:0:0) are parts of a package."""
MACMON_FIELDS = ("cpu_power", "gpu_power", "ane_power", "ram_power", "sys_power", "all_power")
"""Watts in each `macmon pipe` JSON line."""


@dataclass(frozen=True)
class PowerReading:
    """Power over one run, or why there is none."""

    source: str
    """'macmon' | 'powermetrics' | 'nvml' | 'rapl' | '' when not available."""
    avg_power_w: float | None = None
    """Mean power over the run, watts."""
    peak_power_w: float | None = None
    """Highest sample, watts (None for counter sources, which give only the mean)."""
    energy_j: float | None = None
    """Energy over the run, joules (mean W × seconds for sampled sources)."""
    duration_s: float | None = None
    samples_w: tuple[float, ...] = field(default_factory=tuple)
    """Raw samples, watts."""
    message: str = ""
    """'not available here: <why>' when there is no reading."""

    def tokens_per_joule(self, tokens: int) -> float | None:
        """Generated tokens per joule of this run; None without a reading."""
        return tokens / self.energy_j if self.energy_j else None

    def to_dict(self) -> dict:
        return asdict(self)


# --- pure parsers ---------------------------------------------------------------------------------


def parse_macmon_line(line: str) -> dict[str, float]:
    """Watts from one `macmon pipe` JSON line (keys of MACMON_FIELDS that it carries); {} for other lines."""
    try:
        data = json.loads(line)
    except ValueError:
        return {}
    return {k: float(data[k]) for k in MACMON_FIELDS if isinstance(data, dict) and isinstance(data.get(k), int | float)}


def parse_powermetrics_text(text: str) -> list[float]:
    """Combined power per sample, watts, from `powermetrics --samplers cpu_power,gpu_power` text
    ("Combined Power (CPU + GPU + ANE): 1234 mW")."""
    import re

    return [int(mw) / 1000 for mw in re.findall(r"Combined Power[^:]*:\s*(\d+)\s*mW", text)]


def summarize(source: str, samples_w: list[float], duration_s: float) -> PowerReading:
    """A reading from watt samples taken over `duration_s` seconds."""
    if not samples_w:
        return not_available(f"{source} gave no sample during the {duration_s:.2f} s run")
    mean = sum(samples_w) / len(samples_w)
    return PowerReading(source, mean, max(samples_w), mean * duration_s, duration_s, tuple(samples_w))


def from_energy(source: str, joules: float, duration_s: float) -> PowerReading:
    """A reading from an energy counter's difference."""
    mean = joules / duration_s if duration_s > 0 else None
    return PowerReading(source, mean, None, joules, duration_s)


def not_available(why: str) -> PowerReading:
    return PowerReading("", message=f"not available here: {why}")


# --- samplers -------------------------------------------------------------------------------------


class PowerSampler:
    """Samples `read_w()` every `interval_s` in a thread between start() and stop()."""

    def __init__(self, source: str, read_w: Callable[[], float | None], interval_s: float = 0.2):
        self.source, self._read, self.interval_s = source, read_w, interval_s
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def _loop(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is not None:
                self._samples.append(value)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._samples, self._t0 = [], time.perf_counter()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"power-{self.source}")
        self._thread.start()

    def stop(self) -> PowerReading:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        return summarize(self.source, self._samples, time.perf_counter() - self._t0)


class EnergyCounterSampler:
    """Reads a cumulative energy counter (joules) at start() and stop(); wraps are ignored as no reading."""

    def __init__(self, source: str, read_j: Callable[[], float]):
        self.source, self._read = source, read_j
        self._e0 = self._t0 = 0.0

    def start(self) -> None:
        self._e0, self._t0 = self._read(), time.perf_counter()

    def stop(self) -> PowerReading:
        joules, duration = self._read() - self._e0, time.perf_counter() - self._t0
        if joules < 0:
            return not_available("the RAPL counter wrapped during the run")
        return from_energy(self.source, joules, duration)


class MacmonSampler(PowerSampler):
    """`macmon pipe -i MS` as a child process: one JSON line per interval, `all_power` watts."""

    def __init__(self, interval_s: float = 0.5):
        super().__init__("macmon", lambda: None, interval_s)
        self._proc: subprocess.Popen | None = None

    def _loop(self) -> None:
        assert self._proc and self._proc.stdout
        for line in self._proc.stdout:
            watts = parse_macmon_line(line).get("all_power")
            if watts is not None:
                self._samples.append(watts)
            if self._stop.is_set():
                break

    def start(self) -> None:
        args = ["macmon", "pipe", "-i", str(int(self.interval_s * 1000))]
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        super().start()

    def stop(self) -> PowerReading:
        self._stop.set()
        if self._proc:
            self._proc.terminate()
            self._proc.wait(timeout=5)
        return super().stop()


def _rapl_files() -> list[str]:
    return sorted(p for p in glob.glob(RAPL_GLOB) if p.count(":") == 1)


def _rapl_joules(files: list[str]) -> float:
    total = 0
    for path in files:
        with open(path) as fh:
            total += int(fh.read())
    return total / 1e6


def _nvml_watts() -> float | None:
    import pynvml

    try:
        n = pynvml.nvmlDeviceGetCount()
        return sum(pynvml.nvmlDeviceGetPowerUsage(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(n)) / 1000
    except pynvml.NVMLError:
        return None


def power_sampler(os_name: str | None = None) -> PowerSampler | EnergyCounterSampler | PowerReading:
    """The best sampler this machine offers, or a PowerReading saying why there is none."""
    os_name = os_name or platform.system()
    reasons = []
    if os_name == "Darwin":
        if shutil.which("macmon"):
            return MacmonSampler()
        reasons.append("`macmon` is not installed (brew install macmon)")
        reasons.append("`powermetrics` needs sudo")
    if importlib.util.find_spec("pynvml") is not None:
        from machine.detect import nvml_devices

        gpus, why = nvml_devices()
        if gpus and _nvml_watts() is not None:
            return PowerSampler("nvml", _nvml_watts)
        reasons.append(why or "NVML reports no power for this GPU")
    if os_name == "Linux":
        files = _rapl_files()
        try:
            if files:
                _rapl_joules(files)
                return EnergyCounterSampler("rapl", lambda: _rapl_joules(files))
            reasons.append("no RAPL powercap counters (/sys/class/powercap/intel-rapl:* absent)")
        except OSError as err:
            reasons.append(f"RAPL counters are not readable ({err}; they are root-only on recent kernels)")
    return not_available("; ".join(reasons) or f"no power source known on {os_name}")


def power_status() -> str:
    """One line for `doctor` and the System tab: which source a run would use, or why none."""
    sampler = power_sampler()
    if isinstance(sampler, PowerReading):
        return sampler.message
    return f"{sampler.source} (sampled during runs: mean/peak W, joules, tokens per joule)"
