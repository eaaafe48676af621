"""`python app.py doctor`: what this machine is, how localbench will run models on it, and which engines
work here (with the reason for each one that does not).

Prints the hardware profile (units labelled: GiB and GB side by side), the optimal runtime config with
one reason per decision, and the engine list; `-o json` prints the same as one JSON object. With
`--model NAME --ctx N` the quantization comes from the same recommender as `plan --model NAME --ctx N`
(planning.report.machine_plan), and both report it as `recommended_quantization`. Exits 1 when
no text-generation engine is usable, so scripts can check a setup. `--save DIR` also writes every
probe's raw output into DIR; `--replay DIR` reports on the machine such a folder came from (its hardware,
runtime config, any recorded macmon/powermetrics samples and the recorded `pmset` thermal state and power
source; the engine list is this machine's, so it is left out). A replayed figure that cannot be real (NaN,
a negative or non-numeric bandwidth, RAM above 64 TiB) is refused with one line naming the file and value, exit 2.
Imports nothing heavy: engine availability is probed by module name.
"""

from __future__ import annotations

import argparse
import json
import sys

NAME = "doctor"
HELP = "Show this machine's hardware, the recommended runtime settings and which engines are usable."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text (= -o json)")
    parser.add_argument("-o", "--output", choices=["json", "text"], default="text")
    parser.add_argument(
        "--model",
        "-m",
        default=None,
        help="plan the quantization for this model (a catalog name, path, planning entry or ollama:NAME), "
        "with the same recommender as `plan`",
    )
    parser.add_argument("--ctx", "-c", type=int, default=4096, help="context length for --model (default 4096)")
    parser.add_argument(
        "--params-b",
        type=float,
        default=None,
        metavar="B",
        help="plan the quantization for a model of B billion parameters (e.g. 8 for Llama 3 8B)",
    )
    record = parser.add_mutually_exclusive_group()
    record.add_argument(
        "--save",
        metavar="DIR",
        default=None,
        help="also write the raw output of every probe into DIR, one file per command (attach it to bug reports)",
    )
    record.add_argument(
        "--replay",
        metavar="DIR",
        default=None,
        help="read the probes' outputs from DIR (written by --save) instead of this machine",
    )
    parser.add_argument(
        "--no-bandwidth-probe",
        action="store_true",
        help="skip the ~0.5 s memory-bandwidth measurement (same as LOCALBENCH_NO_BW_PROBE=1)",
    )


def engine_rows() -> list[dict]:
    """{'name', 'kind', 'usable', 'reason'} for every registered engine and embedder."""
    from engines import registry

    try:
        status = registry.engine_status()
    except ImportError:  # one engine module that fails to import must not hide the others
        status = [(name, *_availability(registry.engine_class, name)) for name in registry.ENGINES]
    rows = [{"name": n, "kind": "text", "usable": ok, "reason": why} for n, ok, why in status]
    for name in registry.EMBEDDERS:
        ok, why = _availability(registry.embedder_class, name)
        rows.append({"name": name, "kind": "embeddings", "usable": ok, "reason": why})
    return rows


def _availability(resolve, name: str) -> tuple[bool, str]:
    try:
        cls = resolve(name)
    except ImportError as err:
        return False, f"its module failed to import ({err})"
    check = getattr(cls, "availability", None)
    return check() if check else (True, "ok")


def _profile(args: argparse.Namespace):
    """The profile to report: replayed from --replay DIR, else live (and written to --save DIR)."""
    probe = False if args.no_bandwidth_probe else None
    if args.replay:
        from machine.replay import replay_profile

        return replay_profile(args.replay)
    if args.save:
        from machine.detect import collect_live
        from machine.replay import save_conditions, save_outputs
        from machine.thermal import pmset_outputs

        live = collect_live(probe)
        files = save_outputs(live, args.save) + save_conditions(args.save, pmset_outputs())
        print(f"Saved {len(files)} probe outputs to {args.save}", file=sys.stderr)
        return live.profile()
    from machine.detect import detect_hardware

    return detect_hardware(probe_bandwidth=probe)


def _power(args: argparse.Namespace) -> str:
    if args.replay:
        from machine.replay import replay_power

        return replay_power(args.replay)
    from machine.power import power_status

    return power_status()


