"""The import graph: the parts stand on each other in one order, nothing imports back up, and the
model's runtime never reaches the fitting code.

Every import counts, a function's own and one under ``TYPE_CHECKING`` included: a lazy import
that runs upward is still an upward dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("markup", "model", "evals", "service")  # each may import only those before it


def modules() -> dict[str, Path]:
    found = {}
    for part in PARTS:
        for path in (ROOT / part).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            found["salience." + ".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The salience modules that ``name`` imports (a package's names resolved to its modules
    where they are modules)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in known]
            targets = targets or [module]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports(name, path, known)) for name, path in found.items()}


def part(module: str) -> str:
    return module.split(".")[1]


def test_no_part_imports_a_part_above_it() -> None:
    upward = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in targets
        if PARTS.index(part(target)) > PARTS.index(part(source))
    ]
    assert upward == []


def test_the_import_graph_has_no_cycle() -> None:
    """No module imports, however indirectly, one that imports it: inside ``service/`` as
    everywhere, a lower module never imports a higher one."""
    edges = graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_the_model_runtime_never_imports_the_fitting_code() -> None:
    edges = graph()
    fitting = "salience.model.fit"
    runtime = [m for m in edges if m.startswith("salience.") and not m.startswith(fitting)]
    # what the service, the eval and the runtime reach without the CLI's `salience model …`
    reach: set[str] = set()
    todo = [m for m in runtime if not m.startswith("salience.service.cli")]
    while todo:
        module = todo.pop()
        if module in reach:
            continue
        reach.add(module)
        todo.extend(edges.get(module, ()))
    assert sorted(m for m in reach if m.startswith(fitting)) == []
    assert any(m.startswith(fitting + ".") for m in edges)  # the fitting code is there


def test_the_annotator_takes_plain_options() -> None:
    edges = graph()
    assert not [m for m in edges["salience.service.annotator"] if ".api" in m]
