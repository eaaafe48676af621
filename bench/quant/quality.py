"""Quantization quality: perplexity and KL divergence against a reference, the way llama.cpp measures it.

The evaluation text (data/eval/localbench_eval.txt, written for this project, ≥ 4,096 tokens) is
tokenized once with the reference GGUF's tokenizer and cut into chunks of n_ctx = 512 tokens; like
llama-perplexity, the first token of a chunk becomes BOS when the model adds one, and only the second
half of each chunk is scored (positions 256..510 predicting 257..511), so every scored token has at
least 256 tokens of context. At each scored position a variant's next-token distribution is compared
with the reference's: KL divergence (mean / median / p99 / max), same top-1 %, Δp of the correct
token (mean and RMS), and the perplexities, their ratio and ΔPPL %.

The reference's log-probabilities are computed once and cached under LOCALBENCH_HOME: 16-bit like
llama.cpp's own --kl-divergence-base file, with the 32 most likely tokens of each position kept at
32-bit (they carry almost all of the KL sum), and the exact NLL, top-1 and target probability per
position. Variants are scored chunk by chunk against a memory-mapped cache, so memory stays at a few
chunks' worth whatever the vocabulary. Only numpy is imported at module level; no UI code here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import BadParameter, Cancelled
from core.progress import Progress

N_CTX = 512
"""Chunk length in tokens, as llama-perplexity's default."""
TOP_EXACT = 32
"""Most likely reference tokens per position kept at float32 in the cache."""
EVAL_TEXT_PATH = Path(__file__).resolve().parents[2] / "data" / "eval" / "localbench_eval.txt"
EVAL_TEXT_SOURCE = "data/eval/localbench_eval.txt — original English prose written for localbench (CC0)"


@dataclass(frozen=True)
class QualityResult:
    """Quality of one variant against the reference over the same scored positions."""

    n_chunks: int
    n_ctx: int
    n_positions: int
    """Scored positions (n_chunks * (n_ctx - 1 - n_ctx/2))."""
    ppl: float
    """Perplexity of this variant: exp(mean NLL) over the scored positions."""
    ppl_ref: float
    ppl_ratio: float
    """PPL(variant) / PPL(reference)."""
    delta_ppl: float
    """PPL(variant) - PPL(reference)."""
    delta_ppl_pct: float
    """(PPL ratio - 1) * 100."""
    kld_mean: float
    """Mean KL divergence KL(reference || variant), nats."""
    kld_median: float
    kld_p99: float
    kld_max: float
    same_top1_pct: float
    """Share of positions where the most likely token is the same as the reference's, %."""
    mean_dp_pct: float
    """Mean of p_variant(correct token) - p_reference(correct token), percentage points."""
    rms_dp_pct: float
    """Root mean square of that difference, percentage points."""


# ---------------------------------------------------------------- pure metric formulas


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float32 (numerically stable)."""
    x = np.asarray(logits, dtype=np.float32)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True, dtype=np.float64)).astype(np.float32)


def kl_divergence(ref_logp: np.ndarray, var_logp: np.ndarray) -> np.ndarray:
    """KL(ref || var) per row, in nats, from log-probabilities: sum p_ref * (log p_ref - log p_var)."""
    p = np.exp(ref_logp)
    return (p * (ref_logp - var_logp)).sum(axis=-1, dtype=np.float64)


@dataclass(frozen=True)
class PositionStats:
    """Per-position figures of one distribution against the true next tokens."""

    nll: np.ndarray
    """-log p(correct token), nats."""
    top1: np.ndarray
    """Most likely token id."""
    p_target: np.ndarray
    """p(correct token)."""


def position_stats(logp: np.ndarray, targets: np.ndarray) -> PositionStats:
    rows = np.arange(len(targets))
    lp = logp[rows, targets].astype(np.float64)
    return PositionStats(nll=-lp, top1=logp.argmax(axis=-1).astype(np.int32), p_target=np.exp(lp))


def summarize_quality(
    kld: np.ndarray, var: PositionStats, ref: PositionStats, *, n_chunks: int, n_ctx: int
) -> QualityResult:
    """Aggregate per-position figures into llama.cpp's summary numbers (pure)."""
    kld = np.asarray(kld, dtype=np.float64)
    if kld.size == 0:
        raise BadParameter("no scored positions — the evaluation text needs at least one full chunk")
    ppl = float(np.exp(np.mean(var.nll)))
    ppl_ref = float(np.exp(np.mean(ref.nll)))
    dp = (np.asarray(var.p_target) - np.asarray(ref.p_target)) * 100.0
    return QualityResult(
        n_chunks=n_chunks,
        n_ctx=n_ctx,
        n_positions=int(kld.size),
        ppl=ppl,
        ppl_ref=ppl_ref,
        ppl_ratio=ppl / ppl_ref,
        delta_ppl=ppl - ppl_ref,
        delta_ppl_pct=(ppl / ppl_ref - 1.0) * 100.0,
        kld_mean=float(kld.mean()),
        kld_median=float(np.median(kld)),
        kld_p99=float(np.percentile(kld, 99)),
        kld_max=float(kld.max()),
        same_top1_pct=float(np.mean(np.asarray(var.top1) == np.asarray(ref.top1)) * 100.0),
        mean_dp_pct=float(dp.mean()),
        rms_dp_pct=float(np.sqrt(np.mean(dp**2))),
    )


