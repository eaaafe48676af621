"""The HF cache store on a cache that huggingface_hub's own hf_hub_download / snapshot_download wrote from the
loopback hub (tests/hub_server.py): every format with its quant, size, parameters and family, the GGUF file
pick of llama.cpp's -hf, and every broken case listed with its reason (a deleted blob, a download in
progress, an unreadable folder, a non-GGUF '.gguf', a shard the index names but the repo lacks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from models import catalog
from models.gguf import read_gguf
from models.hf_folder import safetensors_elements
from models.stores import hf_cache
from tests.conftest import ROOT
from tests.hub_server import (
    GEMMA_GGUF_FILE,
    GEMMA_GGUF_REPO,
    HF_REPO,
    MISSING_SHARD_REPO,
    MLX_REPO,
    NOT_GGUF_REPO,
    SMOLLM_GGUF_FILE,
    SMOLLM_GGUF_REPO,
    SPLIT_GGUF_FILES,
    SPLIT_GGUF_REPO,
    ST_REPO,
    copy_cache,
    online,
)


def by_name(entries):
    names = [e.name for e in entries]
    assert len(names) == len(set(names)), names
    return {e.name: e for e in entries}


def test_every_format_from_the_library_written_cache(hf_home, hub_repos):
    from huggingface_hub import scan_cache_dir

    root = hf_home / "hub"
    assert {r.repo_id for r in scan_cache_dir(root).repos} >= {SMOLLM_GGUF_REPO, MLX_REPO, ST_REPO}
    found = by_name(hf_cache.scan(root))

    smol = found[f"hf:{SMOLLM_GGUF_REPO}:Q4_1"]
    meta = read_gguf(catalog.smollm2_path())
    assert (smol.source, smol.format, smol.quant, smol.runnable) == ("hf-cache", "gguf", "Q4_1", True)
    assert (smol.n_params, smol.context_length, smol.chat) == (meta.n_params, 8192, True)
    assert smol.size_bytes == catalog.smollm2_path().stat().st_size
    assert smol.sha256 == hub_repos.repos[SMOLLM_GGUF_REPO].files[SMOLLM_GGUF_FILE].sha256  # the LFS blob name
    assert Path(smol.path).name == SMOLLM_GGUF_FILE and Path(smol.path).is_symlink()  # the snapshot link
    assert read_gguf(smol.path).n_params == meta.n_params

    gemma = found[f"hf:{GEMMA_GGUF_REPO}:Q4_K_M"]
    assert (gemma.format, gemma.quant, gemma.chat, gemma.family) == ("gguf", "Q4_K_M", False, "gemma-3-270m")
    assert gemma.size_bytes == catalog.gemma3_path().stat().st_size and gemma.context_length == 32768

    mlx, hf = found[f"hf:{MLX_REPO}"], found[f"hf:{HF_REPO}"]
    assert (mlx.format, mlx.quant, mlx.runnable, mlx.chat) == ("mlx", "MLX 4-bit", True, True)
    assert (hf.format, hf.quant, hf.runnable, hf.chat) == ("hf", "BF16", True, True)
    assert Path(mlx.path).is_dir() and (Path(mlx.path) / "config.json").exists()
    # MLX's packed 4-bit weights count as the weights they hold: the same model, the same count
    assert mlx.n_params == hf.n_params == meta.n_params
    assert mlx.context_length == hf.context_length == 8192
    assert hf.size_bytes > 2 * meta.n_params > mlx.size_bytes  # bf16 vs 4-bit on disk
    # one family across the three formats
    assert smol.family == mlx.family == hf.family == "smollm2-135m-instruct"

    st = found[f"hf:{ST_REPO}"]
    from engines.embeddings import bundled_model_path

    elements, _ = safetensors_elements(bundled_model_path())
    assert (st.format, st.quant, st.chat, st.n_params) == ("sentence-transformers", "F32", False, elements)
    assert st.runnable and st.family == "all-minilm-l6-v2"

    split = found[f"hf:{SPLIT_GGUF_REPO}:Q4_1"]  # one entry for both shards
    assert not any(n.startswith(f"hf:{SPLIT_GGUF_REPO}") and n != split.name for n in found)
    assert split.runnable and Path(split.path).name == SPLIT_GGUF_FILES[0]
    assert split.size_bytes == sum((Path(split.path).parent / n).stat().st_size for n in SPLIT_GGUF_FILES)
    assert (split.n_params, split.family) == (meta.n_params, smol.family)

    assert "not a GGUF file" in found[f"hf:{NOT_GGUF_REPO}:Q4_0"].problem
    shard = found[f"hf:{MISSING_SHARD_REPO}"]
    assert not shard.runnable and "model-00002-of-00002.safetensors" in shard.problem
    assert not any("gated" in name for name in found)  # never downloaded: not listed


def test_cache_root_reads_the_environment_at_call_time(monkeypatch, tmp_path):
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    assert hf_cache.cache_root() == Path.home() / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hf_cache.cache_root() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hf_cache.cache_root() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert hf_cache.cache_root() == tmp_path / "cache"


def test_scan_defaults_to_hf_home(hf_home, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    assert f"hf:{SMOLLM_GGUF_REPO}:Q4_1" in by_name(hf_cache.scan())
    assert [e.name for e in hf_cache.scan(repo_id=ST_REPO)] == [f"hf:{ST_REPO}"]
    monkeypatch.setenv("HF_HOME", str(tmp_path / "nothing-here"))
    assert hf_cache.scan() == []


def test_gguf_pick_follows_llama_cpp():
    files = [
        "README.md",
        "Qwen3-4B-Q8_0.gguf",
        "Qwen3-4B-Q4_K_M.gguf",
        "mmproj-Qwen3-4B-Q4_K_M.gguf",
        "Qwen3-4B-imatrix-Q4_K_M.gguf",
        "BF16/Qwen3-4B-BF16-00001-of-00002.gguf",
        "BF16/Qwen3-4B-BF16-00002-of-00002.gguf",
        "qwen3-4b.q5_k_s.gguf",
    ]
    assert hf_cache.pick_gguf(files, None) == "Qwen3-4B-Q4_K_M.gguf"  # default Q4_K_M, sidecars skipped
    assert hf_cache.pick_gguf(files, "q8_0") == "Qwen3-4B-Q8_0.gguf"
    assert hf_cache.pick_gguf(files, "Q5_K_S") == "qwen3-4b.q5_k_s.gguf"  # '.' before the tag, any case
    assert hf_cache.pick_gguf(files, "BF16") == "BF16/Qwen3-4B-BF16-00001-of-00002.gguf"  # first shard only
    assert hf_cache.pick_gguf(files, "Q2_K") is None
    assert hf_cache.pick_gguf(["a-Q3_K_L.gguf"], None) == "a-Q3_K_L.gguf"  # no Q4_K_M/Q8_0: the first
    assert hf_cache.split_files(files, "BF16/Qwen3-4B-BF16-00001-of-00002.gguf") == [
        "BF16/Qwen3-4B-BF16-00001-of-00002.gguf",
        "BF16/Qwen3-4B-BF16-00002-of-00002.gguf",
    ]
    assert hf_cache.gguf_tags(files) == ["Q8_0", "Q4_K_M", "BF16", "Q5_K_S"]
    name = hf_cache.gguf_name("BF16/Qwen3-4B-BF16-00002-of-00002.gguf")
    assert (name.tag, name.index, name.count) == ("BF16", 2, 2)


def test_deleted_blob_is_listed_with_its_reason(hf_home, tmp_path):
    from huggingface_hub import scan_cache_dir

    root = copy_cache(hf_home / "hub", tmp_path / "hub", [SMOLLM_GGUF_REPO, MLX_REPO, ST_REPO, SPLIT_GGUF_REPO])
    split = root / f"models--{SPLIT_GGUF_REPO.replace('/', '--')}"
    next(split.glob(f"snapshots/*/{SPLIT_GGUF_FILES[1]}")).resolve().unlink()
    gguf = root / f"models--{SMOLLM_GGUF_REPO.replace('/', '--')}"
    next(gguf.glob("snapshots/*/*.gguf")).resolve().unlink()
    weights = next((root / f"models--{MLX_REPO.replace('/', '--')}").glob("snapshots/*/model.safetensors"))
    weights.resolve().unlink()
    assert len(scan_cache_dir(root).warnings) == 3  # the library drops these repos; we list them
    found = by_name(hf_cache.scan(root))
    smol, mlx = found[f"hf:{SMOLLM_GGUF_REPO}:Q4_1"], found[f"hf:{MLX_REPO}"]
    assert smol.path is None and "missing blob" in smol.problem and SMOLLM_GGUF_FILE in smol.problem
    assert not mlx.runnable and "missing blob" in mlx.problem and "model.safetensors" in mlx.problem
    shard = found[f"hf:{SPLIT_GGUF_REPO}:Q4_1"]
    assert shard.path is None and SPLIT_GGUF_FILES[1] in shard.problem
    assert found[f"hf:{ST_REPO}"].runnable  # the rest of the cache lists as before


@pytest.mark.parametrize("repo_id", [SMOLLM_GGUF_REPO, MLX_REPO])
def test_download_in_progress_is_listed_not_runnable(hub_repos, tmp_path, repo_id):
    """huggingface_hub's own hf_hub_download (a GGUF) or snapshot_download (an MLX repo: its small files are
    placed first), slowed down by the server, scanned while a blob is incomplete, then once it is done."""
    from huggingface_hub import hf_hub_download, snapshot_download

    root, hub = tmp_path / "hub", hub_repos
    hub.reset()
    hub.throttle_bps = 20e6
    errors: list[BaseException] = []

    def download() -> None:
        try:
            if repo_id == SMOLLM_GGUF_REPO:
                hf_hub_download(repo_id, SMOLLM_GGUF_FILE, cache_dir=root, endpoint=hub.url)
            else:
                snapshot_download(repo_id, cache_dir=root, endpoint=hub.url)
        except BaseException as err:
            errors.append(err)

    with online(hub.url):
        worker = threading.Thread(target=download)
        worker.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # until the first bytes (the GGUF magic) are on disk
                if any(p.stat().st_size > 2**20 for p in root.glob("*/blobs/*.incomplete")):
                    break
                time.sleep(0.05)
            entries = hf_cache.scan(root)
        finally:
            hub.throttle_bps = None
            worker.join(60)
    assert not errors
    fmt = "gguf" if repo_id == SMOLLM_GGUF_REPO else "mlx"
    assert [(e.name, e.format, e.runnable) for e in entries] == [(f"hf:{repo_id}", fmt, False)]
    assert "download incomplete" in entries[0].problem
    done = hf_cache.scan(root)
    assert [e.runnable for e in done] == [True] and done[0].format == fmt  # finished: listed as the model


def _scan_without_dac_override(root: Path) -> list[dict]:
    """hf_cache.scan in a child process that permissions bind: as root, setpriv drops the capabilities that
    let root read any folder (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so chmod 000 denies it as it denies a user."""
    code = (
        "import json, sys; from pathlib import Path; from models.stores import hf_cache; "
        "print(json.dumps([e.to_row() for e in hf_cache.scan(Path(sys.argv[1]))]))"
    )
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []
    assert not drop or shutil.which("setpriv"), "running as root needs util-linux's setpriv to test permissions"
    out = subprocess.run(
        [*drop, sys.executable, "-c", code, str(root)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_unreadable_folders_are_listed_with_their_reason(hf_home, tmp_path):
    root = copy_cache(hf_home / "hub", tmp_path / "hub", [SMOLLM_GGUF_REPO, ST_REPO, GEMMA_GGUF_REPO])
    locked_repo = root / f"models--{SMOLLM_GGUF_REPO.replace('/', '--')}"
    locked_snapshot = next((root / f"models--{ST_REPO.replace('/', '--')}").glob("snapshots/*"))
    os.chmod(locked_repo, 0)
    os.chmod(locked_snapshot, 0)
    try:
        rows = {r["name"]: r for r in _scan_without_dac_override(root)}
    finally:
        os.chmod(locked_repo, 0o755)
        os.chmod(locked_snapshot, 0o755)
    assert "permission denied" in rows[f"hf:{SMOLLM_GGUF_REPO}"]["problem"]
    assert "permission denied" in rows[f"hf:{ST_REPO}"]["problem"]
    gemma = rows[f"hf:{GEMMA_GGUF_REPO}:Q4_K_M"]
    assert gemma["problem"] is None and Path(gemma["path"]).name == GEMMA_GGUF_FILE
