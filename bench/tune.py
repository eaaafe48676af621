"""`bench --sweep`: measure the hardware-picked defaults against a grid of llama.cpp settings.

The grid is threads × n_batch × flash_attn (× n_gpu_layers where layers can be offloaded, Metal or
CUDA); the default point is what a plain `bench` runs (threads from planning.runtime.optimal_config,
llama-bench's n_batch 2048, flash_attn auto, the planner's n_gpu_layers). Every point is measured as
one bench row (warm-up, repetitions, raw samples). `sweep_summary` picks, per test, the fastest point and
sets the default's figure beside it as a derived ratio with a Welch t-test on the raw samples, so a
default 2 % behind the best within noise reads as such. Pure: rows in, rows and text out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.export import to_markdown
from bench.stats import welch

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
    """Derived: default_ts ÷ best_ts (1.0 when the default is the fastest)."""
    p_value: float
    significant: bool
    """The default differs from the best beyond noise (Welch's t-test on their raw samples)."""
    repetitions: int
    method: str


def sweep_summary(results: Sequence, default: tuple[int, int, int, int], alpha: float = 0.05) -> list[SweepRow]:
    """Per model, engine and test: the fastest configuration (highest mean t/s) and the default's row.
    A test whose default configuration did not run is left out (nothing to compare)."""
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
        cmp = welch(best.samples_ts, d.samples_ts, alpha)
        same = best is d
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
                default_over_best=d.avg_ts / best.avg_ts if best.avg_ts else math.nan,
                p_value=1.0 if same else cmp.p_value,
                significant=False if same else cmp.significant,
                repetitions=len(d.samples_ts),
                method=cmp.method,
            )
        )
    return rows


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
            "p (Welch)": f"{r.p_value:.3f}",
            "beyond noise": "yes" if r.significant else "no",
        }
        for r in rows
    ]
    import pandas as pd

    lines = [
        "",
        "## Sweep: the default configuration beside the fastest",
        "",
        f"grid: {grid.describe()}. t/s: mean ± sample stddev over {rows[0].repetitions} repetitions after a "
        f"warm-up; 'beyond noise': {rows[0].method}.",
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
