"""MLX (mlx[cuda]) through our worker engine against bare `mlx_lm.stream_generate`, on the same card, interleaved.

ours — `engines.process.proxy.WorkerEngine("mlx")` (the model in its worker process), streamed as the Chat tab and
       `bench --method stream` do (gpu_worker_bench.stream_run: the engine's own t/s, TTFT on this process's
       clock). bare — `mlx_lm.load` and `mlx_lm.stream_generate` in this process, EOS switched off as
       mlx_lm.benchmark does, its GenerationResponse's prompt_tps / generation_tps, TTFT on this clock.
Tests: pp (max_tokens 1: prompt t/s), tg after an 8-token prompt, and tg after a d-token prompt (--depths).
Variants (--variants): mlx-bf16, mlx-8bit, mlx-4bit, converted by models.convert from SmolLM2-135M's
architecture with *random weights* (gpu_bench.make_random_model). Also per variant: NVML per-process GPU
memory (worker and this process), MLX's peak counters, GPU power over each timed run (NVML energy), and
roofline_pct for tg against --bandwidth-tbps (weights on disk + bf16 KV bytes at that depth), derived, and
per tg run the host readings of gpu_worker_bench.timed (the decoding process's CPU seconds, steal time, a
host probe) with the inter-token gaps on this process's clock (both arms stream their tokens here).

    python benchmarks/gpu_mlx_bench.py --config-dir .devcarry/smollm2-config --out OUT --prefix gpu_h200_mlx
Dry run on the CPU (mlx[cpu]): --device cpu --variants mlx-4bit -p 32 -n 8 --depths 64 --reps 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_bench import MODEL_NAME, log, make_random_model, write_csv  # noqa: E402
from gpu_worker_bench import Nvml, itl_stats, kv_bytes, stream_run, summarize, timed  # noqa: E402


def bare_run(model, tok, tokens: list[int], n: int) -> dict:
    """One `mlx_lm.stream_generate` of exactly n tokens; its own t/s and TTFT on this clock."""
    import mlx_lm

    saved = tok.eos_token_ids
    tok.eos_token_ids = ()  # mlx_lm.benchmark's way to force the length
    try:
        t0, times, response = time.perf_counter(), [], None
        for response in mlx_lm.stream_generate(model, tok, tokens, max_tokens=n):  # noqa: B007
            times.append(time.perf_counter())
    finally:
        tok.eos_token_ids = saved
    return {
        "tps": float(response.generation_tps if n > 1 else response.prompt_tps),
        "ttft_s": round(times[0] - t0, 6),
        "peak_memory_gb": float(response.peak_memory),
        **(itl_stats(times) if n > 1 else {}),
    }


def variant_rows(model_dir: Path, variant: str, args, nvml: Nvml) -> tuple[list[dict], dict]:
    import mlx.core as mx
    import mlx_lm

    from engines.base import LoadConfig
    from engines.process.proxy import WorkerEngine
    from models import convert

    ref = convert.convert(str(model_dir), variant, progress=lambda f, m: None)
    depths = [0, *args.depths]
    ours = WorkerEngine("mlx")
    n_ctx = max(max(depths), args.n_prompt) + args.n_gen + 64
    info = ours.load(ours.resolve(ref.name), LoadConfig(n_ctx=n_ctx, device=args.device))
    if args.device == "cpu":
        mx.set_default_device(mx.cpu)
    net, tok = mlx_lm.load(ref.path)
    config = json.loads((Path(ref.path) / "config.json").read_text())
    weight_bytes = sum(f.stat().st_size for f in Path(ref.path).glob("*.safetensors"))
    tests = {f"pp{args.n_prompt}": (list(ours.synthetic_prompt(args.n_prompt, seed=2)), 1, 0)}
    for d in depths:
        prompt = list(ours.synthetic_prompt(d or 8, seed=10 + d))
        tests[f"tg{args.n_gen}" + (f" @ d{d}" if d else "")] = (prompt, args.n_gen, d)

    def impls(tokens: list[int], n: int):
        return [
            ("ours", lambda: stream_run(ours, tokens, n)),
            ("bare stream_generate", lambda: bare_run(net, tok, tokens, n)),
        ]

    for tokens, n, _ in tests.values():  # warm-up at full length in both processes
        for _, fn in impls(tokens, n):
            fn()
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    card = nvml.nv.nvmlDeviceGetName(nvml.handle) if nvml.nv else "cpu"
    rows = []
    for test, (tokens, n, depth) in tests.items():
        for rep in range(args.reps * (3 if n == 1 else 1)):
            runs = impls(tokens, n)
            for impl, fn in runs if rep % 2 == 0 else runs[::-1]:
                got, energy = timed(nvml, fn, pid=(ours.pid if impl == "ours" else os.getpid()) if n > 1 else None)
                row = {"engine": "mlx", "variant": variant, "device": args.device, "card": card, "test": test}
                row |= {"n_prompt": len(tokens), "n_gen": n, "n_depth": depth, "impl": impl, "rep": rep, **got}
                if n > 1:  # the KV read per token: the prompt plus half the generation, on average
                    cells = len(tokens) + n // 2
                    kv = kv_bytes(config["num_hidden_layers"], config["num_key_value_heads"], head_dim, cells, 2)
                    row |= {**energy, "bytes_per_token": weight_bytes + kv}
                rows.append(row)
                log(f"mlx {variant} {test} rep {rep} {impl}: {got['tps']:.1f} t/s")
    reading = ours.memory() or {}
    memory = {
        "engine": "mlx",
        "variant": variant,
        "card": card,
        "weight_bytes_on_disk": weight_bytes,
        "worker_pid": ours.pid,
        "worker_gpu_bytes_nvml": nvml.process_bytes(ours.pid),
        "bare_process_gpu_bytes_nvml": nvml.process_bytes(os.getpid()),
        "worker_accelerators": json.dumps(reading.get("accelerators")),
        "worker_private_bytes": reading.get("private_bytes"),
        "bare_mlx_peak_bytes": int(mx.get_peak_memory()),
        "bare_mlx_active_bytes": int(mx.get_active_memory()),
        "idle_power_w": nvml.power_w(),
        "versions": json.dumps(dict(info.versions)),
    }
    log(f"mlx {variant} memory: {memory}")
    ours.unload()
    net = None
    mx.clear_cache()
    return rows, memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-dir", type=Path, required=True, help="SmolLM2's config.json + tokenizer")
    parser.add_argument("--device", default="cuda", help="cuda; cpu for a dry run")
    parser.add_argument("--variants", default="mlx-bf16,mlx-8bit,mlx-4bit")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-p", "--n-prompt", type=int, default=512)
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("--depths", default="2048", help="KV depths besides 0 for tg, comma-separated ('' for none)")
    parser.add_argument("--bandwidth-tbps", type=float, default=4.8, help="the card's memory bandwidth (H200: 4.8)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--prefix", default="gpu_mlx")
    args = parser.parse_args()
    args.depths = [int(d) for d in args.depths.split(",") if d]
    os.environ.setdefault("LOCALBENCH_NO_BW_PROBE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    from core.paths import home

    nvml = Nvml()
    model_dir = make_random_model(args.config_dir, home() / MODEL_NAME)
    rows, memory = [], []
    for variant in args.variants.split(","):
        got, mem = variant_rows(model_dir, variant, args, nvml)
        rows, memory = rows + got, memory + [mem]
        write_csv(args.out / f"{args.prefix}_pairs.csv", rows)
        write_csv(args.out / f"{args.prefix}_memory.csv", memory)
    summary = summarize(rows, args.bandwidth_tbps)
    write_csv(args.out / f"{args.prefix}_summary.csv", summary)
    for row in summary:
        extra = " ".join(f"{k}={row[k]}" for k in ("ttft_ms", "mean_power_w", "roofline_pct") if k in row)
        log(f"{row['kind']:16s} {row['variant']:8s} {row['test']:13s} {row['impl']:30s}", row["mean"], row["sd"], extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
