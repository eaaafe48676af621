"""The embeddings runner: corpus, metric math on hand-made vectors, planning and bad input, real sweeps
on CPU with the bundled all-MiniLM-L6-v2 (tiny: 48 texts, batch sizes 8 and 32), storing, cancel, CLI."""

from __future__ import annotations

import io
import math
import threading

import numpy as np
import pandas as pd
import pytest

from bench.embed.corpus import corpus_digest, load_corpus_file, make_corpus
from bench.embed.runner import (
    STORE_KIND,
    EmbedPlan,
    agreement,
    batch_order,
    cosine_rows,
    parse_batch_sizes,
    plan_embed_sweep,
    run_and_store,
    run_embed,
    split_batches,
    summary_frame,
    sweep_notes,
    throughput,
)
from bench.results.export import to_frame
from bench.results.store import ResultStore
from core.errors import BadParameter, Cancelled, EngineUnavailable, ModelNotFound
from engines.embeddings import BUNDLED_EMBED_MODEL
from machine.devices import torch_present_devices
from tests.conftest import run_app

N_TEXTS = 24


# --- corpus -----------------------------------------------------------------------------------------


def test_corpus_is_deterministic_and_varied():
    texts = make_corpus()
    assert len(texts) == 2000 and texts == make_corpus()
    assert corpus_digest(texts) == "bf4986147965282b"  # same texts on every machine
    words = np.array([len(t.split()) for t in texts])
    assert words.min() < 10 and np.median(words) < 25 and words.max() > 300  # short, medium, long
    assert make_corpus(48) == texts[:48]  # a smaller corpus is a prefix of the full one


def test_empty_corpus_is_refused(tmp_path):
    with pytest.raises(BadParameter, match="the corpus is empty"):
        make_corpus(0)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n")
    with pytest.raises(BadParameter, match="the corpus is empty"):
        load_corpus_file(empty)
    with pytest.raises(BadParameter, match="does not exist"):
        load_corpus_file(tmp_path / "missing.txt")
    plan = EmbedPlan(BUNDLED_EMBED_MODEL, (8,), (), (), None)
    with pytest.raises(BadParameter, match="the corpus is empty"):
        run_embed(plan, [])
    good = tmp_path / "mine.txt"
    good.write_text("first text\n\nsecond text\n")
    assert load_corpus_file(good) == ["first text", "second text"]


# --- metric math --------------------------------------------------------------------------------------


def test_cosine_agreement_on_hand_made_vectors():
    ref = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [1.0, 1.0], [0.0, 0.0]])
    other = np.array([[2.0, 0.0], [1.0, 0.0], [-3.0, -4.0], [1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(cosine_rows(other, ref), [1.0, 0.0, -1.0, math.sqrt(0.5), 1.0])
    mean, low = agreement(other, ref)
    assert mean == pytest.approx((1.0 + 0.0 - 1.0 + math.sqrt(0.5) + 1.0) / 5) and low == pytest.approx(-1.0)
    assert cosine_rows(np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]]))[0] == 0.0
    assert all(math.isnan(x) for x in agreement(other, None))
    with pytest.raises(BadParameter, match="shapes"):
        cosine_rows(other, ref[:2])


def test_throughput_batches_and_order():
    assert throughput(100, [0.5, 0.25, 0.25]) == 100.0
    assert throughput(10, []) == 0.0
    texts = ["aa", "a", "aaaa", "aaa", "aaaaa"]
    order = batch_order(texts, sort_by_length=True)
    assert [texts[i] for i in order] == ["aaaaa", "aaaa", "aaa", "aa", "a"]
    assert list(batch_order(texts, sort_by_length=False)) == [0, 1, 2, 3, 4]
    assert [list(b) for b in split_batches(np.arange(5), 2)] == [[0, 1], [2, 3], [4]]


def test_peak_rss_sees_a_freed_allocation():
    from bench.embed.runner import PeakRss
    from engines.base import current_rss_bytes

    before = current_rss_bytes()
    with PeakRss() as rss:
        block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched, then freed before the block ends
        del block
    assert rss.peak_bytes >= before + 150 * 2**20 and rss.source
    assert current_rss_bytes() < rss.peak_bytes


@pytest.mark.parametrize("bad", ["0", "-8", "abc", "1.5", ""])
def test_bad_batch_sizes(bad):
    with pytest.raises(BadParameter, match="batch size"):
        parse_batch_sizes([bad] if bad else [])


def test_batch_sizes_sorted_unique():
    assert parse_batch_sizes(["32", 8, " 8 ", "1"]) == (1, 8, 32)


# --- planning -----------------------------------------------------------------------------------------


