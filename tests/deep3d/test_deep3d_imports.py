"""fk_deep3d's modules form an acyclic import graph, and each imports on its own in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fk_deep3d

PACKAGE = Path(fk_deep3d.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def imported_siblings(path: Path) -> set[str]:
    """fk_deep3d modules that ``path`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "fk_deep3d" and len(parts) > 1 and parts[1] in MODULES:
                found.add(parts[1])
    return found - {path.stem}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_import_graph_is_acyclic_and_constants_is_a_leaf():
    graph = {m: imported_siblings(PACKAGE / f"{m}.py") for m in MODULES}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert graph["constants"] == set()
    # the registration module reads names, never the runtime modules
    assert graph["plugin"] <= {"constants", "cli"}
    assert "cli" not in graph["train"] and "runners" not in graph["train"]


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone_in_a_fresh_interpreter(module):
    code = f"import fk_deep3d.{module}"
    if module == "__main__":
        code = "import runpy, sys; sys.argv = ['fk_deep3d', '--help']; runpy.run_module('fk_deep3d', run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
