"""A model's original: an HF safetensors folder (BF16/F16/F32) turned into the F16 GGUF the quantization lab
measures every rung against, with llama.cpp's own converter, and into MLX quants with `mlx_lm.convert`.

llama.cpp's converter is `convert_hf_to_gguf.py` with its `conversion/` package and its own `gguf-py`, from the
llama.cpp sources that the installed llama-cpp-python vendors (its sdist; the PyPI `gguf` package does not ship
the converter). `fetch_converter()` takes those three pieces out of the sdist (`pip download`, which uses pip's
own cache) into the virtual environment (`<venv>/share/localbench/llama.cpp-<version>`) once, so later runs work
offline; LOCALBENCH_LLAMA_CPP may name a llama.cpp checkout or an sdist instead. The converter runs as a
subprocess of this Python with that `gguf-py` first on PYTHONPATH.

The F16 GGUF is cached under LOCALBENCH_HOME/cache/original/<name>-<path hash>/, keyed by the folder's content
(config.json, tokenizer files, safetensors headers, sizes and mtimes) and the converter's version, and written
atomically (core.paths.atomic_path). MLX copies are ordinary conversions (models.converted: '<name>@mlx-4bit')
tagged with the same key, so a changed original is converted again. Progress comes in as
progress(fraction, message), cancellation as a threading.Event (the converter process is killed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from core.errors import BadParameter, Cancelled, EngineUnavailable, InvalidModelFile
from core.paths import atomic_path, cache_dir, check_disk_space
from core.progress import Progress
from models.hf_folder import read_hf_config, safetensors_header
from models.ref import ModelRef

FLOAT_DTYPES = ("BF16", "F16", "F32")
"""safetensors dtypes an original may hold (its weights; anything else is a quantized or packed checkpoint)."""
CONVERTER_ENV = "LOCALBENCH_LLAMA_CPP"
"""A llama.cpp source tree (with convert_hf_to_gguf.py) or a llama-cpp-python sdist to take the converter from."""
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
"""What the converter needs from the vendored llama.cpp (about 2 MB of the 77 MB sdist)."""
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "generation_config.json",
)
MANIFEST = "manifest.json"
SOURCE = "original"
"""ModelRef.source of an original's F16 GGUF."""
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Original:
    """An HF safetensors original, as the lab reads it (headers only)."""

    folder: str
    """The folder as given, resolved."""
    name: str
    """Short name for caches and catalog entries, e.g. 'SmolLM2-135M-Instruct'."""
    dtype: str
    """The weights' dtype holding most bytes: 'BF16', 'F16' or 'F32'."""
    n_params: int
    size_bytes: int
    """Bytes of the safetensors files."""
    chat: bool
    """True when the tokenizer carries a chat template."""
    lineage: str
    """'' for a true original; for a localbench conversion, where its weights came from."""

    @property
    def label(self) -> str:
        """How every output names the reference, e.g. 'original: BF16 safetensors (folder /m) → F16 GGUF'."""
        extra = f"; {self.lineage}" if self.lineage else ""
        return f"original: {self.dtype} safetensors (folder {self.folder}{extra}) → F16 GGUF"


@dataclass(frozen=True)
class OriginalGguf:
    """The F16 GGUF that llama.cpp's converter made from an original."""

    original: Original
    path: str
    key: str
    """Content key of the original it was made from."""
    converter: str
    """Which converter made it, e.g. "llama.cpp's convert_hf_to_gguf.py (llama-cpp-python 0.3.36)"."""
    convert_s: float
    """Seconds the conversion took (when it was made)."""
    cached: bool
    """True when this call found it in the cache."""

    @property
    def slug(self) -> str:
        return Path(self.path).parent.name

    def ref(self) -> ModelRef:
        """The F16 GGUF as a model the catalog and the ladder take (named after the original, not a path)."""
        return ModelRef(self.slug, self.path, "gguf", self.original.chat, SOURCE, self.original.label)


# --- reading an original ------------------------------------------------------------------------------


def _dtype_bytes(folder: Path) -> tuple[dict[str, int], int]:
    by_dtype: dict[str, int] = {}
    n_params = 0
    for path in sorted(folder.glob("*.safetensors")):
        for name, entry in safetensors_header(path).items():
            if name == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            by_dtype[entry["dtype"]] = by_dtype.get(entry["dtype"], 0) + end - start
            count = 1
            for d in entry["shape"]:
                count *= d
            n_params += count
    return by_dtype, n_params


