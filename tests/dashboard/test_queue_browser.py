"""Real-browser test of the Queue tab: bad input is a message, the built-in 3 prompts run on two seeded
SmolLM2 entries (llama.cpp, in its worker) into a 3 × 2 grid whose cells carry tokens, t/s and TTFT with
units, the downloaded CSV and JSONL parse, and Resume of the finished queue runs nothing again."""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest

from bench.answers.queue import KIND
from bench.results.store import ResultStore

pytestmark = pytest.mark.browser


def add_entry(page, temperature: str, seed: str) -> None:
    page.locator("#queue-temp input").fill(temperature)
    page.locator("#queue-seed input").fill(seed)
    page.locator("#queue-add").click()


def wait_text(page, selector: str, pattern: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        f"() => /{pattern}/.test(document.querySelector('{selector}')?.innerText || '')", timeout=timeout
    )


def test_queue_runs_three_prompts_on_two_entries_and_downloads(page, localbench_home, tmp_path):
    page.get_by_role("tab", name="Queue").click()
    add_entry(page, "0", "0")
    wait_text(page, "#queue-entries", "add at least one more")
    page.locator("#queue-run").click()
    wait_text(page, "#queue-status", "add 2 to 4 entries")

    add_entry(page, "0.8", "1")
    wait_text(page, "#queue-entries", "seed=1")
    page.get_by_label("Paste (one prompt per line)").check()
    page.locator("#queue-run").click()
    wait_text(page, "#queue-status", "the pasted text has no prompts")

    page.get_by_label("Built-in short set (3 prompts)").check()
    page.locator("#queue-max-tokens input").fill("8")
    page.locator("#queue-run").click()
    wait_text(page, "#queue-status", "Done: queue", timeout=300_000)
    status = page.locator("#queue-status").inner_text()
    assert "6 answered, 0 already stored, 0 failed" in status
    queue_id = re.search(r"queue ([0-9a-f]{12})", status).group(1)

    grid = page.locator("#queue-grid")
    assert grid.locator("tr").count() == 4  # header + 3 prompts
    assert grid.locator("th").nth(1).inner_text() == "smollm2-135m · llamacpp"
    assert grid.locator("th").nth(2).inner_text() == "smollm2-135m · llamacpp · T=0.8 seed=1"
    cells = grid.locator("td.queue-cell")
    assert cells.count() == 6
    for k in range(6):
        stats = cells.nth(k).locator(".queue-stats").inner_text()
        assert re.match(r"\d+ tokens · [\d.]+ t/s · TTFT \d+ ms", stats) and "—" not in stats, stats
        assert cells.nth(k).locator(".queue-answer").inner_text().strip()

    page.wait_for_timeout(1000)  # the download files land with the grid
    with page.expect_download() as info:
        page.locator("#queue-csv").click()
    csv_path = tmp_path / "queue.csv"
    info.value.save_as(csv_path)
    frame = pd.read_csv(csv_path)
    assert len(frame) == 6 and set(frame["status"]) == {"ok"} and set(frame["queue_id"]) == {queue_id}
    assert (frame["gen_tokens"] > 0).all() and (frame["gen_tps"] > 0).all()
    with page.expect_download() as info:
        page.locator("#queue-jsonl").click()
    lines = [json.loads(x) for x in info.value.path().read_text(encoding="utf-8").splitlines()]
    assert [x["answer"] for x in lines] == frame["answer"].tolist()

    stored = [r for r in ResultStore(localbench_home / "results.db").rows(KIND) if r["queue_id"] == queue_id]
    assert len(stored) == 6

    page.locator("#queue-pick input").click()
    page.get_by_role("option", name=f"{queue_id} · 6/6", exact=False).click()
    page.locator("#queue-resume").click()
    wait_text(page, "#queue-status", "0 answered, 6 already stored", timeout=120_000)
    assert page.locator("#queue-grid td.queue-cell").count() == 6


def test_stop_mid_queue_then_resume_runs_only_the_rest(page, localbench_home):
    store = ResultStore(localbench_home / "results.db")
    page.get_by_role("tab", name="Queue").click()
    add_entry(page, "0.7", "3")
    wait_text(page, "#queue-entries", "seed=3")  # as a user sees the first entry before typing the next
    add_entry(page, "0.7", "4")
    wait_text(page, "#queue-entries", "seed=4")
    page.get_by_label("Paste (one prompt per line)").check()
    page.locator("#queue-paste textarea").fill("Tell a story about a cat.\nTell a story about a dog.\nCount to ten.")
    page.locator("#queue-max-tokens input").fill("40")
    before = len(store.rows(KIND))
    page.locator("#queue-run").click()
    deadline = time.monotonic() + 300
    while len(store.rows(KIND)) < before + 1 and time.monotonic() < deadline:  # the first answer is stored
        page.wait_for_timeout(200)
    page.locator("#queue-stop").click()
    wait_text(page, "#queue-status", "Stopped: \\d of 6 answers stored", timeout=120_000)
    stopped = re.search(r"Stopped: (\d) of 6", page.locator("#queue-status").inner_text())
    n_done = int(stopped.group(1))
    assert 1 <= n_done < 6
    assert page.locator("#queue-grid td.queue-missing").count() == 6 - n_done

    page.locator("#queue-resume").click()  # the stopped queue is the one picked
    wait_text(page, "#queue-status", "Done: queue", timeout=300_000)
    assert f"{6 - n_done} answered, {n_done} already stored, 0 failed" in page.locator("#queue-status").inner_text()
    assert page.locator("#queue-grid td.queue-cell").count() == 6
    queue_id = re.search(r"queue ([0-9a-f]{12})", page.locator("#queue-status").inner_text()).group(1)
    cells = [(r["prompt_index"], r["entry"]) for r in store.rows(KIND) if r["queue_id"] == queue_id]
    assert len(cells) == 6 == len(set(cells))
