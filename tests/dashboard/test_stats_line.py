"""The statistics line under a chat reply (dashboard.ui.stats_markdown): a local chat stopped mid-reply says
it was cancelled, with what was measured up to the cancel, and never that the model runs on a server."""

from __future__ import annotations

import dataclasses
import threading

from dashboard.ui import stats_markdown
from engines.base import GenerationParams, LoadConfig
from engines.process.proxy import WorkerEngine

LONG = GenerationParams(max_tokens=400, ignore_eos=True)


def test_cancelled_local_chat_says_cancelled_with_what_was_measured(smollm2_ref):
    engine = WorkerEngine("llamacpp")
    engine.load(smollm2_ref, LoadConfig(n_ctx=512, n_threads=2))
    try:
        cancel, chunks, final = threading.Event(), 0, None
        for chunk in engine.stream("Tell me a long story.", LONG, cancel):
            chunks += 1
            if chunks == 3:
                cancel.set()
            final = chunk.stats or final
    finally:
        engine.unload()
    assert final is not None and final.stop_reason == "cancelled" and final.worker_pid is not None
    line = stats_markdown(final)
    assert line.startswith("**cancelled** — what was measured up to the cancel: **TTFT** ")
    assert "runs on a server" not in line and "**stop** cancelled" in line
    assert f"**generation** {final.gen_tokens} tok" in line and final.gen_tokens >= 2
    # stopped before the engine reported (engines.process.streams builds the record itself): no memory figure
    early = dataclasses.replace(final, worker_peak_private_bytes=None, peak_rss_bytes=0)
    assert "not measured: cancelled before the model's worker reported it" in stats_markdown(early)
    assert stats_markdown(early).startswith("**cancelled**") and "server" not in stats_markdown(early)
    # the same record as a server engine reports it (no worker of ours): the server label stays
    server = dataclasses.replace(final, worker_pid=None, worker_peak_private_bytes=None, stop_reason="stop")
    assert "not measured: the model runs on a server" in stats_markdown(server)
    assert not stats_markdown(server).startswith("**cancelled**")
