"""`hf:` names fetched through huggingface_hub from the loopback hub (tests/hub_server.py), real files only:
the plan read before any weights (sizes from the listing, the GGUF header by Range requests, config.json and
safetensors headers), a fetch with progress, resume after a cut connection and after a cancel, and every
failure as one line (missing quant or repo, gated, no network, offline) with nothing left runnable.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.errors import BadParameter, Cancelled, ModelNotFound, ServerError
from models import catalog, hub
from models.stores import hf_cache
from planning.specs import ModelSpec, spec_from_folder, spec_from_gguf
from tests.conftest import free_port
from tests.hub_server import (
    GATED_REPO,
    GEMMA_GGUF_REPO,
    HF_REPO,
    MLX_REPO,
    SMOLLM_GGUF_FILE,
    SMOLLM_GGUF_REPO,
    SPLIT_GGUF_FILES,
    SPLIT_GGUF_REPO,
    ST_REPO,
    TOKEN,
    online,
)

SMOL = f"hf:{SMOLLM_GGUF_REPO}:Q4_1"
SMOL_SIZE = catalog.smollm2_path().stat().st_size if catalog.smollm2_path() else 0


@pytest.fixture
def hf(hub, tmp_path, monkeypatch):
    """The loopback hub as HF_ENDPOINT, an empty HF cache, no token; counters reset."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    hub.reset()
    with online(hub.url):
        yield hub
    hub.reset()


def test_parse_spec():
    assert hub.parse_spec("hf:unsloth/Qwen3-4B-GGUF:q4_k_m") == hub.HubSpec("unsloth/Qwen3-4B-GGUF", "Q4_K_M")
    assert hub.parse_spec(" hf:mlx-community/Qwen3-4B-4bit ").name == "hf:mlx-community/Qwen3-4B-4bit"
    for bad in ("unsloth/Qwen3-4B-GGUF", "hf:Qwen3", "hf:a/b/c", "hf:org/repo:", "hf:/repo", "hf:org/../x"):
        with pytest.raises(BadParameter, match="hf:ORG/REPO"):
            hub.parse_spec(bad)


def test_gguf_plan_reads_the_header_not_the_weights(hf):
    plan = hub.remote_plan(f"hf:{SMOLLM_GGUF_REPO}")  # no quant: llama.cpp's pick (the only model file)
    assert (plan.name, plan.format, plan.quant, plan.gguf_files) == (SMOL, "gguf", "Q4_1", (SMOLLM_GGUF_FILE,))
    assert plan.total_bytes == plan.download_bytes == plan.weights_bytes == SMOL_SIZE
    assert plan.sha256 == hf.repos[SMOLLM_GGUF_REPO].files[SMOLLM_GGUF_FILE].sha256
    served = hf.bytes_served(SMOLLM_GGUF_REPO)
    assert served == plan.header_bytes_read <= 8 * 2**20 < SMOL_SIZE / 10  # a few MB, not the 98 MB
    assert all(r[2] and r[2].startswith("bytes=") for r in hf.requests if "/resolve/" in r[1] and r[0] == "GET")
    # the planner gets what it reads from the local file
    remote, local = ModelSpec(**plan.model_spec_fields()), spec_from_gguf(str(catalog.smollm2_path()))
    for key in ("source", "arch", "n_params", "file_bytes", "file_type", "n_layers", "n_heads", "n_kv_heads"):
        assert getattr(remote, key) == getattr(local, key), key
    assert (remote.head_dim, remote.n_vocab, remote.context_length) == (local.head_dim, 49152, 8192)
    assert len(remote.tensors) == len(local.tensors)
    assert (plan.chat, plan.family, plan.available_quants) == (True, "smollm2-135m-instruct", ("Q4_1",))
    assert hf_cache.scan() == []  # planning registers nothing


def test_gguf_plan_grows_the_range_for_a_large_vocabulary(hf):
    plan = hub.remote_plan(f"hf:{GEMMA_GGUF_REPO}:Q4_K_M")  # 262k tokens: the header is over 4 MB
    assert (plan.n_vocab, plan.n_kv_heads, plan.head_dim, plan.quant) == (262144, 1, 256, "Q4_K_M")
    assert plan.n_params == spec_from_gguf(str(catalog.gemma3_path())).n_params
    assert 4 * 2**20 < hf.bytes_served(GEMMA_GGUF_REPO) <= 16 * 2**20 < plan.total_bytes / 10


