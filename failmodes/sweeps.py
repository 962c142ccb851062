"""Sweeps of the repair's two knobs, lambda and k (Chegini & Feizi, figure 5).

Each sweep is one call: it runs the method's steps once (features, failures, captions), then one
targeted repair ([`failmodes.steps.repair`][failmodes.steps.plans.repair], as a run makes it:
one generated set at the largest setting, the Debugger's allocation) whose candidates are the
swept values, each measured on the validation part of the debug set (never on
``debug_heldout`` or test, which stay unbiased): overall accuracy and accuracy on the
validation part's failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from failmodes._imports import require
from failmodes.ranking import allocation_weights
from failmodes.steps import evaluate, repair, targeted_plan

if TYPE_CHECKING:
    from failmodes.debugger import Debugger

__all__ = ["SweepResult", "sweep_k", "sweep_lam"]


@dataclass
class SweepResult:
    """One sweep: a row per value of the swept parameter.

    Attributes:
        parameter: ``"lam"`` or ``"k"``.
        table: columns ``lam``, ``k``, ``images_per_mode``, ``val_acc`` (the validation part's
            accuracy), ``val_failure_acc`` (accuracy on its failures), ``n_generated``; plus
            ``val_acc_before`` and ``val_failure_acc_before`` of the original head.

    Examples:
        [`sweep_lam`][sweep_lam] and [`sweep_k`][sweep_k] make one; by hand:

        >>> import pandas as pd
        >>> from failmodes.sweeps import SweepResult
        >>> sweep = SweepResult("lam", pd.DataFrame({
        ...     "lam": [0.5, 1.0], "k": [3, 3], "images_per_mode": [20, 20],
        ...     "val_acc": [0.62, 0.64], "val_failure_acc": [0.31, 0.40], "n_generated": [600, 600],
        ...     "val_acc_before": [0.55, 0.55], "val_failure_acc_before": [0.0, 0.0],
        ... }))
        >>> sweep.to_frame().set_index("lam")["val_failure_acc"].to_dict()
        {0.5: 0.31, 1.0: 0.4}
    """

    parameter: str
    table: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """The sweep's table.

        Returns:
            ``table``: one row per swept value, with the columns described above.
        """
        return self.table

    def plot(self, *, ax: Any = None) -> Any:
        """Validation accuracy, overall and on failures, against the swept value.

        Needs matplotlib (``pip install "failmodes[plot]"``). A dashed line marks the original
        head's overall validation accuracy.

        Args:
            ax: the matplotlib ``Axes`` to draw on; ``None`` makes a new 5x3.5-inch figure.

        Returns:
            The matplotlib ``Axes``.

        Raises:
            ImportError: if matplotlib is not installed (it names the extra).
        """
        plt = require("matplotlib.pyplot", feature="SweepResult.plot")
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        x = self.table[self.parameter]
        ax.plot(x, self.table["val_acc"], marker="o", label="validation (all)")
        ax.plot(x, self.table["val_failure_acc"], marker="o", label="validation failures")
        ax.axhline(
            self.table["val_acc_before"].iloc[0], ls="--", lw=1, color="grey", label="before (all)"
        )
        ax.set_xlabel("λ" if self.parameter == "lam" else "k (failure modes per class)")
        ax.set_ylabel("accuracy")
        ax.legend()
        return ax


def sweep_lam(
    dbg: Debugger,
    train: Any,
    debug: Any,
    values: Sequence[float],
    *,
    k: int | None = None,
    images_per_mode: int | None = None,
    seed: int = 0,
) -> SweepResult:
    """Refit the head for every ``lam`` in ``values`` at a fixed ``k`` and images per mode.

    The method's steps run once (with the Debugger's cache, a run's own results are read back);
    then one head is fitted per value and measured on the validation part of the debug set.

    Args:
        dbg: the Debugger, with every component.
        train: the training data, refit on.
        debug: the debug set; only its validation part measures the heads.
        values: the ``lam`` values (``>= 0``), in the order of the table's rows.
        k: failure modes per class; ``None``: the largest of the Debugger's ``k``.
        images_per_mode: images per mode; ``None``: the largest of the Debugger's
            ``images_per_mode``.
        seed: the seed of the splits, generation and head fits, as in
            [`Debugger.run`][failmodes.debugger.Debugger.run].

    Returns:
        A [`SweepResult`][SweepResult] with ``parameter="lam"``.

    Raises:
        ValueError: if ``values`` is empty or holds a negative or non-finite value; and as the
            Debugger's steps do.

    Examples:
        ```python
        from failmodes.toyworld import ToyWorld, demo_components

        world = ToyWorld(seed=0)
        dbg = Debugger(**demo_components(world))
        sweep = sweep_lam(dbg, world.train(), world.debug(), [0.0, 0.5, 1.0, 2.0, 4.0])
        sweep.plot()
        ```
    """
    lams = [float(v) for v in values]
    if not lams or any(not np.isfinite(v) or v < 0 for v in lams):
        raise ValueError(f"values must be a non-empty list of lam >= 0, got {list(values)!r}")
    k = max(dbg.grids()["k"]) if k is None else int(k)
    return _sweep(dbg, train, debug, "lam", {"k": [k], "lam": lams}, images_per_mode, seed)


def sweep_k(
    dbg: Debugger,
    train: Any,
    debug: Any,
    values: Sequence[int],
    *,
    lam: float = 0.5,
    images_per_mode: int | None = None,
    seed: int = 0,
) -> SweepResult:
    """Refit the head for every ``k`` (failure modes per class) in ``values`` at a fixed ``lam``.

    The images of a smaller ``k`` are those of a larger one's top modes, as in a run: one set
    is generated, at the largest ``k``.

    Args:
        dbg: the Debugger, with every component.
        train: the training data, refit on.
        debug: the debug set; only its validation part measures the heads.
        values: the ``k`` values (``>= 1``), in the order of the table's rows.
        lam: the weight of the generated images' loss.
        images_per_mode: images per mode; ``None``: the largest of the Debugger's
            ``images_per_mode``.
        seed: the seed of the splits, generation and head fits.

    Returns:
        A [`SweepResult`][SweepResult] with ``parameter="k"``.

    Raises:
        ValueError: if ``values`` is empty or holds a ``k`` below 1; and as the Debugger's
            steps do.

    Examples:
        ```python
        sweep = sweep_k(dbg, world.train(), world.debug(), [1, 2, 3, 5], lam=1.0)
        sweep.to_frame()[["k", "val_acc", "val_failure_acc"]]
        ```
    """
    ks = [int(v) for v in values]
    if not ks or any(v < 1 for v in ks):
        raise ValueError(f"values must be a non-empty list of k >= 1, got {list(values)!r}")
    return _sweep(dbg, train, debug, "k", {"k": ks, "lam": [float(lam)]}, images_per_mode, seed)


def _sweep(
    dbg: Debugger,
    train: Any,
    debug: Any,
    parameter: str,
    grids: dict[str, list],
    images_per_mode: int | None,
    seed: int,
) -> SweepResult:
    """One targeted repair of the Debugger's modes with the swept grids; its search as a table."""
    n = max(dbg.grids()["images_per_mode"]) if images_per_mode is None else int(images_per_mode)
    proposals = dbg.propose()
    prep = dbg.prepare(train, debug, seed=seed, guard=False)  # a curve, not a choice: no guard
    k_max = max(grids["k"])
    modes = dbg.caption(debug, prep.failures, proposals, k=k_max, seed=seed)
    plan = targeted_plan(
        modes.top_k(k_max),
        class_names=dbg.class_names,
        attribute=dbg.attribute,
        images_per_mode=[n],
        weights=allocation_weights(modes, dbg.allocation),
        seed=seed,
        **grids,
    )
    fixed = repair(dbg.tools(), prep, plan, proposals=proposals, seed=seed)
    table = fixed.selection.table
    before = evaluate(prep.head, prep.validation)
    return SweepResult(
        parameter,
        pd.DataFrame(
            {
                "lam": table["lam"],
                "k": table["k"],
                "images_per_mode": table["images_per_mode"],
                "val_acc": table["val_acc"],
                "val_failure_acc": table["val_failure_acc"],
                "n_generated": [int(c.keep.sum()) for c in fixed.candidates],
                "val_acc_before": before["validation"],
                "val_failure_acc_before": before["validation_failures"],
            }
        ),
    )
