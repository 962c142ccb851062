"""The shape of the house, read from the source: no import circles, no reach into private
names, a short facade, and ruff's lint (complexity and docstrings included) clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "failmodes"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """``(imported module, names)`` of every import, in functions too, TYPE_CHECKING aside."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = module if is_package else module.rpartition(".")[0]
            if node.level:
                parts = base.split(".")[: len(base.split(".")) - node.level + 1]
                name = ".".join(parts + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((name, [alias.name for alias in node.names]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for target, names in _imports(tree, name, path.name == "__init__.py"):
            if not target.startswith("failmodes"):
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            graph[name].update(subs or [target])
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, done, path = [], set(), []

    def walk(node: str) -> None:
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done and nxt in graph:
                walk(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            walk(node)
    return cycles


def test_no_import_circle_in_the_package():
    graph = _graph()
    assert "failmodes.steps.features" in graph and graph["failmodes.debugger"]
    assert _cycles(graph) == []


def test_the_circle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_reaches(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """Underscore names imported from another module, or read on an object not self/cls."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found += [f"import {a.name} from {node.module}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return [f"{path.relative_to(root)}: {what}" for what in found]


def test_no_module_reaches_into_private_names():
    reaches = [r for path in _modules().values() for r in _private_reaches(path)]
    assert reaches == []


def test_the_private_check_finds_a_reach(tmp_path):
    source = tmp_path / "failmodes" / "x.py"
    source.parent.mkdir()
    source.write_text("from failmodes.y import _z\nfrom failmodes import _w\nobj._a\nself._b\n")
    assert len(_private_reaches(source, tmp_path)) == 3


def _code_lines(function: ast.FunctionDef) -> int:
    """Lines of a function's code, its docstring and blank lines aside."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if not body:
        return 0
    lines = (PACKAGE / "debugger.py").read_text().splitlines()
    span = lines[body[0].lineno - 1 : body[-1].end_lineno]
    return sum(1 for line in span if line.strip() and not line.strip().startswith("#"))


def test_the_debugger_is_a_short_facade():
    source = (PACKAGE / "debugger.py").read_text()
    assert len(source.splitlines()) < 500
    (debugger,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "Debugger"
    ]
    sizes = {
        node.name: _code_lines(node) for node in debugger.body if isinstance(node, ast.FunctionDef)
    }
    assert sizes["run"] <= 60
    assert {name: n for name, n in sizes.items() if name != "run" and n > 40} == {}


def test_ruff_finds_nothing_in_the_package():
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.exists() else shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (the dev extra installs it)")
    root = PACKAGE.parent
    lint = subprocess.run([ruff, "check", "--no-cache", "failmodes"], cwd=root,
                          capture_output=True, text=True)  # fmt: skip
    assert lint.returncode == 0, lint.stdout[-4000:]
    fmt = subprocess.run([ruff, "format", "--check", "--no-cache", "failmodes"], cwd=root,
                         capture_output=True, text=True)  # fmt: skip
    assert fmt.returncode == 0, fmt.stdout[-4000:]
