"""The embeddings throughput runner: batch sizes × devices × precisions × backends on one corpus.

For each configuration the model is loaded once; for each batch size an untimed warm-up runs (the first
batch, a whole pass, or none), then the whole corpus is embedded in batches of that size (sorted by length first, as
`SentenceTransformer.encode` does, unless told not to). Each `embed_batch` call is timed with
perf_counter (tokenization, forward pass and the copy back to the host included); sentences/s and
tokens/s are the corpus totals over the summed batch times (derived). Peak memory: the device's own
counter (torch.cuda's peak allocation; MPS sampled after each batch) and this process's peak RSS (the
kernel's high-water mark on Linux, getrusage elsewhere; no sampling thread to slow the run).
Agreement: the cosine of each text's vector with the fp32 CPU torch reference (mean and minimum over
the corpus). Progress and cancel come in as a callable and an Event.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.embed.coreml import coreml_configs, prepare_coreml
from bench.embed.corpus import corpus_digest
from bench.embed.record import (  # noqa: F401 - agreement, cosine_rows, throughput: re-exported
    WARMUP_WORDS,
    EmbedResult,
    TimedPass,
    agreement,
    cosine_rows,
    make_result,
    throughput,
)
from core.errors import BadParameter, Cancelled, EngineUnavailable, InsufficientMemory
from core.progress import Progress
from engines.base import current_rss_bytes
from engines.embeddings import PRECISIONS, EmbedConfig, Embedder, combination_problem, resolve_embed_model
from engines.process.proxy import WorkerObject
from machine.devices import EMBEDDINGS_DEVICES, check_embeddings_device, embeddings_auto_device

DEFAULT_BATCH_SIZES = (1, 8, 32, 128, 512)
MAX_BATCH_SIZE = 65536
REFERENCE = EmbedConfig(backend="torch", device="cpu", precision="fp32")
REFERENCE_BATCH_SIZE = 32
PROGRESS_EVERY_S = 0.1
STORE_KIND = "embed"
WARMUPS = ("none", "batch", "pass")


@dataclass(frozen=True)
class EmbedPlan:
    """A validated sweep: what to run, what was left out and why."""

    model: str
    """What loads it: the bundled name, `ollama:<name>` or a folder's absolute path."""
    batch_sizes: tuple[int, ...]
    configs: tuple[EmbedConfig, ...]
    """Reference (torch/cpu/fp32) first when it is among them."""
    skipped: tuple[str, ...]
    """One reason per combination that cannot run here."""
    reference: EmbedConfig | None
    """The fp32 CPU configuration the agreement columns compare against; None for Ollama models."""


# --- pure helpers (tested alone) ----------------------------------------------------------------


def parse_batch_sizes(values: Sequence) -> tuple[int, ...]:
    """Sorted unique positive batch sizes; BadParameter for 0, negatives, non-integers or none."""
    out = []
    for v in values:
        try:
            number = float(str(v).strip())
        except ValueError:
            raise BadParameter(f"batch sizes must be whole numbers, got {v!r}") from None
        if number != int(number) or number < 1:
            raise BadParameter(f"batch size must be a positive whole number, got {v!r} — use e.g. 1,8,32,128,512")
        if number > MAX_BATCH_SIZE:
            raise BadParameter(f"batch size {int(number)} is too large (limit {MAX_BATCH_SIZE})")
        out.append(int(number))
    if not out:
        raise BadParameter("no batch size given — use e.g. 1,8,32,128,512")
    return tuple(sorted(set(out)))


def batch_order(texts: Sequence[str], sort_by_length: bool) -> np.ndarray:
    """Indices in the order texts are embedded: longest first (by characters, as encode sorts)."""
    if not sort_by_length:
        return np.arange(len(texts))
    return np.argsort([-len(t) for t in texts], kind="stable")


