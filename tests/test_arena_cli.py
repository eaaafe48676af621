"""`python app.py arena`: votes drawn from known Bradley–Terry strengths, imported twice, come back from
`arena leaderboard -o csv` in the right order with separated intervals; bad input is one line, exit 2."""

from __future__ import annotations

import io

import pandas as pd

from tests.bench.answers.test_ratings import synthetic_votes
from tests.conftest import run_app


def write_votes(path, votes) -> None:
    rows = [{"vote_id": f"v{i}", "model_a": a, "model_b": b, "winner": w} for i, (a, b, w) in enumerate(votes)]
    pd.DataFrame(rows).to_csv(path, index=False)


def test_import_twice_then_leaderboard_recovers_known_order(tmp_path):
    db = str(tmp_path / "arena.db")
    votes_csv = tmp_path / "votes.csv"
    write_votes(votes_csv, synthetic_votes({"top": 1300, "mid": 1000, "low": 700}, 600, seed=11, tie_share=0.1))
    first = run_app("arena", "--db", db, "import", str(votes_csv))
    assert first.returncode == 0, first.stderr
    assert "imported 600 new vote(s)" in first.stdout
    again = run_app("arena", "--db", db, "import", str(votes_csv))
    assert "imported 0 new vote(s), 600 already stored" in again.stdout

    proc = run_app("arena", "--db", db, "leaderboard", "-o", "csv")
    assert proc.returncode == 0, proc.stderr
    board = pd.read_csv(io.StringIO(proc.stdout))
    assert list(board.columns[:9]) == [
        "model",
        "rank",
        "rating",
        "ci_low",
        "ci_high",
        "n_votes",
        "wins",
        "losses",
        "ties",
    ]
    assert list(board["model"]) == ["top", "mid", "low"] and list(board["rank"]) == [1, 2, 3]
    assert (board["ci_low"].iloc[:-1].to_numpy() > board["ci_high"].iloc[1:].to_numpy()).all()
    assert board["n_votes"].sum() == 2 * 600

    md = run_app("arena", "--db", db, "leaderboard")
    assert "mean anchored at 1000" in md.stdout and "Position bias" in md.stdout and "votes_needed" in md.stdout
    boot = run_app("arena", "--db", db, "leaderboard", "-o", "json", "--ci", "bootstrap", "--bootstrap-rounds", "50")
    assert boot.returncode == 0, boot.stderr
    exported = pd.read_csv(io.StringIO(run_app("arena", "--db", db, "export").stdout))
    assert len(exported) == 600 and set(exported["source"]) == {"import"}


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    db = str(tmp_path / "arena.db")
    empty = run_app("arena", "--db", db, "leaderboard")
    assert empty.returncode == 2 and empty.stderr.startswith("error: no votes in")
    missing = run_app("arena", "--db", db, "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "no votes file" in missing.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("vote_id,model_a,model_b,winner\n1,x,y,left\n")
    rejected = run_app("arena", "--db", db, "import", str(bad))
    assert rejected.returncode == 2
    assert "rejected: row 2: winner 'left' is not one of a, b, tie, both_bad" in rejected.stderr
    assert rejected.stderr.strip().splitlines()[-1].startswith("error: no usable votes")