def test_split_gguf_plans_and_fetches_every_shard(hf, hub_repos):
    plan = hub.remote_plan(f"hf:{SPLIT_GGUF_REPO}:q4_1")
    assert plan.gguf_files == SPLIT_GGUF_FILES and plan.name == f"hf:{SPLIT_GGUF_REPO}:Q4_1"
    assert plan.total_bytes == sum(f.size for f in hub_repos.repos[SPLIT_GGUF_REPO].files.values())
    assert plan.n_params == spec_from_gguf(str(catalog.smollm2_path())).n_params  # both headers read
    assert hub_repos.bytes_served(SPLIT_GGUF_REPO) == plan.header_bytes_read < plan.total_bytes / 10
    entry = hub.fetch(plan.name)
    assert entry.runnable and Path(entry.path).name == SPLIT_GGUF_FILES[0]
    assert entry.size_bytes == plan.total_bytes and entry.n_params == plan.n_params


def test_folder_plans_read_config_and_safetensors_headers(hf, hub_repos):
    hub_repos.reset()
    mlx, hf_plan = hub.remote_plan(f"hf:{MLX_REPO}"), hub.remote_plan(f"hf:{HF_REPO}")
    assert (mlx.format, mlx.quant, hf_plan.format, hf_plan.quant) == ("mlx", "MLX 4-bit", "hf", "BF16")
    served = {path: n for (repo, path), n in hub_repos.served.items() if repo == MLX_REPO}
    assert served["model.safetensors"] <= 100_001  # the header range huggingface_hub's parser asks for
    assert sum(served.values()) < mlx.total_bytes / 10
    local = spec_from_folder(str(hub_repos.repos[MLX_REPO].files["config.json"].source.parent))  # the converted folder
    remote = ModelSpec(**mlx.model_spec_fields())
    for key in ("source", "arch", "n_params", "file_type", "n_layers", "n_heads", "n_kv_heads", "head_dim"):
        assert getattr(remote, key) == getattr(local, key), key
    assert (remote.n_vocab, remote.context_length) == (local.n_vocab, local.context_length)
    assert mlx.n_params == hf_plan.n_params == spec_from_gguf(str(catalog.smollm2_path())).n_params
    assert mlx.family == hf_plan.family == "smollm2-135m-instruct" and mlx.chat is True
    st = hub.remote_plan(f"hf:{ST_REPO}")
    assert (st.format, st.quant, st.chat) == ("sentence-transformers", "F32", False)


def test_fetch_reports_progress_and_lists_the_model(hf):
    seen: list[float] = []
    entry = hub.fetch(SMOL, progress=lambda f, m: seen.append(f))
    assert entry.runnable and entry.name == SMOL and entry.format == "gguf" and entry.size_bytes == SMOL_SIZE
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 5
    assert hf.bytes_served(SMOLLM_GGUF_REPO, SMOLLM_GGUF_FILE) == SMOL_SIZE
    assert [e.name for e in hf_cache.scan() if e.runnable] == [SMOL]
    hf.reset()
    assert hub.fetch(SMOL) == entry and hf.bytes_served(SMOLLM_GGUF_REPO) == 0  # cached: nothing again


def test_fetch_resumes_after_a_cut_connection(hf):
    cut = 30 * 2**20
    hf.cut_next(SMOLLM_GGUF_REPO, SMOLLM_GGUF_FILE, cut)
    entry = hub.fetch(SMOL)
    assert entry.runnable and Path(entry.path).stat().st_size == SMOL_SIZE
    assert hf.bytes_served(SMOLLM_GGUF_REPO, SMOLLM_GGUF_FILE) == SMOL_SIZE  # the rest only, not twice
    assert (f"bytes={cut}-", 206) in [(r[2], r[3]) for r in hf.requests if SMOLLM_GGUF_FILE in r[1]]


