"""Run hygiene for every stored speed row: noise (CV), contention, an environment receipt, the roofline.

`finish_row(result, info, ...)` is the one step the speed runner takes after it builds a SpeedResult; it
adds fields and never changes a measured figure. A row is `noisy` when the CV of its samples is above
NOISY_CV_PCT, and `contended` when another request of this app overlapped it (the worker says so),
another model was resident in the pool, or the 1-minute load average exceeded the CPUs this process may
use — each with the reason in `contention`. The receipt (OS, CPU flags, power source, thermal state, load)
sits beside the versions and chip the runner already records.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform

from bench.speed.record import SpeedResult
from bench.speed.roofline import decode_roofline, mean_context
from bench.stats import cv_pct

NOISY_CV_PCT = 10.0
"""A row whose samples vary more than this (stddev / mean, %) is flagged noisy: a mean ± stddev this wide
cannot tell apart differences under ~20 %. llama-bench rows on a quiet machine show 1–3 %."""


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none (Windows)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


@functools.lru_cache(maxsize=1)
def _static_receipt() -> tuple[str, str]:
    from engines.process.faults import cpu_flags

    return platform.platform(), cpu_flags()


def _conditions() -> dict[str, str]:
    """power_source and thermal_state when the test ends (machine.thermal: pmset on macOS, psutil elsewhere)."""
    from machine.thermal import current_conditions

    now = current_conditions()
    return {"power_source": now.power_source, "thermal_state": now.thermal_state}


def contention_reasons(worker_contended: bool, others_resident: int, load_avg: float | None, n_cpus: int) -> list[str]:
    """Why a row is contended, one phrase per cause (pure)."""
    reasons = []
    if worker_contended:
        reasons.append("another request of this app ran during the test")
    if others_resident > 0:
        reasons.append(f"{others_resident} other model(s) resident in the pool")
    if load_avg is not None and n_cpus and load_avg > n_cpus:
        reasons.append(f"load average {load_avg:.2f} above the {n_cpus} CPUs")
    return reasons


def finish_row(
    result: SpeedResult, info, *, others_resident: int = 0, tg_prompt_tokens: int = 0, profile=None
) -> SpeedResult:
    """The row with hygiene, receipt and (on tg rows) roofline fields added; `info` is the engine's ModelInfo,
    `profile` the HardwareProfile (default: this machine's); a tg test's untimed prompt of `tg_prompt_tokens`
    tokens sits in the KV cache too."""
    from machine.detect import detect_hardware, last_level_cache_bytes, usable_cpus

    profile = profile or detect_hardware()
    load_avg, n_cpus = load_average(), usable_cpus()
    reasons = contention_reasons(result.contended, others_resident, load_avg, n_cpus)
    cv = cv_pct(result.samples_ts)
    os_info, flags = _static_receipt()
    fields: dict = {
        "cv_pct": cv if cv == cv else None,
        "noisy": bool(cv == cv and cv > NOISY_CV_PCT),
        "contended": bool(reasons),
        "contention": "; ".join(reasons),
        "load_avg_1m": load_avg,
        "n_cpus": n_cpus,
        "os_info": os_info,
        "cpu_flags": flags,
        **_conditions(),
    }
    if result.n_gen and not result.n_prompt:
        fields.update(
            dataclasses.asdict(_roofline(result, info, profile, last_level_cache_bytes()[0], tg_prompt_tokens))
        )
    return dataclasses.replace(result, **fields)


def _roofline(result: SpeedResult, info, profile, llc: int | None, tg_prompt_tokens: int):
    from planning.estimate import kv_bytes_per_token

    kv = None
    head_dim = info.head_dim or (info.n_embd // info.n_heads if info.n_embd and info.n_heads else None)
    if info.n_layers and head_dim and (info.n_kv_heads or info.n_heads):
        kv = kv_bytes_per_token(info.n_layers, info.n_kv_heads or info.n_heads, head_dim)
    bandwidth, source = profile.memory_bandwidth_gbs, profile.bandwidth_source
    if result.device.startswith("cuda") or result.backends.upper().startswith("CUDA"):
        bandwidth, source = None, "a GPU's memory bandwidth is not known here (the probe measures host RAM)"
    elif result.backends == "remote":
        bandwidth, source = None, "the model runs in a server: its machine's bandwidth is not known here"
    return decode_roofline(
        avg_ts=result.avg_ts,
        weight_bytes=result.model_size,
        kv_bytes_per_token=kv,
        context_tokens=mean_context(result.n_depth, tg_prompt_tokens, result.n_gen),
        bandwidth_gbs=bandwidth,
        bandwidth_source=source,
        llc_bytes=None if result.device not in ("cpu", "") and not profile.apple_silicon else llc,
    )