# ---------------------------------------------------------------- evaluation tokens


def default_eval_text() -> str:
    return EVAL_TEXT_PATH.read_text(encoding="utf-8")


def first_scored(n_ctx: int) -> int:
    return n_ctx // 2


def n_scored(n_ctx: int) -> int:
    """Scored positions per chunk: the second half, less the last logit (it predicts past the chunk)."""
    return n_ctx - 1 - first_scored(n_ctx)


def eval_chunks(
    ids: Sequence[int], *, n_ctx: int = N_CTX, bos: int | None = None, max_chunks: int | None = None
) -> list[list[int]]:
    """Full chunks of n_ctx tokens (the tail that does not fill one is dropped, like llama-perplexity);
    the first token of each chunk becomes `bos` when the model adds one."""
    if n_ctx < 16 or n_ctx % 2:
        raise BadParameter(f"chunk length must be an even number of tokens >= 16, got {n_ctx}")
    n = len(ids) // n_ctx
    if n == 0:
        raise BadParameter(
            f"the evaluation text is only {len(ids)} tokens; perplexity needs at least one chunk of {n_ctx} "
            f"tokens — use a longer text (the bundled one is about 4,900 tokens)"
        )
    if max_chunks is not None:
        if max_chunks < 1:
            raise BadParameter(f"chunks must be at least 1, got {max_chunks}")
        n = min(n, max_chunks)
    chunks = [list(map(int, ids[i * n_ctx : (i + 1) * n_ctx])) for i in range(n)]
    if bos is not None:
        for c in chunks:
            c[0] = int(bos)
    return chunks


def tokenize_with_gguf(path: str | Path, text: str) -> tuple[list[int], int | None]:
    """Token ids of `text` with a GGUF's own tokenizer (llama.cpp, vocabulary only, no BOS added), and the
    BOS id when that tokenizer adds one (it then replaces the first token of every chunk)."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    from core.errors import InvalidModelFile
    from models.gguf import read_gguf

    scan = read_gguf(path)
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    try:
        vocab = LlamaModel(path_model=str(path), params=params, verbose=False)
    except ValueError as err:
        raise InvalidModelFile(f"llama.cpp could not read the tokenizer of {Path(path).name}: {err}") from err
    try:
        ids = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    finally:
        vocab.close()
    return ids, (scan.bos_token_id if scan.add_bos else None)


# ---------------------------------------------------------------- reference cache


@dataclass(frozen=True)
class ReferenceLogits:
    """The reference's cached log-probabilities at every scored position, memory-mapped."""

    folder: Path
    n_ctx: int
    n_vocab: int
    logp16: np.ndarray
    """(n_chunks, n_scored, n_vocab) float16 log-probabilities (memory-mapped)."""
    top_idx: np.ndarray
    """(n_chunks, n_scored, TOP_EXACT) token ids of the most likely tokens."""
    top_val: np.ndarray
    """Their exact float32 log-probabilities."""
    targets: np.ndarray
    """(n_chunks, n_scored) the true next tokens."""
    stats: PositionStats
    """Exact NLL, top-1 and p(target) of the reference, flattened over chunks."""

    @property
    def n_chunks(self) -> int:
        return int(self.logp16.shape[0])

    def chunk_logp(self, c: int) -> np.ndarray:
        """Chunk c's reference log-probabilities in float32, exact top tokens restored, renormalized."""
        logp = np.asarray(self.logp16[c], dtype=np.float32)
        rows = np.arange(logp.shape[0])[:, None]
        logp[rows, self.top_idx[c]] = self.top_val[c]
        return log_softmax(logp)

    def quality(self) -> QualityResult:
        """The reference against itself (KLD 0, same top-1 100 %), with its measured perplexity."""
        return summarize_quality(
            np.zeros(self.targets.size), self.stats, self.stats, n_chunks=self.n_chunks, n_ctx=self.n_ctx
        )


