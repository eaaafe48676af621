"""`python app.py quant` — build a model's GGUF quantization ladder and compare its variants: file size,
effective bits per weight, perplexity and KL divergence against the reference, pp/tg speed, answers.

Example: python app.py quant --model smollm2-135m --variants Q8_0,Q4_K_M,Q4_0,Q2_K -o csv

Given an HF safetensors original (a folder with config.json and BF16/F16/F32 *.safetensors), the reference is the
F16 GGUF that llama.cpp's own converter makes from it, and MLX rows come from mlx_lm.convert on the same folder:

    python app.py quant --model ~/models/SmolLM2-135M-Instruct --variants Q8_0,Q4_K_M,mlx-8bit,mlx-4bit

Importing this module registers the ladder's catalog provider (cheap: it lists finished files only),
so every command and the dashboard can run 'smollm2-135m@Q4_K_M' once it has been built.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from commands.output import positive_threads

NAME = "quant"
HELP = (
    "Build a GGUF quantization ladder (F16 … Q2_K) and compare variants: size, bits/weight, perplexity, "
    "KL divergence vs the reference, pp/tg speed and greedy answers; every run is stored."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.quant.lab import DEFAULT_PROMPT, DEFAULT_VARIANTS
    from bench.quant.ladder import LADDER_TYPES

    parser.add_argument(
        "--model",
        "-m",
        default="smollm2-135m",
        help="catalog name, path to a GGUF, or an HF safetensors folder (the original: BF16/F16/F32)",
    )
    parser.add_argument(
        "--variants",
        default=None,
        help=f"comma-separated types, or 'all' ({','.join(LADDER_TYPES)}), and extra rows such as mlx-4bit, "
        f"mlx-8bit, mlx-bf16, 'torch bf16' (see --list); default {','.join(DEFAULT_VARIANTS)}, plus "
        "mlx-8bit,mlx-4bit for an original",
    )
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="prompt for the side-by-side greedy answers")
    parser.add_argument("--max-tokens", type=int, default=48, help="answer length in tokens (default 48)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-p", "--n-prompt", type=int, default=256, help="pp test prompt tokens (default 256)")
    parser.add_argument("-n", "--n-gen", type=int, default=64, help="tg test generated tokens (default 64)")
    parser.add_argument("-r", "--repetitions", type=int, default=3, help="speed repetitions after 1 warm-up")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed tests")
    parser.add_argument("--no-quality", action="store_true", help="skip perplexity / KL divergence")
    parser.add_argument("--chunks", type=int, default=None, help="score only the first N chunks of the text")
    parser.add_argument(
        "--window",
        "-c",
        type=int,
        default=512,
        help="tokens per evaluation chunk, as llama-perplexity's -c (default 512; smaller is faster and noisier)",
    )
    parser.add_argument("--no-answers", action="store_true", help="skip the side-by-side greedy answers")
    parser.add_argument("--eval-file", default=None, help="evaluation text file (default: the bundled text)")
    parser.add_argument(
        "--threads", "-t", type=positive_threads, default=None, help="CPU threads, 1 or more (default: cores)"
    )
    parser.add_argument(
        "--quality-workers",
        type=int,
        default=1,
        help="variants scored at once, each on threads/workers threads (2 suits tiny models on a busy CPU)",
    )
    parser.add_argument("--list", action="store_true", help="list the variants of the model and which are built")
    parser.add_argument(
        "--fetch-converter",
        action="store_true",
        help="fetch llama.cpp's convert_hf_to_gguf.py (from the llama-cpp-python sdist) for offline use, then exit",
    )
    parser.add_argument("-o", "--output", choices=["csv", "json", "md", "table"], default="md")
    parser.add_argument("--out", default=None, help="write the table to this file instead of stdout")


def _read_eval(path: str | None) -> str | None:
    from core.errors import BadParameter

    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as err:
        raise BadParameter(f"cannot read the evaluation text {path}: {err}") from err


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from bench.quant.lab import (
        QuantSettings,
        built_choices,
        canonical_labels,
        compare_and_store,
        default_variants,
        variant_choices,
    )
    from bench.quant.ladder import parse_types
    from bench.quant.summary import summary_frame, to_frame
    from bench.results.store import ResultStore
    from commands.output import cli_progress, emit
    from core.errors import BadParameter
    from machine.detect import detect_hardware

    if args.fetch_converter:
        from models.original import fetch_converter

        print(fetch_converter(lambda f, m: print(m, file=sys.stderr)))
        return 0
    if args.list:
        built = set(built_choices(args.model))
        for label in variant_choices(args.model):
            print(f"{label}\t{'built' if label in built else 'not built'}")
        return 0
    if args.variants is None:
        labels = list(default_variants(args.model))
    else:
        labels = [v.strip() for v in args.variants.split(",") if v.strip()]
    if [v.lower() for v in labels] == ["all"]:
        labels = parse_types(labels)
    labels = canonical_labels(args.model, labels)
    settings = QuantSettings(
        variants=tuple(labels),
        prompt=args.prompt,
        max_tokens=args.max_tokens,
        seed=args.seed,
        n_prompt=args.n_prompt,
        n_gen=args.n_gen,
        repetitions=args.repetitions,
        speed=not args.no_speed,
        quality=not args.no_quality,
        max_chunks=args.chunks,
        eval_text=_read_eval(args.eval_file),
        threads=args.threads,
        quality_workers=args.quality_workers,
        window=args.window,
        answers=not args.no_answers,
    ).validate()
    unknown = [v for v in labels if v not in variant_choices(args.model)]
    if unknown:
        raise BadParameter(
            f"unknown variant(s) {', '.join(unknown)} for {args.model} — choose from "
            f"{', '.join(variant_choices(args.model))}"
        )
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # first Ctrl-C stops at the next step
    bars: list = []

    def progress(fraction: float, message: str) -> None:
        if not bars:  # the bar appears once work starts, so early errors print as one clean line
            bars.extend(cli_progress(f"quant {args.model}"))
        bars[1](fraction, message)

    try:
        report = compare_and_store(
            ResultStore(),
            args.model,
            settings,
            progress=progress,
            cancel=cancel,
            hardware=dataclasses.asdict(detect_hardware()),
        )
    finally:
        if bars:
            bars[0].close()
        signal.signal(signal.SIGINT, previous)
    origin = f"Reference: {report.reference_origin}\n" if report.reference_origin else ""
    print(
        f"{origin}{report.reference_note}\n{report.criterion}\nAnswers: {report.answer_mode} mode. "
        f"Evaluation text: {report.eval_source}.",
        file=sys.stderr,
    )
    # md/table: the tab's short table; csv/json: every QuantRow field as it is (these are not llama-bench rows:
    # the speed printer's integer columns refuse the NaNs of rows from engines without those fields)
    short = summary_frame if args.output in ("md", "table") else None
    emit(to_frame(report.rows), args.output, args.out, short)
    return 0
