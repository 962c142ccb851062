"""The Debugger's settings: each one's rule, written once in one table.

[`RULES`][RULES] holds, for every constructor argument of
[`Debugger`][failmodes.debugger.Debugger], what a valid value is;
[`check_settings`][check_settings] checks them all (and the few rules that tie two settings
together) when a Debugger is made, and `failmodes run --check` checks a config file with it.
A step that takes one of these settings as an argument checks it with
[`check_setting`][check_setting], so the rule and its message are the same everywhere
(scikit-learn's ``_parameter_constraints``).

Examples:
    >>> from failmodes.settings import check_setting
    >>> check_setting("k", [5, 3, 3])
    [3, 5]
    >>> check_setting("tolerance", 2)
    Traceback (most recent call last):
        ...
    failmodes.errors.SettingError: tolerance must be a number >= 0 and <= 1, got 2
"""

from __future__ import annotations

import abc
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from failmodes._checks import check_class_names, check_grid, check_instance, check_number
from failmodes.attributes import get_attribute, with_article
from failmodes.cache import Cache
from failmodes.engines import Engine
from failmodes.interfaces import (
    BackgroundProposer,
    EditingGenerator,
    FailureCaptioner,
    FeatureExtractor,
    HeadTrainer,
    ImageFilter,
    ImageGenerator,
)
from failmodes.methods import REAL_SETS, SCORES, SOURCE_SETS
from failmodes.ranking import ALLOCATIONS, DEFAULT_RANK, get_ranking
from failmodes.shards import SHARD_DTYPES

__all__ = [
    "GRIDS",
    "INTERFACES",
    "PAPER",
    "RULES",
    "Rule",
    "check_setting",
    "check_settings",
    "keyword_problem",
    "takes_keyword",
]


class Rule(abc.ABC):
    """What a valid value of one setting is.

    [`RULES`][RULES] holds one per setting: a number in a range, a grid of candidates, one of a
    list of names, a flag, a component of an interface.
    """

    @abc.abstractmethod
    def check(self, value: Any, name: str) -> Any:
        """``value`` if valid (a grid as a sorted list), else a ValueError or TypeError.

        Args:
            value: the setting's value.
            name: the setting's name, for the message.

        Returns:
            The value, normalised.
        """


@dataclass(frozen=True)
class _Number(Rule):
    """A number in a range (see [`check_number`][failmodes._checks.check_number])."""

    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None
    integer: bool = False
    optional: bool = False

    def check(self, value: Any, name: str) -> Any:
        """The number, or a ValueError naming ``name`` and the range."""
        if value is None and self.optional:
            return None
        return check_number(
            value,
            name,
            minimum=self.minimum,
            maximum=self.maximum,
            below=self.below,
            integer=self.integer,
        )


@dataclass(frozen=True)
class _Grid(Rule):
    """One value or a list of candidates chosen on the validation part: finite numbers."""

    minimum: float
    integer: bool = False
    maximum: float | None = None

    def check(self, value: Any, name: str) -> list:
        """The candidates as a sorted list without repeats."""
        return check_grid(value, name, **self._bounds())

    def check_one(self, value: Any, name: str) -> Any:
        """One candidate (a step's single value), as an int or a float."""
        number = check_number(value, name, **self._bounds())
        return number if self.integer else float(number)

    def _bounds(self) -> dict[str, Any]:
        """A candidate is finite (an infinite one cannot be fitted nor written to JSON)."""
        return {
            "minimum": self.minimum,
            "maximum": self.maximum,
            "integer": self.integer,
            "finite": True,
        }


@dataclass(frozen=True)
class _Choice(Rule):
    """One of a list of names (or ``None`` when optional); ``choices`` gives the list."""

    choices: Callable[[], Any]
    optional: bool = False

    def check(self, value: Any, name: str) -> Any:
        """The name, or a ValueError listing the choices (``False`` is ``None`` when optional)."""
        if (value is None or value is False) and self.optional:
            return None
        choices = list(self.choices()) + ([None] if self.optional else [])
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        return value


@dataclass(frozen=True)
class _Flag(Rule):
    """``True`` or ``False`` (or ``None`` when optional)."""

    optional: bool = False

    def check(self, value: Any, name: str) -> Any:
        """The flag, or a TypeError."""
        if value is None and self.optional:
            return None
        kinds = "True, False or None" if self.optional else "True or False"
        check_instance(value, name, bool, kinds)
        return value


