"""The models on this machine with the planner's verdict for each: will it fit, here, now?

`inventory()` turns every store entry (models.stores.discover) into an InventoryRow: the entry, its family
group, and the verdict of planning.estimate.fit for the model as shipped at a planning context (the model's
trained context, capped at CONTEXT_TOKENS). The same verdict is given to a model on the Hub before its weights
are downloaded (`remote_verdict`), from the facts a header read gave.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.errors import LocalbenchError
from machine.profile import HardwareProfile
from models.stores.entry import ModelEntry
from planning.estimate import Fit, estimate, fits_report
from planning.specs import ModelSpec, spec_from_folder, spec_from_gguf, spec_of_remote

CONTEXT_TOKENS = 4096
"""The context the verdict plans for (tokens), or the model's own maximum when it is smaller."""


@dataclass(frozen=True)
class InventoryRow:
    """One model file on this machine and what the planner says of it."""

    entry: ModelEntry
    verdict: str
    """'fits', 'tight', 'does not fit', or 'unknown' (the planner could not read the model's shape)."""
    need_bytes: int | None
    """Planned memory at `n_ctx` tokens (weights + KV + compute + overhead; derived), None when unknown."""
    budget_bytes: int | None
    """Memory the model may take: available memory minus the margin (or the GPU-usable share)."""
    n_ctx: int | None
    """The context the verdict planned for (tokens)."""
    why: str
    """The numbers behind the verdict, or why there is none."""

    def to_row(self) -> dict:
        row = self.entry.to_row()
        row.update(
            verdict=self.verdict,
            need_bytes=self.need_bytes,
            budget_bytes=self.budget_bytes,
            plan_n_ctx=self.n_ctx,
            verdict_detail=self.why,
        )
        return row


def spec_of(entry: ModelEntry) -> ModelSpec:
    """The planner's spec of a local entry (GGUF header, or config.json + safetensors headers)."""
    if entry.format == "gguf":
        return spec_from_gguf(entry.path, entry.name)
    return dataclasses.replace(spec_from_folder(entry.path), name=entry.name)


def verdict_for(spec: ModelSpec, profile: HardwareProfile, available_bytes: int) -> tuple[Fit, int]:
    """(fit of `spec` as shipped at the planning context, that context in tokens) on `profile`: the verdict
    `python app.py plan` gives (available memory; the GPU-usable share where models run on a GPU)."""
    n_ctx = min(CONTEXT_TOKENS, spec.context_length or CONTEXT_TOKENS)
    offload = bool(profile.accelerators)
    est = estimate(spec, None, n_ctx, cpu_only=not offload)
    ram, gpu = fits_report(
        est, available_bytes, profile.ram_bytes, profile.accelerator_memory_bytes, profile.accelerator_memory_source
    )
    return (gpu if offload and gpu.verdict != "n/a" else ram), n_ctx


def row_for(entry: ModelEntry, profile: HardwareProfile, available_bytes: int) -> InventoryRow:
    """The InventoryRow of one entry; a broken or unreadable entry gets 'unknown' with the reason."""
    if not entry.runnable:
        return InventoryRow(entry, "unknown", None, None, None, entry.problem or "no file")
    if entry.format == "sentence-transformers":
        return InventoryRow(entry, "unknown", None, None, None, "embeddings model: the planner plans LLMs only")
    try:
        verdict, n_ctx = verdict_for(spec_of(entry), profile, available_bytes)
    except (LocalbenchError, OSError, ValueError, KeyError) as err:
        return InventoryRow(entry, "unknown", None, None, None, f"the planner could not read it: {err}")
    return InventoryRow(entry, verdict.verdict, verdict.need_bytes, verdict.budget_bytes, n_ctx, verdict.detail)


