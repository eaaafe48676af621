"""Models fetched by name from the Hugging Face Hub (`hf:ORG/REPO[:QUANT]`), through huggingface_hub.

`remote_plan` says what a fetch downloads and what the memory planner needs before any weights move: the
file listing (sizes, LFS sha256), the GGUF header by HTTP Range requests (a few MB), or config.json and the
safetensors headers (the library's own range-request parser). `fetch` downloads into the HF cache, where
models.stores.hf_cache lists it: the GGUF file llama.cpp's `-hf ORG/REPO:QUANT` picks (every shard), or a
whole MLX / safetensors / sentence-transformers repo. Each blob goes to `blobs/<etag>.incomplete` and resumes
from it, in the same call after a cut connection (the library's retries) and in the next call after a cancel
or crash (huggingface_hub 1.x deletes its own per-call temporary file on failure). Only when every blob is
complete does `hf_hub_download` link the snapshot (config.json last), so a failed fetch leaves nothing
runnable. Xet-served files use the library's hf_xet transfer when installed; HF_TOKEN counts as the library
reads it; every failure is one line.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import re
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import (
    BadParameter,
    Cancelled,
    InsufficientDiskSpace,
    InvalidModelFile,
    LocalbenchError,
    ModelNotFound,
    ServerError,
)
from core.progress import Progress
from models.gguf import Tensor, read_gguf
from models.stores import family, hf_cache
from models.stores.entry import ModelEntry
from models.stores.headers import config_quant, config_value, gguf_facts, weight_elements

_SPEC = re.compile(r"^hf:([A-Za-z0-9][\w.-]*/[\w.-]+?)(?::([\w.-]+))?$")
GGUF_HEADER_FIRST_BYTES = 4 * 2**20
GGUF_HEADER_MAX_BYTES = 128 * 2**20
"""The first range read of a GGUF header, and the most it may grow to (vocabularies of 250k tokens take ~6 MB)."""
POLL_S = 0.1


@dataclass(frozen=True)
class HubSpec:
    """A model on the Hub by name."""

    repo_id: str
    """'ORG/REPO'."""
    quant: str | None = None
    """The GGUF quant tag ('Q4_K_M'), as llama.cpp's -hf takes it; None: its default pick, or a whole repo."""
    revision: str = "main"

    @property
    def name(self) -> str:
        return f"hf:{self.repo_id}:{self.quant}" if self.quant else f"hf:{self.repo_id}"


def parse_spec(text: str) -> HubSpec:
    """'hf:ORG/REPO' or 'hf:ORG/REPO:QUANT' → HubSpec; BadParameter for anything else."""
    match = _SPEC.match((text or "").strip())
    if not match or ".." in match[1] or match[1].endswith((".", "-")):
        raise BadParameter(
            f"'{text}' is not a Hub model name — write hf:ORG/REPO, or hf:ORG/REPO:QUANT for a GGUF repo "
            "(e.g. hf:unsloth/Qwen3-4B-GGUF:Q4_K_M)"
        )
    return HubSpec(match[1], match[2].upper() if match[2] else None)


@dataclass(frozen=True)
class RemoteFile:
    """One file a fetch downloads."""

    path: str
    size_bytes: int
    etag: str
    """The blob name in the cache: the LFS sha256, or the git blob id of a small file."""
    sha256: str | None = None
    """The LFS sha256; None for small (non-LFS) files."""