@dataclass(frozen=True)
class _Component(Rule):
    """``None`` or an object implementing ``interface`` whose methods take the steps' keywords."""

    interface: type

    def check(self, value: Any, name: str) -> Any:
        """The component, or a TypeError naming what is wrong with it."""
        if value is None:
            return None
        kind = self.interface
        check_instance(value, name, kind, with_article(kind.__name__))
        problem = keyword_problem(value, kind)
        if problem:
            raise TypeError(f"{name}: {problem}")
        return value


def keyword_problem(component: Any, kind: type) -> str | None:
    """Why a method of ``component`` cannot be called as the steps call ``kind``'s, or ``None``.

    The steps pass every keyword-only argument of an interface's method, so a component that
    leaves one out (``generate(self, requests)``) would fail at its first call, after the work
    before it; this names the method, the keywords and the signature to write.

    Args:
        component: the user's component.
        kind: the interface it implements.

    Returns:
        The problem in words, or ``None`` when its methods take what the steps pass.
    """
    optional = set(getattr(kind, "optional_keywords", ()))
    for method in sorted(getattr(kind, "__abstractmethods__", ())):
        declared, given = getattr(kind, method, None), getattr(type(component), method, None)
        if not callable(declared) or not callable(given):
            continue  # a property (an extractor's head)
        try:
            wanted, have = inspect.signature(declared), inspect.signature(given).parameters
        except (TypeError, ValueError):  # a builtin or a wrapper without a signature
            continue
        if any(p.kind is p.VAR_KEYWORD for p in have.values()):
            continue
        missing = [
            p.name
            for p in wanted.parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in have and p.name not in optional
        ]
        if missing:
            return (
                f"{type(component).__name__}.{method} does not take {', '.join(missing)}, which "
                f"the steps pass: write it as {method}{_plain(wanted)}; it may ignore what it "
                "does not need"
            )
    return None


def takes_keyword(method: Callable[..., Any], name: str) -> bool:
    """Whether ``method`` takes the keyword argument ``name`` (or any keyword).

    Args:
        method: a component's method, e.g. ``trainer.fit``.
        name: the keyword.

    Returns:
        ``True`` when a call may pass ``name=...``.
    """
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):  # no signature to read: assume it does
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _plain(signature: inspect.Signature) -> str:
    """A signature without ``self`` and annotations: ``(requests, *, progress=None)``."""
    params = [p.replace(annotation=p.empty) for n, p in signature.parameters.items() if n != "self"]
    return str(signature.replace(parameters=params, return_annotation=signature.empty))


class _Custom(Rule):
    """A rule written as a function ``(value, name) -> value``."""

    def __init__(self, check: Callable[[Any, str], Any], text: str):
        self._check, self.text = check, text

    def check(self, value: Any, name: str) -> Any:
        """``value`` as the function returns it."""
        return self._check(value, name)

    def __repr__(self) -> str:
        return f"Rule({self.text})"


def _rank(value: Any, name: str) -> Any:
    get_ranking(value)  # a ValueError naming the registered rankings
    return value


def _cache(value: Any, name: str) -> Any:
    if value is None or isinstance(value, bool | str | os.PathLike | Cache):
        return value
    raise TypeError(
        f"{name} must be True, False, a folder, a URL or a Cache, got {type(value).__name__}"
    )


def _attribute(value: Any, name: str) -> Any:
    get_attribute(value)
    return value


def _class_names(value: Any, name: str) -> list[str]:
    return check_class_names(value)


def _engine(value: Any, name: str) -> Any:
    if value is not None:
        check_instance(value, name, Engine, "an Engine (LocalEngine, RayEngine) or None")
    return value


MAX_WEIGHT = 10**6
"""The largest weight of an extra set's loss: beyond it the training data weighs nothing and
the solver's sums overflow."""

INTERFACES: dict[str, type] = {
    "extractor": FeatureExtractor,
    "proposer": BackgroundProposer,
    "captioner": FailureCaptioner,
    "generator": ImageGenerator,
    "head_trainer": HeadTrainer,
    "image_filter": ImageFilter,
}
"""The interface each component must implement."""

