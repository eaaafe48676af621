"""Engines in worker processes (engines.process.proxy / engines.process.worker), against real faults on real engines.

Every fault here is real: a signal sent with os.kill to the real worker's pid while it loads or streams
the bundled model, a worker frozen with SIGSTOP, an address-space limit set inside the worker, a real
llama.cpp server behind a loopback proxy that stops sending tokens and sends only SSE keep-alives.
Each ends in one EngineCrashed / InsufficientMemory message, and the next request on the same engine
works.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import pytest

import engines.process.supervisor as supervisor
from core.errors import Cancelled, EngineCrashed, InsufficientMemory
from engines.base import GenerationParams, LoadConfig
from engines.process.pool import EnginePool
from engines.process.proxy import WorkerEngine
from engines.process.streams import GuardedEngine
from tests.engines.converted import hf_ref, mlx_refs  # noqa: F401
from tests.engines.test_openai_compat import FaultProxy, config_for

LONG = GenerationParams(max_tokens=400, ignore_eos=True)
STORY = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]
SHORT = GenerationParams(max_tokens=8)


@pytest.fixture(scope="module")
def llama_remote(smollm2_ref):
    engine = WorkerEngine("llamacpp")
    engine.load(smollm2_ref, LoadConfig(n_ctx=512, n_threads=2))
    yield engine
    engine.unload()


def _engine_cases(request):
    """(engine name, model ref, load config) for the real local engines."""
    name = request.param
    if name == "llamacpp":
        return name, request.getfixturevalue("smollm2_ref"), LoadConfig(n_ctx=512, n_threads=2)
    if name == "torch":
        ref = request.getfixturevalue("hf_ref")
        return name, ref, LoadConfig(n_ctx=512, n_threads=1, device="cpu", dtype="bf16")
    ref = request.getfixturevalue("mlx_refs")["mlx-bf16"]
    return name, ref, LoadConfig(n_ctx=512, n_threads=2, device="cpu")


@pytest.fixture
def local_case(request):
    return _engine_cases(request)


def _stream_then_signal(engine: WorkerEngine, sig: int) -> EngineCrashed:
    stream = engine.stream("Tell me a long story about a lighthouse.", LONG)
    next(stream)
    os.kill(engine.pid, sig)
    with pytest.raises(EngineCrashed) as caught:
        for _ in stream:
            pass
    return caught.value


@pytest.mark.parametrize(
    ("local_case", "sig"),
    # both signals on llama.cpp; one each on MLX and torch (the supervisor's handling is the engine's
    # library-independent part; each MLX or torch case loads twice, ~20 s)
    [("llamacpp", signal.SIGSEGV), ("llamacpp", signal.SIGKILL), ("mlx", signal.SIGSEGV), ("torch", signal.SIGKILL)],
    indirect=["local_case"],
)
def test_worker_killed_mid_stream_is_a_message_and_the_next_request_works(local_case, sig):
    name, ref, config = local_case
    engine = WorkerEngine(name)
    engine.load(ref, config)
    try:
        first_pid = engine.pid
        err = _stream_then_signal(engine, sig)
        message = str(err)
        assert signal.Signals(sig).name in message and ref.name in message and "\n" not in message
        assert "log:" in message
        _, stats = engine.generate("Hello", SHORT)
        assert stats.gen_tokens > 0 and engine.pid != first_pid
        assert stats.load_s > 0, "the restart's load is reported on the request that paid for it"
    finally:
        engine.unload()


def test_worker_killed_during_load(smollm2_ref):
    engine = WorkerEngine("llamacpp")
    errors: list[BaseException] = []

    def load():
        try:
            engine.load(smollm2_ref, LoadConfig(n_ctx=512))
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=load)
    thread.start()
    deadline = time.monotonic() + 30
    while engine._worker is None and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(engine._worker.pid, signal.SIGKILL)
    thread.join(60)
    assert errors and isinstance(errors[0], EngineCrashed)
    assert "SIGKILL" in str(errors[0]) and "loading smollm2-135m" in str(errors[0])
    engine.load(smollm2_ref, LoadConfig(n_ctx=512))  # the same engine loads again in a fresh worker
    assert engine.generate("Hello", SHORT)[1].gen_tokens > 0
    engine.unload()


@pytest.mark.skipif(not os.path.exists("/proc/self/limits"), reason="reads /proc (Linux)")
def test_a_crashing_worker_writes_no_core_file(llama_remote):
    with open(f"/proc/{llama_remote.pid}/limits") as f:
        limits = f.read().splitlines()
    assert [line.split()[4] for line in limits if line.startswith("Max core file size")] == ["0"]


def test_stopped_worker_hits_the_liveness_deadline(llama_remote, monkeypatch):
    monkeypatch.setattr(supervisor, "LIVENESS_S", 2.0)
    stream = llama_remote.stream("Tell me a long story.", LONG)
    next(stream)
    pid = llama_remote.pid
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    with pytest.raises(EngineCrashed, match=r"stopped answering while generating \(no heartbeat for 2 s\)"):
        for _ in stream:
            pass
    assert time.monotonic() - t0 < 10
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert llama_remote.generate("Hello", SHORT)[1].gen_tokens > 0


def test_stop_returns_within_a_second_and_the_worker_stays(llama_remote):
    cancel = threading.Event()
    pid = llama_remote.pid
    chunks = 0
    for chunk in llama_remote.stream("Tell me a long story.", LONG, cancel):
        chunks += 1
        if chunks == 3:
            cancel.set()
            t0 = time.monotonic()
        if chunk.stats is not None:
            assert chunk.stats.stop_reason == "cancelled"
    assert time.monotonic() - t0 < 1.5
    assert llama_remote.pid == pid, "a local engine stops at its next token: no restart needed"


def test_cancel_reaches_the_llama_bench_method_in_the_worker_and_the_worker_stays(llama_remote):
    """The parent's event is relayed to the worker's own (Worker.call): the run stops, the model stays loaded."""
    engine = llama_remote
    pid = engine.pid
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        engine.bench_decode(0, 1500, 0, 1000, cancel=cancel)  # hours if the event never reached the loop
    assert time.monotonic() - t0 < 60
    run = engine.bench_decode(0, 2, 0, 1)
    assert engine.pid == pid and len(run.samples_ns) == 1 and run.samples_ns[0] > 0


def test_memory_limit_gives_an_out_of_memory_message(smollm2_ref, llama_remote):
    # The cap: what a worker with this model at n_ctx 512 maps, plus 64 MiB; n_ctx 8192 needs ~190 MiB
    # more for its KV cache alone (2 × 30 layers × 3 KV heads × 64 × 8192 × 2 bytes).
    cap = psutil.Process(llama_remote.pid).memory_info().vms + 64 * 2**20
    engine = WorkerEngine("llamacpp", limits={"address_space_bytes": cap})
    try:
        with pytest.raises(InsufficientMemory, match="out of memory: load could not allocate within the worker's"):
            engine.load(smollm2_ref, LoadConfig(n_ctx=8192))
    finally:
        engine.unload()


def test_each_model_has_its_own_memory_and_unload_returns_it(llama_remote, smollm2_ref):
    _, stats = llama_remote.generate("Hello", SHORT)
    assert stats.worker_pid == llama_remote.pid != os.getpid()
    # the worker's own private memory: at least the weights it read (94 MB file, mostly paged in), and no
    # more than a 135M model with a 512-token context can take
    assert 50 * 2**20 < stats.worker_peak_private_bytes < 1.5 * 2**30
    assert "USS" in stats.worker_memory_source
    reading = llama_remote.memory()
    assert reading["private_bytes"] > 50 * 2**20 and reading["rss_bytes"] >= reading["private_bytes"]
    other = WorkerEngine("llamacpp")
    other.load(smollm2_ref, LoadConfig(n_ctx=512))
    pid = other.pid
    other.unload()
    assert other.pid is None and not psutil.pid_exists(pid)


def test_two_workers_stream_at_once_and_say_contended(smollm2_ref, llama_remote):
    other = WorkerEngine("llamacpp")
    other.load(smollm2_ref, LoadConfig(n_ctx=512, n_threads=1))
    results = {}

    def run(key, engine):
        results[key] = engine.generate("Count to twenty.", GenerationParams(max_tokens=48, ignore_eos=True))[1]

    threads = [threading.Thread(target=run, args=(k, e)) for k, e in (("a", llama_remote), ("b", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    other.unload()
    assert results["a"].gen_tokens == results["b"].gen_tokens == 48
    assert results["a"].contended and results["b"].contended
    assert not llama_remote.generate("Hi", SHORT)[1].contended


def test_pool_puts_local_models_in_workers_and_servers_here():
    pool = EnginePool(guard=None)
    assert isinstance(pool.factory("llamacpp"), WorkerEngine)
    assert isinstance(pool.factory("openai"), GuardedEngine)


@pytest.fixture(scope="module")
def stalling(llama_server, localbench_home):
    p = FaultProxy(llama_server.removesuffix("/v1"), localbench_home / "llama-server.log")
    p.mode, p.after, p.stall_s = "stall", 2, 20.0
    yield p
    p.stop()


def _server_engine(stalling, idle_s: float) -> GuardedEngine:
    from engines.openai_compat import OpenAIEngine

    engine = GuardedEngine(OpenAIEngine(), idle_timeout_s=idle_s)
    engine.load(engine.resolve("smollm2"), config_for(stalling.url))
    return engine


def test_keepalives_are_not_progress_the_idle_deadline_fires(stalling):
    engine = _server_engine(stalling, idle_s=2.0)
    t0 = time.monotonic()
    with pytest.raises(EngineCrashed, match="no new token for 2 s .* --timeout SECONDS"):
        engine.generate(STORY, GenerationParams(max_tokens=64))
    assert time.monotonic() - t0 < 8


def test_stop_ends_a_stuck_server_stream_within_a_second(stalling):
    engine = _server_engine(stalling, idle_s=60.0)
    cancel, stopped_at = threading.Event(), []

    def stop():
        stopped_at.append(time.monotonic())
        cancel.set()

    threading.Timer(2.0, stop).start()  # the server has sent its first tokens, then only keep-alives
    _, stats = engine.generate(STORY, GenerationParams(max_tokens=64), cancel)
    assert stats.stop_reason == "cancelled" and stats.gen_tokens >= 0
    assert time.monotonic() - stopped_at[0] < 1.0


def test_the_worker_reads_requests_only_after_its_target_is_imported():
    """Unpickling a request imports modules; on the reader thread that raced the target's import (dataclasses
    peeks at a partly imported typing). The target is imported with only the heartbeat running, and the
    request sent at once is answered after it."""
    worker = supervisor.Worker("tests.engines.process.worker_target:ThreadsAtImport", "threads at import")
    try:
        names = worker.call("call", ("names", (), {}), "asking the target", 60)
    finally:
        worker.close()
    assert "worker-heartbeat" in names and "worker-reader" not in names


def test_a_worker_started_from_a_thread_that_ended_lives_on():
    """Linux's parent-death signal follows the thread that started the process: a worker started from a
    handler thread that then ends (Gradio's, anyio's) must not die with it. Workers start from the supervisor's
    one spawner thread."""
    box: list[supervisor.Worker] = []

    def start() -> None:  # and wait until it answers: its parent-death signal is armed by then
        box.append(supervisor.Worker(THREADS_TARGET, "started from a thread"))
        box[0].call("call", ("names", (), {}), "asking the target", 60)

    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
    (worker,) = box
    try:
        time.sleep(1.0)
        assert worker.alive()
        names = worker.call("call", ("names", (), {}), "asking the target", 60)
    finally:
        worker.close()
    assert "parent-watchdog" in names and worker.proc.exitcode == 0


def test_a_worker_whose_parent_is_already_gone_exits_at_once():
    """The race: a parent that died before the child armed its parent-death signal. The child is told the
    pid of the process that owns it; any other parent (here: it is told pid 1) ends it at start."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=supervisor._child_main, args=(child_end, THREADS_TARGET, None, None, 1), daemon=True)
    supervisor._spawn(proc)
    child_end.close()
    proc.join(30)
    parent_end.close()
    assert proc.exitcode == 1


