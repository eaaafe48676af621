"""Quality metrics: the formulas on hand-computed distributions, the chunking rules of llama-perplexity,
the reference cache's precision and atomicity, and llama.cpp's Engine.logits on the bundled model."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from bench.quant import quality as q
from core.errors import BadParameter, Cancelled


def test_log_softmax_gives_the_hand_computed_distribution():
    logits = np.log(np.array([[1.0, 2.0, 3.0, 4.0]])) + 7.5  # any shift gives the same distribution
    np.testing.assert_allclose(np.exp(q.log_softmax(logits)), [[0.1, 0.2, 0.3, 0.4]], rtol=1e-6)
    huge = np.array([[1000.0, 1000.0]])  # stable where a naive exp overflows
    np.testing.assert_allclose(np.exp(q.log_softmax(huge)), [[0.5, 0.5]], rtol=1e-6)


def test_kl_divergence_hand_computed():
    p = np.log(np.array([[0.5, 0.5], [0.1, 0.9]], dtype=np.float32))
    v = np.log(np.array([[0.25, 0.75], [0.1, 0.9]], dtype=np.float32))
    kld = q.kl_divergence(p, v)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # 0.1438410...
    assert kld[0] == pytest.approx(expected, abs=1e-6)
    assert kld[1] == pytest.approx(0.0, abs=1e-7)  # identical distributions


def test_position_stats_and_summary_hand_computed():
    ref_logp = np.log(np.array([[0.3, 0.5, 0.2, 0.0 + 1e-30], [0.25, 0.25, 0.25, 0.25]], dtype=np.float64))
    ref = q.position_stats(ref_logp.astype(np.float32), np.array([1, 3]))
    assert ref.nll == pytest.approx([math.log(2), math.log(4)], rel=1e-6)
    assert list(ref.top1) == [1, 0]
    var = q.PositionStats(
        nll=np.array([math.log(4), math.log(4)]), top1=np.array([1, 2]), p_target=np.array([0.25, 0.25])
    )
    r = q.summarize_quality(np.array([0.1, 0.3]), var, ref, n_chunks=1, n_ctx=512)
    assert r.ppl_ref == pytest.approx(math.sqrt(8))  # exp((ln 2 + ln 4) / 2)
    assert r.ppl == pytest.approx(4.0)
    assert r.ppl_ratio == pytest.approx(4 / math.sqrt(8))
    assert r.delta_ppl == pytest.approx(4 - math.sqrt(8))
    assert r.delta_ppl_pct == pytest.approx((4 / math.sqrt(8) - 1) * 100)
    assert (r.kld_mean, r.kld_median, r.kld_max) == pytest.approx((0.2, 0.2, 0.3))
    assert r.kld_p99 == pytest.approx(0.1 + 0.99 * 0.2)  # linear interpolation between the two
    assert r.same_top1_pct == pytest.approx(50.0)
    assert r.mean_dp_pct == pytest.approx(-12.5)  # (0.25-0.5, 0.25-0.25) in points
    assert r.rms_dp_pct == pytest.approx(math.sqrt((25.0**2 + 0) / 2))
    assert r.n_positions == 2


def test_chunks_follow_llama_perplexity():
    ids = list(range(100, 100 + 1300))
    chunks = q.eval_chunks(ids, n_ctx=512, bos=1)
    assert len(chunks) == 2  # the 276-token tail is dropped
    assert chunks[0][0] == 1 and chunks[1][0] == 1 and chunks[1][1:] == ids[513:1024]
    assert q.first_scored(512) == 256 and q.n_scored(512) == 255
    assert len(q.eval_chunks(ids, max_chunks=1)) == 1
    assert q.eval_chunks(ids, bos=None)[0][0] == 100


def test_text_shorter_than_one_chunk_is_refused():
    with pytest.raises(BadParameter, match="at least one chunk of 512"):
        q.eval_chunks(list(range(300)))


def test_bundled_eval_text_is_long_enough(smollm2_ref):
    ids, bos = q.tokenize_with_gguf(smollm2_ref.path, q.default_eval_text())
    assert len(ids) >= 4096 and bos is None  # SmolLM2 adds no BOS
    assert len(q.eval_chunks(ids)) >= 8


class _FixedLogits:
    """Replays given logits per chunk (a fake for what the cache stores, not for an engine's speed)."""

    name = "fixed"

    def __init__(self, table: dict[int, np.ndarray]) -> None:
        self.table = table

    def logits(self, tokens, cancel=None):
        return self.table[tokens[0]]


def _fake_chunks(n_chunks: int, vocab: int, seed: int):
    rng = np.random.default_rng(seed)
    chunks = [[c] + list(rng.integers(0, vocab, 511)) for c in range(n_chunks)]
    ref = {c: (rng.standard_normal((512, vocab)) * 3).astype(np.float32) for c in range(n_chunks)}
    return chunks, ref


def test_reference_cache_is_precise_and_reused(tmp_path):
    vocab = 3000
    chunks, ref_table = _fake_chunks(2, vocab, seed=1)
    rng = np.random.default_rng(2)
    var_table = {c: v + (rng.standard_normal(v.shape) * 0.3).astype(np.float32) for c, v in ref_table.items()}
    key_file = tmp_path / "ref.gguf"
    key_file.write_bytes(b"GGUF-test")
    ref = q.reference_logits(_FixedLogits(ref_table), key_file, chunks)
    assert ref.logp16.dtype == np.float16 and ref.logp16.shape == (2, 255, vocab)
    # exact KLD in float64 from the raw logits
    exact = []
    for c in range(2):
        lr = ref_table[c][256:511].astype(np.float64)
        lv = var_table[c][256:511].astype(np.float64)
        lr -= np.log(np.exp(lr - lr.max(1, keepdims=True)).sum(1, keepdims=True)) + lr.max(1, keepdims=True)
        lv -= np.log(np.exp(lv - lv.max(1, keepdims=True)).sum(1, keepdims=True)) + lv.max(1, keepdims=True)
        exact.append((np.exp(lr) * (lr - lv)).sum(1))
    exact = np.concatenate(exact)
    result = q.score_variant(_FixedLogits(var_table), chunks, ref)
    assert result.kld_mean == pytest.approx(exact.mean(), rel=2e-3)
    assert result.kld_max == pytest.approx(exact.max(), rel=2e-3)
    same = q.score_variant(_FixedLogits(ref_table), chunks, ref)
    assert same.kld_mean < 1e-4 and same.same_top1_pct == 100.0 and same.ppl == pytest.approx(same.ppl_ref)
    # the second call reads the cache: the engine is not asked again
    again = q.reference_logits(_FixedLogits({}), key_file, chunks)
    assert again.folder == ref.folder


def test_cancelled_reference_pass_leaves_no_cache(tmp_path):
    chunks, table = _fake_chunks(3, 500, seed=3)
    key_file = tmp_path / "ref2.gguf"
    key_file.write_bytes(b"GGUF-test-2")
    cancel = threading.Event()

    def progress(fraction, message):
        if "chunk 1/" in message:
            cancel.set()

    with pytest.raises(Cancelled):
        q.reference_logits(_FixedLogits(table), key_file, chunks, progress=progress, cancel=cancel)
    from core.paths import cache_dir

    root = cache_dir("reference-logits")
    assert not (root / q.reference_key(key_file, chunks, 512)).exists()
    assert not [p for p in root.iterdir() if ".partial-" in p.name]


def test_reference_cache_refuses_when_disk_is_full(tmp_path, monkeypatch):
    import shutil

    from core.errors import InsufficientDiskSpace

    chunks, table = _fake_chunks(1, 400, seed=4)
    key_file = tmp_path / "ref3.gguf"
    key_file.write_bytes(b"GGUF-test-3")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 10**6))
    with pytest.raises(InsufficientDiskSpace, match="not enough disk space for the reference logits cache"):
        q.reference_logits(_FixedLogits(table), key_file, chunks)


