"""The quantization lab: build a model's GGUF ladder, then measure every chosen variant's quality
(perplexity, KL divergence against the reference), speed (bench.speed.runner.run_speed: pp and tg repeated,
mean ± sd) and its greedy answer to one prompt, and return one row per variant.

A variant (bench.quant.variants) is (label, engine, model, load options). The ladder gives llama.cpp
variants; bench.quant.variants adds the MLX bf16/8-bit/4-bit and torch bf16/fp32 rows of the same model.
The source is a GGUF (its reference is the F16 dequantized from it when it is quantized) or an HF safetensors
original (BF16/F16/F32): llama.cpp's own converter makes its F16 GGUF (models.original), which is the reference
and the ladder's source, and mlx_lm.convert makes the MLX rows from the same folder.
Every row is scored on the same evaluation token ids, tokenized once with the reference GGUF's tokenizer,
through Engine.logits when the engine exposes it (speed and answers otherwise). Progress comes in as
progress(fraction, message) and cancellation as a threading.Event; no UI here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from dataclasses import dataclass

from bench.quant import ladder as ladder_mod
from bench.quant import quality
from bench.quant.record import QuantReport, QuantRow
from bench.quant.summary import TARGET_LIMIT_PCT, TARGET_TYPE, target_verdict
from bench.quant.variants import Variant, extra_variants, ladder_variant
from core.errors import BadParameter, Cancelled, EngineUnavailable, LocalbenchError
from core.progress import Progress
from engines.base import GenerationParams, LoadConfig
from models import original as originals
from models.ladders import built_variants

DEFAULT_PROMPT = "Explain in two sentences why the sky is blue."
DEFAULT_VARIANTS = ("F16", "Q8_0", "Q4_K_M", "Q4_0", "Q2_K")
DEFAULT_WINDOW = quality.N_CTX
"""Tokens per evaluation chunk, as llama-perplexity's default -c."""
ORIGINAL_DEFAULT_EXTRAS = ("MLX 8-bit", "MLX 4-bit")
"""Ticked by default beside DEFAULT_VARIANTS when the source is an original (default_variants)."""
QUALITY_METHOD = (
    "llama-perplexity style: n_ctx {n_ctx} chunks, second half of each chunk scored ({scored} positions per chunk), "
    "BOS as first token when the model adds one; KL(reference || variant) per position in nats"
)


@dataclass(frozen=True)
class QuantSettings:
    """What to compare and how."""

    variants: tuple[str, ...] = DEFAULT_VARIANTS
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = 48
    seed: int = 0
    n_prompt: int = 256
    """Prompt tokens of the pp speed test."""
    n_gen: int = 64
    """Generated tokens of the tg speed test."""
    repetitions: int = 3
    speed: bool = True
    quality: bool = True
    max_chunks: int | None = None
    """Evaluation chunks to score (None: every full chunk of the text)."""
    eval_text: str | None = None
    """None: the bundled evaluation text."""
    threads: int | None = None
    quality_workers: int = 1
    """Variants scored at once in the quality sweep (each on threads // workers threads)."""
    window: int = DEFAULT_WINDOW
    """Tokens per evaluation chunk (llama-perplexity's -c): 512 as llama.cpp; smaller is faster and noisier (MLX's
    quantized CPU kernels need ~30 s per forward pass on a 2-core VM, whatever its length)."""
    answers: bool = True
    """Generate each variant's greedy answer to `prompt`."""

    def validate(self) -> QuantSettings:
        if not self.variants:
            raise BadParameter("no variant ticked — tick at least one variant to compare")
        if not (self.prompt or "").strip():
            raise BadParameter("the prompt is empty — type a prompt for the side-by-side answers")
        if not 1 <= self.max_tokens <= 4096:
            raise BadParameter(f"max tokens must be between 1 and 4096, got {self.max_tokens}")
        if self.quality and (self.window < 16 or self.window % 2 or self.window > 8192):
            raise BadParameter(f"the evaluation window must be an even number of 16 to 8192 tokens, got {self.window}")
        if not 1 <= self.quality_workers <= 16:
            raise BadParameter(f"quality workers must be between 1 and 16, got {self.quality_workers}")
        if self.speed and not 1 <= self.repetitions <= 100:
            raise BadParameter(f"repetitions must be between 1 and 100, got {self.repetitions}")
        if self.speed and (self.n_prompt < 1 or self.n_gen < 1 or self.n_prompt + self.n_gen > 8192):
            raise BadParameter("speed tests need pp and tg of at least 1 token and at most 8192 together")
        return self


