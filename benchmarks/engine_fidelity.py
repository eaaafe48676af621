"""Fidelity and speed-up of the torch and MLX engines on *this* machine, with the real bundled SmolLM2
converted by our own code (models.convert: GGUF Q4_1 → HF bf16 → MLX).

- torch: ours (Engine.generate) against transformers' bare `model.generate` and a manual forward loop,
  interleaved per repetition (order alternating), one process, same threads.
- MLX: ours against a bare `mlx_lm.stream_generate` loop, interleaved; for ours, also the figure mlx-lm's
  own GenerationResponse reported in the same run (they must agree within 3 %).
- speed-up: for each engine, accelerated vs CPU where this machine has both devices (then `app.py bench`
  runs on each); otherwise one line saying that only the CPU exists.

Usage: python benchmarks/engine_fidelity.py [--reps 5] [-n 32] [--threads 1] [--out benchmarks/results]
Writes <prefix>_pairs.csv and <prefix>_summary.csv; the figures and the method go into README.md
(section "MLX and PyTorch engines").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_bench  # sits beside this script


def speedup_rows(model: str, n_prompt: int, n_gen: int, reps: int) -> tuple[list[dict], list[tuple[str, str]]]:
    """`app.py bench` on the accelerated device and on the CPU for each engine that has both here."""
    from machine import devices
    from machine.detect import detect_hardware

    hw = detect_hardware()
    rows, notes = [], []
    for engine, name in (("torch", f"{model}@hf-bf16"), ("mlx", f"{model}@mlx-bf16")):
        accelerated, sentence = devices.speedup_devices(engine, hw, devices.live_facts(engine))
        notes.append((engine, sentence))
        if accelerated is None:
            continue
        for device in (accelerated, "cpu"):
            rows += gpu_bench.cli_bench(engine, name, device, n_prompt, n_gen, reps)
    return rows, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-p", "--n-prompt", type=int, default=64)
    parser.add_argument("-n", "--n-gen", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--parts", default="torch,mlx,speedup")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--prefix", default="engines_cpu_fidelity")
    args = parser.parse_args()
    os.environ.setdefault("LOCALBENCH_NO_BW_PROBE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from models import convert

    parts = set(args.parts.split(","))
    pairs, cli, notes = [], [], []
    if "torch" in parts:
        hf = convert.convert("smollm2-135m", "hf")
        pairs += gpu_bench.torch_pairs(Path(hf.path), "cpu", args.n_prompt, args.n_gen, args.reps, args.threads)
    if "mlx" in parts:
        convert.convert("smollm2-135m", "mlx-bf16")
        pairs += gpu_bench.mlx_pairs("smollm2-135m@mlx-bf16", "cpu", args.n_gen, args.reps, "mlx-bf16")
    if "speedup" in parts:
        cli, notes = speedup_rows("smollm2-135m", args.n_prompt, args.n_gen, args.reps)
    args.out.mkdir(parents=True, exist_ok=True)
    gpu_bench.write_csv(args.out / f"{args.prefix}_pairs.csv", pairs)
    summary = gpu_bench.summarize(pairs, cli)
    ours = [r for r in pairs if r["impl"] == "ours" and "mlx_lm_reported_tps" in r]
    if ours:
        worst = max(abs(r["tps"] / r["mlx_lm_reported_tps"] - 1) for r in ours)
        summary.append(
            {
                "kind": "ours vs mlx-lm's own figure",
                "engine": "mlx",
                "variant": "mlx-bf16",
                "device": "cpu",
                "card": ours[0]["card"],
                "test": ours[0]["test"],
                "impl": "max |ours ÷ GenerationResponse − 1|",
                "n": len(ours),
                "mean_tps": round(worst, 5),
                "sd_tps": "",
            }
        )
    for engine, note in notes:
        summary.append(
            {
                "kind": "speed-up vs CPU",
                "engine": engine,
                "variant": "",
                "device": "",
                "card": "",
                "test": "",
                "impl": note,
                "n": 0,
                "mean_tps": "",
                "sd_tps": "",
            }
        )
    gpu_bench.write_csv(args.out / f"{args.prefix}_summary.csv", summary)
    for row in summary:
        gpu_bench.log(
            f"{row['kind']:28s} {row['engine']:5s} {row['variant']:10s} {row['test']:6s} "
            f"{row['impl']:36s} {row['mean_tps']} {row['sd_tps']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
