"""llama.cpp's own download cache, read in place: the files `-hf ORG/REPO[:QUANT]` and `-mu URL` fetched.

Where: LLAMA_CACHE, else the platform default of common.cpp's fs_get_cache_directory ($XDG_CACHE_HOME/llama.cpp
or ~/.cache/llama.cpp on Linux, ~/Library/Caches/llama.cpp on macOS, %LOCALAPPDATA%/llama.cpp on Windows).
What: releases before the move to the Hugging Face cache layout write flat files there (common/arg.cpp,
common/download.cpp): `ORG_REPO_FILE.gguf` ('/' in `ORG/REPO_FILE` replaced by '_'), its `.etag`, the Hub's
manifest answer `manifest=ORG=REPO=TAG.json` naming the file (`ggufFile.rfilename`), and
`FILE.gguf.downloadInProgress` while downloading. Current releases (common/hf-cache.cpp) keep `-hf` files in
the HF cache layout (`models--ORG--REPO/…`) inside LLAMA_CACHE when it is set, else in the HF cache itself
(listed by models.stores.hf_cache), and move the flat files there on their first online run. Both layouts
inside this folder are listed. Names: `llamacpp:ORG/REPO:QUANT` where a manifest (or the HF layout) says
which repo a file came from, else `llamacpp:FILE_STEM`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from models.stores.entry import ModelEntry
from models.stores.headers import entry_for_gguf, flush_cache, incomplete_entry, incomplete_target, is_later_shard

SOURCE = "llama.cpp-cache"


def default_root() -> Path:
    """LLAMA_CACHE, else llama.cpp's platform default (fs_get_cache_directory)."""
    if os.environ.get("LLAMA_CACHE"):
        return Path(os.environ["LLAMA_CACHE"]).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "llama.cpp"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "llama.cpp"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "llama.cpp"


def manifest_names(root: Path) -> tuple[dict[str, str], list[ModelEntry]]:
    """({cached file name: 'llamacpp:ORG/REPO:TAG'}, entries for manifests that cannot be read)."""
    names: dict[str, str] = {}
    broken: list[ModelEntry] = []
    for manifest in sorted(root.glob("manifest=*.json")):
        parts = manifest.name[: -len(".json")].split("=")
        if len(parts) != 4:
            continue
        _, org, repo, tag = parts
        name = f"llamacpp:{org}/{repo}" + ("" if tag == "latest" else f":{tag}")
        try:
            rfilename = json.loads(manifest.read_text())["ggufFile"]["rfilename"]
            if not isinstance(rfilename, str):
                raise TypeError("ggufFile.rfilename is not a string")
        except (OSError, ValueError, KeyError, TypeError) as err:
            problem = f"manifest {manifest.name} is unreadable ({err}) — fetch it again: llama-cli -hf {name[9:]}"
            broken.append(ModelEntry(name, SOURCE, "gguf", None, problem=problem))
            continue
        names[f"{org}/{repo}_{rfilename}".replace("/", "_")] = name
    return names, broken


def scan(root: Path | None = None) -> list[ModelEntry]:
    """Every GGUF in llama.cpp's cache folder (first shards only; projectors skipped), partial downloads
    and unreadable manifests as entries with their problem, then the HF-layout repos inside it."""
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        return []
    try:
        files = sorted(p for p in root.iterdir() if p.is_file())
    except OSError as err:
        return [ModelEntry(f"llamacpp:{root}", SOURCE, "gguf", None, problem=f"unreadable folder: {err.strerror}")]
    names, entries = manifest_names(root)
    for path in files:
        lower = path.name.lower()
        if lower.endswith(".gguf") and "mmproj" not in lower and not is_later_shard(path):
            entries.append(entry_for_gguf(names.get(path.name, f"llamacpp:{path.stem}"), path, SOURCE))
        elif (target := incomplete_target(path)) is not None and not target.exists():
            name = names.get(target.name, f"llamacpp:{target.stem}")
            entries.append(incomplete_entry(name, path, SOURCE, f"run llama.cpp with -hf {name[9:]} again to resume"))
    entries += _hf_layout(root)
    flush_cache()
    return entries


def _hf_layout(root: Path) -> list[ModelEntry]:
    """GGUF entries of the `models--ORG--REPO` repos current llama.cpp keeps in LLAMA_CACHE, renamed
    llamacpp:…; nothing when this folder is the HF cache itself (models.stores.hf_cache lists those)."""
    from models.stores import hf_cache

    if not any(p.name.startswith("models--") for p in root.iterdir() if p.is_dir()):
        return []
    hub = hf_cache.cache_root()
    if hub.exists() and hub.resolve() == root.resolve():
        return []
    return [
        dataclasses.replace(e, name="llamacpp:" + e.name.removeprefix("hf:"), source=SOURCE)
        for e in hf_cache.scan(root)
        if e.format == "gguf"
    ]
