"""Diagnostic worker targets: the torch engine and the embedder with the worker's memory sampling made cheap.

engines.process.worker samples its own USS (psutil `memory_full_info`, which reads /proc/PID/smaps) at the start and
end of every request and every SAMPLE_S while one runs. In a CUDA process the mappings are many and large,
so each read may cost milliseconds. Importing this module in the worker (WorkerEngine/WorkerObject target
'worker_nosample:TorchEngine' or 'worker_nosample:Embedder') replaces those readings with an RSS read, so
benchmarks/gpu_worker_bench.py can time the same engine with and without them.
"""

from __future__ import annotations

import psutil

from engines.embeddings import Embedder
from engines.process import worker
from engines.torch_hf import TorchEngine

__all__ = ["Embedder", "TorchEngine"]


def _rss_sample(self) -> dict:
    rss = int(psutil.Process().memory_info().rss)
    with self._lock:
        self.peak_rss = max(self.peak_rss, rss)
    return {"rss_bytes": rss, "pss_bytes": None, "private_bytes": None, "private_source": "RSS only (diagnostic)"}


def _rss_reading(self) -> dict:
    return {**self.sample(), "peak_private_bytes": None, "peak_rss_bytes": self.peak_rss, "accelerators": []}


worker.MemorySampler.sample = _rss_sample
worker.MemorySampler.reading = _rss_reading
