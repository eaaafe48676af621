"""The arena leaderboard: Bradley–Terry ratings on the Elo scale, 95 % intervals, ranks, position bias.

Pure functions on a list of votes `(model_a, model_b, winner)` with winner in `a | b | tie | both_bad`;
they import only numpy, scipy and pandas. The method follows FastChat/LMArena (`arena-rank`):

- Bradley–Terry maximum likelihood: P(a beats b) = 1 / (1 + 10^((r_b − r_a) / 400)), i.e. the logit is
  ln(10)·(r_a − r_b)/400; ratings are the fitted strengths × 400/ln 10.
- Anchor: the ratings' **mean is 1000** (the likelihood only fixes differences). Adding a model moves
  every rating; compare differences, not absolute numbers, across boards.
- Ties count as **half a win** for each side; "both bad" counts as a tie too (FastChat does the same).
- A tiny ridge (`RIDGE` × votes on the squared strengths) keeps a model that won or lost every vote
  finite; on the hand-computed cases it moves ratings by less than 0.1 point.
- 95 % intervals: closed form by default, z = 1.96 times the larger of two standard errors per model:
  the sandwich estimator H⁻¹ G H⁻¹ that `arena-rank` uses (robust when the model is wrong) and the
  model-based inverse Fisher information H⁻¹. They agree when votes are plentiful; the sandwich alone
  collapses to a narrow interval when a model won or lost every vote (one vote gave ±150 points around
  a 1,300-point gap), the Fisher one stays wide there. Or a percentile bootstrap over votes with a
  fixed seed (it collapses the same way on a handful of votes).
- Rank by interval overlap (LMArena's "rank (UB)"): 1 + the number of models whose lower bound is above
  this model's upper bound, so models with overlapping intervals share a rank.
- Groups that never met: models with no chain of votes between them (separate connected components of
  the comparison graph) have no common scale. Each group is fitted alone, anchored at 1000 and ranked
  within itself, so an unrelated pair neither shares a scale with nor widens the others' intervals;
  pairs across groups get no gap and no "votes needed" (`groups`, `groups_note`).

`arena-rank` itself is not used: it pins numpy==2.3.3 and jax==0.8.1, which would downgrade this
environment's numpy. Its sandwich estimator is reproduced here and checked on hand-computed cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SCALE = 400.0 / math.log(10.0)
"""Elo points per unit of Bradley–Terry log-strength (≈ 173.7)."""
ANCHOR = 1000.0
"""The mean rating."""
RIDGE = 1e-4
"""L2 penalty per vote on the log-strengths; keeps an unbeaten model's rating finite."""
Z95 = 1.959963984540054
WINNERS = ("a", "b", "tie", "both_bad")

VoteTuple = tuple[str, str, str]
"""(model shown as A, model shown as B, winner in WINNERS)."""


@dataclass(frozen=True)
class Rating:
    """One model's row on the leaderboard."""

    model: str
    rank: int
    """1 + models whose ci_low is above this model's ci_high (interval overlap shares a rank)."""
    rating: float
    """Elo-scale Bradley–Terry rating, mean of all models = 1000."""
    ci_low: float
    """Lower end of the 95 % interval (Elo points)."""
    ci_high: float
    n_votes: int
    wins: int
    losses: int
    ties: int
    """Ties and "both bad" votes."""
    group: int = 1
    """Which group of models that met, directly or through others (1 = the largest); ranks and ratings
    compare only within a group."""


def outcome(winner: str) -> float:
    """Score of the model shown as A: 1 win, 0 loss, 0.5 tie or both bad."""
    if winner not in WINNERS:
        raise ValueError(f"winner must be one of {', '.join(WINNERS)}, got {winner!r}")
    return {"a": 1.0, "b": 0.0}.get(winner, 0.5)


