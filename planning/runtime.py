"""How to run models on this machine: the design record's runtime table, turned into a `RuntimeConfig`.

`optimal_config()` turns a HardwareProfile and, optionally, a model size into a backend, device,
quantization, context and thread count, each with one sentence of reasoning, following the design
record's (ADR 006) table and targets (`ADR006_TARGETS`). The quantization comes from the one recommender,
planning.estimate.recommend, so `doctor` and `plan` agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core.units import fmt_bytes
from engines.base import LoadConfig
from engines.memory_check import MEMORY_MULTIPLIER
from machine.profile import HardwareProfile
from planning.estimate import SHRINK_LADDER, Recommendation, params_spec, recommend

CPU_USABLE_RAM_FRACTION = 0.75
"""Share of RAM a CPU-only run may plan for; the rest is left to the OS and other programs."""

MLX_Q_BITS = {"Q8_0": 8, "Q6_K": 6, "Q5_K_M": 5, "Q4_K_M": 4, "Q4_K_S": 4, "Q3_K_S": 3}
"""The nearest `mlx_lm.convert(q_bits=...)` for each GGUF type."""


@dataclass(frozen=True)
class DesignTargets:
    """The design record's targets: Qwen3-8B on an Apple M3 Max (ANCHORS.md)."""

    machine: str = "Apple M3 Max"
    model: str = "Qwen3-8B"
    gen_tps_min: float = 40.0
    """Generation speed target: more than 40 tokens/s."""
    ttft_s_max: float = 0.200
    """First-token latency target: under 200 ms."""
    memory_gb_max: float = 8.0
    """Memory target: under 8 GB (1e9 bytes)."""
    power_w_max: float = 35.0
    quality_loss_pct_max: float = 5.0
    """Q4_K_M quality loss against the unquantized model, percent."""
    speedup_vs_cpu_min: float = 3.0
    """Accelerated generation must be at least 3× the CPU's."""
    baseline_gen_tps: tuple[tuple[str, float], ...] = (("cpu", 8.0), ("torch_mps", 22.0), ("mlx_q4", 50.0))
    baseline_ttft_s: tuple[tuple[str, float], ...] = (("cpu", 0.8), ("torch_mps", 0.4), ("mlx_q4", 0.15))
    baseline_memory_gb: tuple[tuple[str, float], ...] = (("f16", 16.0), ("q4", 4.5))


ADR006_TARGETS = DesignTargets()


@dataclass(frozen=True)
class RuntimeConfig:
    """How to run models on one machine, with one sentence of reasoning per decision."""

    backend: str
    """'mlx' | 'llamacpp' (an engines.registry name)."""
    device: str
    """'metal' | 'cuda' | 'cpu'."""
    quantization: str
    """A GGUF type from the design target's (ADR 006) table ('Q4_K_M', ...) or 'as shipped' when no model size
    was given."""
    metal: bool
    memory_multiplier: float
    """Weights × this = memory needed."""
    num_ctx: int
    """Context window in tokens."""
    n_threads: int
    n_gpu_layers: int
    """-1 = every layer on the GPU, 0 = CPU only."""
    reasons: tuple[str, ...]
    mlx_q_bits: int | None = None
    """For backend 'mlx': the `mlx_lm.convert(q_bits=...)` matching `quantization`."""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out

    def load_config(self, **given) -> LoadConfig:
        """The engines.base.LoadConfig these settings describe, checked: the planned context, threads, GPU
        layers and device, each replaced by a `given` LoadConfig field that is not None, plus the other
        given fields (n_batch, dtype, options, ...). `device=None` given leaves the device to the engine
        (its own detection: the torch engine picks 'mps' where the planner says 'metal')."""
        planned = {"n_ctx": self.num_ctx, "n_threads": self.n_threads, "n_gpu_layers": self.n_gpu_layers}
        fields = {**planned, "device": given.pop("device") if "device" in given else self.device}
        fields.update({k: v for k, v in given.items() if v is not None or k not in planned})
        return LoadConfig(**fields).validate()


def _context_for(memory_bytes: int) -> int:
    # 0.9: "16 GB" machines report a little less (kernel reservations; a 24 GB card shows 23.99 GiB).
    gib = memory_bytes / 2**30 / 0.9
    return 32768 if gib >= 64 else 16384 if gib >= 32 else 8192 if gib >= 16 else 4096


