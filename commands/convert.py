"""`python app.py convert` — make the HF safetensors and MLX copies the torch and MLX engines run, and Core ML
packages of embedding models.

Examples:
    python app.py convert --model smollm2-135m --to hf          # GGUF → HF safetensors (bf16, dequantized)
    python app.py convert --model smollm2-135m --to mlx-4bit    # → HF → MLX 4-bit (group size 64)
    python app.py convert --model smollm2-135m --to all
    python app.py convert --model all-minilm-l6-v2 --to coreml  # → fp16 ML Program .mlpackage (runs on macOS)
    python app.py convert --list

Results are cached under LOCALBENCH_HOME/cache/converted as '<model>@<variant>' and appear in every
model picker; the engines also convert on first use, so this command only does the work ahead of time.
Core ML packages (engines.coreml) are cached under LOCALBENCH_HOME/cache/coreml; they convert on any OS and
predict on macOS only. Causal LMs do not convert to Core ML yet: the command says what blocks them.
"""

from __future__ import annotations

import argparse
import sys

NAME = "convert"
HELP = (
    "Convert a GGUF model to HF safetensors (torch engine) or MLX bf16/8-bit/4-bit (MLX engine), or an embedding "
    "model to a Core ML package; cached."
)
CHOICES = ("hf", "mlx-bf16", "mlx-8bit", "mlx-4bit", "all", "coreml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default="smollm2-135m", help="catalog name or path (default smollm2-135m)")
    parser.add_argument(
        "--to",
        choices=CHOICES,
        default=None,
        help="target format (all = hf and every MLX variant; coreml = fp16 ML Program of an embedding model)",
    )
    parser.add_argument("--force", action="store_true", help="convert again even if a cached copy exists")
    parser.add_argument("--list", action="store_true", help="list converted models and exit")


def run(args: argparse.Namespace) -> int:
    from commands.output import cli_progress
    from core.errors import BadParameter
    from models import convert, converted

    if args.list:
        return _print_list(converted.converted_models())
    if args.to is None:
        raise BadParameter("say what to convert to: --to hf, mlx-bf16, mlx-8bit, mlx-4bit, all or coreml")
    if args.to == "coreml":
        return _to_coreml(args, cli_progress)
    from models.catalog import resolve_model

    source = resolve_model(args.model)  # an unknown name fails here, before any progress bar is drawn
    targets = ["hf", "mlx-bf16", "mlx-8bit", "mlx-4bit"] if args.to == "all" else [args.to]
    for target in targets:
        bar, progress = cli_progress(f"{args.model} → {target}")
        try:
            ref = convert.convert(source, target, force=args.force, progress=progress)
        finally:
            bar.close()
        print(f"{ref.name}\t{ref.path}\t{ref.note}")
    return 0


def _to_coreml(args: argparse.Namespace, cli_progress) -> int:
    """Convert an embedding model to a Core ML package; a causal LM gets the reason it cannot yet."""
    from core.errors import BadParameter, LocalbenchError
    from engines import coreml
    from engines.embeddings import resolve_embed_model

    try:
        resolve_embed_model(args.model)
    except LocalbenchError as err:
        from models.catalog import resolve_model

        try:
            resolve_model(args.model)
        except LocalbenchError:
            raise err from None
        raise BadParameter(
            f"{args.model} is a text-generation model: {coreml.CONVERSION_BLOCKER.split('; ')[0]}; "
            "Core ML conversion takes embedding models (all-minilm-l6-v2 or a sentence-transformers folder)"
        ) from None
    bar, progress = cli_progress(f"{args.model} → coreml")
    try:
        manifest = coreml.convert_embedder(args.model, force=args.force, progress=progress)
    finally:
        bar.close()
    print(f"{manifest['name']}\t{manifest['package']}\t{manifest['note']}")
    why = coreml.predict_blocker()
    if why:
        print(f"note: {why}", file=sys.stderr)
    return 0


def _print_list(refs) -> int:
    from pathlib import Path

    from engines.coreml import converted_packages

    packages = converted_packages()
    if not refs and not packages:
        print("no converted models yet — run `python app.py convert --model smollm2-135m --to hf`", file=sys.stderr)
        return 0
    for ref in refs:
        size = sum(p.stat().st_size for p in Path(ref.path).glob("*.safetensors"))
        print(f"{ref.name}\t{ref.format}\t{size / 2**20:.1f} MiB\t{ref.note}")
    for manifest in packages:
        size = sum(p.stat().st_size for p in Path(manifest["package"]).rglob("*") if p.is_file())
        print(f"{manifest['name']}\tcoreml\t{size / 2**20:.1f} MiB\t{manifest['note']}")
    return 0
