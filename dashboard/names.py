"""Display names of engines for pickers and tables: people read "llama.cpp", the code keeps "llamacpp".

`engine_choices(names)` gives Gradio (label, value) pairs, so a picker shows the display name while its
value, the API and the stored records keep the registry id.
"""

from __future__ import annotations

from collections.abc import Iterable

ENGINE_DISPLAY_NAMES = {
    "llamacpp": "llama.cpp",
    "ollama": "Ollama",
    "openai": "OpenAI-compatible",
    "mlx": "MLX",
    "torch": "PyTorch",
    "sentence-transformers": "sentence-transformers",
}


def display_name(engine: str) -> str:
    """'llama.cpp' for 'llamacpp'; an unknown id comes back unchanged."""
    return ENGINE_DISPLAY_NAMES.get(engine, engine)


def engine_choices(engines: Iterable[str]) -> list[tuple[str, str]]:
    """(display name, registry id) for a gr.Dropdown's choices."""
    return [(display_name(e), e) for e in engines]
