"""`python app.py plan` — will this model fit? The memory planner on the command line.

Example: python app.py plan --model smollm2-135m --quant Q4_K_M --ctx 8192 -o json
The model can be any model `python app.py models` lists, an hf:ORG/REPO[:QUANT] on the Hub (its header is read,
nothing downloaded), a parameter count with --quant (8B), a GGUF path, an HF or MLX folder, a planning entry of
the design target (ADR 006) (qwen3:8b, gemma3:12b, qwen3:30b-a3b) or an Ollama model (ollama:NAME, asked at --host).
"""

from __future__ import annotations

import argparse
import json
import sys

NAME = "plan"
HELP = "Estimate a model's memory (weights, KV cache, compute buffers) and whether it fits this machine."
FETCHES_MODELS = False
"""An hf: model is planned from its header on the Hub: nothing is downloaded."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        "-m",
        default="smollm2-135m",
        help="any model `models` lists, hf:ORG/REPO[:QUANT] (header read from the Hub, no download), a "
        "parameter count with --quant (8B, 135M), a GGUF path, an HF/MLX folder, a planning entry (qwen3:8b) "
        "or ollama:NAME",
    )
    parser.add_argument(
        "--quant",
        "-q",
        default=None,
        help="quantization to plan for, e.g. Q4_K_M, Q8_0, F16, 4bit (default: the file as shipped)",
    )
    parser.add_argument("--ctx", "-c", type=int, default=4096, help="context length in tokens (default 4096)")
    parser.add_argument(
        "--kv-type",
        default="f16",
        choices=["f16", "q8_0", "q4_0", "bf16", "f32"],
        help="KV cache type (llama.cpp -ctk/-ctv)",
    )
    parser.add_argument("--parallel", type=int, default=1, help="parallel sequences (n_parallel, default 1)")
    parser.add_argument("--host", default=None, help="Ollama host for ollama:NAME models (default OLLAMA_HOST)")
    parser.add_argument(
        "--available-gb",
        type=float,
        default=None,
        help="plan against this much available memory (GB, 1e9 bytes) instead of the live figure",
    )
    parser.add_argument("-o", "--output", choices=["json", "md"], default="md")


def run(args: argparse.Namespace) -> int:
    from core.errors import BadParameter
    from machine.detect import detect_hardware
    from planning.report import machine_plan
    from planning.specs import load_spec

    spec = load_spec(args.model, args.host)
    profile = detect_hardware(probe_bandwidth=False)  # the planner needs no bandwidth figure
    available = None
    if args.available_gb is not None:
        if not 0 < args.available_gb < 1e6:
            raise BadParameter(f"--available-gb must be a positive number of GB, got {args.available_gb}")
        available = int(args.available_gb * 1e9)
    report = machine_plan(spec, args.quant, args.ctx, profile, available, args.kv_type, args.parallel)
    text = json.dumps(report, indent=2, ensure_ascii=False) if args.output == "json" else markdown(report)
    sys.stdout.write(text + "\n")
    return 0


def markdown(report: dict) -> str:
    """The report as Markdown: components, verdicts, max context per quantization, recommendation."""
    from core.units import fmt_bytes

    est, model = report["estimate"], report["model"]
    lines = [
        f"## {model['name']} ({model['source']}) — {est['quantization']}, {est['n_ctx']} tokens, KV {est['kv_type']}",
        "",
        "| component | size | how |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {size} | {how} |" for name, size, how in report["components"]]
    lines += [
        "",
        f"- Available memory: **{report['fits']['available_memory']['text']}**",
        f"- GPU: **{report['fits']['gpu_share']['text']}**",
        "",
    ]
    lines += [
        f"Max context within {report['budget']['what']} ({fmt_bytes(report['budget']['bytes'])}):",
        "",
        "| quantization | weights | bpw | max context (tokens) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['quantization']} | {fmt_bytes(r['weights_bytes'])} | {r['bits_per_weight']:.2f} | "
        f"{r['max_ctx'] or 'does not fit'} |"
        for r in report["max_context"]
    ]
    rec = report["recommendation"]
    lines += ["", f"Recommended quantization: **{rec['quantization'] or 'none fits'}**", ""]
    lines += [f"- {reason}" for reason in rec["reasons"]]
    lines += [f"- Note: {n}" for n in (*est["notes"], *([model["note"]] if model.get("note") else []))]
    lines += ["", f"_{report['units']}_"]
    return "\n".join(lines)
