"""Live side by side, headless: ITL percentiles and the divergence highlighter on hand-made cases, and the
run's order (fair vs simultaneous) and Stop with a fake engine that replays queued chunks."""

from __future__ import annotations

import math
import threading
import time

import pytest

from bench.answers.live import LiveColumn, LiveRun, divergence, itl_percentiles_ms, split_at_divergence
from engines.base import Chunk, GenerationParams, GenerationStats, ModelInfo


def test_itl_percentiles_are_linear_interpolation_in_ms():
    p50, p95 = itl_percentiles_ms([0.010, 0.020, 0.030, 0.040, 0.100])
    assert math.isclose(p50, 30.0)
    assert math.isclose(p95, 88.0)  # rank 3.8: 40 + 0.8 × (100 − 40)
    assert itl_percentiles_ms([]) == (None, None)
    assert itl_percentiles_ms([0.05]) == (50.0, 50.0)


def test_divergence_is_the_first_differing_word():
    texts = ["The sky is blue today.", "The sky is grey today."]
    assert divergence(texts) == 3
    assert split_at_divergence(texts) == [("The sky is ", "blue today."), ("The sky is ", "grey today.")]


def test_identical_answers_do_not_diverge_and_whitespace_is_kept():
    texts = ["One two\nthree", "One two\nthree"]
    assert divergence(texts) is None
    assert split_at_divergence(texts) == [(t, "") for t in texts]


def test_a_shorter_finished_answer_diverges_where_it_ended():
    texts = ["Red green", "Red green blue"]
    assert divergence(texts) == 2
    assert split_at_divergence(texts) == [("Red green", ""), ("Red green ", "blue")]


def test_streaming_answers_only_count_finished_words():
    # "Hel" may still become "Hello"; the second answer has not reached word 2 yet
    assert divergence(["Hello wor", "Hel"], done=[False, False]) is None
    assert divergence(["Hello world ", "Hello"], done=[False, False]) is None
    assert divergence(["Hello world ", "Hello there "], done=[False, False]) == 1
    assert divergence(["Hello world ", "Hello"], done=[False, True]) == 1


def test_three_answers_diverge_where_any_one_differs():
    assert divergence(["a b c d", "a b c e", "a x c d"]) == 1


class FakeEngine:
    """Replays `words` as chunks, one every `gap_s`; records when each stream started and ended."""

    def __init__(self, words: list[str], gap_s: float, log: list) -> None:
        self.words, self.gap_s, self.log = words, gap_s, log

    def info(self) -> ModelInfo:
        return ModelInfo(name="fake", engine="fake", path="", chat_template=False)

    def stream(self, prompt, params, cancel: threading.Event):
        self.log.append(("start", id(self)))
        t0, n = time.perf_counter(), 0
        for w in self.words:
            if cancel.is_set():
                break
            time.sleep(self.gap_s)
            n += 1
            yield Chunk(text=w, t_s=time.perf_counter() - t0)
        self.log.append(("end", id(self)))
        wall = time.perf_counter() - t0
        stop = "cancelled" if cancel.is_set() else "length"
        yield Chunk(text="", t_s=wall, n_tokens=0, stats=_stats(n, wall, stop))


def _stats(n: int, wall: float, stop: str) -> GenerationStats:
    return GenerationStats(
        ttft_s=0.01, prompt_tokens=1, prompt_s=0.0, prompt_tps=0.0, gen_tokens=n, gen_s=wall, gen_tps=n / wall,
        load_s=0.0, wall_s=wall, peak_rss_bytes=0, stop_reason=stop, itl_s=(0.01,) * max(n - 1, 0),
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["fair", "simultaneous"])
def test_fair_runs_in_turn_and_simultaneous_overlaps(mode):
    log: list = []
    engines = {m: FakeEngine(["a ", "b ", "c "], 0.02, log) for m in ("m1", "m2")}
    columns = [LiveColumn(slot=i, engine="fake", model=m, n_ctx=512) for i, m in enumerate(engines)]
    run = LiveRun(columns, "hi", GenerationParams(max_tokens=3), lambda e, m, n: engines[m], mode=mode)
    run.run(every_s=0.005, timeout_s=10)
    assert [c.status for c in columns] == ["done", "done"]
    assert [c.text for c in columns] == ["a b c ", "a b c "]
    kinds = [k for k, _ in log]
    assert kinds == (["start", "end", "start", "end"] if mode == "fair" else ["start", "start", "end", "end"])
    assert columns[0].row(mode)["n_gen"] == 3


def test_stop_one_column_ends_it_while_the_other_finishes_and_a_failed_load_is_its_own_message():
    log: list = []
    slow = FakeEngine(["x "] * 200, 0.01, log)
    fast = FakeEngine(["y "] * 20, 0.01, log)

    def get_engine(engine, model, n_ctx):
        if model == "missing":
            from core.errors import ModelNotFound

            raise ModelNotFound("no model named 'missing'")
        return {"slow": slow, "fast": fast}[model]

    columns = [LiveColumn(slot=i, engine="fake", model=m, n_ctx=512) for i, m in enumerate(["slow", "fast", "missing"])]
    run = LiveRun(columns, "hi", GenerationParams(max_tokens=200), get_engine, mode="simultaneous")
    run.start()
    while run.poll():
        if columns[0].tokens >= 3:
            run.stop(0)
        time.sleep(0.005)
    assert columns[0].status == "stopped" and columns[0].tokens < 100
    assert columns[0].row("simultaneous")["stop_reason"] == "cancelled"
    assert columns[1].status == "done" and columns[1].tokens == 20
    assert columns[2].status == "failed" and "missing" in columns[2].error