@dataclass(frozen=True)
class RemotePlan:
    """What `fetch(spec)` would download, and what the memory planner needs, read before the weights."""

    spec: HubSpec
    name: str
    """The name the fetched model lists under: 'hf:ORG/REPO:Q4_K_M' or 'hf:ORG/REPO'."""
    commit: str
    format: str
    """'gguf', 'mlx', 'hf' or 'sentence-transformers' (models.stores.entry.FORMATS)."""
    quant: str | None
    """'Q4_K_M' (from the GGUF header), 'MLX 4-bit', 'BF16', ..."""
    files: tuple[RemoteFile, ...]
    download_bytes: int
    """Bytes still to download (total less what the cache already holds, partial downloads included)."""
    total_bytes: int
    """Bytes of every file in `files`."""
    weights_bytes: int
    """Bytes of the weights alone (the GGUF shards, the *.safetensors): the planner's file_bytes."""
    gguf_files: tuple[str, ...] = ()
    """The picked GGUF file and its other shards, in order; () for other formats."""
    available_quants: tuple[str, ...] = ()
    """Every quant tag a GGUF repo offers."""
    arch: str = ""
    n_params: int | None = None
    context_length: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    n_embd: int | None = None
    n_vocab: int | None = None
    chat: bool | None = None
    family: str | None = None
    sha256: str | None = None
    """The LFS sha256 of the (first) GGUF file."""
    tensors: tuple[Tensor, ...] = field(default=(), repr=False, compare=False)
    """The GGUF tensor table (for re-pricing at another quant); () for other formats."""
    header_bytes_read: int = 0
    """Bytes this plan read from GGUF files by Range requests (safetensors headers are read by the library)."""

    def model_spec_fields(self) -> dict:
        """Keyword arguments for planning.specs.ModelSpec (`ModelSpec(**plan.model_spec_fields())`)."""
        shape = ("arch", "n_params", "n_layers", "n_heads", "n_kv_heads", "head_dim", "n_embd", "n_vocab")
        kind = {"gguf": "GGUF file", "mlx": "MLX folder"}.get(self.format, "HF folder")  # as planning.specs says
        return {key: getattr(self, key) for key in (*shape, "context_length", "tensors")} | dict(
            name=self.name,
            source=kind,
            file_bytes=self.weights_bytes or None,
            file_type=(self.quant or "").replace("MLX ", "MLX-").replace("-bit", "bit"),
            note=f"on the Hub: {self.spec.repo_id}@{self.commit[:10]}, read before download",
        )


# --- the Hub ---------------------------------------------------------------------------------------


def endpoint() -> str:
    """HF_ENDPOINT at call time, else huggingface_hub's default (https://huggingface.co)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _check_online(spec: HubSpec) -> None:
    """ServerError when the user set HF_HUB_OFFLINE (read now: the library froze it at import); app.py's own
    default (marked LOCALBENCH_HF_OFFLINE_DEFAULT=1) gives way, since a fetch is the user's own request."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if os.environ.get("LOCALBENCH_HF_OFFLINE_DEFAULT") == "1" and value == "1":
        constants.HF_HUB_OFFLINE = False  # this process only: model workers keep the offline environment
        return
    if value.strip().upper() in ("1", "ON", "YES", "TRUE") if value is not None else constants.HF_HUB_OFFLINE:
        raise ServerError(
            f"HF_HUB_OFFLINE=1 is set, so {spec.name} cannot be fetched — unset HF_HUB_OFFLINE to download it"
        )


def hub_error(err: Exception, spec: HubSpec) -> LocalbenchError:
    """The one-line error a user can act on for a huggingface_hub / httpx failure."""
    import httpx
    from huggingface_hub import errors

    where = endpoint()
    set_by = " (HF_ENDPOINT)" if os.environ.get("HF_ENDPOINT") else ""
    page = f"{where}/{spec.repo_id}"
    if isinstance(err, LocalbenchError):
        return err
    if isinstance(err, errors.OfflineModeIsEnabled):
        return ServerError(f"HF_HUB_OFFLINE is set, so {spec.name} cannot be fetched — unset it to download it")
    if isinstance(err, errors.GatedRepoError) or (
        isinstance(err, errors.HfHubHTTPError)
        and getattr(err.response, "status_code", None) in (401, 403)
        and not isinstance(err, errors.RepositoryNotFoundError)
    ):
        return ServerError(
            f"{spec.repo_id} is gated or private and the Hub refused access — set HF_TOKEN to a token that can "
            f"read it (or run `hf auth login`), and accept the license on {page}"
        )
    if isinstance(err, errors.RepositoryNotFoundError):
        return ModelNotFound(
            f"no model repo {spec.repo_id} on {where}{set_by} — check the name (ORG/REPO); for a private repo "
            "set HF_TOKEN or run `hf auth login`"
        )
    if isinstance(err, errors.RevisionNotFoundError):
        return ModelNotFound(f"{spec.repo_id} has no revision '{spec.revision}' on {where}")
    if isinstance(err, errors.RemoteEntryNotFoundError):
        return ModelNotFound(f"a file of {spec.repo_id} is missing on {where} ({err.response.url}) — try again later")
    if isinstance(err, (httpx.ConnectError, httpx.TimeoutException, ConnectionError, errors.LocalEntryNotFoundError)):
        hint = "check HF_ENDPOINT or unset it" if set_by else "check your network connection or proxy (HTTPS_PROXY)"
        return ServerError(f"cannot reach the Hugging Face Hub at {where}{set_by} to fetch {spec.name} — {hint}")
    if isinstance(err, httpx.TransportError) or (isinstance(err, OSError) and "Consistency check" in str(err)):
        return ServerError(
            f"the download of {spec.name} from {where}{set_by} broke off ({type(err).__name__}) — run the same "
            "fetch again to resume it"
        )
    if isinstance(err, OSError) and not isinstance(err, errors.HfHubHTTPError):
        cls = InsufficientDiskSpace if err.errno == errno.ENOSPC else LocalbenchError
        return cls(
            f"cannot write {spec.name} into the HF cache at {hf_cache.cache_root()} ({err.strerror or err}) — "
            "free some space or point HF_HUB_CACHE elsewhere"
        )
    if isinstance(err, errors.HfHubHTTPError):
        status = getattr(err.response, "status_code", "?")
        message = (getattr(err, "server_message", None) or str(err)).splitlines()[0]
        return ServerError(f"the Hub at {where} answered {status} for {spec.name}: {message}")
    raise err


