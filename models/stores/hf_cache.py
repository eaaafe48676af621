"""The Hugging Face cache as a model store: every GGUF file, MLX, safetensors and sentence-transformers repo
that huggingface_hub (mlx_lm, transformers, sentence-transformers, `hf download`) has put there.

Built on huggingface_hub's own `scan_cache_dir`. A repo that it refuses (a snapshot link whose blob was
deleted, a folder it cannot read) is walked here instead, so it is listed with its reason rather than
dropped. Only the snapshot `refs/main` names (else the newest) counts. Headers only: the GGUF key-value
section and tensor table, config.json, safetensors headers. Also the file-picking rule of llama.cpp's
`-hf ORG/REPO:QUANT` (common/download.cpp), which models.hub reuses to pick what to fetch.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from core.errors import LocalbenchError
from models.hf_folder import safetensors_header
from models.stores import family
from models.stores.entry import ModelEntry
from models.stores.headers import config_quant, config_value, entry_for_gguf, weight_elements

SOURCE = "hf-cache"
GGUF_SIDECARS = ("mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-")
"""Files llama.cpp's -hf never picks as the model (projectors, importance matrices, draft heads)."""
DEFAULT_TAGS = ("Q4_K_M", "Q8_0")
"""What llama.cpp's -hf picks when no quant is given, in order; else the first model file."""
ST_MARKERS = ("modules.json", "config_sentence_transformers.json")
INDEX_FILES = ("model.safetensors.index.json",)
_SPLIT = re.compile(r"^(.+)-([0-9]{5})-of-([0-9]{5})$", re.IGNORECASE)
_TAG = re.compile(r"[-.]([A-Z0-9_]+)$", re.IGNORECASE)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# --- llama.cpp's naming of GGUF files ----------------------------------------------------------------


@dataclass(frozen=True)
class GgufName:
    """What a GGUF file name says, read as llama.cpp's get_gguf_split_info does."""

    prefix: str
    """The path without '.gguf' and without the '-00001-of-00003' split suffix."""
    tag: str | None
    """The quant tag, upper case: 'Q4_K_M' for 'model-q4_k_m.gguf' or 'model.Q4_K_M.gguf'."""
    index: int
    """Shard number, 1 for a single file."""
    count: int
    """Number of shards, 1 for a single file."""


def gguf_name(path: str) -> GgufName | None:
    """The split and quant tag of a '*.gguf' path; None for any other file."""
    if not path.lower().endswith(".gguf"):
        return None
    prefix, index, count = path[: -len(".gguf")], 1, 1
    split = _SPLIT.match(prefix)
    if split:
        prefix, index, count = split[1], int(split[2]), int(split[3])
    tag = _TAG.search(prefix)
    return GgufName(prefix, tag[1].upper() if tag else None, index, count)


def is_gguf_model(path: str) -> bool:
    """True for a GGUF file llama.cpp would load as the model (not a projector, imatrix or draft head)."""
    return path.lower().endswith(".gguf") and not any(s in path.rsplit("/", 1)[-1] for s in GGUF_SIDECARS)


def pick_gguf(paths: list[str], tag: str | None) -> str | None:
    """The file llama.cpp's `-hf ORG/REPO:TAG` loads: the first model file whose path contains TAG followed
    by '.' or '-' (case-insensitive), first shard only; with no tag Q4_K_M, then Q8_0, then the first."""
    models = [p for p in paths if is_gguf_model(p) and _first_shard(p)]
    for t in [tag] if tag else DEFAULT_TAGS:
        pattern = re.compile(re.escape(t) + r"[.-]", re.IGNORECASE)
        for p in models:
            if pattern.search(p):
                return p
    return None if tag or not models else models[0]


def split_files(paths: list[str], primary: str) -> list[str]:
    """Every shard of `primary`'s split GGUF in shard order (just [primary] for a single file)."""
    name = gguf_name(primary)
    if name is None or name.count <= 1:
        return [primary]
    shards = [(n.index, p) for p in paths if (n := gguf_name(p)) and n.count == name.count and n.prefix == name.prefix]
    return [p for _, p in sorted(shards)]


def gguf_tags(paths: list[str]) -> list[str]:
    """The quant tags a repo offers (its model files, first shards), in file order, once each."""
    tags: list[str] = []
    for p in paths:
        name = gguf_name(p)
        tag = (name.tag if name and name.tag else Path(p).stem) if is_gguf_model(p) and _first_shard(p) else None
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _first_shard(path: str) -> bool:
    name = gguf_name(path)
    return name is not None and (name.count <= 1 or name.index == 1)


