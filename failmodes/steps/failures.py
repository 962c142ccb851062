"""Step 2, failures: the debug set's mistakes, split into ``debug_seed`` and ``debug_heldout``.

Per class, a validation part is set aside first (candidates are chosen on it, never on the
failures); the mistakes among the rest are shuffled and split half and half, ``debug_seed``
(captioned and covered by generated images) and ``debug_heldout`` (never used: an unbiased
measure of the repair).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from failmodes._checks import check_number, check_seed
from failmodes.errors import DataError
from failmodes.progress import stage
from failmodes.results import FailureSet, Features
from failmodes.settings import check_setting
from failmodes.steps._common import derive_seed, logits

__all__ = [
    "check_failures_of",
    "check_validation",
    "find_failures",
    "guard_counts",
    "guard_split",
    "real_set",
    "sample_successes",
    "validation_splits",
]

logger = logging.getLogger("failmodes")


def find_failures(
    head: torch.nn.Linear,
    debug: Features,
    *,
    num_classes: int,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> FailureSet:
    """Set aside the validation part, then split the failures per class half and half.

    Args:
        head: the model's head, applied to the debug features to predict.
        debug: features and labels of the debug set.
        num_classes: the number of classes.
        validation_fraction: the share of each class set aside, in ``[0, 1)``.
        seed: seed of both splits; the same seed gives the same split.

    Returns:
        A [`FailureSet`][failmodes.results.FailureSet]; the model scores 0 on its ``seed`` and
        ``heldout`` parts.

    Raises:
        ValueError: if ``validation_fraction`` is not in ``[0, 1)``.
        DataError: if the model makes no mistake outside the validation part (the message says
            whether it makes none at all or the validation part holds them all).

    Examples:
        >>> import numpy as np, torch
        >>> from failmodes import Features
        >>> from failmodes.steps import find_failures
        >>> head = torch.nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = head.weight.copy_(torch.eye(2)), head.bias.zero_()
        >>> labels = np.array([0, 1] * 10)
        >>> debug = Features(torch.eye(2)[np.zeros(20, dtype=int)], labels)  # always class 0
        >>> failures = find_failures(head, debug, num_classes=2, seed=0)
        >>> len(failures.validation), len(failures.seed), len(failures.heldout)
        (4, 4, 4)
    """
    frac = check_setting("validation_fraction", validation_fraction)
    seed = check_seed(seed)
    stage("failures of %s debug samples", f"{len(debug):,}")
    preds = _predictions(head, debug)
    labels = debug.labels
    rng = np.random.default_rng(derive_seed("split", seed))
    validation, seed_part, heldout = [], [], []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        n_val = int(round(frac * len(members)))
        validation.extend(members[:n_val].tolist())
        rest = members[n_val:]
        failed = rest[preds[rest] != c]
        half = len(failed) // 2
        seed_part.extend(failed[:half].tolist())
        heldout.extend(failed[half:].tolist())
    if not seed_part and not heldout:
        raise DataError(_no_failures(labels, preds, len(validation), frac, num_classes))
    parts = (_sorted(part) for part in (validation, seed_part, heldout))
    failures = FailureSet(labels, preds, *parts)
    logger.info(
        "failures: %d debug_seed, %d debug_heldout, %d validation samples",
        len(failures.seed),
        len(failures.heldout),
        len(failures.validation),
    )
    return failures


def _sorted(indices: list[int]) -> np.ndarray:
    return np.sort(np.asarray(indices, dtype=np.int64))


def _no_failures(
    labels: np.ndarray, preds: np.ndarray, n_val: int, frac: float, num_classes: int
) -> str:
    """Why there is no failure to debug: no mistake at all, or all in the validation part."""
    n, wrong = len(labels), int((preds != labels).sum())
    if wrong == 0:
        present = len(np.unique(labels))
        return (
            f"no failures to debug: the model makes no mistakes on the {n:,} "
            f"image{'s' if n != 1 else ''} of the debug set (of {present} of the {num_classes} "
            "classes); a larger debug set may show some"
        )
    return (
        f"no failures to debug: the model's {wrong:,} mistake{'s' if wrong > 1 else ''} on the "
        f"debug set all fall in its validation part (validation_fraction={frac} sets aside "
        f"{n_val:,} of its {n:,} images, leaving {n - n_val:,}, none a mistake); lower "
        "validation_fraction or give a larger debug set"
    )


def check_failures_of(
    failures: FailureSet,
    debug: Any,
    *,
    labels: Any = None,
    features: Features | None = None,
    head: torch.nn.Linear | None = None,
) -> None:
    """Refuse failures found on another debug set than ``debug``, or with another model.

    A [`FailureSet`][failmodes.results.FailureSet] holds the label and the model's prediction
    of every image of the debug set it was found on: their number is that set's size, and the
    labels and predictions tell two sets of one size apart wherever they differ.

    Args:
        failures: the split, e.g. a run's ``failures``.
        debug: the debug set it should index; its size is read when it has one.
        labels: ``debug``'s labels when they are known (then compared too); ``None``: those of
            ``features``, if given.
        features: ``debug``'s features, with ``head``: the head's predictions are then
            compared too (the same labels in another order, or another model, differ there).
        head: the model's head.

    Raises:
        DataError: naming both sizes, or how many labels or predictions differ.
    """
    found = len(failures.labels)
    if labels is None and features is not None:
        labels = features.labels
    size = len(labels) if labels is not None else getattr(debug, "__len__", lambda: None)()
    if size is not None and size != found:
        raise DataError(
            f"failures were found on a debug set of {found:,} images, but debug has {size:,}: "
            "pass the debug set they were found on, or find this one's failures"
        )
    compared = {"labels": (labels, failures.labels)}
    if head is not None and features is not None:
        compared["predictions"] = (_predictions(head, features), failures.predictions)
    for what, (given, kept) in compared.items():
        other = 0 if given is None else int((np.asarray(given) != kept).sum())
        if other:
            raise DataError(
                f"failures were found on another debug set of {found:,} images (or with another "
                f"model): debug has other {what} at {other:,} of its {size:,} images; pass the "
                "debug set they were found on, or find this one's failures"
            )


def _predictions(head: torch.nn.Linear, features: Features) -> np.ndarray:
    """The class ``head`` predicts for each row of ``features``."""
    return logits(head, features.features).argmax(1).numpy()


def check_validation(
    failures: FailureSet,
    class_names: Sequence[str],
    *,
    validation_fraction: float,
    grids: Mapping[str, Sequence],
) -> bool:
    """Warn when the validation part is empty but there are candidates to choose among.

    With no validation image every candidate scores alike, so the first of each grid (of those
    a guard accepts) is taken, and the rung a run reports is not validation's preference.

    Args:
        failures: the split of the debug set.
        class_names: all class names by label index.
        validation_fraction: the setting that made the validation part, for the message.
        grids: the candidates, as [`Debugger.grids`][failmodes.debugger.Debugger.grids] gives
            them (``lam_real``, when not empty, is a choice: 0 is tried beside its weights).

    Returns:
        Whether the validation part can choose: it has images, or there is one candidate.
    """
    several = [n for n, v in grids.items() if len(v) > 1 or (n == "lam_real" and len(v))]
    if len(failures.validation) or not several:
        return True
    counts = np.bincount(failures.labels, minlength=len(class_names))
    per_class = ", ".join(f"{c}: 0 of {n}" for c, n in zip(class_names, counts, strict=True) if n)
    warnings.warn(
        f"the validation part is empty (validation_fraction={validation_fraction} gives the "
        f"debug set's classes 0 validation images each; {per_class}), so nothing compares "
        f"the candidates of {', '.join(several)}: the first candidate of each grid (that the "
        "guard accepts) is taken, not chosen; raise validation_fraction or give a larger "
        "debug set",
        stacklevel=3,
    )
    return False


def validation_splits(failures: FailureSet, debug: Features) -> dict[str, Features]:
    """The validation part of the debug set, whole and its failures, as evaluation splits.

    Args:
        failures: the split of the debug set.
        debug: features and labels of the debug set.

    Returns:
        ``{"validation": ..., "validation_failures": ...}``.
    """
    val = failures.validation
    val_fail = val[failures.predictions[val] != debug.labels[val]]
    return {"validation": debug.select(val), "validation_failures": debug.select(val_fail)}


def sample_successes(failures: FailureSet, *, seed: int = 0, fraction: float = 0.5) -> np.ndarray:
    """A seeded share of each class's successes outside the validation part.

    ``debug_seed`` holds half of each class's failures; captioning half of its successes as
    well puts both on one scale, so that a value's failure rate can be compared with its
    class's.

    Args:
        failures: the split of the debug set.
        seed: the run's seed; the same seed gives the same sample.
        fraction: the share of each class's successes kept, in ``(0, 1]``.

    Returns:
        Sorted debug-set indices of the sampled successes.

    Examples:
        >>> import numpy as np
        >>> from failmodes import FailureSet
        >>> from failmodes.steps import sample_successes
        >>> failures = FailureSet(np.array([0, 0, 0, 0, 1]), np.array([0, 0, 0, 1, 1]),
        ...                       validation=np.array([0]), seed=np.array([3]),
        ...                       heldout=np.array([], dtype=int))
        >>> len(sample_successes(failures, seed=0))  # half of class 0's two, half of class 1's one
        1
    """
    fraction = check_number(fraction, "fraction", minimum=0, maximum=1)
    seed = check_seed(seed)
    rng = np.random.default_rng(derive_seed("successes", seed))
    outside = np.ones(len(failures.labels), dtype=bool)
    outside[failures.validation] = False
    right = outside & (failures.predictions == failures.labels)
    chosen = []
    for c in np.unique(failures.labels):
        members = np.flatnonzero(right & (failures.labels == c))
        n = int(len(members) * fraction)
        chosen.extend(members[rng.permutation(len(members))[:n]].tolist())
    return _sorted(chosen)


def real_set(
    failures: FailureSet, debug: Features, *, which: str | None = "failures", seed: int = 0
) -> Features | None:
    """The debug set's own labelled images that a repair may refit on (the DFR rung).

    Never the validation part nor ``debug_heldout``: ``"failures"`` is the ``debug_seed``
    failures; ``"failures_and_successes"`` adds the seeded half of the successes outside the
    validation part ([`sample_successes`][sample_successes], the ones a ranking against
    successes captions).

    Args:
        failures: the split of the debug set.
        debug: features and labels of the debug set.
        which: one of [`REAL_SETS`][failmodes.methods.REAL_SETS], or ``None`` (``False``) for
            none.
        seed: the run's seed (the successes' draw).

    Returns:
        Their features and labels, or ``None`` for ``which=None``.

    Raises:
        ValueError: if ``which`` is not one of them nor ``None``.

    Examples:
        >>> import numpy as np, torch
        >>> from failmodes import Features, FailureSet
        >>> from failmodes.steps import real_set
        >>> failures = FailureSet(np.array([0, 0, 1, 1]), np.array([1, 0, 0, 1]),
        ...                       validation=np.array([], dtype=int), seed=np.array([0]),
        ...                       heldout=np.array([2]))
        >>> debug = Features(torch.eye(4), np.array([0, 0, 1, 1]))
        >>> real_set(failures, debug).labels.tolist()
        [0]
    """
    if check_setting("real", which) is None:
        return None
    rows = failures.seed
    if which == "failures_and_successes":
        rows = np.concatenate([rows, sample_successes(failures, seed=seed)])
    return debug.select(np.sort(rows))


def guard_split(
    train: Features, fraction: float, *, seed: int = 0
) -> tuple[Features, Features, np.ndarray]:
    """A seeded share of each class of the training data, held out of every refit as a guard.

    The model was trained on these images (or on data like them), so the guard it gives is a
    proxy: it tells a repair that costs accuracy where the model was right, not how the model
    does on data it never saw.

    Args:
        train: features and labels of the training data the head is refit on.
        fraction: the share of each class held out, in ``(0, 1)``; a class keeps at least one
            image for refits.
        seed: the run's seed.

    Returns:
        ``(the rest, the held-out share, the rest's rows in train)``.

    Raises:
        TypeError: if the features are shards (rows of shards cannot be held out).
        DataError: if ``fraction`` holds out no image of a class (see
            [`guard_counts`][guard_counts]).

    Examples:
        >>> import numpy as np, torch
        >>> from failmodes import Features
        >>> from failmodes.steps import guard_split
        >>> rest, guard, rows = guard_split(Features(torch.eye(20), np.arange(20) % 2), 0.1)
        >>> len(rest), len(guard), guard.labels.tolist(), len(rows)
        (18, 2, [0, 1], 18)
    """
    counts = guard_counts(train.labels, fraction)
    seed = check_seed(seed)
    rng = np.random.default_rng(derive_seed("guard", seed))
    held = []
    for c, n in counts.items():
        members = np.flatnonzero(train.labels == c)
        held.extend(members[rng.permutation(len(members))[:n]].tolist())
    mask = np.zeros(len(train), dtype=bool)
    mask[held] = True
    return train.select(~mask), train.select(mask), np.flatnonzero(~mask)


def guard_counts(
    labels: Any, fraction: float, class_names: Sequence[str] | None = None
) -> dict[int, int]:
    """How many images of each class of the training data the guard holds out.

    ``round(fraction x the class's images)``, and at least one image left for refits. Checked
    on the labels alone, so that a Debugger refuses a share that holds out nothing of a class
    before any feature is computed.

    Args:
        labels: the training data's labels.
        fraction: the share of each class held out, in ``[0, 1)`` (``guard_fraction``; 0
            holds out nothing).
        class_names: all class names by label index, to name a class; ``None``: its index.

    Returns:
        ``{label: images held out}`` for each class present.

    Raises:
        DataError: if a ``fraction`` above 0 holds out no image of a class.

    Examples:
        >>> import numpy as np
        >>> from failmodes.steps import guard_counts
        >>> guard_counts(np.arange(20) % 2, 0.2)
        {0: 2, 1: 2}
    """
    fraction = check_setting("guard_fraction", fraction)
    classes, sizes = np.unique(np.asarray(labels), return_counts=True)
    sizes_of = {int(c): int(n) for c, n in zip(classes, sizes, strict=True)}
    counts = {c: min(int(round(fraction * n)), n - 1) for c, n in sizes_of.items()}
    empty = [c for c, n in counts.items() if n == 0]
    if fraction > 0 and empty:
        c, n = empty[0], sizes_of[empty[0]]
        name = repr(class_names[c]) if class_names is not None else f"{c}"
        kept = ", which refits keep" if n == 1 else ""
        raise DataError(
            f"guard_fraction={fraction} holds out no image of class {name} ({n} train "
            f"image{'s' if n > 1 else ''}{kept}): raise guard_fraction, give a guard of your "
            "own (guard=data), or set guard_fraction=0 (or guard=False) for no guard"
        )
    return counts
