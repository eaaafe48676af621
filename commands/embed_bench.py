"""`python app.py embed-bench` — embeddings throughput over batch sizes, devices, precisions and backends.

Example: python app.py embed-bench --model all-minilm-l6-v2 --batch-sizes 8,32,128 --devices cpu -o csv
On a Mac: python app.py embed-bench --backends torch,coreml --devices cpu,mps --compute-units cpu_and_ne,all
Every run is stored (kind 'embed'); notes (skipped combinations, truncated texts) go to stderr.
"""

from __future__ import annotations

import argparse
import sys

NAME = "embed-bench"
HELP = "Embeddings throughput: sentences/s, tokens/s, batch latency, memory and agreement with fp32 CPU."


def word_list(text: str) -> list[str]:
    return [x.strip().lower() for x in text.split(",") if x.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        "-m",
        default="all-minilm-l6-v2",
        help="all-minilm-l6-v2 (bundled), a sentence-transformers folder, or ollama:<name>",
    )
    parser.add_argument(
        "--batch-sizes",
        "-b",
        type=word_list,
        default=["1", "8", "32", "128", "512"],
        help="comma-separated batch sizes (default 1,8,32,128,512)",
    )
    parser.add_argument(
        "--devices",
        "-d",
        type=word_list,
        default=["auto"],
        help="comma-separated: auto, cpu, cuda, mps (default auto: from the hardware)",
    )
    parser.add_argument("--precisions", "-P", type=word_list, default=["fp32"], help="fp32, fp16, bf16 (default fp32)")
    parser.add_argument(
        "--backends",
        "--backend",
        type=word_list,
        default=["torch"],
        help="torch, onnx, coreml (macOS: the fp16 Core ML package, converted first if needed) (default torch)",
    )
    parser.add_argument(
        "--compute-units",
        type=word_list,
        default=["all"],
        help="Core ML compute units, comma-separated: cpu_only, cpu_and_gpu, cpu_and_ne, all (default all)",
    )
    parser.add_argument(
        "--sentences", "-n", type=int, default=2000, help="texts from the built-in corpus (default 2000)"
    )
    parser.add_argument("--corpus", default=None, help="a UTF-8 file with one text per line instead of the built-in")
    parser.add_argument("--host", default=None, help="Ollama host URL for ollama:<name> models")
    parser.add_argument("--api-key", default=None, help="bearer key for an Ollama server behind a proxy")
    parser.add_argument(
        "--warmup",
        choices=["none", "batch", "pass"],
        default="batch",
        help="untimed warm-up per batch size: the first batch (default), a whole pass over the "
        "corpus (steady state: on CUDA fp16/bf16 cuDNN plans each new shape once), or none",
    )
    parser.add_argument("--no-sort", action="store_true", help="embed in corpus order, not longest first")
    parser.add_argument("-o", "--output", choices=["csv", "json", "md", "table"], default="md")
    parser.add_argument("--out", default=None, help="write the table to this file instead of stdout")


def load_texts(args: argparse.Namespace) -> tuple[list[str], str]:
    """(texts, corpus name) from --corpus or the built-in generator."""
    from pathlib import Path

    from bench.embed.corpus import load_corpus_file, make_corpus

    if args.corpus:
        return load_corpus_file(args.corpus), Path(args.corpus).name
    return make_corpus(args.sentences), f"builtin-{args.sentences}"


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from bench.embed.runner import plan_embed_sweep, run_and_store, summary_frame, sweep_notes
    from bench.results.export import to_frame
    from bench.results.store import ResultStore
    from commands.output import cli_progress, emit
    from machine.detect import detect_hardware

    texts, corpus_name = load_texts(args)
    profile = detect_hardware()
    plan = plan_embed_sweep(
        args.model,
        args.batch_sizes,
        args.devices,
        args.precisions,
        args.backends,
        host=args.host,
        api_key=args.api_key,
        accelerators=profile.accelerators,
        compute_units=args.compute_units,
    )
    for note in sweep_notes(plan, []):
        print(f"note: {note}", file=sys.stderr)
    bar, progress = cli_progress(f"{Path(plan.model).name} embeddings")
    try:
        results, _ = run_and_store(
            ResultStore(),
            plan,
            texts,
            settings={"corpus": corpus_name},
            hardware=dataclasses.asdict(profile),
            warmup=args.warmup,
            sort_by_length=not args.no_sort,
            corpus_name=corpus_name,
            progress=progress,
        )
    finally:
        bar.close()
    for note in sweep_notes(plan, results)[len(plan.skipped) :]:
        print(f"note: {note}", file=sys.stderr)
    emit(to_frame(results), args.output, args.out, summary_frame)
    return 0
