"""Arena votes: a double vote counts once and survives a reopen; CSV import rejects bad rows with reasons;
and one real blind round on the bundled SmolLM2 (llama.cpp) with two differently seeded entries."""

from __future__ import annotations

import random

import pytest

from bench.answers.arena import draw, play, vote_of
from bench.answers.entry import Entry, engine_answer, make_pool
from bench.answers.ratings import leaderboard
from bench.answers.votes import Vote, VoteStore, parse_votes_csv, votes_frame
from core.errors import BadParameter


def test_double_vote_counts_once_and_survives_reopen(tmp_path):
    path = tmp_path / "arena.db"
    store = VoteStore(path)
    vote = Vote("v1", "x", "y", "a", prompt="hi", answer_a="hello", answer_b="hey", swapped=True)
    assert store.add([vote]) == 1
    assert store.add([vote]) == 0  # the second click
    reopened = VoteStore(path)
    assert reopened.count() == 1
    (back,) = reopened.votes()
    assert (back.vote_id, back.winner, back.swapped, back.answer_b, back.source) == ("v1", "a", True, "hey", "ui")
    assert back.created_at


def test_default_location_is_under_localbench_home(localbench_home):
    assert VoteStore().path == localbench_home / "arena.db"


def test_bad_vote_is_refused(tmp_path):
    store = VoteStore(tmp_path / "arena.db")
    with pytest.raises(ValueError, match="winner 'left'"):
        store.add([Vote("v", "x", "y", "left")])
    assert store.count() == 0


def test_csv_import_rejects_rows_with_reasons_and_is_idempotent(tmp_path):
    text = "vote_id,model_a,model_b,winner\n1,x,y,a\n2,x,y,left\n3,x,x,b\n4,y,x,both_bad\n1,x,y,b\n,x,y,a\n"
    votes, rejected = parse_votes_csv(text)
    assert [v.vote_id for v in votes] == ["1", "4"]
    assert rejected == [
        "row 3: winner 'left' is not one of a, b, tie, both_bad",
        "row 4: model_a and model_b are both 'x': label the two entries apart",
        "row 6: vote_id '1' repeats an earlier row",
        "row 7: empty vote_id",
    ]
    store = VoteStore(tmp_path / "a.db")
    assert store.add(votes) == 2
    assert store.add(parse_votes_csv(text)[0]) == 0
    assert list(votes_frame(store.votes())["source"]) == ["import", "import"]


def test_csv_with_unknown_columns_is_rejected_whole():
    votes, rejected = parse_votes_csv("vote_id,model_a,model_b,winnner\n1,x,y,a\n")
    assert votes == []
    assert "missing column(s) winner; unknown column(s) winnner" in rejected[0]


def test_pool_labels_and_size():
    pool = make_pool([Entry("llamacpp", "m"), Entry("llamacpp", "m"), Entry("llamacpp", "m", 0.8, 1)])
    assert [e.label for e in pool] == ["m · llamacpp", "m · llamacpp #2", "m · llamacpp · T=0.8 seed=1"]
    with pytest.raises(BadParameter, match="at least two"):
        make_pool([Entry("llamacpp", "m")])


def test_sides_are_randomized():
    pool = make_pool([Entry("e", "p"), Entry("e", "q")])
    rng = random.Random(0)
    rounds = [draw(pool, rng) for _ in range(200)]
    assert 70 < sum(r.swapped for r in rounds) < 130
    assert all(r.a.label != r.b.label for r in rounds)
    assert len({r.vote_id for r in rounds}) == 200


def test_real_round_on_llamacpp_with_two_seeds(llama_engine, tmp_path):
    pool = make_pool([Entry("llamacpp", "smollm2-135m", 0.9, seed=1), Entry("llamacpp", "smollm2-135m", 0.9, seed=2)])
    round_ = draw(pool, random.Random(1))
    with pytest.raises(BadParameter, match="send a prompt first"):
        vote_of(round_, "a")
    played = play(round_, "Name a colour.", lambda prompt, entry: engine_answer(llama_engine, prompt, entry, 16))
    assert played.answer_a.strip() and played.answer_b.strip()
    assert played.stats_a.gen_tokens > 0 and played.stats_b.gen_tps > 0
    store = VoteStore(tmp_path / "arena.db")
    vote = vote_of(played, "b")
    assert store.add([vote, vote]) == 1
    (saved,) = store.votes()
    assert saved.model_a == played.a.label and saved.engine_b == "llamacpp"
    assert '"gen_tps"' in saved.stats_a_json and saved.prompt == "Name a colour."
    board = leaderboard(store.triples())
    assert board[0].model == played.b.label and board[0].wins == 1


def test_our_own_export_re_imports_with_its_extra_columns_and_a_huge_answer(tmp_path):
    from bench.results.export import to_csv

    store = VoteStore(tmp_path / "a.db")
    stats = '{"ttft_s": 0.12, "gen_tps": 31.5}'
    store.add(
        [
            Vote("v1", "x", "y", "a", prompt="=1+1", answer_a="2" * 200_000, swapped=True, stats_a_json=stats),
            Vote("v2", "y", "x", "tie", prompt="- a list", answer_b="fine"),
        ]
    )
    text = to_csv(votes_frame(store.votes()))  # what `arena export` writes
    votes, rejected = parse_votes_csv(text)
    assert rejected == [] and [v.vote_id for v in votes] == ["v1", "v2"]
    first, second = votes
    assert (first.swapped, first.prompt, len(first.answer_a), first.stats_a_json) == (True, "=1+1", 200_000, stats)
    assert second.prompt == "- a list" and first.created_at == store.votes()[0].created_at
    other = VoteStore(tmp_path / "b.db")
    assert other.add(votes) == 2
    keep = ("vote_id", "model_a", "model_b", "winner", "swapped", "prompt", "answer_a", "answer_b", "stats_a_json")
    assert [[getattr(v, k) for k in keep] for v in other.votes()] == [
        [getattr(v, k) for k in keep] for v in store.votes()
    ]


def test_broken_lines_and_cells_are_rejected_by_row():
    header = "vote_id,model_a,model_b,winner,swapped,stats_a_json,created_at"
    text = "\n".join(
        [
            header,
            "1,x,y,a",  # short: 4 of 7 cells
            "2,x,y,a,false,{},2026-01-01,extra",
            "3,x,y,a,maybe,{},",
            '4,x,y,a,true,"' + "[" * 100_000 + '",',  # a nesting bomb in a stats cell
            "5,x,y,a,true,[1],",
            "6,x,y,a,true,{},yesterday",
            "7,x,y,b,1,{},2026-01-01T10:00:00+00:00",
        ]
    )
    votes, rejected = parse_votes_csv(text + "\n")
    assert [v.vote_id for v in votes] == ["7"] and votes[0].swapped
    assert rejected == [
        "row 2: 4 cells where the header has 7",
        "row 3: 8 cells where the header has 7",
        "row 4: swapped 'maybe' is not true or false",
        "row 5: stats_a_json is not JSON",
        "row 6: stats_a_json is not a JSON object",
        "row 7: created_at 'yesterday' is not an ISO date",
    ]
    from bench.results.transfer import MAX_IMPORT_BYTES

    with pytest.raises(BadParameter, match="not a readable votes CSV: field larger than field limit"):
        parse_votes_csv(header + '\n1,x,y,a,true,{},"' + "x" * (MAX_IMPORT_BYTES + 1) + '"\n')
