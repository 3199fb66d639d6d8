"""No import cycle anywhere in ``src/s3pull``, on grimp's import graph.

The layers themselves are import-linter contracts (``[tool.importlinter]`` in
pyproject.toml, run by ``make lint``); its ``acyclic_siblings`` contract sees
cycles between sibling packages and modules. This sees every cycle between
any two modules, also a package and its own child, and names it with the
line of each import. Every import counts: inside a function, or under
``TYPE_CHECKING``, it is still a dependency of that module.
"""

from __future__ import annotations

import itertools
from collections import deque

import grimp
import pytest

Cycle = list[str]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("s3pull", cache_dir=None)


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one module,
    iterative (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        found.append(component)
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(sorted(edges[target]))))
            elif target in on_stack:
                low[module] = min(low[module], index[target])
    return found


def shortest_cycle(edges: dict[str, set[str]], component: set[str]) -> Cycle:
    """The shortest cycle through the component's first module (breadth first)."""
    start = min(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in sorted(edges[module] & component):
            if target == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target not in came_from:
                came_from[target] = module
                queue.append(target)
    raise AssertionError(f"not a cycle: {sorted(component)}")  # pragma: no cover


def import_cycles(graph: grimp.ImportGraph) -> list[Cycle]:
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    return [shortest_cycle(edges, component) for component in strongly_connected(edges)]


def describe(graph: grimp.ImportGraph, cycle: Cycle) -> str:
    steps = []
    for importer, imported in itertools.pairwise(cycle):
        lines = sorted(
            detail["line_number"]
            for detail in graph.get_import_details(importer=importer, imported=imported)
        )
        steps.append(f"  {importer} -> {imported} (l.{', l.'.join(map(str, lines))})")
    return "\n".join(steps)


def test_no_import_cycle_anywhere(graph: grimp.ImportGraph) -> None:
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n\n".join(describe(graph, c) for c in cycles)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
        # two cycles through "a": the shorter one is named
        ({"a": {"b", "d"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "d", "a"]]),
        (
            {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}},
            [["a", "b", "a"], ["c", "d", "e", "c"]],
        ),
    ],
)
def test_cycles_are_found_and_named(edges: dict[str, set[str]], expected: list[Cycle]) -> None:
    found = [shortest_cycle(edges, component) for component in strongly_connected(edges)]
    assert sorted(found) == expected


def test_a_cycle_is_named_with_the_lines_of_its_imports() -> None:
    graph = grimp.ImportGraph()
    graph.add_import(importer="p.a", imported="p.b", line_number=3, line_contents="import p.b")
    graph.add_import(importer="p.b", imported="p.a", line_number=7, line_contents="import p.a")
    (cycle,) = import_cycles(graph)
    assert describe(graph, cycle) == "  p.a -> p.b (l.3)\n  p.b -> p.a (l.7)"
