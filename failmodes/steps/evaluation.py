"""Step 8, evaluation: accuracy of each head on each split, and per attribute value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from failmodes.methods import SPLITS
from failmodes.results import FailureModes, GeneratedSet, ModeAccuracy, PreparedRun
from failmodes.steps._common import logits

__all__ = [
    "accuracy",
    "check_extra",
    "evaluate",
    "evaluate_modes",
    "evaluate_run",
    "group_accuracy",
    "loss",
]

_TAKEN = (*SPLITS, "guard")  # the names of the splits a run evaluates every head on


def accuracy(head: torch.nn.Linear, split: Any) -> float:
    """The accuracy of ``head`` on ``(features, labels)``.

    Args:
        head: the head.
        split: [`Features`][failmodes.results.Features] or a ``(features, labels)`` pair.

    Returns:
        The share of rows predicted right; ``nan`` for no rows.
    """
    feats, labels = split
    return _share(logits(head, feats), labels)


def loss(head: torch.nn.Linear, split: Any) -> float:
    """The mean cross-entropy of ``head`` on ``(features, labels)``: the loss it was fit by.

    Unlike accuracy, it is graded: on a few images, two heads that get the same ones right
    still differ in how sure they are of the right class.

    Args:
        head: the head.
        split: [`Features`][failmodes.results.Features] or a ``(features, labels)`` pair.

    Returns:
        The mean of ``-log p(label)``; ``nan`` for no rows.

    Examples:
        >>> import numpy as np, torch
        >>> from failmodes.steps import loss
        >>> head = torch.nn.Linear(2, 2, bias=False)
        >>> _ = head.weight.data.copy_(torch.eye(2))
        >>> round(loss(head, (torch.tensor([[2.0, 0.0]]), np.array([0]))), 4)
        0.1269
    """
    feats, labels = split
    if len(labels) == 0:
        return float("nan")
    target = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return float(torch.nn.functional.cross_entropy(logits(head, feats), target))


def _share(scores: torch.Tensor, labels: np.ndarray, index: np.ndarray | None = None) -> float:
    """The share of rows whose top score is their label (``nan`` for none)."""
    if index is not None:
        scores, labels = scores[torch.as_tensor(index, dtype=torch.long)], labels[index]
    if len(labels) == 0:
        return float("nan")
    return float((scores.argmax(1).numpy() == labels).mean())


def evaluate(head: torch.nn.Linear, splits: Mapping[str, Any]) -> dict[str, float]:
    """Accuracy of ``head`` on named splits.

    Args:
        head: the head to evaluate (any ``nn.Linear`` taking the features).
        splits: ``{name: Features}`` or ``{name: (features, labels)}``.

    Returns:
        ``{name: accuracy}``; ``nan`` for an empty split.
    """
    return {name: accuracy(head, split) for name, split in splits.items()}


def group_accuracy(
    heads: Mapping[str, torch.nn.Linear], split: Any, groups: list[str | None]
) -> dict[str, dict[str, float]]:
    """Each head's accuracy per attribute value (``groups``, one per row of ``split``).

    Args:
        heads: ``{method: head}``.
        split: [`Features`][failmodes.results.Features] or a ``(features, labels)`` pair.
        groups: each row's value; ``None`` (an unknown value) is reported under ``""``.

    Returns:
        ``{method: {value: accuracy}}``, values sorted.
    """
    feats, labels = split
    names = np.asarray(["" if g is None else str(g) for g in groups])
    rows = {g: np.flatnonzero(names == g) for g in sorted(set(names.tolist()))}
    out = {}
    for method, head in heads.items():
        scores = logits(head, feats)  # once per head, then read per value
        out[method] = {g: _share(scores, labels, index) for g, index in rows.items()}
    return out


def evaluate_run(
    prepared: PreparedRun, heads: Mapping[str, torch.nn.Linear], groups: list[str | None] | None
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Every head on the run's splits, and on each attribute value of the test set.

    Args:
        prepared: the run's features and failures (with test features).
        heads: ``{method: head}``.
        groups: each test sample's value, or ``None`` when unknown.

    Returns:
        ``({method: {split: accuracy}}, {method: {value: accuracy}})`` for the splits ``test``,
        ``debug_seed``, ``debug_heldout`` and ``validation``, then ``guard`` when a guard was
        given and the extra sets by name; the second is empty without ``groups``.
    """
    failures = prepared.failures
    splits = {
        "test": prepared.test,
        "debug_seed": prepared.debug.select(failures.seed),
        "debug_heldout": prepared.debug.select(failures.heldout),
        "validation": prepared.validation["validation"],
    }
    if prepared.guard is not None:
        splits["guard"] = prepared.guard
    splits.update(prepared.extra)
    accuracy = {method: evaluate(head, splits) for method, head in heads.items()}
    by_group = {} if groups is None else group_accuracy(heads, prepared.test, groups)
    return accuracy, by_group


def evaluate_modes(
    prepared: PreparedRun,
    heads: Mapping[str, torch.nn.Linear],
    groups: list[str | None] | None,
    modes: FailureModes,
    generated: GeneratedSet,
) -> ModeAccuracy | None:
    """Each repair on the held-out failures inside and outside the modes it was given images of.

    Args:
        prepared: the run's features and failures.
        heads: ``{method: head}``; ``before`` is left out (it fails every held-out failure).
        groups: each debug sample's true value, or ``None`` when unknown.
        modes: the captions (their ``candidates`` are the proposed values).
        generated: the images the targeted repair's chosen candidate used; their values name
            the modes it was given images of.

    Returns:
        A [`ModeAccuracy`][failmodes.results.ModeAccuracy], or ``None`` without ``groups``,
        when no held-out failure's true value was proposed for its class (the values do not
        speak the same words), or when no image was made for a mode.
    """
    names_of = modes.class_names
    targeted = {
        (names_of[int(y)], v)
        for y, v in zip(generated.labels, generated.values, strict=True)
        if v is not None
    }
    heldout = prepared.failures.heldout
    if groups is None or not targeted or len(heldout) == 0:
        return None
    names = [modes.class_names[int(y)] for y in prepared.debug.labels[heldout]]
    values = [groups[int(i)] for i in heldout]
    if not any(v in modes.candidates.get(n, []) for n, v in zip(names, values, strict=True)):
        return None
    sides = [
        "in_modes" if (n, v) in targeted else "out_of_modes"
        for n, v in zip(names, values, strict=True)
    ]
    repairs = {method: head for method, head in heads.items() if method != "before"}
    by_side = group_accuracy(repairs, prepared.debug.select(heldout), sides)
    accuracy = {
        method: {side: acc.get(side, float("nan")) for side in ("in_modes", "out_of_modes")}
        for method, acc in by_side.items()
    }
    n_in = sides.count("in_modes")
    return ModeAccuracy(n_in, len(sides) - n_in, accuracy)


def check_extra(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """``run(..., extra=...)`` checked: a mapping of new, non-empty names to data.

    Args:
        extra: ``{name: data}`` or ``None``.

    Returns:
        A dict (empty for ``None``).

    Raises:
        TypeError: if ``extra`` is not a mapping or a name is not a string.
        ValueError: if a name is that of a split of the run (``test``, ``guard``, ...).
    """
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise TypeError(
            f"extra must be a mapping {{name: data}} of evaluation sets, got {type(extra).__name__}"
        )
    for name in extra:
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"extra's names must be non-empty strings, got {name!r}")
        if name in _TAKEN:
            raise ValueError(
                f"extra's name {name!r} is taken by a split of the run; use another "
                f"(taken: {', '.join(_TAKEN)})"
            )
    return dict(extra)
