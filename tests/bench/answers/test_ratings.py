"""The arena leaderboard math on hand-computed cases, symmetric sets, and votes drawn from known strengths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.answers.ratings import (
    SCALE,
    Z95,
    fit,
    groups,
    groups_note,
    leaderboard,
    leaderboard_frame,
    position_bias,
    rank_by_overlap,
    separation_frame,
    votes_to_separate,
)


def synthetic_votes(strengths: dict[str, float], n: int, seed: int, tie_share: float = 0.0) -> list:
    """Votes between random pairs from Elo-scale strengths; sides random; some ties if asked."""
    rng = np.random.default_rng(seed)
    names = list(strengths)
    votes = []
    for _ in range(n):
        a, b = rng.choice(names, size=2, replace=False)
        p = 1 / (1 + 10 ** ((strengths[b] - strengths[a]) / 400))
        if rng.random() < tie_share:
            votes.append((a, b, "tie"))
        else:
            votes.append((a, b, "a" if rng.random() < p else "b"))
    return votes


def test_two_models_three_wins_in_four_match_the_hand_computed_gap_and_interval():
    votes = [("x", "y", "a")] * 3 + [("x", "y", "b")]
    board = {r.model: r for r in leaderboard(votes)}
    gap = 400 * math.log10(3)  # P = 3/4 ⇒ 10^(gap/400) = 3
    assert board["x"].rating == pytest.approx(1000 + gap / 2, abs=0.1)
    assert board["y"].rating == pytest.approx(1000 - gap / 2, abs=0.1)
    # Each rating is ±gap/2, so its variance is var(gap)/4 = 1 / (4 · n p (1 − p)) = 1/3 (logit units²).
    half = Z95 * SCALE * math.sqrt(1 / 3)
    assert board["x"].ci_high - board["x"].rating == pytest.approx(half, rel=1e-3)
    assert (board["x"].wins, board["x"].losses, board["x"].ties, board["x"].n_votes) == (3, 1, 0, 4)


def test_ties_are_half_a_win_and_both_bad_is_a_tie():
    two_wins_two_losses = leaderboard([("x", "y", "a"), ("x", "y", "a"), ("x", "y", "b"), ("x", "y", "b")])
    all_ties = leaderboard([("x", "y", "tie"), ("x", "y", "both_bad")] * 2)
    for board in (two_wins_two_losses, all_ties):
        assert [r.rating for r in board] == pytest.approx([1000, 1000], abs=1e-6)
    # win + tie ≡ 1.5 of 2 ⇒ P = 3/4, the same gap as three wins in four
    win_tie = {r.model: r.rating for r in leaderboard([("x", "y", "a"), ("x", "y", "tie")])}
    assert win_tie["x"] - win_tie["y"] == pytest.approx(400 * math.log10(3), abs=0.2)


def test_symmetric_cycle_gives_equal_ratings_and_one_shared_rank():
    votes = [("a", "b", "a"), ("b", "c", "a"), ("c", "a", "a")] * 5
    board = leaderboard(votes)
    assert [r.rating for r in board] == pytest.approx([1000] * 3, abs=1e-6)
    assert {r.rank for r in board} == {1}


def test_mean_is_anchored_at_1000():
    board = leaderboard(synthetic_votes({"p": 1200, "q": 1000, "r": 900, "s": 700}, 400, seed=1))
    assert np.mean([r.rating for r in board]) == pytest.approx(1000, abs=1e-6)


def test_unbeaten_model_stays_finite():
    board = leaderboard([("x", "y", "a")] * 10)
    assert all(math.isfinite(r.rating) and math.isfinite(r.ci_high) for r in board)
    assert board[0].model == "x"


def test_known_strengths_come_back_in_order_with_separated_intervals():
    truth = {"best": 1300, "good": 1100, "fair": 900, "poor": 700}
    votes = synthetic_votes(truth, 1200, seed=7, tie_share=0.1)
    board = leaderboard(votes)
    assert [r.model for r in board] == ["best", "good", "fair", "poor"]
    assert [r.rank for r in board] == [1, 2, 3, 4]
    # differences, not absolute values, are identified: compare gaps to the truth
    got = {r.model: r.rating for r in board}
    assert got["best"] - got["poor"] == pytest.approx(600, abs=100)
    seps = separation_frame(votes, board)
    assert seps["separated"].all()


def test_intervals_cover_the_truth_at_about_the_stated_rate():
    truth = {"a": 1150, "b": 1050, "c": 950, "d": 850}  # mean 1000, as the anchor
    covered = total = 0
    for seed in range(150):
        result = fit(synthetic_votes(truth, 300, seed=seed))
        for m, lo, hi in zip(result.models, result.ci_low, result.ci_high, strict=True):
            covered += lo <= truth[m] <= hi
            total += 1
    assert 0.91 <= covered / total <= 0.99


def test_bootstrap_agrees_with_closed_form_and_is_reproducible():
    votes = synthetic_votes({"a": 1100, "b": 1000, "c": 900}, 300, seed=3)
    closed = fit(votes)
    boot = fit(votes, method="bootstrap", n_bootstrap=300, seed=5)
    again = fit(votes, method="bootstrap", n_bootstrap=300, seed=5)
    np.testing.assert_allclose(boot.ci_low, again.ci_low)
    np.testing.assert_allclose(closed.ratings, boot.ratings)
    np.testing.assert_allclose(boot.ci_high - boot.ci_low, closed.ci_high - closed.ci_low, rtol=0.25)


def test_rank_by_overlap():
    # a is surely above c only; b overlaps both
    assert rank_by_overlap([1100, 940, 880], [1200, 1120, 950]) == [1, 1, 2]


def test_votes_to_separate_matches_the_fisher_information_formula():
    gap = 400 * math.log10(3)  # p = 3/4 ⇒ p(1 − p) = 3/16, gap = ln 3 logit units
    assert votes_to_separate(1000 + gap, 1000) == pytest.approx(Z95**2 / (math.log(3) ** 2 * 3 / 16))
    assert votes_to_separate(1000, 1000) == math.inf
    assert votes_to_separate(1200, 1000) < votes_to_separate(1050, 1000)


def test_position_bias_from_logged_sides():
    fair = position_bias([("x", "y", "a"), ("y", "x", "a"), ("x", "y", "b"), ("y", "x", "b"), ("x", "y", "tie")])
    assert (fair.decisive, fair.a_wins, fair.share_a, fair.elo_points) == (4, 2, 0.5, 0.0)
    assert fair.p_value == pytest.approx(1.0)
    biased = position_bias([("x", "y", "a")] * 30 + [("x", "y", "b")] * 10)
    assert biased.share_a == 0.75 and biased.ci_low > 0.5 and biased.p_value < 0.01
    assert biased.elo_points == pytest.approx(400 * math.log10(3))
    assert position_bias([]).decisive == 0


def test_bad_winner_and_no_votes_are_errors():
    with pytest.raises(ValueError, match="winner must be one of"):
        leaderboard([("x", "y", "left")])
    with pytest.raises(ValueError, match="no votes"):
        leaderboard([])
    assert list(leaderboard_frame([]).columns)[:3] == ["model", "rank", "rating"]


def test_one_vote_gives_a_wide_interval_not_a_confident_gap():
    (top, bottom) = leaderboard([("x", "y", "a")])
    assert top.ci_low < bottom.ci_high  # one vote cannot separate two models
    assert top.rank == bottom.rank == 1
    closed = fit([("x", "y", "a")] * 3 + [("x", "y", "b")])  # not separable: Fisher and sandwich agree
    assert closed.ci_high[0] - closed.ratings[0] == pytest.approx(Z95 * SCALE * math.sqrt(1 / 3), rel=1e-3)


def test_two_groups_that_never_met_are_fitted_and_ranked_apart():
    big = synthetic_votes({"p": 1200, "q": 1000, "r": 800}, 300, seed=4)
    stray = [("u", "v", "a"), ("u", "v", "b")]  # an unrelated pair with 2 votes
    assert groups(big + stray) == [["p", "q", "r"], ["u", "v"]]
    board = leaderboard(big + stray)
    alone = {r.model: r for r in leaderboard(big)}
    by_model = {r.model: r for r in board}
    # the stray pair widens no one's interval and moves no rating: each group is fitted alone
    for m in "pqr":
        assert by_model[m].group == 1
        assert by_model[m].rating == pytest.approx(alone[m].rating, abs=1e-6)
        assert by_model[m].ci_high - by_model[m].ci_low == pytest.approx(alone[m].ci_high - alone[m].ci_low)
    assert [r.model for r in board] == ["p", "q", "r", "u", "v"]  # group by group, best first within
    assert [r.rank for r in board] == [1, 2, 3, 1, 1]  # ranks restart in each group
    assert by_model["u"].group == by_model["v"].group == 2
    assert by_model["u"].rating == pytest.approx(1000, abs=1e-6)  # anchored within its own group
    assert "2 groups that never met: ranks compare only within a group" in groups_note(board)
    assert groups_note(alone.values()) == ""
    seps = separation_frame(big + stray, board).set_index(["model_a", "model_b"])
    across = seps.loc[("p", "u")]
    assert not across["comparable"] and pd.isna(across["votes_needed"]) and pd.isna(across["gap"])
    assert seps.loc[("u", "v")]["comparable"] and seps.loc[("p", "q")]["votes_needed"] > 0
    assert leaderboard_frame(board)["group"].tolist() == [1, 1, 1, 2, 2]
