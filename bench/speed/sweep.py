"""`bench --sweep`: measure the hardware-picked defaults against a grid of llama.cpp settings.

The grid is threads × n_batch × flash_attn (× n_gpu_layers where layers can be offloaded, Metal or
CUDA); the default point is what a plain `bench` runs (threads from planning.runtime.optimal_config,
llama-bench's n_batch 2048, flash_attn auto, the planner's n_gpu_layers). Every point is measured as
one bench row (warm-up, repetitions, raw samples).

The points run interleaved (`run_sweep`): one repetition of every configuration per round, the order
reversed every other round, so a shared machine's drift (10-20 % over a minute on a VM, more than the
settings change) lands on every configuration alike instead of on whichever ran last. `sweep_summary`
then picks, per test, the fastest configuration and sets the default's figure beside it as a derived
ratio: the geometric mean over rounds of default ÷ best in the same round, with its 95 % interval and a
t-test of the log ratios (configurations in different loads, n_gpu_layers, are not paired: ratio of
means and Welch's t-test). The best is the highest of many means, picked with the noise in its favour,
so a default whose interval reaches 1 is as good as the best on this evidence.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.results.export import to_markdown
from bench.speed.interleave import merge_turns
from bench.speed.runner import Progress, SpeedTest, run_speed
from bench.stats import paired_ratio, welch

SWEEP_BATCHES = (256, 512, 2048)
"""n_batch values of the grid: llama-bench's default 2048, llama.cpp's 512, and a smaller one."""
SWEEP_FLASH_ATTN = (0, 1)
"""flash_attn off and on; the default point adds auto (-1)."""
SWEEP_GPU_LAYERS = (0, -1)
"""n_gpu_layers none and all, swept only where the planner offloads (n_gpu_layers != 0)."""
KEY_FIELDS = ("n_threads", "n_batch", "flash_attn", "n_gpu_layers")
FLAGS = {"n_threads": "t", "n_batch": "b", "flash_attn": "fa", "n_gpu_layers": "ngl"}
FA_NAMES = {-1: "auto", 0: "0", 1: "1"}


def sweep_threads(n_cpus: int, picked: int) -> list[int]:
    """Thread counts to sweep: powers of two below the CPU count, the count itself and the picked value
    (sorted, no repeats). 8 CPUs and picked 6 give 1, 2, 4, 6, 8."""
    n_cpus = max(1, int(n_cpus))
    values = {1 << k for k in range(n_cpus.bit_length()) if 1 << k <= n_cpus}
    return sorted(values | {n_cpus, max(1, int(picked))})


@dataclass(frozen=True)
class Grid:
    """The points of a sweep and the default point; each list is what runs for that setting."""

    threads: list[int]
    batches: list[int]
    flash_attn: list[int]
    n_gpu_layers: list[int]
    default: tuple[int, int, int, int]
    """(n_threads, n_batch, flash_attn, n_gpu_layers) of a plain `bench` on this machine."""

    def points(self) -> int:
        """Configurations the sweep measures, the default included once."""
        grid = len(self.threads) * len(self.batches) * len(self.flash_attn) * len(self.n_gpu_layers)
        return grid + (0 if self.in_grid() else 1)

    def in_grid(self) -> bool:
        t, b, fa, ngl = self.default
        return t in self.threads and b in self.batches and fa in self.flash_attn and ngl in self.n_gpu_layers

    def describe(self) -> str:
        names = {"threads": self.threads, "n_batch": self.batches, "flash_attn": self.flash_attn}
        if len(self.n_gpu_layers) > 1:
            names["n_gpu_layers"] = self.n_gpu_layers
        grid = " × ".join(
            f"{k} {','.join(FA_NAMES.get(v, str(v)) if k == 'flash_attn' else str(v) for v in vs)}"
            for k, vs in names.items()
        )
        return f"{grid}; default {key_label(self.default)}; {self.points()} configurations"


def make_grid(
    *,
    n_cpus: int,
    default: tuple[int, int, int, int],
    threads: Sequence[int] | None = None,
    batches: Sequence[int] | None = None,
    flash_attn: Sequence[int] | None = None,
    n_gpu_layers: int | None = None,
) -> Grid:
    """The sweep's grid: what the user gave for a setting stays (one value fixes it), the rest is swept.
    n_gpu_layers is swept (0 and all) only when the default offloads layers and -ngl was not given."""
    t, b, fa, ngl = default
    return Grid(
        threads=list(threads) if threads else sweep_threads(n_cpus, t),
        batches=list(batches) if batches else list(SWEEP_BATCHES),
        flash_attn=list(flash_attn) if flash_attn else list(SWEEP_FLASH_ATTN),
        n_gpu_layers=[n_gpu_layers] if n_gpu_layers is not None else list(SWEEP_GPU_LAYERS) if ngl else [0],
        default=(t, b, fa, ngl if n_gpu_layers is None else n_gpu_layers),
    )


def row_key(row) -> tuple[int, int, int, int]:
    """(n_threads, n_batch, flash_attn, n_gpu_layers) of a SpeedResult, as asked (flash_attn -1: auto)."""
    return tuple(int(getattr(row, f)) for f in KEY_FIELDS)


def key_label(key: Sequence[int]) -> str:
    """'t 2, b 2048, fa auto' (ngl shown only where it is not 0)."""
    parts = []
    for field, value in zip(KEY_FIELDS, key, strict=True):
        if field == "n_gpu_layers" and value == 0:
            continue
        parts.append(f"{FLAGS[field]} {FA_NAMES.get(value, value) if field == 'flash_attn' else value}")
    return ", ".join(parts)


@dataclass(frozen=True)
class SweepRow:
    """One test of a sweep: its fastest configuration and the default's figure beside it."""

    model: str
    engine: str
    test: str
    """As the bench rows name it, depth included ('tg64 @ d512')."""
    configs: int
    best: str
    best_ts: float
    best_stddev_ts: float
    default: str
    default_ts: float
    default_stddev_ts: float
    default_over_best: float
    """Derived: the geometric mean over rounds of default ÷ best in the same round (paired), or the ratio of
    the means (unpaired); 1.0 when the default is the fastest."""
    ratio_low: float
    ratio_high: float
    """95 % interval of default_over_best (paired rounds; NaN unpaired, with one round, or when the default is
    the best)."""
    p_value: float
    significant: bool
    """The default differs from the best beyond noise (see method)."""
    repetitions: int
    method: str


