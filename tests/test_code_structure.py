"""The layering and size rules of DESIGN.md, checked on the source (AST, nothing imported).

- ``granular``, ``wavefe``, ``surrogate`` and ``jamcommon`` never import ``jamwave`` (the
  application sits on top; what the libraries share is in ``jamcommon``), and ``jamcommon`` imports
  none of the project's packages.
- No import circle between the project's modules, counting imports inside functions too (a lazy
  import still ties the two modules together).
- No function longer than 80 lines outside the tests. ``LONG_FUNCTIONS`` lists the offenders
  still waiting for their split, each with its present length: an entry may only shrink, and an
  entry that is no longer an offender must be removed from the list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jamcommon", "jamwave", "granular", "wavefe", "surrogate")
LIBRARIES = ("jamcommon", "granular", "wavefe", "surrogate")
MAX_LINES = 80

# "path:function" -> its length in lines today. Only shrinks.
LONG_FUNCTIONS: dict[str, int] = {}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported(name: str, path: Path) -> set[str]:
    """Project modules that module ``name`` imports anywhere in its source (lazy imports too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in MODULES else base)
    found = set()
    for target in targets:
        # The longest project module that the imported name starts with.
        parts = target.split(".")
        for k in range(len(parts), 0, -1):
            candidate = ".".join(parts[:k])
            if candidate in MODULES:
                if candidate != name:
                    found.add(candidate)
                break
    return found


GRAPH = {name: _imported(name, path) for name, path in MODULES.items()}


def test_the_modules_were_found():
    assert {"jamwave.cli", "jamcommon.files", "granular.h5md", "surrogate.pruning.pqi"} <= set(MODULES)
    assert "jamwave.commands.granular" in GRAPH["jamwave.cli"]
    assert "surrogate.pruning.history" in GRAPH["surrogate.pruning.schedule"]  # relative import


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_do_not_import_the_application(library):
    bad = sorted(f"{name} imports {target}" for name, targets in GRAPH.items()
                 if name.split(".")[0] == library for target in targets
                 if target.split(".")[0] == "jamwave")
    assert not bad, bad


def test_jamcommon_imports_no_project_package():
    bad = sorted(f"{name} imports {target}" for name, targets in GRAPH.items()
                 if name.split(".")[0] == "jamcommon" for target in targets
                 if target.split(".")[0] != "jamcommon")
    assert not bad, bad


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    assert _cycles(GRAPH) == []


def _long_functions() -> dict[str, int]:
    found = {}
    for path in MODULES.values():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_LINES:
                    key = f"{path.relative_to(ROOT).as_posix()}:{node.name}"
                    found[key] = max(found.get(key, 0), length)
    return found


def test_no_function_over_80_lines():
    found = _long_functions()
    new = {key: n for key, n in found.items() if key not in LONG_FUNCTIONS}
    grown = {key: (LONG_FUNCTIONS[key], n) for key, n in found.items()
             if key in LONG_FUNCTIONS and n > LONG_FUNCTIONS[key]}
    stale = sorted(set(LONG_FUNCTIONS) - set(found))
    assert not new, f"functions over {MAX_LINES} lines: {new}"
    assert not grown, f"allow-listed functions grew (listed, now): {grown}"
    assert not stale, f"no longer over {MAX_LINES} lines, remove from LONG_FUNCTIONS: {stale}"