def optimal_config(
    profile: HardwareProfile, model_params_b: float | None = None, recommendation: Recommendation | None = None
) -> RuntimeConfig:
    """The backend, device, quantization, context and threads to use on `profile` for a model of
    `model_params_b` billion parameters (None: the bundled default model). `recommendation`: the one
    recommender's answer for a known model (planning.report.machine_plan), used as it is."""
    reasons: list[str] = []
    if profile.apple_silicon:
        device = "metal"
        backend = "mlx" if profile.has_library("mlx_lm") else "llamacpp"
        if backend == "mlx":
            reasons.append(
                f"{profile.chip} with mlx-lm installed: MLX on the Metal GPU (design record on an M3 Max, "
                "Qwen3-8B: MLX Q4 50 t/s against PyTorch MPS 22 and CPU 8)."
            )
        else:
            reasons.append(
                f"{profile.chip} without mlx-lm: llama.cpp with every layer on Metal "
                "(pip install mlx-lm to use MLX, the design record's fastest path)."
            )
    elif "cuda" in profile.accelerators:
        device, backend = "cuda", "llamacpp"
        reasons.append(
            f"NVIDIA GPU ({profile.gpu_name}): llama.cpp with every layer offloaded to CUDA; this needs a "
            "CUDA build of llama-cpp-python (CMAKE_ARGS='-DGGML_CUDA=on' pip install llama-cpp-python)."
        )
    else:
        device, backend = "cpu", "llamacpp"
        why = "Intel Mac (its GPU is not used for models)" if profile.family == "Intel Mac" else "No GPU"
        reasons.append(f"{why}: llama.cpp on the CPU, no layers offloaded.")

    n_threads = max(profile.n_threads or 1, 1)
    notes = [] if profile.apple_silicon else ["SMT siblings add nothing"]
    if profile.perf_cores is None:
        notes.append("the performance core count is unknown, so this is the physical core count or 1")
    if profile.efficiency_cores:
        notes.append(f"the {profile.efficiency_cores} efficiency cores would slow generation down")
    reasons.append(f"n_threads = {n_threads}, the physical performance cores ({'; '.join(notes) or 'all of them'}).")

    if device == "cpu":
        num_ctx = 4096
        reasons.append("num_ctx = 4096: on the CPU, prompt processing makes long contexts slow.")
    else:
        basis = profile.ram_bytes if device == "metal" else profile.accelerator_memory_bytes or 0
        num_ctx = _context_for(basis)
        label = "unified memory" if device == "metal" else "VRAM"
        if basis:
            reasons.append(
                f"num_ctx = {num_ctx} for {fmt_bytes(basis)} of {label} "
                "(8 GB → 4096, 16 GB → 8192, 32 GB → 16384, 64 GB and more → 32768 tokens)."
            )
        else:  # a partial capture: unknown is said, never shown as 0
            reasons.append(
                f"num_ctx = {num_ctx}, the smallest step: the amount of {label} is unknown "
                "(8 GB → 4096, 16 GB → 8192, 32 GB → 16384, 64 GB and more → 32768 tokens)."
            )

    reasons.append(
        f"Memory planning: weights (parameters × bits per weight / 8) × {MEMORY_MULTIPLIER} = memory needed "
        "(the extra covers the KV cache and compute buffers)."
    )
    quantization = "as shipped"
    if recommendation is not None:
        reasons.extend(recommendation.reasons)
        quantization = recommendation.quantization or "none fits"
    elif model_params_b is None:
        reasons.append("No model size given: the bundled default model (a Q4_1 GGUF) runs as shipped.")
    else:
        quantization = _choose_quantization(profile, device, model_params_b, reasons)

    mlx_q_bits = MLX_Q_BITS.get(quantization) if backend == "mlx" else None
    if mlx_q_bits:
        reasons.append(f"MLX equivalent: mlx_lm.convert(..., quantize=True, q_bits={mlx_q_bits}, q_group_size=64).")
    return RuntimeConfig(
        backend=backend,
        device=device,
        quantization=quantization,
        metal=device == "metal",
        memory_multiplier=MEMORY_MULTIPLIER,
        num_ctx=num_ctx,
        n_threads=n_threads,
        n_gpu_layers=0 if device == "cpu" else -1,
        reasons=tuple(reasons),
        mlx_q_bits=mlx_q_bits,
    )


def _choose_quantization(profile: HardwareProfile, device: str, params_b: float, reasons: list[str]) -> str:
    """The one recommender's choice (planning.estimate.recommend) for a model of `params_b` billion
    parameters within the memory this device may plan for; appends its reasons."""
    spec = params_spec(f"a {params_b:g} B model", params_b)
    if device == "cpu":
        usable = int(profile.ram_bytes * CPU_USABLE_RAM_FRACTION)
        where = f"{CPU_USABLE_RAM_FRACTION:.0%} of RAM"
    else:
        usable = profile.accelerator_memory_bytes or profile.ram_bytes * 2 // 3
        where = "the GPU's share of unified memory" if device == "metal" else "VRAM"
    if not usable:
        reasons.append(f"The size of {where} is unknown, so no quantization can be checked against it.")
        return "unknown (memory not known)"
    rec = recommend(spec, 0, usable, where)
    reasons.extend(rec.reasons)
    if rec.quantization is not None:
        return rec.quantization
    partial = " or offload only part of the layers (lower n_gpu_layers)" if device == "cuda" else ""
    reasons.append(f"Even {SHRINK_LADDER[-1]} does not fit {where}: choose a smaller model{partial}.")
    return SHRINK_LADDER[-1]
