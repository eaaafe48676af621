"""GPU figures through the worker engines, each beside the bare library loop on the same card in the same run.

What the dashboard and `bench` run is `engines.process.proxy.WorkerEngine("torch")` (the model in its own worker
process) and `WorkerObject.embedder()`; this script times those against the libraries used directly in this
process, interleaved per repetition (order alternates), on the same shapes and token ids.

Models: SmolLM2-135M's architecture and all-MiniLM-L6-v2's, built from their own config files with *random
weights* (real weights exceed the device machine's 64 MiB transfer limit; speed depends on shapes, not
values; every generation length is forced). Nothing here measures quality.

Parts (--parts):
  torch — fp16 and bf16 (--dtypes). Tests: pp512 (prompt t/s; ours = the worker engine's own prefill
          counter, TTFT also on this process's clock), tg128 at depth 0 (an 8-token prompt) and at each
          --depths (prefill that many tokens, then time the generation). Bare: a manual forward loop with
          the KV cache and greedy argmax, each token brought to the host (as streaming does), and
          transformers' `generate` ((N − 1) / (t(N tokens) − t(1 token))).
  embed — fp32 and fp16 (--precisions): `embed_batch` through the worker against a bare
          `SentenceTransformer.encode`, both given the same corpus-order slices of --batches texts
          (as benchmarks/worker_overhead.py does), sentences/s.
Also recorded: each process's GPU memory from NVML (`nvmlDeviceGetComputeRunningProcesses`, the worker's pid
against this process's), the worker's torch counters (`WorkerEngine.memory()`), GPU energy over each timed
generation (NVML's energy counter; mean W derived), and roofline_pct = tg ÷ (--bandwidth-tbps ÷ bytes read
per token: weights + the KV cache at that depth), derived.
Host side, per timed generation (decode here is host-bound, so its noise may be the host's): the CPU seconds
of the process that decodes (/proc/PID/stat utime + stime, all threads: the worker for ours, this process for
bare), the host's steal time over the run (/proc/stat, a VM's stolen CPU), a fixed pure-Python loop timed just
before the run (host_probe_ms: a slower CPU or a busier host shows in it), and for streamed or manual decodes
the inter-token gaps on the clock of the process that sees the tokens (itl p50, p99, max; derived).

    python benchmarks/gpu_worker_bench.py --config-dir .devcarry/smollm2-config \
        --embed-config-dir .devcarry/minilm-config --out OUT --prefix gpu_h200 [--device cuda]

Dry run on the CPU: --device cpu --dtypes bf16 --precisions fp32 -p 32 -n 8 --depths 64 --reps 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_bench import card_name, log, make_random_model, write_csv  # noqa: E402

from bench.stats import summarize as stats_summary  # noqa: E402

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


# --- NVML -------------------------------------------------------------------------------------------


class Nvml:
    """GPU 0's per-process memory and energy counter through nvidia-ml-py; every reading None without it."""

    def __init__(self) -> None:
        self.nv = self.handle = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception as err:  # no module, no driver: the CPU dry run
            log(f"NVML unavailable: {type(err).__name__}: {err}")

    def process_bytes(self, pid: int | None) -> int | None:
        """GPU memory NVML charges to `pid` (nvmlDeviceGetComputeRunningProcesses)."""
        if self.nv is None or pid is None:
            return None
        try:
            for proc in self.nv.nvmlDeviceGetComputeRunningProcesses(self.handle):
                if proc.pid == pid:
                    return int(proc.usedGpuMemory) if proc.usedGpuMemory is not None else None
        except self.nv.NVMLError as err:
            log(f"NVML per-process memory: {err}")
        return None

    def energy_mj(self) -> int | None:
        """The board's energy counter since the driver loaded, millijoules."""
        if self.nv is None:
            return None
        try:
            return int(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except self.nv.NVMLError:
            return None

    def power_w(self) -> float | None:
        if self.nv is None:
            return None
        try:
            return self.nv.nvmlDeviceGetPowerUsage(self.handle) / 1000
        except self.nv.NVMLError:
            return None


def timed(nvml: Nvml, fn, pid: int | None = None):
    """fn()'s result with the GPU energy (J) and mean power (W) over its run (NVML energy counter); with `pid`
    (the process that does the work) also the host side: host_probe_ms just before, wall_s, that process's
    CPU seconds (decoder_cpu_s) and the host's steal seconds (host_steal_s) over the run."""
    host = {"host_probe_ms": round(host_probe_ms(), 4)} if pid else {}
    cpu0, steal0 = (process_cpu_s(pid), steal_s()) if pid else (None, None)
    e0, t0 = nvml.energy_mj(), time.perf_counter()
    result = fn()
    seconds, e1 = time.perf_counter() - t0, nvml.energy_mj()
    if pid:
        cpu1, steal1 = process_cpu_s(pid), steal_s()
        host["wall_s"] = round(seconds, 6)
        if cpu0 is not None and cpu1 is not None:
            host["decoder_cpu_s"] = round(cpu1 - cpu0, 3)
        if steal0 is not None and steal1 is not None:
            host["host_steal_s"] = round(steal1 - steal0, 3)
    if e0 is None or e1 is None:
        return result, host
    joules = (e1 - e0) / 1000
    return result, {"energy_j": round(joules, 3), "mean_power_w": round(joules / seconds, 1), **host}


# --- the host side ----------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float | None:
    """utime + stime of `pid`, all its threads, seconds (/proc/PID/stat; None off Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5), after pid and comm


def steal_s() -> float | None:
    """The host's steal time summed over all CPUs, seconds (/proc/stat: time a hypervisor gave to others)."""
    try:
        cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    return int(cpu[8]) / CLOCK_TICKS if len(cpu) > 8 else None


def host_probe_ms(n: int = 100_000) -> float:
    """Milliseconds of a fixed pure-Python loop: the host's single-thread speed right now."""
    t0 = time.perf_counter()
    total = 0
    for i in range(n):
        total += i & 7
    return (time.perf_counter() - t0) * 1e3


def itl_stats(times: list[float]) -> dict:
    """p50, p99 and max of the gaps between successive token times (seconds in), milliseconds; derived
    (bench.stats.summarize: linear-interpolated percentiles, as every other table of ours)."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if not gaps:
        return {}
    s = stats_summary(gaps)
    ms = {"p50": s.p50, "p99": s.p99, "max": s.max}
    return {f"itl_{k}_ms": round(v * 1e3, 4) for k, v in ms.items()}


NOSAMPLE = "ours, sampling off"
"""The diagnostic impl: our worker with its memory sampling replaced by an RSS read (benchmarks/worker_nosample)."""


def round_trip_ms(fn, n: int = 20) -> float:
    """Mean milliseconds of fn() over n calls after one warm-up (a worker request's fixed cost)."""
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


def own_memory_now() -> dict:
    """One uncached reading of this process's memory, as the worker takes per request (machine.live_memory)."""
    from machine.live_memory import own_memory

    return own_memory()


# --- torch ------------------------------------------------------------------------------------------


def stream_run(engine, tokens: list[int], n: int) -> dict:
    """One streamed generation through a worker engine: tg t/s (or pp t/s when n == 1) and TTFT."""
    from engines.base import GenerationParams

    times, stats = [], None
    for chunk in engine.stream(tokens, GenerationParams(max_tokens=n, ignore_eos=True)):
        if chunk.stats is not None:
            stats = chunk.stats
        elif chunk.text:
            times.append(time.perf_counter())
    wall = (stats.gen_tokens - 1) / (times[-1] - times[0]) if len(times) > 1 else None
    return {
        "tps": stats.gen_tps if n > 1 else stats.prompt_tps,
        "parent_clock_tps": round(wall, 3) if wall and n > 1 else None,
        "ttft_s": stats.ttft_s,
        "engine_ttft_s": stats.engine_ttft_s,
        "peak_device_bytes": stats.peak_device_bytes,
        **(itl_stats(times) if n > 1 else {}),
    }


def kv_bytes(layers: int, kv_heads: int, head_dim: int, depth: int, width: int) -> int:
    """Bytes of the K and V caches at `depth` tokens, `width` bytes an element."""
    return 2 * layers * kv_heads * head_dim * depth * width


def bytes_per_token(config: dict, n_params: int, dtype: str, depth: int) -> int:
    """Weights plus the KV cache read for one decoded token at `depth` (the decode roofline's bytes)."""
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    width = DTYPE_BYTES[dtype]
    return n_params * width + kv_bytes(
        config["num_hidden_layers"], config["num_key_value_heads"], head_dim, depth, width
    )


def torch_rows(model_dir: Path, args, dtype: str, nvml: Nvml) -> tuple[list[dict], list[dict]]:
    import torch
    from transformers import AutoModelForCausalLM

    from engines.base import LoadConfig
    from engines.process.proxy import WorkerEngine

    device, n_prompt, n_gen = args.device, args.n_prompt, args.n_gen
    depths = [0, *args.depths]
    ours = WorkerEngine("torch")
    n_ctx = max(max(depths), n_prompt) + n_gen + 64
    info = ours.load(ours.resolve(str(model_dir)), LoadConfig(n_ctx=n_ctx, device=device, dtype=dtype))
    quiet = None
    if args.nosample:  # the same engine, the worker's memory sampling replaced by an RSS read
        quiet = WorkerEngine("torch")
        quiet._target = "worker_nosample:TorchEngine"
        quiet.load(quiet.resolve(str(model_dir)), LoadConfig(n_ctx=n_ctx, device=device, dtype=dtype))
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    net = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).to(device).eval()
    n_params = sum(p.numel() for p in net.parameters())
    config = json.loads((model_dir / "config.json").read_text())
    pad = net.generation_config.pad_token_id or 0
    prompts = {d: list(ours.synthetic_prompt(d or 8, seed=10 + d)) for d in depths}
    pp_prompt = list(ours.synthetic_prompt(n_prompt, seed=2))

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def generate_s(tokens: list[int], n: int) -> float:
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

    def manual(tokens: list[int], n: int) -> dict:
        """Prefill, then n − 1 decode steps; TTFT and decode t/s on this process's clock."""
        ids = torch.tensor([tokens], device=device)
        sync()
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = net(input_ids=ids, use_cache=True, logits_to_keep=1)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            nxt.item()  # the host needs each token (streaming does too)
            t1 = time.perf_counter()
            times = [t1]
            for _ in range(n - 1):
                out = net(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                nxt.item()
                times.append(time.perf_counter())
            t2 = times[-1]
        got = {"ttft_s": t1 - t0, "tps": (n - 1) / (t2 - t1) if n > 1 else len(tokens) / (t1 - t0)}
        return got | (itl_stats(times) if n > 1 else {})

    def ours_run(tokens: list[int], n: int, engine=ours) -> dict:
        return stream_run(engine, tokens, n)

    tests = {f"pp{n_prompt}": (pp_prompt, 1, 0)}
    for d in depths:
        tests[f"tg{n_gen}" + (f" @ d{d}" if d else "")] = (prompts[d], n_gen, d)

    def impls(tokens: list[int], n: int):
        if n == 1:
            runs = [
                ("ours", lambda: ours_run(tokens, 1)),
                ("manual loop", lambda: manual(tokens, 1)),
                ("bare generate", lambda: {"tps": len(tokens) / generate_s(tokens, 1)}),
            ]
        else:
            runs = [
                ("ours", lambda: ours_run(tokens, n)),
                ("manual loop", lambda: manual(tokens, n)),
                ("bare generate", lambda: {"tps": (n - 1) / (generate_s(tokens, n) - generate_s(tokens, 1))}),
            ]
        if quiet is not None:
            runs.insert(1, (NOSAMPLE, lambda: ours_run(tokens, n, quiet)))
        return runs

    for tokens, n, _ in tests.values():  # warm-up at full length: kernels, allocator, cuBLAS, every process
        for _, fn in impls(tokens, n):
            fn()
    card = card_name(device)
    rows = []
    for test, (tokens, n, depth) in tests.items():
        reps = args.reps * (3 if n == 1 else 1)  # a prefill takes milliseconds: more samples
        bpt = bytes_per_token(config, n_params, dtype, depth + (len(tokens) if depth == 0 else 0))
        for rep in range(reps):
            runs = impls(tokens, n)
            for impl, fn in runs if rep % 2 == 0 else list(reversed(runs)):
                pid = {"ours": ours.pid, NOSAMPLE: quiet.pid if quiet else None}.get(impl, os.getpid())
                got, energy = timed(nvml, fn, pid=pid if n > 1 else None)
                row = {
                    "engine": "torch",
                    "variant": dtype,
                    "device": device,
                    "card": card,
                    "test": test,
                    "n_prompt": len(tokens),
                    "n_gen": n,
                    "n_depth": depth,
                    "impl": impl,
                    "rep": rep,
                    **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in got.items()},
                    **(energy if n > 1 else {}),
                }
                if n > 1:
                    row["bytes_per_token"] = bpt
                rows.append(row)
                log(f"torch {dtype} {test} rep {rep} {impl}: {got['tps']:.1f} t/s")
    worker_reading = ours.memory() or {}
    torch_counters = [a for a in worker_reading.get("accelerators", []) if a.get("name", "").startswith("torch")]
    memory = {
        "engine": "torch",
        "variant": dtype,
        "device": device,
        "card": card,
        "model_size_bytes": info.model_size_bytes,
        "n_params": n_params,
        "worker_pid": ours.pid,
        "worker_gpu_bytes_nvml": nvml.process_bytes(ours.pid),
        "bare_process_gpu_bytes_nvml": nvml.process_bytes(os.getpid()),
        "worker_torch_allocated_bytes": torch_counters[0]["used_bytes"] if torch_counters else None,
        "worker_torch_peak_bytes": torch_counters[0].get("peak_bytes") if torch_counters else None,
        "bare_torch_allocated_bytes": int(torch.cuda.memory_allocated()) if device == "cuda" else None,
        "bare_torch_peak_bytes": int(torch.cuda.max_memory_allocated()) if device == "cuda" else None,
        "worker_private_bytes": worker_reading.get("private_bytes"),
        "idle_power_w": nvml.power_w(),
        "versions": json.dumps(dict(info.versions)),
    }
    memory["ipc_round_trip_ms"] = round(round_trip_ms(lambda: ours.tokenize("hello")), 3)
    if quiet is not None:
        memory["ipc_round_trip_nosample_ms"] = round(round_trip_ms(lambda: quiet.tokenize("hello")), 3)
        quiet.unload()
    memory["own_memory_ms_bare_process"] = round(round_trip_ms(own_memory_now), 3)
    log(f"torch {dtype} memory: {memory}")
    ours.unload()
    net = None  # frees the bare copy before the next dtype
    if device == "cuda":
        torch.cuda.empty_cache()
    return rows, [memory]


# --- embeddings -------------------------------------------------------------------------------------


def make_random_minilm(config_dir: Path, out_dir: Path) -> Path:
    """all-MiniLM-L6-v2's sentence-transformers folder with random weights (its config, tokenizer, pooling)."""
    import torch
    from transformers import AutoConfig, AutoModel

    if (out_dir / "model.safetensors").exists():
        return out_dir
    shutil.copytree(config_dir, out_dir, dirs_exist_ok=True)
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(config_dir)).save_pretrained(out_dir)
    return out_dir


