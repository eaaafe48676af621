"""The quantization ladder: from any GGUF, build F16 and a ladder of lower-precision GGUFs with
llama.cpp's own quantizer, cached under LOCALBENCH_HOME.

The reference is the highest-precision variant. When the source is already quantized (both bundled
models are), the reference is an F16 *dequantized* from it, and every rung is quantized from that
F16 — the ladder says so in each file's note. Every file is written to a temporary name and renamed
(core.paths.atomic_path), so a cancel or a crash never leaves a half file under a real name, and
the catalog provider (models.ladders) lists only finished files (names like 'smollm2-135m@Q4_K_M').
Small models fall back from K-quants (rows of 576 or 640 values are not a multiple of 256): each file
reports its effective bits per weight and its real tensor-type mix, read back from the GGUF.
When the source is the F16 GGUF that llama.cpp's converter made from an HF original (models.original), the
ladder is told so (`origin`) and its reference is named as the original, not as "the source itself".
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadParameter, Cancelled, InvalidModelFile, LocalbenchError
from core.paths import check_disk_space
from core.progress import Progress
from models.gguf import read_gguf
from models.ladders import ladder_root, manifest_path, read_manifest
from models.original import SOURCE as ORIGINAL_SOURCE
from models.quant_types import FLOAT_TYPES, NOMINAL_BPW, precision_rank
from models.ref import ModelRef

LADDER_TYPES: tuple[str, ...] = (
    "F16",
    "Q8_0",
    "Q6_K",
    "Q5_K_M",
    "Q5_K_S",
    "Q5_0",
    "Q4_K_M",
    "Q4_K_S",
    "Q4_1",
    "Q4_0",
    "Q3_K_M",
    "Q2_K",
)
"""The default ladder, highest precision first."""

SAME_AS_SOURCE = (
    "same type as the source, so it nearly reproduces the shipped file: its loss against the dequantized "
    "reference is ~0 by construction, not a measure of this type's loss against full precision"
)
STALE_PARTIAL_S = 3600.0
"""Temporary files older than this are leftovers of a crash and are removed before a build."""

_QUANTIZE_LOCK = threading.Lock()


class QuantizeFailed(LocalbenchError):
    """llama.cpp's quantizer refused a target type or could not read the source."""


@dataclass(frozen=True)
class LadderFile:
    """One built GGUF of a ladder, with what it really contains."""

    variant: str
    """Nominal type asked for, e.g. 'Q4_K_M'."""
    model: str
    """Catalog name, e.g. 'smollm2-135m@Q4_K_M'."""
    path: str
    model_size: int
    """File size in bytes."""
    n_params: int
    bpw: float
    """Effective bits per weight: file bytes * 8 / n_params (derived)."""
    file_type: str
    """File type the GGUF declares."""
    tensor_types: str
    """Real tensor-type mix by bytes, e.g. 'q5_0 78% · q6_K 12% · ...'."""
    main_type: str
    """Tensor type holding most of the weight bytes."""
    k_fallback: bool
    """True when a K-quant was asked for but most weight bytes ended up in legacy types."""
    is_reference: bool
    note: str
    """Where the file came from, e.g. 'quantized from F16 dequantized from Q4_1'."""
    build_s: float = 0.0
    """Seconds the quantizer took; 0.0 when the file came from the cache."""


@dataclass(frozen=True)
class Ladder:
    """The source, its reference and the built rungs (reference first)."""

    model_key: str
    source: ModelRef
    source_type: str
    reference: LadderFile
    files: tuple[LadderFile, ...]
    reference_note: str
    """Plain words on what the reference is, e.g. 'F16 dequantized from the shipped Q4_1 …'."""
    reference_origin: str = ""
    """One line for every output: 'original: BF16 safetensors (folder …) → F16 GGUF', 'dequantized: F16 from the
    Q4_1 GGUF' or 'source: the F16 GGUF itself'."""

    def file(self, variant: str) -> LadderFile:
        for f in self.files:
            if f.variant == variant:
                return f
        raise BadParameter(f"variant {variant} is not in this ladder")


def model_key(ref: ModelRef) -> str:
    """The cache folder name: the catalog name, or stem + path hash for a GGUF given by path."""
    if ref.source == "path" and ref.path:
        digest = hashlib.sha1(str(Path(ref.path).resolve()).encode()).hexdigest()[:8]
        return f"{ref.name}-{digest}"
    return ref.name


