"""Argument types shared by several commands (not a command itself)."""

from __future__ import annotations

import argparse


def positive_threads(text: str) -> int:
    """`-t N`: a whole number of CPU threads, 1 or more (`-t 0` used to mean the default silently)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of threads, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value} — leave -t out for the default")
    return value


LLAMA_BENCH_N_BATCH = 2048
"""llama-bench's default -b: `bench` on llama.cpp uses it when -b is not given, as llama-bench does."""


def str_list(text: str) -> list[str]:
    """'f16, q8_0' → ['f16', 'q8_0'] (llama-bench's comma lists of words)."""
    return [x.strip() for x in str(text).split(",") if x.strip()]