def _encode(votes: Sequence[VoteTuple]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    models = sorted({m for a, b, _ in votes for m in (a, b)})
    index = {m: i for i, m in enumerate(models)}
    ia = np.array([index[a] for a, _, _ in votes], dtype=int)
    ib = np.array([index[b] for _, b, _ in votes], dtype=int)
    y = np.array([outcome(w) for _, _, w in votes], dtype=float)
    return models, ia, ib, y


def _pairwise(n: int, ia: np.ndarray, ib: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Σ values · (e_a − e_b)(e_a − e_b)ᵀ: the shape of the BT Hessian and score covariance."""
    mat = np.zeros((n, n))
    np.add.at(mat, (ia, ia), values)
    np.add.at(mat, (ib, ib), values)
    np.add.at(mat, (ia, ib), -values)
    np.add.at(mat, (ib, ia), -values)
    return mat


def fit_strengths(
    n: int, ia: np.ndarray, ib: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, ridge: float = RIDGE
) -> np.ndarray:
    """Log-strengths (natural units, sum zero) maximizing the weighted BT likelihood, by Newton's method.

    The objective is concave (strictly, with the ridge), so damped Newton from zero converges in a few
    steps; `weights` are vote counts (the bootstrap passes resampled multiplicities)."""
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    lam = ridge * max(float(w.sum()), 1.0)
    theta = np.zeros(n)

    def objective(t: np.ndarray) -> float:
        d = t[ia] - t[ib]
        return float(np.sum(w * (y * d - np.logaddexp(0.0, d))) - 0.5 * lam * t @ t)

    current = objective(theta)
    for _ in range(100):
        d = theta[ia] - theta[ib]
        p = 1.0 / (1.0 + np.exp(-d))
        grad = np.zeros(n)
        np.add.at(grad, ia, w * (y - p))
        np.add.at(grad, ib, -w * (y - p))
        grad -= lam * theta
        hess = _pairwise(n, ia, ib, w * p * (1 - p)) + lam * np.eye(n)
        step = np.linalg.solve(hess, grad)
        size = 1.0
        while size > 1e-6:  # backtracking keeps every step uphill
            candidate = theta + size * step
            value = objective(candidate)
            if value >= current - 1e-12:
                break
            size /= 2
        theta, current = candidate, value
        if np.max(np.abs(size * step)) < 1e-10:
            break
    return theta - theta.mean()


def covariances(
    n: int, ia: np.ndarray, ib: np.ndarray, y: np.ndarray, theta: np.ndarray, ridge: float = RIDGE
) -> tuple[np.ndarray, np.ndarray]:
    """(sandwich, model-based) covariances of the mean-anchored log-strengths.

    Sandwich: H⁻¹ G H⁻¹ (H: Hessian, G: Σ per-vote score outer products), as in arena-rank. Model-based:
    H⁻¹, the inverse Fisher information. Both are projected onto sum-zero strengths (the anchor): the
    ridge alone sets H along (1, …, 1), which the anchor removes."""
    d = theta[ia] - theta[ib]
    p = 1.0 / (1.0 + np.exp(-d))
    hess = _pairwise(n, ia, ib, p * (1 - p)) + ridge * max(len(y), 1) * np.eye(n)
    grad_cov = _pairwise(n, ia, ib, (y - p) ** 2)
    inv = np.linalg.inv(hess)
    centre = np.eye(n) - np.full((n, n), 1.0 / n)
    return centre @ inv @ grad_cov @ inv @ centre, centre @ inv @ centre


def groups(votes: Sequence[VoteTuple]) -> list[list[str]]:
    """The connected components of the comparison graph: models that met, directly or through others.

    Largest group first (ties by the first name), names sorted within a group."""
    parent: dict[str, str] = {}

    def root(m: str) -> str:
        parent.setdefault(m, m)
        while parent[m] != m:
            parent[m] = parent[parent[m]]
            m = parent[m]
        return m

    for a, b, _ in votes:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = {}
    for m in sorted(parent):
        members.setdefault(root(m), []).append(m)
    return sorted(members.values(), key=lambda g: (-len(g), g[0]))


def groups_note(rows: Sequence[Rating]) -> str:
    """One sentence when the board holds groups that never met, else ""."""
    count = len({r.group for r in rows})
    if count < 2:
        return ""
    return (
        f"{count} groups that never met: ranks compare only within a group (each group is fitted alone, "
        "mean 1000); pairs from different groups cannot be compared yet — vote between them to join the groups."
    )


def rank_by_overlap(low: Sequence[float], high: Sequence[float]) -> list[int]:
    """1 + how many others are surely better (their lower bound above this upper bound)."""
    return [1 + int(sum(lo_other > hi for lo_other in low)) for hi in high]


@dataclass(frozen=True)
class Fit:
    """A fitted board: ratings and their 95 % intervals (Elo points), in `models` order."""

    models: list[str]
    ratings: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    method: str
    """How the intervals were made, in words."""
    group: list[int]
    """Each model's group (`groups`, 1 = the largest); each group is fitted and anchored alone."""


def fit(
    votes: Sequence[VoteTuple], method: str = "sandwich", n_bootstrap: int = 1000, seed: int = 0, ridge: float = RIDGE
) -> Fit:
    """Bradley–Terry ratings (Elo scale, mean 1000 within each group that met) with 95 % intervals by
    `sandwich` or `bootstrap`; models are in group order, names sorted within a group."""
    if not votes:
        raise ValueError("no votes yet")
    for _, _, w in votes:
        outcome(w)  # a bad winner is an error whatever the grouping
    parts = []
    for members in groups(votes):
        inside = set(members)
        parts.append(_fit_group([v for v in votes if v[0] in inside], method, n_bootstrap, seed, ridge))
    return Fit(
        models=[m for part in parts for m in part.models],
        ratings=np.concatenate([part.ratings for part in parts]),
        ci_low=np.concatenate([part.ci_low for part in parts]),
        ci_high=np.concatenate([part.ci_high for part in parts]),
        method=parts[0].method,
        group=[g for g, part in enumerate(parts, start=1) for _ in part.models],
    )


def _fit_group(votes: Sequence[VoteTuple], method: str, n_bootstrap: int, seed: int, ridge: float) -> Fit:
    """`fit` on one connected group of models."""
    models, ia, ib, y = _encode(votes)
    n = len(models)
    theta = fit_strengths(n, ia, ib, y, ridge=ridge)
    ratings = ANCHOR + SCALE * theta
    if method == "sandwich":
        sandwich, fisher = covariances(n, ia, ib, y, theta, ridge)
        var = np.maximum(np.diag(sandwich), np.diag(fisher)) * SCALE**2
        half = Z95 * np.sqrt(np.clip(var, 0, None))
        low, high = ratings - half, ratings + half
        how = "closed form (±1.96 × the larger of the sandwich and the inverse-Fisher standard error)"
    elif method == "bootstrap":
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=n_bootstrap)
        samples = np.array([ANCHOR + SCALE * fit_strengths(n, ia, ib, y, c, ridge) for c in counts])
        low, high = np.percentile(samples, 2.5, axis=0), np.percentile(samples, 97.5, axis=0)
        how = f"percentile bootstrap ({n_bootstrap} resamples of the votes, seed {seed})"
    else:
        raise ValueError(f"method must be 'sandwich' or 'bootstrap', got {method!r}")
    return Fit(models, ratings, low, high, how, [1] * n)


def leaderboard(votes: Sequence[VoteTuple], **kwargs) -> list[Rating]:
    """The board, best first: rating, 95 % interval, rank by overlap, votes and the record."""
    return _ratings(votes, fit(votes, **kwargs))


def _ratings(votes: Sequence[VoteTuple], result: Fit) -> list[Rating]:
    """The board's rows from a fit of `votes`."""
    record = {m: [0, 0, 0] for m in result.models}  # wins, losses, ties
    for a, b, w in votes:
        if w == "a":
            record[a][0] += 1
            record[b][1] += 1
        elif w == "b":
            record[b][0] += 1
            record[a][1] += 1
        else:
            record[a][2] += 1
            record[b][2] += 1
    ranks = [0] * len(result.models)
    for g in set(result.group):  # ranks compare only within a group that met
        inside = [i for i, gi in enumerate(result.group) if gi == g]
        for i, r in zip(inside, rank_by_overlap(result.ci_low[inside], result.ci_high[inside]), strict=True):
            ranks[i] = r
    rows = [
        Rating(
            model=m,
            rank=ranks[i],
            rating=float(result.ratings[i]),
            ci_low=float(result.ci_low[i]),
            ci_high=float(result.ci_high[i]),
            n_votes=sum(record[m]),
            wins=record[m][0],
            losses=record[m][1],
            ties=record[m][2],
            group=result.group[i],
        )
        for i, m in enumerate(result.models)
    ]
    return sorted(rows, key=lambda r: (r.group, -r.rating, r.model))


def leaderboard_frame(rows: Sequence[Rating], digits: int = 1) -> pd.DataFrame:
    """Rows as the table, CSV and chart see them (ratings rounded to `digits`)."""
    frame = pd.DataFrame([r.__dict__ for r in rows])
    if frame.empty:
        return pd.DataFrame(columns=list(Rating.__dataclass_fields__))
    for col in ("rating", "ci_low", "ci_high"):
        frame[col] = frame[col].round(digits)
    return frame


def votes_to_separate(rating_a: float, rating_b: float, z: float = Z95) -> float:
    """Head-to-head votes between A and B for a 95 % interval on their difference to exclude zero,
    if the current gap is the true one (derived, not measured).

    From the Fisher information of n Bernoulli votes at p = P(A beats B): SE(gap, logit units) =
    1 / sqrt(n p (1 − p)); solving z · SE = |gap| gives n = z² / (gap² p (1 − p)). Ties carry less
    variance than a coin flip, so with many ties fewer votes suffice. Infinite for equal ratings."""
    gap = abs(rating_a - rating_b) / SCALE
    if gap == 0:
        return math.inf
    p = 1.0 / (1.0 + math.exp(-gap))
    return z * z / (gap * gap * p * (1.0 - p))


def separation_frame(votes: Sequence[VoteTuple], rows: Sequence[Rating]) -> pd.DataFrame:
    """Each pair of models: rating gap, whether their intervals overlap, head-to-head votes so far and
    the votes needed to separate them (`votes_to_separate`). A pair from different groups that never met
    is `comparable` False with no gap, no verdict and no votes needed: it cannot be compared yet."""
    direct: dict[frozenset, int] = {}
    for a, b, _ in votes:
        key = frozenset((a, b))
        direct[key] = direct.get(key, 0) + 1
    out = []
    for i, x in enumerate(rows):
        for y in rows[i + 1 :]:
            have = direct.get(frozenset((x.model, y.model)), 0)
            if x.group != y.group:
                out.append(
                    {
                        "model_a": x.model,
                        "model_b": y.model,
                        "comparable": False,
                        "gap": None,
                        "separated": None,
                        "head_to_head": have,
                        "votes_needed": None,
                        "more_needed": None,
                    }
                )
                continue
            needed = votes_to_separate(x.rating, y.rating)
            out.append(
                {
                    "model_a": x.model,
                    "model_b": y.model,
                    "comparable": True,
                    "gap": round(x.rating - y.rating, 1),
                    "separated": x.ci_low > y.ci_high or y.ci_low > x.ci_high,
                    "head_to_head": have,
                    "votes_needed": None if math.isinf(needed) else math.ceil(needed),
                    "more_needed": None if math.isinf(needed) else max(0, math.ceil(needed) - have),
                }
            )
    return pd.DataFrame(out)


@dataclass(frozen=True)
class PositionBias:
    """How often the side shown as A wins a decisive vote (sides are drawn at random, so 0.5 is fair)."""

    decisive: int
    """Votes with a winner (ties and both bad left out)."""
    a_wins: int
    share_a: float
    ci_low: float
    """Wilson 95 % interval of share_a."""
    ci_high: float
    p_value: float
    """Two-sided exact binomial test of share_a = 0.5."""
    elo_points: float
    """The same bias as a rating advantage: 400 · log10(share / (1 − share)); 0 when unbiased."""


def position_bias(votes: Sequence[VoteTuple]) -> PositionBias:
    """The A-side's share of decisive votes, its Wilson interval, a binomial test and its Elo size."""
    from scipy.stats import binomtest

    winners = [w for _, _, w in votes if w in ("a", "b")]
    n, k = len(winners), sum(w == "a" for w in winners)
    if n == 0:
        return PositionBias(0, 0, math.nan, math.nan, math.nan, math.nan, math.nan)
    share = k / n
    centre = (share + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(share * (1 - share) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    clipped = min(max(share, 0.5 / n), 1 - 0.5 / n)  # finite for 0 % or 100 %
    return PositionBias(
        decisive=n,
        a_wins=k,
        share_a=share,
        ci_low=centre - half,
        ci_high=centre + half,
        p_value=float(binomtest(k, n, 0.5).pvalue),
        elo_points=400.0 * math.log10(clipped / (1 - clipped)),
    )


@dataclass(frozen=True)
class BoardReport:
    """A leaderboard with what is said beside it, for `arena leaderboard` and the Arena tab alike."""

    rows: list[Rating]
    notes: tuple[str, ...]
    """Sentences: the votes and the method, groups that never met, the position bias, and the pairs from
    different groups that cannot be compared yet (each only when it applies)."""
    separations: pd.DataFrame
    """separation_frame of the pairs that can be compared (derived)."""
    groups_note: str
    """The sentence on groups that never met, or "" (also in `notes`)."""


def board_report(votes: Sequence[VoteTuple], **kwargs) -> BoardReport:
    """One fit of `votes` (non-empty; `fit`'s keyword arguments) and the board's notes and separations."""
    result = fit(votes, **kwargs)
    rows = _ratings(votes, result)
    apart_note, bias = groups_note(rows), position_bias(votes)
    notes = [f"{len(votes)} votes. {method_note(result.method)}"] + ([apart_note] if apart_note else [])
    if bias.decisive:
        notes.append(
            f"Position bias: A won {bias.a_wins} of {bias.decisive} decisive votes ({bias.share_a:.0%}, 95 % CI "
            f"{bias.ci_low:.0%}–{bias.ci_high:.0%}, binomial p = {bias.p_value:.2g}; {bias.elo_points:+.0f} Elo "
            "points for the A side)."
        )
    seps = separation_frame(votes, rows)
    if not seps.empty and not seps["comparable"].all():
        apart = int((~seps["comparable"]).sum())
        notes.append(f"{apart} pair(s) from different groups cannot be compared yet: no votes needed is given.")
        seps = seps[seps["comparable"]]
    return BoardReport(rows, tuple(notes), seps, apart_note)


def method_note(ci_method: str) -> str:
    """One sentence on how the board is computed, for the CLI and the tab; `ci_method` is Fit.method."""
    return (
        "Bradley–Terry MLE on the Elo scale (400/ln 10 points per unit of log-strength), mean anchored at 1000; "
        f"ties and both-bad count as half a win; 95 % intervals: {ci_method}; rank = 1 + models whose interval "
        "lies entirely above."
    )
