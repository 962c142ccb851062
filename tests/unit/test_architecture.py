"""The shape of the house, read from the source: no import circles, no reach into private
names, a facade whose methods hand their work to steps, steps that change no argument, and
ruff's lint (complexity and docstrings included) clean."""

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
            own = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
            inherited = isinstance(owner, ast.Call) and ast.unparse(owner.func) == "super"
            if not (own or inherited):
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


SETTINGS_METHODS = {"__post_init__", "components", "replace", "grids", "tools"}
"""The facade's methods that only read or copy its settings; every other one runs a step."""


def _delegates(function: ast.FunctionDef) -> bool:
    """Whether ``function`` calls a step (``steps.<name>(...)``) or the repair tools."""
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "steps":
                return True
            if isinstance(owner, ast.Call) and ast.unparse(owner.func) == "self.tools":
                return True
    return False


def _facade_methods() -> dict[str, ast.FunctionDef]:
    tree = ast.parse((PACKAGE / "debugger.py").read_text())
    (debugger,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Debugger"]
    return {n.name: n for n in debugger.body if isinstance(n, ast.FunctionDef)}


def test_every_method_of_the_facade_hands_its_work_to_a_step():
    methods = _facade_methods()
    assert {"run", "prepare", "caption", "select", "refit_on"} <= set(methods)
    public = {n for n in methods if not n.startswith("_") and n not in SETTINGS_METHODS}
    assert [n for n in sorted(public) if not _delegates(methods[n])] == []


def test_the_delegation_check_finds_a_method_doing_its_own_work():
    source = "def run(self, x):\n    return x + 1\n"
    assert not _delegates(ast.parse(source).body[0])
    assert _delegates(ast.parse("def run(self, x):\n    return steps.find(x)\n").body[0])


MUTATORS = {
    "append",
    "extend",
    "insert",
    "update",
    "pop",
    "popitem",
    "clear",
    "remove",
    "setdefault",
    "add",
    "discard",
    "sort",
    "reverse",
    "fill_",
    "zero_",
    "copy_",
}


def _argument_changes(path: Path) -> list[str]:
    """Where a function of ``path`` changes an argument it was given (not ``self``)."""
    found = []
    for function in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = function.args
        given = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]} - {"self"}
        rebound = {
            t.id
            for node in ast.walk(function)
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.For)
            for t in ast.walk(node.target if not isinstance(node, ast.Assign) else node)
            if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)
        }
        watched = given - rebound
        for node in ast.walk(function):
            targets = []
            if isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
                targets = node.targets if not isinstance(node, ast.AugAssign) else [node.target]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in MUTATORS
            ):
                targets = [node.func]
            for target in targets:
                if isinstance(target, ast.Attribute | ast.Subscript):
                    root = target.value
                    while isinstance(root, ast.Attribute | ast.Subscript):
                        root = root.value
                    if isinstance(root, ast.Name) and root.id in watched:
                        found.append(f"{path.name}:{node.lineno} {function.name}: {root.id}")
    return found


def test_no_step_changes_an_argument_it_was_given():
    changes = [
        c for path in sorted((PACKAGE / "steps").glob("*.py")) for c in _argument_changes(path)
    ]
    assert changes == []


def test_the_argument_check_finds_a_change(tmp_path):
    source = tmp_path / "step.py"
    source.write_text(
        "def top(modes, k):\n    modes.modes = modes.top_k(k)\n"
        "def add(counts):\n    counts['x'] = 1\n"
        "def grow(rows):\n    rows.append(1)\n"
        "def fine(rows):\n    rows = list(rows)\n    rows.append(1)\n"
    )
    assert [c.split()[1] for c in _argument_changes(source)] == ["top:", "add:", "grow:"]


def test_ruff_finds_nothing_in_the_package():
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.exists() else shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (the dev extra installs it)")
    root = PACKAGE.parent
    lint = subprocess.run(
        [ruff, "check", "--no-cache", "failmodes"], cwd=root, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout[-4000:]
    fmt = subprocess.run(
        [ruff, "format", "--check", "--no-cache", "failmodes"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout[-4000:]
