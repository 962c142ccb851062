"""The Debugger's components and settings, and how a run records them in its ``config``.

The interface each component implements; the settings given as grids of candidates.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from failmodes._checks import check_instance, check_number
from failmodes.attributes import with_article
from failmodes.cache import Cache
from failmodes.interfaces import (
    BackgroundProposer,
    FailureCaptioner,
    FeatureExtractor,
    HeadTrainer,
    ImageFilter,
    ImageGenerator,
)
from failmodes.ranking import ALLOCATIONS, RANKS
from failmodes.shards import SHARD_DTYPES

__all__ = [
    "GRIDS",
    "INTERFACES",
    "check_known",
    "check_settings",
    "checked_component",
    "described",
    "keyword_problem",
    "run_config",
]

INTERFACES: dict[str, type] = {
    "extractor": FeatureExtractor,
    "proposer": BackgroundProposer,
    "captioner": FailureCaptioner,
    "generator": ImageGenerator,
    "head_trainer": HeadTrainer,
    "image_filter": ImageFilter,
}
"""The interface each component must implement."""

GRIDS = {"k": (1, True), "lam": (0, False), "images_per_mode": (1, True)}
"""Settings given as one value or a list of candidates: ``(minimum, integer)`` of each."""


def checked_component(name: str, component: Any) -> Any:
    """The component of slot ``name``; the default head trainer for ``None``.

    Raises:
        ValueError: when the component is needed and missing.
        TypeError: when it does not implement its interface.
    """
    if name == "head_trainer" and component is None:
        from failmodes.heads.linear import LinearHeadTrainer

        return LinearHeadTrainer()
    if component is None:
        raise ValueError(f"{name} is needed for this step; pass {name}= to Debugger")
    kind = INTERFACES[name]
    check_instance(component, name, kind, with_article(kind.__name__))
    problem = keyword_problem(component, kind)
    if problem:
        raise TypeError(f"{name}: {problem}")
    return component


def keyword_problem(component: Any, kind: type) -> str | None:
    """Why a method of ``component`` cannot be called as the steps call ``kind``'s, or ``None``.

    The steps pass every keyword-only argument of an interface's method, so a component that
    leaves one out (``generate(self, requests)``) would fail at its first call, after the work
    before it; this names the method, the keywords and the signature to write.
    """
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
        missing = [p.name for p in wanted.parameters.values()
                   if p.kind is p.KEYWORD_ONLY and p.name not in have]  # fmt: skip
        if missing:
            return (
                f"{type(component).__name__}.{method} does not take {', '.join(missing)}, which "
                f"the steps pass: write it as {method}{_plain(wanted)}; it may ignore what it "
                "does not need"
            )
    return None


def _plain(signature: inspect.Signature) -> str:
    """A signature without ``self`` and annotations: ``(requests, *, progress=None)``."""
    params = [p.replace(annotation=p.empty) for n, p in signature.parameters.items() if n != "self"]
    return str(signature.replace(parameters=params, return_annotation=signature.empty))


def described(value: Any) -> Any:
    """A setting as JSON: simple values as they are, components by class, a cache by path."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [described(v) for v in value]
    if isinstance(value, Cache | Path):
        return value.location if isinstance(value, Cache) else str(value)
    return f"{type(value).__module__}.{type(value).__qualname__}"


def run_config(
    components: dict[str, Any],
    grids: dict[str, list],
    chosen: dict[str, Any],
    seed: int,
    prepared: Any = None,
) -> dict[str, Any]:
    """A run's ``config``: the chosen settings, the grids, every other setting, seed, version.

    Args:
        components: the Debugger's constructor arguments.
        grids: the candidates of each grid setting.
        chosen: the chosen value of each grid setting (other keys are ignored) and
            ``kept_original``, when a guard refused every candidate.
        seed: the run's seed.
        prepared: the run's [`PreparedRun`][failmodes.results.PreparedRun], which says whether
            a guard was given (``guard``) and names the extra sets (``extra``); ``None`` for
            neither key.

    Returns:
        JSON-ready settings; components are named by their class (the head trainer in use).
    """
    from failmodes import __version__

    settings = {
        name: described(checked_component(name, value) if name == "head_trainer" else value)
        for name, value in components.items()
        if name not in GRIDS and name != "class_names"
    }
    picked = {name: chosen[name] for name in GRIDS}
    grid_keys = {f"{name}_grid": values for name, values in grids.items()}
    config = {**settings, **picked, **grid_keys, "seed": seed, "version": __version__}
    if prepared is not None:
        config.update(
            guard=prepared.guard is not None,
            extra=list(prepared.extra),
            kept_original=bool(chosen.get("kept_original", False)),
        )
    return config


def check_settings(settings: dict[str, Any]) -> None:
    """The Debugger's plain settings checked before any work: ranges, choices, NaN refused.

    Args:
        settings: the Debugger's constructor arguments.

    Raises:
        ValueError: naming the first setting that holds an invalid value.
    """
    for name in ("tolerance", "guard_tolerance"):
        check_number(settings[name], name, minimum=0, maximum=1)
    check_number(settings["validation_fraction"], "validation_fraction", minimum=0, below=1)
    for name, low in (("filter_rounds", 0), ("checkpoint_every", 1), ("examples_per_mode", 0)):
        check_number(settings[name], name, minimum=low, integer=True)
    if settings["batch_size"] is not None:
        check_number(settings["batch_size"], "batch_size", minimum=1, integer=True)
    check_instance(settings["train_shards"], "train_shards", bool, "True or False")
    choices_of = {"rank": RANKS, "allocation": ALLOCATIONS, "shard_dtype": SHARD_DTYPES}
    for name, choices in choices_of.items():
        if settings[name] not in choices:
            raise ValueError(f"{name} must be one of {list(choices)}, got {settings[name]!r}")
    made = getattr(settings.get("generator"), "attribute", None)
    if isinstance(made, str) and made != settings["attribute"]:
        raise ValueError(
            f"attribute is {settings['attribute']!r} but the generator "
            f"({type(settings['generator']).__name__}) makes only {made!r} values: pass "
            f"attribute={made!r} or another generator"
        )
    if (
        settings["allocation"] == "excess"
        and settings["rank"] == "count"
        and not settings["significant"]
    ):
        raise ValueError(
            'allocation="excess" needs captioned successes: use it with rank="excess" or '
            "significant=True"
        )


def check_known(changes: dict[str, Any], known: dict[str, Any], caller: str) -> None:
    """Raise a TypeError naming the arguments of ``changes`` that are not in ``known``."""
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise TypeError(
            f"{caller} got unknown argument(s) {unknown}; expected Debugger's arguments: "
            f"{sorted(known)}"
        )