# --- config.json and safetensors facts ---------------------------------------------------------------


def header_dtype(header: dict) -> str | None:
    """The float type holding most elements of a safetensors header ('F32', 'BF16', 'F16'); None otherwise."""
    totals: dict[str, int] = {}
    for key, info in header.items():
        if key != "__metadata__" and isinstance(info, dict):
            totals[info.get("dtype")] = totals.get(info.get("dtype"), 0) + math.prod(info.get("shape") or [])
    top = max(totals, key=totals.__getitem__) if totals else None
    return top if top in ("F32", "BF16", "F16") else None


def config_bits(config: dict) -> int | None:
    quant = config.get("quantization")
    return int(quant["bits"]) if isinstance(quant, dict) and quant.get("bits") else None


# --- the cache ---------------------------------------------------------------------------------------


def cache_root() -> Path:
    """HF_HUB_CACHE, else HF_HOME/hub, else huggingface_hub's default (~/.cache/huggingface/hub), read from
    the environment at call time (huggingface_hub.constants froze it at import)."""
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(env["HF_HUB_CACHE"])).expanduser()
    if env.get("HUGGINGFACE_HUB_CACHE"):  # the library's legacy name, still honoured
        return Path(os.path.expandvars(env["HUGGINGFACE_HUB_CACHE"])).expanduser()
    if env.get("HF_HOME"):
        return Path(os.path.expandvars(env["HF_HOME"])).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


@dataclass
class _File:
    path: Path
    """The file inside the snapshot (a symlink into blobs/)."""
    blob: Path | None
    """The blob it points at; None when the link dangles."""
    size: int | None


@dataclass
class _Snapshot:
    repo_id: str
    repo_path: Path
    folder: Path | None
    files: dict[str, _File]
    problem: str | None = None


def scan(root: Path | None = None, *, repo_id: str | None = None) -> list[ModelEntry]:
    """Every model in the HF cache at `root` (default: cache_root()), one entry per GGUF file (a split GGUF
    once) and one per MLX / safetensors / sentence-transformers repo; broken ones with `problem` set.
    `repo_id` ('ORG/REPO') lists that repo only."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    root = Path(root) if root is not None else cache_root()
    if not root.is_dir():
        return []
    try:
        info = scan_cache_dir(root)
        scanned = {repo.repo_path: repo for repo in info.repos if repo.repo_type == "model"}
        incomplete = [f.file_path for f in getattr(info, "incomplete_files", ())]
    except CacheNotFound:
        return []
    except OSError:  # an unreadable repo folder stops the library's whole scan: walk each repo here
        scanned, incomplete = {}, None
    try:
        repo_paths = sorted(p for p in root.resolve().iterdir() if p.name.startswith("models--"))
        if repo_id is not None:
            repo_paths = [p for p in repo_paths if p.name == "models--" + repo_id.replace("/", "--")]
    except OSError as err:
        return [_unreadable("hf:?", root, err)]
    entries: list[ModelEntry] = []
    for repo_path in repo_paths:
        repo_id = repo_path.name[len("models--") :].replace("--", "/")
        try:
            snap = _from_library(scanned[repo_path]) if repo_path in scanned else _walk(repo_id, repo_path)
            partial = _incomplete_blobs(repo_path, incomplete)
            entries += _entries(snap, partial)
        except OSError as err:
            entries.append(_unreadable(f"hf:{repo_id}", repo_path, err))
    return entries


def _unreadable(name: str, path: Path, err: OSError) -> ModelEntry:
    why = err.strerror or type(err).__name__
    return ModelEntry(
        name=name,
        source=SOURCE,
        format="hf",
        path=None,
        problem=f"cannot read {err.filename or path} ({why.lower()}) — fix the folder's permissions",
    )


def _from_library(repo) -> _Snapshot:
    """The snapshot refs/main names, else the newest, from scan_cache_dir's report."""
    revisions = sorted(repo.revisions, key=lambda r: ("main" in r.refs, r.last_modified))
    if not revisions:
        return _Snapshot(repo.repo_id, repo.repo_path, None, {})
    rev = revisions[-1]
    files = {
        f.file_path.relative_to(rev.snapshot_path).as_posix(): _File(f.file_path, f.blob_path, f.size_on_disk)
        for f in rev.files
    }
    snap = _Snapshot(repo.repo_id, repo.repo_path, rev.snapshot_path, files)
    try:  # the library's glob swallows an unreadable subfolder: say so rather than list a repo without files
        for sub in {p.parent for p in rev.snapshot_path.glob("**/")}:
            os.listdir(sub)
    except OSError as err:
        snap.problem = f"cannot read {err.filename} ({(err.strerror or 'error').lower()}) — fix its permissions"
    return snap


