"""What the worker process costs: every local engine through its worker against the bare library loop.

For llama.cpp, MLX and torch, the same model and settings are loaded twice: once behind the worker
(`WorkerEngine`, what the dashboard and `bench` use) and once in this process for the bare library
loop (llama-cpp-python's `create_completion`, `mlx_lm.stream_generate`, a torch forward loop over the
KV cache). Each repetition runs both, order alternating, on the same random-token prompt with the
length forced. Decode t/s is (n − 1) / (t_last − t_first) on the clock of the process that receives
the tokens, so ours includes the pipe hop. Also measured:

- the TTFT the hop adds: the parent's TTFT minus the TTFT the engine measured inside its worker;
- the time to recover from a crash: SIGKILL to the worker, then the next request's wall time (a fresh
  worker starts and reloads the model);
- the memory given back by unload: the system's available memory before loading, while loaded and
  after unload (psutil), beside the worker's own USS;
- embeddings: `embed_batch` through its worker against a bare `SentenceTransformer.encode`.

Targets: decode ≥ 0.98 of bare for every text engine, embeddings ≥ 0.97.

    python benchmarks/worker_overhead.py [--engines llamacpp,mlx,torch,embed] [-n 64] [-r 6]
        [--out benchmarks/results/worker_overhead_cpu.csv]
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def wall_decode_tps(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


def ours_run(engine, prompt, n_gen: int) -> tuple[float, float, float]:
    """(decode t/s on this process's clock, parent TTFT s, engine-side TTFT s) through the worker."""
    from engines.base import GenerationParams

    times, stats = [], None
    for chunk in engine.stream(prompt, GenerationParams(max_tokens=n_gen, ignore_eos=True)):
        if chunk.stats is not None:
            stats = chunk.stats
        elif chunk.text:
            times.append(time.perf_counter())
    return wall_decode_tps(times), stats.ttft_s, stats.engine_ttft_s


def bare_llamacpp(ref, config, repack: bool):
    import llama_cpp

    from engines.llamacpp import open_llama

    llm = open_llama(
        ref.path,
        repack,
        n_ctx=config.n_ctx,
        n_batch=config.n_batch,
        n_threads=config.n_threads,
        n_threads_batch=config.n_threads,
        verbose=False,
    )
    eos = llm.token_eos()

    def run(prompt, n_gen: int) -> float:
        llm.reset()
        llama_cpp.llama_perf_context_reset(llm.ctx)
        times = []
        for part in llm.create_completion(
            list(prompt), max_tokens=n_gen, temperature=0.0, logit_bias={eos: -math.inf}, stream=True
        ):
            if part["choices"][0].get("text"):
                times.append(time.perf_counter())
        return wall_decode_tps(times)

    return run, llm.close


def bare_mlx(ref, config):
    import mlx_lm

    from engines.mlx import MlxEngine

    holder = MlxEngine()
    holder.load(ref, config)
    net, tok = holder._model, holder._tokenizer

    def run(prompt, n_gen: int) -> float:
        saved = set(tok.eos_token_ids)
        tok.eos_token_ids = ()  # mlx_lm.benchmark's way to force the length
        times = []
        try:
            for response in mlx_lm.stream_generate(net, tok, list(prompt), max_tokens=n_gen):
                if response.text:
                    times.append(time.perf_counter())
        finally:
            tok.eos_token_ids = saved
        return wall_decode_tps(times)

    return run, holder.unload


def bare_torch(ref, config):
    import torch

    from engines.torch_hf import TorchEngine

    holder = TorchEngine()
    holder.load(ref, config)
    net = holder._model

    def run(prompt, n_gen: int) -> float:
        ids = torch.tensor([list(prompt)])
        times = []
        with torch.inference_mode():
            out = net(input_ids=ids, use_cache=True, logits_to_keep=1)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            nxt.item()
            times.append(time.perf_counter())
            for _ in range(n_gen - 1):
                out = net(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                nxt.item()  # streaming needs each token on the host, as ours does
                times.append(time.perf_counter())
        return wall_decode_tps(times)

    return run, holder.unload


def text_engine_rows(name: str, n_gen: int, reps: int, threads: int) -> list[dict]:
    import psutil

    from engines.base import LoadConfig
    from engines.process.proxy import WorkerEngine

    if name == "llamacpp":
        from models.catalog import resolve_model

        ref, config = resolve_model("smollm2-135m"), LoadConfig(n_ctx=1024, n_threads=threads)
    else:
        from models import convert

        target = "hf" if name == "torch" else "mlx-bf16"
        ref = convert.convert("smollm2-135m", target)
        extra = {"device": "cpu", "dtype": "bf16"} if name == "torch" else {"device": "cpu"}
        config = LoadConfig(n_ctx=1024, n_threads=threads, **extra)
    available_before = psutil.virtual_memory().available
    ours = WorkerEngine(name)
    info = ours.load(ref, config)
    if name == "llamacpp":
        bare, close = bare_llamacpp(ref, config, ours.repack)
    elif name == "mlx":
        bare, close = bare_mlx(ref, config)
    else:
        bare, close = bare_torch(ref, config)
    prompt = ours.synthetic_prompt(16, seed=0)
    ours_run(ours, prompt, 8)  # warm-up both
    bare(prompt, 8)
    rows = []
    for rep in range(reps):
        order = ("ours", "bare") if rep % 2 == 0 else ("bare", "ours")
        for impl in order:
            if impl == "ours":
                tps, ttft, engine_ttft = ours_run(ours, prompt, n_gen)
                row = {"ttft_s": ttft, "engine_ttft_s": engine_ttft, "hop_ttft_ms": (ttft - engine_ttft) * 1e3}
            else:
                row = {"tps": None}
                tps = bare(prompt, n_gen)
            rows.append({"engine": name, "test": f"tg{n_gen}", "impl": impl, "rep": rep, **row, "tps": tps})
            print(f"{name} rep {rep} {impl}: {tps:.1f} t/s", flush=True)
    close()
    reading = ours.memory()
    available_loaded = psutil.virtual_memory().available
    pid = ours.pid
    os.kill(pid, signal.SIGKILL)
    t0 = time.perf_counter()
    from core.errors import EngineCrashed
    from engines.base import GenerationParams

    try:
        ours.generate(prompt, GenerationParams(max_tokens=2))
    except EngineCrashed:
        pass  # the request that was running when it died fails; the next one starts a fresh worker
    ours.generate(prompt, GenerationParams(max_tokens=2))
    recovery_s = time.perf_counter() - t0
    ours.unload()
    time.sleep(1.0)
    available_after = psutil.virtual_memory().available
    rows.append(
        {
            "engine": name,
            "test": "lifecycle",
            "impl": "ours",
            "load_s": info.load_s,
            "crash_recovery_s": recovery_s,
            "worker_uss_bytes": reading["private_bytes"],
            "available_before_load_bytes": available_before,
            "available_while_loaded_bytes": available_loaded,
            "available_after_unload_bytes": available_after,
        }
    )
    return rows


def embed_rows(reps: int, batch: int) -> list[dict]:
    from sentence_transformers import SentenceTransformer

    from bench.embed.corpus import make_corpus
    from engines.embeddings import EmbedConfig, bundled_model_path
    from engines.process.proxy import WorkerObject

    texts = make_corpus(batch * 4)
    ours = WorkerObject.embedder()
    ours.load("all-minilm-l6-v2", EmbedConfig(device="cpu"))
    bare = SentenceTransformer(str(bundled_model_path()), device="cpu")

    def ours_sps() -> float:
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            ours.embed_batch(texts[i : i + batch])
        return len(texts) / (time.perf_counter() - t0)

    def bare_sps() -> float:
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            bare.encode(texts[i : i + batch], batch_size=batch)
        return len(texts) / (time.perf_counter() - t0)

    ours_sps(), bare_sps()
    rows = []
    for rep in range(reps):
        for impl, fn in (
            (("ours", ours_sps), ("bare", bare_sps)) if rep % 2 == 0 else (("bare", bare_sps), ("ours", ours_sps))
        ):
            sps = fn()
            rows.append({"engine": "embeddings", "test": f"batch{batch}", "impl": impl, "rep": rep, "sps": sps})
            print(f"embeddings rep {rep} {impl}: {sps:.1f} sentences/s", flush=True)
    ours.close()
    return rows


def summary(frame) -> list[str]:
    from bench.stats import summarize

    lines = []
    for (engine, test), group in frame[frame["test"] != "lifecycle"].groupby(["engine", "test"]):
        col = "sps" if engine == "embeddings" else "tps"
        o = summarize(group[group["impl"] == "ours"][col].dropna())
        b = summarize(group[group["impl"] == "bare"][col].dropna())
        target = 0.97 if engine == "embeddings" else 0.98
        ratio = o.mean / b.mean
        unit = "sentences/s" if engine == "embeddings" else "t/s"
        line = (
            f"{engine} {test}: ours {o.mean:.1f} ± {o.stddev:.1f} {unit}, bare {b.mean:.1f} ± {b.stddev:.1f}; "
            f"ratio {ratio:.3f} (derived; target ≥ {target}: {'PASS' if ratio >= target else 'FAIL'})"
        )
        if engine != "embeddings":
            hop = group["hop_ttft_ms"].dropna()
            line += f"; TTFT added by the hop {hop.mean():.2f} ± {hop.std():.2f} ms"
        lines.append(line)
    for _, row in frame[frame["test"] == "lifecycle"].iterrows():
        lines.append(
            f"{row['engine']} lifecycle: load {row['load_s']:.2f} s, "
            f"crash → next reply {row['crash_recovery_s']:.2f} s, "
            f"worker USS {row['worker_uss_bytes'] / 2**20:.0f} MiB, available memory "
            f"{row['available_before_load_bytes'] / 2**30:.2f} → {row['available_while_loaded_bytes'] / 2**30:.2f} → "
            f"{row['available_after_unload_bytes'] / 2**30:.2f} GiB after unload"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="llamacpp,mlx,torch,embed")
    parser.add_argument("-n", "--n-gen", type=int, default=64)
    parser.add_argument("-r", "--repetitions", type=int, default=6)
    parser.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/worker_overhead_cpu.csv")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pandas as pd

    from engines.process.faults import cpu_flags

    rows = []
    for name in args.engines.split(","):
        if name == "embed":
            rows += embed_rows(args.repetitions, args.batch)
        else:
            rows += text_engine_rows(name, args.n_gen, args.repetitions, args.threads)
    frame = pd.DataFrame(rows)
    flags = " ".join(f for f in cpu_flags().split() if f.startswith(("avx", "amx", "fma", "sse4")))
    lines = [f"machine: {os.cpu_count()} cores; CPU flags: {flags}", *summary(frame)]
    print("\n".join(lines))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
        Path(args.out).with_suffix(".md").write_text("\n".join(f"- {line}" for line in lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
