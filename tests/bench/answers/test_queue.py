"""The unattended compare queue: 3 prompts × 2 entries on the bundled SmolLM2, stop and resume, a failing
entry that does not stop the others, and prompt files."""

from __future__ import annotations

import threading

import pytest

from bench.answers.entry import Entry, engine_answer, make_pool
from bench.answers.queue import BUILT_IN_PROMPTS, done_items, grid, read_prompts, run_queue
from bench.results.store import ResultStore
from core.errors import BadParameter, Cancelled, ModelNotFound


def test_queue_runs_stops_and_resumes_on_llamacpp(llama_engine, tmp_path, hardware):
    store = ResultStore(tmp_path / "results.db")
    entries = make_pool([Entry("llamacpp", "smollm2-135m", 0.8, 1), Entry("llamacpp", "smollm2-135m", 0.8, 2)])
    cancel = threading.Event()
    seen = []

    def progress(done, total, message):
        seen.append((done, total, message))
        if done == 2:
            cancel.set()

    def answer(prompt, entry):
        return engine_answer(llama_engine, prompt, entry, 8)

    with pytest.raises(Cancelled, match="run it again to resume"):
        run_queue(store, "q1", BUILT_IN_PROMPTS, entries, answer, progress, cancel, hardware=hardware)
    assert seen[-1][:2] == (2, 6)
    counts = run_queue(store, "q1", BUILT_IN_PROMPTS, entries, answer, hardware=hardware)
    assert counts == {"total": 6, "done": 4, "skipped": 2, "failed": 0}
    table = grid(store, "q1")
    assert len(table) == 3 and all(e.label in table.columns for e in entries)
    rows = store.rows("compare_queue")
    assert len(rows) == 6 and all(r["gen_tokens"] > 0 and r["gen_tps"] > 0 for r in rows)


def test_failing_entry_is_stored_as_failed_and_the_others_finish(tmp_path, hardware):
    from engines.base import GenerationStats

    store = ResultStore(tmp_path / "results.db")
    stats = GenerationStats(0.1, 3, 0.01, 300.0, 2, 0.02, 100.0, 0.0, 0.2, 1, "stop")

    def answer(prompt, entry):
        if entry.model == "missing":
            raise ModelNotFound("no model named 'missing'")
        return "ok", stats

    entries = make_pool([Entry("e", "good"), Entry("e", "missing")])
    assert run_queue(store, "q2", ["a", "b"], entries, answer, hardware=hardware)["failed"] == 2
    failed = [r for r in store.runs("compare_queue") if r["status"] == "failed"]
    assert len(failed) == 2 and "no model named" in failed[0]["error"]
    assert len(store.rows("compare_queue")) == 2


def test_prompt_files(tmp_path):
    text = tmp_path / "p.txt"
    text.write_text("one\n\ntwo\n")
    assert read_prompts(text) == ["one", "two"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "x"}\n{"text": "y"}\n')
    with pytest.raises(BadParameter, match="line 2"):
        read_prompts(jsonl)
    with pytest.raises(BadParameter, match="no prompt file"):
        read_prompts(tmp_path / "none.txt")


def test_plan_cells_and_exports_keep_failures_and_unknowns(tmp_path, hardware):
    import json

    import pandas as pd

    from bench.answers.queue import cells_frame, export_cells, list_plans, load_plan, parse_prompts, save_plan
    from engines.base import GenerationStats

    store = ResultStore(tmp_path / "results.db")
    plan = save_plan(store, ["p1", "=2+2"], [Entry("e", "good"), Entry("e", "good")], 16, 512)
    assert [e.label for e in plan.entries] == ["good · e", "good · e #2"]
    assert load_plan(store, plan.queue_id) == plan
    stats = GenerationStats(0.25, 3, 0.01, 300.0, 7, 0.07, 100.0, 0.0, 0.3, 1, "stop")
    calls = []

    def answer(prompt, entry):
        calls.append((prompt, entry.label))
        if entry.label.endswith("#2") and prompt == "p1" and len(calls) < 5:
            raise ModelNotFound("boom")
        return f"answer to {prompt}", stats

    assert run_queue(store, plan.queue_id, plan.prompts, plan.entries, answer, hardware=hardware)["failed"] == 1
    cells = cells_frame(store, plan)
    assert len(cells) == 4 and cells["status"].tolist() == ["ok", "failed", "ok", "ok"]
    assert cells.loc[1, "error"] == "boom" and pd.isna(cells.loc[1, "gen_tps"])
    assert list_plans(store)[0] | {"created_at": ""} == {
        "queue_id": plan.queue_id,
        "created_at": "",
        "prompts": 2,
        "entries": "good · e | good · e #2",
        "total": 4,
        "done": 3,
    }
    lines = [json.loads(x) for x in export_cells(cells, "jsonl").splitlines()]
    assert lines[1]["gen_tps"] is None and lines[0]["gen_tokens"] == 7 and lines[2]["prompt"] == "=2+2"
    assert "'=2+2" in export_cells(cells, "csv")  # formula-safe CSV
    # a resume retries only the failed cell, and the grid then shows its answer
    assert run_queue(store, plan.queue_id, plan.prompts, plan.entries, answer, hardware=hardware) == {
        "total": 4,
        "done": 1,
        "skipped": 3,
        "failed": 0,
    }
    assert cells_frame(store, plan)["status"].tolist() == ["ok"] * 4
    with pytest.raises(BadParameter, match="no queue with id"):
        load_plan(store, "nope")
    with pytest.raises(BadParameter, match="line 1"):
        parse_prompts('{"prompt": ""}', jsonl=True)


def test_cancel_mid_answer_is_stored_as_cancelled_and_resumed(tmp_path, hardware):
    store = ResultStore(tmp_path / "results.db")

    def answer(prompt, entry):
        raise Cancelled("stopped mid-answer")

    entries = make_pool([Entry("e", "x"), Entry("e", "y")])
    with pytest.raises(Cancelled):
        run_queue(store, "q3", ["a"], entries, answer, hardware=hardware)
    runs = store.runs("compare_queue")
    assert [(r["status"], r["n_rows"]) for r in runs] == [("cancelled", 0)]
    assert done_items(store, "q3") == set()  # a resume runs the stopped answer again
