"""Fixture stores laid out byte for byte as the real tools write them, filled with the real bundled models.

- `ollama_store(root, models)`: manifests and `sha256-<hex>` blobs as `ollama pull` leaves them (real
  digests of the real files, a config blob, template/params/license layers for chat models);
- `lmstudio_folder(root)`: LM Studio's publisher/repo/file layout (GGUF, an mmproj projector, MLX);
- `llama_cache(root)`: llama.cpp's flat `-hf` cache (ORG_REPO_FILE.gguf, .etag, manifest=ORG=REPO=TAG.json);
- `models_folder(root)`: a LOCALBENCH_MODELS folder with top-level and nested GGUFs and model folders.

Model files are hard links to the bundled files (copied once per session where linking is impossible), so a
store costs no disk and no time. Each builder returns the folder a store scan (or the env var) points at.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from models import catalog
from models.stores.headers import gguf_facts
from models.stores.ollama import parse_name

SMOLLM2_TEMPLATE = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
"""A Go template in the form Ollama's library ships for ChatML models (SmolLM2's chat format)."""

_DIGESTS: dict[tuple[str, int, int], str] = {}
_COPIES: dict[tuple[str, int], Path] = {}


def place(src: Path, dest: Path) -> Path:
    """`dest` as a hard link to `src` (a copy made once per session and device where links fail)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        return dest
    try:
        os.link(src, dest)
        return dest
    except OSError:
        pass
    device = dest.parent.stat().st_dev
    copy = _COPIES.get((str(src), device))
    if copy is not None and copy.exists():
        try:
            os.link(copy, dest)
            return dest
        except OSError:
            pass
    shutil.copyfile(src, dest)
    _COPIES[(str(src), device)] = dest
    return dest


def sha256_of(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _blob(root: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / f"sha256-{digest}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def ollama_store(root: Path, models: dict[str, Path] | None = None) -> Path:
    """An Ollama models folder (what OLLAMA_MODELS names) holding `models` ({'smollm2:135m': gguf_path, ...};
    default: the two bundled models as smollm2:135m and gemma3:270m). Returns `root`."""
    root = Path(root)
    if models is None:
        models = {"smollm2:135m": catalog.smollm2_path(), "gemma3:270m": catalog.gemma3_path()}
    for name, gguf in models.items():
        gguf = Path(gguf)
        facts = gguf_facts(gguf)
        digest = sha256_of(gguf)
        place(gguf, root / "blobs" / f"sha256-{digest}")
        layers = [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": facts.size_bytes}
        ]
        if facts.chat:
            stop = {"stop": ["<|im_start|>", "<|im_end|>"]}
            layers.append(
                {"mediaType": "application/vnd.ollama.image.template", **_blob(root, SMOLLM2_TEMPLATE.encode())}
            )
            layers.append(
                {"mediaType": "application/vnd.ollama.image.params", **_blob(root, json.dumps(stop).encode())}
            )
        layers.append({"mediaType": "application/vnd.ollama.image.license", **_blob(root, b"Apache License 2.0\n")})
        config = {  # types/model/config.go ConfigV2, in its field order
            "model_format": "gguf",
            "model_family": facts.arch,
            "model_families": [facts.arch],
            "model_type": facts.size_label or "",
            "file_type": facts.quant or "",
            "architecture": "amd64",
            "os": "linux",
        }
        config_layer = {"mediaType": "application/vnd.docker.container.image.v1+json", **_blob(root, _go_json(config))}
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": config_layer,
            "layers": layers,
        }
        path = root / "manifests" / Path(*parse_name(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_go_json(manifest))
    return root


def _go_json(value) -> bytes:
    """What Go's json.NewEncoder(f).Encode(v) writes: compact JSON and a newline."""
    return (json.dumps(value, separators=(",", ":")) + "\n").encode()


def lmstudio_folder(root: Path, mlx_folder: Path | None = None) -> Path:
    """An LM Studio models folder (~/.lmstudio/models, or the settings' downloadsFolder) in its
    publisher/repo layout: SmolLM2 Q4_1 beside a vision projector (mmproj, not a model), Gemma 3 Q4_K_M,
    and, given `mlx_folder` (an MLX conversion), an MLX repo. Returns `root`."""
    root = Path(root)
    smollm, gemma = catalog.smollm2_path(), catalog.gemma3_path()
    repo = root / "lmstudio-community" / "SmolLM2-135M-Instruct-GGUF"
    place(smollm, repo / "SmolLM2-135M-Instruct-Q4_1.gguf")
    place(gemma, repo / "mmproj-SmolLM2-135M-Instruct-F16.gguf")  # a real GGUF under a projector's name
    place(gemma, root / "lmstudio-community" / "gemma-3-270m-GGUF" / "gemma-3-270m-Q4_K_M.gguf")
    if mlx_folder is not None:
        link_folder(Path(mlx_folder), root / "mlx-community" / "SmolLM2-135M-Instruct-4bit")
    return root


def llama_cache(root: Path) -> Path:
    """llama.cpp's download cache (LLAMA_CACHE) as `-hf` wrote it before it moved to the HF cache layout:
    SmolLM2 fetched by `-hf unsloth/SmolLM2-135M-Instruct-GGUF:Q4_1` (file, .etag, manifest JSON), and
    Gemma 3 fetched by URL (`-mu …/gemma-3-270m-Q4_K_M.gguf`: the URL's file name, no manifest)."""
    root = Path(root)
    smollm, gemma = catalog.smollm2_path(), catalog.gemma3_path()
    repo, rfilename = "unsloth/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q4_1.gguf"
    digest = sha256_of(smollm)
    target = place(smollm, root / (repo + "_" + rfilename).replace("/", "_"))
    Path(f"{target}.etag").write_text(f'"{digest}"')
    size = smollm.stat().st_size
    gguf_file = {"rfilename": rfilename, "blobId": digest[:40], "size": size, "lfs": {"sha256": digest, "size": size}}
    (root / f"manifest={repo.replace('/', '=')}=Q4_1.json").write_text(json.dumps({"ggufFile": gguf_file}))
    place(gemma, root / "gemma-3-270m-Q4_K_M.gguf")
    return root


def models_folder(root: Path, folders: dict[str, Path] | None = None) -> Path:
    """A LOCALBENCH_MODELS folder: SmolLM2 at the top, Gemma 3 two folders down, and each of `folders`
    ({'mlx/smollm2-4bit': an MLX folder, ...}) linked file by file at that relative path. Returns `root`."""
    root = Path(root)
    place(catalog.smollm2_path(), root / "SmolLM2-135M-Instruct.Q4_1.gguf")
    place(catalog.gemma3_path(), root / "google" / "gemma" / "gemma-3-270m-Q4_K_M.gguf")
    for rel, folder in (folders or {}).items():
        link_folder(Path(folder), root / rel)
    return root


def link_folder(src: Path, dest: Path) -> Path:
    """`dest` holding every file of the model folder `src` (hard links; subfolders too)."""
    src, dest = Path(src), Path(dest)
    for f in sorted(src.rglob("*")):
        if f.is_file() and f.name != "localbench-conversion.json":  # ours, not the tool's
            place(f, dest / f.relative_to(src))
    return dest
