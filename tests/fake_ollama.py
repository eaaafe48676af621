"""A loopback Ollama server for tests, backed by the real llama.cpp engine on the bundled GGUF.

No Ollama binary can be installed here, so this server speaks Ollama's REST API as documented in
docs/api.md of ollama/ollama ("API": Conventions, Generate a completion, Generate a chat completion,
List Local Models, Show Model Information, Pull a Model, Generate Embeddings, List Running Models)
plus GET /api/version. What it follows from those docs:

- durations are nanoseconds; /api/chat and /api/generate stream NDJSON (one JSON object per line,
  HTTP/1.1 chunked transfer as Ollama's Go server sends it) and end with a `done: true` object carrying
  total_duration, load_duration, prompt_eval_count, prompt_eval_duration, eval_count, eval_duration
  and done_reason; `stream: false` returns one object;
- an empty `messages` (chat) or empty `prompt` (generate) loads the model (done_reason "load"), and
  with keep_alive 0 unloads it (done_reason "unload"); options num_ctx, num_thread, num_predict,
  seed, temperature, top_k, top_p and stop are honoured (a new num_ctx or num_thread reloads);
- /api/tags and /api/ps list models with `details{format, family, families, parameter_size,
  quantization_level}`; /api/ps adds size, size_vram, expires_at; /api/show gives details,
  parameters, template and model_info with `<arch>.block_count`, `.attention.head_count(_kv)`,
  `.embedding_length`, `.context_length`;
- /api/pull streams {"status"} objects, then {"status","digest","total","completed"}, then
  "verifying sha256 digest", "writing manifest", "success"; a name the registry lacks streams
  {"error": "pull model manifest: file does not exist"};
- /api/embed returns L2-normalised `embeddings` for `input` (a string or a list);
- an unknown model answers HTTP 404 {"error": "model 'x' not found"}.

Every number is real: generation runs llama.cpp on SmolLM2-135M, its perf counters give the
durations, the pull really reads and hashes the file. Fault modes switch per test (`set_fault`, or
POST /_fault for a server run as `python tests/fake_ollama.py --port N`): "die" (close the socket
mid-stream), "http500", "malformed" (a broken NDJSON line), "slow" (silence before answering),
"auth" (401 without the right bearer key).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.errors import LocalbenchError  # noqa: E402
from engines.base import GenerationParams, LoadConfig  # noqa: E402
from models.gguf import read_gguf  # noqa: E402

VERSION = "0.6.3-localbench-fake"
DEFAULT_NAME = "smollm2:135m"
PULLABLE = ("smollm2:135m", "smollm2:latest", "smollm2:135m-instruct-q4_1")
"""Names the fake 'registry' can pull: each is the bundled GGUF."""
DEFAULT_KEEP_ALIVE_S = 300.0
STREAM_PATHS = ("/api/chat", "/api/generate")
ERROR_500 = "llama runner process has terminated: signal: killed"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def parse_keep_alive(value) -> float | None:
    """Seconds from Ollama's keep_alive (number of seconds or '5m'/'30s'/'1h'); None = forever."""
    if value is None or value == "":
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, (int, float)):
        return None if value < 0 else float(value)
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value))
    if not m:
        raise ValueError(f"invalid keep_alive {value!r}")
    n = float(m.group(1))
    if n < 0:
        return None
    return n * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def parameter_size(n_params: int) -> str:
    """Ollama's label: '134.52M', '8.0B'."""
    return f"{n_params / 1e9:.1f}B" if n_params >= 1e9 else f"{n_params / 1e6:.2f}M"


