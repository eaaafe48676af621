"""A loopback Hugging Face Hub: the file API that huggingface_hub 1.x speaks to HF_ENDPOINT, serving real files.

What the client reads, as huggingface_hub 1.33's hf_api.py, file_download.py and utils/_http.py read it:
- `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}`: `sha` and `siblings` (with `?blobs=true`:
  `size`, `blobId` and `lfs: {size, sha256, pointerSize}`), `gated`;
- `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=true`: files with `oid`, `size`, `lfs: {oid, size,
  pointerSize}`, and directories;
- `HEAD` / `GET /{repo}/resolve/{rev}/{path}`: `X-Repo-Commit`, `ETag` (quoted; the LFS sha256 for LFS files,
  the git blob sha1 otherwise), `X-Linked-Etag` / `X-Linked-Size` for LFS files, `Content-Length`,
  `Accept-Ranges: bytes`; `Range: bytes=a-[b]` answers 206 with `Content-Range`;
- errors the client maps by `X-Error-Code`: 404 `RepoNotFound`, `RevisionNotFound`, `EntryNotFound` (with
  `X-Repo-Commit`), 401 `GatedRepo` for a gated repo's files unless `Authorization: Bearer TOKEN` is sent.

Test switches: `cut_next(repo, path, n)` drops the connection once after n body bytes (the client resumes
with a Range request), `throttle_bps` slows every body (for cancelling mid-download), and `served` counts
the body bytes sent per (repo, path) so a test can tell what was downloaded. No xet headers are sent, so the
client downloads over plain HTTP even with hf_xet installed.

Fixtures for any test module (`from tests.hub_server import hub, hub_repos, hf_home  # noqa: F401`, or
through tests/models/conftest.py): `hub` (the server with the bundled GGUFs, the sentence-transformers
folder and the broken repos), `hub_repos` (adds the MLX 4-bit and safetensors repos converted from the
bundled SmolLM2, and that GGUF split in two shards) and `hf_home` (an HF_HOME whose hub cache
huggingface_hub's own downloads filled from it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TOKEN = "hf_localbench_test_token"
"""The one token the server accepts for gated repos."""
LFS_SUFFIXES = (".gguf", ".safetensors", ".bin")
CHUNK = 256 * 1024

SMOLLM_GGUF_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
SMOLLM_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_GGUF_REPO = "unsloth/gemma-3-270m-GGUF"
GEMMA_GGUF_FILE = "gemma-3-270m-Q4_K_M.gguf"
GATED_REPO = "localbench/gated-SmolLM2-GGUF"
ST_REPO = "sentence-transformers/all-MiniLM-L6-v2"
NOT_GGUF_REPO = "localbench/not-really-GGUF"
MLX_REPO = "mlx-community/SmolLM2-135M-Instruct-4bit"
HF_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct"
MISSING_SHARD_REPO = "localbench/SmolLM2-135M-4bit-missing-shard"
SPLIT_GGUF_REPO = "localbench/SmolLM2-135M-Instruct-split-GGUF"
SPLIT_GGUF_FILES = ("SmolLM2-135M-Instruct-Q4_1-00001-of-00002.gguf", "SmolLM2-135M-Instruct-Q4_1-00002-of-00002.gguf")

_SHA256: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA256:
        with open(path, "rb") as fh:
            _SHA256[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _SHA256[key]


@dataclass
class ServedFile:
    """One file of a served repo: real bytes from disk, or small text a test wrote."""

    path: str
    source: Path | None = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        self.size = self.source.stat().st_size if self.source is not None else len(self.data or b"")
        self.lfs = self.path.endswith(LFS_SUFFIXES)
        self.sha256 = _sha256(self.source) if self.lfs and self.source else hashlib.sha256(self.data or b"").hexdigest()
        if self.lfs:  # the git blob of an LFS file is its pointer; its id only has to be stable here
            self.oid = hashlib.sha1(f"lfs:{self.sha256}".encode()).hexdigest()
        else:
            head = f"blob {self.size}\0".encode()
            self.oid = hashlib.sha1(head + self.read(0, self.size)).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end)."""
        if self.data is not None:
            return self.data[start:end]
        with open(self.source, "rb") as fh:
            fh.seek(start)
            return fh.read(end - start)


