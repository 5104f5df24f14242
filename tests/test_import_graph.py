"""solo_d2's import structure, read from its own source with ``ast`` (nothing is imported).

A room is one of solo_d2's sub-packages or top-level modules. Every room stands on a floor
(``FLOORS``, written here and nowhere else); a room imports only rooms on lower floors, no
files import each other in a circle, no file is much over 400 lines, and every package's
docstring says in at most two lines what it is for. docs/ROOMS.md, the map of the rooms by
floor, is generated from ``FLOORS`` and those docstrings; to rewrite it after a change:

    SOLO_D2_WRITE_ROOMS=1 python -m pytest tests/test_import_graph.py
"""
import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "solo_d2"
ROOMS_MD = ROOT / "docs" / "ROOMS.md"

# floor -> rooms, ground floor first; a room may import only rooms on lower floors
FLOORS: Dict[int, List[str]] = {
    1: ["utils", "config", "solver", "shapes", "layers"],
    2: ["launch", "heads", "data", "convert"],
    3: ["modeling", "evaluation", "checkpoint"],
    4: ["lazy", "engine", "model_zoo", "testing"],
    5: ["export", "benchmark"],
    6: ["export_benchmark"],
}
MAX_LINES = 420  # "no file much over 400 lines"


def _modules() -> Dict[str, Path]:
    """Dotted module name -> file, for every module of the package (configs excluded: they
    are data that LazyConfig loads, not code the package imports)."""
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if rel.parts[1] == "configs":
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """The solo_d2 modules that ``name`` imports anywhere in its file (function-level imports
    included): ``from a import b`` counts as ``a.b`` where that is a module, else ``a``."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    out = set()
    for target in found:  # the module itself, else its nearest package in solo_d2
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target.startswith("solo_d2.") and target != name:
            out.add(target)
    return out


def _room(module: str) -> str:
    return module.split(".")[1]


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items() if m != "solo_d2"}


def test_every_room_has_one_floor():
    rooms = {_room(m) for m in _modules() if m != "solo_d2"}
    placed = [r for floor in FLOORS.values() for r in floor]
    assert len(placed) == len(set(placed)), "a room written on two floors"
    assert rooms == set(placed), (
        f"rooms without a floor: {sorted(rooms - set(placed))}; floors naming no room: "
        f"{sorted(set(placed) - rooms)}: place every room in FLOORS")


def test_no_room_imports_its_floor_or_one_above(graph):
    floor_of = {r: f for f, rooms in FLOORS.items() for r in rooms}
    wrong = sorted(
        f"{m} (floor {floor_of[_room(m)]}) imports {t} (floor {floor_of[_room(t)]})"
        for m, targets in graph.items() for t in targets
        if _room(t) != _room(m) and floor_of[_room(t)] >= floor_of[_room(m)])
    assert not wrong, "imports that do not go down a floor:\n" + "\n".join(wrong)


def _circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_circle_finder_finds_one():
    # the check below must be able to fail: a three-module loop beside a clean chain
    loop = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _circles(loop) == [["a", "b", "c"]]


def test_no_import_circle(graph):
    # a package's __init__ that re-exports its modules is not a circle with them unless a
    # module imports the package back, which is what this catches
    circles = _circles(graph)
    assert not circles, "modules that import each other in a loop:\n" + "\n".join(
        " -> ".join(c) for c in circles)


def test_no_file_much_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def _purpose(path: Path) -> str:
    """The first paragraph of a module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return " ".join(doc.split("\n\n")[0].split())


def test_every_package_says_its_job_in_two_lines():
    bad = []
    for name, path in _modules().items():
        if path.name != "__init__.py" and name.count(".") != 1:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = doc.split("\n\n")[0].strip()
        if not first or len(first.splitlines()) > 2:
            bad.append(f"{path.relative_to(ROOT)}: {len(first.splitlines())} lines")
    assert not bad, "docstrings whose first paragraph is not one or two lines: " + ", ".join(bad)


def rooms_map() -> str:
    """docs/ROOMS.md: the floors top down, each room with its job and its size."""
    modules = _modules()
    lines = [
        "# Where the code is: solo_d2's rooms by floor",
        "",
        "Generated by `tests/test_import_graph.py` from its `FLOORS` and each room's docstring",
        "(`SOLO_D2_WRITE_ROOMS=1 python -m pytest tests/test_import_graph.py` rewrites it; the",
        "test fails when this file and the code disagree). A room imports only rooms on lower",
        "floors; Detectron2, fvcore, iopath and torch are below the ground floor.",
        "",
    ]
    for floor in sorted(FLOORS, reverse=True):
        lines += [f"## Floor {floor}", ""]
        for room in FLOORS[floor]:
            package = PACKAGE / room / "__init__.py"
            path = package if package.exists() else PACKAGE / f"{room}.py"
            files = [p for m, p in modules.items() if m.split(".")[1:2] == [room]]
            kind = f"solo_d2/{room}/ ({len(files)} files)" if package.exists() \
                else f"solo_d2/{room}.py"
            lines.append(f"- `{kind}`: {_purpose(path)}")
        lines.append("")
    return "\n".join(lines)


def test_rooms_map_is_current():
    text = rooms_map()
    if os.environ.get("SOLO_D2_WRITE_ROOMS") == "1":
        ROOMS_MD.write_text(text)
    assert ROOMS_MD.exists() and ROOMS_MD.read_text() == text, (
        "docs/ROOMS.md is not the map of today's rooms: SOLO_D2_WRITE_ROOMS=1 python -m pytest "
        "tests/test_import_graph.py rewrites it")


def test_import_solo_d2_leaves_the_mmdet_converter_unloaded():
    # the converter is loaded where it is used (a foreign file, the conversion tool), and its
    # names still come from solo_d2.checkpoint on first use
    code = ("import sys, solo_d2; loaded = sorted(m for m in sys.modules if "
            "m.startswith('solo_d2.convert.mmdet.') and not m.endswith('.errors')); "
            "print(loaded); from solo_d2.checkpoint import convert_mmdet_checkpoint; "
            "print(convert_mmdet_checkpoint.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split()
    assert out == ["[]", "solo_d2.convert.mmdet.convert"]


def test_no_library_function_is_named_like_a_test():
    # pytest would collect such a function wherever a test module imports it
    named = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name}" for p in _modules().values()
             for n in ast.walk(ast.parse(p.read_text()))
             if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name.startswith("test_")]
    assert not named, "library functions named test_*: " + ", ".join(named)
