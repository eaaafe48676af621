"""Ollama's model store, read in place: every `name:tag` manifest whose model layer is a GGUF blob.

The layout is Ollama's own (ollama/ollama manifest/paths.go, manifest/manifest.go, types/model/name.go):
`<models>/manifests/<host>/<namespace>/<model>/<tag>` holds a Docker v2 manifest (schemaVersion 2, a config
layer, then layers such as application/vnd.ollama.image.model, .template, .params, .license, .system), and
each layer is the file `<models>/blobs/sha256-<hex>`. The model layer of a GGUF model is the GGUF itself,
which llama.cpp runs directly, so `ollama:qwen3:4b` can be measured through Ollama and through llama.cpp
side by side. Names are Ollama's shortest display form after 'ollama:': `ollama:qwen3:4b`,
`ollama:NS/NAME:TAG`, `ollama:hf.co/ORG/REPO:TAG`. Headers only: the manifest JSON and the GGUF header.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from models.stores.entry import ModelEntry
from models.stores.headers import entry_for_gguf, flush_cache

SOURCE = "ollama"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
MODEL_LAYER = "application/vnd.ollama.image.model"
TEMPLATE_LAYERS = ("application/vnd.ollama.image.template", "application/vnd.ollama.image.prompt")
TENSOR_LAYER = "application/vnd.ollama.image.tensor"
"""Ollama's own safetensors-style models (one layer per tensor): Ollama runs them, llama.cpp cannot."""
_DIGEST = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})$")


def default_roots() -> list[Path]:
    """Ollama's stores on this machine, existing ones only: OLLAMA_MODELS (what `ollama serve` uses when
    set), ~/.ollama/models (its default, envconfig.Models) and the Linux service's
    /usr/share/ollama/.ollama/models (the install script's `ollama` user)."""
    candidates = [os.environ.get("OLLAMA_MODELS"), "~/.ollama/models", "/usr/share/ollama/.ollama/models"]
    found: list[Path] = []
    for c in candidates:
        if not c:
            continue
        p = Path(c).expanduser()
        try:
            if p.is_dir() and all(not p.samefile(q) for q in found):
                found.append(p)
        except OSError:
            continue
    return found


def display_name(host: str, namespace: str, model: str, tag: str) -> str:
    """Ollama's DisplayShortest: 'qwen3:4b', 'NS/NAME:TAG', 'hf.co/ORG/REPO:TAG'."""
    if host.lower() != DEFAULT_HOST:
        return f"{host}/{namespace}/{model}:{tag}"
    if namespace.lower() != DEFAULT_NAMESPACE:
        return f"{namespace}/{model}:{tag}"
    return f"{model}:{tag}"


def parse_name(name: str) -> tuple[str, str, str, str]:
    """(host, namespace, model, tag) of 'qwen3:4b', 'NS/NAME:TAG' or 'hf.co/ORG/REPO:TAG' (Ollama's
    ParseName with its defaults: registry.ollama.ai, library, latest)."""
    name = name.removeprefix("ollama:")
    tag = "latest"
    if name.rfind(":") > name.rfind("/"):
        name, tag = name.rsplit(":", 1)
    parts = name.split("/")
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if len(parts) == 3:
        host, namespace, model = parts
    elif len(parts) == 2:
        namespace, model = parts
    else:
        model = parts[-1]
    return host, namespace, model, tag


def scan(roots: list[Path] | None = None) -> list[ModelEntry]:
    """Every manifest of every store, as Ollama lists them (`manifests/*/*/*/*`, files only); a name found
    in an earlier store hides the same name in a later one. Broken manifests are entries with a problem."""
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for root in default_roots() if roots is None else [Path(r) for r in roots]:
        for entry in _scan_root(root):
            if entry.name not in seen:
                seen.add(entry.name)
                entries.append(entry)
    flush_cache()
    return entries


def _scan_root(root: Path) -> list[ModelEntry]:
    manifests = root / "manifests"
    if not manifests.is_dir():
        return []
    found: list[ModelEntry] = []

    def listing(folder: Path, depth: int, parts: tuple[str, ...]) -> None:
        try:
            children = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            label = "/".join(parts) or "manifests"
            problem = f"unreadable folder {folder}: {err.strerror or err}"
            found.append(ModelEntry(f"ollama:{label}", SOURCE, "gguf", None, problem=problem))
            return
        for child in children:
            if child.name.startswith("."):
                continue
            if depth < 3:
                if child.is_dir():
                    listing(Path(child.path), depth + 1, (*parts, child.name))
            elif child.is_file():
                found.append(_entry(root, Path(child.path), *parts, child.name))

    listing(manifests, 0, ())
    return found


def _entry(root: Path, manifest_path: Path, host: str, namespace: str, model: str, tag: str) -> ModelEntry:
    name = "ollama:" + display_name(host, namespace, model, tag)

    def broken(problem: str, path: Path | None = None, **extra) -> ModelEntry:
        return ModelEntry(name, SOURCE, "gguf", str(path) if path else None, problem=problem, **extra)

    try:
        manifest = json.loads(manifest_path.read_bytes())
        layers = manifest["layers"]
        if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
            raise ValueError("'layers' is not a list of objects")
    except OSError as err:
        return broken(f"manifest unreadable: {err.strerror or err}")
    except (ValueError, KeyError, TypeError) as err:
        return broken(f"malformed manifest {manifest_path} ({err}) — pull it again: ollama pull {name[7:]}")
    model_layers = [x for x in layers if x.get("mediaType") == MODEL_LAYER]
    if not model_layers:
        if any(str(x.get("mediaType", "")).startswith(TENSOR_LAYER) for x in layers):
            return broken("Ollama's own tensor format, not a GGUF — run it on the ollama engine", manifest_path)
        return broken(f"the manifest has no model layer ({MODEL_LAYER})")
    layer = model_layers[0]
    digest = _DIGEST.match(str(layer.get("digest", "")))
    if not digest:
        return broken(f"the model layer's digest {layer.get('digest')!r} is not a sha256 digest")
    hex_digest = digest[1].lower()
    blob = root / "blobs" / f"sha256-{hex_digest}"
    if not blob.exists():
        if any(blob.parent.glob(f"{blob.name}-partial*")):
            return broken(f"download incomplete — finish it with: ollama pull {name[7:]}", sha256=hex_digest)
        return broken(
            f"its model blob {blob.name} is missing — pull it again: ollama pull {name[7:]}", sha256=hex_digest
        )
    chat = any(x.get("mediaType") in TEMPLATE_LAYERS for x in layers)
    entry = entry_for_gguf(name, blob, SOURCE, sha256=hex_digest, chat=chat)
    expected = layer.get("size")
    if entry.problem is None and isinstance(expected, int) and entry.size_bytes not in (None, expected):
        problem = f"its model blob has {entry.size_bytes:,} bytes, the manifest says {expected:,} — pull it again"
        return ModelEntry(**{**entry.to_row(), "problem": problem})
    return entry