def inventory(
    profile: HardwareProfile, available_bytes: int | None = None, entries: list[ModelEntry] | None = None
) -> list[InventoryRow]:
    """Every model on this machine (models.catalog.all_entries) with its verdict; available memory from
    psutil unless given."""
    from models.catalog import all_entries

    if available_bytes is None:
        import psutil

        available_bytes = psutil.virtual_memory().available
    return [row_for(e, profile, available_bytes) for e in (all_entries() if entries is None else entries)]


def plan_summary(plan) -> str:
    """'Q4_K_M GGUF, 1 file, 253.2 MB to download (253.2 MB in all)' for a models.hub.RemotePlan."""
    from core.units import fmt_bytes

    what = " ".join(
        x for x in (plan.quant, {"gguf": "GGUF", "mlx": "MLX", "hf": "safetensors"}.get(plan.format, plan.format)) if x
    )
    files = f"{len(plan.files)} file" + ("s" if len(plan.files) != 1 else "")
    return f"{what}, {files}, {fmt_bytes(plan.download_bytes)} to download ({fmt_bytes(plan.total_bytes)} in all)"


@dataclass(frozen=True)
class RemoteVerdict:
    verdict: str
    """'fits', 'tight', 'does not fit' or 'unknown'."""
    why: str


def remote_verdict(plan, profile: HardwareProfile, available_bytes: int | None = None) -> RemoteVerdict:
    """Will the model that `plan` (models.hub.RemotePlan) describes fit here? Asked before its download."""
    if available_bytes is None:
        import psutil

        available_bytes = psutil.virtual_memory().available
    try:
        verdict, n_ctx = verdict_for(spec_of_remote(plan), profile, available_bytes)
    except LocalbenchError as err:
        return RemoteVerdict("unknown", f"the planner could not tell: {err}")
    return RemoteVerdict(verdict.verdict, f"at {n_ctx} tokens it {verdict.detail}")


DISPLAY_COLUMNS = (
    "name",
    "fits here (planned)",
    "quant",
    "size (GiB)",
    "params",
    "ctx_train (tokens)",
    "format",
    "source",
    "family",
    "problem",
)
"""The short table of `models` and the Models tab; csv and json carry every field, units in the names."""


def display_row(row: InventoryRow) -> dict:
    """One row of the short table: parameters as 135M / 4.0B, size in GiB (2**30 bytes); unknown stays
    empty, never 0."""
    from core.units import fmt_params

    e = row.entry
    values = (
        e.name,
        row.verdict if row.verdict != "unknown" else None,
        e.quant,
        None if e.size_bytes is None else round(e.size_bytes / 2**30, 3),
        fmt_params(e.n_params),
        e.context_length,
        e.format,
        e.source,
        e.family,
        e.problem,
    )
    return {k: ("" if v is None else v) for k, v in zip(DISPLAY_COLUMNS, values, strict=True)}


ENGINES_OF_FORMAT = {"gguf": "llamacpp", "mlx": "mlx", "hf": "torch"}
"""The local engine that runs each format as it is on disk."""


def family_runs(name: str, entries: list[ModelEntry] | None = None) -> list[tuple[str, str]]:
    """("this model on every engine") (engine, model) for `name` and one other file of its family per other
    local engine, `name` first: a GGUF on llama.cpp, an MLX folder on MLX, a safetensors folder on torch.
    [] when `name` is not a runnable file here; just `name` when its family has no other format."""
    from models.catalog import all_entries

    found = [e for e in (all_entries() if entries is None else entries) if e.runnable and e.format in ENGINES_OF_FORMAT]
    own = next((e for e in found if e.name == name), None)
    if own is None:
        return []
    runs = {ENGINES_OF_FORMAT[own.format]: own.name}
    for e in found:
        if own.family and e.family == own.family:
            runs.setdefault(ENGINES_OF_FORMAT[e.format], e.name)
    order = [ENGINES_OF_FORMAT[own.format], *ENGINES_OF_FORMAT.values()]  # the picked one, then a fixed order
    return [(engine, runs[engine]) for engine in dict.fromkeys(order) if engine in runs]
