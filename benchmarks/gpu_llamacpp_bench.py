"""llama.cpp with CUDA through our worker engine, against bare llama-cpp-python and llama-bench, on one card.

Three arms run the same tests (pp and tg at each KV depth: llama-bench's -p, -n, -d) on the same GGUF file,
all layers on the GPU, the same threads, batch (-b 2048, -ub 512), flash attention (auto) and f16 KV cache,
interleaved per round (the order turns round by round):
  ours        — `engines.process.proxy.WorkerEngine("llamacpp")` (the model in its worker process, as `python app.py
                bench --engine llamacpp -ngl -1` runs it): `bench_decode`, llama-bench's method through the
                worker (engines/llamacpp_bench.py), raw nanoseconds per repetition.
  bare        — llama-cpp-python's low-level bindings in this process, no localbench code: the model loaded
                with llama_model_load_from_file, a fresh context per test (n_ctx = d + p + n), the depth
                prefilled once and cut back with llama_memory_seq_rm per repetition, pp in n_batch chunks,
                tg one token a decode, llama_synchronize after each, one warm-up.
  llama-bench — llama.cpp's own tool built from the same vendored sources, `-o json`, its samples_ns.
pp's TTFT (derived) is the time of the pp decode itself. Also recorded: NVML per-process GPU memory (the
worker's pid and this process's), mean GPU power over each arm's call (NVML energy counter, warm-up and
context creation included), roofline_pct for tg = t/s ÷ (bandwidth ÷ (tensor bytes + f16 KV bytes at that
depth)), derived.

The llama.cpp sources come from the pinned llama-cpp-python sdist, trimmed to what a CUDA build needs
(--source-tar: llama.cpp/ with ggml (cpu, cuda), src, include, common, vendor, cmake, gguf-py and
tools/llama-bench, tools/CMakeLists.txt cut to llama-bench), built on the device with -DGGML_CUDA=ON
-DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF; the shared libraries are copied into
the llama_cpp package folder under --site (llama-cpp-python's pure-Python package, which loads lib/*.so).

Model: the bundled SmolLM2-135M-Instruct Q4_1 GGUF is 98 MB, over the device's 64 MiB transfer, so
--skeleton holds its metadata (tokenizer included) and tensor list, made here with `--make-skeleton
GGUF`, and the device writes a GGUF of the same tensors, shapes and types (Q4_1, Q8_0, F32) with *random
weights* (gguf-py's quantizers). Speed only, no quality.

    python benchmarks/gpu_llamacpp_bench.py --make-skeleton SmolLM2-135M-Instruct.Q4_1.gguf --skeleton DIR
    python benchmarks/gpu_llamacpp_bench.py --skeleton DIR --source-tar T --site S --work /tmp/lcb --out OUT

The environment the H200 run (2026-12-02) needed besides that: S also holds diskcache and a minimal
llama_cpp_python-0.3.36.dist-info/METADATA (our engine reads the version through importlib.metadata);
PYTHONPATH = a folder whose sitecustomize.py does `import llama_cpp`, then S, the repo, and
/tmp/lcb/llama.cpp/gguf-py. The preload is needed because on that image a process that loads the image's
sentencepiece wheel (gguf-py imports it; our GGUF reader imports gguf-py) before libllama.so segfaults in
llama.cpp's BPE tokenizer while loading the vocabulary (seen with cuda-gdb; loading llama_cpp first works).
Importing torch before llama_cpp also segfaulted (exit 139, not traced), so the torch parts run without it.
Dry run on the CPU: --device cpu --llama-bench PATH (a CPU build, or none) -p 32 -n 8 --depths 0,64 --rounds 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_bench import log, write_csv  # noqa: E402
from gpu_worker_bench import Nvml, kv_bytes, summarize, timed  # noqa: E402
from llama_bench_parity import test_name  # noqa: E402

ENGINE = "llamacpp"
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_CUDA=ON",
    "-DCMAKE_CUDA_ARCHITECTURES=90",
    "-DBUILD_SHARED_LIBS=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF",
]


def import_gguf(extra: Path | None):
    """gguf-py: the installed package, else the vendored copy under `extra`."""
    try:
        import gguf
    except ImportError:
        sys.path.insert(0, str(extra))
        import gguf
    return gguf


# --- the random-weight GGUF ---------------------------------------------------------------------------


def make_skeleton(src: Path, out_dir: Path, gguf_py: Path | None) -> None:
    """`src`'s metadata (a GGUF with no tensors) and its tensor list (name, shape, type) under out_dir."""
    gguf = import_gguf(gguf_py)
    reader = gguf.GGUFReader(str(src))
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(out_dir / "skeleton.gguf"), arch)
    copy_fields(gguf, reader, writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    specs = [[t.name, [int(x) for x in t.shape], t.tensor_type.name, int(t.n_bytes)] for t in reader.tensors]
    (out_dir / "tensors.json").write_text(json.dumps({"source": src.name, "tensors": specs}), encoding="utf-8")
    log(f"skeleton of {src.name}: {len(specs)} tensors, {(out_dir / 'skeleton.gguf').stat().st_size} B metadata")


def copy_fields(gguf, reader, writer) -> None:
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)


