"""`python app.py scorecard` — the design record's six success criteria with verdicts from stored runs.

Example: python app.py scorecard -o csv. How each criterion is measured: docs/scorecard.md.
"""

from __future__ import annotations

import argparse

NAME = "scorecard"
HELP = "The six success criteria (speed-up, TTFT, 8B speed, Q4_K_M quality, memory, power): verdicts from stored runs."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=["csv", "json", "md", "table"], default="md")
    parser.add_argument("--out", default=None, help="write to this file instead of stdout")


def run(args: argparse.Namespace) -> int:
    from bench.results.export import render, to_frame
    from bench.results.store import ResultStore
    from bench.scorecard import load_evidence, scorecard
    from commands.output import write_output

    rows = scorecard(*load_evidence(ResultStore()))
    write_output(render(to_frame(rows), args.output), args.out, "the scorecard")
    return 0
