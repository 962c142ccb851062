"""Step 7, selection: candidates fitted and chosen on the validation part; the baselines.

One targeted set is generated at the largest ``k`` and images per mode; every candidate
``(k, images per mode, lam)`` is a subset of it (the top-``k`` modes, the first ``n`` images of
each) fitted with its ``lam``. The pick maximises accuracy on the validation part's failures
among the candidates that keep the validation part's overall accuracy within ``tolerance`` of
the original head's, and never looks at ``debug_heldout`` or test.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from failmodes._checks import check_number
from failmodes.cache import Cache
from failmodes.interfaces import GenerationRequest, HeadTrainer
from failmodes.ranking import mode_counts
from failmodes.results import FailureModes, Features, GeneratedSet, PreparedRun
from failmodes.steps._common import derive_seed
from failmodes.steps.evaluation import evaluate
from failmodes.steps.generation import make_requests
from failmodes.steps.repair import fit_head

__all__ = [
    "Candidate",
    "Selection",
    "baseline_requests",
    "lam_candidates",
    "select_head",
    "selection_table",
    "targeted_candidates",
    "targeted_counts",
]


@dataclass(frozen=True)
class Candidate:
    """One setting to try: which generated images to use, and with what ``lam``.

    Attributes:
        settings: what the candidate stands for, e.g. ``{"k": 3, "images_per_mode": 20}``
            (the selection table's columns).
        keep: one boolean per generated image: the images this candidate uses.
        lam: the weight of their loss.
    """

    settings: dict[str, Any]
    keep: np.ndarray
    lam: float


@dataclass
class Selection:
    """The chosen candidate and the whole search.

    Attributes:
        settings: the chosen candidate's settings and ``lam``; with ``kept_original`` true when
            a guard refused every candidate (the head is then the original one).
        head: its fitted head.
        table: one row per candidate: its settings, ``lam``, ``val_acc`` (the validation
            part's accuracy), ``val_failure_acc`` (accuracy on its failures), ``guard_acc``
            (with a guard) and ``eligible``.
    """

    settings: dict[str, Any]
    head: torch.nn.Linear
    table: pd.DataFrame


def targeted_candidates(
    generated: GeneratedSet,
    ranked: Mapping[str, Sequence[str]],
    *,
    k: Sequence[int],
    images_per_mode: Sequence[int],
    lam: Sequence[float],
    weights: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Candidate]:
    """Every ``(k, images per mode, lam)`` as a subset of one set made at the largest of each.

    Args:
        generated: images for the top ``max(k)`` modes of each class, as many per mode as the
            largest candidate asks for (see [`targeted_counts`][targeted_counts]).
        ranked: ``{class_name: [value, ...]}``, each class's modes, best first.
        k: candidate numbers of modes per class.
        images_per_mode: candidate numbers of images per mode (on average, with ``weights``).
        lam: candidate weights.
        weights: share each class's images among its modes in proportion to these (see
            [`mode_counts`][failmodes.ranking.mode_counts]); ``None``: evenly.

    Returns:
        One [`Candidate`][Candidate] per combination, ``k`` varying slowest.
    """
    offset = np.zeros(len(generated), dtype=np.int64)  # index of each image in its request
    for j in range(len(generated.requests)):
        where = generated.request_index == j
        offset[where] = np.arange(where.sum())
    modes = [(r.class_name, r.value) for r in generated.requests]
    out = []
    for kk, n in itertools.product(k, images_per_mode):
        counts = mode_counts(ranked, k=kk, images_per_mode=n, weights=weights)
        wanted = np.asarray([counts.get(mode, 0) for mode in modes], dtype=np.int64)
        keep = offset < wanted[generated.request_index] if len(generated) else offset > 0
        out.extend(Candidate({"k": kk, "images_per_mode": n}, keep, w) for w in lam)
    return out


def targeted_counts(
    ranked: Mapping[str, Sequence[str]],
    *,
    k: Sequence[int],
    images_per_mode: Sequence[int],
    weights: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[tuple[str, str], int]:
    """Images to generate per mode so that every candidate is a subset of one set.

    Args:
        ranked: ``{class_name: [value, ...]}``, each class's modes, best first.
        k: candidate numbers of modes per class.
        images_per_mode: candidate numbers of images per mode.
        weights: as for [`targeted_candidates`][targeted_candidates].

    Returns:
        ``{(class_name, value): count}``, the most any candidate uses.
    """
    counts: dict[tuple[str, str], int] = {}
    for kk, n in itertools.product(k, images_per_mode):
        for mode, c in mode_counts(ranked, k=kk, images_per_mode=n, weights=weights).items():
            counts[mode] = max(counts.get(mode, 0), c)
    return counts


def lam_candidates(
    n_images: int, lam: Sequence[float], settings: dict[str, Any] | None = None
) -> list[Candidate]:
    """One candidate per ``lam``, each using all ``n_images`` images of a set.

    Args:
        n_images: the set's size.
        lam: candidate weights.
        settings: what the candidates stand for (columns of the selection table).

    Returns:
        One [`Candidate`][Candidate] per ``lam``.
    """
    everything = np.ones(n_images, dtype=bool)
    return [Candidate(dict(settings or {}), everything, float(weight)) for weight in lam]


def select_head(
    trainer: HeadTrainer,
    prepared: PreparedRun,
    generated: Features,
    candidates: Sequence[Candidate],
    *,
    tolerance: float = 0.005,
    guard_tolerance: float = 0.01,
    seed: int = 0,
    cache: Cache | None = None,
) -> Selection:
    """Fit every candidate; pick one on the validation part, within the guard.

    Args:
        trainer: the head trainer.
        prepared: the run's features, original head and validation part (and guard).
        generated: features of the generated images the candidates select from.
        candidates: what to try.
        tolerance: a candidate is eligible only if its validation accuracy is at most this
            much below the original head's.
        guard_tolerance: with a guard (``prepared.guard``), a candidate whose guard accuracy is
            more than this below the original head's is refused.
        seed: passed to the trainer.
        cache: where fits are kept, or ``None``.

    Returns:
        The [`Selection`][Selection]: the best eligible candidate on the validation part's
        failures (the most accurate overall when none is eligible), its head and the table.
        With a guard that refuses every candidate, the original head, ``kept_original`` set.
    """
    tolerance = check_number(tolerance, "tolerance", minimum=0, maximum=1)
    guard_tolerance = check_number(guard_tolerance, "guard_tolerance", minimum=0, maximum=1)
    before = evaluate(prepared.head, prepared.validation)["validation"]
    guard = prepared.guard
    guard_before = None if guard is None else evaluate(prepared.head, {"g": guard})["g"]
    rows, best, best_key = [], None, None
    for candidate in candidates:
        head = fit_head(
            trainer,
            prepared.head,
            prepared.train,
            generated.select(candidate.keep),
            lam=candidate.lam,
            seed=seed,
            cache=cache,
        )
        acc = evaluate(head, prepared.validation)
        eligible = acc["validation"] >= before - tolerance
        row = {
            **candidate.settings,
            "lam": candidate.lam,
            "val_acc": acc["validation"],
            "val_failure_acc": acc["validation_failures"],
        }
        guarded = True
        if guard is not None:
            row["guard_acc"] = evaluate(head, {"g": guard})["g"]
            guarded = row["guard_acc"] >= guard_before - guard_tolerance
            eligible = eligible and guarded
        row["eligible"] = eligible
        rows.append(row)
        key = (guarded, eligible, acc["validation_failures"] if eligible else acc["validation"])
        if best_key is None or key > best_key:
            best, best_key = (row, head), key
    row, head = best
    if not best_key[0]:  # the guard refused every candidate
        return Selection({**row, "kept_original": True}, prepared.head, pd.DataFrame(rows))
    return Selection(row, head, pd.DataFrame(rows))


def baseline_requests(
    modes: FailureModes,
    proposals: Mapping[str, Sequence[str]],
    *,
    images_per_mode: int,
    seed: int = 0,
) -> dict[str, list[GenerationRequest]]:
    """The baselines' requests, with as many images per class as the targeted repair.

    ``random`` (the paper's random debugging) asks for the bare class ("a photo of a fox");
    ``uniform`` draws each image's value uniformly among all proposed values.

    Args:
        modes: the chosen failure modes (``modes.modes``) of each class.
        proposals: every class's proposed values.
        images_per_mode: the chosen images per mode.
        seed: the run's seed.

    Returns:
        ``{"random": [...], "uniform": [...]}``.
    """
    names = modes.class_names
    per_class = {c: len(modes.modes.get(c, [])) * images_per_mode for c in names}
    all_values = list(dict.fromkeys(v for c in names for v in proposals[c]))
    rng = np.random.default_rng(derive_seed("uniform", seed))
    uniform: dict[tuple[str, str | None], int] = {}
    for c in names:
        for v in rng.choice(len(all_values), size=per_class[c], replace=True):
            key = (c, all_values[int(v)])
            uniform[key] = uniform.get(key, 0) + 1
    counts = {"random": {(c, None): per_class[c] for c in names}, "uniform": uniform}
    return {
        method: make_requests(wanted, class_names=names, attribute=modes.attribute, seed=seed)
        for method, wanted in counts.items()
    }


def selection_table(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The searches of several methods as one table, its first column ``method``.

    Args:
        tables: ``{method: Selection.table}``.

    Returns:
        The rows of every table, in order, each with its method.
    """
    frames = [table.assign(method=method) for method, table in tables.items()]
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "method", table.pop("method"))
    return table
