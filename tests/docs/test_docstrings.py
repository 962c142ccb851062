"""The public API stays documented: every public name has a complete Google-style docstring.

The public API is every name in the ``__all__`` of ``failmodes`` (its lazily imported names
included) and of every module under it whose dotted name has no part starting with ``_`` (the
subpackages, and the modules the API reference renders), and the public methods and properties
that the public classes define. The docstrings are read as the API reference reads them: by
griffe, statically, with its Google parser (``mkdocs.yml``), so a section griffe does not see (a
misspelt header, a bad indent) counts as missing.

What is checked:

- every public name, method and property has a docstring (constants too: a string under the
  assignment), and griffe parses it without a warning (the warnings that fail the strict site
  build, here for every public object, rendered or not);
- every parameter of a public function, method or class appears in the ``Args:`` section of its
  docstring (a class's ``Args:`` may be in the class docstring or in ``__init__``'s, as the
  reference merges them; a dataclass's fields may be listed under ``Attributes:`` instead), and
  nothing is listed there that is not a parameter;
- a public function or method that returns something (its annotation is not ``None``) says
  what, under ``Returns:`` or ``Yields:``;
- every public module has a docstring;
- every name exported by ``failmodes`` itself has an ``Examples:`` section (the doctests run
  them).

``self`` and ``cls`` are not parameters a user passes, so they are never listed. ``*args`` and
``**kwargs`` are parameters like the others and must be listed (as ``**kwargs`` or by the bare
name): where a function takes them, what they may hold (the settings a call overrides, the
keyword arguments forwarded to a backend) is exactly what a reader needs and the signature does
not say. Methods inherited unchanged from a base class (``nn.Module``, an interface) are
documented where they are defined and are not checked again.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.docs.markdown import ROOT

griffe = pytest.importorskip("griffe")

PACKAGE = "failmodes"
SKIPPED_PARAMETERS = {"self", "cls"}
Kind = griffe.DocstringSectionKind


def _public_modules() -> list[str]:
    """``failmodes`` and every module under it whose dotted name has no part starting with ``_``.

    That is the subpackages (``failmodes.extractors``, ..., ``failmodes.testing``) and the
    modules the API reference renders (``failmodes.toyworld.zoo``, ...).
    """
    package = importlib.import_module(PACKAGE)
    found = pkgutil.walk_packages(package.__path__, f"{PACKAGE}.")
    names = [m.name for m in found if not any(p.startswith("_") for p in m.name.split("."))]
    return [PACKAGE, *sorted(names)]


PUBLIC_MODULES = _public_modules()


def _path(module_name: str, name: str) -> str:
    """The path of the object that ``module_name.name`` is, where its docstring is written."""
    value = getattr(importlib.import_module(module_name), name)
    if inspect.isclass(value) or inspect.isfunction(value):
        return f"{value.__module__}.{value.__qualname__}"
    return f"{module_name}.{name}"


def _public_paths() -> list[str]:
    """Every public name's defining path, once (a class exported in three places is one)."""
    paths = {}
    for module_name in PUBLIC_MODULES:
        for name in importlib.import_module(module_name).__all__:
            paths.setdefault(_path(module_name, name), None)
    return list(paths)


@pytest.fixture(scope="module")
def package() -> Any:
    """The package as the API reference reads it: statically, with the Google parser."""
    return griffe.load(
        PACKAGE, search_paths=[str(ROOT)], docstring_parser="google", resolve_aliases=False
    )


def _get(package: Any, path: str) -> Any:
    obj = package if path == PACKAGE else package[path.removeprefix(f"{PACKAGE}.")]
    return obj.final_target if obj.is_alias else obj


def _sections(obj: Any, kind: Any) -> list[Any]:
    """The ``kind`` sections of ``obj``'s docstring, parsed afresh (so griffe warns each time)."""
    if obj.docstring is None:
        return []
    return [section for section in obj.docstring.parse() if section.kind is kind]


def _documented(obj: Any, *kinds: Any) -> set[str]:
    """The names listed in the ``kinds`` sections of ``obj``'s docstring, ``*`` stripped."""
    return {
        item.name.lstrip("*")
        for kind in kinds
        for section in _sections(obj, kind)
        for item in section.value
    }


def _members(cls: Any) -> Iterator[Any]:
    """The public methods and properties that ``cls`` defines itself."""
    for member in cls.members.values():
        if member.name.startswith("_") or member.is_alias:
            continue
        if member.is_function or "property" in member.labels:
            yield member


def _problems(obj: Any) -> Iterator[str]:
    """What is missing from the docstring of ``obj`` (and of its members, for a class)."""
    if obj.docstring is None or not obj.docstring.value.strip():
        yield "no docstring"
        return
    if obj.is_function:
        yield from _parameter_problems(obj, _documented(obj, Kind.parameters))
        returns = obj.returns is not None and str(obj.returns) not in ("None", "NoReturn")
        answered = _sections(obj, Kind.returns) or _sections(obj, Kind.yields)
        if returns and not answered and "property" not in obj.labels:
            yield "no Returns: (or Yields:) section"
    elif obj.is_class:
        documented = _documented(obj, Kind.parameters)
        init = obj.members.get("__init__")
        if init is not None and not init.is_alias:
            documented |= _documented(init, Kind.parameters)
        if "dataclass" in obj.labels:  # fields are documented as Attributes
            documented |= _documented(obj, Kind.attributes)
        yield from _parameter_problems(obj, documented)
        for member in _members(obj):
            yield from (f"{member.name}: {problem}" for problem in _problems(member))


def _parameter_problems(obj: Any, documented: set[str]) -> Iterator[str]:
    names = {p.name for p in obj.parameters if p.name not in SKIPPED_PARAMETERS}
    for name in sorted(names - documented):
        yield f"parameter {name!r} is not in Args:"
    if not (obj.is_class and "dataclass" in obj.labels):  # a dataclass lists its fields
        for name in sorted(documented - names):
            yield f"Args: lists {name!r}, which is not a parameter"


@pytest.mark.parametrize("path", _public_paths())
def test_public_name_is_documented(package, path, caplog):
    with caplog.at_level(logging.WARNING, logger="griffe"):
        obj = _get(package, path)
        problems = list(_problems(obj))
    warnings = dict.fromkeys(record.getMessage() for record in caplog.records)
    problems += [f"griffe: {message}" for message in warnings]
    assert not problems, f"{path}: " + "; ".join(problems)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_module_is_documented(package, module_name):
    module = _get(package, module_name)
    assert module.docstring is not None and module.docstring.value.strip(), module_name


@pytest.mark.parametrize("name", importlib.import_module(PACKAGE).__all__)
def test_top_level_export_has_examples(package, name):
    obj = _get(package, _path(PACKAGE, name))
    assert _sections(obj, Kind.examples), f"{PACKAGE}.{name} ({obj.path}) has no Examples:"
