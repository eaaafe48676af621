"""Ours ÷ llama-bench on the same GGUF file, threads and settings, run interleaved.

llama.cpp's own `llama-bench` is built once (target llama-bench only, -DGGML_NATIVE=ON
-DLLAMA_CURL=OFF) from the llama.cpp sources vendored in the pinned llama-cpp-python sdist, into
.gl/ (ignored) or --build-dir. Then, for each round, `python app.py bench` (the llama-bench method,
llama_decode only) and `llama-bench` run the same tests (pp, tg, each at depth 0 and at -d) with the
same -t, -r, -fa and repack, alternating which goes first (ABBA), and the script prints and writes
ours ÷ llama-bench per test as mean ± sd over rounds, with the machine's CPU flags and load.

--variants F16,Q8_0,Q4_0 builds (or takes from the cache) those ladder files of --model with the
quantization lab's own ladder code, and both tools then read the same file for each variant.

    python benchmarks/llama_bench_parity.py --variants F16,Q8_0,Q4_0 -p 128,512 --threads 2 --repack 0 --rounds 2

--per-sample pairs the two tools one repetition at a time, for a shared VM whose speed drifts by 10-30 %
over seconds to minutes (more than the gap being tested): ours is loaded once through the CLI's own path
(planning.guard.guarded_pool -> the model's worker process -> LlamaCppEngine.bench_decode, the call `app.py
bench` makes), and each round runs one warm-up + one repetition of every test in ours, then one `llama-bench
-r 1` run (its own warm-up), in alternating order. The ratio is the geometric mean of the per-round ratios
with a 95 % interval (normal, over rounds); the raw per-round figures go to the .csv beside it. --control adds
a second llama-bench arm (the three arms' order rotating through all six): llama-bench ÷ llama-bench is A/A,
true ratio 1, so its interval shows how far this machine's noise alone moves one cell's ratio.

    python benchmarks/llama_bench_parity.py --per-sample --rounds 60 -p 128 --depth 0 --repack 1
    python benchmarks/llama_bench_parity.py --per-sample --control --variants F16,Q8_0,Q4_0 -p 128,512 --depth 0 \
        --repack 1 --rounds 24
"""

from __future__ import annotations

import argparse
import csv
import glob
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTROL = "llama-bench B"
"""--control's arm: a second `llama-bench -r 1` run per round, whose ratio to the first is the method's own
noise floor on this machine (A/A: the same binary, file and settings, so its true ratio is 1)."""
sys.path.insert(0, str(ROOT))


def sdist(version: str, work: Path) -> Path:
    """The llama-cpp-python sdist: the pip cache or a fresh `pip download` (sources only)."""
    found = glob.glob(str(work / f"llama_cpp_python-{version}.tar.gz"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
            + [f"llama-cpp-python=={version}", "-d", str(work)],
            check=True,
        )
        found = glob.glob(str(work / f"llama_cpp_python-{version}.tar.gz"))
    return Path(found[0])


def build_llama_bench(build_dir: Path) -> Path:
    """Path of llama-bench, built from the vendored llama.cpp once (a few minutes on 2 cores)."""
    version = metadata.version("llama_cpp_python")
    exe = build_dir / "build" / "bin" / "llama-bench"
    if exe.exists():
        return exe
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if not src.exists():
        with tarfile.open(sdist(version, build_dir)) as tar:
            tar.extractall(build_dir, filter="data")
    flags = ["-G", "Ninja"] if subprocess.run(["which", "ninja"], capture_output=True).returncode == 0 else []
    subprocess.run(
        ["cmake", "-S", str(src), "-B", str(build_dir / "build"), *flags, "-DCMAKE_BUILD_TYPE=Release"]
        + ["-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"]
        + ["-DBUILD_SHARED_LIBS=OFF"],
        check=True,
    )
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["cmake", "--build", str(build_dir / "build"), "--target", "llama-bench", "-j", jobs], check=True)
    return exe


def common_flags(a: argparse.Namespace) -> list[str]:
    depths = f"0,{a.depth}" if a.depth else "0"
    return ["-p", a.n_prompt, "-n", str(a.n_gen), "-d", depths, "-r", str(a.repetitions)] + [
        "-t",
        str(a.threads),
        "-fa",
        a.flash_attn,
        "--repack",
        a.repack,
    ]


