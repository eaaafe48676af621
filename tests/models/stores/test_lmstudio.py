"""LM Studio's models folder in its publisher/repo layout, from the real bundled GGUFs and our MLX
conversion: names, the projector skipped, the settings' downloadsFolder, and the broken cases."""

from __future__ import annotations

import json

import pytest

from models import catalog
from models.stores import lmstudio
from tests.engines.converted import hf_ref, mlx_refs  # noqa: F401  (session fixtures)
from tests.models.stores.fixtures import lmstudio_folder, place


@pytest.fixture(scope="module")
def models(tmp_path_factory, mlx_refs):  # noqa: F811
    root = tmp_path_factory.mktemp("lmstudio-home") / ".lmstudio" / "models"
    return lmstudio_folder(root, mlx_folder=mlx_refs["mlx-4bit"].path)


def by_name(entries):
    return {e.name: e for e in entries}


def test_names_formats_and_families(models):
    found = by_name(lmstudio.scan([models]))
    assert set(found) == {
        "lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF:Q4_1",
        "lmstudio:lmstudio-community/gemma-3-270m-GGUF:Q4_K_M",
        "lmstudio:mlx-community/SmolLM2-135M-Instruct-4bit",
    }  # the mmproj-*.gguf projector beside SmolLM2 is not a model
    gguf = found["lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF:Q4_1"]
    mlx = found["lmstudio:mlx-community/SmolLM2-135M-Instruct-4bit"]
    assert (gguf.format, gguf.quant, gguf.source, gguf.runnable) == ("gguf", "Q4_1", "lmstudio", True)
    assert (mlx.format, mlx.quant, mlx.n_params, mlx.chat, mlx.runnable) == (
        "mlx",
        "MLX 4-bit",
        134_515_008,
        True,
        True,
    )
    assert gguf.family == mlx.family == "smollm2-135m-instruct"
    assert found["lmstudio:lmstudio-community/gemma-3-270m-GGUF:Q4_K_M"].family == "gemma-3-270m"


def test_roots_from_home_and_settings(tmp_path, monkeypatch, models):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert lmstudio.default_roots() == []
    (tmp_path / ".lmstudio").mkdir()
    elsewhere = tmp_path / "big-disk" / "llms"
    elsewhere.mkdir(parents=True)
    (tmp_path / ".lmstudio" / "settings.json").write_text(json.dumps({"downloadsFolder": str(elsewhere)}))
    old = tmp_path / ".cache" / "lm-studio" / "models"
    old.mkdir(parents=True)
    assert lmstudio.default_roots() == [elsewhere, old]
    place(catalog.smollm2_path(), elsewhere / "me" / "smol" / "smol-Q4_1.gguf")
    assert [e.name for e in lmstudio.scan()] == ["lmstudio:me/smol:Q4_1"]
    # a moved data folder: ~/.lmstudio-home-pointer names it
    moved = tmp_path / "lmstudio-data"
    (moved / "models").mkdir(parents=True)
    (tmp_path / ".lmstudio-home-pointer").write_text(str(moved))
    assert lmstudio.home() == moved and lmstudio.default_roots()[0] == moved / "models"


def test_broken_files_are_listed(tmp_path, mlx_refs):  # noqa: F811
    root = lmstudio_folder(tmp_path / "models")
    repo = root / "someone" / "Broken-GGUF"
    repo.mkdir(parents=True)
    (repo / "Broken-Q4_K_M.gguf").write_text("<html>404</html>")
    with open(catalog.smollm2_path(), "rb") as src:
        (repo / "Broken-Q8_0.gguf").write_bytes(src.read(5_000_000))
        (repo / "Broken-Q6_K.gguf.part").write_bytes(src.read(1_000_000))
    bad_mlx = root / "mlx-community" / "Bad-4bit"
    bad_mlx.mkdir(parents=True)
    (bad_mlx / "config.json").write_text("{not json")
    found = by_name(lmstudio.scan([root]))
    assert "not a GGUF" in found["lmstudio:someone/Broken-GGUF:Q4_K_M"].problem
    assert "truncated" in found["lmstudio:someone/Broken-GGUF:Q8_0"].problem
    assert "download incomplete" in found["lmstudio:someone/Broken-GGUF:Q6_K"].problem
    assert "unreadable model folder" in found["lmstudio:mlx-community/Bad-4bit"].problem
    assert found["lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF:Q4_1"].runnable


def test_split_gguf_is_one_entry(tmp_path):
    """Two shards named as llama.cpp's gguf-split names them (llama_split_path): one entry at the first
    shard, with every shard's bytes and weights; a missing shard is the entry's problem."""
    repo = tmp_path / "models" / "someone" / "Split-GGUF"
    first = place(catalog.smollm2_path(), repo / "Split-Q4_1-00001-of-00002.gguf")
    second = place(catalog.gemma3_path(), repo / "Split-Q4_1-00002-of-00002.gguf")
    (entry,) = lmstudio.scan([tmp_path / "models"])
    assert (entry.name, entry.path, entry.problem) == ("lmstudio:someone/Split-GGUF:Q4_1", str(first), None)
    assert entry.size_bytes == first.stat().st_size + second.stat().st_size
    assert entry.n_params == 134_515_008 + 268_098_176
    second.unlink()
    (entry,) = lmstudio.scan([tmp_path / "models"])
    assert "1 of its 2 shards" in entry.problem