def _api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def _resolve_url(spec: HubSpec, path: str, commit: str) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(spec.repo_id, path, revision=commit, endpoint=endpoint())


def _get_bytes(url: str, first: int | None = None, last: int | None = None) -> bytes:
    """A file from the Hub into memory, or bytes [first, last] of it with a Range request."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    headers = build_hf_headers() | {"Accept-Encoding": "identity"}
    if first is not None:
        headers["Range"] = f"bytes={first}-{last}"
    response = get_session().get(url, headers=headers, follow_redirects=True)
    hf_raise_for_status(response)
    return response.content


# --- the plan --------------------------------------------------------------------------------------


@dataclass
class _Listing:
    commit: str
    files: dict[str, RemoteFile]


def _listing(spec: HubSpec) -> _Listing:
    """The Hub's file listing with sizes and LFS sha256 (`/api/models/{repo}/revision/{rev}?blobs=true`)."""
    info = _api().model_info(spec.repo_id, revision=spec.revision, files_metadata=True)
    files = {}
    for s in info.siblings or []:
        sha = s.lfs.sha256 if s.lfs else None
        files[s.rfilename] = RemoteFile(s.rfilename, int(s.size or 0), sha or s.blob_id or "", sha)
    return _Listing(info.sha, files)


def remote_plan(spec: HubSpec | str) -> RemotePlan:
    """What fetching `spec` downloads (files, bytes) and the model's shape, read before the weights."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    _check_online(spec)
    try:
        listing = _listing(spec)
        return _plan(spec, listing)
    except Exception as err:  # every library failure becomes one line
        raise hub_error(err, spec) from err


def _plan(spec: HubSpec, listing: _Listing, read_headers: bool = True) -> RemotePlan:
    paths = list(listing.files)
    ggufs = [p for p in paths if hf_cache.is_gguf_model(p)]
    base = dict(spec=spec, commit=listing.commit)
    if ggufs:
        quants = tuple(hf_cache.gguf_tags(paths))
        primary = hf_cache.pick_gguf(paths, spec.quant)
        if primary is None:
            raise ModelNotFound(
                f"{spec.repo_id} has no GGUF file for quant {spec.quant} — it has {', '.join(quants)} "
                f"(e.g. --model hf:{spec.repo_id}:{quants[0]})"
            )
        shards = hf_cache.split_files(paths, primary)
        files = tuple(listing.files[p] for p in shards)
        tag = hf_cache.gguf_name(primary).tag or Path(primary).stem
        plan = dict(
            base,
            name=f"hf:{spec.repo_id}:{tag}",
            format="gguf",
            quant=tag,
            files=files,
            weights_bytes=sum(f.size_bytes for f in files),
            gguf_files=tuple(shards),
            available_quants=quants,
            sha256=files[0].sha256,
        )
        if read_headers:
            plan |= _gguf_header_facts(spec, listing.commit, files)
        return _finish(plan)
    if spec.quant:
        raise BadParameter(
            f"{spec.repo_id} is not a GGUF repo, so it has no ':{spec.quant}' quant — use --model hf:{spec.repo_id}"
        )
    if "config.json" not in listing.files:
        raise ModelNotFound(
            f"{spec.repo_id} holds no model localbench can run: no .gguf file and no config.json "
            "(a GGUF, MLX, safetensors or sentence-transformers repo)"
        )
    files = tuple(listing.files.values())
    weights = [p for p in paths if "/" not in p and p.endswith(".safetensors")]
    plan = dict(
        base,
        name=f"hf:{spec.repo_id}",
        files=files,
        weights_bytes=sum(listing.files[p].size_bytes for p in weights),
        format="hf",
        quant=None,
    )
    if not read_headers:
        st = any(m in listing.files for m in hf_cache.ST_MARKERS)
        return _finish(plan | {"format": "sentence-transformers" if st else "hf"})
    return _finish(plan | _config_facts(spec, listing, weights))


def _finish(plan: dict) -> RemotePlan:
    total = sum(f.size_bytes for f in plan["files"])
    have = sum(_bytes_on_disk(plan["spec"], f) for f in plan["files"])
    return RemotePlan(**plan, total_bytes=total, download_bytes=max(total - have, 0))


def _gguf_header_facts(spec: HubSpec, commit: str, files: tuple[RemoteFile, ...]) -> dict:
    """The GGUF header of each shard, read by Range requests into a sparse temporary file (only as many
    bytes as the key-value section and tensor table take), then read by our own header reader."""
    out: dict = {"header_bytes_read": 0}
    n_params, tensors = 0, []
    for i, f in enumerate(files):
        url = _resolve_url(spec, f.path, commit)
        with tempfile.TemporaryDirectory(prefix="localbench-gguf-") as tmp:
            path = Path(tmp) / Path(f.path).name
            out["header_bytes_read"] += _fetch_gguf_header(url, f, path)
            meta, facts = read_gguf(path), gguf_facts(path)
        n_params += meta.n_params
        tensors += meta.tensors
        if i == 0:
            out |= dict(
                quant=facts.quant,
                arch="" if meta.arch == "unknown" else meta.arch,
                context_length=meta.context_length,
                n_layers=meta.n_layers,
                n_heads=meta.n_heads,
                n_kv_heads=meta.n_kv_heads,
                head_dim=meta.head_dim,
                n_embd=meta.n_embd,
                n_vocab=meta.vocab_size,
                chat=facts.chat,
                family=family.family_from_gguf(facts),
            )
    return out | {"n_params": n_params, "tensors": tuple(tensors)}


def _fetch_gguf_header(url: str, f: RemoteFile, path: Path) -> int:
    """Write the first bytes of a remote GGUF to `path`, as many as its header needs, then extend the file
    (sparse) to the remote size so the header reader's size checks hold. Returns the bytes read."""
    want = min(GGUF_HEADER_FIRST_BYTES, f.size_bytes)
    data = b""
    while True:
        data += _get_bytes(url, len(data), want - 1) if want > len(data) else b""
        path.write_bytes(data)
        try:
            read_gguf(path)
            break  # the whole file fit: a tiny GGUF
        except InvalidModelFile as err:
            if "truncated" in str(err):
                break  # the header parsed and only the tensor data is missing: enough
            if want >= min(GGUF_HEADER_MAX_BYTES, f.size_bytes):
                raise InvalidModelFile(f"{f.path} on the Hub is not a readable GGUF file ({err})") from None
            want = min(want * 2, GGUF_HEADER_MAX_BYTES, f.size_bytes)
    with open(path, "r+b") as fh:
        fh.truncate(f.size_bytes)
    return len(data)


