"""The scorecard: the design record's six success criteria, each with a verdict from stored runs.

One row per criterion: `criterion` (the design record's words), `target`, `measured`, `model`, `machine`,
`verdict` (pass, fail or not measurable), `reason` and `evidence` (the run ids behind it). Verdicts come
only from what the results store holds: uncontended runs, the newest qualifying one per criterion. A small
model's figure is never scaled to an 8B verdict: without an 8B-class run on an M3 Max that row is not
measurable, and says why. How each criterion is measured is written in docs/scorecard.md. Pure logic over
plain dicts (store rows); `load_evidence(store)` reads them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.quant.summary import TARGET_LIMIT_PCT, TARGET_TYPE
from bench.results.labels import machine_label, quant_of
from bench.speed.speedup import TARGET_SPEEDUP

PASS, FAIL, NOT_MEASURABLE = "pass", "fail", "not measurable"
TTFT_LIMIT_MS = 200.0
TTFT_PROMPT_TOKENS = 512
"""TTFT is judged on a 512-token prompt (llama-bench's default pp512), measured by the caller."""
TG_TARGET_TS = 40.0
EIGHT_B = (7.5e9, 8.5e9)
"""Parameters of an '8B-class' model: Llama 3/3.1 8B (8.03 B) and Qwen3-8B (8.19 B) are in, 7B models out."""
TARGET_CHIP = "M3 Max"
MEMORY_LIMIT_PCT = 50.0
POWER_LIMIT_W = 35.0


@dataclass(frozen=True)
class ScoreRow:
    """One criterion's verdict."""

    criterion: str
    target: str
    measured: str
    model: str
    machine: str
    verdict: str
    """'pass' | 'fail' | 'not measurable'."""
    reason: str
    evidence: str
    """Run ids behind the verdict, space-separated."""


def _params(n: float | int | None) -> str:
    from core.units import fmt_params

    return fmt_params(n) or "? params"


def _model(row: dict) -> str:
    n = row.get("model_n_params") or row.get("n_params")
    name = row.get("model") or row.get("model_name") or "?"
    quant = quant_of(row)
    return f"{name} ({_params(n)}{', ' + quant if quant else ''})"


def _ids(rows: Iterable[dict]) -> str:
    return " ".join(dict.fromkeys(r["run_id"] for r in rows))


def _newest(rows: Sequence[dict]) -> dict:
    return max(rows, key=lambda r: (r.get("created_at", ""), r.get("test_time", "")))


def _per_config(rows: Sequence[dict]) -> list[dict]:
    """The newest row of each configuration (engine, device, model file, test, machine's run hardware aside):
    repeats of one configuration never compete, distinct configurations do."""
    newest: dict[tuple, dict] = {}
    for r in rows:
        key = (r.get("engine"), r.get("device"), r.get("model_filename"), r.get("model"), r.get("test"))
        if key not in newest or _newest([newest[key], r]) is r:
            newest[key] = r
    return list(newest.values())


def _num(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _is_tg(row: dict) -> bool:
    return bool(row.get("n_gen")) and not row.get("n_prompt") and _num(row.get("avg_ts")) is not None


def _accelerated(row: dict) -> bool:
    return str(row.get("device", "cpu")) not in ("cpu", "") or str(row.get("backends", "CPU")) not in ("CPU", "")


def _clean(rows: Sequence[dict]) -> tuple[list[dict], int]:
    """Rows that were not contended, and how many were left out for contention."""
    kept = [r for r in rows if not r.get("contended")]
    return kept, len(rows) - len(kept)


def _left_out(n: int) -> str:
    return f" ({n} contended row(s) left out)" if n else ""


def speedup(rows: Sequence[dict], machine) -> ScoreRow:
    """Accelerated tg speed ÷ CPU tg speed, same machine, model, engine and test."""
    head = ("≥ 3× speed-up over CPU", f"≥ {TARGET_SPEEDUP:g}× (tg t/s, accelerated ÷ CPU)")
    tg, dropped = _clean([r for r in rows if _is_tg(r) and r.get("backends") != "remote"])
    fast = [r for r in tg if _accelerated(r)]
    if not fast:
        return ScoreRow(
            *head,
            "—",
            "",
            "",
            NOT_MEASURABLE,
            "no accelerated-device tg run is stored (Metal, CUDA, "
            "MPS): a CPU-only machine has nothing to compare" + _left_out(dropped),
            "",
        )
    best = max(_per_config(fast), key=lambda r: r["avg_ts"])
    key = ("model", "engine", "test", "model_filename")
    cpu = [
        r
        for r in tg
        if not _accelerated(r) and all(r.get(k) == best.get(k) for k in key) and machine(r) == machine(best)
    ]
    if not cpu:
        return ScoreRow(
            *head,
            "—",
            _model(best),
            machine(best),
            NOT_MEASURABLE,
            f"no CPU run of {best['model']} {best['test']} on {best['engine']} on the same machine to divide by",
            _ids([best]),
        )
    slow = _newest(cpu)
    ratio = best["avg_ts"] / slow["avg_ts"]
    verdict = PASS if ratio >= TARGET_SPEEDUP else FAIL
    measured = f"{ratio:.2f}× ({best['avg_ts']:.1f} t/s on {best['device']} vs {slow['avg_ts']:.1f} t/s on CPU)"
    reason = (
        f"{best['engine']} {best['test']}, the fastest accelerated configuration (newest run of each) over the "
        "newest CPU run; derived ratio of the two means" + _left_out(dropped)
    )
    return ScoreRow(*head, measured, _model(best), machine(best), verdict, reason, _ids([best, slow]))


def ttft(rows: Sequence[dict], machine) -> ScoreRow:
    """Mean time to the first token of a 512-token prompt, on the largest model measured."""
    head = ("< 200 ms to the first token", f"< {TTFT_LIMIT_MS:g} ms (mean TTFT, {TTFT_PROMPT_TOKENS}-token prompt)")
    pp, dropped = _clean(
        [r for r in rows if r.get("n_prompt") == TTFT_PROMPT_TOKENS and _num(r.get("avg_ttft_ms")) is not None]
    )
    if not pp:
        return ScoreRow(
            *head,
            "—",
            "",
            "",
            NOT_MEASURABLE,
            f"no uncontended run with a {TTFT_PROMPT_TOKENS}-token "
            f"prompt is stored: run `bench -p {TTFT_PROMPT_TOKENS}`" + _left_out(dropped),
            "",
        )
    biggest = max(int(r.get("model_n_params") or 0) for r in pp)
    candidates = _per_config([r for r in pp if int(r.get("model_n_params") or 0) == biggest])
    row = min(candidates, key=lambda r: float(r["avg_ttft_ms"]))
    value = float(row["avg_ttft_ms"])
    reason = (
        f"{row['engine']} {row['test']} on {row.get('device', '?')}, the largest model measured, the quickest of "
        f"{len(candidates)} configuration(s) (newest run of each); TTFT timed by the caller"
    )
    if biggest < EIGHT_B[0]:
        reason += "; the design record's target is for an 8B model: this verdict holds for the model shown only"
    return ScoreRow(
        *head,
        f"{value:.1f} ms",
        _model(row),
        machine(row),
        PASS if value < TTFT_LIMIT_MS else FAIL,
        reason + _left_out(dropped),
        _ids([row]),
    )


def eight_b_on_m3_max(rows: Sequence[dict], machine) -> ScoreRow:
    """tg speed of an 8B-class model on an Apple M3 Max, never scaled from a smaller model or another chip."""
    head = ("≥ 40 t/s for an 8B model on an M3 Max", f"≥ {TG_TARGET_TS:g} t/s (tg, 8B-class model, {TARGET_CHIP})")
    tg, dropped = _clean([r for r in rows if _is_tg(r)])
    eight = [r for r in tg if EIGHT_B[0] <= float(r.get("model_n_params") or 0) <= EIGHT_B[1]]
    on_chip = [r for r in eight if TARGET_CHIP in machine(r)]
    if on_chip:
        candidates = _per_config(on_chip)
        row = max(candidates, key=lambda r: r["avg_ts"])
        verdict = PASS if row["avg_ts"] >= TG_TARGET_TS else FAIL
        return ScoreRow(
            *head,
            f"{row['avg_ts']:.1f} ± {row.get('stddev_ts', 0):.1f} t/s",
            _model(row),
            machine(row),
            verdict,
            f"{row['engine']} {row['test']} on {row.get('device', '?')}, the fastest of {len(candidates)} "
            "configuration(s) (newest run of each)" + _left_out(dropped),
            _ids([row]),
        )
    if eight:
        row = _newest(eight)
        return ScoreRow(
            *head,
            f"{row['avg_ts']:.1f} t/s on another chip",
            _model(row),
            machine(row),
            NOT_MEASURABLE,
            f"the 8B-class runs stored are not on an {TARGET_CHIP}; a figure from another chip is not converted",
            _ids([row]),
        )
    largest = max(tg, key=lambda r: float(r.get("model_n_params") or 0), default=None)
    seen = f"; the largest model with a tg run is {_model(largest)}" if largest else ""
    return ScoreRow(
        *head,
        "—",
        "",
        "",
        NOT_MEASURABLE,
        "no 8B-class model (7.5–8.5 B parameters) has a stored tg run"
        f"{seen} — a small model's speed is never scaled to an 8B figure" + _left_out(dropped),
        "",
    )


def quality(rows: Sequence[dict], machine) -> ScoreRow:
    """ΔPPL % of Q4_K_M against the lab's reference."""
    head = ("< 5 % quality loss for Q4_K_M", f"ΔPPL < {TARGET_LIMIT_PCT:g} % vs the full-precision reference")
    q = [r for r in rows if r.get("variant") == TARGET_TYPE and _num(r.get("delta_ppl_pct")) is not None]
    valid = [r for r in q if "same type as the source" not in str(r.get("note", ""))]
    if not valid:
        why = (
            f"the only {TARGET_TYPE} rows compare the shipped {TARGET_TYPE} file with itself"
            if q
            else f"no quantization run with {TARGET_TYPE} and a measured quality is stored: run `quant`"
        )
        return ScoreRow(*head, "—", "", "", NOT_MEASURABLE, why, _ids(q))
    row = _newest(valid)
    value = float(row["delta_ppl_pct"])
    reason = f"quant lab, reference {row.get('reference', '?')}, {row.get('n_scored', '?')} scored tokens"
    if row.get("k_fallback"):
        reason += f"; most tensors fell back to legacy types (effective {float(row.get('bpw') or 0):.2f} bpw)"
    measured = f"{value:+.2f} % (mean KLD {float(row.get('kld_mean') or float('nan')):.4f})"
    return ScoreRow(
        *head, measured, _model(row), machine(row), PASS if value < TARGET_LIMIT_PCT else FAIL, reason, _ids([row])
    )


def memory(rows: Sequence[dict], machine, ram_of) -> ScoreRow:
    """The worker's peak private memory (else peak RSS) of the largest model measured, against the RAM. Contended
    rows count: a busy CPU does not change the worker's own memory."""
    head = ("memory < 50 % of RAM", f"< {MEMORY_LIMIT_PCT:g} % of RAM (worker's peak memory)")
    usable = [r for r in rows if (r.get("worker_peak_private_bytes") or r.get("peak_rss_bytes")) and ram_of(r)]
    if not usable:
        return ScoreRow(
            *head,
            "—",
            "",
            "",
            NOT_MEASURABLE,
            "no speed run with a worker memory reading and the machine's RAM is stored",
            "",
        )
    biggest = max(int(r.get("model_n_params") or 0) for r in usable)
    newest = _newest([r for r in usable if int(r.get("model_n_params") or 0) == biggest])
    run = [r for r in usable if r["run_id"] == newest["run_id"] and r.get("model") == newest.get("model")]
    row = max(run, key=lambda r: r.get("worker_peak_private_bytes") or r.get("peak_rss_bytes"))
    used = row.get("worker_peak_private_bytes") or row.get("peak_rss_bytes")
    source = "worker's private memory" if row.get("worker_peak_private_bytes") else "worker's peak RSS"
    pct = used / ram_of(row) * 100
    measured = f"{used / 2**30:.2f} GiB = {pct:.1f} % of {ram_of(row) / 2**30:.0f} GiB"
    return ScoreRow(
        *head,
        measured,
        _model(row),
        machine(row),
        PASS if pct < MEMORY_LIMIT_PCT else FAIL,
        f"{source}, the largest model measured, newest run",
        _ids([row]),
    )


def power(rows: Sequence[dict], machine) -> ScoreRow:
    """Mean power over a run, from rows that carry a power reading (`avg_power_w`)."""
    head = ("power < 35 W", f"< {POWER_LIMIT_W:g} W (mean over the run)")
    read = [r for r in rows if _num(r.get("avg_power_w")) is not None]
    if not read:
        return ScoreRow(
            *head,
            "—",
            "",
            "",
            NOT_MEASURABLE,
            "no run with a power reading is stored (power is sampled "
            "where this build can read it: macmon, NVML or RAPL; none was available)",
            "",
        )
    row = _newest(read)
    watts = float(row["avg_power_w"])
    reason = f"{row.get('power_source_name') or row.get('source', 'power sampler')}, newest run"
    return ScoreRow(
        *head, f"{watts:.1f} W", _model(row), machine(row), PASS if watts < POWER_LIMIT_W else FAIL, reason, _ids([row])
    )


def scorecard(rows_by_kind: dict[str, Sequence[dict]], hardware: dict[str, dict]) -> list[ScoreRow]:
    """The six criteria from store rows by kind ('speed', 'quant', ...) and each run's hardware by run id."""

    def machine(row: dict) -> str:
        hw = hardware.get(row.get("run_id", ""), {})
        return machine_label(hw) if hw else (row.get("cpu_info") or "unknown machine")

    def ram_of(row: dict) -> int:
        return int(hardware.get(row.get("run_id", ""), {}).get("ram_bytes") or 0)

    speed = list(rows_by_kind.get("speed", ()))
    every = [r for rows in rows_by_kind.values() for r in rows]
    return [
        speedup(speed, machine),
        ttft(speed, machine),
        eight_b_on_m3_max(speed, machine),
        quality(rows_by_kind.get("quant", ()), machine),
        memory(speed, machine, ram_of),
        power(every, machine),
    ]


def load_evidence(store) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """(rows by kind, hardware by run id) of every successful run in the store."""
    runs = [r for r in store.runs() if r["status"] == "ok"]
    kinds = sorted({r["kind"] for r in runs})
    return {k: store.rows(k) for k in kinds}, store.hardware()