def _conditions(args: argparse.Namespace):
    """Thermal state and power source: from the recorded pmset files with --replay, else this machine's now."""
    if args.replay:
        from machine.replay import replay_conditions

        return replay_conditions(args.replay)
    from machine.thermal import current_conditions

    return current_conditions()


def run(args: argparse.Namespace) -> int:
    from planning.runtime import optimal_config

    profile = _profile(args)
    recommended, recommendation = None, None
    if args.model:
        from planning.report import machine_plan, recommendation_of
        from planning.specs import load_spec

        report = machine_plan(load_spec(args.model), None, args.ctx, profile)
        recommended, recommendation = report["recommended_quantization"], recommendation_of(report)
    config = optimal_config(profile, args.params_b, recommendation)
    engines = [] if args.replay else engine_rows()
    usable = bool(args.replay) or any(row["usable"] for row in engines if row["kind"] == "text")
    if args.json or args.output == "json":
        payload = {"hardware": profile.to_dict(), "config": config.to_dict(), "engines": engines}
        payload["power"] = _power(args)
        payload["thermal"] = _conditions(args).to_dict()
        if not args.replay:
            payload["known_faults"] = known_fault_rows()
        if args.replay:
            payload["replayed_from"] = args.replay
        if args.model:
            payload |= {"model": args.model, "n_ctx": args.ctx, "recommended_quantization": recommended}
        print(json.dumps(payload, indent=2))
        return 0 if usable else 1

    width = max(len(label) for label, _ in profile.summary_rows()) + 2
    print(f"Hardware (replayed from {args.replay})" if args.replay else "Hardware")
    for label, value in profile.summary_rows():
        print(f"  {label:<{width}}{value}")
    print(f"  {'Power':<{width}}{_power(args)}")
    conditions = _conditions(args)
    print(f"  {'Thermal state':<{width}}{conditions.thermal_state}")
    print(f"  {'Power source':<{width}}{conditions.power_source}")
    print()
    print("Recommended runtime")
    settings = [
        ("backend", config.backend),
        ("device", config.device),
        ("quantization", config.quantization + (f" (MLX q_bits={config.mlx_q_bits})" if config.mlx_q_bits else "")),
        ("context", f"{config.num_ctx} tokens"),
        ("threads", str(config.n_threads)),
        ("GPU layers", f"{config.n_gpu_layers} ({'all' if config.n_gpu_layers < 0 else 'none'})"),
        ("memory plan", f"weights × {config.memory_multiplier}"),
    ]
    for label, value in settings:
        print(f"  {label:<{width}}{value}")
    print("  Why:")
    for reason in config.reasons:
        print(f"    - {reason}")
    if args.replay:
        return 0
    print()
    print("Engines")
    name_width = max((len(row["name"]) for row in engines), default=8) + 2
    for row in engines:
        state = "usable" if row["usable"] else f"not usable: {row['reason']}"
        kind = " (embeddings)" if row["kind"] == "embeddings" else ""
        print(f"  {row['name']:<{name_width}}{state}{kind}")
    faults = known_fault_rows()
    if faults:
        print()
        print("Known native faults (canaries run in a child process, verdicts cached per CPU and library)")
        for row in faults:
            print(f"  {row['fault']}: {row['verdict']} — {row['key']} ({row['upstream']})")
    if not usable:
        print("\nNo text-generation engine is usable: install one with `pip install -r requirements.txt`.")
    return 0 if usable else 1


def known_fault_rows() -> list[dict]:
    """Each known fault's verdict on this machine: the bundled GGUF's canary is run (once, cached)."""
    import importlib.util

    from engines.process.faults import FAULTS, cached_verdicts

    if importlib.util.find_spec("llama_cpp") is not None:
        from core.errors import LocalbenchError
        from engines.llamacpp import repack_verdict
        from models.catalog import resolve_model
        from models.gguf import read_gguf

        try:
            ref = resolve_model("smollm2-135m")
            repack_verdict(ref.path, read_gguf(ref.path).file_type)
        except LocalbenchError:
            pass  # no bundled model: only cached verdicts are listed
    rows = []
    for fault in FAULTS.values():
        for verdict in cached_verdicts(fault.name):
            state = (
                f"{fault.setting} off ({verdict.detail})"
                if verdict.crashed
                else f"{fault.setting} on ({verdict.detail})"
            )
            rows.append({"fault": fault.name, "verdict": state, "key": verdict.key, "upstream": fault.upstream})
    return rows
