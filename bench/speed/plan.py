"""`bench`'s lists and ranges as llama-bench reads them, and their cross-product in the order that loads the
model the fewest times.

llama-bench reloads the model only when a model-level parameter changes (`cmd_params_instance::
equal_mparams`: layers, split mode, load mode, repack, ...); n_batch, n_ubatch, the KV types, flash
attention, threads and depth are context parameters, set on a fresh context per test. Our llama-bench
method (engines.llamacpp_bench) makes a fresh context per test too, so for it `-t` and `-b` are per-test
settings like `-fa`, and the loads are only `-mmp` × `--repack` (× n_gpu_layers in a `bench --sweep` on
Metal or CUDA). On the streaming path (every other engine,
and llama.cpp with `--method stream`) threads and the batch are fixed when the model loads, so each
(`-t`, `-b`) pair is a load of its own. Loads are the outer loop either way; inside a load the context
settings nest in llama-bench's order (n_batch, n_ubatch, type_k, type_v, flash_attn, n_threads), then the
tests, then the depths (bench.speed.runner.plan_tests).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bench.speed.runner import DecodeSettings, SpeedTest, plan_tests
from core.errors import BadParameter

MAX_VALUES = 4096
"""The most values one list or range may give (a typo such as 1-1000000000 is refused, not run)."""


def int_values(text: str) -> list[int]:
    """llama-bench's integer lists: '128,512', ranges 'first-last', 'first-last+step', 'first-last*mult'.
    A range that cannot grow (0-512*2) or gives more than MAX_VALUES values raises ValueError."""
    values: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)(?:([+*])(\d+))?", part)
        if m:
            first, last = int(m[1]), int(m[2])
            op, step = m[3] or "+", int(m[4] or 1)
            if last < first or step < (1 if op == "+" else 2):
                raise ValueError(f"bad range {part!r}")
            x = first
            while x <= last:
                values.append(x)
                nxt = x + step if op == "+" else x * step
                if nxt <= x or len(values) > MAX_VALUES:  # 0*k never grows (llama-bench: "invalid range")
                    raise ValueError(f"bad range {part!r}")
                x = nxt
        else:
            values.append(int(part))
    return values


@dataclass(frozen=True)
class Load:
    """One model load of a bench run: what differs from the base LoadConfig (None: as the base)."""

    n_threads: int | None = None
    n_batch: int | None = None
    use_mmap: bool | None = None
    repack: bool | str | None = None
    n_gpu_layers: int | None = None

    def options(self) -> dict[str, object]:
        """The engine options of this load (llama.cpp's use_mmap and repack) that were given."""
        return {k: v for k, v in (("use_mmap", self.use_mmap), ("repack", self.repack)) if v is not None}

    def config(self, base):
        """`base` (a LoadConfig) with this load's threads, batch, offloaded layers and options."""
        given = (("n_threads", self.n_threads), ("n_batch", self.n_batch), ("n_gpu_layers", self.n_gpu_layers))
        changes = {k: v for k, v in given if v is not None}
        return dataclasses.replace(base, options=(*base.options, *self.options().items()), **changes)


def checked(flag: str, values: Sequence[int], low: int) -> list[int]:
    """`values` when every one is >= low, else BadParameter naming the flag."""
    if not values:
        raise BadParameter(f"{flag}: no value given")
    bad = [v for v in values if v < low]
    if bad:
        raise BadParameter(f"{flag}: values must be >= {low}, got {bad[0]}")
    return list(values)


def cross_product(
    *,
    n_prompt: Sequence[int],
    n_gen: Sequence[int],
    pg: Sequence[tuple[int, int]] = (),
    depths: Sequence[int] = (0,),
    threads: Sequence[int | None] = (None,),
    batches: Sequence[int | None] = (None,),
    flash_attn: Sequence[int | None] = (None,),
    n_ubatch: Sequence[int | None] = (None,),
    type_k: Sequence[str | None] = (None,),
    type_v: Sequence[str | None] = (None,),
    use_mmap: Sequence[bool | None] = (None,),
    repack: Sequence[bool | str | None] = (None,),
    n_gpu_layers: Sequence[int | None] = (None,),
    per_test_threads: bool = True,
) -> tuple[list[SpeedTest], list[Load]]:
    """(tests, loads): run every test under every load (loads outermost, see the module docstring).

    `per_test_threads`: threads and batch are context settings (llama.cpp's llama-bench method) rather
    than load settings (the streaming path). A single value of either stays a load setting, so the row and
    the loaded model agree."""
    many = len(threads) > 1 or len(batches) > 1
    if per_test_threads and many:
        ctx_threads, ctx_batches, load_threads, load_batches = threads, batches, [None], [None]
    else:
        ctx_threads, ctx_batches, load_threads, load_batches = [None], [None], threads, batches
    settings = [
        DecodeSettings(flash_attn=fa, n_ubatch=ub, type_k=tk, type_v=tv, n_batch=nb, n_threads=nt)
        for nb, ub, tk, tv, fa, nt in itertools.product(ctx_batches, n_ubatch, type_k, type_v, flash_attn, ctx_threads)
    ]
    tests = plan_tests(n_prompt, n_gen, pg, depths, settings)
    loads = [
        Load(n_threads=nt, n_batch=nb, use_mmap=m, repack=r, n_gpu_layers=g)
        for g, m, r, nb, nt in itertools.product(n_gpu_layers, use_mmap, repack, load_batches, load_threads)
    ]
    return tests, loads
