"""gguf_facts on the real bundled GGUF files, and its refusals of files that are not (whole) GGUFs."""

from __future__ import annotations

import os
import time

import pytest

from core.errors import InvalidModelFile, ModelNotFound
from models import catalog
from models.stores.headers import gguf_facts


def test_smollm2_facts():
    facts = gguf_facts(catalog.smollm2_path())
    assert (facts.arch, facts.basename, facts.size_label, facts.quant) == ("llama", "smollm2", "135M", "Q4_1")
    assert facts.finetune == "8k-lc100k-mix1-ep2"  # what the bundled file really says
    assert facts.n_params == 134_515_008
    assert (facts.n_layers, facts.n_embd, facts.n_head, facts.n_kv_heads, facts.head_dim) == (30, 576, 9, 3, 64)
    assert (facts.context_length, facts.n_vocab, facts.chat) == (8192, 49152, True)
    assert facts.size_bytes == catalog.smollm2_path().stat().st_size


def test_gemma3_facts():
    facts = gguf_facts(catalog.gemma3_path())
    assert (facts.arch, facts.basename, facts.size_label, facts.finetune) == ("gemma3", "gemma-3", "270M", None)
    assert (facts.quant, facts.chat, facts.n_vocab, facts.n_kv_heads, facts.head_dim) == (
        "Q4_K_M",
        False,
        262144,
        1,
        256,
    )
    assert 260e6 < facts.n_params < 280e6


def test_cached_by_path_size_mtime(tmp_path):
    copy = tmp_path / "m.gguf"
    copy.write_bytes(catalog.smollm2_path().read_bytes())
    first = gguf_facts(copy)
    t0 = time.perf_counter()
    assert gguf_facts(copy) is first
    assert time.perf_counter() - t0 < 0.01
    with open(copy, "r+b") as fh:  # the same size, a new mtime: read again
        fh.write(b"XXXX")
    with pytest.raises(InvalidModelFile, match="not a GGUF"):
        gguf_facts(copy)


def test_not_gguf(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>404 Not Found</html>")
    with pytest.raises(InvalidModelFile, match="not a GGUF"):
        gguf_facts(fake)


def test_truncated(tmp_path):
    cut = tmp_path / "cut.gguf"
    with open(catalog.smollm2_path(), "rb") as src:
        cut.write_bytes(src.read(20_000_000))
    with pytest.raises(InvalidModelFile, match="truncated"):
        gguf_facts(cut)


def test_truncated_inside_header(tmp_path):
    cut = tmp_path / "cut.gguf"
    with open(catalog.smollm2_path(), "rb") as src:
        cut.write_bytes(src.read(100_000))  # inside the tokenizer vocabulary
    with pytest.raises(InvalidModelFile, match="not a readable GGUF"):
        gguf_facts(cut)


def test_missing(tmp_path):
    with pytest.raises(ModelNotFound):
        gguf_facts(tmp_path / "nope.gguf")


def test_a_new_process_reads_the_header_cache(tmp_path):
    """flush_cache() stores what was parsed; a fresh process answers from it without parsing (timed by
    the parse counter of models.gguf's cached walk, which stays empty)."""
    import os
    import subprocess
    import sys

    copy = tmp_path / "m.gguf"
    os.link(catalog.smollm2_path(), copy)
    home = tmp_path / "home"
    code = (
        "import sys; from models.stores import headers; from models import gguf;"
        f"f = headers.gguf_facts({str(copy)!r}); headers.flush_cache();"
        "print(f.n_params, gguf._scan_gguf.cache_info().misses)"
    )
    env = {**os.environ, "LOCALBENCH_HOME": str(home)}
    run = [sys.executable, "-c", code]
    first = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.split()
    second = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert first == ["134515008", "1"] and second == ["134515008", "0"]


def test_a_vocabulary_seen_before_is_skipped_only_when_byte_identical(tmp_path):
    """Two files whose vocabularies differ by one byte inside a token (same lengths, same first bytes) both
    read right: the second is walked, not taken for the first."""
    from models import gguf

    src = catalog.smollm2_path()
    data = bytearray(src.read_bytes()[:3_000_000])
    at = data.index(b"tokenizer.ggml.tokens") + 21 + 4 + 4 + 8  # key, type, item type, count
    data[at + 500_000] ^= 0x01  # inside a token's text: every length unchanged
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    os.link(src, a)
    b.write_bytes(bytes(data) + src.read_bytes()[3_000_000:])
    fa, fb = gguf_facts(a), gguf_facts(b)
    assert (fa.n_params, fa.n_vocab, fa.chat) == (fb.n_params, fb.n_vocab, fb.chat) == (134_515_008, 49152, True)
    key = (49152, bytes(data[at : at + 64]))
    digests = set().union(*gguf._WALKED[key].values())
    assert len(digests) >= 2  # the second file's vocabulary was walked, not taken for the first
