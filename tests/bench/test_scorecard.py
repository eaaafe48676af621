"""The scorecard on stored fixture rows: a pass, a fail and a not-measurable verdict for the criteria."""

from __future__ import annotations

from bench.results.store import ResultStore
from bench.scorecard import FAIL, NOT_MEASURABLE, PASS, scorecard

M3_MAX = {"chip": "Apple M3 Max", "ram_bytes": 64 * 2**30}
XEON = {"chip": "Intel Xeon", "ram_bytes": 8 * 2**30}


def speed(run_id, *, test="tg128", n_prompt=0, n_gen=128, avg_ts=50.0, device="cpu", params=135e6, **extra):
    return {
        "run_id": run_id,
        "created_at": extra.pop("created_at", "2026-12-01T10:00:00+00:00"),
        "model": extra.pop("model", "m"),
        "engine": "llamacpp",
        "model_filename": "m.gguf",
        "model_type": "llama 135M Q4_K_M",
        "model_n_params": int(params),
        "backends": "CPU" if device == "cpu" else "Metal",
        "device": device,
        "test": test,
        "n_prompt": n_prompt,
        "n_gen": n_gen,
        "avg_ts": avg_ts,
        "stddev_ts": 1.0,
        "avg_ttft_ms": extra.pop("ttft", 20.0),
        "peak_rss_bytes": extra.pop("rss", 2**30),
        "worker_peak_private_bytes": extra.pop("private", None),
        "contended": extra.pop("contended", False),
        "samples_ts": [avg_ts, avg_ts],
        **extra,
    }


def quant(run_id, delta, note=""):
    return {
        "run_id": run_id,
        "created_at": "2026-12-01T10:00:00+00:00",
        "variant": "Q4_K_M",
        "model": "m",
        "n_params": 135e6,
        "delta_ppl_pct": delta,
        "kld_mean": 0.09,
        "reference": "F16",
        "note": note,
    }


def verdicts(rows_by_kind, hardware):
    return {r.criterion: r for r in scorecard(rows_by_kind, hardware)}


def test_empty_store_is_not_measurable_everywhere():
    card = scorecard({}, {})
    assert len(card) == 6 and {r.verdict for r in card} == {NOT_MEASURABLE}
    assert all(r.reason for r in card)


def test_passes_on_an_m3_max_with_an_8b_model():
    eight = dict(params=8.03e9, model="llama3-8b")
    rows = {
        "speed": [
            speed("cpu1", avg_ts=8.0, **eight),
            speed("gpu1", avg_ts=49.0, device="metal", **eight),
            speed("gpu1", test="pp512", n_prompt=512, n_gen=0, avg_ts=690.0, device="metal", ttft=150.0, **eight),
        ],
        "quant": [quant("q1", 3.1)],
        "power": [{"run_id": "p1", "created_at": "2026-12-01T10:00:00+00:00", "model": "m", "avg_power_w": 30.0}],
    }
    hw = {k: M3_MAX for k in ("cpu1", "gpu1", "q1", "p1")}
    card = verdicts(rows, hw)
    assert card["≥ 3× speed-up over CPU"].verdict == PASS
    assert card["≥ 3× speed-up over CPU"].evidence == "gpu1 cpu1"
    assert card["< 200 ms to the first token"].verdict == PASS
    row = card["≥ 40 t/s for an 8B model on an M3 Max"]
    assert row.verdict == PASS and row.machine == "Apple M3 Max, 64 GiB RAM" and "8.0B" in row.model
    assert card["< 5 % quality loss for Q4_K_M"].verdict == PASS
    assert card["memory < 50 % of RAM"].verdict == PASS
    assert card["power < 35 W"].verdict == PASS and card["power < 35 W"].measured == "30.0 W"


def test_fails_are_fails():
    rows = {
        "speed": [
            speed("cpu1", avg_ts=20.0),
            speed("gpu1", avg_ts=30.0, device="metal"),
            speed("pp", test="pp512", n_prompt=512, n_gen=0, ttft=450.0),
            speed("mem", private=6 * 2**30),
            speed("8b", avg_ts=30.0, params=8.03e9, created_at="2026-12-02T00:00:00+00:00"),
        ],
        "quant": [quant("q1", 7.5)],
        "power": [{"run_id": "p1", "created_at": "2026-12-01T10:00:00+00:00", "avg_power_w": 60.0}],
    }
    hw = {"cpu1": XEON, "gpu1": XEON, "pp": XEON, "mem": XEON, "q1": XEON, "p1": XEON, "8b": M3_MAX}
    card = verdicts(rows, hw)
    assert card["≥ 3× speed-up over CPU"].verdict == FAIL and card["≥ 3× speed-up over CPU"].measured.startswith(
        "1.50×"
    )
    assert card["< 200 ms to the first token"].verdict == FAIL
    assert card["≥ 40 t/s for an 8B model on an M3 Max"].verdict == FAIL
    assert card["< 5 % quality loss for Q4_K_M"].verdict == FAIL
    assert card["power < 35 W"].verdict == FAIL
    # the 8B run is the largest model; its 1 GiB of 64 GiB passes, so check the XEON run alone
    only_mem = verdicts({"speed": [speed("mem", private=6 * 2**30)]}, {"mem": XEON})
    assert only_mem["memory < 50 % of RAM"].verdict == FAIL and "75.0 %" in only_mem["memory < 50 % of RAM"].measured


def test_a_small_model_is_never_scaled_to_an_8b_verdict():
    card = verdicts({"speed": [speed("s", avg_ts=160.0, params=135e6)]}, {"s": M3_MAX})
    row = card["≥ 40 t/s for an 8B model on an M3 Max"]
    assert row.verdict == NOT_MEASURABLE and "never scaled" in row.reason and "135M" in row.reason
    other_chip = verdicts({"speed": [speed("x", avg_ts=60.0, params=8e9)]}, {"x": XEON})
    assert other_chip["≥ 40 t/s for an 8B model on an M3 Max"].verdict == NOT_MEASURABLE


def test_contended_rows_do_not_count_and_same_source_quant_is_not_a_measure():
    rows = {
        "speed": [speed("c", test="pp512", n_prompt=512, n_gen=0, contended=True)],
        "quant": [quant("q", 0.0, note="same type as the source, so it nearly reproduces the shipped file")],
    }
    card = verdicts(rows, {"c": XEON, "q": XEON})
    ttft = card["< 200 ms to the first token"]
    assert ttft.verdict == NOT_MEASURABLE and "1 contended" in ttft.reason
    assert card["< 5 % quality loss for Q4_K_M"].verdict == NOT_MEASURABLE


def test_from_a_store(tmp_path):
    from bench.scorecard import load_evidence

    store = ResultStore(tmp_path / "r.db")
    row = {k: v for k, v in speed("x", private=2**30).items() if k not in ("run_id", "created_at")}
    run_id = store.save_run("speed", [row], hardware=XEON)
    card = verdicts(*load_evidence(store))
    assert card["memory < 50 % of RAM"].verdict == PASS and card["memory < 50 % of RAM"].evidence == run_id