def sweep_summary(results: Sequence, default: tuple[int, int, int, int], alpha: float = 0.05) -> list[SweepRow]:
    """Per model, engine and test: the fastest configuration (highest mean t/s) and the default's row.
    Rows of one round-robin (same run_order, as many samples) are paired by round; others are compared
    by Welch's t-test. A test whose default configuration did not run is left out (nothing to compare)."""
    groups: dict[tuple[str, str, str], list] = {}
    for r in results:
        groups.setdefault((r.model, r.engine, r.test), []).append(r)
    rows = []
    for (model, engine, test), group in groups.items():
        base = [r for r in group if row_key(r) == tuple(default)]
        if not base:
            continue
        best = max(group, key=lambda r: r.avg_ts)
        d = base[0]
        paired = d.run_order == best.run_order and len(d.samples_ts) == len(best.samples_ts)
        if best is d:
            ratio, low, high, p = 1.0, math.nan, math.nan, 1.0  # the same row: nothing to test
            method = "the default is the fastest"
        elif paired:
            ratio, low, high, p = paired_ratio(d.samples_ts, best.samples_ts, alpha)
            method = f"paired by round: t-test of log(default ÷ best), two-sided; beyond noise when p < {alpha:g}"
        else:
            cmp = welch(best.samples_ts, d.samples_ts, alpha)
            ratio, low, high, p = d.avg_ts / best.avg_ts if best.avg_ts else math.nan, math.nan, math.nan, cmp.p_value
            method = "not paired (separate loads): ratio of means; " + cmp.method
        rows.append(
            SweepRow(
                model=model,
                engine=engine,
                test=test,
                configs=len({row_key(r) for r in group}),
                best=key_label(row_key(best)),
                best_ts=best.avg_ts,
                best_stddev_ts=best.stddev_ts,
                default=key_label(row_key(d)),
                default_ts=d.avg_ts,
                default_stddev_ts=d.stddev_ts,
                default_over_best=ratio,
                ratio_low=low,
                ratio_high=high,
                p_value=p,
                significant=bool(p == p and p < alpha),
                repetitions=len(d.samples_ts),
                method=method,
            )
        )
    return rows


def run_sweep(
    engine,
    configs: Sequence[Sequence[SpeedTest]],
    *,
    config,
    repetitions: int,
    warmup: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    method: str = "auto",
    runner: Callable[..., list] = run_speed,
) -> list:
    """Every configuration's tests on one loaded engine, round-robin: round k runs one repetition of every
    configuration (each after its own warm-up, as the llama-bench method's fresh context needs), in the
    given order on even rounds and reversed on odd ones; then one row per configuration and test with its
    samples in round order (bench.speed.interleave.merge_turns), so rows of one sweep pair by round."""
    order = (
        f"{len(configs)} configurations round-robin, one repetition each per round, order reversed every "
        f"other round, {repetitions} rounds"
    )
    turns: list[list[list]] = [[] for _ in configs]
    total, done = len(configs) * repetitions, 0
    for rep in range(repetitions):
        indices = range(len(configs)) if rep % 2 == 0 else reversed(range(len(configs)))
        for i in indices:
            report = None
            if progress:

                def report(fraction, message, done=done, label=f"round {rep + 1}/{repetitions}"):
                    progress((done + fraction) / total, f"{label}: {message}")

            turns[i].append(
                runner(
                    engine,
                    configs[i],
                    config=config,
                    repetitions=1,
                    warmup=warmup,
                    seed=seed + rep,
                    progress=report,
                    cancel=cancel,
                    method=method,
                )
            )
            done += 1
    return [
        merge_turns([turn[j] for turn in turns[i]], "", order)
        for i in range(len(configs))
        for j in range(len(configs[i]))
    ]


