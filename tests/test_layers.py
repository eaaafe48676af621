"""The layout's rule, checked: imports run one way, floor by floor, and no module is part of an import circle.

Floors, lowest first: core → models, machine → engines → planning → bench → dashboard → commands → app.py
(app.py dispatches to the commands, and asks commands.models to fetch an hf: model before any command runs)
(benchmarks/ scripts sit on top). A module may import its own package and any lower floor, never a
higher one nor a sibling on its floor. Inside bench/ the rooms have floors of their own, lowest first:
stats → results → speed, embed, answers → quant → scorecard. Every import counts, the deferred ones inside
functions too, because a deferred import is still a dependency. Each module also imports alone in a fresh process.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {
    "core": 0,
    "models": 1,
    "machine": 1,
    "engines": 2,
    "planning": 3,
    "bench": 4,
    "dashboard": 5,
    "commands": 6,
    "app": 7,
    "benchmarks": 7,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(p): p
    for top in FLOORS
    for p in ([ROOT / "app.py"] if top == "app" else sorted((ROOT / top).rglob("*.py")))
}


def imports_of(path: Path) -> set[str]:
    """Every project module `path` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in MODULES}
    return found


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


BENCH_FLOORS = {"stats": 0, "results": 1, "speed": 2, "embed": 2, "answers": 2, "quant": 3, "scorecard": 4}
"""bench/'s rooms (bench.speed, ...) and its top-level modules (bench.stats, bench.scorecard), lowest first."""

FOLDER_MODULES_MAX = 14
"""No package folder holds more modules than this (its __init__ not counted): past it, a concern wants a room.
benchmarks/ holds scripts, one per measurement, not a package's modules."""


def floor(module: str) -> int:
    return FLOORS[module.split(".")[0]]


def bench_room(module: str) -> str:
    return module.split(".")[1]


def test_imports_run_down_the_floors():
    upward = [
        f"{mod} (floor {floor(mod)}) imports {dep} (floor {floor(dep)})"
        for mod, deps in GRAPH.items()
        for dep in deps
        if dep.split(".")[0] != mod.split(".")[0] and floor(dep) >= floor(mod)
    ]
    assert upward == []


def test_bench_rooms_import_down_their_floors():
    rooms = {m for m in GRAPH if m.startswith("bench.")}
    assert {bench_room(m) for m in rooms} == set(BENCH_FLOORS)
    upward = [
        f"{mod} imports {dep}"
        for mod in rooms
        for dep in GRAPH[mod]
        if dep.startswith("bench.")
        and bench_room(dep) != bench_room(mod)
        and BENCH_FLOORS[bench_room(dep)] >= BENCH_FLOORS[bench_room(mod)]
    ]
    assert upward == []


def test_no_folder_holds_more_than_14_modules():
    folders: dict[Path, int] = {}
    for path in MODULES.values():
        if path.name != "__init__.py" and path.parent != ROOT and path.relative_to(ROOT).parts[0] != "benchmarks":
            folders[path.parent] = folders.get(path.parent, 0) + 1
    crowded = {str(d.relative_to(ROOT)): n for d, n in folders.items() if n > FOLDER_MODULES_MAX}
    assert crowded == {}


def test_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert circles == []


def third_party_imports() -> list[str]:
    """The top-level names our modules import at module level that are not ours (numpy, gradio, ...)."""
    names = set()
    for path in MODULES.values():
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return sorted(n for n in names if n not in FLOORS and n != "__future__")


FORK_EACH = """
import importlib, os, sys, traceback
for lib in sys.argv[1].split(","):
    try:
        importlib.import_module(lib)
    except Exception:
        pass
ours = set(sys.argv[3].split(","))
failed = [f"{m}: imported by the third-party libraries" for m in sys.modules if m.split(".")[0] in ours]
for name in sys.argv[2].split(","):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc().strip().splitlines()[-1].encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as r:
        why = r.read().decode()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(f"{name}: {why or status}")
print("\\n".join(failed))
"""


def test_each_module_imports_alone_in_a_fresh_process():
    """Each of our modules is imported in a process where none of ours was imported before: a child forked
    from one that imported only the third-party libraries (importing numpy or gradio afresh for each of
    ~200 modules took a minute), so an import that works only after another of ours fails here."""
    names = sorted((m for m in MODULES if not m.startswith("benchmarks")), key=lambda m: (floor(m), m))
    done = subprocess.run(
        [sys.executable, "-c", FORK_EACH, ",".join(third_party_imports()), ",".join(names), ",".join(FLOORS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("top", [t for t in FLOORS if t not in ("app",)])
def test_no_folder_holds_more_than_35_percent_of_the_code_and_no_file_is_over_600_lines(top):
    lines = {p: len(p.read_text().splitlines()) for p in MODULES.values()}
    total = sum(lines.values())
    share = sum(n for p, n in lines.items() if p.relative_to(ROOT).parts[0] == top) / total
    assert share <= 0.35, f"{top}/ holds {share:.0%} of the code"
    assert [str(p.relative_to(ROOT)) for p, n in lines.items() if p.relative_to(ROOT).parts[0] == top and n > 600] == []
