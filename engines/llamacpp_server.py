"""`python -m engines.llamacpp_server --model M.gguf [llama_cpp.server flags]`: llama.cpp's OpenAI-compatible
server with localbench's repack choice applied.

`python -m llama_cpp.server` loads with weight repack on, which segfaults on Intel CPUs with AMX
(ggml-org/llama.cpp#20824). This launcher runs the same server after deciding repack the way the
llama.cpp engine does (the cached canary, or `--repack on|off`), and prints that decision on stderr.
"""

from __future__ import annotations

import sys


def _pop_repack(argv: list[str]) -> tuple[str, list[str]]:
    setting, rest, i = "auto", [], 0
    while i < len(argv):
        if argv[i] == "--repack" and i + 1 < len(argv):
            setting, i = argv[i + 1], i + 2
        elif argv[i].startswith("--repack="):
            setting, i = argv[i].partition("=")[2], i + 1
        else:
            rest.append(argv[i])
            i += 1
    return setting, rest


def _model_path(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--model" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--model="):
            return arg.partition("=")[2]
    return None


def main() -> None:
    from engines.llamacpp import choose_repack, set_default_repack
    from models.gguf import read_gguf

    setting, rest = _pop_repack(sys.argv[1:])
    path = _model_path(rest)
    if path is None:
        sys.exit("engines.llamacpp_server: --model PATH.gguf is required")
    repack, why = choose_repack(setting, path, read_gguf(path).file_type)
    print(f"localbench: {why}", file=sys.stderr, flush=True)
    set_default_repack(repack)
    sys.argv = [sys.argv[0], *rest]
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