def best_overall(results: Sequence, tests: Sequence[str]) -> tuple[str, float] | None:
    """The configuration with the highest geometric mean, over `tests`, of its t/s ÷ that test's best
    (derived; 1.0 would be the fastest on every test). None when no configuration ran every test."""
    by_key: dict[tuple, dict[str, float]] = {}
    best: dict[str, float] = {}
    for r in results:
        if r.test in tests:
            by_key.setdefault(row_key(r), {})[r.test] = r.avg_ts
            best[r.test] = max(best.get(r.test, 0.0), r.avg_ts)
    scores = {
        key: math.exp(sum(math.log(ts[t] / best[t]) for t in tests) / len(tests))
        for key, ts in by_key.items()
        if all(ts.get(t, 0) > 0 and best[t] > 0 for t in tests)
    }
    if not scores:
        return None
    key = max(scores, key=scores.get)
    return key_label(key), scores[key]


def sweep_report(rows: Sequence[SweepRow], results: Sequence, grid: Grid) -> str:
    """Markdown: the grid, one line per test (best beside default), and the best configuration overall."""
    if not rows:
        return "\n## Sweep\n\nno test ran its default configuration: nothing to compare\n"
    table = [
        {
            "model": r.model,
            "test": r.test,
            "best config": r.best,
            "best t/s": f"{r.best_ts:.2f} ± {r.best_stddev_ts:.2f}",
            "default config": r.default,
            "default t/s": f"{r.default_ts:.2f} ± {r.default_stddev_ts:.2f}",
            "default ÷ best (derived)": f"{r.default_over_best:.3f}",
            "95 % interval": f"{r.ratio_low:.3f}-{r.ratio_high:.3f}" if r.ratio_low == r.ratio_low else "",
            "p": f"{r.p_value:.3f}",
            "beyond noise": "yes" if r.significant else "no",
        }
        for r in rows
    ]
    import pandas as pd

    lines = [
        "",
        "## Sweep: the default configuration beside the fastest",
        "",
        f"grid: {grid.describe()}, interleaved (one repetition of every configuration per round, order reversed "
        f"every other round). t/s: mean ± sample stddev over {rows[0].repetitions} rounds, each after a warm-up. "
        "default ÷ best: geometric mean over rounds of the two in the same round, with its 95 % interval; the "
        "best is the highest of many means, picked with the noise in its favour. 'beyond noise': "
        + "; ".join(dict.fromkeys(r.method for r in rows))
        + ".",
        "",
        to_markdown(pd.DataFrame(table)).rstrip("\n"),
    ]
    overall = best_overall(results, [r.test for r in rows])
    if overall:
        label, score = overall
        lines += [
            "",
            f"best on all tests together: {label} (geometric mean of t/s ÷ each test's best: {score:.3f}, derived)",
        ]
    return "\n".join(lines) + "\n"


def sweep_plan(grid: Grid, tests, loads, n_prompt, n_gen, pg):
    """[(load, [tests of one configuration, ...])] for `bench --sweep` (n_prompt, n_gen, pg: its -p, -n, -pg):
    the grid's tests grouped by configuration
    under every load, plus the default point's tests (explicit threads, n_batch and flash_attn auto) under
    the load with the default's n_gpu_layers, unless the grid already holds that point."""
    from bench.speed.runner import DecodeSettings, plan_tests

    t, b, fa, ngl = grid.default
    groups: dict = {}
    for test in tests:
        groups.setdefault(test.settings, []).append(test)
    configs, extra = list(groups.values()), []
    if not grid.in_grid():
        depths = list(dict.fromkeys(x.n_depth for x in tests))
        kept = {k: v for k, v in tests[0].settings.given().items() if k in ("n_ubatch", "type_k", "type_v")}
        settings = DecodeSettings(flash_attn=fa, n_batch=b, n_threads=t, **kept)
        extra = [plan_tests(n_prompt, n_gen, pg, depths, [settings])]
    return [(load, configs + (extra if load.n_gpu_layers in (None, ngl) else [])) for load in loads]
