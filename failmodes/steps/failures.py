"""Step 2, failures: the debug set's mistakes, split into ``debug_seed`` and ``debug_heldout``.

Per class, a validation part is set aside first (candidates are chosen on it, never on the
failures); the mistakes among the rest are shuffled and split half and half, ``debug_seed``
(captioned and covered by generated images) and ``debug_heldout`` (never used: an unbiased
measure of the repair).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from failmodes._checks import check_number, check_seed
from failmodes.progress import stage
from failmodes.results import FailureSet, Features
from failmodes.settings import check_setting
from failmodes.steps._common import derive_seed, logits

__all__ = ["find_failures", "guard_split", "real_set", "sample_successes", "validation_splits"]

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
        ValueError: if ``validation_fraction`` is not in ``[0, 1)``, or the model makes no
            mistake outside the validation part.

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
    preds = logits(head, debug.features).argmax(1).numpy()
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
        raise ValueError(
            "the model makes no mistakes on the debug set (outside its validation part): "
            "there are no failures to debug"
        )
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

    Examples:
        >>> import numpy as np, torch
        >>> from failmodes import Features
        >>> from failmodes.steps import guard_split
        >>> rest, guard, rows = guard_split(Features(torch.eye(20), np.arange(20) % 2), 0.1)
        >>> len(rest), len(guard), guard.labels.tolist(), len(rows)
        (18, 2, [0, 1], 18)
    """
    fraction = check_setting("guard_fraction", fraction)
    seed = check_seed(seed)
    rng = np.random.default_rng(derive_seed("guard", seed))
    held = []
    for c in np.unique(train.labels):
        members = np.flatnonzero(train.labels == c)
        n = min(int(round(fraction * len(members))), len(members) - 1)
        held.extend(members[rng.permutation(len(members))[:n]].tolist())
    mask = np.zeros(len(train), dtype=bool)
    mask[held] = True
    return train.select(~mask), train.select(mask), np.flatnonzero(~mask)
