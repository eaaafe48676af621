"""Speed rows in llama-bench's own output fields, and the jsonl and sql writers llama-bench has.

Field names, their order and their types are llama-bench's (tools/llama-bench/llama-bench.cpp in the
llama.cpp vendored by the pinned llama-cpp-python 0.3.36: `test::get_fields`, `get_field_type`), so its
`scripts/compare-llama-bench.py` and any reader of its csv/json/jsonl/sql finds them. Then come
`samples_ns` and `samples_ts` (as llama-bench's json), then every field of ours that llama-bench lacks
(model, engine, test, bench_method, cv_pct, the roofline, ...). A value we do not know is null (NULL in
sql, empty in csv), never a made-up default: llama.cpp's fixed settings (split mode, cpu mask, ...) are
filled for llama.cpp rows only, with what our llama.cpp engine actually passes.

sql is llama-bench's: `CREATE TABLE IF NOT EXISTS llama_bench (...)` with exactly llama-bench's columns,
then one `INSERT INTO llama_bench` per row, so our files and `llama-bench -o sql` append to one database in
either order (its compare script reads both). The whole row (samples and our fields too) goes to a second
table, `localbench_speed`, in the same file. Ours types each value (INTEGER, REAL, TEXT, NULL) where
llama-bench quotes all of them.
"""

from __future__ import annotations

import math

import pandas as pd

from bench.results import export

LLAMA_BENCH_FIELDS = (
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends",
    "model_filename", "model_type", "model_size", "model_n_params", "n_batch",
    "n_ubatch", "n_threads", "cpu_mask", "cpu_strict", "poll",
    "type_k", "type_v", "n_gpu_layers", "n_cpu_moe", "split_mode",
    "main_gpu", "no_kv_offload", "flash_attn", "devices", "tensor_split",
    "tensor_buft_overrides", "load_mode", "lazy_mode",
    "embeddings",
    "no_op_offload", "no_host", "repack", "fit_target", "fit_min_ctx",
    "n_prompt", "n_gen", "n_depth",
    "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts",
)  # fmt: skip
"""llama-bench's `test::get_fields()`, in its order."""

INT_FIELDS = frozenset(
    "build_number n_batch n_ubatch n_threads poll model_size model_n_params n_gpu_layers main_gpu n_prompt n_gen "
    "n_depth avg_ns stddev_ns no_op_offload n_cpu_moe fit_target fit_min_ctx flash_attn".split()
)
BOOL_FIELDS = frozenset("no_kv_offload cpu_strict embeddings no_host repack".split())
FLOAT_FIELDS = frozenset(("avg_ts", "stddev_ts"))
SAMPLE_FIELDS = ("samples_ns", "samples_ts")

LLAMACPP_FIXED = {
    "cpu_mask": "0x0",
    "cpu_strict": False,
    "n_cpu_moe": 0,
    "split_mode": "layer",
    "main_gpu": 0,
    "no_kv_offload": False,
    "devices": "auto",
    "tensor_split": "0.00",
    "tensor_buft_overrides": "none",
    "embeddings": False,
    "no_host": False,
    "fit_target": 0,
    "fit_min_ctx": 0,
}
"""What our llama.cpp engine runs with, in llama-bench's spelling: no CPU mask, no MoE offload, llama.cpp's
default layer split on device 0, the KV cache offloaded with the layers, every device, no tensor split or
buffer override, no embeddings, host buffers used, no parameter fitting."""


def sql_type(field: str) -> str:
    """llama-bench's sql column type of one of its fields (`sql_printer::get_sql_field_type`)."""
    if field in INT_FIELDS or field in BOOL_FIELDS:
        return "INTEGER"
    return "REAL" if field in FLOAT_FIELDS else "TEXT"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _flag(value) -> bool | None:
    """'1'/'0'/'' (our repack, use_mmap) → True/False/None."""
    text = "" if _missing(value) else str(value).strip().lower()
    return {"1": True, "true": True, "0": False, "false": False}.get(text)


