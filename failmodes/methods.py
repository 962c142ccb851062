"""The names a run reports under: the repairs it compares and the splits it measures.

Every table, summary key and report row comes from these two lists, in this order.
"""

from __future__ import annotations

__all__ = ["BASELINES", "METHODS", "SPLITS"]

METHODS: dict[str, str] = {
    "before": "the model's original head, before any repair.",
    "failmodes": "the head refit on the training data plus images generated for the failure "
    "modes (the targeted repair).",
    "random": "the same number of images per class, generated from the bare class name "
    "(\u201ca photo of a {class}\u201d), so in the class's usual context.",
    "uniform": "the same number of images per class, with values drawn uniformly among all "
    "proposed values.",
    "refit": "the head refit on the training data alone (\u03bb = 0): what refitting by itself "
    "does.",
}
"""Each method a run may report, in order, with what it is."""

BASELINES = ("random", "uniform", "refit")
"""The methods a run fits beside the targeted repair when ``baselines`` is on."""

SPLITS: dict[str, str] = {
    "test": "the test set, used only for reporting.",
    "debug_seed": "the failures used for debugging: captioned, and their modes generated. "
    "0 before repair by construction.",
    "debug_heldout": "the failures never used: an unbiased measure of the repair. "
    "0 before repair by construction.",
    "validation": "the validation part of the debug set, on which candidates are chosen.",
}
"""The splits every head is evaluated on, in order, with what each is."""