def parse_types(text: str | Sequence[str]) -> list[str]:
    """'Q8_0,q4_k_m' or a list → validated upper-case types; 'all' means the whole ladder."""
    items = [t.strip().upper() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if items == ["ALL"]:
        return list(LADDER_TYPES)
    if not items:
        raise BadParameter(f"no variant given — pick from {', '.join(LADDER_TYPES)}")
    for t in items:
        if t not in NOMINAL_BPW:
            raise BadParameter(f"unknown quantization type '{t}' — choose from {', '.join(LADDER_TYPES)}")
    return list(dict.fromkeys(items))


def _ftype(name: str) -> int:
    import llama_cpp

    return 0 if name == "F32" else int(getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{name}"))


def quantize_file(
    src: str | Path, dst: Path, target: str, *, threads: int | None = None, allow_higher: bool = False
) -> float:
    """Run llama.cpp's quantizer src → dst (written atomically); returns seconds taken.

    Refuses a target that is not lower-precision than the source (unless `allow_higher`, used once to
    dequantize a quantized source into the F16 reference), and turns the quantizer's refusal into a
    QuantizeFailed carrying llama.cpp's own reason.
    """
    import llama_cpp

    from core.paths import atomic_path

    meta = read_gguf(src)  # InvalidModelFile / ModelNotFound with a clear message
    if not allow_higher and precision_rank(target) >= precision_rank(meta.file_type):
        raise BadParameter(
            f"{target} is not lower than the source {meta.file_type} ({Path(src).name}): it would add bytes "
            f"without adding precision — pick a type below {meta.file_type}"
        )
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _ftype(target)
    params.allow_requantize = True
    params.nthread = int(threads or 0)
    log: list[str] = []
    with _QUANTIZE_LOCK, atomic_path(Path(dst)) as tmp, _captured_llama_log(log):
        t0 = time.perf_counter()
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        seconds = time.perf_counter() - t0
        if rc != 0:
            raise QuantizeFailed(f"llama.cpp's quantizer refused {target} for {Path(src).name}: {_reason(log)}")
        read_gguf(tmp)  # a file the quantizer wrote must read back before it takes its real name
    return seconds


def _reason(log: list[str]) -> str:
    text = "".join(log)
    for line in reversed(text.splitlines()):
        if "failed to quantize" in line:
            return line.split("failed to quantize:", 1)[-1].strip()
    for line in text.splitlines():
        if "ERROR" in line or "error" in line:
            return line.strip(" =")
    return "no reason given (see llama.cpp's log)"


class _captured_llama_log:
    """Route llama.cpp's log into a list while the quantizer runs (it prints ~5,000 lines otherwise)."""

    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def __enter__(self):
        import llama_cpp

        @llama_cpp.llama_log_callback
        def callback(level, text, user_data):
            self.sink.append(text.decode("utf-8", "replace"))

        self._callback = callback  # keep a reference while C holds the pointer
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        return self

    def __exit__(self, *exc) -> None:
        import llama_cpp
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def describe_file(
    path: str | Path, variant: str, model: str, *, is_reference: bool, note: str, build_s: float = 0.0
) -> LadderFile:
    """A LadderFile from what the GGUF itself says (sizes, effective bpw, tensor-type mix)."""
    meta = read_gguf(path)
    weight_bytes = {t: b for t, b in meta.tensor_bytes_by_type if t not in ("F32",)}
    total = sum(weight_bytes.values()) or 1
    mix = sorted(weight_bytes.items(), key=lambda kv: -kv[1])
    main_type = mix[0][0] if mix else "F32"
    k_bytes = sum(b for t, b in weight_bytes.items() if t.endswith("_K"))
    return LadderFile(
        variant=variant,
        model=model,
        path=str(path),
        model_size=meta.file_size_bytes,
        n_params=meta.n_params,
        bpw=meta.bits_per_weight,
        file_type=meta.file_type,
        tensor_types=" · ".join(f"{t.lower()} {100 * b / total:.0f}%" for t, b in mix),
        main_type=main_type.lower(),
        k_fallback="_K" in variant and k_bytes < total / 2,
        is_reference=is_reference,
        note=note,
        build_s=build_s,
    )


def _source_identity(ref: ModelRef) -> dict:
    st = Path(ref.path).stat()
    return {"path": str(Path(ref.path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _prepare_folder(ref: ModelRef, key: str, source_type: str) -> Path:
    """The ladder folder, emptied if it was built from a different source file; stale temporaries swept."""
    folder = ladder_root() / key
    folder.mkdir(parents=True, exist_ok=True)
    identity = _source_identity(ref)
    manifest = read_manifest(folder)
    if manifest and manifest.get("source") != identity:
        for old in folder.glob("*.gguf"):
            old.unlink()
    now = time.time()
    for partial in folder.glob(".*.partial-*"):
        if now - partial.stat().st_mtime > STALE_PARTIAL_S:
            partial.unlink(missing_ok=True)
    from core.paths import atomic_path

    with atomic_path(manifest_path(folder)) as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "model_key": key,
                    "source_name": ref.name,
                    "source": identity,
                    "source_type": source_type,
                    "chat": ref.chat,
                    "source_note": ref.note,
                },
                indent=2,
            )
        )
    return folder


def reference_type(source_type: str) -> str:
    """The reference's type: the source itself when it is F32/F16/BF16, else F16 dequantized from it."""
    return source_type if source_type in FLOAT_TYPES else "F16"


def reference_origin(source_type: str, ref_type: str, origin: str | None = None) -> str:
    """The reference in one line (see Ladder.reference_origin)."""
    if origin:
        return origin
    if source_type in FLOAT_TYPES:
        return f"source: the {source_type} GGUF itself"
    return f"dequantized: {ref_type} from the {source_type} GGUF"


def reference_note(source_type: str, ref_type: str, origin: str | None = None) -> str:
    if origin:
        return (
            f"Reference: the original, converted to F16 GGUF by llama.cpp's own converter — "
            f"{origin.removeprefix('original: ')}. Every rung is quantized from that F16 GGUF, so each loss is "
            "measured against the original model's weights."
        )
    if source_type in FLOAT_TYPES:
        return f"Reference: the source itself ({source_type}), the highest-precision variant."
    return (
        f"Reference: {ref_type} dequantized from the {source_type} source. It holds exactly the {source_type} "
        f"weights, so it measures each rung against the source, not against the original full-precision model; "
        f"rungs above {source_type} cannot recover precision the source never had."
    )


def estimate_bytes(n_params: int, file_type: str) -> int:
    """About the file size of a type, on the safe side: small models fall back from low-bit K-quants to
    ~5-6 bpw legacy types, so quantized types count at least 6.5 bpw, plus 5 % for metadata."""
    bpw = precision_rank(file_type)
    if file_type not in FLOAT_TYPES:
        bpw = max(bpw, 6.5)
    return int(n_params * bpw / 8 * 1.05) + 2**20


def build_ladder(
    source: str | ModelRef,
    types: Sequence[str] = LADDER_TYPES,
    *,
    threads: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    origin: str | None = None,
) -> Ladder:
    """Build (or take from the cache) the reference and every requested type of `source`.

    `origin` names where a float source came from (e.g. models.original.Original.label); its notes then say
    'the F16 GGUF of the original' instead of 'the source file'.
    """
    from models.catalog import resolve_model

    ref = resolve_model(source) if isinstance(source, str) else source
    if ref.format != "gguf" or not ref.path:
        raise InvalidModelFile(f"the quantization ladder starts from a GGUF file; '{ref.name}' is {ref.format}")
    meta = read_gguf(ref.path)
    if meta.n_params <= 0:
        raise InvalidModelFile(f"{Path(ref.path).name} has no weight tensors — is it a vocabulary-only GGUF?")
    types = parse_types(types)
    key = model_key(ref)
    ref_type = reference_type(meta.file_type)
    folder = _prepare_folder(ref, key, meta.file_type)
    for t in types:
        if t != ref_type and precision_rank(t) >= precision_rank(ref_type):
            raise BadParameter(
                f"{t} is not lower than the source {ref_type}: the ladder quantizes down from its reference — "
                f"pick types below {ref_type}"
            )
    wanted = [ref_type] + [t for t in types if t != ref_type]
    missing = [t for t in wanted if not (folder / f"{t}.gguf").exists()]
    if ref_type == meta.file_type:
        missing = [t for t in missing if t != ref_type]
    check_disk_space(
        folder,
        sum(estimate_bytes(meta.n_params, t) for t in missing),
        f"the {len(missing)} missing ladder file(s) of {ref.name}",
    )
    note_ref = reference_note(meta.file_type, ref_type, origin)
    files: list[LadderFile] = []
    for i, t in enumerate(wanted):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"ladder build cancelled after {i} of {len(wanted)} files; finished files are kept")
        path = folder / f"{t}.gguf"
        is_ref = t == ref_type
        if is_ref and ref_type == meta.file_type:
            path = Path(ref.path)  # a float source is its own reference
            note = f"the reference: {origin}" if origin else f"the source file ({meta.file_type})"
        elif is_ref:
            note = f"{t} dequantized from the {meta.file_type} source"
        else:
            note = f"quantized from the {ref_type} reference" + (
                f" (itself dequantized from {meta.file_type})" if ref_type != meta.file_type else ""
            )
            if origin:
                note = f"quantized from the {ref_type} GGUF of the original ({origin})"
            if t == meta.file_type:
                note += f"; {SAME_AS_SOURCE}"
        build_s = 0.0
        if progress:
            progress(i / len(wanted), f"{'building' if not path.exists() else 'cached'} {t} ({i + 1}/{len(wanted)})")
        if not path.exists():
            if is_ref or ref_type == meta.file_type:
                src = ref.path
            else:
                src = str(folder / f"{ref_type}.gguf")
            build_s = quantize_file(src, path, t, threads=threads, allow_higher=is_ref)
            if cancel is not None and cancel.is_set():
                path.unlink(missing_ok=True)  # the user asked to stop: do not keep what finished after
                raise Cancelled(f"ladder build cancelled during {t}; {t} was discarded, earlier files are kept")
        name = f"{key}@{t}"
        if path == Path(ref.path):  # engines load a file given by path (or an original's F16 GGUF) by its path
            name = ref.path if ref.source in ("path", ORIGINAL_SOURCE) else ref.name
        files.append(describe_file(path, t, name, is_reference=is_ref, note=note, build_s=build_s))
    if progress:
        progress(1.0, f"ladder of {ref.name}: {len(files)} files ready")
    order = {t: i for i, t in enumerate(wanted)}
    files.sort(key=lambda f: order[f.variant])
    return Ladder(
        key, ref, meta.file_type, files[0], tuple(files), note_ref, reference_origin(meta.file_type, ref_type, origin)
    )