def random_gguf(skeleton: Path, out: Path, gguf_py: Path | None, seed: int = 0) -> tuple[Path, int]:
    """A GGUF with the skeleton's metadata and tensors (same shapes and types), random weights; (path, bytes)."""
    import numpy as np

    gguf = import_gguf(gguf_py)
    specs = json.loads((skeleton / "tensors.json").read_text(encoding="utf-8"))["tensors"]
    tensor_bytes = sum(s[3] for s in specs)
    if out.exists():
        return out, tensor_bytes
    reader = gguf.GGUFReader(str(skeleton / "skeleton.gguf"))
    writer = gguf.GGUFWriter(str(out), reader.fields["general.architecture"].contents())
    copy_fields(gguf, reader, writer)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for name, shape, type_name, _ in specs:
        qtype = gguf.GGMLQuantizationType[type_name]
        dims = tuple(reversed(shape))  # numpy order
        if name.endswith("norm.weight"):
            values = np.ones(dims, dtype=np.float32)
        else:
            values = (rng.standard_normal(dims, dtype=np.float32) * 0.02).astype(np.float32)
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, values)
        else:
            writer.add_tensor(name, gguf.quants.quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    log(f"random-weight GGUF {out} ({out.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.0f} s")
    return out, tensor_bytes


# --- the CUDA build ------------------------------------------------------------------------------------


def build(source_tar: Path, work: Path, jobs: int) -> Path:
    """build/bin of the trimmed llama.cpp (shared libs + llama-bench); kept when it already holds llama-bench."""
    bin_dir = work / "build" / "bin"
    if (bin_dir / "llama-bench").exists():
        return bin_dir
    src = work / "llama.cpp"
    if not src.exists():
        work.mkdir(parents=True, exist_ok=True)
        with tarfile.open(source_tar) as tar:
            tar.extractall(work, filter="data")
    t0 = time.perf_counter()
    cmd = ["cmake", "-S", str(src), "-B", str(work / "build"), "-G", "Ninja", *CMAKE_FLAGS]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(work / "build"), "--target", "llama-bench", "-j", str(jobs)], check=True)
    log(f"built llama.cpp (CUDA, sm_90) in {time.perf_counter() - t0:.0f} s")
    return bin_dir


def install_libs(bin_dir: Path, site: Path) -> Path:
    """Copy the built lib*.so into site/llama_cpp/lib (where llama-cpp-python loads them); that folder."""
    lib = site / "llama_cpp" / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    for so in bin_dir.glob("lib*.so*"):
        shutil.copy2(so, lib / f".{so.name}.new")
        os.replace(lib / f".{so.name}.new", lib / so.name)  # a new inode: a loaded copy stays mapped intact
    return lib


# --- the arms ------------------------------------------------------------------------------------------


def tests_of(args) -> list[tuple[int, int, int]]:
    """(n_prompt, n_gen, n_depth) in llama-bench's order: per depth, pp then tg."""
    return [t for d in args.depths for t in ((args.n_prompt, 0, d), (0, args.n_gen, d))]


def ours_arm(engine, args) -> dict:
    out = {}
    for p, n, d in tests_of(args):
        got = engine.bench_decode(
            p, n, d, args.reps, n_batch=2048, n_ubatch=512, n_threads=args.threads, flash_attn="auto"
        )
        out[(p, n, d)] = list(got.samples_ns)
    return out