def reference_key(ref_path: str | Path, chunks: Sequence[Sequence[int]], n_ctx: int) -> str:
    """Cache key: the reference file's identity, the chunk token ids, n_ctx and the cache format."""
    st = Path(ref_path).stat()
    h = hashlib.sha256()
    h.update(json.dumps([str(Path(ref_path).resolve()), st.st_size, st.st_mtime_ns, n_ctx, TOP_EXACT, 1]).encode())
    h.update(np.asarray(chunks, dtype=np.int32).tobytes())
    return h.hexdigest()[:20]


def reference_cache_bytes(n_chunks: int, n_ctx: int, n_vocab: int) -> int:
    """Disk bytes the reference cache takes: float16 per vocab entry per scored position."""
    return n_chunks * n_scored(n_ctx) * (n_vocab * 2 + TOP_EXACT * 8 + 32)


def _scored_logp(engine, chunk: Sequence[int], n_ctx: int, n_vocab: int | None, cancel) -> np.ndarray:
    """Log-probabilities at the scored positions of one chunk, from the engine's logits."""
    logits = engine.logits(chunk, cancel)
    first = first_scored(n_ctx)
    rows = logits[first : n_ctx - 1]
    if n_vocab is not None and rows.shape[1] != n_vocab:
        if rows.shape[1] < n_vocab:
            raise BadParameter(
                f"{engine.name} returns {rows.shape[1]} logits per token but the reference has {n_vocab}: "
                "the variant does not share the reference's tokenizer"
            )
        rows = rows[:, :n_vocab]  # padded embedding rows of some converted checkpoints
    return log_softmax(rows)


def _check(cancel: threading.Event | None, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} cancelled by the user; nothing was stored for it")


def load_reference(folder: Path) -> ReferenceLogits:
    meta = json.loads((folder / "meta.json").read_text())
    arrays = np.load(folder / "arrays.npz")
    return ReferenceLogits(
        folder=folder,
        n_ctx=int(meta["n_ctx"]),
        n_vocab=int(meta["n_vocab"]),
        logp16=np.load(folder / "logp16.npy", mmap_mode="r"),
        top_idx=arrays["top_idx"],
        top_val=arrays["top_val"],
        targets=arrays["targets"],
        stats=PositionStats(nll=arrays["nll"], top1=arrays["top1"], p_target=arrays["p_target"]),
    )


def reference_cached(ref_path: str | Path, chunks: Sequence[Sequence[int]], n_ctx: int = N_CTX) -> bool:
    """True when the reference logits of these chunks are already in the cache."""
    from core.paths import cache_dir

    return (cache_dir("reference-logits") / reference_key(ref_path, chunks, n_ctx) / "meta.json").exists()


