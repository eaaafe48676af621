"""LOCALBENCH_MODELS searched recursively, on the real bundled GGUFs and our HF and MLX conversions."""

from __future__ import annotations

import os

import pytest

from models import catalog
from models.stores import folder
from tests.engines.converted import hf_ref, mlx_refs  # noqa: F401  (session fixtures)
from tests.models.stores.fixtures import link_folder, models_folder, place


@pytest.fixture(scope="module")
def root(tmp_path_factory, hf_ref, mlx_refs):  # noqa: F811
    folders = {"hf/SmolLM2-135M-Instruct": hf_ref.path, "mlx/smollm2-4bit": mlx_refs["mlx-4bit"].path}
    return models_folder(tmp_path_factory.mktemp("models"), folders)


def by_name(entries):
    return {e.name: e for e in entries}


def test_names_formats_and_families(root):
    found = by_name(folder.scan(root))
    assert set(found) == {
        "SmolLM2-135M-Instruct.Q4_1",
        "google/gemma/gemma-3-270m-Q4_K_M",
        "hf/SmolLM2-135M-Instruct",
        "mlx/smollm2-4bit",
    }
    assert found["hf/SmolLM2-135M-Instruct"].format == "hf" and found["mlx/smollm2-4bit"].format == "mlx"
    families = {e.family for n, e in found.items() if "gemma" not in n}
    assert families == {"smollm2-135m-instruct"}
    assert all(e.runnable and e.source == "LOCALBENCH_MODELS" for e in found.values())


def test_env_var_and_catalog_name(root, monkeypatch):
    monkeypatch.setenv("LOCALBENCH_MODELS", str(root))
    assert "SmolLM2-135M-Instruct.Q4_1" in by_name(folder.scan())
    monkeypatch.delenv("LOCALBENCH_MODELS")
    assert folder.scan() == []


def test_does_not_descend_into_models_or_loop(tmp_path, hf_ref):  # noqa: F811
    model = link_folder(hf_ref.path, tmp_path / "m" / "model")
    place(catalog.smollm2_path(), model / "inside.gguf")  # inside a model folder: not its own model
    os.symlink(tmp_path / "m", tmp_path / "m" / "loop")  # a link back up
    found = by_name(folder.scan(tmp_path / "m"))
    assert list(found) == ["model"]


def test_broken_entries(tmp_path):
    root = tmp_path / "models"
    place(catalog.smollm2_path(), root / "ok.gguf")
    (root / "fake.gguf").write_text("not a model")
    with open(catalog.gemma3_path(), "rb") as src:
        (root / "sub" / "cut.gguf").parent.mkdir(parents=True)
        (root / "sub" / "cut.gguf").write_bytes(src.read(8_000_000))
        (root / "sub" / "late.gguf.incomplete").write_bytes(src.read(100))
    (root / "bad-config").mkdir()
    (root / "bad-config" / "config.json").write_text("[1, 2")
    blocked = root / "blocked"
    blocked.mkdir()
    place(catalog.smollm2_path(), blocked / "hidden.gguf")
    blocked.chmod(0)
    try:
        found = by_name(folder.scan(root))
    finally:
        blocked.chmod(0o755)
    assert found["ok"].runnable
    assert "not a GGUF" in found["fake"].problem
    assert "truncated" in found["sub/cut"].problem
    assert "download incomplete" in found["sub/late"].problem
    assert "unreadable model folder" in found["bad-config"].problem
    if os.geteuid() == 0:  # chmod 000 denies nothing to root: the file inside is read as usual
        assert found["blocked/hidden"].runnable
    else:
        assert "unreadable folder" in found["blocked"].problem