class Bare:
    """llama-cpp-python's low-level bindings only: one model, a fresh context per test."""

    def __init__(self, path: str, n_gpu_layers: int) -> None:
        import llama_cpp
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp's load log, as Llama(verbose=False) has it
        self.c = llama_cpp
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0x7FFFFFFF if n_gpu_layers < 0 else n_gpu_layers  # all, as Llama(n_gpu_layers=-1)
        self.model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))

    def arm(self, args) -> dict:
        return {t: self.test(*t, args) for t in tests_of(args)}

    def test(self, n_prompt: int, n_gen: int, n_depth: int, args) -> list[int]:
        import numpy as np

        c, n_batch = self.c, 2048
        params = c.llama_context_default_params()
        params.n_ctx = n_prompt + n_gen + n_depth
        params.n_batch, params.n_ubatch = n_batch, 512
        params.n_threads = params.n_threads_batch = args.threads
        params.flash_attn_type = c.LLAMA_FLASH_ATTN_TYPE_AUTO
        ctx = c.llama_init_from_model(self.model, params)
        rng = np.random.default_rng(1)
        try:
            mem = c.llama_get_memory(ctx)

            def feed(ids) -> None:
                for at in range(0, len(ids), n_batch):
                    chunk = [int(x) for x in ids[at : at + n_batch]]
                    arr = (c.llama_token * len(chunk))(*chunk)  # the batch points into it: keep it alive
                    if c.llama_decode(ctx, c.llama_batch_get_one(arr, len(chunk))):
                        raise RuntimeError("llama_decode failed")
                    c.llama_synchronize(ctx)

            def once() -> int:
                t0 = time.perf_counter_ns()
                if n_prompt:
                    feed(rng.integers(0, self.n_vocab, n_prompt))
                for token in rng.integers(0, self.n_vocab, n_gen):
                    feed([token])
                return time.perf_counter_ns() - t0

            if n_depth:
                feed(rng.integers(0, self.n_vocab, n_depth))
            samples = []
            for rep in range(args.reps + 1):  # the first one is the warm-up
                elapsed = once()
                c.llama_memory_seq_rm(mem, -1, n_depth, -1)
                if rep:
                    samples.append(elapsed)
            return samples
        finally:
            c.llama_free(ctx)


def llama_bench_arm(exe: Path, model: Path, args) -> dict:
    depths = ",".join(str(d) for d in args.depths)
    cmd = [str(exe), "-m", str(model), "-p", str(args.n_prompt), "-n", str(args.n_gen), "-d", depths]
    cmd += ["-r", str(args.reps), "-ngl", str(args.llama_bench_ngl), "-t", str(args.threads), "-fa", "auto"]
    cmd += ["-b", "2048", "-ub", "512", "-o", "json"]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return {(r["n_prompt"], r["n_gen"], r["n_depth"]): list(r["samples_ns"]) for r in json.loads(done.stdout)}


# --- rows ----------------------------------------------------------------------------------------------