def _config_facts(spec: HubSpec, listing: _Listing, weights: list[str]) -> dict:
    """config.json (a small download into memory) and the safetensors headers (the library's Range reads)."""
    config = json.loads(_get_bytes(_resolve_url(spec, "config.json", listing.commit)))
    if not isinstance(config, dict):
        raise InvalidModelFile(f"{spec.repo_id}/config.json is not a JSON object")
    api, bits = _api(), hf_cache.config_bits(config)
    n_params, header = 0, {}
    for path in weights:
        meta = api.parse_safetensors_file_metadata(spec.repo_id, path, revision=listing.commit)
        header = {name: {"dtype": t.dtype, "shape": t.shape} for name, t in meta.tensors.items()}
        n_params += weight_elements(header, bits)
    get = lambda key: config_value(config, key)  # noqa: E731
    heads, embd = get("num_attention_heads"), get("hidden_size")
    st = any(m in listing.files for m in hf_cache.ST_MARKERS)
    chat = None
    if "chat_template.jinja" in listing.files:
        chat = True
    elif "tokenizer_config.json" in listing.files:
        tok = json.loads(_get_bytes(_resolve_url(spec, "tokenizer_config.json", listing.commit)))
        chat = bool(isinstance(tok, dict) and tok.get("chat_template"))
    return dict(
        format="sentence-transformers" if st else "mlx" if config.get("quantization") else "hf",
        quant=config_quant(config) or hf_cache.header_dtype(header),
        arch=str(get("model_type") or ""),
        n_params=n_params or None,
        context_length=get("max_position_embeddings"),
        n_layers=get("num_hidden_layers"),
        n_heads=heads,
        n_kv_heads=get("num_key_value_heads") or heads,
        head_dim=get("head_dim") or (embd // heads if embd and heads else None),
        n_embd=embd,
        n_vocab=get("vocab_size"),
        chat=False if st else chat,
        family=family.family_from_config(config, spec.repo_id, chat),
    )


# --- the download ----------------------------------------------------------------------------------


def _storage(spec: HubSpec) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return hf_cache.cache_root() / repo_folder_name(repo_id=spec.repo_id, repo_type="model")


def _bytes_on_disk(spec: HubSpec, f: RemoteFile) -> int:
    blob = _storage(spec) / "blobs" / f.etag
    partial = blob.with_name(f"{f.etag}.incomplete")
    if f.etag and blob.exists():
        return f.size_bytes
    return partial.stat().st_size if f.etag and partial.exists() else 0


_BLOB_LOCKS: collections.defaultdict[str, threading.Lock] = collections.defaultdict(threading.Lock)
"""One writer per blobs/<etag>.incomplete in this process (a cancelled worker finishes its chunk first)."""


class _Meter:
    """Bytes arriving across every file of a fetch, reported as progress(fraction, message); raises
    Cancelled in the downloading thread once `stop` or `cancel` is set."""

    def __init__(self, spec: HubSpec, plan: RemotePlan, progress: Progress | None, cancel: threading.Event | None):
        self.spec, self.total, self.progress, self.cancel = spec, max(plan.total_bytes, 1), progress, cancel
        self.done, self.stop = plan.total_bytes - plan.download_bytes, threading.Event()

    def stopped(self) -> bool:
        return self.stop.is_set() or (self.cancel is not None and self.cancel.is_set())

    def add(self, n: int, path: str) -> None:
        if self.stopped():
            raise Cancelled(f"the download of {self.spec.name} was cancelled — fetch it again to resume")
        self.done += n
        if self.progress is not None:
            mb = f"{self.done / 1e6:,.0f} of {self.total / 1e6:,.0f} MB"
            self.progress(min(self.done / self.total, 1.0), f"downloading {self.spec.repo_id}/{path}: {mb}")

    def bar_class(self, path: str):
        """A tqdm class for huggingface_hub's `tqdm_class`: it shows nothing and reports each chunk here."""
        from tqdm import tqdm

        meter = self

        class Bar(tqdm):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **{**kwargs, "disable": True})

            def update(self, n=1):
                meter.add(int(n or 0), path)

        return Bar


