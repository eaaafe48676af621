"""Start-up sweep of half-written caches: abandoned partials go, fresh ones and finished files stay."""

from __future__ import annotations

import json
import os
import time

from core.paths import STALE_S, sweep_partials


def test_abandoned_partials_are_swept_and_live_ones_kept(tmp_path):
    logits = tmp_path / "cache" / "quality" / ".ref-abc.partial-1234abcd"
    logits.mkdir(parents=True)
    (logits / "logp16.npy").write_bytes(b"x" * 1000)
    old = time.time() - STALE_S - 60
    for p in (logits / "logp16.npy", logits):
        os.utime(p, (old, old))
    fresh = tmp_path / "cache" / "ladder" / ".Q4_K_M.gguf.partial-deadbeef"
    fresh.parent.mkdir(parents=True)
    fresh.write_bytes(b"y")
    dead_conversion = tmp_path / "models" / ".smollm2@hf-bf16.partial-00000000"
    dead_conversion.mkdir(parents=True)
    (dead_conversion / ".localbench-owner.json").write_text(json.dumps({"pid": 2**22 + 7, "process_started": 0}))
    finished = tmp_path / "cache" / "quality" / "ref-abc"
    finished.mkdir()

    removed = dict(sweep_partials(tmp_path))
    assert set(removed) == {logits, dead_conversion}
    assert removed[logits] == 1000
    assert fresh.exists() and finished.exists()
