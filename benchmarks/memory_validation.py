"""Memory planner validation: estimate vs the measured RSS increase of loading each ladder variant of
the bundled SmolLM2-135M at two context sizes, each in a fresh subprocess.

For every variant (the shipped Q4_1 plus the quantization lab's ladder, bench/quant/ladder.py; if that
module is absent the variants are quantized here with llama_cpp.llama_model_quantize into a temp dir)
and every context (default 2048 and 8192 tokens), a fresh Python process imports llama_cpp and the
engine module, reads its RSS, loads the file with the app's own LlamaCppEngine (n_threads 2, n_batch
512, CPU) and reads RSS again; the increase is compared with the planner's `resident_bytes`
(weights + CPU repack copy + KV cache + runtime overhead; target ±15 %). The same process then
reloads with verbose=True to capture llama.cpp's own "compute buffer size", compared with the
planner's compute-buffer formula. The bundled Gemma 3 270M (`--also`) is measured as shipped: a
second architecture, with a 262k vocabulary and sliding-window layers. `--fill` also processes an
almost full-context prompt and compares the peak RSS with the planning total (which should be an
upper bound). The weights the planner predicts for each type from the *source* file's tensor table
are compared with the real file size.

    .venv/bin/python benchmarks/memory_validation.py [--ctx 2048,8192] [--fill] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MiB = 2**20
TARGET = 0.15

CHILD = r"""
import json, os, re, sys, tempfile
sys.path.insert(0, sys.argv[1])
import psutil
import llama_cpp
from engines.base import LoadConfig
from models.ref import ModelRef
from engines.llamacpp import LlamaCppEngine
path, n_ctx, fill = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
proc = psutil.Process()
engine = LlamaCppEngine()
before = proc.memory_info().rss
engine.load(ModelRef("variant", path, "gguf"), LoadConfig(n_ctx=n_ctx, n_threads=2, n_batch=512))
after = proc.memory_info().rss
out = {"rss_before": before, "rss_after_load": after}
if fill:
    engine._llm.eval(engine.synthetic_prompt(n_ctx - 16))
    out["rss_after_fill"] = proc.memory_info().rss
engine.unload()
# llama.cpp's own buffer sizes: a verbose reload with stderr captured at the file-descriptor level
log = tempfile.TemporaryFile(mode="w+")
saved = os.dup(2)
os.dup2(log.fileno(), 2)
try:
    llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_threads=2, verbose=True).close()
finally:
    os.dup2(saved, 2)
