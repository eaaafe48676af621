import io

import pandas as pd

from core.ids import new_id


def test_ids_that_a_csv_reader_takes_for_numbers_are_drawn_again():
    rejected = ["5869698e0781", "004215938871", "1234567e8901"]
    draws = iter([r + "0" * 20 for r in rejected] + ["3f9a01c2d4e5" + "0" * 20])
    got = new_id(12, draw=lambda: next(draws))
    assert got == "3f9a01c2d4e5"
    frame = pd.read_csv(io.StringIO(f"run_id\n5869698e0781\n004215938871\n{got}\n"))
    assert frame["run_id"].tolist() == ["5869698e0781", "004215938871", got], "pandas keeps a text column as text"
    alone = pd.read_csv(io.StringIO("run_id\n5869698e0781\n"))
    assert alone["run_id"].tolist() != ["5869698e0781"], "alone, the rejected form is read as a number"


def test_real_ids_survive_a_csv_round_trip():
    ids = [new_id(12) for _ in range(2000)]
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids)
    for one in ids:
        assert pd.read_csv(io.StringIO(f"run_id\n{one}\n"))["run_id"].tolist() == [one]
