"""bench.speed.sweep: the sweep's grid, and the default-beside-best summary on rows (pure); the interleaved run
itself is tested on the bundled model in tests/test_bench_formats_cli.py."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from bench.speed.sweep import (
    Grid,
    best_overall,
    key_label,
    make_grid,
    sweep_report,
    sweep_summary,
    sweep_threads,
)
from bench.stats import paired_ratio, welch


@pytest.mark.parametrize(
    ("n_cpus", "picked", "expected"),
    [(2, 2, [1, 2]), (8, 6, [1, 2, 4, 6, 8]), (1, 1, [1]), (12, 10, [1, 2, 4, 8, 10, 12]), (4, 3, [1, 2, 3, 4])],
)
def test_sweep_threads_powers_of_two_the_count_and_the_pick(n_cpus, picked, expected):
    assert sweep_threads(n_cpus, picked) == expected


def test_grid_sweeps_what_was_not_given_and_layers_only_where_offloaded():
    cpu = make_grid(n_cpus=2, default=(2, 2048, -1, 0))
    assert (cpu.threads, cpu.batches, cpu.flash_attn, cpu.n_gpu_layers) == ([1, 2], [256, 512, 2048], [0, 1], [0])
    assert not cpu.in_grid() and cpu.points() == 2 * 3 * 2 + 1  # flash_attn auto is the default's own point
    gpu = make_grid(n_cpus=8, default=(6, 2048, -1, -1))
    assert gpu.n_gpu_layers == [0, -1] and gpu.points() == 5 * 3 * 2 * 2 + 1
    fixed = make_grid(
        n_cpus=8, default=(6, 2048, -1, -1), threads=[4], batches=[512], flash_attn=[-1, 1], n_gpu_layers=0
    )
    assert (fixed.threads, fixed.batches, fixed.flash_attn, fixed.n_gpu_layers) == ([4], [512], [-1, 1], [0])
    assert fixed.default == (6, 2048, -1, 0) and fixed.points() == 3
    full = Grid([1, 2], [2048], [-1, 0, 1], [0], default=(2, 2048, -1, 0))
    assert full.in_grid() and full.points() == 6
    assert (
        key_label((2, 2048, -1, 0)) == "t 2, b 2048, fa auto"
        and key_label((8, 512, 1, -1)) == "t 8, b 512, fa 1, ngl -1"
    )


def row(test, t, b, fa, samples, model="m", order="one sweep"):
    mean = sum(samples) / len(samples)
    sd = (sum((x - mean) ** 2 for x in samples) / (len(samples) - 1)) ** 0.5
    return SimpleNamespace(
        model=model,
        engine="llamacpp",
        test=test,
        n_threads=t,
        n_batch=b,
        flash_attn=fa,
        n_gpu_layers=0,
        samples_ts=tuple(samples),
        avg_ts=mean,
        stddev_ts=sd,
        run_order=order,
    )


def test_summary_pairs_the_default_with_the_best_round_by_round():
    rows = [
        row("pp64", 1, 2048, 1, [50, 51, 49, 50]),
        row("pp64", 2, 2048, 1, [100, 110, 90, 100]),
        row("pp64", 2, 2048, -1, [90, 99, 81, 90]),  # 10 % behind in every round: beyond noise, though the
        row("tg8", 1, 2048, 1, [20, 21, 19, 20]),  # rounds drift by ±10 % (Welch alone would miss it)
        row("tg8", 2, 2048, 1, [30, 35, 25, 30]),
        row("tg8", 2, 2048, -1, [31, 29, 27, 29]),  # ahead in one round, behind in others: noise
    ]
    pp, tg = sweep_summary(rows, (2, 2048, -1, 0))
    assert (pp.test, pp.best, pp.default, pp.configs) == ("pp64", "t 2, b 2048, fa 1", "t 2, b 2048, fa auto", 3)
    assert pp.default_over_best == pytest.approx(0.9) and pp.ratio_low == pytest.approx(0.9) and pp.significant
    assert welch(rows[1].samples_ts, rows[2].samples_ts).p_value > 0.05  # what pairing by round buys
    ratios = [31 / 30, 29 / 35, 27 / 25, 29 / 30]
    assert tg.default_over_best == pytest.approx(math.prod(ratios) ** 0.25)
    assert tg.ratio_low < 1 < tg.ratio_high and not tg.significant and tg.p_value > 0.5
    assert tg.method.startswith("paired by round")
    label, score = best_overall(rows, ["pp64", "tg8"])
    assert label == "t 2, b 2048, fa 1" and score == pytest.approx(1.0)
    text = sweep_report([pp, tg], rows, make_grid(n_cpus=2, default=(2, 2048, -1, 0)))
    assert "| pp64 | t 2, b 2048, fa 1 | 100.00 ± 8.16 | t 2, b 2048, fa auto | 90.00 ± 7.35 | 0.900 |" in text
    assert "best on all tests together: t 2, b 2048, fa 1" in text


def test_summary_of_separate_loads_is_unpaired_and_of_a_fastest_default_is_one():
    rows = [row("tg8", 2, 2048, -1, [30, 31, 29], order="load 1"), row("tg8", 1, 2048, 0, [40, 41, 39, 40])]
    (unpaired,) = sweep_summary(rows, (2, 2048, -1, 0))
    assert unpaired.default_over_best == pytest.approx(30 / 40) and unpaired.ratio_low != unpaired.ratio_low
    assert unpaired.method.startswith("not paired") and unpaired.significant
    rows = [row("tg8", 2, 2048, -1, [30, 31, 29]), row("tg8", 1, 2048, 0, [20, 21, 19]), row("pp8", 1, 256, 0, [9, 9])]
    (only,) = sweep_summary(rows, (2, 2048, -1, 0))  # pp8 never ran the default: left out, not guessed
    assert only.test == "tg8" and only.default_over_best == 1.0 and only.p_value == 1.0 and not only.significant
    assert "nothing to compare" in sweep_report([], rows, make_grid(n_cpus=2, default=(2, 2048, -1, 0)))


def test_paired_ratio_interval_and_edge_cases():
    ratio, low, high, p = paired_ratio([90, 99, 81], [100, 110, 90])
    assert (ratio, low, high) == pytest.approx((0.9, 0.9, 0.9)) and p == 0.0  # constant ratio: no spread
    ratio, low, high, p = paired_ratio([1.0], [2.0])
    assert ratio == 0.5 and low != low and p != p  # one round: no interval


def test_sweep_plan_on_an_offloading_machine_loads_once_per_layer_count():
    """Where the planner offloads (Metal, CUDA), n_gpu_layers 0 and -1 are two loads; the default point
    runs only under the load with the default's layer count (the same plan code runs on the CPU)."""
    import argparse

    from bench.speed.sweep import sweep_plan
    from commands.bench import add_arguments, bench_plan
    from engines.base import LoadConfig

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["-p", "16", "-n", "4", "-t", "1,2", "-b", "512,2048", "-fa", "0,1"])
    grid = make_grid(n_cpus=2, default=(2, 2048, -1, -1), threads=args.threads, batches=args.batch, flash_attn=[0, 1])
    tests, loads = bench_plan(args, per_test_threads=True, n_gpu_layers=grid.n_gpu_layers)
    assert [load.n_gpu_layers for load in loads] == [0, -1]
    plan = sweep_plan(grid, tests, loads, args.n_prompt, args.n_gen, args.pg)
    (l0, configs0), (l1, configs1) = plan
    assert l0.n_gpu_layers == 0 and l1.n_gpu_layers == -1
    assert len(configs0) == 2 * 2 * 2 and len(configs1) == 2 * 2 * 2 + 1
    default = configs1[-1]
    assert [t.name for t in default] == ["pp16", "tg4"]
    assert {(t.settings.n_threads, t.settings.n_batch, t.settings.flash_attn) for t in default} == {(2, 2048, -1)}
    assert all(len({t.settings for t in c}) == 1 for c in configs0)  # one configuration per group
    assert l1.config(LoadConfig()).n_gpu_layers == -1 and l0.config(LoadConfig(n_gpu_layers=-1)).n_gpu_layers == 0
