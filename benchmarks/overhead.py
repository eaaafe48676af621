"""Overhead of our engine + runner against a bare llama-cpp-python loop, same model, same settings.

Both sides load the same GGUF with the same n_ctx/threads/batch and decode the same random-token
prompt greedily with end-of-sequence suppressed, interleaved A B A B ... so background load hits both.
Decode t/s on each side is measured on the wall clock from the streamed tokens, (n - 1) / (t_last -
t_first); the ratio ours / bare is the overhead figure (target >= 0.98). It also checks that the
t/s we report (from llama.cpp's perf counters) agrees with the bare run's own perf counters within 3 %.

    python benchmarks/overhead.py [--model smollm2-135m] [-n 128] [-r 10] [--out benchmarks/results/overhead_cpu.csv]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bare_run(llm, tokens, n_gen, eos):
    """Stream with the bare library; returns (wall decode t/s, counter decode t/s)."""
    import llama_cpp

    llm.reset()
    llama_cpp.llama_perf_context_reset(llm.ctx)
    times = []
    for part in llm.create_completion(
        tokens, max_tokens=n_gen, temperature=0.0, logit_bias={eos: -math.inf}, stream=True
    ):
        if part["choices"][0].get("text"):
            times.append(time.perf_counter())
    d = llama_cpp.llama_perf_context(llm.ctx)
    return (len(times) - 1) / (times[-1] - times[0]), d.n_eval / (d.t_eval_ms / 1e3)


def our_run(engine, tokens, n_gen):
    """Stream through our engine; returns (wall decode t/s, reported gen t/s)."""
    from engines.base import GenerationParams

    times, stats = [], None
    for chunk in engine.stream(tokens, GenerationParams(max_tokens=n_gen, ignore_eos=True)):
        if chunk.stats is not None:
            stats = chunk.stats
        elif chunk.text:
            times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0]), stats.gen_tps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("-r", "--repetitions", type=int, default=10)
    parser.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default="benchmarks/results/overhead_cpu.csv")
    args = parser.parse_args()

    import pandas as pd

    from bench.stats import summarize
    from engines.base import LoadConfig
    from engines.llamacpp import LlamaCppEngine, open_llama
    from machine.detect import detect_hardware
    from models.catalog import resolve_model

    ref = resolve_model(args.model)
    config = LoadConfig(n_ctx=1024, n_threads=args.threads, n_batch=512)
    engine = LlamaCppEngine()
    engine.load(ref, config)
    bare = open_llama(  # the same repack choice as the engine (off where llama.cpp#20824 crashes)
        ref.path,
        engine.repack,
        n_ctx=1024,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    tokens = engine.synthetic_prompt(16, seed=0)
    eos = bare.token_eos()
    our_run(engine, tokens, 16)  # warm-up both
    bare_run(bare, tokens, 16, eos)
    rows = []
    for rep in range(args.repetitions):
        ours_wall, ours_reported = our_run(engine, tokens, args.n_gen)
        bare_wall, bare_counter = bare_run(bare, tokens, args.n_gen, eos)
        rows.append(
            {
                "rep": rep,
                "ours_wall_tps": ours_wall,
                "ours_reported_tps": ours_reported,
                "bare_wall_tps": bare_wall,
                "bare_counter_tps": bare_counter,
            }
        )
    frame = pd.DataFrame(rows)
    ours, bare_s = summarize(frame["ours_wall_tps"]), summarize(frame["bare_wall_tps"])
    reported, counter = summarize(frame["ours_reported_tps"]), summarize(frame["bare_counter_tps"])
    ratio = ours.mean / bare_s.mean
    agreement = reported.mean / counter.mean
    hw = detect_hardware()
    summary = {
        "machine": f"{hw.chip} ({hw.family}), {hw.perf_cores} cores, {hw.ram_bytes / 2**30:.0f} GiB",
        "model": ref.name,
        "n_gen": args.n_gen,
        "repetitions": args.repetitions,
        "n_threads": args.threads,
        "ours_decode_tps": f"{ours.mean:.2f} ± {ours.stddev:.2f}",
        "bare_decode_tps": f"{bare_s.mean:.2f} ± {bare_s.stddev:.2f}",
        "ratio_ours_over_bare (derived)": round(ratio, 4),
        "ours_reported_tps": f"{reported.mean:.2f} ± {reported.stddev:.2f}",
        "bare_perf_counter_tps": f"{counter.mean:.2f} ± {counter.stddev:.2f}",
        "reported_vs_counters (derived)": round(agreement, 4),
    }
    for k, v in summary.items():
        print(f"{k}: {v}")
    print(
        f"ratio target >= 0.98: {'PASS' if ratio >= 0.98 else 'FAIL'}; "
        f"counter agreement within 3 %: {'PASS' if abs(agreement - 1) <= 0.03 else 'FAIL'}"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        frame.assign(**{k: v for k, v in summary.items()}).to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