def reference_logits(
    engine,
    ref_path: str | Path,
    chunks: Sequence[Sequence[int]],
    *,
    n_ctx: int = N_CTX,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ReferenceLogits:
    """The reference's cached log-probabilities, computed once with `engine` (loaded on ref_path).

    `engine` may be a list of engines loaded on the same file: chunks are then shared out between them
    and computed concurrently (each chunk's rows land in their own slice of the cache).
    """
    from concurrent.futures import ThreadPoolExecutor

    from core.paths import atomic_path, cache_dir, check_disk_space

    engines = list(engine) if isinstance(engine, (list, tuple)) else [engine]
    folder = cache_dir("reference-logits") / reference_key(ref_path, chunks, n_ctx)
    if (folder / "meta.json").exists():
        if progress:
            progress(1.0, "reference logits: cached")
        return load_reference(folder)
    n_chunks, k = len(chunks), n_scored(n_ctx)
    first = first_scored(n_ctx)
    targets = np.asarray([c[first + 1 : n_ctx] for c in chunks], dtype=np.int32)
    nll = np.empty((n_chunks, k))
    top1 = np.empty((n_chunks, k), dtype=np.int32)
    p_target = np.empty((n_chunks, k))
    done = [0]
    lock = threading.Lock()
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        arrays: dict[str, np.ndarray] = {}

        def one(c: int, eng) -> None:
            _check(cancel, "reference pass")
            logp = _scored_logp(eng, chunks[c], n_ctx, None, cancel)
            if not arrays:  # the first chunk sizes the cache (the vocabulary is known only now)
                n_vocab = logp.shape[1]
                check_disk_space(
                    tmp.parent, reference_cache_bytes(n_chunks, n_ctx, n_vocab), "the reference logits cache"
                )
                arrays["logp16"] = np.lib.format.open_memmap(
                    tmp / "logp16.npy", mode="w+", dtype=np.float16, shape=(n_chunks, k, n_vocab)
                )
                arrays["top_idx"] = np.empty((n_chunks, k, TOP_EXACT), dtype=np.int32)
                arrays["top_val"] = np.empty((n_chunks, k, TOP_EXACT), dtype=np.float32)
            arrays["logp16"][c] = logp
            idx = np.argpartition(logp, -TOP_EXACT, axis=1)[:, -TOP_EXACT:]
            arrays["top_idx"][c] = idx
            arrays["top_val"][c] = np.take_along_axis(logp, idx, axis=1)
            s = position_stats(logp, targets[c])
            nll[c], top1[c], p_target[c] = s.nll, s.top1, s.p_target
            with lock:
                done[0] += 1
                if progress:
                    progress(done[0] / n_chunks, f"reference logits: chunk {done[0]}/{n_chunks}")

        one(0, engines[0])
        if len(engines) == 1:
            for c in range(1, n_chunks):
                one(c, engines[0])
        else:

            def worker(w: int) -> None:
                for c in range(1 + w, n_chunks, len(engines)):
                    one(c, engines[w])

            with ThreadPoolExecutor(max_workers=len(engines), thread_name_prefix="reference") as pool:
                futures = [pool.submit(worker, w) for w in range(len(engines))]
                try:
                    for f in futures:
                        f.result()
                except BaseException:
                    if cancel is not None:
                        cancel.set()
                    raise
        arrays["logp16"].flush()
        n_vocab = arrays["logp16"].shape[2]
        del arrays["logp16"]
        np.savez(
            tmp / "arrays.npz",
            top_idx=arrays["top_idx"],
            top_val=arrays["top_val"],
            targets=targets,
            nll=nll.reshape(-1),
            top1=top1.reshape(-1),
            p_target=p_target.reshape(-1),
        )
        (tmp / "meta.json").write_text(
            json.dumps(
                {
                    "reference": str(ref_path),
                    "n_ctx": n_ctx,
                    "n_chunks": n_chunks,
                    "n_vocab": n_vocab,
                    "format": "float16 log-probs, top-32 exact float32",
                }
            )
        )
    return load_reference(folder)


def score_variant(
    engine,
    chunks: Sequence[Sequence[int]],
    ref: ReferenceLogits,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> QualityResult:
    """Quality of a loaded engine against the cached reference, chunk by chunk (Engine.logits)."""
    if len(chunks) != ref.n_chunks:
        raise BadParameter(f"{len(chunks)} chunks given but the reference cache has {ref.n_chunks}")
    klds, nll, top1, p_target = [], [], [], []
    for c, chunk in enumerate(chunks):
        _check(cancel, "quality sweep")
        logp = _scored_logp(engine, chunk, ref.n_ctx, ref.n_vocab, cancel)
        klds.append(kl_divergence(ref.chunk_logp(c), logp))
        s = position_stats(logp, ref.targets[c])
        nll.append(s.nll)
        top1.append(s.top1)
        p_target.append(s.p_target)
        if progress:
            progress((c + 1) / len(chunks), f"chunk {c + 1}/{len(chunks)}")
    var = PositionStats(np.concatenate(nll), np.concatenate(top1), np.concatenate(p_target))
    return summarize_quality(np.concatenate(klds), var, ref.stats, n_chunks=len(chunks), n_ctx=ref.n_ctx)