def fetch(
    spec: HubSpec | str, *, progress: Progress | None = None, cancel: threading.Event | None = None
) -> ModelEntry:
    """Download `spec` into the HF cache (resuming what is there) and return its hf_cache entry.

    `progress(fraction, message)` follows the bytes; `cancel` stops it within about a second (Cancelled),
    keeping the partial blobs for the next call. Raises ModelNotFound / ServerError / BadParameter with one
    line. Offline (HF_HUB_OFFLINE) or unreachable, a model already in the cache is returned as it is.
    """
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    try:
        _check_online(spec)
        plan = _plan(spec, _listing(spec), read_headers=False)
    except Exception as err:  # every library failure becomes one line
        error = hub_error(err, spec)
        cached = cached_entry(spec) if isinstance(error, ServerError) else None
        if cached is not None:
            return cached
        raise error from err
    meter = _Meter(spec, plan, progress, cancel)
    try:
        for f in plan.files:
            _run(lambda f=f: _download_blob(spec, plan.commit, f, meter), meter)
        _run(lambda: _place(spec, plan), meter)
    except Exception as err:
        raise hub_error(err, spec) from err
    finally:
        meter.stop.set()  # a worker still inside a chunk stops at the next one (Ctrl-C included)
    if progress is not None:
        progress(1.0, f"{plan.name} downloaded")
    return _entry_for(plan)


