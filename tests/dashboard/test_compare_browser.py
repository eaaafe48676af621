"""Real-browser test of the Compare tab: two models side by side, then a speed test downloaded as CSV."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

pytestmark = pytest.mark.browser


def set_dropdown(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.fill(value)
    box.press("Enter")


def test_side_by_side_answers_and_speed_test_csv(page, tmp_path, localbench_home):
    page.get_by_role("tab", name="Compare").click()
    set_dropdown(page, "cmp-model-1", "gemma3-270m")
    page.locator("#cmp-prompt textarea").fill("The three primary colours are")
    page.locator("#cmp-max-tokens input").fill("12")
    page.locator("#cmp-generate").click()
    page.wait_for_function(
        "() => [0, 1].every(i => /stop/.test(document.querySelector('#cmp-stats-' + i).innerText))",
        timeout=180_000,
    )
    assert "chat template" in page.locator("#cmp-stats-0").inner_text()
    assert "plain completion" in page.locator("#cmp-stats-1").inner_text()  # gemma3-270m is a base model
    for i in (0, 1):
        assert page.locator(f"#cmp-answer-{i} textarea").input_value().strip()

    page.locator("#cmp-pp input").fill("32")
    page.locator("#cmp-tg input").fill("8")
    page.locator("#cmp-reps input").fill("2")
    page.locator("#cmp-bench").click()
    page.wait_for_function(
        "() => /Done: 4 rows/.test(document.querySelector('#cmp-bench-status').innerText)", timeout=180_000
    )
    with page.expect_download() as info:
        page.locator("#cmp-bench-csv").click()
    path = tmp_path / "speed.csv"
    info.value.save_as(path)
    frame = pd.read_csv(path)
    assert sorted(frame["test"]) == ["pp32", "pp32", "tg8", "tg8"]
    assert set(frame["model"]) == {"smollm2-135m", "gemma3-270m"}
    assert (frame["avg_ts"] > 0).all() and (frame["repetitions"] == 2).all()
    # two configurations: repetitions interleaved A1 B1 A2 B2, each difference tested on the raw samples
    assert list(frame["arm"]) == ["A", "A", "B", "B"] and (frame["run_order"] == "A1 B1 A2 B2").all()
    ab = page.locator("#cmp-ab").inner_text()
    assert "interleaved A1 B1 A2 B2" in ab and "B = gemma3-270m on" in ab and "Welch" in ab
    assert ab.count("significant") >= 2  # one verdict per test
    with sqlite3.connect(localbench_home / "results.db") as db:
        stored = [json.loads(r[0]) for r in db.execute("SELECT row_json FROM results WHERE kind='ab'")]
    assert {r["test"] for r in stored} >= {"pp32", "tg8"} and all(0 <= r["p_value"] <= 1 for r in stored)


def test_depth_section_chart_table_and_planner(page, tmp_path):
    page.get_by_role("tab", name="Compare").click()  # slots 1 and 2: smollm2-135m on llama.cpp (the defaults)
    page.locator("#cmp-pp input").fill("0")
    page.locator("#cmp-tg input").fill("4")
    page.locator("#cmp-reps input").fill("2")
    page.locator("#cmp-depths textarea").fill("0,256")
    page.locator("#cmp-depth-run").click()
    page.wait_for_function(
        "() => /Done: \\d+ rows at depths 0, 256/.test(document.querySelector('#cmp-depth-status').innerText)",
        timeout=180_000,
    )
    planner = page.locator("#cmp-depth-planner").inner_text()
    assert "smollm2-135m" in planner and "tokens" in planner and "estimate" in planner
    page.wait_for_selector("#cmp-depth-chart canvas, #cmp-depth-chart svg", timeout=30_000)
    table = page.locator("#cmp-depth-table").inner_text()
    assert "depth (tokens)" in table and "256" in table and "±" in table
    with page.expect_download() as info:
        page.locator("#cmp-depth-csv").click()
    path = tmp_path / "depth.csv"
    info.value.save_as(path)
    frame = pd.read_csv(path)
    assert list(frame["n_depth"]) == [0, 256] * 2 and list(frame["test"]) == ["tg4", "tg4 @ d256"] * 2
    assert (frame["avg_ts"] > 0).all() and (frame["repetitions"] == 2).all()
    assert frame["depth_method"].fillna("").str.contains("256").tolist() == [False, True] * 2


def test_depth_section_bad_depths_one_line(page):
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-depths textarea").fill("0,deep")
    page.locator("#cmp-depth-run").click()
    page.wait_for_function(
        "() => /depths: expected tokens/.test(document.querySelector('#cmp-depth-status').innerText)"
    )


def test_speed_test_cancel(page):
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-pp input").fill("0")
    page.locator("#cmp-tg input").fill("512")
    page.locator("#cmp-reps input").fill("20")
    page.locator("#cmp-bench").click()
    page.wait_for_timeout(3000)
    page.locator("#cmp-cancel").click()
    page.wait_for_function(
        "() => /cancelled/.test(document.querySelector('#cmp-bench-status').innerText)", timeout=120_000
    )


def test_accelerated_vs_cpu_says_only_cpu_here(page):
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-speedup-run").click()
    page.wait_for_function(
        "() => /only the CPU exists/.test(document.querySelector('#cmp-speedup').innerText)", timeout=60_000
    )


def test_speed_table_header_columns_and_cancel_keeps_results(page):
    page.get_by_role("tab", name="Compare").click()
    header = page.locator("#cmp-bench-table").inner_text()
    assert "t/s (mean ± sd)" in header and "1\t2\t3" not in header  # a real header before any run
    page.locator("#cmp-pp input").fill("8")
    page.locator("#cmp-tg input").fill("4")
    page.locator("#cmp-reps input").fill("1")
    page.locator("#cmp-bench").click()
    page.wait_for_function("() => /Done: 4 rows/.test(document.querySelector('#cmp-bench-status').innerText)")
    table = page.locator("#cmp-bench-table").inner_text()
    for column in ("quant", "size MiB", "threads", "llama.cpp", "Q4_1"):
        assert column in table
    page.locator("#cmp-tg input").fill("512")
    page.locator("#cmp-reps input").fill("20")
    page.locator("#cmp-bench").click()
    page.wait_for_timeout(2000)
    page.locator("#cmp-cancel").click()
    page.wait_for_function("() => /cancelled/.test(document.querySelector('#cmp-bench-status').innerText)")
    assert "Q4_1" in page.locator("#cmp-bench-table").inner_text()  # the previous results stay
