"""How long listing the user's own models takes: a synthetic store of 1,000 models over Ollama, LM Studio,
llama.cpp's cache and LOCALBENCH_MODELS, scanned by models.stores (ollama, lmstudio, llama_cache, folder).

Every model file holds a real header: the bundled SmolLM2 (49k-token vocabulary) or Gemma 3 (262k tokens)
header byte for byte (one byte of one token changed per family, so `--families` vocabularies differ),
then a sparse hole up to the real file's size, so each file is a complete GGUF to the reader (size checks
pass) and costs no disk. Files are hard links to the family templates, so the page cache holds the
headers after the first read: the figures are parse time, not disk time. Ollama blob
digests are synthetic (the scan never hashes blobs). Three timings, each of the scan calls only (imports
before the clock):

- cold: a new process, no header cache (every header parsed);
- warm, new process: a new process reading LOCALBENCH_HOME/cache/gguf-headers.json (what `models list`
  sees after the first listing);
- warm, same process: a second scan in the process that scanned.

    python3 benchmarks/models_listing.py [--models 1000] [--families 50] [--dir DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def header_length(path: Path) -> int:
    """Bytes before the tensor data of a GGUF file (key/values and tensor table, aligned)."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        _, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        pos, align = 24, 32

        def skip_value(vtype: int) -> None:
            nonlocal pos
            if vtype == 8:
                pos += 8 + struct.unpack_from("<Q", buf, pos)[0]
            elif vtype == 9:
                item, count = struct.unpack_from("<IQ", buf, pos)
                pos += 12
                if item in SCALAR_SIZES:
                    pos += SCALAR_SIZES[item] * count
                else:
                    for _ in range(count):
                        skip_value(item)
            else:
                pos += SCALAR_SIZES[vtype]

        for _ in range(n_kv):
            n = struct.unpack_from("<Q", buf, pos)[0]
            key = bytes(buf[pos + 8 : pos + 8 + n])
            pos += 8 + n
            vtype = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
            if key == b"general.alignment":
                align = struct.unpack_from("<I", buf, pos)[0]
            skip_value(vtype)
        for _ in range(n_tensors):
            pos += 8 + struct.unpack_from("<Q", buf, pos)[0]
            n_dims = struct.unpack_from("<I", buf, pos)[0]
            pos += 4 + 8 * n_dims + 4 + 8
        return (pos + align - 1) // align * align


def template(source: Path, dest: Path, variant: int) -> Path:
    """`dest`: the header of `source` and a sparse hole up to `source`'s size. Variant k > 0 changes one
    byte inside the text of token k (every length kept), so each variant is a vocabulary of its own."""
    n = header_length(source)
    with open(source, "rb") as src:
        header = bytearray(src.read(n))
    if variant:
        at = header.index(b"tokenizer.ggml.tokens") + len("tokenizer.ggml.tokens") + 16  # type, item, count
        for _ in range(variant):
            at += 8 + struct.unpack_from("<Q", header, at)[0]
        length = struct.unpack_from("<Q", header, at)[0]
        header[at + 8 + length - 1] ^= 0x20 if length else 0  # a token's last byte: ASCII case flip
    with open(dest, "wb") as out:
        out.write(header)
        out.truncate(source.stat().st_size)
    return dest


