"""`python app.py suite [--quick]` — the design record's verification plan, run on this machine.

Each step is one of the existing commands, run with the plan's settings and stored like any other run:

1. speed across backends: `bench` on every usable local engine (llama.cpp, MLX, PyTorch) on the same
   bundled model; the accelerated-vs-CPU ratio is derived from those rows by the scorecard;
2. quantization quality: `quant` (the lab) on the bundled model, Q8_0 and Q4_K_M against the reference;
3. memory: every speed row carries the worker's own memory, which the scorecard compares with RAM;
4. context length: `bench -d` depth points where `bench` supports them (else the step says so);
5. power: the llama.cpp speed step under machine.power's sampler, or "not available here: <why>".

Then the scorecard is printed. A step that fails is reported on one line and the next one runs; the
suite exits 2 only if no step ran. `--quick` uses CI-sized settings.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import sys

NAME = "suite"
HELP = "Run the design record's verification plan (speed across engines, quality, memory, context, power)."

QUICK = {"bench": ["-p", "64", "-n", "16", "-r", "2"], "quant": ["--variants", "Q8_0,Q4_K_M", "--chunks", "1"]}
FULL = {"bench": ["-p", "512", "-n", "128", "-r", "5"], "quant": ["--variants", "Q8_0,Q6_K,Q4_K_M,Q4_0,Q2_K"]}
DEPTHS = ("512", "2048")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="CI-sized settings (a few minutes on 2 cores)")
    parser.add_argument("--model", "-m", default="smollm2-135m", help="catalog name of the model (default bundled)")
    parser.add_argument(
        "--engines", default="llamacpp,mlx,torch", help="local engines to compare (default llamacpp,mlx,torch)"
    )
    parser.add_argument("--skip", default="", help="steps to leave out: speed,quality,context,power")
    parser.add_argument("-o", "--output", choices=["csv", "json", "md", "table"], default="md")


def _command(name: str, argv: list[str]) -> int:
    """Run one command module with its own parser, its table silenced (the runs are stored)."""
    module = importlib.import_module(f"commands.{name.replace('-', '_')}")
    parser = argparse.ArgumentParser(prog=f"app.py {name}")
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(io.StringIO()):
        return module.run(args)


def _supports(name: str, flag: str) -> bool:
    module = importlib.import_module(f"commands.{name}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return any(flag in action.option_strings for action in parser._actions)


def run(args: argparse.Namespace) -> int:
    from core.errors import Cancelled, LocalbenchError
    from engines.registry import engine_class

    plan = QUICK if args.quick else FULL
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    steps: list[tuple[str, str, list[str]]] = []
    if "speed" not in skip:
        for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
            ok, why = engine_class(engine).availability()
            if not ok:
                print(f"suite: speed on {engine}: not available here: {why}", file=sys.stderr)
                continue
            steps.append((f"speed on {engine}", "bench", ["--engine", engine, "--model", args.model, *plan["bench"]]))
    if "quality" not in skip:
        steps.append(("quantization quality", "quant", ["--model", args.model, "--no-speed", *plan["quant"]]))
    if "context" not in skip:
        if _supports("bench", "-d"):
            depth = ["-d", ",".join(DEPTHS[:1] if args.quick else DEPTHS)]
            steps.append(("context depth", "bench", ["--model", args.model, "-p", "0", "-n", "16", "-r", "2", *depth]))
        else:
            print("suite: context depth: not available: this bench has no -d", file=sys.stderr)
    ran = 0
    for label, command, argv in steps:
        print(f"suite: {label} …", file=sys.stderr, flush=True)
        try:
            if label == "speed on llamacpp" and "power" not in skip:
                _with_power(lambda c=command, a=argv: _command(c, a))
            else:
                _command(command, argv)
            ran += 1
        except Cancelled as err:  # the user stopped the suite: the step is stored as cancelled, not failed
            print(f"suite: {label} cancelled: {err}", file=sys.stderr)
            raise
        except LocalbenchError as err:
            print(f"suite: {label} failed: {err}", file=sys.stderr)
    if not ran:
        raise LocalbenchError("no step of the suite ran — see the lines above")
    from commands import scorecard

    parser = argparse.ArgumentParser()
    scorecard.add_arguments(parser)
    return scorecard.run(parser.parse_args(["-o", args.output]))


def _with_power(fn) -> None:
    """Run fn under this machine's power sampler; print the reading or why there is none."""
    from machine.power import PowerReading, power_sampler

    sampler = power_sampler()
    if isinstance(sampler, PowerReading):
        print(f"suite: power: {sampler.message or 'not available here'}", file=sys.stderr)
        fn()
        return
    sampler.start()
    try:
        fn()
    finally:
        reading = sampler.stop()
    if reading.avg_power_w is None:
        print(f"suite: power: {reading.message or 'no reading'}", file=sys.stderr)
    else:
        print(
            f"suite: power: {reading.avg_power_w:.1f} W mean over {reading.duration_s:.0f} s ({reading.source})",
            file=sys.stderr,
        )
