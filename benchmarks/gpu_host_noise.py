"""Where the decode noise of a GPU run comes from: the host-side columns of a pairs CSV, per tg group.

Reads a pairs.csv written by gpu_worker_bench.py or gpu_mlx_bench.py (the rows with host_probe_ms, wall_s,
decoder_cpu_s, host_steal_s and itl_* columns) and prints, per (variant, test, impl), all derived:
  n, mean t/s, cv_pct (sd ÷ mean), p50_tps = 1000 ÷ the median inter-token gap (what the run would give if
  every token took the typical gap: when p50_tps is steady and t/s is not, the noise is in a few long gaps),
  cpu_per_wall (the decoding process's CPU seconds ÷ wall seconds: near 1 means one core busy throughout),
  steal_ms (host steal time over the run), probe_cv_pct (the spread of a fixed pure-Python loop timed
  before each run) and r_probe (Pearson r of t/s against that probe: negative when a slower host moment
  gives a slower run).
Per (variant, test) it also prints r_pair: Pearson r of ours' t/s against the bare arm's in the same
repetition (adjacent in time). A high r_pair means both arms move together, i.e. a shared host or device
state, not our path, sets the spread.

    python benchmarks/gpu_host_noise.py benchmarks/results/gpu_h200_run6_mlx_pairs.csv [--bare IMPL]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import cv_pct


def num(row: dict, key: str) -> float | None:
    value = row.get(key)
    return float(value) if value not in (None, "") else None


def corr(xs: list[float], ys: list[float]) -> float | None:
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
    if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
        return None
    return round(statistics.correlation([p[0] for p in pairs], [p[1] for p in pairs]), 2)


def mean_of(rows: list[dict], key: str) -> float | None:
    values = [v for v in (num(r, key) for r in rows) if v is not None]
    return statistics.mean(values) if values else None


def group_line(rows: list[dict]) -> dict:
    """One group's derived host-side figures."""
    tps = [float(r["tps"]) for r in rows]
    probe = [num(r, "host_probe_ms") for r in rows]
    p50 = [1000 / v for v in (num(r, "itl_p50_ms") for r in rows) if v]
    cpu = [c / w for c, w in ((num(r, "decoder_cpu_s"), num(r, "wall_s")) for r in rows) if c is not None and w]
    steal = mean_of(rows, "host_steal_s")
    itl_max = mean_of(rows, "itl_max_ms")
    probes = [p for p in probe if p is not None]
    return {
        "n": len(tps),
        "mean_tps": round(statistics.mean(tps), 2),
        "cv_pct": round(cv_pct(tps), 1) if len(tps) > 1 else 0.0,
        "p50_tps": round(statistics.mean(p50), 1) if p50 else None,
        "p50_cv_pct": round(cv_pct(p50), 1) if len(p50) > 1 else None,
        "itl_max_ms": round(itl_max, 2) if itl_max is not None else None,
        "cpu_per_wall": round(statistics.mean(cpu), 2) if cpu else None,
        "steal_ms": round(1000 * steal, 1) if steal is not None else None,
        "probe_ms": round(statistics.mean(probes), 3) if probes else None,
        "probe_cv_pct": round(cv_pct(probes), 1) if len(probes) > 1 else None,
        "r_probe": corr(tps, probe),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=Path)
    parser.add_argument("--bare", help="the bare impl for r_pair (default: every impl that is not ours)")
    args = parser.parse_args()
    with open(args.pairs, encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r.get("n_gen") or 0) > 1 and r.get("wall_s")]
    keys = list(dict.fromkeys((r["variant"], r["test"]) for r in rows))
    for variant, test in keys:
        group = [r for r in rows if (r["variant"], r["test"]) == (variant, test)]
        impls = list(dict.fromkeys(r["impl"] for r in group))
        for impl in impls:
            line = group_line([r for r in group if r["impl"] == impl])
            print(variant, test, impl, " ".join(f"{k}={v}" for k, v in line.items()))
        by_rep = {i: {r["rep"]: float(r["tps"]) for r in group if r["impl"] == i} for i in impls}
        for bare in [args.bare] if args.bare else [i for i in impls if i != "ours"]:
            reps = sorted(set(by_rep.get("ours", {})) & set(by_rep.get(bare, {})), key=int)
            r_pair = corr([by_rep["ours"][k] for k in reps], [by_rep[bare][k] for k in reps])
            print(variant, test, f"r_pair(ours, {bare})={r_pair} over {len(reps)} reps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
