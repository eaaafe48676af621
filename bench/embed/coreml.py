"""The embeddings runner's Core ML part: one configuration per compute unit (cpu_only | cpu_and_gpu | cpu_and_ne |
all) of the model's converted fp16 package, and the conversion done before the sweep, with progress, where it
is missing. Off macOS each Core ML choice is skipped with one line ("Core ML needs macOS (the converted package
is at …)"); when nothing else was asked for, that line is the plan's error."""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import BadParameter
from core.progress import Progress
from engines.embeddings import EmbedConfig, EmbedModelRef


def coreml_configs(ref: EmbedModelRef, compute_units: Sequence[str], skipped: list[str]) -> list[EmbedConfig]:
    """Core ML configurations for `ref`, one per compute unit; the reason is appended to `skipped` (and no
    configuration returned) where packages cannot predict."""
    from engines.coreml import check_compute_units, unavailable_line

    units = [check_compute_units(u) for u in dict.fromkeys(compute_units)]
    if not units:
        raise BadParameter("pick at least one Core ML compute unit: cpu_only, cpu_and_gpu, cpu_and_ne or all")
    why = unavailable_line(ref)
    if why:
        skipped.append(why)
        return []
    return [EmbedConfig(backend="coreml", precision="fp16", compute_units=u) for u in units]


def prepare_coreml(model: str, configs: Sequence[EmbedConfig], progress: Progress | None) -> None:
    """Convert the model to its Core ML package first when a Core ML configuration will run (cached after)."""
    if not any(c.backend == "coreml" for c in configs):
        return
    from engines.coreml import convert_embedder

    convert_embedder(model, progress=lambda f, m: progress and progress(0.0, f"Core ML conversion: {m}"))