def split_batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive slices of `order`, `batch_size` each (the last may be shorter)."""
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def summary_frame(frame):
    """The columns a reader scans first (table views); CSV and JSON keep every field (the embedding
    dimension, the mean cosine, truncated texts: the sweep notes say how many were truncated)."""
    import pandas as pd

    if frame.empty:
        return frame

    def mib(col: str):
        return (frame[col].astype("float64") / 2**20).round(1)

    return pd.DataFrame(
        {
            "backend": frame["backend"],
            "device": frame["device"],
            "precision": frame["precision"],
            "batch_size": frame["batch_size"],
            "sentences_per_s": frame["sentences_per_s"].round(1),
            "tokens_per_s": frame["tokens_per_s"].round(0),
            "p50_batch_ms": frame["p50_batch_ms"].round(2),
            "p95_batch_ms": frame["p95_batch_ms"].round(2),
            "peak_device_MiB": mib("peak_device_bytes"),
            "peak_rss_MiB": mib("peak_rss_bytes"),
            "cosine_min_vs_ref": frame["cosine_min_vs_ref"].map(lambda x: f"{x:.6f}"),
        }
    )


def sweep_notes(plan: EmbedPlan, results: Sequence[EmbedResult]) -> list[str]:
    """What a user must know beside the table: skipped combinations and truncated texts."""
    notes = [f"skipped — {reason}" for reason in plan.skipped]
    if results:
        first = results[0]
        if first.truncated_texts is None:
            notes.append("Ollama truncates long texts silently: how many were truncated is unknown.")
        elif first.truncated_texts:
            notes.append(
                f"{first.truncated_texts} of {first.n_texts} texts are longer than the model's "
                f"{first.max_seq_length}-token maximum sequence length and were truncated to it."
            )
    return notes


# --- planning -------------------------------------------------------------------------------------


def plan_embed_sweep(
    model: str,
    batch_sizes: Sequence = DEFAULT_BATCH_SIZES,
    devices: Sequence[str] = ("auto",),
    precisions: Sequence[str] = ("fp32",),
    backends: Sequence[str] = ("torch",),
    *,
    host: str | None = None,
    api_key: str | None = None,
    accelerators: Sequence[str] = (),
    compute_units: Sequence[str] = ("all",),
) -> EmbedPlan:
    """Validate every choice before any model loads. Raises BadParameter, ModelNotFound,
    EngineUnavailable (a device not present; no combination that can run here). Core ML configurations are
    one per compute unit (the package's fp16; devices and precisions do not apply to it)."""
    sizes = parse_batch_sizes(batch_sizes)
    ref = resolve_embed_model(model)
    if ref.kind == "ollama":
        return EmbedPlan(ref.name, sizes, (EmbedConfig(backend="ollama", host=host, api_key=api_key),), (), None)
    for name, values, allowed in (
        ("device", devices, ("auto", *EMBEDDINGS_DEVICES)),
        ("precision", precisions, PRECISIONS),
        ("backend", backends, ("torch", "onnx", "coreml")),
    ):
        if not values:
            raise BadParameter(f"pick at least one {name}")
        for v in values:
            if v not in allowed:
                raise BadParameter(f"unknown {name} '{v}' — choose from: {', '.join(allowed)}")
    resolved = []
    for d in devices:
        device = embeddings_auto_device(accelerators) if d == "auto" else d
        check_embeddings_device(device)
        if device not in resolved:
            resolved.append(device)
    configs, skipped = [], []
    for backend in dict.fromkeys(backends):
        if backend == "coreml":
            configs += coreml_configs(ref, compute_units, skipped)
            continue
        for device in resolved:
            for precision in dict.fromkeys(precisions):
                problem = combination_problem(backend, device, precision)
                if problem:
                    skipped.append(problem)
                else:
                    configs.append(EmbedConfig(backend=backend, device=device, precision=precision))
    if not configs:
        alone = set(backends) == {"coreml"}  # Core ML alone off macOS: its own line says it all
        raise EngineUnavailable(skipped[0] if alone else "nothing can run: " + "; ".join(skipped))
    configs.sort(key=lambda c: c != REFERENCE)
    model_key = ref.path if ref.source == "path" else ref.name  # a folder loads by its path, not its name
    return EmbedPlan(model_key, sizes, tuple(configs), tuple(skipped), REFERENCE)


# --- running --------------------------------------------------------------------------------------


class PeakRss:
    """Peak RSS of a process (this one, or the embedder's worker: `pid`) while the block runs.

    Linux: the kernel's own high-water mark (VmHWM in /proc/<pid>/status), reset on entry by writing 5 to
    /proc/<pid>/clear_refs — exact. Elsewhere (macOS): getrusage's ru_maxrss when it rose during the block
    (then it is this block's peak, exact; this process only), else the largest of the `sample()`
    readings taken after each batch (a lower bound). `source` says which.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self.source = ""
        self._hwm = False
        self._maxrss_before = 0

    def _rss(self) -> int:
        if self.pid is None:
            return current_rss_bytes()
        import psutil

        return int(psutil.Process(self.pid).memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._hwm = _reset_hwm(self.pid)
        self._maxrss_before = _maxrss_bytes() if self.pid is None else 0
        self.peak_bytes = self._rss()
        return self

    def sample(self) -> None:
        if not self._hwm:
            self.peak_bytes = max(self.peak_bytes, self._rss())

    def __exit__(self, *exc) -> None:
        hwm = _hwm_bytes(self.pid) if self._hwm else None
        if hwm:
            self.peak_bytes, self.source = max(self.peak_bytes, hwm), "VmHWM (kernel high-water mark, reset per pass)"
            return
        after = _maxrss_bytes()
        if after > self._maxrss_before:
            self.peak_bytes, self.source = max(self.peak_bytes, after), "ru_maxrss (rose during the pass)"
        else:
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())
            self.source = "RSS sampled after each batch (lower bound)"


def _reset_hwm(pid: int | None = None) -> bool:
    """Reset a process's RSS high-water mark (Linux); False where that is not possible."""
    try:
        with open(f"/proc/{pid or 'self'}/clear_refs", "w") as fh:
            fh.write("5")
        return _hwm_bytes(pid) is not None
    except OSError:
        return False


def _hwm_bytes(pid: int | None = None) -> int | None:
    try:
        with open(f"/proc/{pid or 'self'}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _maxrss_bytes() -> int:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


def timed_pass(
    embedder: Embedder | WorkerObject,
    texts: Sequence[str],
    batch_size: int,
    *,
    sort_by_length: bool = True,
    cancel: threading.Event | None = None,
    tick: Callable[[int], None] | None = None,
) -> TimedPass:
    """Embed the whole corpus in batches, timing each embed_batch call; vectors come back in corpus order."""
    import time

    order = batch_order(texts, sort_by_length)
    out: np.ndarray | None = None
    latencies, n_tokens, truncated, known = [], 0, 0, True
    with PeakRss(getattr(embedder, "pid", None)) as rss:
        for idx in split_batches(order, batch_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled("embeddings benchmark cancelled by the user")
            chunk = [texts[i] for i in idx]
            t0 = time.perf_counter()
            try:
                vectors = embedder.embed_batch(chunk)
            except RuntimeError as err:
                if "out of memory" in str(err).lower():
                    raise InsufficientMemory(
                        f"out of device memory at batch size {batch_size} — try smaller batch sizes"
                    ) from None
                raise
            latencies.append(time.perf_counter() - t0)
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
            stats = embedder.last_stats
            n_tokens += stats.n_tokens
            truncated += stats.truncated
            known = known and stats.extra.get("truncated_known", True)
            rss.sample()
            if tick is not None:
                tick(len(idx))
    return TimedPass(out, latencies, n_tokens, truncated if known else None, rss.peak_bytes, rss.source)


def _hardware_strings() -> tuple[str, str]:
    from machine.detect import detect_hardware

    hw = detect_hardware()
    return hw.chip, hw.gpu_name


def run_embed(
    plan: EmbedPlan,
    texts: Sequence[str],
    *,
    warmup: str = "batch",
    sort_by_length: bool = True,
    corpus_name: str = "",
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> list[EmbedResult]:
    """Run every configuration of the plan over `texts`; one EmbedResult per configuration and batch size."""
    import time

    texts = list(texts)
    if not texts:
        raise BadParameter("the corpus is empty — give at least one text (one per line)")
    if any(not isinstance(t, str) for t in texts):
        raise BadParameter("every corpus entry must be text")
    if warmup not in WARMUPS:
        raise BadParameter(f"unknown warm-up '{warmup}' — choose one of: {', '.join(WARMUPS)}")
    n = len(texts)
    corpus = f"{corpus_name or f'custom-{n}'}:{corpus_digest(texts)}"
    cpu_info, gpu_info = _hardware_strings()
    need_ref = plan.reference is not None and plan.reference not in plan.configs
    per_size = 2 * n if warmup == "pass" else n
    units = len(plan.configs) * len(plan.batch_sizes) * per_size + (n if need_ref else 0)
    done, last_push = 0, 0.0

    def tick(k: int, message: str) -> None:
        nonlocal done, last_push
        done += k
        now = time.perf_counter()
        if progress is not None and (now - last_push >= PROGRESS_EVERY_S or done >= units):
            last_push = now
            progress(min(done / units, 1.0), message)

    reference_vectors = None
    prepare_coreml(plan.model, plan.configs, progress)  # converts once, in this process, with progress
    coreml = any(c.backend == "coreml" for c in plan.configs)
    embedder = WorkerObject.embedder("coreml" if coreml else "sentence-transformers")  # its own worker process
    try:
        if need_ref:
            if progress:
                progress(0.0, "reference: loading fp32 CPU torch")
            embedder.load(plan.model, plan.reference)
            reference_vectors = timed_pass(
                embedder,
                texts,
                REFERENCE_BATCH_SIZE,
                cancel=cancel,
                tick=lambda k: tick(k, "reference: fp32 CPU torch"),
            ).vectors
            embedder.unload()
        results = []
        for config in plan.configs:
            label = f"{config.backend} {config.compute_units or config.device} {config.precision}"
            label = "ollama" if config.backend == "ollama" else label
            if progress:
                progress(done / units, f"{label}: loading")
            info = embedder.load(plan.model, config)
            for batch_size in plan.batch_sizes:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("embeddings benchmark cancelled by the user")
                if warmup == "batch":
                    first = batch_order(texts, sort_by_length)[:batch_size]
                    embedder.embed_batch([texts[i] for i in first])
                elif warmup == "pass":
                    timed_pass(
                        embedder,
                        texts,
                        batch_size,
                        sort_by_length=sort_by_length,
                        cancel=cancel,
                        tick=lambda k, b=batch_size, name=label: tick(k, f"{name}: warm-up pass, batch size {b}"),
                    )
                embedder.reset_peak_memory()
                run = timed_pass(
                    embedder,
                    texts,
                    batch_size,
                    sort_by_length=sort_by_length,
                    cancel=cancel,
                    tick=lambda k, b=batch_size, name=label: tick(k, f"{name}: batch size {b}"),
                )
                if reference_vectors is None and config == plan.reference:
                    reference_vectors = run.vectors
                results.append(
                    make_result(
                        info,
                        run,
                        batch_size=batch_size,
                        n_texts=n,
                        warmup=warmup,
                        sort_by_length=sort_by_length,
                        reference_vectors=reference_vectors,
                        reference=plan.reference,
                        device_memory=embedder.peak_device_memory(),
                        corpus=corpus,
                        hardware=(cpu_info, gpu_info),
                    )
                )
            embedder.unload()
        if progress:
            progress(1.0, "done")
        return results
    finally:
        embedder.close()  # ends the worker: the OS gets its memory back


def run_and_store(
    store,
    plan: EmbedPlan,
    texts: Sequence[str],
    *,
    settings: dict | None = None,
    hardware: dict,
    **kwargs,
) -> tuple[list[EmbedResult], str]:
    """run_embed, then store the run (kind 'embed'); a failed or cancelled run is stored with that status
    and no rows before the error is raised again. Returns (results, run_id)."""
    settings = {
        "model": plan.model,
        "batch_sizes": list(plan.batch_sizes),
        "configs": [{**dataclasses.asdict(c), "api_key": None} for c in plan.configs],
        "skipped": list(plan.skipped),
        "n_texts": len(texts),
        **(settings or {}),
    }
    with store.recording(STORE_KIND, settings, hardware) as run:
        run.rows = run_embed(plan, texts, **kwargs)
    return run.rows, run.run_id