def _run(work: Callable[[], None], meter: _Meter) -> None:
    """Run `work` in a thread and wait, polling for a cancel: a read blocked on the network cannot be
    interrupted, so the caller gets Cancelled at once and the worker stops at its next chunk."""
    box: dict = {}

    def target() -> None:
        try:
            work()
        except BaseException as err:  # handed to the waiting thread
            box["error"] = err

    worker = threading.Thread(target=target, name=f"fetch {meter.spec.name}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(POLL_S)
        if meter.stopped() and worker.is_alive():
            meter.stop.set()
            raise Cancelled(f"the download of {meter.spec.name} was cancelled — fetch it again to resume")
    if "error" in box:
        raise box["error"]


def _download_blob(spec: HubSpec, commit: str, f: RemoteFile, meter: _Meter) -> None:
    """blobs/<etag>, downloaded to blobs/<etag>.incomplete and resumed from its size."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers
    from huggingface_hub.utils._runtime import is_xet_available

    blobs = _storage(spec) / "blobs"
    if f.etag and (blobs / f.etag).exists():
        return
    url = _resolve_url(spec, f.path, commit)
    meta = get_hf_file_metadata(url, endpoint=endpoint())
    blob = blobs / (meta.etag or f.etag)  # the name hf_hub_download links the snapshot to
    if blob.exists():
        return
    if meta.xet_file_data is not None and is_xet_available():
        # the library's fast transfer (hf_xet) with its own chunk cache; it also places the snapshot link
        where = dict(revision=commit, cache_dir=hf_cache.cache_root(), endpoint=endpoint())
        hf_hub_download(spec.repo_id, f.path, **where, tqdm_class=meter.bar_class(f.path))
        return
    blobs.mkdir(parents=True, exist_ok=True)
    partial = blobs / f"{blob.name}.incomplete"
    with _BLOB_LOCKS[str(partial)]:
        if blob.exists():
            return
        headers = build_hf_headers() | {"Accept-Encoding": "identity"}
        if urllib.parse.urlsplit(meta.location or url).netloc != urllib.parse.urlsplit(url).netloc:
            headers.pop("authorization", None)  # a signed CDN URL: the token is for the Hub only
        with open(partial, "ab") as fh:  # appends: resumes from what an earlier call left
            size = meta.size or f.size_bytes
            bar = meter.bar_class(f.path)
            http_get(
                meta.location or url, fh, resume_size=fh.tell(), headers=headers, expected_size=size, tqdm_class=bar
            )
        os.replace(partial, blob)


def _place(spec: HubSpec, plan: RemotePlan) -> None:
    """Let huggingface_hub link every complete blob into the snapshot and write refs/main: config.json last,
    so a placement cut short never shows a folder model."""
    from huggingface_hub import hf_hub_download

    for f in sorted(plan.files, key=lambda f: f.path == "config.json"):
        hf_hub_download(
            spec.repo_id, f.path, revision=spec.revision, cache_dir=hf_cache.cache_root(), endpoint=endpoint()
        )


def _entry_for(plan: RemotePlan) -> ModelEntry:
    snapshot = _storage(plan.spec) / "snapshots" / plan.commit
    want = str(snapshot / plan.gguf_files[0]) if plan.gguf_files else str(snapshot)
    found = next((e for e in hf_cache.scan(repo_id=plan.spec.repo_id) if e.path == want), None)
    if found is not None:
        return found
    raise ModelNotFound(f"{plan.name} was downloaded but is not in the HF cache at {hf_cache.cache_root()}")


def cached_entry(spec: HubSpec | str) -> ModelEntry | None:
    """The runnable HF-cache entry `spec` names, picked as llama.cpp's -hf picks; None when not cached."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    entries = [e for e in hf_cache.scan(repo_id=spec.repo_id) if e.runnable]
    ggufs = {str(Path(e.path).name): e for e in entries if e.format == "gguf"}
    if ggufs:
        pick = hf_cache.pick_gguf(list(ggufs), spec.quant)
        return ggufs.get(pick) if pick else None
    if spec.quant:
        return None
    return next((e for e in entries if e.name == spec.name), None)
