"""Our embeddings throughput against a bare `SentenceTransformer.encode` at the same batch size.

Both embed the same corpus (the built-in one, 2,000 texts by default) with the same model, device and
precision, interleaved in one process so that load from other programs hits both alike; the order
flips every round (ours-bare, bare-ours, ...). "Ours" is one pass of the runner's `timed_pass`
(embed_batch per batch, longest texts first, timing, the RSS sampler thread and the token/truncation
counts included), "bare" is `model.encode(texts, batch_size=B)` (which sorts by length the same way).
Each side gets one untimed warm-up pass. Reported: wall seconds per pass, sentences/s, and ours/bare
per round (mean ± sample stddev) — the target is ≥ 0.97×. On a busy machine `--interleave batch` alternates
batch by batch instead of pass by pass, so that load changes hit both sides within seconds.

    .venv/bin/python benchmarks/embed_overhead.py --batch-sizes 32,128 --rounds 4
    .venv/bin/python benchmarks/embed_overhead.py --device cuda --precision fp16 --out results/x.csv
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TARGET_RATIO = 0.97


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-minilm-l6-v2", help="bundled name or a sentence-transformers folder")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved ours/bare pairs per batch size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--out", default=None, help="CSV of every pass (default: print only)")
    parser.add_argument(
        "--interleave",
        choices=["pass", "batch"],
        default="pass",
        help="alternate whole passes (default), or alternate batch by batch (steadier on a busy machine)",
    )
    args = parser.parse_args(argv)

    import pandas as pd
    import torch
    from sentence_transformers import SentenceTransformer

    from bench.embed.corpus import make_corpus
    from bench.embed.runner import batch_order, parse_batch_sizes, split_batches, timed_pass
    from bench.stats import summarize
    from engines.embeddings import EmbedConfig, Embedder, resolve_embed_model, torch_dtype

    texts = make_corpus(args.sentences)
    ref = resolve_embed_model(args.model)
    ours = Embedder()
    info = ours.load(ref, EmbedConfig(device=args.device, precision=args.precision))
    bare = SentenceTransformer(ref.path, device=args.device, local_files_only=True).to(torch_dtype(args.precision))
    bare.eval()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def run_ours(batch_size: int) -> float:
        t0 = time.perf_counter()
        timed_pass(ours, texts, batch_size)
        return time.perf_counter() - t0

    def run_bare(batch_size: int) -> float:
        t0 = time.perf_counter()
        bare.encode(texts, batch_size=batch_size, convert_to_numpy=True)
        sync()
        return time.perf_counter() - t0

    def run_batchwise(batch_size: int, r: int) -> dict[str, float]:
        """One round interleaved batch by batch, the order flipping each batch; ours pays timed_pass's
        set-up (sorting, the sampler thread) on every batch, so its overhead is if anything overstated."""
        spent = {"ours": 0.0, "bare": 0.0}
        for k, idx in enumerate(split_batches(batch_order(texts, True), batch_size)):
            chunk = [texts[i] for i in idx]
            for side in ("ours", "bare") if (k + r) % 2 == 0 else ("bare", "ours"):
                t0 = time.perf_counter()
                if side == "ours":
                    timed_pass(ours, chunk, batch_size)
                else:
                    bare.encode(chunk, batch_size=batch_size, convert_to_numpy=True)
                    sync()
                spent[side] += time.perf_counter() - t0
        return spent

    rows = []
    for batch_size in parse_batch_sizes(args.batch_sizes.split(",")):
        run_ours(batch_size), run_bare(batch_size)  # warm-up, untimed
        for r in range(args.rounds):
            if args.interleave == "batch":
                spent = run_batchwise(batch_size, r)
                sides = [(side, lambda _b, s=side, t=spent: t[s]) for side in ("ours", "bare")]
            else:
                pair = (("ours", run_ours), ("bare", run_bare))
                sides = pair if r % 2 == 0 else pair[::-1]  # ours-bare, bare-ours, ...: drift hits both
            for side, fn in sides:
                seconds = fn(batch_size)
                rows.append(
                    {
                        "batch_size": batch_size,
                        "round": r + 1,
                        "side": side,
                        "wall_s": seconds,
                        "sentences_per_s": len(texts) / seconds,
                    }
                )
                print(
                    f"batch {batch_size} round {r + 1} {side}: {len(texts) / seconds:.1f} sentences/s", file=sys.stderr
                )
    frame = pd.DataFrame(rows)
    frame.insert(0, "device", info.device)
    frame.insert(1, "precision", info.precision)
    frame.insert(2, "n_texts", len(texts))
    frame.insert(3, "interleave", args.interleave)
    if args.out:
        frame.to_csv(args.out, index=False)

    print(
        f"\nmodel {info.name} on {info.device} {info.precision}, {len(texts)} texts, {args.rounds} rounds "
        f"interleaved by {args.interleave} (order flipping), after one warm-up pass each\n"
    )
    print("| batch size | ours sentences/s | bare encode sentences/s | ours/bare per round | ratio of means |")
    print("| --- | --- | --- | --- | --- |")
    worst = float("inf")
    for batch_size, group in frame.groupby("batch_size"):
        o = group[group.side == "ours"]["sentences_per_s"].to_numpy()
        b = group[group.side == "bare"]["sentences_per_s"].to_numpy()
        ratios = summarize(o / b)
        so, sb = summarize(o), summarize(b)
        worst = min(worst, so.mean / sb.mean)
        print(
            f"| {batch_size} | {so.mean:.1f} ± {so.stddev:.1f} | {sb.mean:.1f} ± {sb.stddev:.1f} | "
            f"{ratios.mean:.3f} ± {ratios.stddev:.3f} | {so.mean / sb.mean:.3f} |"
        )
    verdict = "meets" if worst >= TARGET_RATIO else "misses"
    print(f"\nworst ratio of means {worst:.3f} — {verdict} the ≥ {TARGET_RATIO}× target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