def source_models() -> list[str]:
    """Model names for the lab's picker: local GGUF models (not ladder files) and HF safetensors originals."""
    from models.catalog import list_models

    names = []
    for r in list_models():
        is_gguf = r.format == "gguf" and "@" not in r.name
        if is_gguf or (r.format == "hf" and r.path and originals.is_original(r.path)):
            names.append(r.name)
    return names


def _source_kind(model: str) -> str:
    """'gguf', 'original' (an HF safetensors folder in BF16/F16/F32) or '' for anything else."""
    from models.catalog import resolve_model

    try:
        ref = resolve_model(model)
    except LocalbenchError:
        return ""
    if ref.format == "gguf":
        return "gguf"
    return "original" if ref.format == "hf" and ref.path and originals.is_original(ref.path) else ""


def _original_of(model: str) -> originals.Original | None:
    from models.catalog import resolve_model

    if _source_kind(model) != "original":
        return None
    return originals.read_original(resolve_model(model).path)


def variant_choices(model: str) -> list[str]:
    """Labels the user can tick for `model`: the ladder (GGUF sources and originals) and the extra rows."""
    labels = list(ladder_mod.LADDER_TYPES) if _source_kind(model) else []
    return labels + [v.label for v in extra_variants(model) if v.label not in labels]


def default_variants(model: str) -> tuple[str, ...]:
    """What is ticked at first: DEFAULT_VARIANTS, plus the MLX 8-bit and 4-bit rows for an original."""
    if _source_kind(model) != "original":
        return DEFAULT_VARIANTS
    offered = set(variant_choices(model))
    return DEFAULT_VARIANTS + tuple(label for label in ORIGINAL_DEFAULT_EXTRAS if label in offered)


