"""Byte units: GiB (2**30) and GB (1e9) side by side, always labelled (GB vs GiB is a top user complaint)."""

from __future__ import annotations

GiB, MiB, GB, MB = 2**30, 2**20, 10**9, 10**6


def fmt_bytes(n: float | None) -> str:
    """'1.00 GiB (1.07 GB)' or '92.1 MiB (96.6 MB)': binary and decimal, both labelled."""
    if n is None:
        return "n/a"
    if abs(n) >= GiB:
        return f"{n / GiB:.2f} GiB ({n / GB:.2f} GB)"
    return f"{n / MiB:.1f} MiB ({n / MB:.1f} MB)"


def fmt_params(n: float | None) -> str | None:
    """'135M' or '4.0B' (decimal, as model cards count parameters); None when unknown (never '0')."""
    if not n:
        return None
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"
