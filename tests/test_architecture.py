"""The house keeps its shape: no import cycle, areas depend downward, modules stay small.

Imports are read from the source (function-level ones included; `if TYPE_CHECKING:` blocks
are left out, they never run), so a cycle hidden inside a function still fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "mailer"
MAX_LINES = 600

# Who may import whom: web and cli on top, then the areas, then store, then shared modules.
LAYERS = {
    "__main__": 4,
    "cli": 4,
    "web": 4,
    "demo": 4,
    "sending": 3,
    "engagement": 3,  # counted links at the freeze, click counts, the report (uses stats)
    "workspace": 3,  # `mailer init` makes the database
    "newsletter": 2,
    "audience": 2,
    "bounces": 2,  # below sending: its classifier of SMTP answers serves both
    "store": 1,
}
SHARED = 0  # errors, config, states, tokens, addresses, i18n, timeutil, resources, capture


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every mailer module `path` imports at run time (top level or inside functions)."""
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path)
    package = package if path.name == "__init__.py" else package.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base in modules:
                found.add(base)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.add(f"{base}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(_module_name(path))
    return {name for name in found if name.startswith("mailer")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    # A package's __init__ is imported with any of its submodules; that is not a cycle of ours.
    for name in graph:
        graph[name] = {dep for dep in graph[name] if not name.startswith(dep + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, ()):
            if dep not in index:
                strong(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strong(node)
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], SHARED) if len(parts) > 1 else SHARED


def test_no_import_cycle_among_mailer_modules():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_sees_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_areas_depend_downward():
    wrong = [
        f"{module} -> {dep}"
        for module, deps in _graph().items()
        for dep in deps
        if _layer(dep) > _layer(module)
    ]
    assert wrong == []


def test_areas_reach_each_other_only_through_their_modules_not_the_store_of_another():
    # Only an area's own code and the store package itself run SQL of that area.
    wrong = []
    for module, deps in _graph().items():
        if module.startswith("mailer.web") or module.startswith("mailer.cli"):
            wrong += [f"{module} -> {d}" for d in deps if d.startswith("mailer.store.")]
    assert wrong == []


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: _module_name(p))
def test_no_module_is_over_600_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES
