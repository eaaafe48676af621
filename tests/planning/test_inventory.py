"""The planner's verdict on the models found on this machine, on a parameter count, and family runs."""

from __future__ import annotations

import pytest

from core.errors import BadParameter
from machine.detect import detect_hardware
from models.catalog import bundled_entry
from models.stores.entry import ModelEntry
from planning.estimate import estimate
from planning.inventory import display_row, family_runs, inventory, row_for
from planning.specs import load_spec, parse_params, spec_from_params


def test_every_bundled_model_gets_a_verdict_with_its_numbers():
    rows = inventory(detect_hardware(probe_bandwidth=False), entries=[bundled_entry("smollm2-135m")])
    (row,) = rows
    assert row.verdict in ("fits", "tight", "does not fit") and row.need_bytes > row.entry.size_bytes
    assert row.n_ctx == 4096 and "needs" in row.why
    shown = display_row(row)
    assert shown["params"] == "135M" and shown["fits here (planned)"] == row.verdict and shown["problem"] == ""


def test_a_broken_entry_is_unknown_never_a_zero():
    broken = ModelEntry("ollama:x:1", "ollama", "gguf", None, problem="the model blob is missing")
    row = row_for(broken, detect_hardware(probe_bandwidth=False), 10**10)
    assert (row.verdict, row.need_bytes) == ("unknown", None) and "missing" in row.why
    assert display_row(row)["fits here (planned)"] == "" and display_row(row)["size (GiB)"] == ""


def test_a_parameter_count_plans_with_the_nearest_published_shape_and_needs_a_quantization():
    assert parse_params("8B") == 8.0 and parse_params("135m") == pytest.approx(0.135) and parse_params("x8B") is None
    spec = load_spec("1.5B")
    assert spec.n_layers == 28 and "Qwen2.5-1.5B" in spec.note and spec.n_params == 1_500_000_000
    with pytest.raises(BadParameter, match="pick one"):
        estimate(spec, None, 4096)
    small, large = estimate(spec, "Q4_K_M", 4096), estimate(spec_from_params(70), "Q4_K_M", 4096)
    assert small.total_bytes < large.total_bytes and large.kv_cache_bytes > small.kv_cache_bytes
    with pytest.raises(BadParameter):
        spec_from_params(0)


def test_family_runs_put_each_file_on_the_engine_that_runs_it():
    a = ModelEntry("a", "hf-cache", "gguf", "/x/a.gguf", family="f")
    a2 = ModelEntry("a2", "ollama", "gguf", "/x/blob", family="f")
    b = ModelEntry("b", "hf-cache", "mlx", "/x/b", family="f")
    c = ModelEntry("c", "hf-cache", "hf", "/x/c", family="f")
    other = ModelEntry("d", "hf-cache", "gguf", "/x/d.gguf", family="g")
    broken = ModelEntry("e", "ollama", "gguf", None, family="f", problem="missing blob")
    runs = family_runs("b", [c, a, a2, b, other, broken])
    assert runs == [("mlx", "b"), ("llamacpp", "a"), ("torch", "c")]  # one file per engine, the picked one first
    assert family_runs("a2", [a, a2, b])[0] == ("llamacpp", "a2")
    assert family_runs("nothing", [a]) == []