def canonical_labels(model: str, labels: list[str]) -> list[str]:
    """Typed labels as the lab's own ('q4_k_m' → 'Q4_K_M', 'mlx-4bit' → 'MLX 4-bit'); unknown ones unchanged."""

    def squash(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    known = {squash(label): label for label in variant_choices(model)}
    known.update({squash(t): t for t in ladder_mod.NOMINAL_BPW})
    return [known.get(squash(label), label) for label in labels]


def built_choices(model: str) -> list[str]:
    """Ladder types of `model` already in the cache (they skip the build)."""
    from models.catalog import resolve_model

    try:
        found = _original_of(model)
        if found is not None:
            return built_variants(originals.cache_folder(found).name)
        return built_variants(ladder_mod.model_key(resolve_model(model)))
    except LocalbenchError:
        return []


class _Stages:
    """Maps each stage's own 0..1 progress onto a slice of the whole run."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.start, self.width = 0.0, 0.0

    def enter(self, start: float, end: float, message: str) -> Progress:
        self.start, self.width = start, end - start
        self(0.0, message)
        return self

    def __call__(self, fraction: float, message: str) -> None:
        if self.progress:
            self.progress(min(1.0, self.start + self.width * max(0.0, min(1.0, fraction))), message)


def _load_config(variant: Variant, n_ctx: int, threads: int | None) -> LoadConfig:
    """The planner's LoadConfig for this machine, with the lab's own fields: `n_ctx`, `threads`, batches of
    one quality window, the variant's dtype, device and options, and no GPU layers (llama.cpp variants are
    measured on the CPU, as the lab always has)."""
    from machine.detect import detect_hardware
    from planning.runtime import optimal_config

    return optimal_config(detect_hardware()).load_config(
        n_ctx=n_ctx,
        n_threads=threads,
        n_gpu_layers=0,
        n_batch=quality.N_CTX,
        dtype=variant.dtype,
        device=variant.device,
        options=variant.options,
    )


def compare(
    model: str,
    settings: QuantSettings,
    *,
    pool=None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> QuantReport:
    """Build what is missing, then measure every ticked variant of `model`; one QuantRow per variant, the
    reference first (ticked or not)."""
    from engines.process.pool import PoolKey
    from machine.detect import detect_hardware
    from models.catalog import resolve_model
    from planning.guard import guarded_pool
    from planning.runtime import optimal_config

    settings.validate()
    t_start = time.perf_counter()
    threads = settings.threads or optimal_config(detect_hardware()).n_threads
    stages = _Stages(progress)
    timings = dict.fromkeys(("build", "reference", "quality", "speed", "answers"), 0.0)
    ladder_types = [t for t in settings.variants if t in ladder_mod.NOMINAL_BPW]
    extras = {v.label: v for v in extra_variants(model)}
    unknown = [t for t in settings.variants if t not in ladder_types and t not in extras]
    if unknown:
        raise BadParameter(
            f"unknown variant(s) {', '.join(unknown)} for {model} — choose from {', '.join(variant_choices(model))}"
        )
    variants: list[Variant] = []
    reference_note = "no reference: quality needs a GGUF source or an extra variant marked as reference"
    reference: Variant | None = None
    ref_path: str | None = None

    source = resolve_model(model)
    chunks: list[list[int]] = []
    text = settings.eval_text if settings.eval_text is not None else quality.default_eval_text()
    origin: str | None = None
    reference_origin = ""
    t0 = time.perf_counter()
    found = _original_of(model)
    if found is not None:
        # the original's F16 GGUF (llama.cpp's converter) is the reference and the ladder's source
        converted_gguf = originals.to_gguf(
            found.folder, progress=stages.enter(0.0, 0.06, f"converting {found.name} to F16 GGUF"), cancel=cancel
        )
        source, origin = converted_gguf.ref(), found.label
        ladder_types = ladder_types or ["F16"]  # the reference row, even when only MLX rows are ticked
    if source.format == "gguf" and settings.quality:
        # The ladder copies the source's vocabulary, so its tokenizer is the reference's.
        ids, bos = quality.tokenize_with_gguf(source.path, text)
        chunks = quality.eval_chunks(ids, n_ctx=settings.window, bos=bos, max_chunks=settings.max_chunks)
    if ladder_types:
        if source.format != "gguf":
            raise BadParameter(
                f"{', '.join(ladder_types)} are GGUF ladder types but {model} is neither a GGUF model nor an HF "
                "safetensors original (BF16/F16/F32)"
            )
        lad = ladder_mod.build_ladder(
            source,
            ladder_types,
            threads=threads,
            progress=stages.enter(0.06, 0.08, "building the ladder"),
            cancel=cancel,
            origin=origin,
        )
        reference_note, reference_origin = lad.reference_note, lad.reference_origin
        by_type = {f.variant: ladder_variant(f) for f in lad.files}
        reference, ref_path = by_type[lad.reference.variant], lad.reference.path
        # the reference is always a row (first), ticked or not: the other rows are read against it
        variants += [reference] + [by_type[t] for t in ladder_types if t != lad.reference.variant]
    ticked_extras = [extras[t] for t in settings.variants if t in extras]
    to_convert = [v for v in ticked_extras if v.conversion]
    for i, variant in enumerate(to_convert):
        lo = 0.08 + 0.02 * i / len(to_convert)
        stages.enter(lo, lo + 0.02 / len(to_convert), f"{variant.label}: mlx_lm.convert from the original")
        originals.to_mlx(found.folder, variant.conversion, progress=stages, cancel=cancel)
    variants += ticked_extras
    timings["build"] = time.perf_counter() - t0
    if reference is None:
        reference = next((v for v in variants if v.is_reference), None)
    own_pool = pool is None
    pool = pool or guarded_pool(max_loaded=1)
    n_ctx = max(
        settings.window if settings.quality else 0,
        settings.n_prompt + settings.n_gen + 16 if settings.speed else 0,
        settings.max_tokens + 512 if settings.answers else 0,
        256,
    )
    n_ctx = -(-n_ctx // 256) * 256
    used: list[PoolKey] = []

    def load(variant: Variant):
        config = _load_config(variant, n_ctx, threads)
        used.append(PoolKey(variant.engine, variant.model, config))
        return pool.get(variant.engine, variant.model, config), config

    rows = []
    try:
        ref_logits = None
        if settings.quality and reference is not None:
            t0 = time.perf_counter()
            engine, _ = load(reference)
            if not chunks:
                chunks = quality.eval_chunks(
                    engine.tokenize(text), n_ctx=settings.window, max_chunks=settings.max_chunks
                )
            workers = settings.quality_workers
            ref_key_path = ref_path or reference.model
            helpers = []
            try:
                if workers > 1 and not quality.reference_cached(ref_key_path, chunks):
                    guard = getattr(pool, "guard", None)
                    helpers = [
                        _open_engine(reference, max(1, threads // workers), guard, settings.window)
                        for _ in range(workers)
                    ]
                ref_logits = quality.reference_logits(
                    helpers or engine,
                    ref_key_path,
                    chunks,
                    n_ctx=settings.window,
                    progress=stages.enter(0.1, 0.2, "reference logits"),
                    cancel=cancel,
                )
            finally:
                for helper in helpers:
                    helper.unload()
            timings["reference"] = time.perf_counter() - t0
        scores: dict[str, tuple] = {}
        if ref_logits is not None:
            t0 = time.perf_counter()
            scores = _score_all(
                variants,
                chunks,
                ref_logits,
                settings,
                threads,
                getattr(pool, "guard", None),
                stages.enter(0.2, 0.6, "quality"),
                cancel,
            )
            timings["quality"] = time.perf_counter() - t0
        share = 0.4 / max(1, len(variants))
        for i, variant in enumerate(variants):
            base = 0.6 + i * share
            stages.enter(base, base + share, f"{variant.label}: loading ({i + 1}/{len(variants)})")
            engine, config = load(variant)
            result, note = scores.get(variant.label, (None, variant.note))
            measured = _measure(engine, variant, config, settings, stages, base, share, cancel, timings)
            row = _row(
                model, variant, reference, reference_note, engine.info(), settings, chunks, result, note, *measured
            )
            rows.append(dataclasses.replace(row, reference_origin=reference_origin))
    finally:
        if own_pool:
            pool.unload_all()
        else:
            for key in used:
                pool.unload(key)
    mode = rows[0].answer_mode if rows else ""
    if progress:
        progress(1.0, f"compared {len(rows)} variants")
    timings["total"] = time.perf_counter() - t_start
    eval_source = quality.EVAL_TEXT_SOURCE if settings.eval_text is None else "user-supplied text"
    return QuantReport(
        model,
        tuple(rows),
        reference_note,
        mode,
        target_verdict(rows),
        eval_source,
        timings,
        settings.seed,
        reference_origin=reference_origin,
    )


def _open_engine(variant: Variant, threads: int, guard, window: int = quality.N_CTX):
    """A fresh engine (outside any pool) with the variant loaded for logits of `window`-token chunks, `threads`
    threads."""
    from engines.registry import create_engine

    engine = create_engine(variant.engine)
    ref = engine.resolve(variant.model)
    config = _load_config(variant, -(-window // 256) * 256, threads)
    if guard is not None and not config.allow_oversize:
        guard(engine, ref, config)
    engine.load(ref, config)
    return engine


def _score_all(variants, chunks, ref_logits, settings, threads, guard, progress, cancel) -> dict[str, tuple]:
    """Quality of every variant against the cached reference: label -> (QualityResult | None, note).

    With quality_workers > 1, variants are scored concurrently, each engine on threads // workers threads
    (llama.cpp releases the GIL): on small models two single-thread workers beat one two-thread decode,
    whose spinning thread barriers suffer badly when the CPU is shared.
    """
    from concurrent.futures import ThreadPoolExecutor

    todo = [v for v in variants if not v.is_reference]
    out: dict[str, tuple] = {v.label: (ref_logits.quality(), v.note) for v in variants if v.is_reference}
    workers = max(1, min(settings.quality_workers, len(todo)))
    per_engine = max(1, threads // workers)
    total = max(1, len(todo) * len(chunks))
    done = [0]
    lock = threading.Lock()

    def score(variant: Variant) -> tuple:
        engine = _open_engine(variant, per_engine, guard, settings.window)

        def tick(fraction: float, message: str) -> None:
            with lock:
                done[0] += 1
                progress(done[0] / total, f"{variant.label}: quality {message}")

        try:
            return quality.score_variant(engine, chunks, ref_logits, progress=tick, cancel=cancel), variant.note
        except EngineUnavailable as err:
            return None, (variant.note + "; " if variant.note else "") + str(err)
        finally:
            engine.unload()

    if workers == 1:
        for v in todo:
            out[v.label] = score(v)
        return out
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quality") as pool:
        futures = {v.label: pool.submit(score, v) for v in todo}
        try:
            for label, future in futures.items():
                out[label] = future.result()
        except BaseException:
            if cancel is not None:
                cancel.set()  # stop the other workers at their next chunk
            raise
    return out


def _measure(engine, variant, config, settings, stages, base, share, cancel, timings):
    """(pp SpeedResult, tg SpeedResult, answer text, answer stats), the variant alone on the CPU."""
    from bench.speed.runner import plan_tests, run_speed

    pp = tg = None
    if settings.speed:
        t0 = time.perf_counter()
        tests = plan_tests([settings.n_prompt], [settings.n_gen])
        pp, tg = run_speed(
            engine,
            tests,
            config=config,
            repetitions=settings.repetitions,
            seed=settings.seed,
            cancel=cancel,
            progress=lambda f, m: _sub(stages, base, share, 0.0, 0.8, f, f"{variant.label}: speed {m}"),
        )
        timings["speed"] += time.perf_counter() - t0
    if not settings.answers:
        return pp, tg, "", None
    t0 = time.perf_counter()
    _sub(stages, base, share, 0.8, 1.0, 0.0, f"{variant.label}: answering")
    text, stats = engine.generate(
        settings.prompt, GenerationParams(max_tokens=settings.max_tokens, temperature=0.0, seed=settings.seed), cancel
    )
    if stats.stop_reason == "cancelled":
        raise Cancelled("comparison cancelled by the user; nothing was stored")
    timings["answers"] += time.perf_counter() - t0
    return pp, tg, text, stats


def _sub(stages: _Stages, base: float, share: float, lo: float, hi: float, fraction: float, message: str) -> None:
    if stages.progress:
        stages.progress(min(1.0, base + share * (lo + (hi - lo) * fraction)), message)


def _nan() -> float:
    return float("nan")


def _row(
    model,
    variant: Variant,
    reference: Variant | None,
    reference_note,
    info,
    settings,
    chunks,
    result,
    note,
    pp,
    tg,
    answer,
    stats,
) -> QuantRow:
    size = variant.model_size or int(info.model_size_bytes or 0)
    n_params = variant.n_params or int(info.n_params or 0)
    bpw = variant.bpw if variant.bpw is not None else (size * 8 / n_params if size and n_params else _nan())
    q = dataclasses.asdict(result) if result is not None else {}
    ref_label = f"{reference.label} — {reference_note}" if reference is not None else reference_note
    target = ""
    if variant.label == TARGET_TYPE and result is not None:
        target = "pass" if result.delta_ppl_pct < TARGET_LIMIT_PCT else "fail"
    peak = max([s.peak_rss_bytes for s in (pp, tg, stats) if s is not None] + [0])
    answer_ttft_ms = stats.ttft_s * 1e3 if stats is not None else _nan()
    return QuantRow(
        model=model,
        variant=variant.label,
        engine=variant.engine,
        model_name=variant.model,
        nominal_type=variant.nominal_type or info.file_type,
        model_size=size,
        n_params=n_params,
        bpw=bpw,
        tensor_types=variant.tensor_types,
        main_type=variant.main_type,
        k_fallback=variant.k_fallback,
        is_reference=variant is reference,
        reference=ref_label,
        ppl=q.get("ppl", _nan()),
        ppl_ref=q.get("ppl_ref", _nan()),
        ppl_ratio=q.get("ppl_ratio", _nan()),
        delta_ppl=q.get("delta_ppl", _nan()),
        delta_ppl_pct=q.get("delta_ppl_pct", _nan()),
        kld_mean=q.get("kld_mean", _nan()),
        kld_median=q.get("kld_median", _nan()),
        kld_p99=q.get("kld_p99", _nan()),
        kld_max=q.get("kld_max", _nan()),
        same_top1_pct=q.get("same_top1_pct", _nan()),
        mean_dp_pct=q.get("mean_dp_pct", _nan()),
        rms_dp_pct=q.get("rms_dp_pct", _nan()),
        n_chunks=len(chunks) if result is not None else 0,
        n_eval_tokens=len(chunks) * settings.window if result is not None else 0,
        n_scored=q.get("n_positions", 0),
        pp_test=pp.test if pp else "",
        pp_avg_ts=pp.avg_ts if pp else _nan(),
        pp_stddev_ts=pp.stddev_ts if pp else _nan(),
        tg_test=tg.test if tg else "",
        tg_avg_ts=tg.avg_ts if tg else _nan(),
        tg_stddev_ts=tg.stddev_ts if tg else _nan(),
        # the llama-bench method measures no TTFT (NaN): the streamed answer gives it
        ttft_ms=pp.avg_ttft_ms if pp and pp.avg_ttft_ms == pp.avg_ttft_ms else answer_ttft_ms,
        peak_rss_bytes=int(peak),
        repetitions=settings.repetitions if pp else 0,
        answer=answer,
        answer_mode="chat" if info.chat_template else "plain completion",
        answer_tokens=stats.gen_tokens if stats is not None else 0,
        adr006_target=target,
        note=note,
        quality_method=QUALITY_METHOD.format(n_ctx=settings.window, scored=quality.n_scored(settings.window))
        if result is not None
        else "not measured",
        speed_method=pp.method if pp else "not measured",
        test_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def compare_and_store(
    store,
    model: str,
    settings: QuantSettings,
    *,
    hardware: dict,
    pool=None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> QuantReport:
    """compare(), then save the rows as a 'quant' run; a failed or cancelled run is stored with its status."""
    record = {"model": model, **dataclasses.asdict(settings)}
    record.pop("eval_text", None)
    with store.recording("quant", record, hardware) as run:
        report = compare(model, settings, pool=pool, progress=progress, cancel=cancel)
        run.rows = report.rows
        run.settings.update(
            timings_s=report.timings_s, reference=report.reference_note, reference_origin=report.reference_origin
        )
    return dataclasses.replace(report, run_id=run.run_id)
