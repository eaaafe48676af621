"""`python app.py results export|import|list|delete` — the results history, to share between machines.

Example: python app.py results export -o json --out mac.json, then on another machine
python app.py results import mac.json (twice is harmless: run ids already stored are skipped). A file
with one bad run (an impossible figure, a broken line) is refused whole: one line, exit 2, store unchanged.
"""

from __future__ import annotations

import argparse

NAME = "results"
HELP = "List, export (csv/json/md), import (csv/json) or delete stored runs."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = sub.add_parser("export", help="every stored run with its rows, settings and machine")
    export.add_argument("-o", "--output", choices=["csv", "json", "md"], default="json")
    export.add_argument("--out", default=None, help="write to this file instead of stdout")
    imp = sub.add_parser("import", help="add the runs of an exported CSV or JSON file (ids kept, duplicates skipped)")
    imp.add_argument("file")
    listing = sub.add_parser("list", help="the history: one line per run, newest first")
    listing.add_argument("-o", "--output", choices=["csv", "json", "md", "table"], default="table")
    delete = sub.add_parser("delete", help="delete runs by id")
    delete.add_argument("run_ids", nargs="+")


def run(args: argparse.Namespace) -> int:
    from bench.results.export import render
    from bench.results.store import ResultStore
    from bench.results.transfer import export_text, history_frame, import_file
    from commands.output import write_output
    from core.errors import BadParameter

    store = ResultStore()
    if args.action == "export":
        runs = store.export_runs()
        write_output(export_text(runs, args.output), args.out, f"{len(runs)} runs")
        return 0
    if args.action == "list":
        print(render(history_frame(store.export_runs()), args.output))
        return 0
    if args.action == "delete":
        known = {r["run_id"] for r in store.runs()}
        unknown = [r for r in args.run_ids if r not in known]
        if unknown:
            raise BadParameter(f"no stored run with id {', '.join(unknown)} — see `results list`")
        for run_id in args.run_ids:
            store.delete_run(run_id)
        print(f"deleted {len(args.run_ids)} run(s)")
        return 0
    result = import_file(store, args.file)
    if result.rejected:  # nothing was written: one line naming the first bad run, row and field, exit 2
        raise BadParameter(result.reasons())
    print(f"imported {len(result.added)} run(s), skipped {len(result.skipped)} already stored, rejected 0")
    return 0
