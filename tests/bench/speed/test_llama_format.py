"""llama-bench's printers on mixed frames: rows of engines that lack an integer field keep it null."""

from __future__ import annotations

import pandas as pd

from bench.speed.llama_format import llama_bench_frame


def test_an_integer_field_some_rows_lack_stays_null_and_the_others_stay_integers():
    """A frame mixing llama.cpp rows (n_batch known) with MLX/torch rows (no n_batch) came back from
    to_dict('records') with NaN in the gaps, which int() refused (quant -o csv crashed on it)."""
    frame = pd.DataFrame([{"model": "a", "n_batch": 2048, "n_prompt": 16}, {"model": "b", "n_prompt": 16}])
    out = llama_bench_frame(frame)
    assert out["n_batch"].tolist()[0] == 2048 and out["n_batch"].isna().tolist() == [False, True]
    assert str(out["n_batch"].dtype) == "Int64" and out["n_prompt"].tolist() == [16, 16]