def _walk(repo_id: str, repo_path: Path) -> _Snapshot:
    """A repo scan_cache_dir refused: find its snapshot and every link in it, dangling ones included."""
    snapshots = repo_path / "snapshots"
    if not snapshots.is_dir():
        return _Snapshot(repo_id, repo_path, None, {})  # nothing placed yet (a fetch in progress)
    main = repo_path / "refs" / "main"
    folder = snapshots / main.read_text().strip() if main.is_file() else None
    if folder is None or not folder.is_dir():
        candidates = [p for p in snapshots.iterdir() if p.is_dir()]
        if not candidates:
            return _Snapshot(repo_id, repo_path, None, {})
        folder = max(candidates, key=lambda p: p.stat().st_mtime)
    files: dict[str, _File] = {}
    for dirpath, _, names in os.walk(folder, onerror=_raise):
        for name in names:
            path = Path(dirpath) / name
            blob = Path(os.path.abspath(path.parent / os.readlink(path))) if path.is_symlink() else path
            size = blob.stat().st_size if blob.exists() else None
            files[path.relative_to(folder).as_posix()] = _File(path, blob if size is not None else None, size)
    return _Snapshot(repo_id, repo_path, folder, files)


def _raise(err: OSError) -> None:
    raise err


def _incomplete_blobs(repo_path: Path, found: list[Path] | None) -> list[Path]:
    """`blobs/<etag>*.incomplete` downloads whose finished blob is not there (cut, cancelled, in progress)."""
    paths = [p for p in found if p.parent.parent == repo_path] if found is not None else None
    if paths is None:
        paths = list((repo_path / "blobs").glob("*.incomplete"))
    return sorted(p for p in paths if not (p.parent / p.name.split(".", 1)[0]).exists())


def _entries(snap: _Snapshot, partial: list[Path]) -> list[ModelEntry]:
    """A repo's entries, one per name: where two say the same name (a folder without its weights and the
    download of them in progress, an unreadable sub-folder) the runnable one is kept, else their reasons."""
    entries: list[ModelEntry] = []
    gguf = [p for p in snap.files if is_gguf_model(p) and _first_shard(p)]
    names = _gguf_entry_names(snap.repo_id, gguf)
    entries += [_gguf_entry(snap, rel, names[rel]) for rel in gguf]
    folder = _folder_entry(snap, bool(partial))
    entries += [folder] if folder is not None else []
    entries += [_incomplete_entry(snap, partial)] if partial else []
    entries += [ModelEntry(f"hf:{snap.repo_id}", SOURCE, "hf", None, problem=snap.problem)] if snap.problem else []
    merged: dict[str, ModelEntry] = {}
    for e in entries:
        kept = merged.get(e.name)
        if kept is None or (e.runnable and not kept.runnable):
            merged[e.name] = e
        elif not kept.runnable and not e.runnable and e.problem not in (kept.problem or ""):
            merged[e.name] = replace(kept, path=None, problem=f"{e.problem}; {kept.problem}")
    return list(merged.values())


def _gguf_entry_names(repo_id: str, paths: list[str]) -> dict[str, str]:
    """'hf:ORG/REPO:TAG' per file; the file's stem where the tag is missing or two files share it."""
    tags = {p: (gguf_name(p).tag or "") for p in paths}
    out = {}
    for p, tag in tags.items():
        unique = tag and list(tags.values()).count(tag) == 1
        out[p] = f"hf:{repo_id}:{tag if unique else gguf_name(p).prefix.rsplit('/', 1)[-1]}"
    return out


def _gguf_entry(snap: _Snapshot, rel: str, name: str) -> ModelEntry:
    """A snapshot's GGUF file: a dangling link (or shard) says so; the rest is headers.entry_for_gguf's."""
    file = snap.files[rel]
    missing = [s for s in split_files(list(snap.files), rel) if snap.files[s].blob is None]
    if missing:
        what = ", ".join(s.rsplit("/", 1)[-1] for s in missing)
        return ModelEntry(
            name,
            SOURCE,
            "gguf",
            None,
            quant=gguf_name(rel).tag,
            problem=f"snapshot link points at a missing blob ({what}) — fetch it again with --model {name}",
        )
    sha256 = file.blob.name if file.blob is not None and _SHA256.match(file.blob.name) else None
    return entry_for_gguf(name, file.path, SOURCE, sha256=sha256)


