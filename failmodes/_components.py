"""The Debugger's components as the steps get them, and how a run records its ``config``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failmodes._urls import url_credentials
from failmodes.cache import Cache
from failmodes.ranking import Ranking
from failmodes.settings import GRIDS

__all__ = ["check_known", "checked_component", "described", "run_config"]


def checked_component(name: str, component: Any) -> Any:
    """The component of slot ``name``, checked when the Debugger was made.

    For ``head_trainer``, ``None`` is the default trainer.

    Raises:
        ValueError: when the component is needed and missing.
    """
    if name == "head_trainer" and component is None:
        from failmodes.heads.linear import LinearHeadTrainer

        return LinearHeadTrainer()
    if component is None:
        raise ValueError(f"{name} is needed for this step; pass {name}= to Debugger")
    return component


def described(value: Any) -> Any:
    """A setting as JSON: simple values as they are, components by class, a cache by location.

    A [`Cache`][failmodes.cache.Cache] is recorded by its
    [`location`][failmodes.cache.Cache.location], which shows a URL's password as ``***``.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [described(v) for v in value]
    if isinstance(value, Ranking):
        return value.name
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
        chosen: the chosen value of each grid setting and of ``lam_real`` (when the run weighs
            real images; other keys are ignored), and ``kept_original``, when a guard refused
            every candidate.
        seed: the run's seed.
        prepared: the run's [`PreparedRun`][failmodes.results.PreparedRun], which says whether
            a guard was given (``guard``) and names the extra sets (``extra``); ``None`` for
            neither key.

    Returns:
        JSON-ready settings; components are named by their class (the head trainer in use).
    """
    from failmodes import __version__

    settings = {
        name: described(_recorded(name, value))
        for name, value in components.items()
        if name not in GRIDS and name != "class_names"
    }
    picked = {  # a grid the candidates did not vary is its one value (none: None)
        name: chosen[name] if name in chosen else (values[0] if len(values) == 1 else None)
        for name, values in grids.items()
    }
    grid_keys = {f"{name}_grid": values for name, values in grids.items()}
    config = {**settings, **picked, **grid_keys, "seed": seed, "version": __version__}
    if prepared is not None:
        config.update(
            guard=prepared.guard is not None,
            guard_source=prepared.guard_source,
            guard_limit=max(components["guard_tolerance"], prepared.guard_resolution),
            extra=list(prepared.extra),
            kept_original=bool(chosen.get("kept_original", False)),
        )
    return config


def _recorded(name: str, value: Any) -> Any:
    """A setting as a run records it: the head trainer in use, a cache URL's password hidden."""
    if name == "head_trainer":
        return checked_component(name, value)
    if name == "cache" and isinstance(value, str):
        return url_credentials(value)[0]
    return value


def check_known(changes: dict[str, Any], known: dict[str, Any], caller: str) -> None:
    """Raise a TypeError naming the arguments of ``changes`` that are not in ``known``."""
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise TypeError(
            f"{caller} got unknown argument(s) {unknown}; expected Debugger's arguments: "
            f"{sorted(known)}"
        )
