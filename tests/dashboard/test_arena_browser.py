"""Real-browser test of the Arena tab: a pool of one is refused, a blind round on two seeded SmolLM2 entries
hides names and speed until the vote, a double-clicked vote counts once, and the leaderboard CSV parses."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.browser


def add_entry(page, temperature: str, seed: str) -> None:
    page.locator("#arena-temp input").fill(temperature)
    page.locator("#arena-seed input").fill(seed)
    page.locator("#arena-add").click()


def text_of(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id}").inner_text()


def test_blind_round_vote_reveals_names_and_counts_once(page, tmp_path):
    page.get_by_role("tab", name="Arena").click()
    add_entry(page, "0.9", "1")
    page.wait_for_function("() => /add one more/.test(document.querySelector('#arena-pool').innerText)")
    page.locator("#arena-prompt textarea").fill("Name a colour.")
    page.locator("#arena-max-tokens input").fill("12")
    page.locator("#arena-send").click()
    page.wait_for_function("() => /at least two/.test(document.querySelector('#arena-status').innerText)")

    add_entry(page, "0.9", "2")
    page.wait_for_function("() => /seed=2/.test(document.querySelector('#arena-pool').innerText)")
    page.locator("#arena-send").click()
    page.wait_for_function(
        "() => /Both answers are in/.test(document.querySelector('#arena-status').innerText)", timeout=180_000
    )
    for side in ("a", "b"):
        assert page.locator(f"#arena-answer-{side} textarea").input_value().strip()
    hidden = text_of(page, "arena-reveal-a") + text_of(page, "arena-reveal-b")
    assert "shown after your vote" in hidden and "seed=" not in hidden and "t/s" not in hidden

    page.locator("#arena-vote-a").dblclick()  # two clicks before the buttons lock: one vote
    page.wait_for_function("() => /A was/.test(document.querySelector('#arena-reveal-a').innerText)")
    assert "smollm2-135m · llamacpp · T=0.9 seed=" in text_of(page, "arena-reveal-a")
    assert "t/s" in text_of(page, "arena-reveal-b")
    page.wait_for_function("() => /^1 votes/.test(document.querySelector('#arena-board-note').innerText)")
    page.wait_for_timeout(1500)  # let a second click's event finish too
    assert text_of(page, "arena-board-note").startswith("1 votes")
    assert page.locator("#arena-vote-b").is_disabled()

    with page.expect_download() as info:
        page.locator("#arena-csv").click()
    path = tmp_path / "arena.csv"
    info.value.save_as(path)
    board = pd.read_csv(path)
    assert list(board["n_votes"]) == [1, 1] and board["wins"].sum() == 1
    assert board["model"].str.contains("seed=1").any() and board["model"].str.contains("seed=2").any()
    assert board.loc[0, "rating"] > board.loc[1, "rating"]
