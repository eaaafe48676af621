"""Speed against KV depth: one row per model, engine, test and depth from the raw samples, beside the memory
planner's maximum context for the model on this machine (an estimate, not a measurement).

Used by `python app.py bench` (a depth table when several `-d` depths ran) and by the Compare tab's depth
section (dashboard.tabs.compare_depth), which charts the same rows.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import pandas as pd

from bench.results.export import mean_pm_column, to_markdown
from bench.stats import summarize

DEPTH_COLUMNS = [
    "model",
    "engine",
    "config",
    "test",
    "depth (tokens)",
    "t/s (mean ± sd)",
    "repetitions",
    "vs depth 0 (%)",
]
CONFIG_FIELDS = {
    "arm": "",
    "n_threads": "t",
    "n_batch": "b",
    "n_ubatch": "ub",
    "flash_attn": "fa",
    "type_k": "ctk",
    "type_v": "ctv",
    "use_mmap": "mmp",
    "repack": "repack",
}
"""Settings that tell apart rows of one model and engine, with llama-bench's flag names."""


def base_test(name: str) -> str:
    """'tg32 @ d512' → 'tg32' (pure)."""
    return re.sub(r" @ d\d+$", "", str(name))


def config_labels(frame: pd.DataFrame) -> list[str]:
    """Per row, the settings that vary within the frame ('t 2, fa 1'), '' when none do (pure)."""
    varying = [c for c in CONFIG_FIELDS if c in frame and frame[c].astype(str).nunique() > 1]
    return [", ".join(f"{CONFIG_FIELDS[c]} {r[c]}".strip() for c in varying) for r in frame.to_dict("records")]


def samples_long(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per raw repetition: model, engine, config, label, test (without depth), n_depth, ts (t/s)."""
    rows = [
        {
            "model": r["model"],
            "engine": r["engine"],
            "config": config,
            "label": " · ".join(x for x in (r["model"], r["engine"], config) if x),
            "test": base_test(r["test"]),
            "n_depth": int(r["n_depth"]),
            "ts": float(ts),
        }
        for r, config in zip(frame.to_dict("records"), config_labels(frame), strict=True)
        for ts in (r.get("samples_ts") or ())
    ]
    return pd.DataFrame(rows, columns=["model", "engine", "config", "label", "test", "n_depth", "ts"])


def depth_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample stddev of t/s per (model, engine, config, test, depth), from the raw samples, with the
    change against the same test at depth 0 (derived), sorted tg first then by depth."""
    keys = ["model", "engine", "config", "test"]
    long = samples_long(frame)
    out = []
    for key, group in long.groupby([*keys, "n_depth"], sort=False):
        s = summarize(group["ts"].tolist())
        out.append({**dict(zip([*keys, "n_depth"], key, strict=True)), "mean": s.mean, "sd": s.stddev, "n": s.n})
    rows = pd.DataFrame(out, columns=[*keys, "n_depth", "mean", "sd", "n"])
    if rows.empty:
        return rows.assign(vs_d0_pct=pd.Series(dtype=float))
    base = {tuple(r[k] for k in keys): r["mean"] for r in rows.to_dict("records") if r["n_depth"] == 0}
    rows["vs_d0_pct"] = [
        (r["mean"] / base[k] - 1) * 100 if base.get(k) else math.nan
        for r in rows.to_dict("records")
        for k in [tuple(r[c] for c in keys)]
    ]
    rows["tg_first"] = ~rows["test"].str.startswith("tg")
    rows = rows.sort_values(["model", "engine", "config", "tg_first", "test", "n_depth"], kind="stable")
    return rows.drop(columns="tg_first").reset_index(drop=True)


def depth_table(frame: pd.DataFrame) -> pd.DataFrame:
    """depth_rows as the printed table (units in the headers; '—' where a figure is unknown)."""
    rows = depth_rows(frame)
    return pd.DataFrame(
        {
            "model": rows["model"],
            "engine": rows["engine"],
            "config": rows["config"],
            "test": rows["test"],
            "depth (tokens)": rows["n_depth"],
            "t/s (mean ± sd)": mean_pm_column(rows["mean"], rows["sd"], missing="—"),
            "repetitions": rows["n"],
            "vs depth 0 (%)": [f"{v:+.1f}" if v == v else "—" for v in rows["vs_d0_pct"]],
        },
        columns=DEPTH_COLUMNS,
    )


@dataclass(frozen=True)
class PlannedContext:
    """The memory planner's maximum context for a model on this machine."""

    model: str
    max_ctx: int | None
    """Tokens; None when the planner could not say."""
    sentence: str
    """What the figure is (an estimate, against which budget) or why there is none."""


def planned_max_context(model: str, model_path: str = "") -> PlannedContext:
    """planning.estimate.max_context for `model` (its GGUF file when `model_path` is one) against this
    machine's planning budget (planning.report.planning_budget, live available memory)."""
    import psutil

    from core.errors import LocalbenchError
    from machine.detect import detect_hardware
    from planning.estimate import max_context
    from planning.report import planning_budget
    from planning.specs import load_spec

    try:
        spec = load_spec(model_path if model_path and os.path.isfile(model_path) else model)
        profile = detect_hardware(probe_bandwidth=False)
        offload = bool(profile.accelerators)
        budget, label = planning_budget(
            psutil.virtual_memory().available, profile.ram_bytes, profile.accelerator_memory_bytes, offload
        )
        tokens = max_context(spec, None, budget, cpu_only=not offload)
    except (LocalbenchError, OSError, ValueError, KeyError) as err:
        return PlannedContext(model, None, f"— (not estimated: {err})")
    capped = " (the model's own maximum)" if spec.context_length and tokens == spec.context_length else ""
    return PlannedContext(
        model,
        tokens,
        f"{tokens} tokens{capped}: an estimate of the memory planner (weights + KV cache + buffers within "
        f"{label}), not a measurement",
    )


def planned_for(frame: pd.DataFrame) -> list[PlannedContext]:
    """The planner's maximum context for each model of the frame, once each."""
    seen: dict[str, PlannedContext] = {}
    for r in frame.to_dict("records"):
        if r["model"] not in seen:
            seen[r["model"]] = planned_max_context(r["model"], str(r.get("model_filename") or ""))
    return list(seen.values())


def depth_report(frame: pd.DataFrame) -> str:
    """The CLI's depth table (Markdown) and one line per model with the planner's maximum context."""
    lines = ["", "t/s against KV depth (mean ± sample stddev of the repetitions; vs depth 0 derived):", ""]
    lines.append(to_markdown(depth_table(frame)))
    lines.append("")
    lines += [f"planner's maximum context for {p.model} on this machine: {p.sentence}" for p in planned_for(frame)]
    return "\n".join(lines) + "\n"