class FakeOllama:
    """The server; `start()` returns its URL. Thread-safe; generation is serialized like a single runner."""

    def __init__(self, model_path: str, names: tuple[str, ...] = (DEFAULT_NAME,), n_threads: int = 2) -> None:
        self.model_path = str(model_path)
        self.meta = read_gguf(self.model_path)
        self.digest = self._sha256()
        self.n_threads = n_threads
        self.models: dict[str, str] = {name: now_iso() for name in names}
        """Installed names → modified_at."""
        self.loaded: dict[str, float | None] = {}
        """Loaded names → expiry (time.time()), None = never."""
        self.fault: dict = {}
        self.requests: list[tuple[str, dict]] = []
        """(path, body) of every request, for tests that check what the client sent."""
        self._engine = None
        self._engine_key: tuple | None = None
        self._embedder = None
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        self._server = _QuietServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-ollama", daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            if self._engine is not None:
                self._engine.unload()
            self._engine = None

    def set_fault(
        self,
        mode: str | None,
        *,
        after: int = 2,
        slow_s: float = 3.0,
        count: int | None = None,
        skip: int = 0,
        api_key: str = "",
        paths: tuple[str, ...] = STREAM_PATHS,
    ) -> None:
        """Switch a fault on for `count` matching requests (None: until cleared), after letting `skip` through."""
        if mode not in (None, "die", "http500", "malformed", "slow", "auth"):
            raise ValueError(f"unknown fault {mode!r}")
        self.fault = (
            {}
            if mode is None
            else {
                "mode": mode,
                "after": after,
                "slow_s": slow_s,
                "count": count,
                "skip": skip,
                "api_key": api_key,
                "paths": tuple(paths),
            }
        )

    def clear_fault(self) -> None:
        self.fault = {}

    def _take_fault(self, path: str) -> dict:
        with self._lock:
            f = self.fault
            if not f or path not in f["paths"]:
                return {}
            if f["skip"] > 0:
                f["skip"] -= 1
                return {}
            if f["count"] is not None:
                if f["count"] <= 0:
                    return {}
                f["count"] -= 1
            return dict(f)

    # -- model state --------------------------------------------------------------------------------

    def _sha256(self) -> str:
        h = hashlib.sha256()
        with open(self.model_path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        return h.hexdigest()

    def canonical(self, name: str) -> str | None:
        name = (name or "").strip()
        for candidate in (name, f"{name}:latest"):
            if candidate in self.models:
                return candidate
        return None

    def details(self) -> dict:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.meta.arch,
            "families": [self.meta.arch],
            "parameter_size": parameter_size(self.meta.n_params),
            "quantization_level": self.meta.file_type,
        }

    def engine_for(self, name: str, options: dict) -> tuple[object, float]:
        """The llama.cpp engine loaded with this request's num_ctx/num_thread; (engine, load seconds)."""
        from engines.llamacpp import LlamaCppEngine
        from models.catalog import resolve_model

        n_ctx = int(options.get("num_ctx") or 2048)
        n_threads = int(options.get("num_thread") or self.n_threads)
        key = (n_ctx, n_threads)
        with self._lock:
            load_s = 0.0
            if self._engine is None or self._engine_key != key:
                if self._engine is not None:
                    self._engine.unload()
                t0 = time.perf_counter()
                engine = LlamaCppEngine()
                engine.load(resolve_model(self.model_path), LoadConfig(n_ctx=n_ctx, n_threads=n_threads))
                self._engine, self._engine_key = engine, key
                load_s = time.perf_counter() - t0
            return self._engine, load_s

    def touch(self, name: str, keep_alive) -> None:
        seconds = parse_keep_alive(keep_alive)
        with self._lock:
            if seconds == 0:
                self.loaded.pop(name, None)
                if not self.loaded and self._engine is not None:
                    self._engine.unload()
                    self._engine = None
            else:
                self.loaded[name] = None if seconds is None else time.time() + seconds

    def running(self) -> list[dict]:
        with self._lock:
            now = time.time()
            for name, expiry in list(self.loaded.items()):
                if expiry is not None and expiry < now:
                    del self.loaded[name]
            n_ctx = self._engine_key[0] if self._engine_key else 2048
            kv = (self.meta.kv_bytes_per_token_f16 or 0) * n_ctx
            out = []
            for name, expiry in self.loaded.items():
                expires = dt.datetime.fromtimestamp(expiry or now + 10 * 365 * 86400, dt.timezone.utc).isoformat()
                out.append(
                    {
                        "name": name,
                        "model": name,
                        "size": self.meta.file_size_bytes + kv,
                        "digest": self.digest,
                        "details": self.details(),
                        "expires_at": expires,
                        "size_vram": 0,
                        "context_length": n_ctx,
                    }
                )
            return out


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-reply (cancel, timeout) is normal here, not a traceback."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _handler_for(server: FakeOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOllama

    def log_message(self, format, *args):
        pass

    # -- plumbing -----------------------------------------------------------------------------------

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _line(self, obj: dict) -> None:
        self._chunk(json.dumps(obj).encode() + b"\n")

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _die(self) -> None:
        """Close the socket without the terminating chunk, like a server process killed mid-reply."""
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _body(self) -> dict | None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            self._error(400, "invalid character in request body")
            return None
        self.fake.requests.append((self.path, body))
        return body

    def _authorized(self) -> bool:
        f = self.fake.fault
        if f.get("mode") == "auth" and self.headers.get("Authorization") != f"Bearer {f['api_key']}":
            self._error(401, "unauthorized")
            return False
        return True

    # -- routes -------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path == "/api/version":
            self._json(200, {"version": VERSION})
        elif self.path == "/api/tags":
            fake = self.fake
            self._json(
                200,
                {
                    "models": [
                        {
                            "name": n,
                            "model": n,
                            "modified_at": mod,
                            "size": fake.meta.file_size_bytes,
                            "digest": fake.digest,
                            "details": fake.details(),
                        }
                        for n, mod in fake.models.items()
                    ]
                },
            )
        elif self.path == "/api/ps":
            self._json(200, {"models": self.fake.running()})
        elif self.path == "/":
            self.send_response(200)
            self.send_header("Content-Length", "17")
            self.end_headers()
            self.wfile.write(b"Ollama is running")
        else:
            self._error(404, "404 page not found")

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        if self.path == "/_fault":
            self.fake.set_fault(
                body.get("mode"),
                after=int(body.get("after", 2)),
                slow_s=float(body.get("slow_s", 3.0)),
                count=body.get("count"),
                skip=int(body.get("skip", 0)),
                api_key=body.get("api_key", ""),
            )
            self._json(200, {"fault": self.fake.fault})
            return
        if not self._authorized():
            return
        routes = {
            "/api/show": self._show,
            "/api/chat": self._generate,
            "/api/generate": self._generate,
            "/api/pull": self._pull,
            "/api/embed": self._embed,
        }
        route = routes.get(self.path)
        if route is None:
            self._error(404, "404 page not found")
            return
        route(body)

    def _show(self, body: dict) -> None:
        fake = self.fake
        name = fake.canonical(body.get("model") or body.get("name") or "")
        if name is None:
            self._error(404, f"model '{body.get('model')}' not found")
            return
        m, a = fake.meta, fake.meta.arch
        info = {
            "general.architecture": a,
            "general.file_type": 3,
            "general.parameter_count": m.n_params,
            "general.quantization_version": 2,
            f"{a}.block_count": m.n_layers,
            f"{a}.attention.head_count": m.n_heads,
            f"{a}.attention.head_count_kv": m.n_kv_heads,
            f"{a}.embedding_length": m.n_embd,
            f"{a}.context_length": m.context_length,
            f"{a}.vocab_size": m.vocab_size,
            f"{a}.rope.dimension_count": m.head_dim,
        }
        self._json(
            200,
            {
                "modelfile": f"FROM {fake.model_path}\n",
                "parameters": 'stop "<|im_end|>"',
                "template": m.chat_template or "",
                "details": fake.details(),
                "model_info": info,
                "capabilities": ["completion"],
                "modified_at": fake.models[name],
            },
        )

    def _generate(self, body: dict) -> None:
        fake, chat = self.fake, self.path == "/api/chat"
        t_start = time.perf_counter()
        name = fake.canonical(body.get("model", ""))
        if name is None:
            self._error(404, f"model '{body.get('model')}' not found")
            return
        fault = fake._take_fault(self.path)
        mode = fault.get("mode")
        if mode == "slow":
            time.sleep(fault["slow_s"])
        if mode == "http500":
            self._error(500, ERROR_500)
            return
        options = body.get("options") or {}
        keep_alive = body.get("keep_alive")
        base = {"model": name, "created_at": now_iso()}
        empty = not body.get("messages") if chat else not body.get("prompt")
        if empty:  # the documented load / unload call
            reason = "unload" if parse_keep_alive(keep_alive) == 0 else "load"
            if reason == "load":
                fake.engine_for(name, options)
            fake.touch(name, keep_alive)
            final = {**base, "done": True, "done_reason": reason}
            final.update({"message": {"role": "assistant", "content": ""}} if chat else {"response": ""})
            self._json(200, final)
            return
        try:
            engine, load_s = fake.engine_for(name, options)
        except LocalbenchError as err:
            self._error(500, str(err))
            return
        fake.touch(name, keep_alive)
        if chat:
            prompt = [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in body["messages"]]
        elif body.get("raw") or not fake.meta.chat_template:
            prompt = engine.tokenize(body["prompt"]) or body["prompt"]
        else:  # Ollama wraps a generate prompt in the model's template
            prompt = ([{"role": "system", "content": body["system"]}] if body.get("system") else []) + [
                {"role": "user", "content": body["prompt"]}
            ]
        num_predict = int(options.get("num_predict", -1))
        stop = options.get("stop") or ()
        params = GenerationParams(
            max_tokens=num_predict if num_predict > 0 else 512,
            temperature=float(options.get("temperature", 0.8)),
            top_p=float(options.get("top_p", 0.9)),
            top_k=int(options.get("top_k", 40)),
            seed=int(options.get("seed", 0)),
            stop=tuple([stop] if isinstance(stop, str) else stop),
        )
        stream = body.get("stream", True)
        pieces: list[str] = []
        n_sent = 0
        if stream:
            self._start_stream()
        chunks = engine.stream(prompt, params)
        try:
            for chunk in chunks:
                if chunk.stats is not None:
                    stats = chunk.stats
                    break
                pieces.append(chunk.text)
                if not stream:
                    continue
                if mode == "die" and n_sent >= fault["after"]:
                    self._die()
                    return
                if mode == "malformed" and n_sent >= fault["after"]:
                    self._chunk(b'{"model": "' + name.encode() + b'", "message": {"role": "assist\n')
                    self._end_stream()
                    return
                part = {**base, "created_at": now_iso(), "done": False}
                part.update(
                    {"message": {"role": "assistant", "content": chunk.text}} if chat else {"response": chunk.text}
                )
                self._line(part)
                n_sent += 1
        except LocalbenchError as err:
            if stream:
                self._line({"error": str(err)})
                self._end_stream()
            else:
                self._error(400, str(err))
            return
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            chunks.close()  # releases the engine's lock at once, also when the reply was cut
        final = {
            **base,
            "created_at": now_iso(),
            "done": True,
            "done_reason": stats.stop_reason,
            "total_duration": int((time.perf_counter() - t_start) * 1e9),
            "load_duration": int(load_s * 1e9),
            "prompt_eval_count": stats.prompt_tokens,
            "prompt_eval_duration": int(stats.prompt_s * 1e9),
            "eval_count": stats.gen_tokens,
            "eval_duration": int(stats.gen_s * 1e9),
        }
        content = "" if stream else "".join(pieces)
        final.update({"message": {"role": "assistant", "content": content}} if chat else {"response": content})
        if stream:
            self._line(final)
            self._end_stream()
        else:
            self._json(200, final)

    def _pull(self, body: dict) -> None:
        fake = self.fake
        name = (body.get("model") or body.get("name") or "").strip()
        if ":" not in name:
            name += ":latest"
        self._start_stream()
        self._line({"status": "pulling manifest"})
        if name not in PULLABLE:
            self._line({"error": "pull model manifest: file does not exist"})
            self._end_stream()
            return
        total = fake.meta.file_size_bytes
        digest = f"sha256:{fake.digest}"
        h = hashlib.sha256()
        done = 0
        self._line({"status": f"pulling {fake.digest[:12]}", "digest": digest, "total": total})
        with open(fake.model_path, "rb") as fh:
            for block in iter(lambda: fh.read(total // 8 + 1), b""):
                h.update(block)
                done += len(block)
                self._line(
                    {"status": f"pulling {fake.digest[:12]}", "digest": digest, "total": total, "completed": done}
                )
                time.sleep(0.05)  # let a UI show the steps
        self._line({"status": "verifying sha256 digest"})
        if h.hexdigest() != fake.digest:
            self._line({"error": "digest mismatch"})
            self._end_stream()
            return
        self._line({"status": "writing manifest"})
        fake.models[name] = now_iso()
        self._line({"status": "removing any unused layers"})
        self._line({"status": "success"})
        self._end_stream()

    def _embed(self, body: dict) -> None:
        fake = self.fake
        name = fake.canonical(body.get("model", ""))
        if name is None:
            self._error(404, f"model '{body.get('model')}' not found")
            return
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        t0 = time.perf_counter()
        load_s = 0.0
        with fake._lock:
            if fake._embedder is None:
                import llama_cpp

                from engines.llamacpp import choose_repack, open_llama
                from models.gguf import read_gguf

                repack, _ = choose_repack("auto", fake.model_path, read_gguf(fake.model_path).file_type)
                fake._embedder = open_llama(
                    fake.model_path,
                    repack,
                    embedding=True,
                    n_ctx=512,
                    n_threads=fake.n_threads,
                    verbose=False,
                    pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                )
                load_s = time.perf_counter() - t0
            vectors = fake._embedder.embed(texts, normalize=True) if texts else []
            n_tokens = sum(len(fake._embedder.tokenize(t.encode(), add_bos=True)) for t in texts)
        self._json(
            200,
            {
                "model": name,
                "embeddings": vectors,
                "total_duration": int((time.perf_counter() - t0) * 1e9),
                "load_duration": int(load_s * 1e9),
                "prompt_eval_count": n_tokens,
            },
        )


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted: python tests/fake_ollama.py --port 11434 [--model PATH]."""
    from models.catalog import smollm2_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--model", default=str(smollm2_path()))
    args = parser.parse_args(argv)
    server = FakeOllama(args.model)
    print(f"fake Ollama serving {args.model} at {server.start(args.port)}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
