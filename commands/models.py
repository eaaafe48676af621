"""`python app.py models` — the models on this machine, where they are, and whether they fit; fetch by name.

Examples:
  python app.py models                       every model found (HF cache, LM Studio, Ollama, llama.cpp, folder)
  python app.py models list -o json          the same, every field, JSON (also csv)
  python app.py models show ollama:qwen3:4b  one model's entry and the planner's verdict
  python app.py models fetch hf:ORG/REPO:Q4_K_M   download size and verdict first, then a resumable download
Any command's `--model hf:ORG/REPO[:QUANT]` fetches the same way before it runs (`--yes` skips the question).
"""

from __future__ import annotations

import argparse
import sys

NAME = "models"
HELP = (
    "List the models on this machine (HF cache, LM Studio, Ollama, llama.cpp cache, LOCALBENCH_MODELS), or fetch one."
)
FETCHES_MODELS = False
"""`models fetch` fetches itself; listing and show never download."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="list", choices=["list", "show", "fetch"])
    parser.add_argument("name", nargs="?", default=None, help="show: a model name; fetch: hf:ORG/REPO[:QUANT]")
    parser.add_argument("-o", "--output", choices=["table", "csv", "json"], default="table")
    parser.add_argument("--out", default=None, help="write the list to this file instead of stdout")


def run(args: argparse.Namespace) -> int:
    from core.errors import BadParameter

    if args.action == "fetch":
        if not args.name:
            raise BadParameter("models fetch needs a name: hf:ORG/REPO or hf:ORG/REPO:QUANT")
        entry = ensure_fetched(args.name, yes=getattr(args, "yes", False), force=True)
        print(f"{entry.name}: {entry.path}", file=sys.stderr)
        return 0
    rows = listing(args.name if args.action == "show" else None)
    emit_rows(rows, args.output, args.out)
    return 0


def listing(name: str | None = None):
    """planning.inventory rows for every entry, runnable or not (or the one called `name`), with verdicts."""
    from core.errors import ModelNotFound
    from machine.detect import detect_hardware
    from models.catalog import all_entries
    from planning.inventory import inventory

    entries = all_entries()
    if name is not None:
        entries = [e for e in entries if e.name == name]
        if not entries:
            raise ModelNotFound(f"no model called {name!r} on this machine — `python app.py models` lists them")
    return inventory(detect_hardware(probe_bandwidth=False), entries=entries)


def emit_rows(rows, fmt: str, out: str | None) -> None:
    """The rows as the short table (terminal), or csv/json with every field."""
    import pandas as pd

    from bench.results.export import render
    from commands.output import write_output
    from planning.inventory import display_row

    if fmt == "table":
        text = render(pd.DataFrame([display_row(r) for r in rows]), "table") if rows else "no models found"
    else:
        text = render(pd.DataFrame([r.to_row() for r in rows]), fmt)
    write_output(text, out, f"{len(rows)} models")


# Fetching by name: `models fetch` and every command's --model hf:…


def ensure_fetched(name: str, *, yes: bool = False, force: bool = False, ask=None):
    """The local entry for `hf:ORG/REPO[:QUANT]`, downloading it first when the HF cache lacks it (or always
    with `force`, which resumes or re-checks). Before the weights: the download size and the planner's verdict
    on stderr; a model that does not fit asks first (`ask(question) -> bool`, default: the terminal; no
    terminal and no --yes refuses)."""
    from core.errors import BadParameter, Cancelled
    from machine.detect import detect_hardware
    from models import hub
    from planning.inventory import plan_summary, remote_verdict

    spec = hub.parse_spec(name)
    if not force:
        found = hub.cached_entry(spec)
        if found is not None and found.runnable:
            return found
    plan = hub.remote_plan(spec)
    verdict = remote_verdict(plan, detect_hardware(probe_bandwidth=False))
    print(f"{plan.name}: {plan_summary(plan)} — {verdict.verdict}: {verdict.why}", file=sys.stderr)
    if verdict.verdict == "does not fit" and not yes:
        question = f"{spec.name} does not fit this machine ({verdict.why}). Download anyway? [y/N] "
        if ask is None:
            if not sys.stdin.isatty():
                raise BadParameter(
                    f"{spec.name} does not fit this machine ({verdict.why}) — pass --yes to download anyway"
                )
            ask = lambda q: input(q).strip().lower() in ("y", "yes")  # noqa: E731
        if not ask(question):
            raise Cancelled(f"{spec.name} not downloaded")
    from commands.output import cli_progress

    bar, progress = cli_progress(f"fetch {spec.name}")
    try:
        return hub.fetch(spec, progress=progress)
    finally:
        bar.close()


def fetch_models_of(args: argparse.Namespace) -> None:
    """Before a command runs: fetch every `hf:` model its --model names (comma lists too) that is not local."""
    value = getattr(args, "model", None)
    names = value if isinstance(value, list) else str(value or "").split(",")
    for name in (n.strip() for n in names):
        if name.startswith("hf:"):  # a queue entry's '@ENGINE' is not part of the name (repo ids hold no '@')
            ensure_fetched(name.split("@")[0], yes=getattr(args, "yes", False))