def llama_bench_row(row: dict) -> dict:
    """One speed row (a SpeedResult as a dict) as llama-bench's fields, samples, then our other fields."""
    llamacpp = row.get("engine") == "llamacpp"
    decode = row.get("bench_method") == "llama-bench"
    mmap = _flag(row.get("use_mmap"))
    fixed = LLAMACPP_FIXED if llamacpp else {}
    out = {
        "build_commit": row.get("versions") or None,  # our engine's versions: the llama.cpp commit is not exposed
        "build_number": None,
        "cpu_info": row.get("cpu_info"),
        "gpu_info": row.get("gpu_info"),
        "backends": row.get("backends"),
        "model_filename": row.get("model_filename"),
        "model_type": row.get("model_type"),
        "model_size": row.get("model_size"),
        "model_n_params": row.get("model_n_params"),
        "n_batch": row.get("n_batch"),
        "n_ubatch": row.get("n_ubatch") or None,
        "n_threads": row.get("n_threads"),
        "poll": 50 if decode else None,  # the threadpool's poll in our llama-bench method (llama-bench's default)
        "type_k": row.get("type_k") or None,
        "type_v": row.get("type_v") or None,
        "n_gpu_layers": row.get("n_gpu_layers"),
        "flash_attn": row.get("flash_attn"),
        "load_mode": None if mmap is None else ("mmap" if mmap else "none"),
        "lazy_mode": None,
        "no_op_offload": 0 if decode else None,
        "repack": _flag(row.get("repack")),
        "n_prompt": row.get("n_prompt"),
        "n_gen": row.get("n_gen"),
        "n_depth": row.get("n_depth"),
        "test_time": row.get("test_time"),
        "avg_ns": _int(row.get("avg_ns")),
        "stddev_ns": _int(row.get("stddev_ns")),
        "avg_ts": row.get("avg_ts"),
        "stddev_ts": row.get("stddev_ts"),
    }
    out = {f: fixed[f] if f in fixed else out.get(f) for f in LLAMA_BENCH_FIELDS}
    for f in SAMPLE_FIELDS:
        out[f] = list(row.get(f) or ())
    out.update({k: v for k, v in row.items() if k not in out})
    return {k: None if _missing(v) else v for k, v in out.items()}


def _int(value) -> int | None:
    return None if _missing(value) else round(float(value))


def llama_bench_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A to_frame() of speed rows with llama-bench's columns first (see the module docstring)."""
    rows = [llama_bench_row(r) for r in frame.to_dict("records")]
    out = pd.DataFrame(rows)
    for f in (*INT_FIELDS, *BOOL_FIELDS):  # ints stay ints with nulls; bools print 0/1 as llama-bench's csv
        if f in out.columns:
            out[f] = out[f].map(lambda v: None if _missing(v) else int(v)).astype("Int64")  # NaN: a row lacks it
    return out


def to_jsonl(frame: pd.DataFrame) -> str:
    """One JSON object per row per line (llama-bench's jsonl); llama-bench's bools as true/false."""
    return export.to_jsonl(frame, BOOL_FIELDS)


def to_sql(frame: pd.DataFrame, table: str = "llama_bench") -> str:
    """llama-bench's sql: CREATE TABLE IF NOT EXISTS, then one INSERT per row (samples as JSON text);
    llama-bench's fields typed as llama-bench types them."""
    return export.to_sql(frame, table, {f: sql_type(f) for f in LLAMA_BENCH_FIELDS})


def to_speed_sql(frame: pd.DataFrame) -> str:
    """A llama_bench_frame() as llama-bench's table (its columns only) plus `localbench_speed` (every column)."""
    return to_sql(frame[list(LLAMA_BENCH_FIELDS)], "llama_bench") + "\n" + to_sql(frame, "localbench_speed")


def to_json(frame: pd.DataFrame) -> str:
    """A JSON array of the rows (llama-bench's json), bools as true/false."""
    return export.to_json_array(frame, BOOL_FIELDS)


def render_speed(frame: pd.DataFrame, fmt: str) -> str:
    """Speed rows (a to_frame()) as csv, json, jsonl or sql with llama-bench's fields first."""
    lb = llama_bench_frame(frame)
    if fmt == "csv":
        return export.to_csv(lb)
    if fmt == "json":
        return to_json(lb)
    if fmt == "jsonl":
        return to_jsonl(lb)
    if fmt == "sql":
        return to_speed_sql(lb)
    raise ValueError(f"not a llama-bench output format: {fmt!r}")
