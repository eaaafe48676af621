"""'Accelerated vs CPU': the same model and speed tests on the accelerated device and on the CPU.

This is the design target's (ADR 006, docs/scorecard.md) ≥ 3× criterion. For llama.cpp the accelerated
run offloads every layer (n_gpu_layers -1, Metal or CUDA) and the CPU run none; for torch and MLX the
device changes (mps/cuda/metal vs cpu). Both runs use the speed runner (warm-up, repetitions, mean ±
stddev); the ratio of their means is a derived figure and says so. Where only the CPU exists, it says
that instead of a number.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from bench.speed.record import SpeedResult
from bench.speed.runner import Progress, SpeedTest, run_speed
from core.errors import BadParameter
from engines.base import Engine, LoadConfig

TARGET_SPEEDUP = 3.0
"""The design target (ADR 006): accelerated ≥ 3× CPU."""


@dataclass(frozen=True)
class SpeedupRow:
    """One test on both devices; the ratio is derived from the two measured means."""

    engine: str
    model: str
    test: str
    accelerated_device: str
    accelerated_avg_ts: float
    accelerated_stddev_ts: float
    cpu_avg_ts: float
    cpu_stddev_ts: float
    speedup_x: float
    """accelerated_avg_ts / cpu_avg_ts (derived)."""
    meets_target_3x: bool
    """speedup_x ≥ TARGET_SPEEDUP, the design target (ADR 006)."""


def accelerated_device(engine: str, profile) -> tuple[str | None, str]:
    """(accelerated device or None, sentence) for this engine on this machine."""
    if engine == "llamacpp":
        found = [a for a in ("metal", "cuda") if a in profile.accelerators]
        if not found:
            return (
                None,
                f"only the CPU exists for llamacpp on {profile.chip or profile.os}: no accelerated-vs-CPU figure",
            )
        return found[0], f"llamacpp: all layers on {found[0]} vs none"
    if engine in ("torch", "mlx"):
        from machine.devices import speedup_devices

        return speedup_devices(engine, profile)
    raise BadParameter(f"accelerated vs CPU compares local engines (llamacpp, torch, mlx), not '{engine}'")


def device_configs(engine: str, device: str, base: LoadConfig) -> tuple[LoadConfig, LoadConfig]:
    """(accelerated, cpu) load settings for one engine."""
    if engine == "llamacpp":
        return replace(base, n_gpu_layers=-1, device=device), replace(base, n_gpu_layers=0, device="cpu")
    return replace(base, device=device), replace(base, device="cpu")


def compare_devices(
    load: Callable[[LoadConfig], Engine],
    engine: str,
    device: str,
    tests: list[SpeedTest],
    *,
    config: LoadConfig,
    repetitions: int = 3,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> tuple[list[SpeedupRow], list[SpeedResult]]:
    """Run `tests` with the engine loaded on `device` and on the CPU; one row per test."""
    fast_cfg, cpu_cfg = device_configs(engine, device, config)
    results = {}
    for k, (label, cfg) in enumerate((("accelerated", fast_cfg), ("cpu", cpu_cfg))):
        eng = load(cfg)

        def report(fraction: float, message: str, k: int = k, label: str = label) -> None:
            if progress:
                progress((k + fraction) / 2, f"{label}: {message}")

        results[label] = run_speed(eng, tests, config=cfg, repetitions=repetitions, progress=report, cancel=cancel)
    rows = []
    for fast, slow in zip(results["accelerated"], results["cpu"], strict=True):
        ratio = fast.avg_ts / slow.avg_ts if slow.avg_ts > 0 else float("nan")
        rows.append(
            SpeedupRow(
                engine=engine,
                model=fast.model,
                test=fast.test,
                accelerated_device=device,
                accelerated_avg_ts=fast.avg_ts,
                accelerated_stddev_ts=fast.stddev_ts,
                cpu_avg_ts=slow.avg_ts,
                cpu_stddev_ts=slow.stddev_ts,
                speedup_x=ratio,
                meets_target_3x=bool(ratio >= TARGET_SPEEDUP),
            )
        )
    return rows, results["accelerated"] + results["cpu"]