@dataclass
class Repo:
    """A model repo on the loopback hub."""

    repo_id: str
    files: dict[str, ServedFile]
    gated: bool = False
    sha: str = ""

    @classmethod
    def of(cls, repo_id: str, files: dict[str, Path | bytes | str], gated: bool = False) -> Repo:
        served = {}
        for path, what in files.items():
            if isinstance(what, Path):
                served[path] = ServedFile(path, source=what)
            else:
                served[path] = ServedFile(path, data=what.encode() if isinstance(what, str) else what)
        repo = cls(repo_id, served, gated)
        digest = hashlib.sha1(repo_id.encode())
        for p in sorted(served):
            digest.update(f"{p}:{served[p].oid}".encode())
        repo.sha = digest.hexdigest()
        return repo

    @classmethod
    def of_folder(cls, repo_id: str, folder: Path, skip: tuple[str, ...] = (), gated: bool = False) -> Repo:
        """A repo holding every file under `folder` (sub-folders included), minus names in `skip`."""
        files: dict[str, Path | bytes | str] = {}
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.is_file() and path.name not in skip and not rel.startswith("."):
                files[rel] = path
        return cls.of(repo_id, files, gated)


@dataclass
class HubServer:
    """The loopback hub (start with `with HubServer(repos) as hub:`; `hub.url` is the HF_ENDPOINT)."""

    repos: dict[str, Repo] = field(default_factory=dict)
    token: str = TOKEN
    throttle_bps: float | None = None
    """Body bytes per second for every download; None: as fast as loopback goes."""
    served: Counter = field(default_factory=Counter)
    """Body bytes sent per (repo_id, path), GETs only."""
    requests: list[tuple[str, str, str | None, int]] = field(default_factory=list)
    """(method, path, Range header, status) of every request."""
    _cuts: dict[tuple[str, str], int] = field(default_factory=dict)
    _generation: int = 0
    """Bumped by reset(): a body still streaming to a client that went away counts for the old counters."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo: Repo) -> Repo:
        self.repos[repo.repo_id] = repo
        return repo

    def cut_next(self, repo_id: str, path: str, after_bytes: int) -> None:
        """Drop the connection of the next GET of that file after `after_bytes` body bytes (once)."""
        self._cuts[(repo_id, path)] = after_bytes

    def reset(self) -> None:
        """Forget the counters, the request log, cuts and the throttle."""
        with self._lock:
            self._generation += 1
            self.served.clear()
            self.requests.clear()
            self._cuts.clear()
            self.throttle_bps = None

    def bytes_served(self, repo_id: str, path: str | None = None) -> int:
        """Body bytes sent for one file, or for every file of the repo."""
        return sum(n for (r, p), n in self.served.items() if r == repo_id and path in (None, p))

    def __enter__(self) -> HubServer:
        hub = self

        class Handler(_Handler):
            server_hub = hub

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_hub: HubServer

    def log_message(self, *args) -> None:  # quiet: the request log is in hub.requests
        pass

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    # --- routing ---------------------------------------------------------------------------------

    def _route(self, head: bool) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        query = urllib.parse.parse_qs(url.query)
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo = self._repo("/".join(parts[2:4]))
            if repo is None:
                return
            rest = parts[4:]
            if not rest:
                return self._info(repo, "main", query)
            if rest[0] == "revision" and len(rest) == 2:
                return self._info(repo, rest[1], query)
            if rest[0] == "tree" and len(rest) >= 2:
                return self._tree(repo, rest[1], "/".join(rest[2:]), query)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = self._repo("/".join(parts[:2]))
            if repo is not None:
                self._resolve(repo, parts[3], "/".join(parts[4:]), head)
            return
        self._error(404, "EntryNotFound", f"no route for {url.path}")

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.server_hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
        return repo

    def _revision_ok(self, repo: Repo, rev: str) -> bool:
        if rev in ("main", repo.sha):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", repo)
        return False

    # --- the API -------------------------------------------------------------------------------

    def _info(self, repo: Repo, rev: str, query: dict) -> None:
        if not self._revision_ok(repo, rev):
            return
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for f in repo.files.values():
            sib: dict = {"rfilename": f.path}
            if blobs:
                sib |= {"size": f.size, "blobId": f.oid}
                if f.lfs:
                    sib["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": 134}
            siblings.append(sib)
        now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).isoformat().replace("+00:00", ".000Z")
        body = {
            "_id": repo.sha[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.sha,
            "lastModified": now,
            "createdAt": now,
            "private": False,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "tags": ["gguf"] if any(p.endswith(".gguf") for p in repo.files) else [],
            "siblings": siblings,
        }
        self._json(200, body, repo)

    def _tree(self, repo: Repo, rev: str, under: str, query: dict) -> None:
        if not self._revision_ok(repo, rev):
            return
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{under}/" if under else ""
        out, folders = [], set()
        for f in sorted(repo.files.values(), key=lambda f: f.path):
            if not f.path.startswith(prefix):
                continue
            rest = f.path[len(prefix) :]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/", 1)[0])
                continue
            for i in range(rest.count("/")):
                folders.add(prefix + "/".join(rest.split("/")[: i + 1]))
            item = {"type": "file", "oid": f.oid, "size": f.size, "path": f.path}
            if f.lfs:
                item["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
            out.append(item)
        dirs = [
            {"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d} for d in folders
        ]
        self._json(200, sorted(dirs, key=lambda d: d["path"]) + out, repo)

    # --- files ---------------------------------------------------------------------------------

    def _resolve(self, repo: Repo, rev: str, path: str, head: bool) -> None:
        hub = self.server_hub
        if not self._revision_ok(repo, rev):
            return
        if repo.gated and self.headers.get("Authorization") != f"Bearer {hub.token}":
            message = (
                f"Access to model {repo.repo_id} is restricted. You must have access to it and be authenticated "
                "to access it. Please log in."
            )
            return self._error(401, "GatedRepo", message, repo)
        f = repo.files.get(path)
        if f is None:
            return self._error(404, "EntryNotFound", f'{path} does not exist on "{rev}"', repo)
        start, end, status = 0, f.size, 200
        ranged = self.headers.get("Range")
        if ranged and ranged.startswith("bytes="):
            first, _, last = ranged[len("bytes=") :].partition("-")
            start = int(first) if first else max(f.size - int(last), 0)
            end = min(int(last) + 1, f.size) if first and last else f.size
            if start >= f.size:
                return self._error(416, "RangeNotSatisfiable", "Requested range not satisfiable", repo)
            status = 206
        self.send_response(status)
        self.send_header("X-Repo-Commit", repo.sha)
        self.send_header("ETag", f'"{f.etag}"')
        if f.lfs:
            self.send_header("X-Linked-Etag", f'"{f.sha256}"')
            self.send_header("X-Linked-Size", str(f.size))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{f.size}")
        self.end_headers()
        with hub._lock:
            hub.requests.append((self.command, self.path, ranged, status))
            cut = None if head else hub._cuts.pop((repo.repo_id, path), None)
        if head:
            return
        self._send_body(repo.repo_id, f, start, end, cut)

    def _send_body(self, repo_id: str, f: ServedFile, start: int, end: int, cut: int | None) -> None:
        hub = self.server_hub
        pos, generation = start, hub._generation
        try:
            while pos < end:
                n = min(CHUNK, end - pos)
                if cut is not None:
                    n = min(n, start + cut - pos)
                    if n <= 0:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                self.wfile.write(f.read(pos, pos + n))
                pos += n
                with hub._lock:
                    if hub._generation == generation:
                        hub.served[(repo_id, f.path)] += n
                if hub.throttle_bps:
                    time.sleep(n / hub.throttle_bps)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # --- replies -------------------------------------------------------------------------------

    def _json(self, status: int, body, repo: Repo | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if repo is not None:
            self.send_header("X-Repo-Commit", repo.sha)
        self.end_headers()
        with self.server_hub._lock:
            self.server_hub.requests.append((self.command, self.path, self.headers.get("Range"), status))
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, repo: Repo | None = None) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if repo is not None:
            self.send_header("X-Repo-Commit", repo.sha)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with self.server_hub._lock:
            self.server_hub.requests.append((self.command, self.path, self.headers.get("Range"), status))
        if self.command != "HEAD":
            self.wfile.write(data)


# --- the repos, from the bundled models -------------------------------------------------------------

README = "---\nlicense: apache-2.0\n---\n# {repo}\n\nServed by localbench's loopback hub for tests.\n"


def bundled_repos() -> list[Repo]:
    """The repos made of files that ship with the install: the two bundled GGUFs (one also gated), the
    bundled sentence-transformers folder, and a repo whose only '.gguf' is not GGUF."""
    from engines.embeddings import bundled_model_path
    from models.catalog import gemma3_path, smollm2_path

    smollm, gemma, minilm = smollm2_path(), gemma3_path(), bundled_model_path()
    assert smollm and gemma and minilm, "the bundled models are not installed (make install)"
    return [
        Repo.of(SMOLLM_GGUF_REPO, {SMOLLM_GGUF_FILE: smollm, "README.md": README.format(repo=SMOLLM_GGUF_REPO)}),
        Repo.of(GEMMA_GGUF_REPO, {GEMMA_GGUF_FILE: gemma, "README.md": README.format(repo=GEMMA_GGUF_REPO)}),
        Repo.of(GATED_REPO, {SMOLLM_GGUF_FILE: smollm, "README.md": README.format(repo=GATED_REPO)}, gated=True),
        Repo.of_folder(ST_REPO, minilm),
        Repo.of(NOT_GGUF_REPO, {"model-Q4_0.gguf": README.format(repo=NOT_GGUF_REPO) * 40}),
    ]


def converted_repos(hf_folder: Path, mlx_folder: Path) -> list[Repo]:
    """The safetensors (bf16) and MLX 4-bit repos converted from the bundled SmolLM2 by models.convert, and
    an MLX repo whose index names a second shard that the repo lacks."""
    from models.converted import MANIFEST

    mlx = Repo.of_folder(MLX_REPO, mlx_folder, skip=(MANIFEST,))
    files: dict[str, Path | bytes | str] = {p: f.source for p, f in mlx.files.items() if p != "model.safetensors"}
    files["model-00001-of-00002.safetensors"] = mlx_folder / "model.safetensors"
    weight_map = {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}
    weight_map["model.norm.weight"] = "model-00002-of-00002.safetensors"
    files["model.safetensors.index.json"] = json.dumps({"metadata": {}, "weight_map": weight_map})
    return [Repo.of_folder(HF_REPO, hf_folder, skip=(MANIFEST,)), mlx, Repo.of(MISSING_SHARD_REPO, files)]


def split_gguf(src: Path, out: Path, shards: int = 2) -> list[Path]:
    """`src` written again as a split GGUF ('<out stem>-00001-of-0000N.gguf', ...) by the gguf package's own
    GGUFWriter (llama.cpp's Python writer: split.no / split.count / split.tensors.count, as gguf-split writes)."""
    import math

    import gguf

    reader = gguf.GGUFReader(src)
    arch = bytes(reader.fields[gguf.Keys.General.ARCHITECTURE].parts[-1]).decode()
    writer = gguf.GGUFWriter(out, arch, split_max_tensors=math.ceil(len(reader.tensors) / shards))
    for f in reader.fields.values():
        if f.name != gguf.Keys.General.ARCHITECTURE and not f.name.startswith("GGUF."):
            array = f.types[0] == gguf.GGUFValueType.ARRAY
            writer.add_key_value(f.name, f.contents(), f.types[0], sub_type=f.types[-1] if array else None)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()
    return sorted(out.parent.glob(f"{out.stem}-*-of-*.gguf"))


@contextlib.contextmanager
def online(endpoint: str) -> Iterator[None]:
    """huggingface_hub allowed to reach `endpoint` in this process: HF_HUB_OFFLINE=0 and HF_ENDPOINT in the
    environment (models.hub reads them at call time) and huggingface_hub.constants.HF_HUB_OFFLINE off (the
    library froze it at import; tests/conftest.py sets HF_HUB_OFFLINE=1). constants.ENDPOINT stays: the
    library swaps an explicit `endpoint=` into its URLs only where they start with the import-time one."""
    from huggingface_hub import constants

    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    saved = constants.HF_HUB_OFFLINE
    os.environ.update(HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint)
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def fill_cache(hub: HubServer, cache: Path) -> None:
    """huggingface_hub's own downloads from `hub` into the cache folder `cache`: the GGUF files one by one
    (hf_hub_download, as `llama -hf` or `hf download REPO FILE` do), every other repo whole (snapshot_download)."""
    from huggingface_hub import hf_hub_download, snapshot_download

    with online(hub.url):
        for repo in hub.repos.values():
            if repo.gated:
                continue
            ggufs = [p for p in repo.files if p.endswith(".gguf")]
            for path in ggufs:
                hf_hub_download(repo.repo_id, path, cache_dir=cache, endpoint=hub.url)
            if not ggufs:
                snapshot_download(repo.repo_id, cache_dir=cache, endpoint=hub.url)


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hub() -> Iterator[HubServer]:
    """The loopback hub with the bundled repos (counters reset by each test that reads them)."""
    with HubServer() as server:
        for repo in bundled_repos():
            server.add(repo)
        yield server


@pytest.fixture(scope="session")
def hub_repos(hub, localbench_home, tmp_path_factory):
    """`hub` plus the safetensors and MLX 4-bit repos converted from the bundled SmolLM2 by models.convert
    (the same cached conversions as tests/engines/converted.py's hf_ref and mlx_refs: done once a session),
    and the bundled SmolLM2 GGUF split in two shards."""
    from models import convert
    from models.catalog import smollm2_path

    hf = convert.convert("smollm2-135m", "hf", progress=lambda f, m: None)
    mlx = convert.convert("smollm2-135m", "mlx-4bit", progress=lambda f, m: None)
    for repo in converted_repos(Path(hf.path), Path(mlx.path)):
        hub.add(repo)
    shards = split_gguf(smollm2_path(), tmp_path_factory.mktemp("split-gguf") / "SmolLM2-135M-Instruct-Q4_1.gguf")
    assert tuple(p.name for p in shards) == SPLIT_GGUF_FILES
    hub.add(Repo.of(SPLIT_GGUF_REPO, {p.name: p for p in shards}))
    return hub


@pytest.fixture(scope="session")
def hf_home(hub_repos, tmp_path_factory) -> Path:
    """An HF_HOME whose hub/ cache huggingface_hub's own downloads filled from the loopback hub (every repo
    but the gated one). Read-only for tests: copy it (`copy_cache`) to break things."""
    home = tmp_path_factory.mktemp("hf-home")
    fill_cache(hub_repos, home / "hub")
    hub_repos.reset()
    return home


def copy_cache(src: Path, dst: Path, repos: list[str] | None = None) -> Path:
    """A copy of an HF cache folder (blobs hard-linked, snapshot links kept), of `repos` only when given."""
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        if child.name.startswith("models--"):
            repo_id = child.name[len("models--") :].replace("--", "/")
            if repos is not None and repo_id not in repos:
                continue
            shutil.copytree(child, dst / child.name, symlinks=True, copy_function=os.link)
    return dst
