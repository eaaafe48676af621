"""`python app.py arena ...` — the blind arena's votes and leaderboard without the browser.

  arena leaderboard [-o md|csv|json] [--ci sandwich|bootstrap]   the Bradley–Terry board
  arena import votes.csv        columns vote_id, model_a, model_b, winner (a|b|tie|both_bad); idempotent;
                                `arena export -o csv` re-imports as it is; at most 50 MiB
  arena export [-o csv|json]    every stored vote with prompt, answers and stats

Votes live in LOCALBENCH_HOME/arena.db (`--db` for another file). Bad input is one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys

NAME = "arena"
HELP = "Blind-arena votes: Bradley–Terry leaderboard with 95 %% intervals, vote import and export."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, help="votes database (default LOCALBENCH_HOME/arena.db)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    board = sub.add_parser("leaderboard", help="ratings, 95 %% intervals, ranks, separation and position bias")
    board.add_argument("-o", "--output", choices=["md", "csv", "json"], default="md")
    board.add_argument("--ci", choices=["sandwich", "bootstrap"], default="sandwich", help="interval method")
    board.add_argument("--bootstrap-rounds", type=int, default=1000, help="resamples for --ci bootstrap")
    board.add_argument("--seed", type=int, default=0, help="bootstrap seed (fixed, so boards are reproducible)")
    imp = sub.add_parser("import", help="add votes from a CSV file (a vote_id already stored is skipped)")
    imp.add_argument("path", help="CSV with columns vote_id, model_a, model_b, winner")
    exp = sub.add_parser("export", help="print every stored vote")
    exp.add_argument("-o", "--output", choices=["csv", "json"], default="csv")


def run(args: argparse.Namespace) -> int:
    from bench.answers.votes import VoteStore

    store = VoteStore(args.db)
    return {"leaderboard": _leaderboard, "import": _import, "export": _export}[args.action](store, args)


def _leaderboard(store, args: argparse.Namespace) -> int:
    from bench.answers.ratings import board_report, leaderboard_frame
    from bench.results.export import to_csv, to_json, to_markdown
    from core.errors import BadParameter

    votes = store.triples()
    if not votes:
        raise BadParameter(f"no votes in {store.path} yet — vote in the Arena tab or `arena import votes.csv`")
    if not 10 <= args.bootstrap_rounds <= 100_000:
        raise BadParameter(f"--bootstrap-rounds must be between 10 and 100000, got {args.bootstrap_rounds}")
    report = board_report(votes, method=args.ci, n_bootstrap=args.bootstrap_rounds, seed=args.seed)
    frame = leaderboard_frame(report.rows)
    if report.groups_note and args.output != "md":  # csv/json stay machine-readable; the warning goes to stderr
        print(f"note: {report.groups_note}", file=sys.stderr)
    if args.output == "csv":
        sys.stdout.write(to_csv(frame))
    elif args.output == "json":
        sys.stdout.write(to_json(frame) + "\n")
    else:
        lines = [to_markdown(frame, floatfmt="{:.1f}"), "", *[f"- {note}" for note in report.notes]]
        if not report.separations.empty:
            shown = report.separations.drop(columns="comparable")
            lines += ["", "Votes needed to separate each pair (derived):", "", to_markdown(shown, floatfmt="{:.1f}")]
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _import(store, args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.answers.votes import read_votes_file
    from core.errors import BadParameter

    path = Path(args.path)
    if not path.exists():
        raise BadParameter(f"no votes file at {path}")
    votes, rejected = read_votes_file(path)
    for reason in rejected:
        print(f"rejected: {reason}", file=sys.stderr)
    if not votes:
        raise BadParameter(f"no usable votes in {path} ({len(rejected)} rejected, reasons above)")
    added = store.add(votes)
    print(f"imported {added} new vote(s), {len(votes) - added} already stored, {len(rejected)} rejected → {store.path}")
    return 0


def _export(store, args: argparse.Namespace) -> int:
    from bench.answers.votes import votes_frame
    from bench.results.export import to_csv, to_json

    frame = votes_frame(store.votes())
    sys.stdout.write(to_csv(frame) if args.output == "csv" else to_json(frame) + "\n")
    return 0
