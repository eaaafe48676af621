"""engines.memory_check: which library errors mean "out of memory", on the real messages and real limits.

oneDNN's "could not create a primitive" carries no status: it is an allocation failure only while the
process is short of memory. These tests set a real address-space cap in a child process, so the headroom
check runs on the kernel's own numbers, on any CPU (the torch engine test meets the real oneDNN failure only
where bf16 runs through oneDNN's brgemm JIT, as on AVX-512 BF16 hosts).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.errors import EngineUnavailable, InsufficientMemory
from engines.memory_check import SHORT_HEADROOM_BYTES, is_oom, library_error, memory_headroom
from tests.conftest import ROOT

WAY_OUT = "use a shorter prompt"

# Real messages, each as its library prints it (see OOM_TEXTS for where each comes from).
ALLOCATION_FAILURES = [
    "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1125899906842624 bytes. Error code 12",
    "CUDA out of memory. Tried to allocate 2.00 GiB",
    "MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.00 GB, max allowed: 18.13 GB)",
    "[malloc] Unable to allocate 268435456 bytes.",
    "[metal::malloc] Attempting to allocate 137438953472 bytes which is greater than the maximum allowed buffer size",
    "[metal::malloc] Resource limit (499000) exceeded.",
    "[METAL] Command buffer execution failed: Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory"
    ")",
    "Intel oneMKL FATAL ERROR: memory allocation error.",
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
]

NOT_MEMORY = [
    "shape mismatch",
    "[matmul] shapes do not match",
    "could not create a primitive descriptor for a matmul primitive",  # oneDNN `unimplemented`
    "malloc(): corrupted top size",
]


@pytest.mark.parametrize("text", ALLOCATION_FAILURES)
def test_allocation_failures_are_out_of_memory(text):
    err = RuntimeError(text)
    assert is_oom(err)
    mapped = library_error(err, "generating", "torch", WAY_OUT)
    assert isinstance(mapped, InsufficientMemory) and WAY_OUT in str(mapped)


@pytest.mark.parametrize("text", NOT_MEMORY)
def test_other_failures_are_not(text):
    assert not is_oom(RuntimeError(text))
    assert isinstance(library_error(RuntimeError(text), "generating", "torch", WAY_OUT), EngineUnavailable)


def test_onednn_failure_with_memory_to_spare_is_not_out_of_memory():
    # pytorch/pytorch#89104: the same text from a code-path bug on a machine with memory to spare
    room, _ = memory_headroom()
    assert room > SHORT_HEADROOM_BYTES, "this test needs more than 256 MiB free"
    err = RuntimeError("could not create a primitive")
    assert not is_oom(err)
    mapped = library_error(err, "computing logits", "torch", WAY_OUT)
    assert isinstance(mapped, EngineUnavailable) and "not for memory" in str(mapped)
    assert "ONEDNN_MAX_CPU_ISA" in str(mapped)


def test_onednn_failure_under_an_address_space_cap_is_out_of_memory():
    script = """
import resource, psutil
from engines.memory_check import is_oom, library_error, memory_headroom
err = RuntimeError("could not create a primitive")
vms = psutil.Process().memory_info().vms
resource.setrlimit(resource.RLIMIT_AS, (vms + 32 * 2**20, resource.RLIM_INFINITY))
room, where = memory_headroom()
print(is_oom(err), round(room / 2**20), where)
print(type(library_error(err, "computing logits", "torch", "way out")).__name__)
print(library_error(RuntimeError("could not execute a primitive"), "generating", "torch", "way out"))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout + done.stderr
    oom, room_mib, where = lines[0].split(" ", 2)
    assert oom == "True" and 0 < int(room_mib) <= 32 and where == "room under the address-space limit"
    assert lines[1] == "InsufficientMemory"
    assert lines[2].startswith("out of memory while generating: oneDNN could not execute a primitive with ")