def embed_rows(model_dir: Path, args, precision: str, nvml: Nvml) -> tuple[list[dict], list[dict]]:
    import torch
    from sentence_transformers import SentenceTransformer

    from bench.embed.corpus import make_corpus
    from engines.embeddings import EmbedConfig
    from engines.process.proxy import WorkerObject

    device = args.device
    texts = make_corpus(args.embed_texts)
    ours = WorkerObject.embedder()
    ours.load(str(model_dir), EmbedConfig(device=device, precision=precision))
    quiet = None
    if args.nosample:
        quiet = WorkerObject("worker_nosample:Embedder", "sentence-transformers (sampling off)")
        quiet.load(str(model_dir), EmbedConfig(device=device, precision=precision))
    bare = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
    bare = bare.to({"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]).eval()

    def ours_sps(batch: int, engine=ours) -> float:
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            engine.embed_batch(texts[i : i + batch])
        return len(texts) / (time.perf_counter() - t0)

    def bare_sps(batch: int) -> float:  # the same slices ours gets (encode sorts within a slice only)
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            bare.encode(texts[i : i + batch], batch_size=batch)
        if device == "cuda":
            torch.cuda.synchronize()
        return len(texts) / (time.perf_counter() - t0)

    card = card_name(device)
    rows = []
    for batch in args.batches:
        ours_sps(batch), bare_sps(batch)
        if quiet is not None:
            ours_sps(batch, quiet)
        for rep in range(args.reps):
            runs = [("ours", ours_sps), ("bare encode", bare_sps)]
            if quiet is not None:
                runs.insert(1, (NOSAMPLE, lambda batch, q=quiet: ours_sps(batch, q)))
            for impl, fn in runs if rep % 2 == 0 else list(reversed(runs)):
                sps, energy = timed(nvml, lambda fn=fn, batch=batch: fn(batch))
                rows.append(
                    {
                        "engine": "embeddings",
                        "variant": precision,
                        "device": device,
                        "card": card,
                        "test": f"batch{batch}",
                        "n_texts": len(texts),
                        "impl": impl,
                        "rep": rep,
                        "sps": round(sps, 2),
                        **energy,
                    }
                )
                log(f"embeddings {precision} batch{batch} rep {rep} {impl}: {sps:.1f} sentences/s")
    memory = {
        "engine": "embeddings",
        "variant": precision,
        "device": device,
        "card": card,
        "worker_pid": ours.pid,
        "worker_gpu_bytes_nvml": nvml.process_bytes(ours.pid),
        "bare_process_gpu_bytes_nvml": nvml.process_bytes(os.getpid()),
        "worker_private_bytes": (ours.memory() or {}).get("private_bytes"),
    }
    memory["ipc_round_trip_ms"] = round(round_trip_ms(lambda: ours.info()), 3)
    if quiet is not None:
        memory["ipc_round_trip_nosample_ms"] = round(round_trip_ms(lambda: quiet.info()), 3)
        quiet.close()
    log(f"embeddings {precision} memory: {memory}")
    ours.close()
    bare = None
    if device == "cuda":
        torch.cuda.empty_cache()
    return rows, [memory]


# --- summary ----------------------------------------------------------------------------------------


def summarize(rows: list[dict], bandwidth_tbps: float) -> list[dict]:
    """Mean ± sd per (engine, variant, test, impl), roofline_pct for tg, and ours ÷ each bare impl (derived)."""
    out = []
    keys = list(dict.fromkeys((r["engine"], r["variant"], r["test"]) for r in rows))
    for engine, variant, test in keys:
        group = [r for r in rows if (r["engine"], r["variant"], r["test"]) == (engine, variant, test)]
        col = "sps" if engine == "embeddings" else "tps"
        means = {}
        for impl in dict.fromkeys(r["impl"] for r in group):
            mine = [r for r in group if r["impl"] == impl]
            values = [r[col] for r in mine]
            means[impl] = statistics.mean(values)
            row = {
                "kind": "interleaved",
                "engine": engine,
                "variant": variant,
                "card": group[0]["card"],
                "test": test,
                "impl": impl,
                "n": len(values),
                "mean": round(means[impl], 2),
                "sd": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
                "unit": "sentences/s" if engine == "embeddings" else "t/s",
            }
            ttft = [r["ttft_s"] for r in mine if r.get("ttft_s") is not None]
            if ttft and test.startswith("pp"):
                row["ttft_ms"] = round(statistics.mean(ttft) * 1e3, 3)
            power = [r["mean_power_w"] for r in mine if r.get("mean_power_w") is not None]
            if power:
                row["mean_power_w"] = round(statistics.mean(power), 1)
            bpt = mine[0].get("bytes_per_token")
            if bpt:
                roofline = bandwidth_tbps * 1e12 / bpt
                row["roofline_pct"] = round(100 * means[impl] / roofline, 3)
            out.append(row)
        for impl, value in means.items():
            if impl != "ours" and "ours" in means:
                out.append(
                    {
                        "kind": "ratio (derived)",
                        "engine": engine,
                        "variant": variant,
                        "card": group[0]["card"],
                        "test": test,
                        "impl": f"ours ÷ {impl}",
                        "n": 0,
                        "mean": round(means["ours"] / value, 3),
                        "sd": "",
                        "unit": "",
                    }
                )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-dir", type=Path, help="SmolLM2's config.json + tokenizer (the torch part)")
    parser.add_argument("--embed-config-dir", type=Path, help="all-MiniLM-L6-v2's folder without its weights")
    parser.add_argument("--parts", default="torch,embed")
    parser.add_argument("--device", default="cuda", help="cuda; cpu for a dry run")
    parser.add_argument("--dtypes", default="fp16,bf16")
    parser.add_argument("--precisions", default="fp32,fp16")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-p", "--n-prompt", type=int, default=512)
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("--depths", default="2048", help="KV depths besides 0 for tg, comma-separated ('' for none)")
    parser.add_argument("--batches", default="32,256")
    parser.add_argument("--embed-texts", type=int, default=4096)
    parser.add_argument("--bandwidth-tbps", type=float, default=4.8, help="the card's memory bandwidth (H200: 4.8)")
    parser.add_argument("--nosample", action="store_true", help="also time a worker with memory sampling off")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--prefix", default="gpu_worker")
    args = parser.parse_args()
    args.depths = [int(d) for d in args.depths.split(",") if d]
    args.batches = [int(b) for b in args.batches.split(",") if b]
    os.environ.setdefault("LOCALBENCH_NO_BW_PROBE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    from core.paths import home

    nvml = Nvml()
    parts = set(args.parts.split(","))
    rows, memory = [], []

    def save() -> list[dict]:  # after every part, so a run cut short keeps what it measured
        summary = summarize(rows, args.bandwidth_tbps)
        write_csv(args.out / f"{args.prefix}_pairs.csv", rows)
        write_csv(args.out / f"{args.prefix}_memory.csv", memory)
        write_csv(args.out / f"{args.prefix}_summary.csv", summary)
        return summary

    if "torch" in parts:
        model_dir = make_random_model(args.config_dir, home() / "smollm2-135m-random-weights")
        for dtype in args.dtypes.split(","):
            got, mem = torch_rows(model_dir, args, dtype, nvml)
            rows, memory = rows + got, memory + mem
            save()
    if "embed" in parts:
        embed_dir = make_random_minilm(args.embed_config_dir, home() / "minilm-l6-random-weights")
        for precision in args.precisions.split(","):
            got, mem = embed_rows(embed_dir, args, precision, nvml)
            rows, memory = rows + got, memory + mem
            save()
    for row in save():
        extra = " ".join(f"{k}={row[k]}" for k in ("ttft_ms", "mean_power_w", "roofline_pct") if k in row)
        log(
            f"{row['kind']:16s} {row['engine']:10s} {row['variant']:4s} {row['test']:13s} {row['impl']:24s} "
            f"{row['mean']} {row['sd']} {extra}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
