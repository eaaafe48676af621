"""The Arena tab's leaderboard tables (dashboard.tabs.arena.board_tables) for a board of two groups that never
met: the note says so, each group is ranked apart, and no pair across groups gets a "votes needed"."""

from __future__ import annotations

from dashboard.tabs.arena import board_chart, board_tables
from tests.bench.answers.test_ratings import synthetic_votes


def test_two_groups_that_never_met_on_the_tab():
    votes = synthetic_votes({"p": 1200, "q": 1000, "r": 800}, 200, seed=2) + [("u", "v", "a"), ("u", "v", "b")]
    note, frame, seps = board_tables(votes)
    assert "2 groups that never met: ranks compare only within a group" in note
    assert "6 pair(s) from different groups cannot be compared yet" in note
    assert frame["group"].tolist() == [1, 1, 1, 2, 2] and frame["rank"].tolist()[3:] == [1, 1]
    assert seps["comparable"].all() and len(seps) == 4  # p-q, p-r, q-r, u-v
    assert board_chart(frame).to_dict()["layer"][1]["encoding"]["color"]["field"] == "group"
    one_group, _, all_pairs = board_tables(votes[:-2])
    assert "never met" not in one_group and len(all_pairs) == 3
