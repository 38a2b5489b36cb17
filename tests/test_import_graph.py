"""The house reads from its folder names (docs/design.md "Import rules"): the import graph of
`emergence/` has no cycle, the law never imports the sweep, and only the CLI layer imports `commands/`.

Every import counts, a deferred one inside a function too: a lazy import that closes a loop is still
a loop. A submodule naming its own package (``from emergence.laws.observational import law``) is
how Python reaches a sibling, not an edge back to the parent.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "emergence"


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """Module → the `emergence` modules it imports anywhere in its body."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name and not name.startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop, as the modules along it, or None."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state and (loop := visit(target, [*path, target])):
                return loop
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (loop := visit(module, [module])):
            return loop
    return None


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None


def test_a_planted_loop_is_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_law_never_imports_the_sweep():
    graph = import_graph()
    assert [(m, t) for m in graph if m.startswith("emergence.laws") for t in graph[m] if t.startswith("emergence.sweep")] == []


def test_only_the_cli_layer_imports_commands():
    graph = import_graph()
    cli_layer = ("emergence.cli", "emergence.commands")
    outside = [(m, t) for m in graph if not m.startswith(cli_layer) for t in graph[m] if t.startswith("emergence.commands")]
    assert outside == []
