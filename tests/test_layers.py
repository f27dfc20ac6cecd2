"""The import graph of core's packages has no cycle (the layers contract in pyproject.toml keeps
it so; this test shows it directly, with grimp, the graph builder import-linter uses)."""

from __future__ import annotations

import grimp


def package_graph() -> dict[str, set[str]]:
    """core's top-level packages and modules -> the ones each imports (lazy imports included)."""
    graph = grimp.build_graph("worldstudio.core")
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        parts = module.split(".")
        if len(parts) < 3:
            continue
        deps = edges.setdefault(parts[2], set())
        for imported in graph.find_modules_directly_imported_by(module):
            other = imported.split(".")
            if len(other) > 2 and other[2] != parts[2]:
                deps.add(other[2])
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (its nodes, the first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_packages_import_each_other_without_a_cycle():
    edges = package_graph()
    assert {"generation", "interop", "media", "project", "cli"} <= edges.keys()
    assert find_cycle(edges) is None
    # video lives in media: generation and interop do not import each other
    assert "interop" not in edges["generation"] and "generation" not in edges["interop"]