def test_plan_refuses_bad_input():
    with pytest.raises(ModelNotFound, match="unknown embedding model"):
        plan_embed_sweep("/no/such/model", [8])
    with pytest.raises(BadParameter, match="positive whole number"):
        plan_embed_sweep(BUNDLED_EMBED_MODEL, [0])
    with pytest.raises(BadParameter, match="unknown precision 'fp64'"):
        plan_embed_sweep(BUNDLED_EMBED_MODEL, [8], ["cpu"], ["fp64"])
    with pytest.raises(EngineUnavailable, match="nothing can run: onnx fp16"):
        plan_embed_sweep(BUNDLED_EMBED_MODEL, [8], ["cpu"], ["fp16"], ["onnx"])
    absent = next((d for d in ("cuda", "mps") if d not in torch_present_devices()), None)
    if absent:
        with pytest.raises(EngineUnavailable, match="not present on this machine"):
            plan_embed_sweep(BUNDLED_EMBED_MODEL, [8], ["cpu", absent])


def test_plan_skips_what_cannot_run_and_puts_the_reference_first():
    plan = plan_embed_sweep(BUNDLED_EMBED_MODEL, ["32", "8"], ["cpu"], ["bf16", "fp32"], ["onnx", "torch"])
    assert plan.batch_sizes == (8, 32)
    assert plan.configs[0] == plan.reference
    assert [(c.backend, c.precision) for c in plan.configs] == [("torch", "fp32"), ("onnx", "fp32"), ("torch", "bf16")]
    assert len(plan.skipped) == 1 and "onnx bf16" in plan.skipped[0]


# --- real sweeps on CPU ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def texts():
    return make_corpus(2 * N_TEXTS)[N_TEXTS:]  # 24 texts, one of them over 256 tokens


@pytest.fixture(scope="module")
def expected_tokens(texts):
    from transformers import AutoTokenizer

    from engines.embeddings import bundled_model_path

    lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(str(bundled_model_path()))(texts)["input_ids"]]
    return sum(min(n, 256) for n in lengths), sum(n > 256 for n in lengths)


@pytest.fixture(scope="module")
def sweep(texts):
    plan = plan_embed_sweep(BUNDLED_EMBED_MODEL, [8, 32], ["cpu"], ["fp32", "bf16"], ["torch"])
    messages = []
    results = run_embed(plan, texts, corpus_name="slice-24", progress=lambda f, m: messages.append((f, m)))
    return plan, results, messages


def test_real_sweep_metrics(sweep, expected_tokens):
    plan, results, messages = sweep
    n_tokens, n_truncated = expected_tokens
    assert n_truncated >= 1  # the corpus has long texts
    assert [(r.precision, r.batch_size) for r in results] == [("fp32", 8), ("fp32", 32), ("bf16", 8), ("bf16", 32)]
    for r in results:
        assert r.n_texts == N_TEXTS and r.n_batches == math.ceil(N_TEXTS / r.batch_size) == len(r.samples_batch_ms)
        assert r.n_tokens == n_tokens and r.truncated_texts == n_truncated
        assert r.sentences_per_s == pytest.approx(N_TEXTS / r.total_s)
        assert r.tokens_per_s == pytest.approx(n_tokens / r.total_s)
        assert r.total_s * 1e3 == pytest.approx(sum(r.samples_batch_ms), rel=1e-3)
        assert 0 < r.p50_batch_ms <= r.p95_batch_ms <= max(r.samples_batch_ms) + 1e-3  # samples kept to 0.1 µs
        assert r.embedding_dim == 384 and r.max_seq_length == 256 and r.peak_rss_bytes > 100e6
        assert r.peak_device_bytes is None and r.reference == "torch cpu fp32"
        assert r.corpus.startswith("slice-24:") and r.load_s > 0 and "torch" in r.versions
    fp32 = [r for r in results if r.precision == "fp32"]
    bf16 = [r for r in results if r.precision == "bf16"]
    assert all(r.cosine_min_vs_ref > 0.99999 for r in fp32)  # the reference against itself (other padding)
    assert all(0.98 < r.cosine_min_vs_ref <= r.cosine_mean_vs_ref < 1.0 for r in bf16)
    assert messages[-1] == (1.0, "done") and all(0 <= f <= 1 for f, _ in messages)
    notes = sweep_notes(plan, results)
    assert f"{n_truncated} of {N_TEXTS} texts are longer than the model's 256-token" in notes[0]
    table = summary_frame(to_frame(results))
    assert list(table["batch_size"]) == [8, 32, 8, 32] and "sentences_per_s" in table


def test_reference_pass_when_fp32_cpu_is_not_in_the_sweep(texts):
    plan = plan_embed_sweep(BUNDLED_EMBED_MODEL, [16], ["cpu"], ["bf16"])
    messages = []
    (result,) = run_embed(plan, texts[:16], warmup="pass", progress=lambda f, m: messages.append(m))
    assert any(m.startswith("reference") for m in messages)
    assert any("warm-up pass" in m for m in messages)
    assert 0.98 < result.cosine_min_vs_ref < 1.0 and result.warmup == "pass" and "untimed pass" in result.method


