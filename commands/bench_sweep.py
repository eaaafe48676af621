"""`bench --sweep`'s flags: the grid from what was given and the machine (bench.speed.sweep.make_grid), and the
per-load plan of configurations, the default point included. The run and the report are bench.speed.sweep's."""

from __future__ import annotations

import argparse

from commands.output import LLAMA_BENCH_N_BATCH, str_list


def sweep_grid(args: argparse.Namespace, engine_name: str):
    """bench.speed.sweep.Grid for `--sweep`, after checking the flags; fills args' -t, -b and -fa with the grid's
    values where they were not given (bad combinations raise BadParameter before anything loads)."""
    from bench.speed.sweep import make_grid
    from core.errors import BadParameter
    from engines.llamacpp_bench import flash_attn_type
    from machine.detect import detect_hardware, usable_cpus
    from planning.runtime import optimal_config

    if engine_name != "llamacpp" or args.method == "stream":
        raise BadParameter(
            "--sweep varies llama.cpp's context settings (threads × n_batch × flash_attn) with llama-bench's "
            f"method; engine {engine_name}"
            + (" with --method stream" if engine_name == "llamacpp" else "")
            + " has none — give -t and -b lists for a plain cross-product"
        )
    if args.aa:
        raise BadParameter("--sweep and --aa: run one at a time")
    for flag, text in (
        ("-ub", args.ubatch_size),
        ("-ctk", args.cache_type_k),
        ("-ctv", args.cache_type_v),
        ("-mmp", args.mmap),
        ("--repack", args.repack),
    ):
        if text is not None and len(str_list(text)) > 1:
            raise BadParameter(f"--sweep: give one value of {flag} (it sweeps threads, n_batch and flash_attn)")
    fa = None if args.flash_attn is None else [flash_attn_type(x) for x in str_list(args.flash_attn)]
    cfg = optimal_config(detect_hardware())
    grid = make_grid(
        n_cpus=usable_cpus(),
        default=(cfg.n_threads, LLAMA_BENCH_N_BATCH, -1, cfg.n_gpu_layers),
        threads=args.threads,
        batches=args.batch,
        flash_attn=fa,
        n_gpu_layers=args.n_gpu_layers,
    )
    args.threads, args.batch = grid.threads, grid.batches
    args.flash_attn = ",".join(str(x) for x in grid.flash_attn)
    return grid


def sweep_plan(args: argparse.Namespace, grid, tests, loads):
    """[(load, [tests of one configuration, ...])] for a sweep: the grid's tests grouped by configuration
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
        extra = [plan_tests(args.n_prompt, args.n_gen, args.pg, depths, [settings])]
    return [(load, configs + (extra if load.n_gpu_layers in (None, ngl) else [])) for load in loads]
