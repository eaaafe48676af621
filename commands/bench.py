"""`python app.py bench` — llama-bench-style speed tests on any engine, printed and stored.

Example: python app.py bench --engine llamacpp --model smollm2-135m -p 128 -n 64 -r 5 -o csv
"""

from __future__ import annotations

import argparse
import sys

from commands.output import LLAMA_BENCH_N_BATCH, cli_progress, emit, positive_threads, str_list, write_output

NAME = "bench"
HELP = "Run llama-bench-style speed tests (pp/tg/pg, repeated) and print a table; every run is stored."


def int_values(text: str) -> list[int]:
    """llama-bench's integer lists (bench.speed.plan.int_values): '128,512', '1-4', '0-512+128', '1-8*2'."""
    from bench.speed.plan import int_values as parse

    return parse(text)


def int_list(text: str) -> list[int]:
    try:
        return int_values(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers or ranges (1-4, 0-512+128), got {text!r}"
        ) from None


def thread_list(text: str) -> list[int]:
    """`-t` as llama-bench: '2', '1,2' or '1-4', each 1 or more."""
    values = int_list(text)
    if not values:
        raise argparse.ArgumentTypeError(f"must be a whole number of threads, got {text!r}")
    return [positive_threads(str(v)) for v in values]


def pair(text: str) -> tuple[int, int]:
    values = int_list(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected PROMPT,GEN such as 512,128, got {text!r}")
    return values[0], values[1]


def add_engine_arguments(parser: argparse.ArgumentParser, lists: bool = False) -> None:
    """Engine and load options shared by the commands that load a model; `lists`: -t and -b take
    llama-bench's lists and ranges (`bench`)."""
    parser.add_argument("--engine", default=None, help="engine name (default: chosen from the hardware)")
    parser.add_argument("--model", "-m", default="smollm2-135m", help="catalog name or path (default smollm2-135m)")
    parser.add_argument(
        "--threads",
        "-t",
        type=thread_list if lists else positive_threads,
        default=None,
        help="CPU threads, 1 or more (default: cores)" + (", e.g. 1-4 or 1,2" if lists else ""),
    )
    parser.add_argument("--n-gpu-layers", "-ngl", type=int, default=None, help="layers to offload (-1 all, 0 none)")
    parser.add_argument("--ctx", "-c", type=int, default=None, help="context window in tokens")
    parser.add_argument(
        "--batch",
        "-b",
        type=int_list if lists else int,
        default=None if lists else 512,
        help="prompt batch size in tokens"
        + (f", e.g. 256,512 (default: llama-bench's {LLAMA_BENCH_N_BATCH} on llama.cpp, else 512)" if lists else ""),
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, mps or metal (default: detected)")
    parser.add_argument("--dtype", default=None, help="fp32, fp16 or bf16 (torch/MLX engines)")
    parser.add_argument("--host", default=None, help="Ollama host URL (default OLLAMA_HOST or http://127.0.0.1:11434)")
    parser.add_argument(
        "--base-url", default=None, help="OpenAI-compatible server base URL, e.g. http://127.0.0.1:8080/v1"
    )
    parser.add_argument("--api-key", default=None, help="API key for the OpenAI-compatible server")
    parser.add_argument(
        "--allow-oversize", action="store_true", help="load even if the memory estimate says it won't fit"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="deadline: stop a request that yields no new token for this long, and give up on a server that "
        "sends no answer for this long (default 300 s, enough for a 30k-token prompt pass at 100 t/s)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_engine_arguments(parser, lists=True)
    parser.add_argument("-p", "--n-prompt", type=int_list, default=[512], help="prompt sizes (pp tests), e.g. 128,512")
    parser.add_argument("-n", "--n-gen", type=int_list, default=[128], help="generation lengths (tg tests)")
    parser.add_argument("-pg", type=pair, action="append", default=[], help="pp+tg test PROMPT,GEN (repeatable)")
    parser.add_argument(
        "-d", "--n-depth", default="0", help="KV-cache depths: each test runs after this many tokens, e.g. 0,512"
    )
    parser.add_argument("-r", "--repetitions", type=int, default=5, help="repetitions per test (default 5)")
    llama = parser.add_argument_group("llama.cpp settings (lists run as a cross-product, like llama-bench)")
    llama.add_argument("-fa", "--flash-attn", default=None, help="flash attention auto|on|off (default auto)")
    llama.add_argument("-ub", "--ubatch-size", default=None, help="physical batch sizes in tokens (default 512)")
    llama.add_argument("-ctk", "--cache-type-k", default=None, help="K cache types, e.g. f16,q8_0 (default f16)")
    llama.add_argument("-ctv", "--cache-type-v", default=None, help="V cache types (default f16)")
    llama.add_argument("-mmp", "--mmap", default=None, help="memory-map the file 0|1 (default 1)")
    llama.add_argument(
        "--repack", default=None, help="weight repack 0|1|auto (default auto: off where a canary shows it crashes)"
    )
    parser.add_argument(
        "--method",
        choices=["auto", "llama-bench", "stream"],
        default="auto",
        help="auto: llama_decode only for llama.cpp (llama-bench's method), streaming elsewhere",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="llama.cpp: run threads × n_batch × flash_attn (× n_gpu_layers on Metal/CUDA) and report the "
        "fastest per test beside the default configuration (a -t, -b or -fa you give fixes that setting)",
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "-o",
        "--output",
        choices=["csv", "json", "jsonl", "sql", "md", "table"],
        default="md",
        help="md/table: the short table; csv, json, jsonl, sql: llama-bench's fields first, then ours",
    )
    parser.add_argument("--out", default=None, help="write the table to this file instead of stdout")
    parser.add_argument(
        "--aa",
        action="store_true",
        help="A/A: run the same tests twice and report the difference (the noise floor) with a Welch t-test",
    )
    serving = parser.add_argument_group("serving benchmark (like vLLM benchmark_serving)")
    serving.add_argument(
        "--num-requests",
        type=int,
        default=None,
        help="send N streamed requests and report TTFT/TPOT/ITL/E2EL percentiles and throughput "
        "(prompt ≈ the first -p tokens, output ≤ the first -n tokens)",
    )
    serving.add_argument("--concurrency", type=int, default=1, help="requests in flight at once (default 1)")
    serving.add_argument(
        "--unload-after",
        action="store_true",
        help="Ollama: unload the model from the server when the serving benchmark ends (keep_alive 0)",
    )


def default_batches(args: argparse.Namespace, engine_name: str) -> list[int]:
    """-b as given, else [2048] on llama.cpp (llama-bench's default) and [512] on the other engines."""
    if args.batch is not None:
        return list(args.batch)
    return [LLAMA_BENCH_N_BATCH if engine_name == "llamacpp" else 512]


def load_config_from(args: argparse.Namespace, needed_ctx: int = 0):
    """LoadConfig from CLI flags, the rest from the hardware's optimal config (planning.runtime)."""
    from machine.detect import detect_hardware
    from planning.runtime import optimal_config

    given = (("host", args.host), ("base_url", args.base_url), ("api_key", args.api_key))
    timeout = getattr(args, "timeout", None)  # every wait on a server (headers, each byte) and each new token
    options = tuple((k, v) for k, v in given if v) + ((("idle_timeout_s", float(timeout)),) if timeout else ())
    n_ctx = args.ctx if args.ctx is not None else max(2048, 1 << max(needed_ctx, 1).bit_length())
    return optimal_config(detect_hardware()).load_config(
        n_ctx=n_ctx,
        n_threads=first_of(args.threads),
        n_gpu_layers=args.n_gpu_layers,
        n_batch=first_of(args.batch),
        device=args.device,
        dtype=args.dtype,
        allow_oversize=args.allow_oversize,
        options=options,
    )


def first_of(value):
    """The first of a -t/-b list (bench's lists; the first is the base load), or the value itself."""
    return value[0] if isinstance(value, list) and value else value


def default_engine(args: argparse.Namespace) -> str:
    if args.engine:
        return args.engine
    if args.base_url:
        return "openai"
    if args.host:
        return "ollama"
    return "llamacpp"


def run(args: argparse.Namespace) -> int:
    if getattr(args, "num_requests", None) is not None:
        return run_serving_cli(args)
    import dataclasses

    from bench.results.export import to_frame
    from bench.results.store import ResultStore
    from bench.speed.orchestrate import SpeedArm, SpeedSettings, run_and_store
    from bench.speed.sweep import sweep_plan
    from core.errors import BadParameter
    from machine.detect import detect_hardware
    from planning.guard import guarded_pool

    engine_name = default_engine(args)
    grid = sweep_grid(args, engine_name) if getattr(args, "sweep", False) else None
    args.batch = default_batches(args, engine_name)
    tests, loads = bench_plan(
        args,
        per_test_threads=engine_name == "llamacpp" and args.method != "stream",
        n_gpu_layers=grid.n_gpu_layers if grid and len(grid.n_gpu_layers) > 1 else None,
    )
    if grid is None:
        plan = [(load, tests) for load in loads]
    else:
        plan = sweep_plan(grid, tests, loads, args.n_prompt, args.n_gen, args.pg)
    if not 1 <= args.repetitions <= 1000:  # before any load: bad input costs nothing
        raise BadParameter(f"repetitions must be between 1 and 1000, got {args.repetitions}")
    needed = max(t.n_depth + t.n_prompt + t.n_gen for t in tests) + 16
    if engine_name != "llamacpp" and (any(x.options() for x in loads) or any(t.settings.given() for t in tests)):
        raise BadParameter(
            f"-fa, -ub, -ctk, -ctv, -mmp and --repack are llama.cpp settings; engine {engine_name} has none"
        )
    settings = SpeedSettings(
        arms=(SpeedArm(engine_name, args.model, load_config_from(args, needed)),),
        tests=tuple(tests),
        repetitions=args.repetitions,
        warmup=not args.no_warmup,
        seed=args.seed,
        method=args.method,
        plan=tuple((load, tuple(load_tests)) for load, load_tests in plan),  # one load each (bench.speed.plan)
        sweep=grid,
        aa=args.aa,
        timeout_s=getattr(args, "timeout", None),
    ).check()
    bar, progress = cli_progress(f"{args.model} on {engine_name}" + (f", sweep of {grid.points()}" if grid else ""))
    pool = guarded_pool(max_loaded=1)
    try:
        report = run_and_store(
            ResultStore(),
            settings,
            hardware=dataclasses.asdict(detect_hardware()),
            get_engine=pool.get,
            progress=progress,
        )
    finally:
        bar.close()
        pool.unload_all()
    if args.aa:
        return emit_aa(report, args)
    emit(to_frame(report.rows), args.output, args.out, display_frame)
    if grid is not None:
        from bench.speed.sweep import sweep_report, sweep_summary

        inline = args.output in ("md", "table") and not args.out
        text = sweep_report(sweep_summary(report.rows, grid.default), report.rows, grid)
        print(text, end="", file=sys.stdout if inline else sys.stderr)
    return 0


def emit_aa(report, args: argparse.Namespace) -> int:
    """Print an A/A pair's comparison (both halves are stored: A1 and A2) and its noise floor."""
    from bench.results.export import to_frame
    from bench.speed.ab import noise_floor_pct

    emit(to_frame(report.ab), args.output, args.out)
    floor = noise_floor_pct(report.ab)
    print(f"noise floor (largest |A1 − A2|): {floor:.2f} % — runs {report.run_id}, {report.ab_run_id}", file=sys.stderr)
    return 0


def bench_plan(args: argparse.Namespace, per_test_threads: bool = True, n_gpu_layers=None):
    """(tests, loads) from the flags, as bench.speed.plan.cross_product orders them: the tests with their
    context settings, and one bench.speed.plan.Load per model load (`n_gpu_layers`: a list of them makes one
    load each, `--sweep` on Metal/CUDA). Bad values raise BadParameter."""
    from bench.speed.plan import checked, cross_product
    from core.errors import BadParameter
    from engines.llamacpp_bench import flash_attn_type, kv_type

    def values(flag: str, text, parse):
        if text is None:
            return [None]
        try:
            out = [parse(x) for x in str_list(text)]
        except ValueError:
            raise BadParameter(f"{flag}: cannot read {text!r}") from None
        if not out:
            raise BadParameter(f"{flag}: no value in {text!r}")
        return out

    try:
        depths = int_values(args.n_depth)
    except ValueError:
        raise BadParameter(f"-d: expected depths such as 0,512 or 0,512-4096*2, got {args.n_depth!r}") from None
    if not depths or any(d < 0 for d in depths):
        raise BadParameter(f"-d: depths must be integers >= 0, got {args.n_depth!r}")
    ub = values("-ub", args.ubatch_size, int)
    if any(u is not None and u < 1 for u in ub):
        raise BadParameter(f"-ub: batch sizes must be >= 1, got {args.ubatch_size!r}")

    def choice(mapping: dict):
        def parse(x: str):
            if x.lower() not in mapping:
                raise ValueError(x)
            return mapping[x.lower()]

        return parse

    return cross_product(
        n_prompt=args.n_prompt,
        n_gen=args.n_gen,
        pg=args.pg,
        depths=depths,
        threads=[None] if args.threads is None else checked("-t", args.threads, 1),
        batches=checked("-b", args.batch, 1),
        flash_attn=values("-fa", args.flash_attn, flash_attn_type),
        n_ubatch=ub,
        type_k=values("-ctk", args.cache_type_k, kv_type),
        type_v=values("-ctv", args.cache_type_v, kv_type),
        use_mmap=values("-mmp", args.mmap, choice({"0": False, "1": True})),
        repack=values("--repack", args.repack, choice({"0": False, "1": True, "auto": "auto"})),
        n_gpu_layers=n_gpu_layers or [None],
        per_test_threads=per_test_threads,
    )


VARYING_COLUMNS = {
    "n_gpu_layers": "ngl",
    "n_batch": "n_batch",
    "n_ubatch": "n_ubatch",
    "type_k": "type_k",
    "type_v": "type_v",
    "flash_attn": "fa",
    "use_mmap": "mmap",
    "repack": "repack",
}
"""Settings shown as a column after `threads` when they differ between rows (llama-bench's column names)."""


def display_frame(frame):
    """llama-bench's printed columns: model, size, params, backend, threads, the settings that vary, test, t/s."""
    import pandas as pd

    from bench.results.export import mean_pm_column

    varying = {
        name: frame[field].replace({-1: "auto"}) if field == "flash_attn" else frame[field]
        for field, name in VARYING_COLUMNS.items()
        if field in frame and frame[field].astype(str).nunique() > 1
    }
    return pd.DataFrame(
        {
            "model": frame["model_type"],
            "size_MiB": (frame["model_size"] / 2**20).round(2),
            "params_M": (frame["model_n_params"] / 1e6).round(1),
            "engine": frame["engine"],
            "backend": frame["backends"],
            "threads": frame["n_threads"],
            **varying,
            "test": frame["test"],
            "t/s": mean_pm_column(frame["avg_ts"], frame["stddev_ts"]),
            "ttft_ms": frame["avg_ttft_ms"].round(1).astype(object).where(frame["avg_ttft_ms"].notna(), ""),
            "method": frame["bench_method"],
        }
    )


def run_serving_cli(args: argparse.Namespace) -> int:
    """The serving-style benchmark: N requests at concurrency C; a run with failures is stored as failed."""
    import dataclasses

    from bench.results.export import render, to_frame
    from bench.results.store import ResultStore
    from bench.speed.serving import run_serving, serving_report
    from core.errors import BadParameter, ServerError
    from machine.detect import detect_hardware
    from planning.guard import guarded_pool

    args.batch = default_batches(args, default_engine(args))
    if len(args.threads or ()) > 1 or len(args.batch) > 1:
        raise BadParameter("the serving benchmark runs one configuration: give one -t and one -b")
    n_prompt, n_gen = args.n_prompt[0], args.n_gen[0]
    config = load_config_from(args, n_prompt + n_gen + 64)
    if args.unload_after:
        config = dataclasses.replace(config, options=(*config.options, ("unload_after", True)))
    engine_name = default_engine(args)
    endpoint = str(config.option("host") or config.option("base_url") or "")
    store = ResultStore()
    settings = {
        "engine": engine_name,
        "model": args.model,
        "num_requests": args.num_requests,
        "concurrency": args.concurrency,
        "n_prompt": n_prompt,
        "n_gen": n_gen,
        "endpoint": endpoint,
    }
    hardware = dataclasses.asdict(detect_hardware())
    bar, progress = cli_progress(f"{args.model} on {engine_name}, {args.num_requests} requests")
    pool = guarded_pool(max_loaded=1)
    with store.recording("serving", settings, hardware) as run:
        try:
            engine = pool.get(engine_name, args.model, config)
            result, _ = run_serving(
                engine,
                num_requests=args.num_requests,
                concurrency=args.concurrency,
                n_prompt=n_prompt,
                n_gen=n_gen,
                seed=args.seed,
                endpoint=endpoint,
                progress=progress,
            )
        finally:
            bar.close()
            pool.unload_all()
        run.rows = [result]
        if result.failed:
            run.status = "failed"
            run.error = f"{result.failed} of {result.num_requests} requests failed, so the run is stored as failed: "
            run.error += str(result.errors)
    text = serving_report(result) if args.output in ("md", "table") else render(to_frame([result]), args.output)
    write_output(text, args.out, "the serving result")
    if result.failed:
        raise ServerError(run.error)
    return 0


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
