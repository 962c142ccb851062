"""Sweeps of the repair's two knobs, lambda and k (Chegini & Feizi, figure 5).

Each sweep is one call: it runs the method's steps once (features, failures, captions, one
generated set at the largest setting), then refits the head for every value and measures it on
the validation part of the debug set (never on ``debug_heldout`` or test, which stay unbiased):
overall accuracy and accuracy on the validation part's failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from failmodes._imports import require
from failmodes.debugger import _validation_splits

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
    """

    parameter: str
    table: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def plot(self, *, ax: Any = None) -> Any:
        """Validation accuracy, overall and on failures, against the swept value (``plot``)."""
        plt = require("matplotlib.pyplot", feature="SweepResult.plot")
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        x = self.table[self.parameter]
        ax.plot(x, self.table["val_acc"], marker="o", label="validation (all)")
        ax.plot(x, self.table["val_failure_acc"], marker="o", label="validation failures")
        ax.axhline(self.table["val_acc_before"].iloc[0], ls="--", lw=1, color="grey",
                   label="before (all)")  # fmt: skip
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

    ``k`` and ``images_per_mode`` default to the largest of the Debugger's grids.
    """
    lams = [float(v) for v in values]
    if not lams or any(not np.isfinite(v) or v < 0 for v in lams):
        raise ValueError(f"values must be a non-empty list of lam >= 0, got {list(values)!r}")
    k = max(dbg._grid(dbg.k, "k", int, 1)) if k is None else int(k)
    return _sweep(dbg, train, debug, "lam", [(k, lam) for lam in lams], images_per_mode, seed)


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

    The images of a smaller ``k`` are those of a larger one's top modes, as in a run.
    """
    ks = [int(v) for v in values]
    if not ks or any(v < 1 for v in ks):
        raise ValueError(f"values must be a non-empty list of k >= 1, got {list(values)!r}")
    return _sweep(dbg, train, debug, "k", [(k, float(lam)) for k in ks], images_per_mode, seed)


def _sweep(
    dbg: Debugger,
    train: Any,
    debug: Any,
    parameter: str,
    settings: list[tuple[int, float]],
    images_per_mode: int | None,
    seed: int,
) -> SweepResult:
    n = max(dbg._grid(dbg.images_per_mode, "images_per_mode", int, 1))
    n = n if images_per_mode is None else int(images_per_mode)
    k_max = max(k for k, _ in settings)
    proposals = dbg.propose()
    train_f, train_y = dbg.features(train, name="train")
    debug_f, debug_y = dbg.features(debug, name="debug")
    failures = dbg.find_failures(debug, seed=seed, features=(debug_f, debug_y))
    modes = dbg.caption(debug, failures, proposals, k=k_max)
    ranked = modes.top_k(k_max)
    names = dbg._class_names()
    generated = dbg.generate(
        dbg.requests({(c, v): n for c in names for v in ranked.get(c, [])}, seed=seed),
        candidates=proposals,
    )
    gen_f = dbg._features_of_generated(generated)
    rank = np.array(
        [ranked[generated.requests[int(j)].class_name].index(generated.requests[int(j)].value)
         for j in generated.request_index],
        dtype=np.int64,
    )  # fmt: skip
    parts = _validation_splits(failures, debug_f, debug_y)
    splits = {"val_acc": parts["validation"], "val_failure_acc": parts["validation_failures"]}
    before = dbg.evaluate(dbg._head(train_f), splits)
    rows = []
    for k, lam in settings:
        mask = torch.as_tensor(rank < k)
        head = dbg.repair(train_f, train_y, gen_f[mask], generated.labels[mask.numpy()],
                          lam=lam, seed=seed)  # fmt: skip
        rows.append(
            {
                "lam": lam,
                "k": k,
                "images_per_mode": n,
                **dbg.evaluate(head, splits),
                "n_generated": int(mask.sum()),
                "val_acc_before": before["val_acc"],
                "val_failure_acc_before": before["val_failure_acc"],
            }
        )
    return SweepResult(parameter, pd.DataFrame(rows))