def test_llamacpp_logits_match_its_greedy_generation(llama_engine):
    from engines.base import GenerationParams

    tokens = llama_engine.tokenize("The capital of France is Paris. The capital of Italy is")
    logits = llama_engine.logits(tokens)
    assert logits.dtype == np.float32 and logits.shape == (len(tokens), 49152)
    text, _ = llama_engine.generate(tokens, GenerationParams(max_tokens=1))
    assert llama_engine._llm.detokenize([int(logits[-1].argmax())]).decode() == text
    # the streaming path still works afterwards, and logits are deterministic
    assert np.array_equal(llama_engine.logits(tokens), logits)
    # row i predicts token i+1: a prefix gives the same rows
    np.testing.assert_allclose(llama_engine.logits(tokens[:5]), logits[:5], atol=1e-3)


def test_reference_pass_shared_between_engines_matches_one_engine(tmp_path):
    chunks, table = _fake_chunks(5, 700, seed=5)
    one_file, two_file = tmp_path / "one.gguf", tmp_path / "two.gguf"
    one_file.write_bytes(b"GGUF-one")
    two_file.write_bytes(b"GGUF-two")
    single = q.reference_logits(_FixedLogits(table), one_file, chunks)
    shared = q.reference_logits([_FixedLogits(table), _FixedLogits(table)], two_file, chunks)
    assert np.array_equal(np.asarray(single.logp16), np.asarray(shared.logp16))
    assert np.array_equal(single.stats.nll, shared.stats.nll) and np.array_equal(single.top_idx, shared.top_idx)
    assert q.reference_cached(two_file, chunks)