def test_local_folder_with_fp16_weights_runs_on_torch_and_onnx(tmp_path, texts):
    import shutil

    from safetensors.torch import load_file, save_file

    from engines.embeddings import bundled_model_path

    src = bundled_model_path()
    folder = tmp_path / "my-minilm-fp16"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    weights = load_file(str(src / "model.safetensors"))
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
    save_file(half, str(folder / "model.safetensors"), metadata={"format": "pt"})
    plan = plan_embed_sweep(str(folder), [4], ["cpu"], ["fp32"], ["onnx", "torch"])
    results = run_embed(plan, texts[:4], warmup="none")
    assert [r.backend for r in results] == ["torch", "onnx"]  # the fp32 CPU torch reference first
    assert all(r.model == "my-minilm-fp16" and r.model_path == str(folder.resolve()) for r in results)
    assert results[1].cosine_min_vs_ref > 0.99999 and results[0].model_size < 50e6


def test_store_and_cancel(texts, localbench_home, hardware):
    store = ResultStore(localbench_home / "embed-test.db")
    plan = plan_embed_sweep(BUNDLED_EMBED_MODEL, [8], ["cpu"])
    results, run_id = run_and_store(store, plan, texts[:8], hardware=hardware, warmup="none")
    rows = store.rows(STORE_KIND, run_id)
    assert len(rows) == 1 and rows[0]["sentences_per_s"] == pytest.approx(results[0].sentences_per_s)
    cancel = threading.Event()

    def progress(fraction, message):
        if "batch size" in message:
            cancel.set()  # the user presses Cancel while batches run

    with pytest.raises(Cancelled):
        run_and_store(store, plan, texts, hardware=hardware, progress=progress, cancel=cancel)
    latest = store.runs(STORE_KIND)[0]
    assert latest["status"] == "cancelled" and latest["n_rows"] == 0
    assert store.runs(STORE_KIND)[1]["status"] == "ok"  # the earlier result is kept


def test_ollama_model_runs_as_one_server_configuration(smollm2_ref, texts):
    from tests.fake_ollama import FakeOllama

    server = FakeOllama(smollm2_ref.path)
    try:
        plan = plan_embed_sweep("ollama:smollm2:135m", [4], ["cpu"], ["bf16"], host=server.start())
        assert plan.reference is None and [c.backend for c in plan.configs] == ["ollama"]
        (result,) = run_embed(plan, texts[:8], warmup="none")
    finally:
        server.stop()
    assert (result.backend, result.device, result.embedding_dim, result.n_batches) == ("ollama", "server", 576, 2)
    assert result.truncated_texts is None and math.isnan(result.cosine_mean_vs_ref) and result.n_tokens > 8
    assert "Ollama truncates long texts silently" in sweep_notes(plan, [result])[0]


# --- CLI --------------------------------------------------------------------------------------------------


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """`python app.py ARGS` in this process (the model libraries are already imported here)."""
    from app import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_embed_bench_csv(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join([*make_corpus(11), "The river carried the wooden map. " * 40]))
    code, out, err = _cli(
        capsys,
        "embed-bench",
        "--model",
        "all-minilm-l6-v2",
        "--batch-sizes",
        "4,16",
        "--devices",
        "cpu",
        "--corpus",
        str(corpus),
        "-o",
        "csv",
    )
    assert code == 0, err
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame["batch_size"]) == [4, 16] and (frame["sentences_per_s"] > 0).all()
    assert (frame["n_texts"] == 12).all() and (frame["truncated_texts"] == 1).all()
    assert (frame["embedding_dim"] == 384).all() and (frame["cosine_mean_vs_ref"] > 0.99999).all()
    assert "1 of 12 texts are longer than the model's 256-token maximum" in err
    assert frame["corpus"].str.startswith("corpus.txt:").all() and (frame["warmup"] == "batch").all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-sizes=-4,8"], "batch size must be a positive whole number"),
        (["--model", "/no/such/model"], "unknown embedding model"),
        (["--sentences", "0"], "the corpus is empty"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(capsys, args, message):
    code, _, err = _cli(capsys, "embed-bench", *args)
    assert code == 2 and err.strip().count("\n") == 0 and message in err


def test_cli_bad_input_as_a_real_process():
    done = run_app("embed-bench", "--batch-sizes", "0")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: batch size must be a positive whole number, got '0' — use e.g. 1,8,32,128,512"


def test_cli_absent_device_exits_2(capsys):
    absent = next((d for d in ("cuda", "mps") if d not in torch_present_devices()), None)
    if absent is None:
        pytest.skip("every device is present here")
    code, _, err = _cli(capsys, "embed-bench", "--devices", absent, "--sentences", "8")
    assert code == 2 and f"device '{absent}' is not present" in err
