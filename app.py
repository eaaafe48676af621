"""localbench entry point.

`python app.py` serves the dashboard at http://127.0.0.1:7860; `python app.py <command> ...` runs the
same work headless (bench, doctor, ...). Each command is one module in commands/ exposing NAME, HELP,
add_arguments(parser) and run(args) -> exit status; adding a command is one file and one line below.
Nothing heavy is imported until a command runs, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = [
    "commands.serve",
    "commands.bench",
    "commands.doctor",
    "commands.embed_bench",
    "commands.quant",
    "commands.plan",
    "commands.convert",
    "commands.arena",
    "commands.scorecard",
    "commands.suite",
    "commands.results",
    "commands.queue",
    "commands.models",
]

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if "HF_HUB_OFFLINE" not in os.environ:
    # Loading a model never asks the Hub; fetching one (models.hub) is the user's explicit request and
    # lifts this default, never a HF_HUB_OFFLINE the user set.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["LOCALBENCH_HF_OFFLINE_DEFAULT"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="localbench — compare local AI models on your own machine. "
        "Without a command it serves the dashboard (same as `serve`).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for dotted in COMMANDS:
        module = importlib.import_module(dotted)
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        fetches = getattr(module, "FETCHES_MODELS", True) and any(a.dest == "model" for a in p._actions)
        if fetches or module.NAME == "models":
            p.add_argument(
                "--yes", "-y", action="store_true", help="fetch an hf: model without asking, even one that does not fit"
            )
        p.set_defaults(_run=module.run, _fetch=getattr(module, "FETCHES_MODELS", True))
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.errors import Cancelled, LocalbenchError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    args = build_parser().parse_args(argv)
    try:
        if args._fetch:
            from commands.models import fetch_models_of

            fetch_models_of(args)  # --model hf:ORG/REPO[:QUANT] not downloaded yet: size, verdict, then fetch
        return int(args._run(args) or 0)
    except Cancelled as err:  # a cancelled run is not a failed one: stored as cancelled, exit as Ctrl-C does
        print(f"cancelled: {err}", file=sys.stderr)
        return 130
    except LocalbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
