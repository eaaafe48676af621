"""`python app.py models`, `--model ollama:…` and `--model hf:…` on the command line, with every store pointed
at a fixture laid out as its tool writes it (tests/models/stores/fixtures.py) and the HF cache filled by
huggingface_hub's own downloads from the loopback hub (tests/hub_server.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_app
from tests.hub_server import GEMMA_GGUF_FILE, GEMMA_GGUF_REPO, HF_REPO, MLX_REPO, SMOLLM_GGUF_REPO, ST_REPO
from tests.store_env import hf_home, hub, hub_repos, online_env, stores  # noqa: F401  (session fixtures)


def models_json(env: dict) -> list[dict]:
    out = run_app("models", "-o", "json", env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_models_lists_every_store_once_per_file_with_format_quant_and_family(stores):  # noqa: F811
    rows = models_json(stores)
    by_name = {r["name"]: r for r in rows}
    assert len(by_name) == len(rows), "a name is listed twice"
    runnable = [r for r in rows if r["problem"] is None]
    paths = [Path(r["path"]).resolve() for r in runnable]
    assert len(paths) == len(set(paths)), "one file listed twice"
    expected = {
        f"hf:{SMOLLM_GGUF_REPO}:Q4_1": ("hf-cache", "gguf", "Q4_1"),
        f"hf:{GEMMA_GGUF_REPO}:Q4_K_M": ("hf-cache", "gguf", "Q4_K_M"),
        f"hf:{MLX_REPO}": ("hf-cache", "mlx", None),
        "ollama:smollm2:135m": ("ollama", "gguf", "Q4_1"),
        "ollama:gemma3:270m": ("ollama", "gguf", "Q4_K_M"),
        "lmstudio:lmstudio-community/SmolLM2-135M-Instruct-GGUF:Q4_1": ("lmstudio", "gguf", "Q4_1"),
        "lmstudio:mlx-community/SmolLM2-135M-Instruct-4bit": ("lmstudio", "mlx", None),
    }
    for name, (source, fmt, quant) in expected.items():
        row = by_name[name]
        assert (row["source"], row["format"]) == (source, fmt), row
        if quant:
            assert row["quant"] == quant, row
        assert row["verdict"] in ("fits", "tight", "does not fit"), row
        assert row["size_bytes"] > 0 and row["n_params"] > 0, row
    # one family for every file of SmolLM2-135M-Instruct, whatever the store and the format
    smollm = {by_name[n]["family"] for n in expected if "mollm" in n.lower()}
    assert smollm == {by_name["smollm2-135m"]["family"]} and None not in smollm
    assert by_name["ollama:gemma3:270m"]["family"] == by_name["gemma3-270m"]["family"] not in smollm
    # the Ollama blob is the very file the HF cache holds: the store's digest says so without hashing
    assert by_name["ollama:smollm2:135m"]["sha256"] == by_name[f"hf:{SMOLLM_GGUF_REPO}:Q4_1"]["sha256"]
    assert any(r["source"] == "LOCALBENCH_MODELS" and r["name"] == "google/gemma/gemma-3-270m-Q4_K_M" for r in rows)
    table = run_app("models", env=stores, timeout=300)
    assert table.returncode == 0 and "ollama:smollm2:135m" in table.stdout and "fits here (planned)" in table.stdout


def test_bench_runs_an_ollama_blob_on_llamacpp(stores):  # noqa: F811
    out = run_app(
        "bench", "--engine", "llamacpp", "--model", "ollama:smollm2:135m", "-p", "16", "-n", "4", "-r", "1",
        "-o", "json", env=stores, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["model"] for r in rows} == {"ollama:smollm2:135m"} and all(r["avg_ts"] > 0 for r in rows)


def test_bench_fetches_an_hf_gguf_by_quant_with_progress_then_benches(stores, hub_repos, tmp_path):  # noqa: F811
    env = online_env(stores, hub_repos, tmp_path / "hf")
    hub_repos.reset()
    name = f"hf:{GEMMA_GGUF_REPO}:Q4_K_M"
    out = run_app("bench", "--engine", "llamacpp", "--model", name, "-p", "16", "-n", "4", "-r", "1", "-o", "json",
                  env={**env, "HF_HUB_OFFLINE": "0"}, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "fits" in out.stderr and "fetch" in out.stderr  # the verdict before, the bar during
    size = (Path(env["HF_HOME"]) / "hub").rglob(GEMMA_GGUF_FILE)
    assert [p.stat().st_size for p in size] == [hub_repos.repos[GEMMA_GGUF_REPO].files[GEMMA_GGUF_FILE].size]
    assert json.loads(out.stdout)[0]["model"] == name
    assert (
        hub_repos.bytes_served(GEMMA_GGUF_REPO, GEMMA_GGUF_FILE)
        >= hub_repos.repos[GEMMA_GGUF_REPO].files[GEMMA_GGUF_FILE].size
    )
    # a second run finds it in the cache: nothing more is downloaded
    hub_repos.reset()
    again = run_app("plan", "--model", name, env={**env, "HF_HUB_OFFLINE": "0"}, timeout=120)
    assert again.returncode == 0 and hub_repos.bytes_served(GEMMA_GGUF_REPO) == 0, again.stderr


def test_fetch_errors_are_one_line_and_register_nothing(stores, hub_repos, tmp_path):  # noqa: F811
    env = online_env(stores, hub_repos, tmp_path / "hf")
    missing = run_app("models", "fetch", f"hf:{GEMMA_GGUF_REPO}:Q8_0", env=env, timeout=120)
    assert missing.returncode == 2 and "Q4_K_M" in missing.stderr and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    nothing = run_app("models", "fetch", "hf:nobody/no-such-repo", env=env, timeout=120)
    assert nothing.returncode == 2 and "Traceback" not in nothing.stderr
    listed = models_json(env)
    assert not [r for r in listed if r["source"] == "hf-cache"], listed


def test_plan_reads_an_hf_model_from_its_header_and_plans_a_parameter_count(stores, hub_repos, tmp_path):  # noqa: F811
    env = online_env(stores, hub_repos, tmp_path / "hf")
    hub_repos.reset()
    out = run_app("plan", "--model", f"hf:{GEMMA_GGUF_REPO}:Q4_K_M", "-o", "json", env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    size = hub_repos.repos[GEMMA_GGUF_REPO].files[GEMMA_GGUF_FILE].size
    assert report["model"]["file_bytes"] == size and report["model"]["n_layers"] == 18
    assert 0 < hub_repos.bytes_served(GEMMA_GGUF_REPO) < size / 4  # the header, not the weights
    assert not list((tmp_path / "hf").rglob("*.gguf"))
    params = run_app("plan", "--model", "8B", "--quant", "Q4_K_M", "--ctx", "8192", "-o", "json", timeout=120)
    assert params.returncode == 0, params.stderr
    shaped = json.loads(params.stdout)
    assert shaped["model"]["n_params"] == 8_000_000_000 and "shape assumed" in shaped["model"]["note"]
    assert shaped["estimate"]["kv_cache_bytes"] > 0


def test_torch_runs_a_safetensors_repo_and_embeddings_a_sentence_transformers_repo_of_the_hf_cache(stores):  # noqa: F811
    torch_run = run_app(
        "bench", "--engine", "torch", "--model", f"hf:{HF_REPO}", "-p", "8", "-n", "2", "-r", "1", "-o", "json",
        env=stores, timeout=300,
    )  # fmt: skip
    assert torch_run.returncode == 0, torch_run.stderr
    assert json.loads(torch_run.stdout)[0]["model"] == f"hf:{HF_REPO}"
    embed = run_app(
        "embed-bench", "--model", f"hf:{ST_REPO}", "-b", "8", "-d", "cpu", "--sentences", "16", "-o", "json",
        env=stores, timeout=300,
    )  # fmt: skip
    assert embed.returncode == 0, embed.stderr
    assert json.loads(embed.stdout)[0]["sentences_per_s"] > 0
