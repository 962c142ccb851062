"""Selection: candidates fitted and one chosen on the validation part.

A candidate is a subset of a generated set with a weight ``lam`` (the
[plans][failmodes.steps.plans] make them). Among the candidates that keep the validation part's
overall accuracy within ``tolerance`` of the original head's (and, with a guard, the guard's
within ``guard_tolerance``), the pick has the lowest loss on the validation part's failures
(``select_by="loss"``) or the best accuracy there (``"accuracy"``); it never looks at
``debug_heldout`` or test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from failmodes.cache import Cache
from failmodes.interfaces import HeadTrainer
from failmodes.methods import DEFAULT_SCORE
from failmodes.results import Features, PreparedRun
from failmodes.settings import check_setting
from failmodes.steps.evaluation import evaluate, loss
from failmodes.steps.repair import fit_head

__all__ = ["Candidate", "Selection", "select_head", "selection_table"]


@dataclass(frozen=True)
class Candidate:
    """One setting to try: which generated images, with what ``lam``; what the real ones weigh.

    Attributes:
        settings: what the candidate stands for, e.g. ``{"k": 3, "images_per_mode": 20}``
            (the selection table's columns).
        keep: one boolean per generated image: the images this candidate uses.
        lam: the weight of their loss.
        lam_real: the weight of the loss of the run's real images (``PreparedRun.real``).
    """

    settings: dict[str, Any]
    keep: np.ndarray
    lam: float
    lam_real: float = 0.0


@dataclass
class Selection:
    """The chosen candidate and the whole search.

    Attributes:
        settings: the chosen candidate's settings and ``lam``; with ``kept_original`` true when
            a guard refused every candidate (the head is then the original one).
        head: its fitted head.
        table: one row per candidate: its settings, ``lam`` (and ``lam_real`` when the run has
            real images), ``val_acc`` (the validation part's accuracy), ``val_failure_acc``
            (accuracy on its failures), ``val_failure_loss`` (their mean cross-entropy),
            ``guard_acc`` (with a guard), ``eligible`` and ``chosen`` (no row is, when the
            original head was kept).
        index: the chosen candidate's position among the candidates (when the original head
            was kept, the best refused one's).
        key: how the chosen candidate ranks, ``(within the guard, eligible, score)``: the
            choice between two selections compares their keys.
    """

    settings: dict[str, Any]
    head: torch.nn.Linear
    table: pd.DataFrame
    index: int = 0
    key: tuple = ()


def select_head(
    trainer: HeadTrainer,
    prepared: PreparedRun,
    generated: Features,
    candidates: Sequence[Candidate],
    *,
    tolerance: float = 0.005,
    guard_tolerance: float = 0.01,
    select_by: str = DEFAULT_SCORE,
    seed: int = 0,
    cache: Cache | None = None,
) -> Selection:
    """Fit every candidate; pick one on the validation part, within the guard.

    A candidate's key is ``(within the guard, eligible, score)``; its score is, when it is
    eligible, minus its loss on the validation part's failures (``select_by="loss"``) or its
    accuracy on them (``"accuracy"``), and when it is not, its accuracy on the whole validation
    part. The largest key wins, the first among equals.

    Args:
        trainer: the head trainer.
        prepared: the run's features, original head and validation part (and guard).
        generated: features of the generated images the candidates select from.
        candidates: what to try.
        tolerance: a candidate is eligible only if its validation accuracy is at most this
            much below the original head's.
        guard_tolerance: with a guard (``prepared.guard``), a candidate whose guard accuracy is
            more than this (or ``prepared.guard_resolution``, if larger) below that of
            ``prepared.guard_head`` (the original head when it is ``None``) is refused.
        select_by: what chooses among the eligible candidates, a key of
            [`SCORES`][failmodes.methods.SCORES].
        seed: passed to the trainer.
        cache: where fits are kept, or ``None``.

    Returns:
        The [`Selection`][Selection]: the best eligible candidate on the validation part's
        failures (the most accurate overall when none is eligible), its head and the table.
        With no failure in the validation part, every eligible candidate scores alike and the
        first is taken.
        With a guard that refuses every candidate, the original head, ``kept_original`` set.
    """
    tolerance = check_setting("tolerance", tolerance)
    guard_tolerance = max(
        check_setting("guard_tolerance", guard_tolerance), prepared.guard_resolution
    )
    select_by = check_setting("select_by", select_by)
    if prepared.real is None and any(c.lam_real > 0 for c in candidates):
        raise ValueError(
            "candidates weigh real images (lam_real > 0) but the prepared run has none: prepare "
            "it with a Debugger whose real is set"
        )
    before = evaluate(prepared.head, prepared.validation)["validation"]
    guard = prepared.guard
    reference = prepared.head if prepared.guard_head is None else prepared.guard_head
    guard_before = None if guard is None else evaluate(reference, {"g": guard})["g"]
    rows, best, best_key = [], None, None
    for index, candidate in enumerate(candidates):
        head = fit_head(
            trainer,
            prepared.head,
            prepared.train,
            generated.select(candidate.keep),
            lam=candidate.lam,
            real=prepared.real,
            lam_real=candidate.lam_real,
            seed=seed,
            cache=cache,
        )
        acc = evaluate(head, prepared.validation)
        eligible = acc["validation"] >= before - tolerance
        weights = {"lam": candidate.lam}
        if prepared.real is not None:
            weights["lam_real"] = candidate.lam_real
        row = {
            **candidate.settings,
            **weights,
            "val_acc": acc["validation"],
            "val_failure_acc": acc["validation_failures"],
            "val_failure_loss": loss(head, prepared.validation["validation_failures"]),
        }
        guarded = True
        if guard is not None:
            row["guard_acc"] = evaluate(head, {"g": guard})["g"]
            guarded = row["guard_acc"] >= guard_before - guard_tolerance
            eligible = eligible and guarded
        row["eligible"] = eligible
        rows.append(row)
        key = (guarded, eligible, _score(row, select_by) if eligible else row["val_acc"])
        if best_key is None or key > best_key:
            best, best_key = (row, head, index), key
    row, head, index = best
    table = pd.DataFrame(rows)
    refused = not best_key[0]  # the guard refused every candidate: the original head is kept
    table["chosen"] = [i == index and not refused for i in range(len(rows))]
    if refused:
        kept = {**row, "kept_original": True}
        return Selection(kept, prepared.head, table, index, best_key)
    return Selection(row, head, table, index, best_key)


def _score(row: Mapping[str, Any], select_by: str) -> float:
    """An eligible candidate's score, larger is better; ``-inf`` for no validation failure."""
    score = -row["val_failure_loss"] if select_by == "loss" else row["val_failure_acc"]
    return -math.inf if math.isnan(score) else score


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