def test_cancel_leaves_nothing_runnable_and_the_next_fetch_resumes(hf):
    hf.throttle_bps = 60e6
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def progress(fraction: float, message: str) -> None:
        if fraction > 0.2 and not cancel.is_set():
            cancel.set()
            cancelled_at.append(time.monotonic())

    with pytest.raises(Cancelled, match="fetch it again"):
        hub.fetch(SMOL, progress=progress, cancel=cancel)
    assert time.monotonic() - cancelled_at[0] < 1.0
    for worker in threading.enumerate():  # the worker stops at its next chunk
        if worker.name.startswith("fetch hf:"):
            worker.join(10)
    entries = hf_cache.scan()
    assert [(e.name, e.runnable) for e in entries] == [(f"hf:{SMOLLM_GGUF_REPO}", False)]
    assert "download incomplete" in entries[0].problem
    partial = next(Path(hf_cache.cache_root()).glob("*/blobs/*.incomplete")).stat().st_size
    assert 0.2 * SMOL_SIZE <= partial < SMOL_SIZE
    hf.reset()
    entry = hub.fetch(SMOL)
    assert entry.runnable and hf.bytes_served(SMOLLM_GGUF_REPO, SMOLLM_GGUF_FILE) == SMOL_SIZE - partial
    assert not list(Path(hf_cache.cache_root()).glob("*/blobs/*.incomplete"))


def test_fetch_a_whole_mlx_repo(hf, hub_repos):
    entry = hub.fetch(f"hf:{MLX_REPO}")
    assert (entry.format, entry.quant, entry.runnable) == ("mlx", "MLX 4-bit", True)
    repo = hub_repos.repos[MLX_REPO]
    assert hub_repos.bytes_served(MLX_REPO) == sum(f.size for f in repo.files.values())
    assert sorted(p.name for p in Path(entry.path).iterdir()) == sorted(repo.files)


def test_missing_quant_lists_what_the_repo_has(hf):
    with pytest.raises(ModelNotFound, match=r"no GGUF file for quant Q8_0 — it has Q4_1"):
        hub.remote_plan(f"hf:{SMOLLM_GGUF_REPO}:Q8_0")
    with pytest.raises(ModelNotFound, match="it has Q4_1"):
        hub.fetch(f"hf:{SMOLLM_GGUF_REPO}:Q8_0")
    with pytest.raises(BadParameter, match="not a GGUF repo"):
        hub.remote_plan(f"hf:{ST_REPO}:Q4_K_M")
    assert hf_cache.scan() == []


def test_missing_repo(hf):
    with pytest.raises(ModelNotFound, match=r"no model repo nobody/nothing on http://127\.0\.0\.1:\d+ \(HF_ENDPOINT\)"):
        hub.fetch("hf:nobody/nothing")
    assert hf_cache.scan() == []


def test_gated_repo_needs_the_token(hf, monkeypatch):
    with pytest.raises(ServerError, match="HF_TOKEN.*`hf auth login`.*accept the license"):
        hub.fetch(f"hf:{GATED_REPO}")
    assert not [e for e in hf_cache.scan() if e.runnable]
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    entry = hub.fetch(f"hf:{GATED_REPO}")
    assert entry.runnable and entry.name == f"hf:{GATED_REPO}:Q4_1"


def test_no_network_names_the_endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    closed = f"http://127.0.0.1:{free_port()}"
    with online(closed):
        start = time.monotonic()
        with pytest.raises(ServerError, match=f"cannot reach the Hugging Face Hub at {closed} \\(HF_ENDPOINT\\)"):
            hub.fetch(SMOL)
        with pytest.raises(ServerError, match="cannot reach"):
            hub.remote_plan(SMOL)
        assert time.monotonic() - start < 10
    assert hf_cache.scan() == []


def test_offline_says_so_and_still_finds_what_is_cached(hf, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ServerError, match="HF_HUB_OFFLINE"):
        hub.remote_plan(SMOL)
    with pytest.raises(ServerError, match="HF_HUB_OFFLINE"):
        hub.fetch(SMOL)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    fetched = hub.fetch(SMOL)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf.reset()
    assert hub.fetch(f"hf:{SMOLLM_GGUF_REPO}") == fetched and hf.requests == []
