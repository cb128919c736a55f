"""The house keeps its shape: no import circle among the project's modules (module-level
imports and imports inside functions alike), and no module reaches into another's private
names. The layer contracts (Django-free packages, services below the entry points) are
import-linter's, in `.importlinter`, run by `make lint`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ("config", "validation", "audit", "reports")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class _Imports(ast.NodeVisitor):
    """Every import of a project module in one file (at any depth), the private names taken from
    other modules, and attribute reads of `_private` names through an imported module."""

    def __init__(self, module: str, is_package: bool, modules: dict[str, Path]) -> None:
        self.module, self.is_package, self.modules = module, is_package, modules
        self.edges: dict[str, int] = {}
        self.private: list[str] = []
        self.aliases: dict[str, str] = {}

    def _edge(self, target: str, line: int) -> None:
        while target and target not in self.modules:
            target = target.rpartition(".")[0]
        if target and target != self.module:
            self.edges.setdefault(target, line)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._edge(alias.name, node.lineno)
            if alias.asname and alias.name in self.modules:
                self.aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = _absolute(self.module, node, self.is_package)
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in self.modules:
                self._edge(submodule, node.lineno)
                self.aliases[alias.asname or alias.name] = submodule
                continue
            self._edge(source, node.lineno)
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            if private and source in self.modules and source != self.module:
                self.private.append(f"line {node.lineno}: from {source} import {alias.name}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if (
            isinstance(node.value, ast.Name)
            and node.value.id in self.aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            target = self.aliases[node.value.id]
            self.private.append(f"line {node.lineno}: {target}.{node.attr}")
        self.generic_visit(node)


def import_graph() -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    modules = project_modules()
    graph, private = {}, {}
    for name, path in modules.items():
        visitor = _Imports(name, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        graph[name] = visitor.edges
        if visitor.private:
            private[name] = visitor.private
    return graph, private


def _reachable(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The groups of modules that reach each other through imports (more than one module)."""
    reach = {module: _reachable(graph, module) for module in graph}
    cycles, placed = [], set()
    for module in sorted(graph):
        if module in placed:
            continue
        group = {module} | {other for other in reach[module] if module in reach.get(other, ())}
        placed |= group
        if len(group) > 1:
            cycles.append(sorted(group))
    return cycles


def test_the_checker_finds_a_circle_and_a_private_import(tmp_path, monkeypatch):
    """The checks below can fail: a made-up package with both faults is caught."""
    package = tmp_path / "validation"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from validation import b\n")
    (package / "b.py").write_text("from validation.a import f, _hidden\nimport validation.a as a\n")
    (package / "c.py").write_text("from validation import b\nx = b._secret\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "APPS", ("validation",))
    graph, private = import_graph()
    assert import_cycles(graph) == [["validation.a", "validation.b"]]
    assert private == {
        "validation.b": ["line 1: from validation.a import _hidden"],
        "validation.c": ["line 2: validation.b._secret"],
    }


def test_no_import_circle_among_the_projects_modules():
    graph, _private = import_graph()
    cycles = import_cycles(graph)
    described = [
        " -> ".join(f"{m} (line {graph[m][n]} imports {n})" for m in c for n in graph[m] if n in c)
        for c in cycles
    ]
    assert not cycles, "\n".join(described)


def test_no_module_imports_another_modules_private_names():
    _graph, private = import_graph()
    assert not private, private
