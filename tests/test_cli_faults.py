"""`python app.py bench` when the engine fails natively or the server stalls: exit 2, one line, a failed run;
and when the bench itself is killed: its worker goes with it.

The faults are real: SIGSEGV sent to the bench's own llama.cpp worker process while it generates, a real
llama.cpp server behind a loopback proxy that sends two tokens, then only SSE keep-alives, a loopback
socket that accepts connections and never answers, and SIGTERM / SIGKILL sent to the bench mid-run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.conftest import LLAMA_SERVER_KEY, ROOT, run_app
from tests.engines.test_openai_compat import FaultProxy


def _failed_runs(home) -> list[str]:
    with sqlite3.connect(home / "results.db") as db:
        return [err for (err,) in db.execute("SELECT error FROM runs WHERE status='failed'").fetchall()]


def _worker_of(proc: subprocess.Popen, timeout_s: float = 120) -> psutil.Process:
    """The bench's model worker (a spawned child whose command line runs multiprocessing's spawn)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                if "spawn_main" in " ".join(child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.05)
    raise AssertionError("the bench started no worker process")


def _bench_in_timed_repetitions() -> tuple[subprocess.Popen, psutil.Process]:
    """A `bench` of the default model, and its worker, once it is loaded and past the warm-up."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "bench", "-p", "0", "-n", "128", "-r", "10", "-t", "2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    worker = _worker_of(proc)
    time.sleep(3.0)  # loaded, past the warm-up into the timed repetitions
    return proc, worker


def test_sigsegv_in_the_worker_during_bench_is_exit_2_one_line_and_a_failed_run(localbench_home):
    proc, worker = _bench_in_timed_repetitions()
    worker.send_signal(signal.SIGSEGV)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "SIGSEGV" in lines[0] and "smollm2-135m" in lines[0]
    assert "Traceback" not in stderr
    assert any("SIGSEGV" in err for err in _failed_runs(localbench_home))


@pytest.fixture
def stalling(llama_server, localbench_home):
    p = FaultProxy(llama_server.removesuffix("/v1"), localbench_home / "llama-server.log")
    p.mode, p.after, p.stall_s = "stall", 2, 90.0
    yield p
    p.stop()


def test_bench_timeout_against_a_server_that_stops_sending_tokens(stalling, localbench_home):
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "bench", "--engine", "openai", "--model", "smollm2"]
        + ["--base-url", stalling.url, "--api-key", LLAMA_SERVER_KEY, "-p", "0", "-n", "32", "-r", "1"]
        + ["--no-warmup", "--timeout", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - t0 < 60
    assert "no new token for 10 s" in proc.stderr and "Traceback" not in proc.stderr
    assert any("no new token for 10 s" in err for err in _failed_runs(localbench_home))


def _last_run(home, status: str) -> tuple[str, str, dict]:
    import json

    with sqlite3.connect(home / "results.db") as db:
        row = db.execute(
            "SELECT kind, error, hardware_json FROM runs WHERE status = ? ORDER BY rowid DESC LIMIT 1", (status,)
        ).fetchone()
    assert row is not None, f"no {status} run stored"
    return row[0], row[1], json.loads(row[2])


def test_ctrl_c_during_bench_is_a_cancelled_run_with_hardware_not_a_failed_one(localbench_home):
    from bench.results.store import ResultStore

    ResultStore(localbench_home / "results.db")  # the tables, before counting failed runs
    failed_before = len(_failed_runs(localbench_home))
    proc, _ = _bench_in_timed_repetitions()
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the bench (the worker is not in the terminal's reach here)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "cancelled:" in stderr
    kind, _, hardware = _last_run(localbench_home, "cancelled")
    assert kind == "speed" and hardware["ram_bytes"] > 0 and hardware["os"]
    assert len(_failed_runs(localbench_home)) == failed_before


def test_failed_bench_is_stored_as_failed_with_its_message_and_hardware(localbench_home):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "bench", "--model", "/no/such/model.gguf", "-r", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and "not found" in line, proc.stderr
    kind, error, hardware = _last_run(localbench_home, "failed")
    assert kind == "speed" and error == line.removeprefix("error: ")
    assert hardware["ram_bytes"] > 0


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port whose socket accepts every connection and never sends a byte; yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(sock.accept()[0])  # kept open, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        sock.close()


@pytest.mark.parametrize("engine, flag, url", [("openai", "--base-url", "/v1"), ("ollama", "--host", "")])
def test_bench_against_a_server_that_never_answers_ends_at_the_timeout(engine, flag, url, localbench_home):
    with silent_server() as port:
        t0 = time.monotonic()
        target = (flag, f"http://127.0.0.1:{port}{url}", "--model", "fake")
        proc = run_app("bench", "--engine", engine, *target, "-p", "16", "-n", "8", "-r", "1", "--timeout", "3")
        elapsed = time.monotonic() - t0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "sent nothing for 3 s before answering" in lines[0] and "--timeout SECONDS" in lines[0]
    assert "option timeout_s" not in proc.stderr and "Traceback" not in proc.stderr
    assert elapsed < 3 + 20, f"{elapsed:.1f} s"  # the deadline, plus starting Python and the app on a busy machine


@pytest.mark.parametrize("kind", ["OpenAI-compatible", "Ollama"])
def test_servers_tab_test_against_a_server_that_never_answers_names_its_timeout_field(kind):
    from core.errors import ServerError
    from dashboard.context import AppContext
    from dashboard.tabs.servers import test_connection

    ctx = AppContext(profile=None, config=None, store=None, pool=None)
    with silent_server() as port:
        t0 = time.monotonic()
        with pytest.raises(ServerError) as err:
            test_connection(ctx, kind, f"http://127.0.0.1:{port}", "", False, 1.5)
        elapsed = time.monotonic() - t0
    assert "sent nothing for 1.5 s before answering" in str(err.value)
    assert "the Servers tab's Timeout field" in str(err.value)
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert kind not in ctx.server_options


def _gone_within(proc: psutil.Process, seconds: float) -> bool:
    """Whether `proc` is gone (no such pid, or a zombie waiting for its reaper) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_bench_takes_its_worker_with_it(sig, localbench_home):
    proc, worker = _bench_in_timed_repetitions()  # ~13 s of decoding left when the signal comes
    try:
        proc.send_signal(sig)
        assert _gone_within(worker, 5.0), f"worker {worker.pid} outlived the bench killed by {sig.name}"
        proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()
        proc.kill()
    assert proc.returncode == (130 if sig == signal.SIGTERM else -signal.SIGKILL), proc.returncode
