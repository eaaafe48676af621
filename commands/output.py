"""What several commands share (not a command itself): the argument types their parsers use (`-t`,
llama-bench's default `-b`, comma lists), the progress bar a run draws on stderr, and printing or
writing a command's output (a table to stdout, or a file with a line on stderr saying so).
"""

from __future__ import annotations

import argparse
import sys

# Argument types


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


# Progress


def cli_progress(total_label: str):
    """A tqdm bar on stderr driven by runner progress(fraction, message) callbacks."""
    from tqdm import tqdm

    bar = tqdm(
        total=1000,
        desc=total_label,
        file=sys.stderr,
        leave=False,
        bar_format="{desc} {bar} {percentage:3.0f}% {postfix}",
    )

    def progress(fraction: float, message: str) -> None:
        bar.n = int(fraction * 1000)
        bar.set_postfix_str(message)
        bar.refresh()

    return bar, progress


# Printing and writing output


def emit(frame, fmt: str, out: str | None, display=None) -> None:
    """Print the frame as csv/json/jsonl/sql/md/table to stdout, or write it to `out` and say so on stderr.

    `display` (speed rows: display_frame) gives md and table their short columns; the other formats of
    speed rows carry llama-bench's fields first (bench.speed.llama_format). Several depths add a depth table."""
    from bench.results.export import render
    from bench.speed.llama_format import render_speed

    if display is None:
        text = render(frame, fmt)
    elif fmt in ("md", "table"):
        text = render(display(frame), fmt)
    else:
        text = render_speed(frame, fmt)
    write_output(text, out, f"{len(frame)} rows")
    if display is not None and "n_depth" in frame and frame["n_depth"].nunique() > 1:
        from bench.speed.depth import depth_report

        # beside a table on the terminal; on stderr when stdout carries a machine format or a file was written
        inline = fmt in ("md", "table") and not out
        print(depth_report(frame), end="", file=sys.stdout if inline else sys.stderr)


def write_output(text: str, out: str | None, what: str) -> None:
    """`text` to stdout, or to the file `out` with a line on stderr saying what was written."""
    if out:
        with open(out, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        print(f"wrote {what} to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