def sample_rows(impl: str, got: dict, energy: dict, rnd: int, meta: dict) -> list[dict]:
    rows = []
    for (p, n, d), samples in got.items():
        test = test_name({"n_prompt": p, "n_gen": n, "n_depth": d})
        for rep, ns in enumerate(samples):
            row = {**meta, "test": test, "n_prompt": p, "n_gen": n, "n_depth": d, "impl": impl, "round": rnd}
            row |= {"rep": rep, "sample_ns": ns, "tps": round((p + n) / (ns / 1e9), 3), **energy}
            if p:
                row["ttft_s"] = round(ns / 1e9, 6)  # derived: the prompt's decode time
            else:
                row["bytes_per_token"] = meta["tensor_bytes"] + kv_bytes(*meta["kv_shape"], d + n // 2, 2)
            rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make-skeleton", type=Path, help="a real GGUF: write its skeleton to --skeleton and stop")
    parser.add_argument("--skeleton", type=Path, required=True)
    parser.add_argument("--gguf-py", type=Path, help="gguf-py folder when the gguf package is not installed")
    parser.add_argument("--source-tar", type=Path, help="the trimmed llama.cpp sources (tar.xz)")
    parser.add_argument("--site", type=Path, help="folder holding the llama_cpp package; gets the built libs")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lcb"))
    parser.add_argument("--llama-bench", type=Path, help="a llama-bench already built (skips the build)")
    parser.add_argument("--device", default="cuda", help="cuda (all layers on the GPU); cpu for a dry run")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-p", "--n-prompt", type=int, default=512)
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("--depths", default="0,2048")
    parser.add_argument("--bandwidth-tbps", type=float, default=4.8, help="the card's memory bandwidth (H200: 4.8)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--prefix", default="gpu_llamacpp")
    args = parser.parse_args()
    if args.make_skeleton:
        make_skeleton(args.make_skeleton, args.skeleton, args.gguf_py)
        return 0
    args.depths = [int(d) for d in args.depths.split(",") if d]
    gpu = args.device != "cpu"
    args.llama_bench_ngl = 99 if gpu else 0
    os.environ.setdefault("LOCALBENCH_NO_BW_PROBE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    exe = args.llama_bench
    if exe is None:
        bin_dir = build(args.source_tar, args.work, os.cpu_count() or 4)
        exe = bin_dir / "llama-bench"
        lib = install_libs(bin_dir, args.site)
        os.environ["LLAMA_CPP_LIB_PATH"] = str(lib)
    gguf_py = args.gguf_py or args.work / "llama.cpp" / "gguf-py"
    model, tensor_bytes = random_gguf(args.skeleton, args.work / "smollm2-135m-random-Q4_1.gguf", gguf_py)

    from engines.base import LoadConfig
    from engines.process.proxy import WorkerEngine

    nvml = Nvml()
    n_ctx = max(args.depths) + args.n_prompt + args.n_gen
    ours = WorkerEngine(ENGINE)
    info = ours.load(
        ours.resolve(str(model)),
        LoadConfig(n_ctx=n_ctx, n_threads=args.threads, n_gpu_layers=-1 if gpu else 0, n_batch=2048),
    )
    bare = Bare(str(model), -1 if gpu else 0)
    card = nvml.nv.nvmlDeviceGetName(nvml.handle) if nvml.nv else "cpu"
    meta = {
        "engine": ENGINE,
        "variant": f"{info.file_type} (random weights)",
        "device": args.device,
        "card": card,
        "backend": info.backend,
        "tensor_bytes": tensor_bytes,
        "kv_shape": (info.n_layers, info.n_kv_heads, info.head_dim),
    }
    arms = [
        ("ours", lambda: ours_arm(ours, args)),
        ("bare llama-cpp-python", lambda: bare.arm(args)),
        ("llama-bench", lambda: llama_bench_arm(exe, model, args)),
    ]
    if str(exe) == "none":  # a dry run without a llama-bench build
        arms.pop()
    for _, fn in arms[:2]:  # warm-up: CUDA kernels, graphs, allocator in both processes
        fn()
    rows = []
    for rnd in range(args.rounds):
        order = arms[rnd % len(arms) :] + arms[: rnd % len(arms)]  # each arm takes each place in turn
        for impl, fn in order if rnd % 2 == 0 else order[::-1]:
            got, energy = timed(nvml, fn)
            rows += sample_rows(impl, got, energy, rnd, meta)
            log(f"round {rnd} {impl}: " + ", ".join(f"{k}={sum(v) / len(v) / 1e6:.2f} ms" for k, v in got.items()))
        write_csv(args.out / f"{args.prefix}_pairs.csv", rows)
    memory = {
        "engine": ENGINE,
        "card": card,
        "model_file_bytes": model.stat().st_size,
        "tensor_bytes": tensor_bytes,
        "worker_pid": ours.pid,
        "worker_gpu_bytes_nvml": nvml.process_bytes(ours.pid),
        "bare_process_gpu_bytes_nvml": nvml.process_bytes(os.getpid()),
        "worker_private_bytes": (ours.memory() or {}).get("private_bytes"),
        "idle_power_w": nvml.power_w(),
        "driver": nvml.nv.nvmlSystemGetDriverVersion() if nvml.nv else None,
        "versions": json.dumps(dict(info.versions)),
        "settings": json.dumps(dict(info.settings)),
        "llama_supports_gpu_offload": bool(bare.c.llama_supports_gpu_offload()),
        "system_info": bare.c.llama_print_system_info().decode(errors="replace"),
    }
    log(f"memory: {memory}")
    ours.unload()
    write_csv(args.out / f"{args.prefix}_memory.csv", [memory])
    summary = summarize(rows, args.bandwidth_tbps)
    write_csv(args.out / f"{args.prefix}_summary.csv", summary)
    for row in summary:
        extra = " ".join(f"{k}={row[k]}" for k in ("ttft_ms", "mean_power_w", "roofline_pct") if k in row)
        log(f"{row['kind']:16s} {row['test']:13s} {row['impl']:36s} {row['mean']} {row['sd']} {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
