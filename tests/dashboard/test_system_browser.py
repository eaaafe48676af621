"""The System tab: CPU instruction sets, library versions, server engines as installed vs reachable, the
llama.cpp repack verdict and build info; no "weights × 1.2" memory rule. The labels are tested alone (the flag
reader in tests/machine/test_detect.py)."""

from __future__ import annotations

import pytest

from dashboard.tabs.system import cpu_features
from tests.conftest import open_tab


def test_cpu_features_labels_linux_and_macos_flags():
    x86 = {"fpu", "avx", "avx2", "avx512f", "amx_tile", "amx_int8"}
    assert cpu_features(x86) == ["AVX", "AVX2", "AVX-512", "AMX-TILE", "AMX-INT8"]
    assert cpu_features({"fp", "asimd", "asimddp", "i8mm", "sve"}) == ["NEON", "Arm dot product", "Arm I8MM", "SVE"]
    assert cpu_features({"hw.optional.neon", "hw.optional.arm.FEAT_SME"}) == ["NEON", "SME"]


@pytest.mark.browser
def test_system_tab_shows_flags_versions_reachability_and_llama_info(page):
    open_tab(page, "System")
    profile = page.locator("#system-profile").inner_text()
    assert "CPU instruction sets" in profile and "AVX2" in profile
    engines = page.locator("#system-engines").inner_text()
    assert "llama.cpp" in engines and "OpenAI-compatible" in engines and "PyTorch" in engines
    assert "installed · not reachable" in engines  # no Ollama server here: the client alone is not "usable"
    assert "× 1.2" not in page.locator("#system-config").inner_text()
    assert "llama-cpp-python" in page.locator("#system-libraries").inner_text()
    assert "repack" in page.locator("#system-repack").inner_text().lower()
    page.locator("#system-llama-run").click()
    page.wait_for_function("() => /AVX2 = 1/.test(document.querySelector('#system-llama').innerText)")
