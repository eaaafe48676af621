"""models.original on a real HF safetensors folder: the bundled SmolLM2 made into bf16 safetensors by our own
converter (tests.engines.converted.hf_ref; its weights are a dequantized Q4_1, but the code path is a user's
original), turned into an F16 GGUF by llama.cpp's own convert_hf_to_gguf.py, cached by content, and refused or
stopped with one clear line."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from core.errors import Cancelled, InvalidModelFile
from models import original
from tests.engines.converted import hf_ref  # noqa: F401  (session fixture)


def _linked_copy(src: str, dst: Path, config: dict | None = None) -> Path:
    """A folder whose files are symlinks to `src`'s (no weight copy), with an optional replaced config.json."""
    dst.mkdir()
    for p in Path(src).iterdir():
        if p.name != "config.json" or config is None:
            (dst / p.name).symlink_to(p)
    if config is not None:
        (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.fixture(scope="module")
def f16(hf_ref):  # noqa: F811
    return original.to_gguf(hf_ref.path)


def test_the_folder_reads_as_a_bf16_original_with_its_lineage(hf_ref):  # noqa: F811
    found = original.read_original(hf_ref.path)
    assert found.dtype == "BF16" and found.n_params == 134_515_008 and found.chat
    assert found.label.startswith(f"original: BF16 safetensors (folder {Path(hf_ref.path).resolve()}")
    assert found.label.endswith("→ F16 GGUF") and "dequantized by localbench from the Q4_1 GGUF" in found.lineage
    assert original.is_original(hf_ref.path)


def test_llama_cpps_converter_makes_the_f16_gguf(f16, hf_ref):  # noqa: F811
    import gguf

    from models.gguf import read_gguf

    meta = read_gguf(f16.path)
    assert meta.file_type == "F16" and meta.n_params == 134_515_008 and meta.vocab_size == 49152
    reader = gguf.GGUFReader(f16.path)
    # our converter's tokenizer hashes like SmolLM's own: llama.cpp recognises its pre-tokenizer
    assert bytes(reader.fields["tokenizer.ggml.pre"].parts[-1]).decode() == "smollm"
    assert "convert_hf_to_gguf.py" in f16.converter and f16.convert_s > 0  # cached if the lab's test ran first
    assert original.find_converter() is not None  # fetched once, then found offline


def test_a_second_call_reuses_the_cached_gguf_and_a_changed_folder_does_not(f16, hf_ref, tmp_path):  # noqa: F811
    mtime = os.stat(f16.path).st_mtime_ns
    again = original.to_gguf(hf_ref.path)
    assert again.cached and again.path == f16.path and os.stat(f16.path).st_mtime_ns == mtime
    config = json.loads((Path(hf_ref.path) / "config.json").read_text())
    copy = _linked_copy(hf_ref.path, tmp_path / "copy", {**config, "rms_norm_eps": 2e-5})
    key = original.content_key(original.read_original(copy))
    assert key != original.content_key(original.read_original(hf_ref.path))
    assert original.cache_folder(original.read_original(copy)) != Path(f16.path).parent


def test_a_quantized_or_incomplete_folder_is_refused(hf_ref, tmp_path):  # noqa: F811
    config = json.loads((Path(hf_ref.path) / "config.json").read_text())
    mlx_like = _linked_copy(hf_ref.path, tmp_path / "mlx", {**config, "quantization": {"bits": 4}})
    with pytest.raises(InvalidModelFile, match="quantized checkpoint .*not an original"):
        original.read_original(mlx_like)
    assert not original.is_original(str(mlx_like))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidModelFile, match="no config.json"):
        original.read_original(empty)


def test_a_failing_converter_is_one_line_with_its_last_error(hf_ref, tmp_path):  # noqa: F811
    config = json.loads((Path(hf_ref.path) / "config.json").read_text())
    odd = _linked_copy(hf_ref.path, tmp_path / "odd", {**config, "architectures": ["NoSuchModelForCausalLM"]})
    with pytest.raises(InvalidModelFile) as err:
        original.to_gguf(odd)
    message = str(err.value)
    assert message.startswith(f"llama.cpp's convert_hf_to_gguf.py could not convert {odd.resolve()}: ")
    assert "NoSuchModelForCausalLM" in message and "\n" not in message
    assert not list(original.cache_folder(original.read_original(odd)).glob("*.gguf"))


def test_cancel_kills_the_converter_and_keeps_nothing(hf_ref, tmp_path):  # noqa: F811
    folder = _linked_copy(hf_ref.path, tmp_path / "cancelled")
    cancel = threading.Event()
    messages = []

    def progress(fraction, message):
        messages.append(message)
        if message.startswith("mapping tensors"):
            cancel.set()

    with pytest.raises(Cancelled, match="cancelled"):
        original.to_gguf(folder, progress=progress, cancel=cancel)
    home = original.cache_folder(original.read_original(folder))
    assert any(m.startswith("mapping tensors") for m in messages)
    assert list(home.iterdir()) == []  # no F16.gguf, no partial, no manifest
