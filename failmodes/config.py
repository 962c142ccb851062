"""A whole run from one TOML file, as ``failmodes run CONFIG.toml`` runs it.

[`load_config`][load_config] reads a file and checks all of it before any work: an unknown key,
a value of the wrong type, a missing path, a name that cannot be imported or an argument that
a component does not take is a [`ConfigError`][ConfigError] that names the key
(``datasets.train.path``) and what was expected. [`RunConfig.build`][RunConfig.build] then makes
the model's extractor, the components, the engine and the datasets, and
[`RunConfig.run`][RunConfig.run] runs [`Debugger.run`][failmodes.debugger.Debugger.run] with
them. The keys are documented in the guide "Run from a config file" (``docs/guides/config.md``).

Relative paths in the file (``datasets.*.path``, ``debugger.cache``) are read from the file's
folder, so a run gives the same result whichever folder it starts in, on this machine or as a
Ray job (``ray job submit -- failmodes run config.toml``).

Examples:
    ```python
    from failmodes.config import load_config

    config = load_config("examples/imagenet-tiny.toml")  # checked; nothing built yet
    result = config.run(cache="failmodes-cache")  # a RunResult
    result.save_summary("summary.json")
    ```
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from failmodes._checks import check_class_names, check_seed
from failmodes._imports import require
from failmodes.errors import SettingError
from failmodes.progress import stage
from failmodes.settings import INTERFACES, check_setting, check_settings

if TYPE_CHECKING:
    from failmodes.debugger import Debugger
    from failmodes.results import RunResult

__all__ = [
    "COMPONENTS",
    "SHORT_NAMES",
    "BuiltRun",
    "ConfigError",
    "RunConfig",
    "load_config",
]

COMPONENTS = ("proposer", "captioner", "generator", "head_trainer", "image_filter")
"""The component tables of a config file, each ``{class = ..., <arguments>}``."""

RUN_NEEDS = ("proposer", "captioner", "generator")
"""The component tables a run needs (the others have defaults, or are optional)."""

SHORT_NAMES = {
    "chatgpt": "failmodes.proposers.chatgpt:ChatGPTProposer",
    "static": "failmodes.proposers.static:StaticProposer",
    "clip": "failmodes.captioners.openclip:CLIPCaptioner",
    "stable-diffusion": "failmodes.generators.diffusion:StableDiffusionGenerator",
    "img2img": "failmodes.generators.editing:StableDiffusionImg2ImgGenerator",
    "instruct-pix2pix": "failmodes.generators.editing:InstructPix2PixGenerator",
    "linear": "failmodes.heads.linear:LinearHeadTrainer",
    "caption": "failmodes.filters:CaptionFilter",
}
"""The shipped components by short name: ``class = "chatgpt"`` is
``class = "failmodes.proposers.chatgpt:ChatGPTProposer"``."""

_TOP = ("seed", "class_names", "model", "datasets", *COMPONENTS, "debugger", "engine")
_SETS = ("train", "debug", "test", "guard")
_SOURCES = {
    "path": (),
    "hf": ("split", "config", "revision", "image", "label", "kwargs"),
    "factory": ("kwargs",),
}
_SUBSETS = ("per_class", "skip", "take", "cache_key")
_MODELS = {"timm": ("pretrained", "model_kwargs"), "factory": ("kwargs",)}
_EXTRACTOR = ("transform", "batch_size", "device", "num_workers", "precision", "progress")
_NOT_SETTINGS = ("extractor", *COMPONENTS, "class_names", "engine")
_SEQUENCES = (
    list,
    tuple,
    set,
    frozenset,
    abc.Sequence,
    abc.MutableSequence,
    abc.Iterable,
    abc.Collection,
    abc.Set,
)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class ConfigError(ValueError):
    """A config file that cannot be run: the key at fault and what was expected.

    Args:
        key: the dotted key (``"datasets.train.path"``); ``""`` for the file as a whole.
        message: what is wrong and what was expected; its line breaks become spaces (a message
            from a user's module too), so the error is one line.

    Attributes:
        key: the dotted key.

    Examples:
        >>> from failmodes.config import ConfigError
        >>> str(ConfigError("debugger.k", "expected an integer, got a string 'x'"))
        "debugger.k: expected an integer, got a string 'x'"
    """

    def __init__(self, key: str, message: str):
        message = " ".join(line.strip() for line in message.splitlines() if line.strip())
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


# -- reading and checking ----------------------------------------------------------------------


def load_config(path: str | Path, *, check_paths: bool = True) -> RunConfig:
    """Read a run's TOML file and check all of it; nothing is built or run.

    Args:
        path: the file.
        check_paths: check what only this machine can say: that the datasets' folders exist,
            and, with the local engine, that it has the model's ``device``; ``False`` checks
            everything else (to check a file written for another machine).

    Returns:
        The checked [`RunConfig`][RunConfig].

    Raises:
        ConfigError: the first problem found, naming its key.
        ImportError: a package the file needs (``timm``, ``datasets``, ``ray``) is missing; the
            message names the extra that installs it.

    Examples:
        A file written for another machine, checked without its paths: one key is wrong.

        >>> import pathlib, tempfile
        >>> from failmodes.config import load_config
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.toml"
        >>> _ = path.write_text('''
        ... [model]
        ... timm = "resnet50"
        ... [datasets]
        ... train = {path = "/data/imagenet/train", per_class = 30}
        ... debug = {path = "/data/imagenet/val", take = 30000}
        ... test = {path = "/data/imagenet/val", skip = 30000}
        ... [debugger]
        ... k = "five"
        ... ''')
        >>> load_config(path, check_paths=False)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        failmodes.config.ConfigError: debugger.k: expected an integer or a list ..., got ... 'five'
        >>> _ = path.write_text(path.read_text().replace('"five"', "5"))
        >>> config = load_config(path, check_paths=False)
        >>> config.seed, config.engine, config.data["debugger"]["k"]
        (0, 'local', 5)
    """
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            "", f"cannot read {path}: {getattr(err, 'strerror', None) or err}"
        ) from err
    tomllib = _toml()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("", f"{path.name} is not valid TOML: {err}") from err
    _check_top(data, path.parent, check_paths)
    names = _class_names(data.get("class_names"), path.parent, check_paths)
    return RunConfig(path=path, data=data, class_names=names)


def _toml() -> types.ModuleType:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    return require("tomli", feature="reading TOML on Python 3.10")  # pragma: no cover


def _check_top(data: dict, folder: Path, check_paths: bool) -> None:
    _known_keys(data, "", _TOP, what="key")
    for needed in ("model", "datasets"):
        if needed not in data:
            raise ConfigError(needed, f"missing: a run needs [{needed}]")
    _check_seed_key(data.get("seed", 0))
    here = check_paths and _engine_spec(data.get("engine", "local"))[0] == "local"
    _check_model(_table(data["model"], "model"), here)
    _check_datasets(_table(data["datasets"], "datasets"), folder, check_paths)
    for slot in COMPONENTS:
        if slot in data:
            _check_component(data[slot], slot)
    _check_debugger(_table(data.get("debugger", {}), "debugger"))
    _check_engine(data.get("engine", "local"))


def _check_seed_key(seed: Any) -> int:
    try:
        return check_seed(seed)
    except ValueError as err:
        raise ConfigError("seed", str(err).removeprefix("seed ")) from None


def _table(value: Any, key: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a table, got {_got(value)}")
    return value


def _text(value: Any, key: str, expected: str = "a string") -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, f"expected {expected}, got {_got(value)}")
    return value


def _known_keys(table: dict, key: str, allowed: typing.Iterable[str], what: str = "key") -> None:
    allowed = list(allowed)
    for name in table:
        if name not in allowed:
            where = f"{key}.{name}" if key else name
            raise ConfigError(where, f"unknown {what}; expected one of: {', '.join(allowed)}")


def _one_source(table: dict, key: str, sources: typing.Iterable[str]) -> str:
    sources = list(sources)
    given = [name for name in sources if name in table]
    if len(given) != 1:
        found = f"got {' and '.join(given)}" if given else "got none"
        raise ConfigError(key, f"expected exactly one of {', '.join(sources)}; {found}")
    return given[0]


def _path(folder: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else folder / path


def _need_module(module: str, key: str, feature: str) -> None:
    """Raise the ImportError naming the extra when ``module`` is not installed (no import)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ValueError:  # a module set to None in sys.modules: import it to say so
        found = False
    if not found:
        require(module, feature=f"{key} ({feature})")


def _check_model(table: dict, here: bool) -> None:
    """The model's table, and its extractor's settings by the extractor's own rules.

    ``here``: the model runs on this machine, which must have its ``device``.
    """
    source = _one_source(table, "model", _MODELS)
    _known_keys(table, "model", [source, *_MODELS[source], *_EXTRACTOR])
    from failmodes.extractors.timm import TimmExtractor
    from failmodes.extractors.torch import TorchExtractor

    settings = {name: table[name] for name in _EXTRACTOR if name in table}
    plain = {name: value for name, value in settings.items() if not _is_spec(value)}
    if source == "timm":
        _text(table["timm"], "model.timm", "a timm model name")
        _need_module("timm", "model.timm", "TimmExtractor")
        options = {name: table[name] for name in _MODELS["timm"] if name in table}
        _check_arguments(TimmExtractor, {**options, **settings}, "model")
        extractor = TimmExtractor(table["timm"], **options, **plain)  # it only stores them
    else:
        factory = _import(table["factory"], "model.factory")
        _check_arguments(factory, _table(table.get("kwargs", {}), "model.kwargs"), "model.kwargs")
        _check_arguments(TorchExtractor, settings, "model")
        extractor = TorchExtractor(**plain)  # the settings alone: the model is made at run time
    try:
        extractor.check_params(here=here)
    except SettingError as err:
        key = "model.timm" if err.name == "model" else f"model.{err.name}"
        raise ConfigError(key, err.message) from None


def _check_datasets(table: dict, folder: Path, check_paths: bool) -> None:
    _known_keys(table, "datasets", [*_SETS, "extra"], what="dataset")
    for name in ("train", "debug", "test"):
        if name not in table:
            raise ConfigError(f"datasets.{name}", "missing: train, debug and test are needed")
    specs = {f"datasets.{name}": table[name] for name in _SETS if name in table}
    extra = _table(table.get("extra", {}), "datasets.extra")
    specs.update((f"datasets.extra.{name}", spec) for name, spec in extra.items())
    for key, spec in specs.items():
        _check_dataset(_table(spec, key), key, folder, check_paths)


def _check_dataset(spec: dict, key: str, folder: Path, check_paths: bool) -> None:
    source = _one_source(spec, key, _SOURCES)
    _known_keys(spec, key, [source, *_SOURCES[source], *_SUBSETS])
    for name, low in (("per_class", 1), ("skip", 0), ("take", 1)):
        if name in spec and not (_fits(spec[name], int) and spec[name] >= low):
            raise ConfigError(
                f"{key}.{name}", f"expected an integer >= {low}, got {_got(spec[name])}"
            )
    if "cache_key" in spec:
        _text(spec["cache_key"], f"{key}.cache_key", "a name (a string)")
    if source == "path":
        _check_folder(spec["path"], f"{key}.path", folder, check_paths)
    elif source == "hf":
        _check_hf(spec, key)
    else:
        factory = _import(spec["factory"], f"{key}.factory")
        _check_arguments(factory, _table(spec.get("kwargs", {}), f"{key}.kwargs"), f"{key}.kwargs")


def _check_folder(text: Any, key: str, folder: Path, check_paths: bool) -> None:
    _text(text, key, "the path of an ImageFolder (a folder of class folders)")
    _need_module("torchvision", key, "ImageFolder datasets")
    path = _path(folder, text)
    if check_paths and not path.is_dir():
        state = "is not a folder" if path.exists() else "does not exist"
        raise ConfigError(
            key, f"expected an ImageFolder (a folder of class folders); {path} {state}"
        )


def _check_hf(spec: dict, key: str) -> None:
    _text(spec["hf"], f"{key}.hf", "a Hugging Face dataset name or folder")
    if "split" not in spec:
        raise ConfigError(
            f"{key}.split", 'missing: a Hugging Face dataset needs its split ("train")'
        )
    for name in ("split", "config", "revision", "image", "label"):
        if name in spec:
            _text(spec[name], f"{key}.{name}")
    _table(spec.get("kwargs", {}), f"{key}.kwargs")
    _need_module("datasets", f"{key}.hf", "Hugging Face datasets")


def _check_component(value: Any, slot: str) -> None:
    spec = _component_spec(value, slot)
    target = _check_spec(spec, slot)
    interface = INTERFACES[slot]
    if isinstance(target, type) and not issubclass(target, interface):
        name = spec.get("class", spec.get("factory"))
        raise ConfigError(slot, f"{name} is not a {interface.__name__}")


def _component_spec(value: Any, slot: str) -> dict:
    """A component's table; a string is its class: ``proposer = "chatgpt"``."""
    return {"class": value} if isinstance(value, str) else _table(value, slot)


def _check_spec(spec: dict, key: str) -> Callable:
    """Check a table naming a callable (``class`` or ``factory``) and its arguments."""
    target = _target(spec, key)
    kwargs = {name: value for name, value in spec.items() if name not in ("class", "factory")}
    _check_arguments(target, kwargs, key)
    _check_params(target, kwargs, key)
    return target


def _check_params(target: Callable, kwargs: dict, key: str) -> None:
    """A class with a ``check_params()`` method is made and asked about its arguments.

    Its constructor only stores them (as every failmodes class's does), so this is the rule
    the object applies when it runs, checked now. A table within its arguments is an object
    made only at run time, so such a class is asked then.
    """
    if not (isinstance(target, type) and callable(getattr(target, "check_params", None))):
        return
    if any(_is_spec(value) for value in kwargs.values()):
        return
    try:
        target(**kwargs).check_params()
    except SettingError as err:
        raise ConfigError(f"{key}.{err.name}", err.message) from None
    except (TypeError, ValueError) as err:
        raise ConfigError(key, f"{_name(target)} refused its arguments: {err}") from None


def _target(spec: dict, key: str) -> Callable:
    which = _one_source(spec, key, ("class", "factory"))
    name = _text(spec[which], f"{key}.{which}", "the name of a class or function")
    if name not in SHORT_NAMES and ":" not in name and "." not in name:
        raise ConfigError(
            f"{key}.{which}",
            f"expected a short name ({', '.join(SHORT_NAMES)}), "
            f"'module:name' or 'package.module.Name', got {name!r}",
        )
    return _import(SHORT_NAMES.get(name, name), f"{key}.{which}")


def _check_debugger(table: dict) -> None:
    from failmodes.debugger import Debugger

    fields = {f.name: f for f in dataclasses.fields(Debugger) if f.name not in _NOT_SETTINGS}
    for name in table:
        if name not in fields:
            hint = f" ([{name}] is a table of its own)" if name in _NOT_SETTINGS else ""
            raise ConfigError(
                f"debugger.{name}",
                f"not a Debugger setting{hint}; expected one of: {', '.join(fields)}",
            )
    _check_types(Debugger, table, "debugger")
    settings = {name: f.default for name, f in fields.items()} | table
    try:
        check_settings(settings)
    except ValueError as err:
        raise ConfigError(*_named(str(err), fields)) from None


def _named(message: str, names: typing.Iterable[str]) -> tuple[str, str]:
    """``("debugger.k", "must be ...")`` from ``"k must be ..."``."""
    first, _, rest = message.partition(" ")
    return (f"debugger.{first}", rest) if first in names else ("debugger", message)


def _check_engine(value: Any) -> None:
    kind, settings = _engine_spec(value)
    _check_arguments(_engine_class(kind), settings, f"engine.{kind}")
    if kind == "ray":
        _need_module("ray", "engine", "RayEngine")


def _engine_spec(value: Any) -> tuple[str, dict]:
    if value in ("local", "ray"):
        return value, {}
    table = value if isinstance(value, dict) else None
    if table is None or len(table) != 1 or next(iter(table)) not in ("local", "ray"):
        raise ConfigError(
            "engine",
            'expected "local", "ray" or a table {ray = {address = "auto", ...}}, got '
            f"{_got(value)}",
        )
    kind = next(iter(table))
    return kind, _table(table[kind], f"engine.{kind}")


def _engine_class(kind: str) -> type:
    from failmodes.engines import LocalEngine, RayEngine

    return RayEngine if kind == "ray" else LocalEngine


def _class_names(value: Any, folder: Path, check_paths: bool = True) -> list[str] | None:
    """The names ``class_names`` gives (``None`` when left out, or in a file not checked)."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = _names_file(value, folder, check_paths)
        if value is None:
            return None
    elif isinstance(value, str):
        value = _names_from(value)
    if not isinstance(value, list):
        raise ConfigError(
            "class_names",
            "expected a list of names by label index, 'module:name' of one or "
            '{file = "names.txt"} (leave it out to read the train set\'s classes), got '
            f"{_got(value)}",
        )
    try:
        return check_class_names(value)
    except ValueError as err:
        raise ConfigError("class_names", str(err).removeprefix("class_names ")) from None


def _names_from(name: str) -> Any:
    """What ``class_names = "module:name"`` names: a list, or a function's list (called now)."""
    found = _import(name, "class_names")
    if callable(found):
        found = _call_for_names(found, name)
        if not isinstance(found, list | tuple):
            raise ConfigError(
                "class_names", f"{name}() returned {_got(found)}; expected a list of strings"
            )
    return list(found) if isinstance(found, tuple) else found


def _call_for_names(function: Callable, name: str) -> Any:
    try:
        needed = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read: call it and see
        needed = []
    required = [p.name for p in needed if p.default is p.empty and p.kind not in _VARIADIC]
    if required:
        raise ConfigError(
            "class_names",
            f"{name} takes arguments ({', '.join(required)}); expected a list of strings, or a "
            "function of no arguments that returns one",
        )
    try:
        return function()
    except Exception as err:  # the user's function: its failure, in one line
        raise ConfigError(
            "class_names",
            f"{name}() raised {type(err).__name__}: {err}; expected it to return a list of strings",
        ) from err


def _names_file(table: dict, folder: Path, check_paths: bool) -> list[str] | None:
    """The names in ``{file = "names.txt"}``, one a line; ``None`` for a missing file unchecked."""
    _known_keys(table, "class_names", ["file"])
    if "file" not in table:
        raise ConfigError("class_names.file", "missing: the path of a file of names, one a line")
    path = _path(folder, _text(table["file"], "class_names.file", "a path (a string)"))
    if not path.is_file():
        if not check_paths:
            return None
        raise ConfigError(
            "class_names.file",
            f"expected a file of names, one a line; {path} "
            f"{'is not a file' if path.exists() else 'does not exist'}",
        )
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- names, signatures and types -----------------------------------------------------------------


def _import(name: Any, key: str) -> Callable:
    """The object a ``"module:name"`` or ``"package.module.Name"`` string names."""
    text = _text(name, key, "'module:name' or 'package.module.Name'")
    module_name, colon, attribute = text.partition(":")
    if not colon:
        module_name, _, attribute = text.rpartition(".")
    if not module_name or not attribute:
        raise ConfigError(key, f"expected 'module:name' or 'package.module.Name', got {text!r}")
    if not all(part.isidentifier() for part in module_name.split(".")):
        raise ConfigError(
            key,
            f"expected an absolute 'module:attribute' (a module that `import` finds), got {text!r}",
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(key, f"cannot import {module_name!r} ({err})") from None
    except Exception as err:  # the module's own code failed: say so, in one line
        raise ConfigError(
            key, f"importing module {module_name!r} raised {type(err).__name__}: {err}"
        ) from err
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ConfigError(key, f"{module_name!r} has no {attribute!r}")
        found = getattr(found, part)
    return found


def _name(target: Any) -> str:
    return getattr(target, "__qualname__", None) or type(target).__name__


def _check_arguments(target: Callable, kwargs: dict, key: str) -> None:
    """Check ``kwargs`` against ``target``'s signature: names, required ones, types."""
    if not callable(target):
        raise ConfigError(key, f"{_name(target)} is not a class or function")
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = {n: p for n, p in parameters.items() if p.kind in kinds}
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        _known_keys(kwargs, key, named, what=f"argument of {_name(target)}")
    missing = [n for n, p in named.items() if p.default is p.empty and n not in kwargs]
    if missing:
        raise ConfigError(key, f"missing {', '.join(missing)}, needed by {_name(target)}")
    _check_types(target, kwargs, key)


def _check_types(target: Callable, kwargs: dict, key: str) -> None:
    hints = _hints(target)
    for name, value in kwargs.items():
        if _is_spec(value):
            _check_spec(value, f"{key}.{name}")
            continue
        hint = hints.get(name, Any)
        if not _fits(value, hint):
            raise ConfigError(f"{key}.{name}", f"expected {_expected(hint)}, got {_got(value)}")


def _hints(target: Callable) -> dict[str, Any]:
    """``target``'s parameters' types, each resolved alone.

    A type known only to a type checker (imported under ``TYPE_CHECKING``) is left out, and
    that parameter's values are not checked.
    """
    plain_class = isinstance(target, type) and not dataclasses.is_dataclass(target)
    function = target.__init__ if plain_class else target
    annotations = getattr(function, "__annotations__", None) or {}
    names = getattr(inspect.unwrap(function), "__globals__", None) or vars(
        sys.modules.get(getattr(function, "__module__", ""), typing)
    )
    hints = {}
    for name, annotation in annotations.items():
        holder = types.SimpleNamespace(__annotations__={name: annotation})
        try:
            hints.update(typing.get_type_hints(holder, globalns=names))
        except Exception:  # a name known only to a type checker
            continue
    return hints


def _is_spec(value: Any) -> bool:
    return isinstance(value, dict) and ("class" in value or "factory" in value)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a TOML value can be given where ``hint`` is expected (``True`` when unknown)."""
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is not None:
        return _fits_generic(value, origin, typing.get_args(hint))
    plain = {bool: (bool,), int: (int,), float: (int, float), str: (str,), Path: (str,)}
    if hint in plain:
        return isinstance(value, plain[hint]) and (hint is bool or not isinstance(value, bool))
    return isinstance(value, hint) if isinstance(hint, type) else True


def _fits_generic(value: Any, origin: Any, args: tuple) -> bool:
    if origin in _SEQUENCES:
        item = args[0] if args else Any
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin in _MAPPINGS:
        item = args[1] if len(args) == 2 else Any
        return isinstance(value, dict) and all(_fits(v, item) for v in value.values())
    if origin is abc.Callable:
        return False
    return isinstance(value, origin) if isinstance(origin, type) else True


def _expected(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_expected(h) for h in args if h is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is typing.Literal:
        return f"one of {', '.join(map(repr, args))}"
    if origin in _SEQUENCES:
        plural = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural[args[0]]}" if args and args[0] in plural else "a list"
    if origin in _MAPPINGS:
        return "a table"
    words = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        Path: "a path",
    }
    if hint in words:
        return words[hint]
    kind = getattr(origin or hint, "__name__", str(hint))
    return f"a {kind} (a table with class = or factory =)"


def _got(value: Any) -> str:
    kinds = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }
    kind = kinds.get(type(value), f"a {type(value).__name__}")
    shown = repr(value)
    return f"{kind} {shown if len(shown) <= 60 else shown[:57] + '...'}"


# -- building ------------------------------------------------------------------------------------


def _build(spec: dict, key: str) -> Any:
    """The object a ``{class = ..., <arguments>}`` table describes, its nested tables built."""
    target = _target(spec, key)
    kwargs = {
        name: _build(value, f"{key}.{name}") if _is_spec(value) else value
        for name, value in spec.items()
        if name not in ("class", "factory")
    }
    return _call(target, kwargs, key)


def _call(target: Callable, kwargs: dict, key: str) -> Any:
    try:
        return target(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(key, f"{_name(target)}(...) refused its arguments: {err}") from err


def _build_component(value: Any, slot: str) -> Any:
    component = _build(_component_spec(value, slot), slot)
    try:
        return check_setting(slot, component)
    except TypeError as err:
        raise ConfigError(slot, str(err).removeprefix(f"{slot} ")) from None


def _build_model(table: dict) -> Any:
    from torch import nn

    from failmodes.extractors.timm import TimmExtractor
    from failmodes.extractors.torch import TorchExtractor
    from failmodes.interfaces import FeatureExtractor

    settings = {
        name: _build(table[name], f"model.{name}") if _is_spec(table[name]) else table[name]
        for name in _EXTRACTOR
        if name in table
    }
    if "timm" in table:
        options = {
            "pretrained": table.get("pretrained", True),
            "model_kwargs": table.get("model_kwargs"),
        }
        return _call(TimmExtractor, {"model": table["timm"], **options, **settings}, "model")
    model = _build({"factory": table["factory"], **table.get("kwargs", {})}, "model.factory")
    if isinstance(model, FeatureExtractor):
        if settings:
            raise ConfigError(
                f"model.{next(iter(settings))}",
                f"the factory returned a {type(model).__name__}"
                " (a FeatureExtractor): give its settings to the factory, in model.kwargs",
            )
        return model
    if not isinstance(model, nn.Module):
        raise ConfigError(
            "model.factory",
            f"returned a {type(model).__name__}; expected a torch nn.Module or a FeatureExtractor",
        )
    timm_like = all(
        callable(getattr(model, name, None))
        for name in ("forward_features", "forward_head", "get_classifier")
    )
    return _call(
        TimmExtractor if timm_like else TorchExtractor, {"model": model, **settings}, "model"
    )


def _build_engine(value: Any) -> Any:
    kind, settings = _engine_spec(value)
    return _call(_engine_class(kind), settings, f"engine.{kind}")


def _build_dataset(spec: dict, key: str, folder: Path, seed: int) -> Any:
    if "path" in spec:
        data = _image_folder(_path(folder, spec["path"]), f"{key}.path")
    elif "hf" in spec:
        data = _hf_dataset(spec, key)
    else:
        data = _build({"factory": spec["factory"], **spec.get("kwargs", {})}, f"{key}.factory")
        if not (hasattr(data, "__len__") or isinstance(data, abc.Iterable)):
            raise ConfigError(
                f"{key}.factory",
                f"returned a {type(data).__name__}; expected a dataset of (image, label) pairs",
            )
    return _subset(data, spec, key, seed)


def _image_folder(path: Path, key: str) -> Any:
    datasets = require("torchvision.datasets", feature=f"{key} (ImageFolder datasets)")
    try:
        return datasets.ImageFolder(str(path))  # no transform: PIL images, as the steps read them
    except (FileNotFoundError, NotADirectoryError) as err:
        raise ConfigError(key, f"not an ImageFolder: {err}") from None


def _hf_dataset(spec: dict, key: str) -> Any:
    from failmodes.data import HFDataset

    datasets = require("datasets", feature=f"{key}.hf (Hugging Face datasets)")
    options = {"revision": spec["revision"]} if "revision" in spec else {}
    try:
        loaded = datasets.load_dataset(
            spec["hf"], spec.get("config"), split=spec["split"], **options, **spec.get("kwargs", {})
        )
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise ConfigError(f"{key}.hf", f"cannot load {spec['hf']!r} ({err})") from None
    data = HFDataset(loaded, image=spec.get("image", "image"), label=spec.get("label", "label"))
    for column in ("image", "label"):
        if getattr(data, column) not in loaded.column_names:
            raise ConfigError(
                f"{key}.{column}",
                f"no column {getattr(data, column)!r}; the columns are "
                f"{', '.join(loaded.column_names)}",
            )
    return data


def _subset(data: Any, spec: dict, key: str, seed: int) -> Any:
    """``data`` named by ``cache_key``, then ``per_class``, then shuffled, ``skip`` and ``take``."""
    from torch.utils.data import Subset

    from failmodes.data import labels_of, materialize

    if not any(name in spec for name in _SUBSETS):
        return data
    data = materialize(data)
    if "cache_key" in spec:
        data = Subset(data, list(range(len(data))))
        data.cache_key = spec["cache_key"]
    indices = np.arange(len(data))
    if "per_class" in spec:
        indices = _per_class(labels_of(data), spec["per_class"], seed)
    if "skip" in spec or "take" in spec:
        shuffled = indices[np.random.default_rng(seed).permutation(len(indices))]
        skip = spec.get("skip", 0)
        indices = np.sort(shuffled[skip : skip + spec["take"] if "take" in spec else None])
    if len(indices) == 0:
        raise ConfigError(
            key, f"no items are left after {', '.join(n for n in spec if n in _SUBSETS)}"
        )
    return Subset(data, indices.tolist()) if len(indices) < len(data) else data


def _per_class(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def _classes_of(data: Any) -> list[str] | None:
    """The class names a dataset carries (``classes``), looking through subsets."""
    while hasattr(data, "dataset") and hasattr(data, "indices"):
        data = data.dataset
    names = getattr(data, "classes", None)
    return list(names) if isinstance(names, list | tuple) else None


# -- the run -----------------------------------------------------------------------------------


@dataclass
class BuiltRun:
    """What a config file describes, built: the Debugger and its datasets.

    Attributes:
        debugger: the [`Debugger`][failmodes.debugger.Debugger], with its engine.
        train: the data the head is refit on.
        debug: the debug set.
        test: the test set.
        guard: the guard set, or ``None``.
        extra: ``{name: data}``, the extra sets.
        seed: the run's seed.
    """

    debugger: Debugger
    train: Any
    debug: Any
    test: Any
    guard: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def run(self) -> RunResult:
        """[`Debugger.run`][failmodes.debugger.Debugger.run] on the datasets.

        Returns:
            The [`RunResult`][failmodes.results.RunResult].
        """
        return self.debugger.run(
            self.train,
            self.debug,
            self.test,
            seed=self.seed,
            guard=self.guard,
            extra=self.extra or None,
        )


@dataclass
class RunConfig:
    """A checked config file, made by [`load_config`][failmodes.config.load_config].

    Attributes:
        path: the file, absolute; relative paths in it are read from its folder.
        data: the file's tables, as read.
        class_names: the class names the file gives (``class_names``), or ``None`` to read them
            from the train set.
    """

    path: Path
    data: dict[str, Any]
    class_names: list[str] | None = None

    @property
    def seed(self) -> int:
        """The run's seed (``seed``, default 0)."""
        return int(self.data.get("seed", 0))

    @property
    def engine(self) -> str:
        """The engine the file asks for, in words (``"local"``, ``"ray"``)."""
        return _engine_spec(self.data.get("engine", "local"))[0]

    def build(self, *, cache: Any = None) -> BuiltRun:
        """Make the extractor, components, engine and datasets; the model's factory runs here.

        Args:
            cache: the Debugger's ``cache``, in place of the file's ``debugger.cache``
                (a folder, ``False`` for none); ``None`` keeps the file's.

        Returns:
            A [`BuiltRun`][failmodes.config.BuiltRun].

        Raises:
            ConfigError: a factory's result is not what its key needs, a constructor refused
                its arguments, a dataset cannot be read, or no class names can be found.
        """
        from failmodes.debugger import Debugger

        stage("building the model, the components and the datasets from %s", self.path.name)
        folder, seed = self.path.parent, self.seed
        sets = self.data["datasets"]
        built = {
            n: _build_dataset(sets[n], f"datasets.{n}", folder, seed) for n in _SETS if n in sets
        }
        extra = {
            name: _build_dataset(spec, f"datasets.extra.{name}", folder, seed)
            for name, spec in sets.get("extra", {}).items()
        }
        names = (
            self.class_names
            or _class_names(self.data.get("class_names"), self.path.parent)
            or _classes_of(built["train"])
        )
        if names is None:
            raise ConfigError(
                "class_names",
                "missing: the train set has no classes to read them from; give "
                "class_names = [...] or 'module:name'",
            )
        settings = self._settings(cache)
        components = {
            slot: _build_component(self.data[slot], slot)
            for slot in COMPONENTS
            if slot in self.data
        }
        engine = _build_engine(self.data.get("engine", "local"))
        model = _build_model(self.data["model"])
        debugger = Debugger(
            extractor=model, class_names=names, engine=engine, **components, **settings
        )
        return BuiltRun(
            debugger, built["train"], built["debug"], built["test"], built.get("guard"), extra, seed
        )

    def _settings(self, cache: Any) -> dict[str, Any]:
        settings = dict(self.data.get("debugger", {}))
        own = settings.get("cache")
        if isinstance(own, str) and "://" not in own:
            settings["cache"] = _path(self.path.parent, own)
        if cache is not None:
            settings["cache"] = cache
        return settings

    def check_runnable(self) -> None:
        """Check that the file gives every component a run needs, before anything is built.

        A file may leave components out to [`build`][failmodes.config.RunConfig.build] a
        Debugger for some steps alone; [`run`][run] (and ``failmodes run``, ``--check`` too)
        needs a proposer, a captioner and a generator.

        Raises:
            ConfigError: naming the first table a run needs that the file does not have.
        """
        for needed in RUN_NEEDS:
            if needed not in self.data:
                raise ConfigError(needed, f"missing: a run needs [{needed}]")

    def run(self, *, cache: Any = None) -> RunResult:
        """Build and run; the result's ``config`` also names this file (``config_file``).

        Args:
            cache: as for [`build`][failmodes.config.RunConfig.build].

        Returns:
            The [`RunResult`][failmodes.results.RunResult].

        Raises:
            ConfigError: a component a run needs is missing
                ([`check_runnable`][check_runnable]), or as
                [`build`][failmodes.config.RunConfig.build] does.
        """
        self.check_runnable()
        result = self.build(cache=cache).run()
        result.config["config_file"] = str(self.path)
        return result
