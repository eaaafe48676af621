"""`python app.py queue ...` — the unattended compare queue: every prompt on every model, one after another.

  queue run --prompts FILE|builtin --model MODEL@ENGINE --model ... [--max-tokens N] [-o csv|jsonl] [--out F]
  queue resume QUEUE_ID          run what is missing (after Ctrl-C, a crash or a failed engine)
  queue export QUEUE_ID -o csv|jsonl [--out F]
  queue list                     every stored queue with its answers done / total

An entry is MODEL@ENGINE with optional sampling settings, e.g. smollm2-135m@llamacpp,temperature=0.8,seed=1;
the same entry twice is allowed and labelled " #2". Each answer is stored as soon as it is finished
(LOCALBENCH_HOME/results.db), so Ctrl-C loses at most the answer in flight and `queue resume` runs only the
missing cells. Bad input is one line and exit 2; a run in which some answers failed exits 1.
"""

from __future__ import annotations

import argparse
import sys

NAME = "queue"
HELP = "Unattended compare queue: a prompt set on several models, stored as it goes, resumable, CSV/JSONL."
SETTINGS = {"temperature": float, "t": float, "seed": int}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run_p = sub.add_parser("run", help="start a new queue")
    run_p.add_argument(
        "--prompts",
        required=True,
        help="a .txt file (one prompt per line), a .jsonl file "
        "(objects with a 'prompt' field) or 'builtin' (a short built-in set of 3)",
    )
    run_p.add_argument(
        "--model",
        "-m",
        action="append",
        required=True,
        metavar="MODEL@ENGINE[,temperature=T,seed=S]",
        help="an entry to run every prompt on (repeat for each, at least one)",
    )
    run_p.add_argument("--max-tokens", "-n", type=int, default=128, help="tokens per answer at most (default 128)")
    run_p.add_argument("--ctx", "-c", type=int, default=2048, help="context window in tokens (default 2048)")
    resume = sub.add_parser("resume", help="run the missing answers of a stored queue")
    resume.add_argument("queue_id")
    for p in (run_p, resume):
        p.add_argument("--threads", "-t", type=_threads, default=None, help="CPU threads (default: cores)")
        p.add_argument("-o", "--output", choices=["csv", "jsonl"], default="csv")
        p.add_argument("--out", default=None, help="write the answers to this file instead of stdout")
    export = sub.add_parser("export", help="the stored answers and statistics of a queue")
    export.add_argument("queue_id")
    export.add_argument("-o", "--output", choices=["csv", "jsonl"], default="csv")
    export.add_argument("--out", default=None, help="write to this file instead of stdout")
    sub.add_parser("list", help="every stored queue, newest first")


def _threads(text: str) -> int:
    from commands.output import positive_threads

    return positive_threads(text)


def parse_entry(text: str):
    """'MODEL@ENGINE[,temperature=T][,seed=S]' as an Entry; BadParameter (one line) otherwise."""
    from bench.answers.entry import Entry
    from core.errors import BadParameter
    from engines.registry import ENGINES

    head, *opts = [part.strip() for part in text.split(",")]
    model, at, engine = head.rpartition("@")
    if not at or not model or not engine:
        raise BadParameter(f"--model {text!r}: expected MODEL@ENGINE such as smollm2-135m@llamacpp")
    if engine not in ENGINES:
        raise BadParameter(f"--model {text!r}: no engine {engine!r} — engines: {', '.join(ENGINES)}")
    values = {"temperature": 0.0, "seed": 0}
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq or key not in SETTINGS:
            raise BadParameter(f"--model {text!r}: unknown setting {opt!r} — use temperature=T or seed=S")
        try:
            values["temperature" if key == "t" else key] = SETTINGS[key](value)
        except ValueError:
            raise BadParameter(f"--model {text!r}: {key} must be a number, got {value!r}") from None
    if not 0.0 <= values["temperature"] <= 2.0:
        raise BadParameter(f"--model {text!r}: temperature must be between 0 and 2")
    return Entry(engine, model, values["temperature"], values["seed"])