THREADS_TARGET = "tests.engines.process.worker_target:ThreadsAtImport"


DASHBOARD_LIKE = f"""
import threading, time
import engines.process.supervisor as supervisor
from engines.process.pool import EnginePool

EnginePool()  # made on the main thread, as the dashboard's is: SIGTERM ends the workers
box = []

def handler():  # a model loaded by a UI handler thread, which then ends
    box.append(supervisor.Worker({THREADS_TARGET!r}, "loaded by a handler"))
    box[0].call("call", ("names", (), {{}}), "asking the target", 60)
    box[0].send("call", ("busy", (60,), {{}}))  # mid-call when the parent dies, as a decode would be

thread = threading.Thread(target=handler)
thread.start()
thread.join()
print(box[0].pid, flush=True)
while True:
    time.sleep(0.1)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_dashboard_like_parent_killed_takes_its_workers_with_it(sig):
    """A long-running parent (the dashboard) whose worker a handler thread started, busy in a 60 s call: killed
    with SIGTERM (its handler kills the workers) or SIGKILL (each worker sees its parent die), the worker is
    gone within 5 s."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    parent = subprocess.Popen([sys.executable, "-c", DASHBOARD_LIKE], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        worker = psutil.Process(int(parent.stdout.readline()))
        parent.send_signal(sig)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.05)
        gone = not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
        parent.wait(timeout=10)
    finally:
        parent.kill()
    assert gone, f"worker {worker.pid} outlived its parent killed by {sig.name}"
