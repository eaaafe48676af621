"""Reports built on the estimate: the design target's (ADR 006) allocation plan for a machine and the calculator's plan.

`allocation_plan()` scales the design record's 64 GB table to this machine's RAM; `plan_report()`
gathers the estimate, the verdicts, the maximum context per quantization and the recommendation into
one JSON-ready dict that `python app.py plan` prints and the Memory tab shows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from core.errors import BadParameter
from machine.profile import HardwareProfile
from planning.estimate import Recommendation, context_table, estimate, fits_report, margin_bytes, recommend
from planning.specs import ModelSpec, spec_dict

ADR006_PLAN_RAM_GB = 64
ADR006_PLAN_GB: tuple[tuple[str, float], ...] = (
    ("OS", 6.0),
    ("Applications", 8.0),
    ("Model weights", 36.0),
    ("Inference context (KV cache)", 8.0),
    ("Embeddings / RAG", 2.0),
    ("Buffers / cache", 4.0),
)
"""The design record's table for a 64 GB Mac (OS ~6, applications ~8, embeddings/RAG ~2, buffers ~4 GB);
the remaining 44 GB split 36 weights / 8 context is our default. Used as fractions of RAM."""

MODEL_COMPONENTS = ("Model weights", "Inference context (KV cache)")


@dataclass(frozen=True)
class PlanRow:
    component: str
    fraction: float
    """Share of RAM, 0..1."""
    bytes: int


def allocation_plan(ram_bytes: int, fractions: dict[str, float] | None = None) -> tuple[PlanRow, ...]:
    """The plan scaled to `ram_bytes` (a plan, not a measurement); `fractions` overrides shares (0..1)."""
    shares = {name: gb / ADR006_PLAN_RAM_GB for name, gb in ADR006_PLAN_GB}
    for name, value in (fractions or {}).items():
        if name not in shares:
            raise BadParameter(f"unknown plan component '{name}' — components: {', '.join(shares)}")
        if not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value <= 1:
            raise BadParameter(f"share of '{name}' must be between 0 % and 100 %, got {value!r}")
        shares[name] = float(value)
    total = sum(shares.values())
    if total > 1.0001:
        raise BadParameter(
            f"the plan adds up to {total * 100:.0f} % of RAM — lower some shares so the total is at most 100 %"
        )
    return tuple(PlanRow(name, share, int(share * ram_bytes)) for name, share in shares.items())


def model_budget(plan: tuple[PlanRow, ...]) -> int:
    """Bytes the plan leaves for a model: weights plus inference context."""
    return sum(row.bytes for row in plan if row.component in MODEL_COMPONENTS)


def planning_budget(
    available_bytes: int, ram_bytes: int, gpu_share_bytes: int | None, offload: bool
) -> tuple[int, str]:
    """(bytes a model may take, what that is): available memory minus the margin, and on a GPU run
    no more than the GPU-usable share minus its margin."""
    budget, label = available_bytes - margin_bytes(ram_bytes), "available memory minus the margin"
    if offload and gpu_share_bytes and gpu_share_bytes - margin_bytes(gpu_share_bytes) < budget:
        budget, label = gpu_share_bytes - margin_bytes(gpu_share_bytes), "the GPU-usable share minus the margin"
    return max(budget, 0), label


def plan_report(
    spec: ModelSpec,
    quant: str | None,
    n_ctx: int,
    *,
    ram_bytes: int,
    available_bytes: int,
    gpu_share_bytes: int | None = None,
    gpu_source: str = "",
    offload: bool = False,
    kv_type: str = "f16",
    n_parallel: int = 1,
) -> dict:
    """Everything the calculator shows, JSON-ready: estimate, verdicts, max context per quantization,
    and the recommended quantization with its reasons. `offload`: the machine runs models on a GPU."""
    cpu_only = not offload
    est = estimate(spec, quant, n_ctx, kv_type, n_parallel, cpu_only=cpu_only)
    ram_fit, gpu_fit = fits_report(est, available_bytes, ram_bytes, gpu_share_bytes, gpu_source)
    budget, label = planning_budget(available_bytes, ram_bytes, gpu_share_bytes, offload)
    rows = context_table(spec, budget, kv_type, n_parallel, cpu_only)
    if spec.n_params:
        rec = recommend(spec, est.n_ctx, budget, label, kv_type, n_parallel, cpu_only)
        recommendation = {
            "quantization": rec.quantization,
            "adr006_choice": rec.adr006_choice,
            "reasons": list(rec.reasons),
        }
    else:
        recommendation = {"quantization": None, "adr006_choice": "", "reasons": ["parameter count unknown"]}
    return {
        "model": spec_dict(spec),
        "estimate": est.to_dict(),
        "components": [list(row) for row in est.rows()],
        "fits": {
            "available_memory": {**asdict(ram_fit), "text": ram_fit.text, "detail": ram_fit.detail},
            "gpu_share": {**asdict(gpu_fit), "text": gpu_fit.text, "detail": gpu_fit.detail},
        },
        "budget": {"bytes": budget, "what": label},
        "max_context": [asdict(r) for r in rows],
        "recommendation": recommendation,
        "recommended_quantization": recommendation["quantization"],
        "machine": {
            "ram_bytes": ram_bytes,
            "available_bytes": available_bytes,
            "gpu_share_bytes": gpu_share_bytes,
            "gpu_share_source": gpu_source,
            "offload": offload,
        },
        "units": "sizes in bytes; GiB = 2**30 bytes, GB = 1e9 bytes",
    }


def machine_plan(
    spec: ModelSpec,
    quant: str | None,
    n_ctx: int,
    profile: HardwareProfile,
    available_bytes: int | None = None,
    kv_type: str = "f16",
    n_parallel: int = 1,
) -> dict:
    """`plan_report` on this machine: RAM and the GPU share from `profile`, available memory from psutil
    unless given. `python app.py plan` and `doctor --model` both ask this, so they agree."""
    if available_bytes is None:
        import psutil

        available_bytes = psutil.virtual_memory().available
    return plan_report(
        spec,
        quant,
        n_ctx,
        ram_bytes=profile.ram_bytes,
        available_bytes=available_bytes,
        gpu_share_bytes=profile.accelerator_memory_bytes,
        gpu_source=profile.accelerator_memory_source,
        offload=bool(profile.accelerators),
        kv_type=kv_type,
        n_parallel=n_parallel,
    )


def recommendation_of(report: dict) -> Recommendation:
    """The report's recommendation as the recommender returned it."""
    rec = report["recommendation"]
    choice = rec.get("adr006_choice", rec.get("seed_choice", ""))  # seed_choice: reports saved before the rename
    return Recommendation(rec["quantization"], choice, tuple(rec["reasons"]))