log.seek(0)
text = log.read()
compute = re.findall(r"sched_reserve:\s+CPU compute buffer size =\s+([\d.]+) MiB", text)
kv = re.findall(r"KV buffer size =\s+([\d.]+) MiB", text)
out["llama_compute_mib"] = float(compute[-1]) if compute else None
out["llama_kv_mib"] = sum(float(x) for x in kv) if kv else None
print(json.dumps(out))
"""


def variants(workdir: Path) -> tuple[list[tuple[str, str]], str]:
    """[(label, path)] for the shipped file and every ladder rung, and where they came from."""
    from models.catalog import resolve_model

    ref = resolve_model("smollm2-135m")
    out = [("Q4_1 (shipped)", ref.path)]
    try:
        from bench.quant.ladder import LADDER_TYPES, build_ladder
    except ImportError:
        import llama_cpp

        for ftype in ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"):
            dst = workdir / f"{ftype}.gguf"
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
            params.allow_requantize, params.nthread = True, 2
            if llama_cpp.llama_model_quantize(ref.path.encode(), str(dst).encode(), ctypes.byref(params)) == 0:
                out.append((ftype, str(dst)))
        return out, "quantized here from the shipped Q4_1 (bench/quant/ladder.py absent)"
    ladder = build_ladder(ref, LADDER_TYPES, threads=2)
    out += [(f.variant, f.path) for f in ladder.files if Path(f.path) != Path(ref.path)]
    return out, f"bench.quant.ladder.build_ladder (reference: {ladder.reference_note})"


def measure(path: str, n_ctx: int, fill: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), path, str(n_ctx), "1" if fill else "0"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {path} at {n_ctx} failed: {done.stderr[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(contexts: list[int], fill: bool, fill_all: bool, also: list[str]) -> tuple[list[dict], str]:
    from models.catalog import resolve_model
    from planning.estimate import estimate, weights_for
    from planning.specs import spec_from_gguf

    source = spec_from_gguf(resolve_model("smollm2-135m").path)
    rows = []
    with tempfile.TemporaryDirectory(prefix="memval-") as tmp:
        files, origin = variants(Path(tmp))
        files += [(f"{name} (other model, as shipped)", resolve_model(name).path) for name in also]
        for i, (label, path) in enumerate(files):
            spec = spec_from_gguf(path)
            nominal = label.split(" ")[0]
            try:
                predicted = weights_for(source, nominal)[0] if "shipped" not in label else None
            except Exception:
                predicted = None
            for n_ctx in contexts:
                print(f"[{i + 1}/{len(files)}] {label} at n_ctx {n_ctx} …", file=sys.stderr, flush=True)
                est = estimate(spec, None, n_ctx, cpu_only=True)
                m = measure(path, n_ctx, fill and (fill_all or i == 0))
                measured = m["rss_after_load"] - m["rss_before"]
                row = {
                    "variant": label,
                    "file_type": spec.file_type,
                    "n_ctx": n_ctx,
                    "file_MiB": spec.file_bytes / MiB,
                    "bpw": spec.file_bytes * 8 / spec.n_params,
                    "predicted_weights_MiB": predicted / MiB if predicted else None,
                    "est_repack_MiB": est.repack_bytes / MiB,
                    "est_kv_MiB": est.kv_cache_bytes / MiB,
                    "llama_kv_MiB": m["llama_kv_mib"],
                    "est_overhead_MiB": est.overhead_bytes / MiB,
                    "est_resident_MiB": est.resident_bytes / MiB,
                    "measured_rss_increase_MiB": measured / MiB,
                    "error_pct": (est.resident_bytes - measured) / measured * 100,
                    "est_compute_MiB": est.compute_bytes / MiB,
                    "llama_compute_MiB": m["llama_compute_mib"],
                    "est_cpu_work_MiB": est.cpu_work_bytes / MiB,
                    "est_total_MiB": est.total_bytes / MiB,
                }
                if "rss_after_fill" in m:
                    row["measured_after_fill_MiB"] = (m["rss_after_fill"] - m["rss_before"]) / MiB
                rows.append(row)
    return rows, origin


def markdown(rows: list[dict]) -> str:
    head = (
        "| variant | n_ctx | file MiB | bpw | estimate MiB (weights+repack+KV+overhead) | measured RSS increase MiB "
        "| error | compute est / llama.cpp MiB |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        compute = f"{r['est_compute_MiB']:.1f} / {r['llama_compute_MiB']:.1f}" if r["llama_compute_MiB"] else "n/a"
        lines.append(
            f"| {r['variant']} | {r['n_ctx']} | {r['file_MiB']:.1f} | {r['bpw']:.2f} | {r['est_resident_MiB']:.1f} "
            f"| {r['measured_rss_increase_MiB']:.1f} | {r['error_pct']:+.1f} % | {compute} |"
        )
    filled = [r for r in rows if r.get("measured_after_fill_MiB")]
    if filled:
        lines += [
            "",
            "| variant | n_ctx | peak RSS increase, full-context prompt MiB | planning total MiB | total vs peak |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['variant']} | {r['n_ctx']} | {r['measured_after_fill_MiB']:.1f} | {r['est_total_MiB']:.1f} | "
            f"{(r['est_total_MiB'] / r['measured_after_fill_MiB'] - 1) * 100:+.1f} % |"
            for r in filled
        ]
    seen, weights = set(), []
    for r in rows:
        if r["predicted_weights_MiB"] and r["variant"] not in seen and "shipped" not in r["variant"]:
            seen.add(r["variant"])
            err = (r["predicted_weights_MiB"] / r["file_MiB"] - 1) * 100
            weights.append(
                f"| {r['variant']} | {r['predicted_weights_MiB']:.1f} | {r['file_MiB']:.1f} | {err:+.1f} % |"
            )
    if weights:
        lines += [
            "",
            "| type | weights predicted from the Q4_1 source's tensor table MiB | real file MiB | error |",
            "|---|---|---|---|",
            *weights,
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ctx", default="2048,8192", help="context sizes, comma-separated (default 2048,8192)")
    parser.add_argument("--fill", action="store_true", help="also fill the context with a prompt (first variant)")
    parser.add_argument("--fill-all", action="store_true", help="with --fill: every variant (slow)")
    parser.add_argument(
        "--also",
        default="gemma3-270m",
        help="other catalog models to measure as shipped, comma-separated (default gemma3-270m)",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for CSV and JSON")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    contexts = [int(x) for x in args.ctx.split(",") if x.strip()]
    t0 = time.perf_counter()
    rows, origin = run(contexts, args.fill, args.fill_all, [m for m in args.also.split(",") if m.strip()])
    import pandas as pd

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "memory_validation.csv", index=False)
    errors = frame["error_pct"].abs()
    summary = {
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "variants_from": origin,
        "method": "fresh subprocess per (variant, n_ctx); RSS (psutil) after importing llama_cpp and the engine, "
        "then after LlamaCppEngine.load (n_threads 2, n_batch 512, CPU); one measurement each "
        "(memory, not timing: repeated runs agree to within ~1 MiB)",
        "n": len(rows),
        "within_15pct": int((errors <= TARGET * 100).sum()),
        "max_abs_error_pct": float(errors.max()),
        "mean_abs_error_pct": float(errors.mean()),
        "seconds": time.perf_counter() - t0,
        "rows": rows,
    }
    (out / "memory_validation.json").write_text(json.dumps(summary, indent=2))
    print(markdown(rows))
    print(
        f"\n{summary['within_15pct']}/{summary['n']} within ±15 %; max |error| {summary['max_abs_error_pct']:.1f} %, "
        f"mean |error| {summary['mean_abs_error_pct']:.1f} % ({summary['seconds']:.0f} s; variants from {origin})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
