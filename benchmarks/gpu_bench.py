"""GPU speed figures for the torch and MLX engines, each beside a bare library loop on the same card in the
same run, plus the accelerated-vs-CPU speed-up.

Model: the SmolLM2-135M architecture built from its own config.json with *random weights* (the bundled
weights exceed the device machine's 64 MiB transfer limit; speed depends on shapes, not values, and every
generation length is forced with ignore_eos). Nothing here measures quality.

Parts (--parts):
  torch  — ours (engines.torch_hf through Engine.generate) and two bare loops, interleaved per repetition
           (order alternates ABAB/BABA): transformers' `model.generate` without a streamer, and a manual
           forward loop with a KV cache and greedy argmax. tg: decode t/s = (N − 1) / (time of N tokens −
           time of 1 token) for the bare loops, (N − 1) / (last − first token time) for ours. pp: prompt
           tokens / time to the first token. Then `python app.py bench --engine torch` on the accelerator and
           on the CPU (speed-up = accelerated tg ÷ CPU tg, derived).
  mlx    — the same for MLX (bf16 and 4-bit, converted by models.convert): ours vs a bare
           `mlx_lm.stream_generate` loop (its own GenerationResponse.generation_tps), interleaved, then
           `python app.py bench --engine mlx` on the accelerator and the CPU.

Writes pairs.csv (one row per timed run), cli.csv (every `app.py bench` row) and summary.csv under --out.
Usage: python benchmarks/gpu_bench.py --config-dir DIR --parts torch,mlx --out OUT [--device cuda]

--config-dir holds SmolLM2's small files: after `python app.py convert --to hf`, copy config.json,
generation_config.json, tokenizer.json, tokenizer_config.json and chat_template.jinja from
LOCALBENCH_HOME/cache/converted/smollm2-135m@hf-bf16 into an ignored folder (.devcarry/smollm2-config) and
carry it. For MLX on CUDA, the mlx-cuda-13 0.32.4 wheel (90 MB) is over one call's 64 MiB transfer: it
travelled in two `split` halves on back-to-back calls to a warm machine, was joined with `cat`, and was
installed with mlx 0.32.4 and mlx-lm 0.32.2 by `pip install --no-index --no-deps` into the image's torch
environment, whose CUDA 13 libraries it uses.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL_NAME = "smollm2-135m-random-weights"


def log(*parts) -> None:
    print(*parts, flush=True)


def make_random_model(config_dir: Path, out_dir: Path) -> Path:
    """The SmolLM2 architecture from its config with random bf16 weights, saved as an HF folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if (out_dir / "config.json").exists():
        return out_dir
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(config_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(out_dir)
    log(f"random-weight model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters at {out_dir}")
    return out_dir


def card_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    from machine.detect import detect_hardware

    return detect_hardware().chip


# --- torch ------------------------------------------------------------------------------------------


def torch_pairs(
    model_dir: Path, device: str, n_prompt: int, n_gen: int, reps: int, threads: int | None = None
) -> list[dict]:
    import torch

    from engines.base import GenerationParams, LoadConfig
    from engines.torch_hf import TorchEngine

    engine = TorchEngine()
    config = LoadConfig(n_ctx=2048, n_threads=threads, device=device, dtype="bf16")
    info = engine.load(engine.resolve(str(model_dir)), config)
    net, tok = engine._model, engine._tokenizer
    tg_prompt, pp_prompt = engine.synthetic_prompt(8, seed=1), engine.synthetic_prompt(n_prompt, seed=2)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def bare_generate(tokens: list[int], n: int) -> float:
        ids = torch.tensor([tokens], device=device)
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            net.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=pad,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        sync()
        return time.perf_counter() - t0

    def manual_decode_tps(tokens: list[int], n: int) -> float:
        ids = torch.tensor([tokens], device=device)
        with torch.inference_mode():
            out = net(input_ids=ids, use_cache=True, logits_to_keep=1)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            nxt.item()  # the host needs each token (streaming does too)
            t1 = time.perf_counter()
            for _ in range(n - 1):
                out = net(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                nxt.item()
            sync()
        return (n - 1) / (time.perf_counter() - t1)

    def ours_tg() -> float:
        return engine.generate(tg_prompt, GenerationParams(max_tokens=n_gen, ignore_eos=True))[1].gen_tps

    def bare_tg() -> float:
        t_n, t_1 = bare_generate(tg_prompt, n_gen), bare_generate(tg_prompt, 1)
        return (n_gen - 1) / (t_n - t_1)

    def ours_pp() -> float:
        return engine.generate(pp_prompt, GenerationParams(max_tokens=1, ignore_eos=True))[1].prompt_tps

    def bare_pp() -> float:
        return n_prompt / bare_generate(pp_prompt, 1)

    impls = {
        f"tg{n_gen}": [
            ("ours", ours_tg),
            ("bare generate", bare_tg),
            ("manual loop", lambda: manual_decode_tps(tg_prompt, n_gen)),
        ],
        f"pp{n_prompt}": [("ours", ours_pp), ("bare generate", bare_pp)],
    }
    for runs in impls.values():  # warm-up: kernels, allocator, cuBLAS handles
        for _, fn in runs:
            fn()
    rows = []
    card = card_name(device)
    for rep in range(reps):
        for test, runs in impls.items():
            for impl, fn in runs if rep % 2 == 0 else list(reversed(runs)):
                tps = fn()
                rows.append(
                    {
                        "engine": "torch",
                        "variant": "bf16",
                        "device": device,
                        "card": card,
                        "test": test,
                        "impl": impl,
                        "rep": rep,
                        "tps": round(tps, 3),
                        "versions": dict(info.versions),
                    }
                )
                log(f"torch {device} {test} rep {rep} {impl}: {tps:.1f} t/s")
    engine.unload()
    return rows


# --- mlx --------------------------------------------------------------------------------------------


def mlx_pairs(model: str, device: str, n_gen: int, reps: int, variant: str) -> list[dict]:
    import importlib

    import mlx.core as mx

    from engines.base import GenerationParams, LoadConfig
    from engines.mlx import MlxEngine

    engine = MlxEngine()
    info = engine.load(engine.resolve(model), LoadConfig(n_ctx=2048, device=device))
    net, tok = engine._model, engine._tokenizer
    prompt = engine.synthetic_prompt(8, seed=1)
    gen = importlib.import_module("mlx_lm.generate")
    real = gen.stream_generate
    last_response = {}

    def spy(*args, **kwargs):
        for response in real(*args, **kwargs):
            last_response["r"] = response
            yield response

    def bare() -> float:
        saved = set(tok.eos_token_ids)
        tok.eos_token_ids = ()  # mlx_lm.benchmark's way to force the length
        try:
            response = None
            for response in real(net, tok, prompt, max_tokens=n_gen, stream=engine._stream):  # noqa: B007
                pass
        finally:
            tok.eos_token_ids = saved
        return float(response.generation_tps)

    def ours() -> tuple[float, float]:
        gen.stream_generate = spy
        try:
            stats = engine.generate(prompt, GenerationParams(max_tokens=n_gen, ignore_eos=True))[1]
        finally:
            gen.stream_generate = real
        return stats.gen_tps, float(last_response["r"].generation_tps)

    ours()
    bare()
    rows = []
    card = card_name(device) if device != "cuda" else mx.device_info().get("device_name", "cuda")
    for rep in range(reps):
        order = ["ours", "bare"] if rep % 2 == 0 else ["bare", "ours"]
        for impl in order:
            if impl == "ours":
                tps, lib_tps = ours()
                extra = {"mlx_lm_reported_tps": round(lib_tps, 3)}
            else:
                tps, extra = bare(), {}
            rows.append(
                {
                    "engine": "mlx",
                    "variant": variant,
                    "device": device,
                    "card": card,
                    "test": f"tg{n_gen}",
                    "impl": "ours" if impl == "ours" else "bare stream_generate",
                    "rep": rep,
                    "tps": round(tps, 3),
                    "versions": dict(info.versions),
                    **extra,
                }
            )
            log(f"mlx {variant} {device} tg{n_gen} rep {rep} {impl}: {tps:.1f} t/s")
    engine.unload()
    return rows


# --- the CLI ----------------------------------------------------------------------------------------


def cli_bench(engine: str, model: str, device: str, n_prompt: int, n_gen: int, reps: int) -> list[dict]:
    """`python app.py bench` as a user runs it; its CSV rows."""
    command = [
        sys.executable,
        str(ROOT / "app.py"),
        "bench",
        "--engine",
        engine,
        "--model",
        model,
        "--device",
        device,
        "-p",
        str(n_prompt),
        "-n",
        str(n_gen),
        "-r",
        str(reps),
        "-o",
        "csv",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    log(f"$ {' '.join(command[1:])}  ({time.perf_counter() - t0:.0f} s, exit {done.returncode})")
    if done.returncode != 0:
        log(done.stderr[-2000:])
        return []
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    for row in rows:
        row["requested_device"] = device
        log(
            f"  {row['engine']} {row['model']} {row['backends']} {row['test']}: {float(row['avg_ts']):.1f} ± "
            f"{float(row['stddev_ts']):.1f} t/s"
        )
    return rows


def summarize(pairs: list[dict], cli: list[dict]) -> list[dict]:
    """Mean ± sd per (engine, variant, device, test, impl); ratio to the bare loop; CLI speed-ups (derived)."""
    out = []
    keys = sorted({(r["engine"], r["variant"], r["device"], r["test"]) for r in pairs})
    for engine, variant, device, test in keys:
        group = [
            r for r in pairs if (r["engine"], r["variant"], r["device"], r["test"]) == (engine, variant, device, test)
        ]
        means = {}
        for impl in dict.fromkeys(r["impl"] for r in group):
            values = [r["tps"] for r in group if r["impl"] == impl]
            means[impl] = statistics.mean(values)
            out.append(
                {
                    "kind": "interleaved",
                    "engine": engine,
                    "variant": variant,
                    "device": device,
                    "card": group[0]["card"],
                    "test": test,
                    "impl": impl,
                    "n": len(values),
                    "mean_tps": round(means[impl], 2),
                    "sd_tps": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
                }
            )
        bare = next((v for k, v in means.items() if k.startswith("bare")), None)
        if bare and "ours" in means:
            out.append(
                {
                    "kind": "ratio ours/bare (derived)",
                    "engine": engine,
                    "variant": variant,
                    "device": device,
                    "card": group[0]["card"],
                    "test": test,
                    "impl": "ours ÷ bare",
                    "n": 0,
                    "mean_tps": round(means["ours"] / bare, 3),
                    "sd_tps": "",
                }
            )
    by = {}
    for row in cli:
        by[(row["engine"], row["model"], row["test"], row["requested_device"])] = float(row["avg_ts"])
    for (engine, model, test, device), tps in by.items():
        if device == "cpu":
            continue
        cpu = by.get((engine, model, test, "cpu"))
        if cpu:
            out.append(
                {
                    "kind": "speed-up vs CPU (derived)",
                    "engine": engine,
                    "variant": model,
                    "device": device,
                    "card": "",
                    "test": test,
                    "impl": f"{device} ÷ cpu",
                    "n": 0,
                    "mean_tps": round(tps / cpu, 2),
                    "sd_tps": "",
                }
            )
    return out


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-dir", required=True, type=Path, help="folder with SmolLM2's config.json + tokenizer")
    parser.add_argument("--parts", default="torch,mlx")
    parser.add_argument("--device", default="cuda", help="the accelerated device (cuda; cpu for a dry run)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-p", "--n-prompt", type=int, default=512)
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("--cpu-reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--prefix", default="gpu_bench")
    args = parser.parse_args()
    os.environ.setdefault("LOCALBENCH_NO_BW_PROBE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    from core.paths import home

    model_dir = make_random_model(args.config_dir, home() / MODEL_NAME)
    parts = set(args.parts.split(","))
    pairs, cli = [], []
    p, n = args.n_prompt, args.n_gen
    if "torch" in parts:
        pairs += torch_pairs(model_dir, args.device, p, n, args.reps)
        cli += cli_bench("torch", str(model_dir), args.device, p, n, args.reps)
        if args.device != "cpu":
            cli += cli_bench("torch", str(model_dir), "cpu", p, n, args.cpu_reps)
    if "mlx" in parts:
        from models import convert

        for variant in ("mlx-bf16", "mlx-4bit"):
            convert.convert(str(model_dir), variant, progress=lambda f, m: None)
            name = f"{MODEL_NAME}@{variant}"
            pairs += mlx_pairs(name, args.device, n, args.reps, variant)
            cli += cli_bench("mlx", name, args.device, p, n, args.reps)
        if args.device != "cpu":  # MLX's quantized CPU kernels are slow: the CPU side runs bf16, short
            cli += cli_bench("mlx", f"{MODEL_NAME}@mlx-bf16", "cpu", p, n, args.cpu_reps)
    write_csv(args.out / f"{args.prefix}_pairs.csv", pairs)
    write_csv(args.out / f"{args.prefix}_cli.csv", cli)
    summary = summarize(pairs, cli)
    write_csv(args.out / f"{args.prefix}_summary.csv", summary)
    for row in summary:
        log(
            f"{row['kind']:28s} {row['engine']:5s} {row['variant']:38s} {row['device']:5s} {row['test']:7s} "
            f"{row['impl']:22s} {row['mean_tps']} {row['sd_tps']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