GRIDS: dict[str, Any] = {
    "k": _Grid(minimum=1, integer=True),
    "lam": _Grid(minimum=0, maximum=MAX_WEIGHT),
    "images_per_mode": _Grid(minimum=1, integer=True),
    "uniform_prior": _Grid(minimum=0),
    "lam_real": _Grid(minimum=0, maximum=MAX_WEIGHT),
}
"""The settings given as one value or a list of candidates."""

RULES: dict[str, Rule] = {
    **{name: _Component(interface) for name, interface in INTERFACES.items()},
    "class_names": _Custom(
        _class_names, "distinct non-empty names, unpadded, distinct when lower-cased"
    ),
    "attribute": _Custom(_attribute, "a non-empty name"),
    **GRIDS,
    "validation_fraction": _Number(minimum=0, below=1),
    "tolerance": _Number(minimum=0, maximum=1),
    "guard_tolerance": _Number(minimum=0, maximum=1),
    "guard_fraction": _Number(minimum=0, below=1),
    "rank": _Custom(_rank, "a registered ranking or a Ranking"),
    "real": _Choice(lambda: REAL_SETS, optional=True),
    "sources": _Choice(lambda: SOURCE_SETS, optional=True),
    "significant": _Flag(),
    "allocation": _Choice(lambda: ALLOCATIONS),
    "select_by": _Choice(lambda: SCORES),
    "baselines": _Flag(),
    "filter_rounds": _Number(minimum=0, integer=True),
    "cache": _Custom(_cache, "True, False, a folder, a URL or a Cache"),
    "checkpoint_every": _Number(minimum=1, integer=True),
    "train_shards": _Flag(),
    "shard_dtype": _Choice(lambda: SHARD_DTYPES),
    "examples_per_mode": _Number(minimum=0, integer=True),
    "batch_size": _Number(minimum=1, integer=True, optional=True),
    "progress": _Flag(optional=True),
    "engine": _Custom(_engine, "an Engine or None"),
}
"""Every Debugger setting's rule, by name."""


PAPER: dict[str, Any] = {
    "real": None,
    "uniform_prior": 0.0,
    "guard_fraction": 0.0,
    "select_by": "accuracy",
}
"""The settings of the paper's repair: generated images only (no rung of the debug set's own
images), images on the modes alone, no guard held out of the training data, candidates chosen
by their accuracy on the validation part's failures.
``Debugger(**components, **PAPER)`` (``failmodes demo --paper``) gives the figures failmodes gave
before the repair ladder."""


def check_setting(name: str, value: Any) -> Any:
    """``value`` checked by the rule of setting ``name``.

    Args:
        name: a key of [`RULES`][RULES].
        value: its value.

    Returns:
        The value, normalised (a grid as a sorted list without repeats).

    Raises:
        ValueError, TypeError: naming the setting and what was expected.
    """
    return RULES[name].check(value, name)


def check_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Each setting given checked by its rule, then the rules between settings.

    Args:
        settings: ``{name: value}``, keys of [`RULES`][RULES] (a Debugger's ``components``, or
            the settings of a config file); a rule between settings runs when all of its
            settings are given.

    Returns:
        The settings, normalised.

    Raises:
        ValueError, TypeError: naming the first setting that holds an invalid value.
        KeyError: a name that is not a setting.
    """
    checked = {name: RULES[name].check(value, name) for name, value in settings.items()}
    made = getattr(checked.get("generator"), "attribute", None)
    if isinstance(made, str) and made != checked.get("attribute", made):
        raise ValueError(
            f"attribute is {checked['attribute']!r} but the generator "
            f"({type(checked['generator']).__name__}) makes only {made!r} values: pass "
            f"attribute={made!r} or another generator"
        )
    editor = isinstance(checked.get("generator"), EditingGenerator)
    if editor and "sources" in checked and checked["sources"] is None:
        raise ValueError(
            f"the generator ({type(checked['generator']).__name__}) edits real images, but "
            f"sources is None: pass sources= one of {list(SOURCE_SETS)}"
        )
    if checked.get("allocation") == "excess" and not (
        get_ranking(checked.get("rank", DEFAULT_RANK)).needs_successes
        or checked.get("significant", False)
    ):
        raise ValueError(
            'allocation="excess" needs captioned successes: use it with a rank that captions '
            'them (rank="excess") or significant=True'
        )
    return checked