def _folder_entry(snap: _Snapshot, downloading: bool) -> ModelEntry | None:
    """The MLX / safetensors / sentence-transformers entry of a repo; None for a repo without weights (a
    tokenizer or config that a library fetched alone)."""
    files = snap.files
    weights = [p for p in files if "/" not in p and p.endswith(".safetensors")]
    st = any(m in files for m in ST_MARKERS)
    if st:
        weights += [p for p in files if "/" not in p and p in ("pytorch_model.bin",)]
    index = next((p for p in INDEX_FILES if p in files), None)
    if "config.json" not in files or not (weights or index or downloading):
        return None
    name = f"hf:{snap.repo_id}"
    size = sum({f.blob: f.size or 0 for f in files.values() if f.blob is not None}.values())
    config_file = files["config.json"]
    try:
        config = json.loads(config_file.path.read_text()) if config_file.blob else None
    except (OSError, ValueError) as err:
        return ModelEntry(name, SOURCE, "hf", None, size_bytes=size, problem=f"config.json is unreadable ({err})")
    fmt = "sentence-transformers" if st else "mlx" if isinstance(config, dict) and config.get("quantization") else "hf"
    problem = None
    dangling = [p for p, f in files.items() if f.blob is None]
    if dangling:
        problem = f"snapshot link points at a missing blob ({', '.join(sorted(dangling)[:3])}) — fetch it again"
    elif not isinstance(config, dict):
        problem = "config.json is not a JSON object"
    elif index:
        problem = _missing_shards(files, index)
    if problem is None and not weights:
        problem = "weights missing (no *.safetensors in the snapshot) — fetch it again with --model " + name
    if problem and dangling:
        return ModelEntry(name, SOURCE, fmt, None, size_bytes=size, problem=problem)
    config = config if isinstance(config, dict) else {}
    n_params, dtype = None, None
    if problem is None:
        try:
            headers = [safetensors_header(files[w].path) for w in weights]
            n_params = sum(weight_elements(h, config_bits(config)) for h in headers) or None
            dtype = header_dtype(headers[0]) if headers else None
        except (LocalbenchError, OSError, ValueError) as err:
            problem = f"a safetensors header is unreadable ({err})"
    context = config_value(config, "max_position_embeddings")
    chat = False if fmt == "sentence-transformers" else _has_chat_template(files)
    return ModelEntry(
        name=name,
        source=SOURCE,
        format=fmt,
        path=str(snap.folder),
        quant=config_quant(config) or dtype,
        n_params=n_params,
        context_length=int(context) if isinstance(context, int) else None,
        size_bytes=size,
        family=family.family_from_config(config, snap.repo_id, chat),
        chat=chat,
        problem=problem,
    )


def _missing_shards(files: dict[str, _File], index: str) -> str | None:
    try:
        weight_map = json.loads(files[index].path.read_text()).get("weight_map") or {}
    except (OSError, ValueError, AttributeError) as err:
        return f"{index} is unreadable ({err})"
    missing = sorted(set(weight_map.values()) - set(files))
    if missing:
        return f"weights missing: {', '.join(missing)} (named in {index}) — fetch the repo again"
    return None


def _has_chat_template(files: dict[str, _File]) -> bool:
    if "chat_template.jinja" in files or "chat_template.json" in files:
        return True
    tok = files.get("tokenizer_config.json")
    if tok is None or tok.blob is None:
        return False
    try:
        return bool(json.loads(tok.path.read_text()).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return False


def _incomplete_entry(snap: _Snapshot, blobs: list[Path]) -> ModelEntry:
    """The repo's downloads in progress (or cut), as one entry that cannot run."""
    size, magic = 0, b""
    for blob in blobs:
        try:
            size += blob.stat().st_size
            with open(blob, "rb") as fh:
                magic = magic or fh.read(4)
        except OSError:
            pass
    return ModelEntry(
        name=f"hf:{snap.repo_id}",
        source=SOURCE,
        format="gguf" if magic == b"GGUF" else "hf",
        path=None,
        size_bytes=size,
        problem=f"download incomplete ({size / 1e6:.1f} MB so far) — fetch it again with --model "
        f"hf:{snap.repo_id}[:QUANT] to resume",
    )
