"""The model pickers the tabs share: the model choices of an engine, the LoadConfig a tab's settings make
(the machine's threads and GPU layers, the tab's context, the engine's server options), a tab's speed run
on the picked models, and the engine · model · temperature · seed entry picker of the Arena pool and the
Queue entries, with the check that adds a picked entry. Tabs import these from here, never from each other.
"""

from __future__ import annotations

import gradio as gr

from bench.answers.entry import Entry
from core.errors import BadParameter, LocalbenchError
from dashboard.context import AppContext
from dashboard.ui import as_int, conversion_progress, warn
from engines.base import LoadConfig
from engines.registry import ENGINES, create_engine


def model_choices(ctx: AppContext, engine_name: str) -> list[tuple[str, str]]:
    """(label, name) of the models `engine_name` offers (its catalog, or what its server lists); [] with a
    warning when it cannot say (a server that is not reachable). The user's own models (models.stores) follow
    the bundled and derived ones, grouped by family, each label saying family · source · quant."""
    try:
        options = ctx.server_options.get(engine_name, ())
        names = create_engine(engine_name).list_models(ctx.config.load_config(options=options))
    except LocalbenchError as err:
        warn(err)
        return []
    return labelled(names)


def labelled(names: list[str]) -> list[tuple[str, str]]:
    """(label, name) pairs: names the stores do not know as they are, then the stores' models by family."""
    from models.stores import discover

    found = {e.name: e for e in discover() if e.runnable and e.name in names}
    plain = [(n, n) for n in names if n not in found]
    ordered = sorted(found.values(), key=lambda e: ((e.family or e.name).lower(), e.name))
    return plain + [(entry_label(e), e.name) for e in ordered]


def entry_label(entry) -> str:
    """'smollm2-135m-instruct ▸ ollama:smollm2:135m (Ollama, Q4_1)': family first, so a family sorts together."""
    detail = ", ".join(x for x in (SOURCE_WORDS.get(entry.source, entry.source), entry.quant) if x)
    return f"{entry.family or '?'} ▸ {entry.name} ({detail})"


SOURCE_WORDS = {
    "hf-cache": "HF cache",
    "lmstudio": "LM Studio",
    "ollama": "Ollama",
    "llama.cpp-cache": "llama.cpp cache",
    "LOCALBENCH_MODELS": "LOCALBENCH_MODELS",
}


def family_slots(ctx: AppContext, model_name: str, n_slots: int) -> tuple[int, list]:
    """("this model on every engine") (number of files, [engine, model update] × n_slots): `model_name` and
    the other files of its family (planning.inventory.family_runs) in the slots, the rest left as they are.
    Fewer than two files: a warning, and every slot unchanged."""
    from planning.inventory import family_runs

    runs = family_runs((model_name or "").strip())[:n_slots]
    if len(runs) < 2:
        gr.Warning(f"no other file of {model_name or 'this model'}'s family here — the Models tab lists them")
        return 0, [gr.update()] * (2 * n_slots)
    out = []
    for i in range(n_slots):
        if i < len(runs):
            engine_name, name = runs[i]
            out += [engine_name, gr.update(choices=model_choices(ctx, engine_name), value=name)]
        else:
            out += [gr.update(), gr.update()]
    return len(runs), out


def load_config(ctx: AppContext, engine: str, n_ctx) -> LoadConfig:
    """The LoadConfig for `engine` with the tab's context window `n_ctx` (tokens, at least 16), this
    machine's threads and GPU layers, and the engine's server options set in the UI."""
    return ctx.config.load_config(
        n_ctx=as_int(n_ctx, "context (tokens)", 16), device=None, options=ctx.server_options.get(engine, ())
    )


def tab_speed_run(ctx: AppContext, settings, progress, cancel):
    """A tab's speed run through bench.speed.orchestrate.run_and_store: models from the app's pool (an
    on-demand conversion reports to the tab's gr.Progress and stops on its cancel flag), stored with this
    machine's receipt, every resident model counted."""
    from bench.speed.orchestrate import run_and_store

    def get_engine(engine: str, model: str, config: LoadConfig):
        with conversion_progress(progress, cancel):
            return ctx.pool.get(engine, model, config)

    return run_and_store(
        ctx.store,
        settings,
        hardware=ctx.profile,
        get_engine=get_engine,
        progress=lambda fraction, message: progress(fraction, desc=message),
        cancel=cancel,
        loaded=lambda: len(ctx.pool.loaded()),
    )


def entry_picker(ctx: AppContext, prefix: str, add_label: str, clear_label: str):
    """The engine · model · temperature · seed row and its Add / Clear buttons (Arena pool, Queue entries);
    the model list follows the engine. Returns (engine, model, temperature, seed, add, clear)."""
    engines = list(ENGINES)
    with gr.Row():
        engine = gr.Dropdown(engines, value=engines[0], label="Engine", elem_id=f"{prefix}-engine")
        model = gr.Dropdown(
            choices=model_choices(ctx, engines[0]),
            value="smollm2-135m",
            label="Model",
            allow_custom_value=True,
            elem_id=f"{prefix}-model",
        )
        temperature = gr.Number(value=0.0, label="Temperature (0 = greedy)", elem_id=f"{prefix}-temp")
        seed = gr.Number(value=0, precision=0, label="Seed", elem_id=f"{prefix}-seed")
    with gr.Row():
        add = gr.Button(add_label, elem_id=f"{prefix}-add")
        clear = gr.Button(clear_label, elem_id=f"{prefix}-clear")
    engine.change(lambda e: gr.update(choices=model_choices(ctx, e)), engine, model)
    return engine, model, temperature, seed, add, clear


def with_entry(entries: list[Entry], engine_name, model_name, temp, seed_value, limit: int | None = None):
    """`entries` plus the picked one; on bad input a one-line warning and `entries` unchanged."""
    try:
        name = (model_name or "").strip()
        if not name:
            raise BadParameter("pick a model to add")
        if limit is not None and len(entries) >= limit:
            raise BadParameter(f"the queue takes at most {limit} entries — clear and start again")
        t = float(temp or 0.0)
        if not 0.0 <= t <= 2.0:
            raise BadParameter(f"temperature must be between 0 and 2, got {t}")
        return [*entries, Entry(engine_name, name, t, as_int(seed_value, "seed", 0))]
    except (LocalbenchError, ValueError) as err:
        warn(err if isinstance(err, LocalbenchError) else BadParameter(f"temperature: {err}"))
        return entries