def build(root: Path, n_models: int, families: int) -> dict[str, Path]:
    """The four stores under `root` holding `n_models` models in all (40 % Ollama, 25 % LM Studio, 15 %
    llama.cpp's cache, 20 % LOCALBENCH_MODELS), spread over `families` vocabularies (half from SmolLM2's
    header, half from Gemma 3's), as a real store holds several quants and sizes of each family."""
    from models import catalog

    root.mkdir(parents=True, exist_ok=True)
    sources = [catalog.smollm2_path(), catalog.gemma3_path()]
    templates = [template(sources[k % 2], root / f"t{k}.gguf", 1000 + k) for k in range(families)]
    stores = {k: root / k for k in ("ollama", "lmstudio", "llama.cpp", "models")}
    counts = {"ollama": n_models * 40 // 100, "lmstudio": n_models * 25 // 100, "llama.cpp": n_models * 15 // 100}
    counts["models"] = n_models - sum(counts.values())
    model_layer = "application/vnd.ollama.image.model"
    for i in range(counts["ollama"]):
        digest = f"{i:064x}"
        blob = stores["ollama"] / "blobs" / f"sha256-{digest}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.link(templates[i % families], blob)
        manifest = stores["ollama"] / "manifests" / "registry.ollama.ai" / "library" / f"model{i // 8}" / f"tag{i % 8}"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        layer = {"mediaType": model_layer, "digest": f"sha256:{digest}", "size": blob.stat().st_size}
        config = {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": f"sha256:{'f' * 64}"}
        body = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}
        manifest.write_text(json.dumps({**body, "config": {**config, "size": 1}, "layers": [layer]}))
    for i in range(counts["lmstudio"]):
        repo = stores["lmstudio"] / f"publisher{i // 50}" / f"Model{i}-GGUF"
        repo.mkdir(parents=True, exist_ok=True)
        os.link(templates[i % families], repo / f"Model{i}-Q4_K_M.gguf")
    stores["llama.cpp"].mkdir(parents=True, exist_ok=True)
    for i in range(counts["llama.cpp"]):
        name = f"org{i}_Model{i}-GGUF_Model{i}-Q4_K_M.gguf"
        os.link(templates[i % families], stores["llama.cpp"] / name)
        manifest = stores["llama.cpp"] / f"manifest=org{i}=Model{i}-GGUF=Q4_K_M.json"
        manifest.write_text(json.dumps({"ggufFile": {"rfilename": f"Model{i}-Q4_K_M.gguf"}}))
    for i in range(counts["models"]):
        folder = stores["models"] / f"family{i // 20}" / f"size{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        os.link(templates[i % families], folder / f"model{i}.gguf")
    return stores


SCAN = """
import json, sys, time
from pathlib import Path
from models.stores import folder, headers, llama_cache, lmstudio, ollama
import models.gguf, gguf.metadata  # imports before the clock
s = {k: Path(v) for k, v in json.loads(sys.argv[1]).items()}
def scan():
    return (ollama.scan([s["ollama"]]) + lmstudio.scan([s["lmstudio"]]) + llama_cache.scan(s["llama.cpp"])
            + folder.scan(s["models"]))
t0 = time.perf_counter(); first = scan(); t1 = time.perf_counter(); again = scan(); t2 = time.perf_counter()
bad = [e.problem for e in first if e.problem]
print(json.dumps({"n": len(first), "problems": bad[:3], "n_problems": len(bad), "first_s": t1 - t0,
                  "again_s": t2 - t1}))
"""


def timed(stores: dict[str, Path], home: Path) -> dict:
    env = {**os.environ, "LOCALBENCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-c", SCAN, json.dumps({k: str(v) for k, v in stores.items()})]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(args, env=env, cwd=root, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the store (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--families", type=int, default=50, help="distinct vocabularies among the files")
    args = parser.parse_args()
    from machine.detect import cpu_flags

    work = args.dir or Path(tempfile.mkdtemp(prefix="models-listing-"))
    stores = build(work / "stores", args.models, args.families)
    cold, warm, same = [], [], []
    for rep in range(args.repeat):
        home = work / f"home{rep}"
        first = timed(stores, home)  # no cache yet
        second = timed(stores, home)  # a new process, the cache file written by the first
        assert first["n"] == args.models and first["n_problems"] == 0, first
        cold.append(first["first_s"])
        warm.append(second["first_s"])
        same.append(first["again_s"])
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx", "sse4", "amx", "asimd", "neon")))
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        f"{args.models} models ({args.families} vocabularies), {os.cpu_count()} cores, {cpu}; flags: {' '.join(flags)}"
    )
    for label, values in (("cold (no header cache)", cold), ("warm, new process", warm), ("warm, same process", same)):
        print(
            f"  {label:24s} median {statistics.median(values):.3f} s  (runs: {', '.join(f'{v:.3f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
