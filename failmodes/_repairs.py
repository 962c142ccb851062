"""The repairs a run makes: the targeted one, chosen on the validation part, and the baselines.

Both use only a [`Debugger`][failmodes.debugger.Debugger]'s public steps (``requests``,
``generate``, ``select``); [`Debugger.run`][failmodes.debugger.Debugger.run] calls them.
"""

from __future__ import annotations

from typing import Any

from failmodes import steps
from failmodes.progress import stage
from failmodes.results import FailureModes, GeneratedSet, PreparedRun

__all__ = ["baseline_repairs", "targeted_repair"]


def targeted_repair(
    dbg: Any, prep: PreparedRun, modes: FailureModes, proposals: dict, grids: dict, seed: int
) -> tuple[GeneratedSet, steps.Selection]:
    """One set at the largest ``k`` and images per mode; every candidate a subset of it.

    With ``dbg.allocation == "excess"``, each class's images are shared among its modes in
    proportion to their excess failures.

    Args:
        dbg: the Debugger whose steps run.
        prep: from [`Debugger.prepare`][failmodes.debugger.Debugger.prepare].
        modes: the captions; its ``modes`` are set to the chosen ``k``.
        proposals: every class's proposed values (the filter's candidates).
        grids: the candidates of ``k``, ``images_per_mode`` and ``lam``.
        seed: the run's seed.

    Returns:
        The chosen candidate's images and the [`Selection`][failmodes.steps.Selection].
    """
    ranked = modes.top_k(max(grids["k"]))
    weights = modes.excess() if dbg.allocation == "excess" else None
    shape = {key: grids[key] for key in ("k", "images_per_mode")}
    most = steps.targeted_counts(ranked, weights=weights, **shape)
    counts = {(c, v): most[c, v] for c in modes.class_names for v in ranked.get(c, [])
              if (c, v) in most}  # fmt: skip
    targeted = dbg.generate(dbg.requests(counts, seed=seed), candidates=proposals)
    candidates = steps.targeted_candidates(targeted, ranked, weights=weights, **grids)
    choice = dbg.select(prep, targeted, candidates, seed=seed)
    chosen = {key: choice.settings[key] for key in ("k", "images_per_mode")}
    modes.modes = modes.top_k(chosen["k"])
    keep = next(c.keep for c in candidates if c.settings == chosen)
    return targeted.select(keep), choice


def baseline_repairs(
    dbg: Any, prep: PreparedRun, modes: FailureModes, proposals: dict,
    choice: steps.Selection, seed: int,
) -> tuple[dict[str, GeneratedSet], dict[str, steps.Selection]]:  # fmt: skip
    """The random and uniform baselines: as many images per class, ``lam`` chosen alike.

    Args:
        dbg: the Debugger whose steps run.
        prep: from [`Debugger.prepare`][failmodes.debugger.Debugger.prepare].
        modes: the chosen failure modes.
        proposals: every class's proposed values.
        choice: the targeted repair's selection (its ``k`` and images per mode are matched).
        seed: the run's seed.

    Returns:
        ``({method: images}, {method: Selection})``.
    """
    settings = {key: choice.settings[key] for key in ("k", "images_per_mode")}
    requests = steps.baseline_requests(
        modes, proposals, images_per_mode=settings["images_per_mode"], seed=seed
    )
    sets, fits = {}, {}
    for method, asked in requests.items():
        stage("baseline: %s", method)
        sets[method] = made = dbg.generate(asked, candidates=proposals)
        lams = steps.lam_candidates(len(made), dbg.grids()["lam"], settings)
        fits[method] = dbg.select(prep, made, lams, seed=seed)
    return sets, fits
