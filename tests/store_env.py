"""An environment in which every store the app reads is a fixture laid out as its tool writes it: HF_HOME (filled
by huggingface_hub's own downloads from the loopback hub), OLLAMA_MODELS, LM Studio's folder under HOME,
LLAMA_CACHE and LOCALBENCH_MODELS (tests/models/stores/fixtures.py), all holding the real bundled files.

`from tests.store_env import stores  # noqa: F401` gives a test module the session fixture `stores` (a dict of
environment variables for run_app / served_app); `online_env(stores, hub, hf_home)` adds what a fetch needs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hub_server import hf_home, hub, hub_repos  # noqa: F401  (session fixtures)
from tests.models.stores.fixtures import llama_cache, lmstudio_folder, models_folder, ollama_store


@pytest.fixture(scope="session")
def stores(tmp_path_factory, hf_home, hub_repos) -> dict:  # noqa: F811
    from models import convert

    root = tmp_path_factory.mktemp("stores")
    mlx = convert.convert("smollm2-135m", "mlx-4bit", progress=lambda f, m: None)
    home = root / "home"
    lmstudio_folder(home / ".lmstudio" / "models", mlx_folder=Path(mlx.path))
    return {
        "HF_HOME": str(hf_home),
        "OLLAMA_MODELS": str(ollama_store(root / "ollama")),
        "HOME": str(home),
        "LLAMA_CACHE": str(llama_cache(root / "llama.cpp")),
        "LOCALBENCH_MODELS": str(models_folder(root / "mine")),
    }


def online_env(stores: dict, hub, hf_home: Path) -> dict:  # noqa: F811
    """`stores` with the loopback hub reachable (HF_ENDPOINT, HF_HUB_OFFLINE=0) and `hf_home` as HF_HOME."""
    return {**stores, "HF_HOME": str(hf_home), "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
