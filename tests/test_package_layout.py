"""The package's layout rules (issue 12), read from the source with :mod:`ast` (nothing is imported).

* No import cycles between mmstn modules, counting the imports inside functions too: a function-level import
  is allowed to defer an expensive or optional dependency, never to hide a cycle.
* One definition per public name: no two modules define a public top-level function or class of the same
  name (a numpy view of a torch function may delegate, under another name or a private alias).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mmstn"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module → the mmstn modules it imports anywhere in its body (top level and inside functions)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            targets |= {t for n in names if n.startswith("mmstn") and (t := _resolve(n, modules))}
        # a package and its own submodules import each other by design (re-exports); that is not a cycle
        graph[name] = {t for t in targets
                       if t != name and not t.startswith(name + ".") and not name.startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return [*stack[stack.index(w):], w]
            if w not in state and (c := visit(w)):
                return c
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (c := visit(v)):
            return c
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_even_through_function_level_imports():
    modules = _modules()
    assert len(modules) > 50
    graph = import_graph(modules)
    assert "mmstn.render.mesh" in graph["mmstn.data.synthetic"] or "mmstn.render" in graph["mmstn.data.synthetic"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_one_definition_per_public_name():
    where: dict[str, list[str]] = defaultdict(list)
    for name, path in _modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if node.name != "main":  # every command-line module has its own main()
                    where[node.name].append(name)
    twice = {k: v for k, v in where.items() if len(v) > 1}
    # grid_triangles: mmstn.uv.resample's is the documented numpy view of mmstn.layers.grid's
    twice.pop("grid_triangles", None)
    assert not twice, f"defined in several modules: {twice}"
