"""The docs never drift from the API: every offline code block runs, and the site builds strictly.

How blocks are read and marked: ``tests/docs/markdown.py``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.docs.markdown import ROOT, blocks, is_slow, pages

PYTHON = ("python", "py")


def _page_params():
    for page in pages():
        if not any(b.lang in PYTHON for b in blocks(page)):
            continue
        marks = [pytest.mark.slow] if is_slow(page) else []
        yield pytest.param(page, id=str(page.relative_to(ROOT)), marks=marks)


@pytest.mark.parametrize("page", list(_page_params()))
def test_the_python_blocks_of_a_page_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from failmodes.attributes import ATTRIBUTES, register_attribute, unregister_attribute

    registered = dict(ATTRIBUTES)  # a page may register attributes: other tests must not see them
    try:
        _run_page(page)
    finally:
        for name in set(ATTRIBUTES) - set(registered):
            unregister_attribute(name)
        for attribute in registered.values():
            register_attribute(attribute, replace=True)


def _run_page(page) -> None:
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for block in blocks(page):
        if block.lang not in PYTHON:
            continue
        code = compile(block.code, block.where, "exec")
        if block.skip is not None:
            _check_imports(block)
            continue
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(code, namespace)
        except Exception as err:
            raise AssertionError(f"the block at {block.where} failed: {err!r}") from err
        finally:
            sys.stdout.write(printed.getvalue())
        if block.expected is not None:
            assert _lines(printed.getvalue()) == _lines(block.expected), (
                f"the block at {block.where} printed\n{printed.getvalue()}\n"
                f"but the page shows\n{block.expected}"
            )
        ran += 1
    assert ran or all(b.skip for b in blocks(page) if b.lang in PYTHON)


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def _check_imports(block) -> None:
    """The failmodes names that a skipped block imports exist."""
    for node in ast.walk(ast.parse(block.code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("failmodes"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), (
                    f"{block.where}: {node.module} has no {alias.name!r}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("failmodes"):
                    importlib.import_module(alias.name)


def test_failmodes_commands_in_the_docs_parse():
    from failmodes.cli import _parser

    commands = []
    for page in pages():
        for block in blocks(page):
            if block.lang not in ("bash", "sh", "console", "shell"):
                continue
            for line in block.code.replace("\\\n", " ").splitlines():
                for part in line.split("&&"):
                    part = part.strip().removeprefix("$ ")
                    if part.startswith("failmodes "):
                        commands.append((block.where, shlex.split(part, comments=True)[1:]))
    assert commands, "no failmodes command found in the docs"
    for where, args in commands:
        try:
            _parser().parse_args(args)
        except SystemExit as err:
            raise AssertionError(f"{where}: failmodes {shlex.join(args)} does not parse") from err


def test_skipped_blocks_say_why_and_every_page_is_read():
    for page in pages():
        blocks(page)  # raises on a skip without a reason


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    mkdocs = shutil.which("mkdocs") or None
    command = [mkdocs] if mkdocs else [sys.executable, "-m", "mkdocs"]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [*command, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "debugger" / "index.html").exists()
