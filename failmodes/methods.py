"""The names a run reports under: the repairs it compares and the splits it measures.

Every table, summary key and report row comes from these two lists, in this order.
"""

from __future__ import annotations

__all__ = [
    "BASELINES",
    "DEFAULT_SCORE",
    "LADDER",
    "METHODS",
    "REAL_SETS",
    "SCORES",
    "SHOWN",
    "SOURCE_SETS",
    "SPLITS",
    "shown_splits",
]

METHODS: dict[str, str] = {
    "before": "the model's original head, before any repair.",
    "dfr": "the head refit on the training data plus the debug set's own images (its "
    "debug_seed failures), nothing generated: deep feature reweighting.",
    "failmodes": "the head refit on the training data plus images generated for the failure "
    "modes (the targeted repair), with the debug set's own images weighed too when the run has "
    "them.",
    "random": "the same number of images per class, generated from the bare class name "
    "(\u201ca photo of a {class}\u201d), so in the class's usual context; the same real images.",
    "uniform": "the same number of images per class, with values drawn uniformly among all "
    "proposed values; the same real images.",
    "refit": "the head refit on the training data alone (\u03bb = 0): what refitting by itself "
    "does.",
}
"""Each method a run may report, in order, with what it is."""

BASELINES = ("random", "uniform", "refit")
"""The methods a run fits beside the targeted repair when ``baselines`` is on."""

LADDER = ("dfr", "failmodes")
"""The repairs a user chooses among, cheapest first: the debug set's own images alone, then
generated images on top; validation picks one (``RunResult.chosen``)."""

SPLITS: dict[str, str] = {
    "test": "the test set, used only for reporting.",
    "debug_seed": "the failures used for debugging: captioned, and their modes generated. "
    "0 before repair by construction.",
    "debug_heldout": "the failures never used: an unbiased measure of the repair. "
    "0 before repair by construction.",
    "validation": "the validation part of the debug set, on which candidates are chosen.",
}
"""The splits every head is evaluated on, in order, with what each is."""

REAL_SETS = ("failures", "failures_and_successes")
"""The debug set's own images a repair may refit on: its ``debug_seed`` failures, or those and the
seeded half of its successes that a ranking against successes captions (see
[`real_set`][failmodes.steps.failures.real_set])."""

SOURCE_SETS = ("train", "debug_seed")
"""The real images an editing generator may edit: the training data the repair refits on (the
guard's share aside), or the debug set's ``debug_seed`` failures; never ``debug_heldout`` or the
validation part."""

SCORES: dict[str, str] = {
    "loss": "the mean cross-entropy of the validation part's failures, lower is better: graded, "
    "so a few failures still tell candidates apart",
    "accuracy": "the accuracy on the validation part's failures (the former rule, part of "
    "settings.PAPER): on a few failures candidates tie, and the first of the grid wins",
}
"""What candidates are chosen by (the Debugger's ``select_by``), among those within the
tolerance and the guard, with what each is."""

DEFAULT_SCORE = "loss"
"""The key of [`SCORES`][SCORES] that chooses unless a run says otherwise."""

SHOWN = ("test", "debug_seed", "debug_heldout", "worst_group_test")
"""The columns an accuracy table shows first; the guard and the extra sets follow."""


def shown_splits(columns: list[str]) -> list[str]:
    """The columns of ``RunResult.to_frame()`` that a table shows, in order.

    Args:
        columns: the frame's columns.

    Returns:
        [`SHOWN`][SHOWN] that are there, then every other column but ``validation`` (the
        guard, the extra sets).

    Examples:
        >>> from failmodes.methods import shown_splits
        >>> shown_splits(["test", "debug_seed", "debug_heldout", "validation", "guard", "ood"])
        ['test', 'debug_seed', 'debug_heldout', 'guard', 'ood']
    """
    rest = [c for c in columns if c not in SHOWN and c != "validation"]
    return [c for c in SHOWN if c in columns] + rest