def run_ours(a: argparse.Namespace, home: str, model_path: str) -> list[dict]:
    cmd = [sys.executable, str(ROOT / "app.py"), "bench", "--engine", "llamacpp", "--model", model_path]
    out = subprocess.run(
        cmd + common_flags(a) + ["-o", "json"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "LOCALBENCH_HOME": home, "HF_HUB_OFFLINE": "1"},
    )
    return [
        {"n_prompt": r["n_prompt"], "n_gen": r["n_gen"], "n_depth": r["n_depth"], "samples_ts": r["samples_ts"]}
        for r in json.loads(out.stdout)
    ]


def run_reference(a: argparse.Namespace, exe: Path, model_path: str) -> list[dict]:
    out = subprocess.run(
        [str(exe), "-m", model_path, *common_flags(a), "-o", "json"], check=True, capture_output=True, text=True
    )
    return [
        {"n_prompt": r["n_prompt"], "n_gen": r["n_gen"], "n_depth": r["n_depth"], "samples_ts": r["samples_ts"]}
        for r in json.loads(out.stdout)
    ]


def test_name(r: dict, variant: str = "") -> str:
    name = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    name = f"{name} @ d{r['n_depth']}" if r["n_depth"] else name
    return f"{variant} {name}" if variant else name


def mean_sd(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def report(a, ours, ref, loads, flags, model_paths, rounds_done: int) -> None:
    """Print and write (md, csv) ours ÷ llama-bench per test over the rounds done so far."""
    table = []
    for name in ref:
        ratios = [statistics.fmean(o) / statistics.fmean(b) for o, b in zip(ours[name], ref[name], strict=True)]
        o_m, o_s = mean_sd([x for rnd in ours[name] for x in rnd])
        b_m, b_s = mean_sd([x for rnd in ref[name] for x in rnd])
        r_m, r_s = mean_sd(ratios)
        table.append(
            {
                "test": name,
                "ours_ts": round(o_m, 2),
                "ours_sd": round(o_s, 2),
                "llama_bench_ts": round(b_m, 2),
                "llama_bench_sd": round(b_s, 2),
                "ratio": round(r_m, 3),
                "ratio_sd": round(r_s, 3),
                "ratios_per_round": " ".join(f"{x:.3f}" for x in ratios),
            }
        )
    meta = (
        f"model {a.model} ({', '.join(Path(m).name for m in model_paths)}), {a.threads} threads, "
        f"-fa {a.flash_attn}, --repack {a.repack}, "
        f"-r {a.repetitions}, {rounds_done} interleaved rounds (ABBA); llama-cpp-python "
        f"{metadata.version('llama_cpp_python')}; llama-bench built from its vendored llama.cpp (GGML_NATIVE=ON); "
        f"load average (1 min) per arm: {', '.join(f'{lb}:{b:.1f}' for _, lb, b, _, _ in loads)}; "
        f"{os.cpu_count()} logical CPUs"
    )
    lines = [
        "# ours ÷ llama-bench (llama.cpp, CPU)",
        "",
        meta,
        "",
        f"CPU SIMD flags (/proc/cpuinfo): {flags}",
        "",
        "| test | ours t/s | llama-bench t/s | ours ÷ llama-bench (mean ± sd over rounds) | per round |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in table:
        lines.append(
            f"| {r['test']} | {r['ours_ts']:.2f} ± {r['ours_sd']:.2f} | {r['llama_bench_ts']:.2f} ± "
            f"{r['llama_bench_sd']:.2f} | {r['ratio']:.3f} ± {r['ratio_sd']:.3f} | {r['ratios_per_round']} |"
        )
    write_report(a.out, lines, table)


def write_report(out: str, lines: list[str], rows: list[dict]) -> None:
    """Print the markdown lines and write them to out.md, and the rows to out.csv."""
    text = "\n".join(lines) + "\n"
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out + ".md").write_text(text, encoding="utf-8")
    with open(out + ".csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def paired_stats(ours: list[float], ref: list[float]) -> dict:
    """Geometric mean of ours/ref per round and its 95 % interval (normal approximation over rounds)."""
    logs = [math.log(o / b) for o, b in zip(ours, ref, strict=True) if o > 0 and b > 0]
    m = statistics.fmean(logs)
    half = 1.96 * statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else math.inf
    return {"ratio": math.exp(m), "low": math.exp(m - half), "high": math.exp(m + half), "rounds": len(logs)}


def run_per_sample(a: argparse.Namespace, exe: Path, models: list[tuple[str, str]], flags: str) -> None:
    """Ours and llama-bench (and --control's second llama-bench) one repetition each per round, the order
    rotating; see the module docstring."""
    from commands.output import LLAMA_BENCH_N_BATCH
    from engines.base import LoadConfig
    from planning.guard import guarded_pool

    prompts = [int(x) for x in a.n_prompt.split(",") if x.strip()]
    depths = [0, a.depth] if a.depth else [0]
    tests = [(p, 0, d) for d in depths for p in prompts] + ([(0, a.n_gen, d) for d in depths] if a.n_gen else [])
    needed = max(p + n + d for p, n, d in tests) + 16
    config = LoadConfig(
        n_ctx=max(2048, 1 << needed.bit_length()),
        n_threads=a.threads,
        n_batch=LLAMA_BENCH_N_BATCH,
        options=(("repack", a.repack),),
    ).validate()
    ref_flags = common_flags(argparse.Namespace(**{**vars(a), "repetitions": 1})) + ["-o", "json"]
    arms = ("ours", "llama-bench") + ((CONTROL,) if a.control else ())
    orders = list(itertools.permutations(arms))  # every order in turn (ABBA for two): no arm always follows another
    samples: list[dict] = []
    pool = guarded_pool(max_loaded=1)
    try:
        for variant, path in models:
            engine = pool.get("llamacpp", path, config)
            for rnd in range(a.rounds):
                order = orders[rnd % len(orders)]
                for position, arm in enumerate(order):
                    base = {"variant": variant, "round": rnd, "arm": arm, "position": position}
                    if arm == "ours":
                        for p, n, d in tests:
                            run = engine.bench_decode(p, n, d, 1, n_threads=a.threads, flash_attn=a.flash_attn)
                            name = test_name({"n_prompt": p, "n_gen": n, "n_depth": d}, variant)
                            ts = (p + n) / (run.samples_ns[0] / 1e9)
                            samples.append(base | {"test": name, "ts": ts, "load1": os.getloadavg()[0]})
                    else:
                        out = subprocess.run([str(exe), "-m", path, *ref_flags], check=True, capture_output=True)
                        for r in json.loads(out.stdout):
                            name, ts = test_name(r, variant), r["samples_ts"][0]
                            samples.append(base | {"test": name, "ts": ts, "load1": os.getloadavg()[0]})
                print(f"{variant or Path(path).name} round {rnd + 1}/{a.rounds}", flush=True)
            pool.unload_all()
            report_per_sample(a, samples, flags, [p for _, p in models])  # kept if a later variant fails
    finally:
        pool.unload_all()


def report_per_sample(a: argparse.Namespace, samples: list[dict], flags: str, model_paths: list[str]) -> None:
    by: dict[tuple[str, str], dict[int, float]] = {}
    for s in samples:
        by.setdefault((s["test"], s["arm"]), {})[s["round"]] = s["ts"]
    lines = [
        "# ours ÷ llama-bench (llama.cpp, CPU), paired per repetition",
        "",
        f"model {a.model} ({', '.join(Path(m).name for m in model_paths)}), {a.threads} threads, -fa {a.flash_attn}, "
        f"--repack {a.repack}; {a.rounds} rounds, each one warm-up + one repetition of every test in ours (the "
        "model's worker, LlamaCppEngine.bench_decode) and one `llama-bench -r 1` run, order rotating; "
        f"llama-cpp-python {metadata.version('llama_cpp_python')}, llama-bench built from its vendored llama.cpp "
        f"(static, GGML_NATIVE=ON); {os.cpu_count()} logical CPUs; load average (1 min) "
        f"{min(s['load1'] for s in samples):.2f}-{max(s['load1'] for s in samples):.2f}",
        "",
        f"CPU SIMD flags (/proc/cpuinfo): {flags}",
        "",
        "Ratio: geometric mean over rounds of ours ÷ llama-bench in the same round, with its 95 % interval "
        "(derived). t/s: mean ± sample stddev over rounds (measured, one repetition per round)."
        + (
            f" Control: `{CONTROL}` is a second llama-bench run in the same round (every order of the three arms "
            "in turn); its ratio to the first is A/A, true value 1, so its spread is what this machine's noise "
            "alone does to one cell's ratio."
            if a.control
            else ""
        ),
        "",
        "| test | ours t/s | llama-bench t/s | ours ÷ llama-bench | 95 % interval | rounds |"
        + (" llama-bench B ÷ llama-bench (A/A) | 95 % interval |" if a.control else ""),
        "| --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if a.control else ""),
    ]
    for test in dict.fromkeys(s["test"] for s in samples):
        o, b, c = (by.get((test, arm), {}) for arm in ("ours", "llama-bench", CONTROL))
        rounds = sorted(set(o) & set(b))
        if not rounds:
            continue
        ov, bv = [o[r] for r in rounds], [b[r] for r in rounds]
        st = paired_stats(ov, bv)
        (om, osd), (bm, bsd) = mean_sd(ov), mean_sd(bv)
        line = (
            f"| {test} | {om:.2f} ± {osd:.2f} | {bm:.2f} ± {bsd:.2f} | {st['ratio']:.3f} | "
            f"{st['low']:.3f}-{st['high']:.3f} | {st['rounds']} |"
        )
        if a.control:
            both = sorted(set(c) & set(b))
            aa = paired_stats([c[r] for r in both], [b[r] for r in both]) if len(both) > 1 else None
            line += f" {aa['ratio']:.3f} | {aa['low']:.3f}-{aa['high']:.3f} |" if aa else " | |"
        lines.append(line)
    write_report(a.out, lines, samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="", help="ladder types of --model to run, e.g. F16,Q8_0,Q4_0")
    parser.add_argument("-p", "--n-prompt", default="128", help="prompt sizes, e.g. 128,512")
    parser.add_argument("--n-gen", type=int, default=64)
    parser.add_argument("--depth", type=int, default=512)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--flash-attn", default="auto")
    parser.add_argument("--repack", default="0", help="0 on AMX CPUs (llama.cpp#20824 crashes with repack)")
    parser.add_argument("--build-dir", default=str(ROOT / ".gl"))
    parser.add_argument("--per-sample", action="store_true", help="pair one repetition of each tool per round")
    parser.add_argument(
        "--control",
        action="store_true",
        help="with --per-sample, a second llama-bench arm: llama-bench ÷ llama-bench (A/A) shows the noise floor",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "llama_bench_parity_cpu"))
    a = parser.parse_args()

    from engines.process.faults import cpu_flags
    from models.catalog import resolve_model

    exe = build_llama_bench(Path(a.build_dir))
    if a.variants:
        from bench.quant.ladder import build_ladder

        ladder = build_ladder(a.model, [v.strip() for v in a.variants.split(",") if v.strip()], threads=a.threads)
        models = [(f.variant, f.path) for f in ladder.files]
    else:
        models = [("", resolve_model(a.model).path)]
    simd = ("avx", "amx", "fma", "f16c", "sse4", "vnni", "neon", "sve", "dotprod", "i8mm")
    flags = " ".join(f for f in cpu_flags().split() if f.startswith(simd) or "vnni" in f)
    print(f"CPU: {platform.processor() or platform.machine()}, flags: {flags}")
    if a.per_sample:
        run_per_sample(a, exe, models, flags)
        return 0
    ours: dict[str, list[list[float]]] = {}
    ref: dict[str, list[list[float]]] = {}
    loads = []
    with tempfile.TemporaryDirectory() as home:
        for rnd in range(a.rounds):
            for variant, path in models:
                arms = [
                    ("ours", lambda p=path: run_ours(a, home, p)),
                    ("llama-bench", lambda p=path: run_reference(a, exe, p)),
                ]
                for label, fn in arms if rnd % 2 == 0 else arms[::-1]:
                    before = os.getloadavg()[0]
                    t0 = time.perf_counter()
                    rows = fn()
                    loads.append((rnd, label, before, os.getloadavg()[0], time.perf_counter() - t0))
                    took = time.perf_counter() - t0
                    print(f"round {rnd + 1} {variant} {label}: {took:.0f} s, load {before:.2f}", flush=True)
                    for r in rows:
                        (ours if label == "ours" else ref).setdefault(test_name(r, variant), []).append(r["samples_ts"])
            report(a, ours, ref, loads, flags, [p for _, p in models], rnd + 1)

    return 0


if __name__ == "__main__":
    sys.exit(main())
