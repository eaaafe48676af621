"""The quantization lab's summary: its rows as one frame (the CSV), the one short table that both
`python app.py quant` and the Quantization tab show, the design target's verdict (ADR 006:
Q4_K_M loses < 5 % quality), and the Pareto front of quality against speed."""

from __future__ import annotations

import math
from collections.abc import Sequence

TARGET_TYPE = "Q4_K_M"
TARGET_LIMIT_PCT = 5.0
TARGET_DOC = "docs/scorecard.md"
"""Where the design target (ADR 006) and its criteria are written down for users."""
TARGET_DEFINITION = (
    f'The design target (ADR 006, {TARGET_DOC}) "{TARGET_TYPE} loses < 5 % quality" — defined here as ΔPPL % = '
    f"(PPL({TARGET_TYPE}) / PPL(reference) − 1) × 100 < {TARGET_LIMIT_PCT:g} on the evaluation text."
)
TARGET_COLUMN = "adr006_target"
"""The CSV column: 'pass' / 'fail' on the Q4_K_M row, '' elsewhere."""
OLD_COLUMNS = {"seed_criterion": TARGET_COLUMN}
"""Column names of runs stored before the rename, read as their new names."""


def to_frame(rows: Sequence):
    """The rows as a pandas frame (bench.results.export.to_frame), one row per variant; stored rows with the old
    column names come back under the new ones."""
    from bench.results.export import to_frame as frame_of

    return upgrade_columns(frame_of(rows))


def upgrade_columns(frame):
    """`frame` with columns of older stored runs renamed to today's names (a new name already there wins)."""
    old = {k: v for k, v in OLD_COLUMNS.items() if k in frame.columns and v not in frame.columns}
    return frame.rename(columns=old) if old else frame


def _fixed(values, digits: int) -> list[str]:
    """Numbers as text with `digits` decimals; '—' where unknown (NaN or missing), never 0."""
    out = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = math.nan
        out.append("—" if math.isnan(x) else f"{x:.{digits}f}")
    return out


def _pm(avg, sd) -> list[str]:
    from bench.results.export import mean_pm_column

    return mean_pm_column(avg, sd, digits=1, missing="—")


def summary_frame(frame):
    """The short table (CLI md/table output and the tab): the columns read first, units in the names.

    Every other field stays in `frame` and so in the CSV and JSON.
    """
    import pandas as pd

    frame = upgrade_columns(frame)
    if frame.empty:
        return frame
    reference = frame["is_reference"] if "is_reference" in frame else pd.Series(False, index=frame.index)
    fallback = frame["k_fallback"] if "k_fallback" in frame else pd.Series(False, index=frame.index)
    origin = frame["reference_origin"].fillna("") if "reference_origin" in frame else pd.Series("", index=frame.index)
    return pd.DataFrame(
        {
            "variant": [reference_label(v, r, o) for v, r, o in zip(frame["variant"], reference, origin, strict=True)],
            "type": [f"{t} (K fallback)" if k else t for t, k in zip(frame["main_type"], fallback, strict=True)],
            "size MiB": _fixed(frame["model_size"] / 2**20, 1),
            "bpw": _fixed(frame["bpw"], 2),
            "ΔPPL %": _fixed(frame["delta_ppl_pct"], 2),
            "KLD mean": _fixed(frame["kld_mean"], 4),
            "pp t/s": _pm(frame["pp_avg_ts"], frame["pp_stddev_ts"]),
            "tg t/s": _pm(frame["tg_avg_ts"], frame["tg_stddev_ts"]),
            "TTFT ms": _fixed(frame["ttft_ms"], 1),
            "peak RSS MiB": _fixed(frame["peak_rss_bytes"] / 2**20, 0),
            "design target (ADR 006)": frame[TARGET_COLUMN].fillna("") if TARGET_COLUMN in frame else "",
        }
    )


def reference_label(variant: str, is_reference: bool, origin: str) -> str:
    """The variant column: 'F16 (reference)', or 'F16 (reference: original)' when it was made from the original."""
    if not is_reference:
        return variant
    return f"{variant} (reference: original)" if str(origin).startswith("original:") else f"{variant} (reference)"


def target_verdict(rows: Sequence) -> str:
    """The design target (ADR 006) in words: pass/fail with the figure, or why it was not evaluated."""
    from bench.quant.ladder import SAME_AS_SOURCE

    row = next((r for r in rows if r.variant == TARGET_TYPE), None)
    if row is None:
        return f"{TARGET_DEFINITION} Not evaluated: tick {TARGET_TYPE}."
    if math.isnan(row.delta_ppl_pct):
        return f"{TARGET_DEFINITION} Not evaluated: quality was not measured."
    verdict = "PASS" if row.adr006_target == "pass" else "FAIL"
    text = f"{TARGET_DEFINITION} {verdict}: ΔPPL {row.delta_ppl_pct:+.2f} % (mean KLD {row.kld_mean:.4f})."
    origin = getattr(row, "reference_origin", "")
    if origin.startswith("original:"):
        text += f" Measured against the original ({origin.removeprefix('original: ')})."
    elif origin.startswith("dequantized:"):
        text += f" Measured against the {origin.removeprefix('dequantized: ')} (dequantized), not the original model."
    elif origin:
        text += f" Measured against {origin.split(': ', 1)[-1]}."
    if SAME_AS_SOURCE in row.note:
        text += f" Caveat: the source itself is {TARGET_TYPE}, so this compares the file with itself — "
        text += f"{TARGET_TYPE}'s loss against full precision cannot be measured from this source."
    return text


def pareto_front(kld: Sequence[float], speed: Sequence[float]) -> list[bool]:
    """True for each point no other point beats on both axes (lower KLD and higher speed); NaNs are never on it."""
    points = list(zip(kld, speed, strict=True))
    out = []
    for i, (k, s) in enumerate(points):
        if math.isnan(k) or math.isnan(s):
            out.append(False)
            continue
        dominated = any(
            j != i and not (math.isnan(k2) or math.isnan(s2)) and k2 <= k and s2 >= s and (k2 < k or s2 > s)
            for j, (k2, s2) in enumerate(points)
        )
        out.append(not dominated)
    return out
