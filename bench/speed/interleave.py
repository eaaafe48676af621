"""A/B (and A/B/C) speed comparisons with interleaved repetitions, and the significance of each difference.

Run A's repetitions all first and then B's, and anything that drifts over the run (a neighbour's job, heat,
the page cache) lands on one side only and reads as a difference. `run_interleaved` runs the arms round-robin
instead, one repetition of every test per turn: A1 B1 A2 B2 … Every turn is a `bench.speed.runner.run_speed` with
one repetition and the turn's seed, so every arm sees the same prompt trace in the same turn; the warm-up is
run once per arm before its first turn (every turn, for the llama-bench method, whose context is fresh per
call). The turns of an arm are merged into one row per test with every raw sample, the order written in
`run_order`, and the arm's label in `arm`. `ab_rows` then tests each arm against the first with Welch's
t-test on the raw samples (bench.speed.ab.compare_runs).

The arms stay loaded side by side, so their rows are marked contended (another model resident): that is
the price of interleaving, and the rows say so.
"""

from __future__ import annotations

import dataclasses
import math
import string
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.speed.ab import ABRow, compare_runs
from bench.speed.hygiene import NOISY_CV_PCT
from bench.speed.record import SpeedResult
from bench.speed.runner import Progress, SpeedTest, decode_method, run_speed
from bench.stats import cv_pct, summarize
from core.errors import BadParameter
from engines.base import Engine, LoadConfig


@dataclass(frozen=True)
class Arm:
    """One configuration of a comparison: a label ('A'), a loaded engine, its load config."""

    label: str
    engine: Engine
    config: LoadConfig
    others_resident: int = 0


def labels(n: int) -> list[str]:
    """'A', 'B', 'C', … for n arms (pure)."""
    if not 1 <= n <= len(string.ascii_uppercase):
        raise BadParameter(f"between 1 and {len(string.ascii_uppercase)} arms, got {n}")
    return list(string.ascii_uppercase[:n])


def turn_order(arm_labels: Sequence[str], repetitions: int) -> list[str]:
    """The interleaved order of the turns: ['A1', 'B1', 'A2', 'B2', …] (pure)."""
    return [f"{label}{rep + 1}" for rep in range(repetitions) for label in arm_labels]


def merge_turns(turns: Sequence[SpeedResult], arm: str, order: str) -> SpeedResult:
    """One row from an arm's turns of one test (one repetition each): every raw sample, the summary and
    the noise recomputed from them, the roofline's percentage against the merged mean (pure)."""
    first = turns[0]
    ns = tuple(x for t in turns for x in t.samples_ns)
    ts = tuple(x for t in turns for x in t.samples_ts)
    s_ns, s_ts = summarize(ns), summarize(ts)
    ttft = [t.avg_ttft_ms for t in turns if t.avg_ttft_ms == t.avg_ttft_ms]
    cv = cv_pct(ts)
    reasons = list(dict.fromkeys(p for t in turns for p in t.contention.split("; ") if p))
    loads = [t.load_avg_1m for t in turns if t.load_avg_1m is not None]
    private = [t.worker_peak_private_bytes for t in turns if t.worker_peak_private_bytes]
    return dataclasses.replace(
        turns[-1],
        samples_ns=ns,
        samples_ts=ts,
        avg_ns=s_ns.mean,
        stddev_ns=s_ns.stddev,
        avg_ts=s_ts.mean,
        stddev_ts=s_ts.stddev,
        avg_ttft_ms=sum(ttft) / len(ttft) if ttft else math.nan,
        peak_rss_bytes=max(t.peak_rss_bytes for t in turns),
        worker_peak_private_bytes=max(private) if private else None,
        repetitions=len(ts),
        warmup_runs=sum(t.warmup_runs for t in turns),
        load_s=first.load_s,
        cv_pct=cv if cv == cv else None,
        noisy=bool(cv == cv and cv > NOISY_CV_PCT),
        contended=any(t.contended for t in turns),
        contention="; ".join(reasons),
        load_avg_1m=max(loads) if loads else None,
        roofline_pct=(s_ts.mean / first.roofline_tps * 100) if first.roofline_tps else first.roofline_pct,
        arm=arm,
        run_order=order,
        method=f"interleaved {order}: one repetition of every test per turn, {len(ts)} repetitions and "
        f"{sum(t.warmup_runs for t in turns)} warm-up(s) in all; mean ± sample stddev; "
        + first.method.split("sample stddev; ", 1)[-1],
    )


def run_interleaved(
    arms: Sequence[Arm],
    tests: Sequence[SpeedTest],
    *,
    repetitions: int = 3,
    warmup: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    method: str = "auto",
    runner: Callable[..., list[SpeedResult]] = run_speed,
) -> list[SpeedResult]:
    """Every test of every arm, repetitions interleaved round-robin (see the module docstring); the rows
    come arm by arm, tests in order. `runner` is bench.speed.runner.run_speed (a parameter so a caller may wrap it)."""
    if not arms:
        raise BadParameter("nothing to compare: no configuration")
    if not 1 <= repetitions <= 1000:
        raise BadParameter(f"repetitions must be between 1 and 1000, got {repetitions}")
    order = " ".join(turn_order([a.label for a in arms], repetitions))
    turns: dict[str, list[list[SpeedResult]]] = {a.label: [] for a in arms}
    total, done = len(arms) * repetitions, 0
    for rep in range(repetitions):
        for arm in arms:
            fresh_context = method != "stream" and decode_method(arm.engine, method) is not None
            report = None
            if progress:

                def report(fraction, message, done=done, label=f"{arm.label}{rep + 1}"):
                    progress((done + fraction) / total, f"{label}: {message}")

            rows = runner(
                arm.engine,
                tests,
                config=arm.config,
                repetitions=1,
                warmup=warmup and (rep == 0 or fresh_context),
                seed=seed + rep,
                progress=report,
                cancel=cancel,
                others_resident=arm.others_resident,
                method=method,
            )
            turns[arm.label].append(rows)
            done += 1
    return [
        merge_turns([turn[i] for turn in turns[arm.label]], arm.label, order) for arm in arms for i in range(len(tests))
    ]


def ab_rows(results: Sequence[SpeedResult]) -> list[ABRow]:
    """Each arm after the first against the first, per test, on the raw samples (Welch's t-test)."""
    by_arm: dict[str, list[SpeedResult]] = {}
    for r in results:
        by_arm.setdefault(r.arm, []).append(r)
    arms = list(by_arm)
    if len(arms) < 2:
        return []
    a = arms[0]
    out: list[ABRow] = []
    for b in arms[1:]:
        order = by_arm[a][0].run_order
        out += compare_runs(by_arm[a], by_arm[b], a, b, order=f"interleaved {order}")
    return out
