"""Why fp16/bf16 embedded slower than fp32 in the first CUDA sweep: cuDNN's attention plans each new shape.

For fp16 and fp32 on CUDA, with PyTorch's cuDNN scaled-dot-product attention on and then off, embed the
2,000-text built-in corpus twice at batch sizes 32 and 128 (the runner's `timed_pass`: longest texts
first, so nearly every batch has a new padded length) and print sentences/s and the median batch
latency of each pass. The output of the run on an H100 is benchmarks/results/embed_cuda_cudnn_probe.txt.

    python3 benchmarks/embed_cudnn_probe.py [MODEL]     # MODEL: all-minilm-l6-v2 or a folder
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(model: str = "all-minilm-l6-v2") -> None:
    import torch

    from bench.embed.corpus import make_corpus
    from bench.embed.runner import timed_pass
    from engines.embeddings import EmbedConfig, Embedder

    texts = make_corpus(2000)
    for precision in ("fp16", "fp32"):
        embedder = Embedder()
        embedder.load(model, EmbedConfig(device="cuda", precision=precision))
        for cudnn in (True, False):
            torch.backends.cuda.enable_cudnn_sdp(cudnn)
            for batch_size in (32, 128):
                for rep in (1, 2):
                    latencies = sorted(timed_pass(embedder, texts, batch_size).latencies_s)
                    print(
                        f"{precision} cudnn_sdp={cudnn} batch={batch_size} pass={rep}: "
                        f"{len(texts) / sum(latencies):.0f} sent/s, p50 {latencies[len(latencies) // 2] * 1e3:.1f} ms",
                        flush=True,
                    )
        embedder.unload()


if __name__ == "__main__":
    main(*sys.argv[1:2])