def run(args: argparse.Namespace) -> int:
    from bench.answers.queue import cells_frame, export_cells, list_plans, load_plan
    from bench.results.store import ResultStore

    store = ResultStore()
    if args.action == "list":
        from bench.results.export import render, to_frame

        plans = list_plans(store)
        print(render(to_frame(plans), "table") if plans else f"no queues in {store.path} yet — `queue run` starts one")
        return 0
    if args.action == "export":
        from commands.output import write_output

        plan = load_plan(store, args.queue_id)
        frame = cells_frame(store, plan)
        write_output(export_cells(frame, args.output), args.out, f"{len(frame)} answers")
        return 0
    plan = _new_plan(store, args) if args.action == "run" else load_plan(store, args.queue_id)
    return _run_plan(store, plan, args)


def _new_plan(store, args: argparse.Namespace):
    import dataclasses

    from bench.answers.queue import BUILT_IN_PROMPTS, read_prompts, save_plan
    from core.errors import BadParameter
    from machine.detect import detect_hardware

    entries = [parse_entry(text) for text in args.model]
    if not 1 <= args.max_tokens <= 32_768:
        raise BadParameter(f"--max-tokens must be between 1 and 32768, got {args.max_tokens}")
    if not 16 <= args.ctx <= 1 << 20:
        raise BadParameter(f"--ctx must be between 16 and 1048576 tokens, got {args.ctx}")
    prompts = list(BUILT_IN_PROMPTS) if args.prompts == "builtin" else read_prompts(args.prompts)
    hardware = dataclasses.asdict(detect_hardware())
    return save_plan(store, prompts, entries, args.max_tokens, args.ctx, hardware=hardware)


def _run_plan(store, plan, args: argparse.Namespace) -> int:
    import dataclasses

    from bench.answers.entry import engine_answer
    from bench.answers.queue import cells_frame, done_items, export_cells, run_queue
    from commands.output import cli_progress, write_output
    from core.errors import Cancelled
    from machine.detect import detect_hardware
    from planning.guard import guarded_pool
    from planning.runtime import optimal_config

    profile = detect_hardware()
    cfg = optimal_config(profile)
    config = cfg.load_config(n_ctx=plan.n_ctx, n_threads=args.threads, device=None)
    total = len(plan.prompts) * len(plan.entries)
    left = total - len(done_items(store, plan.queue_id))
    print(
        f"queue {plan.queue_id}: {len(plan.prompts)} prompts × {len(plan.entries)} entries = {total} answers, "
        f"{left} to run (Ctrl-C stops; `python app.py queue resume {plan.queue_id}` goes on)",
        file=sys.stderr,
        flush=True,
    )
    distinct = len({(e.engine, e.model) for e in plan.entries})
    pool = guarded_pool(max_loaded=min(distinct, 4))
    bar, progress = cli_progress(f"queue {plan.queue_id}")

    def answer(prompt, entry):
        return engine_answer(pool.get(entry.engine, entry.model, config), prompt, entry, plan.max_tokens)

    try:
        counts = run_queue(
            store,
            plan.queue_id,
            plan.prompts,
            plan.entries,
            answer,
            lambda done, n, message: progress(done / n, message),
            hardware=dataclasses.asdict(profile),
        )
    except (KeyboardInterrupt, Cancelled):
        bar.close()
        stored = len(done_items(store, plan.queue_id))
        print(
            f"stopped: {stored} of {total} answers stored — `python app.py queue resume {plan.queue_id}` runs the rest",
            file=sys.stderr,
        )
        return 130
    finally:
        bar.close()
        pool.unload_all()
    frame = cells_frame(store, plan)
    print(
        f"queue {plan.queue_id}: {counts['done']} answered, {counts['skipped']} already stored, "
        f"{counts['failed']} failed",
        file=sys.stderr,
    )
    for line in frame[frame["status"] != "ok"].itertuples():
        print(f"failed: prompt {line.prompt_index + 1} on {line.entry}: {line.error}", file=sys.stderr)
    write_output(export_cells(frame, args.output), args.out, f"{len(frame)} answers")
    return 1 if counts["failed"] else 0