def _short_name(folder: Path) -> str:
    """The folder's name, or the repo's name for a Hugging Face cache snapshot (models--ORG--NAME/snapshots/REV)."""
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        name = folder.parent.parent.name.split("--")[-1]
    else:
        name = folder.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"


def _lineage(folder: Path) -> str:
    """Where a localbench conversion's weights came from (its manifest); '' for anything else."""
    try:
        manifest = json.loads((folder / "localbench-conversion.json").read_text())
    except (OSError, ValueError):
        return ""
    if manifest.get("source_format") == "gguf" and manifest.get("source_type"):
        return (
            f"itself dequantized by localbench from the {manifest['source_type']} GGUF of "
            f"{manifest.get('source_name', '?')}, so it holds {manifest['source_type']} precision"
        )
    return ""


def read_original(folder: str | Path) -> Original:
    """The original in `folder`, or InvalidModelFile saying why it is not one (reads headers only)."""
    path = Path(folder).expanduser().resolve()
    config = read_hf_config(path)
    if "quantization" in config or "quantization_config" in config:
        kind = "MLX" if "quantization" in config else config["quantization_config"].get("quant_method", "quantized")
        raise InvalidModelFile(
            f"{path} is a quantized checkpoint ({kind}), not an original — the lab starts from BF16/F16/F32 "
            "safetensors (or from a GGUF, measured against its dequantized F16)"
        )
    if not list(path.glob("*.safetensors")):
        raise InvalidModelFile(f"{path} has no *.safetensors weights — the lab reads originals in safetensors only")
    by_dtype, n_params = _dtype_bytes(path)
    total = sum(by_dtype.values()) or 1
    odd = {d: b for d, b in by_dtype.items() if d not in FLOAT_DTYPES}
    if sum(odd.values()) > total * 0.01:
        raise InvalidModelFile(
            f"{path} holds {', '.join(sorted(odd))} weights, so it is not a BF16/F16/F32 original — "
            "give the lab the unquantized folder"
        )
    dtype = max((d for d in by_dtype if d in FLOAT_DTYPES), key=lambda d: by_dtype[d])
    tokenizer_config = {}
    try:
        tokenizer_config = json.loads((path / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        pass
    chat = bool(tokenizer_config.get("chat_template")) or (path / "chat_template.jinja").exists()
    return Original(str(path), _short_name(path), dtype, n_params, total, chat, _lineage(path))


def is_original(name_or_path: str) -> bool:
    """True when `name_or_path` is a folder holding a BF16/F16/F32 safetensors original (headers only)."""
    path = Path(name_or_path or "").expanduser()
    if not path.is_dir():
        return False
    try:
        read_original(path)
    except InvalidModelFile:
        return False
    return True


def content_key(original: Original) -> str:
    """The folder's content as a key: config, tokenizer files and safetensors headers, sizes and mtimes."""
    folder = Path(original.folder)
    h = hashlib.sha256()
    h.update((folder / "config.json").read_bytes())
    for name in TOKENIZER_FILES:
        p = folder / name
        if p.exists():
            st = p.stat()
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    for p in sorted(folder.glob("*.safetensors")):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(json.dumps(safetensors_header(p), sort_keys=True).encode())
    h.update(f"{converter_version()}:{CACHE_FORMAT}".encode())
    return h.hexdigest()[:20]


def cache_folder(original: Original) -> Path:
    """LOCALBENCH_HOME/cache/original/<name>-<hash of the folder's path>: one F16 GGUF per original folder."""
    digest = hashlib.sha1(original.folder.encode()).hexdigest()[:8]
    return cache_dir("original") / f"{original.name}-{digest}"


# --- llama.cpp's converter ----------------------------------------------------------------------------


def converter_version() -> str:
    """The installed llama-cpp-python's version: its sdist vendors the llama.cpp whose converter we run."""
    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError as err:
        raise EngineUnavailable("llama-cpp-python is not installed — pip install -r requirements.txt") from err


def _converter_homes() -> list[Path]:
    """Where a fetched converter is kept: the virtual environment first (survives LOCALBENCH_HOME), then the cache."""
    name = f"llama.cpp-{converter_version()}"
    return [Path(sys.prefix) / "share" / "localbench" / name, cache_dir("llama.cpp") / name]


def _is_tree(path: Path) -> bool:
    return (path / "convert_hf_to_gguf.py").is_file() and (path / "gguf-py" / "gguf").is_dir()


def find_converter() -> Path | None:
    """The llama.cpp tree holding convert_hf_to_gguf.py, or None when it has not been fetched."""
    given = os.environ.get(CONVERTER_ENV)
    if given and _is_tree(Path(given).expanduser()):
        return Path(given).expanduser()
    return next((home for home in _converter_homes() if _is_tree(home)), None)


def _sdist(work: Path, progress: Progress) -> Path:
    """The llama-cpp-python sdist: LOCALBENCH_LLAMA_CPP when it names one, else `pip download` (pip's cache)."""
    given = os.environ.get(CONVERTER_ENV)
    if given and Path(given).expanduser().is_file():
        return Path(given).expanduser()
    version = converter_version()
    progress(0.05, f"downloading the llama-cpp-python {version} sources for llama.cpp's converter (~77 MB, once)")
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    proc = subprocess.run(
        [*cmd, f"llama-cpp-python=={version}", "-d", str(work)], capture_output=True, text=True, check=False
    )
    found = sorted(work.glob("llama_cpp_python-*.tar.gz"))
    if proc.returncode != 0 or not found:
        last = next((ln for ln in reversed(proc.stderr.splitlines()) if ln.strip()), "no output")
        raise EngineUnavailable(
            f"llama.cpp's converter is not here and pip could not fetch the llama-cpp-python {version} sources "
            f"({last.strip()}) — run `python app.py quant --fetch-converter` once online, or set {CONVERTER_ENV} "
            "to a llama.cpp checkout"
        )
    return found[0]


def fetch_converter(progress: Progress | None = None) -> Path:
    """The converter tree, taken out of the llama-cpp-python sdist on first use (then found offline)."""
    progress = progress or (lambda f, m: None)
    found = find_converter()
    if found is not None:
        return found
    home = next((h for h in _converter_homes() if _writable(h)), _converter_homes()[-1])
    with tempfile.TemporaryDirectory(prefix="localbench-sdist-") as work:
        sdist = _sdist(Path(work), progress)
        progress(0.8, f"unpacking llama.cpp's converter from {sdist.name}")
        with tarfile.open(sdist) as tar, atomic_path(home) as tmp:
            members = []
            for m in tar.getmembers():
                parts = m.name.split("/", 1)
                rel = parts[1] if len(parts) > 1 else ""
                if not rel.startswith("vendor/llama.cpp/"):
                    continue
                rel = rel[len("vendor/llama.cpp/") :]
                if any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in CONVERTER_PARTS):
                    m.name = rel
                    members.append(m)
            if not any(m.name == "convert_hf_to_gguf.py" for m in members):
                raise EngineUnavailable(f"{sdist.name} has no vendor/llama.cpp/convert_hf_to_gguf.py")
            tar.extractall(tmp, members=members, filter="data")
    progress(1.0, f"llama.cpp's converter ready in {home}")
    return home


def _writable(home: Path) -> bool:
    parent = home.parent
    while not parent.exists():
        parent = parent.parent
    return os.access(parent, os.W_OK)


TENSOR_LINE = re.compile(r"-->\s*\w+, shape")
WRITING = re.compile(r"Writing:\s*(\d+)%")


def _run_converter(
    tree: Path, folder: str, out: Path, n_tensors: int, progress: Progress, cancel: threading.Event | None
) -> None:
    """convert_hf_to_gguf.py folder → out (F16), with progress from its log; its last line is the error."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "gguf-py"), str(tree), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env.setdefault("HF_HUB_OFFLINE", "1")
    cmd = [sys.executable, str(tree / "convert_hf_to_gguf.py"), folder, "--outtype", "f16", "--outfile", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    tail: deque[str] = deque(maxlen=40)
    seen = [0]

    def read() -> None:
        buffer = b""
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            buffer += chunk
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            for raw in lines:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                tail.append(line)
                if TENSOR_LINE.search(line):
                    seen[0] += 1
                    if seen[0] % 16 == 0:
                        progress(0.4 * min(1.0, seen[0] / max(n_tensors, 1)), f"mapping tensors ({seen[0]})")
                elif m := WRITING.search(line):
                    progress(0.4 + 0.55 * int(m.group(1)) / 100, f"writing the F16 GGUF ({m.group(1)} %)")
        if buffer.strip():
            tail.append(buffer.decode("utf-8", "replace").strip())

    reader = threading.Thread(target=read, name="convert-hf-to-gguf", daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            if cancel is not None and cancel.is_set():
                proc.kill()
                proc.wait()
                raise Cancelled("conversion to GGUF cancelled; nothing was kept (the next run starts it again)")
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
    if proc.returncode != 0:
        last = next((ln for ln in reversed(tail) if not ln.startswith(("INFO:", "DEBUG:"))), "no output")
        raise InvalidModelFile(f"llama.cpp's convert_hf_to_gguf.py could not convert {folder}: {last}")


def to_gguf(
    folder: str | Path, *, progress: Progress | None = None, cancel: threading.Event | None = None
) -> OriginalGguf:
    """The F16 GGUF of the original in `folder`: from the cache when its content is unchanged, else made by
    llama.cpp's convert_hf_to_gguf.py (fetched on first use)."""
    from models.gguf import read_gguf

    progress = progress or (lambda f, m: None)
    original = read_original(folder)
    key = content_key(original)
    home = cache_folder(original)
    home.mkdir(parents=True, exist_ok=True)
    final = home / "F16.gguf"
    manifest = _read_json(home / MANIFEST)
    if final.exists() and manifest.get("key") == key:
        progress(1.0, f"F16 GGUF of {original.name}: cached")
        made_by, seconds = manifest.get("converter", ""), manifest.get("convert_s", 0.0)
        return OriginalGguf(original, str(final), key, made_by, seconds, True)
    tree = fetch_converter(lambda f, m: progress(0.1 * f, m))
    if cancel is not None and cancel.is_set():
        raise Cancelled("conversion to GGUF cancelled; nothing was kept")
    check_disk_space(home, original.n_params * 2 + 2**26, f"the F16 GGUF of {original.name}")
    converter = f"llama.cpp's convert_hf_to_gguf.py (llama-cpp-python {converter_version()})"
    progress(0.1, f"converting {original.name} ({original.dtype}) to F16 GGUF with {converter}")
    n_tensors = sum(len(safetensors_header(p)) - 1 for p in Path(original.folder).glob("*.safetensors"))
    t0 = time.perf_counter()
    with atomic_path(final) as tmp:
        _run_converter(tree, original.folder, tmp, n_tensors, lambda f, m: progress(0.1 + 0.85 * f, m), cancel)
        meta = read_gguf(tmp)  # what the converter wrote must read back before it takes its real name
        if meta.n_params <= 0:
            raise InvalidModelFile(f"llama.cpp's converter wrote no weights for {original.folder}")
    seconds = round(time.perf_counter() - t0, 2)
    record = {"key": key, "folder": original.folder, "dtype": original.dtype, "converter": converter}
    _write_json(home / MANIFEST, {**record, "convert_s": seconds, "label": original.label})
    progress(1.0, f"F16 GGUF of {original.name} ready ({seconds:.0f} s)")
    return OriginalGguf(original, str(final), key, converter, seconds, False)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


# --- MLX copies ---------------------------------------------------------------------------------------


def mlx_name(folder: str | Path, variant: str) -> str:
    """The catalog name of an MLX copy of an original, e.g. 'SmolLM2-135M-1a2b3c4d@mlx-4bit' (headers only)."""
    from models.converted import variant_name

    return variant_name(cache_folder(read_original(folder)).name, variant)


def to_mlx(
    folder: str | Path,
    variant: str,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ModelRef:
    """The MLX copy (variant 'mlx-bf16', 'mlx-8bit' or 'mlx-4bit') that mlx_lm.convert makes from the original,
    cached as '<name>@<variant>' and made again when the original's content changed."""
    from models import convert
    from models.converted import VARIANTS, read_manifest, ref_from_manifest, variant_dir

    if variant not in VARIANTS or VARIANTS[variant].engine != "mlx":
        raise BadParameter(f"unknown MLX variant '{variant}' — choose mlx-bf16, mlx-8bit or mlx-4bit")
    progress = progress or (lambda f, m: None)
    original = read_original(folder)
    key = content_key(original)
    final = variant_dir(cache_folder(original).name, variant)
    with convert._lock_for(final):
        manifest = read_manifest(final)
        if manifest is not None and manifest.get("original_key") == key:
            progress(1.0, f"{final.name}: cached")
            return ref_from_manifest(final, manifest)
        convert.clean_stale_partials(final)
        source = ModelRef(original.name, original.folder, "hf", original.chat, SOURCE)
        src = {"source_name": original.name, "source_path": original.folder, "n_params": original.n_params}
        manifest = convert.hf_to_mlx(source, VARIANTS[variant], final, progress, cancel, src)
        bits = VARIANTS[variant].q_bits
        kind = f"{bits}-bit affine, group size {convert.Q_GROUP_SIZE}" if bits else "bf16"
        manifest.update(
            source_type=original.dtype,
            original_key=key,
            note=f"MLX {kind}, made by mlx_lm.convert from the {original.label.removesuffix(' → F16 GGUF')}",
        )
        _write_json(final / convert.MANIFEST, manifest)
        progress(1.0, f"{final.name} ready")
        return ref_from_manifest(final, manifest)
