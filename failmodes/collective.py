"""Failures shared across models: overlap of failure sets, within and across model categories.

Chegini & Feizi (section 5.3, figure 4) find that models of one family (ResNets, ViTs, CLIPs, ...)
fail on much the same images: the intersection over union of their failure sets is high within
a category and lower across categories. :func:`failure_iou` computes that matrix for any set of
models evaluated on the same debug set.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from failmodes._imports import require

__all__ = ["failure_iou", "failure_masks", "mean_iou", "plot_failure_iou"]


def failure_masks(
    predictions: Mapping[str, Sequence[int] | np.ndarray], labels: Sequence[int] | np.ndarray
) -> dict[str, np.ndarray]:
    """``{model: boolean mask of its failures}`` from each model's predictions on one debug set.

    Raises:
        ValueError: if a model's predictions do not have one entry per label.
    """
    labels = np.asarray(labels)
    masks = {}
    for name, preds in predictions.items():
        preds = np.asarray(preds)
        if preds.shape != labels.shape:
            raise ValueError(
                f"predictions[{name!r}] has shape {preds.shape} but labels has {labels.shape}: "
                "every model must be evaluated on the same debug set"
            )
        masks[name] = preds != labels
    return masks


def failure_iou(
    failures: Mapping[str, Sequence[bool] | np.ndarray],
    categories: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The intersection over union of every pair of models' failure sets.

    Args:
        failures: ``{model: boolean mask over the debug set}`` (``True`` where the model fails),
            e.g. from :func:`failure_masks`; every mask has the same length.
        categories: ``{model: category}`` (``"ResNet"``, ``"ViT"``, ...); kept in the frame's
            ``attrs["categories"]`` and used by :func:`mean_iou` and :func:`plot_failure_iou`.

    Returns:
        A square DataFrame indexed by model names in input order; the diagonal is 1 (0 for a
        model without failures), and the IoU of two models without failures is 0.

    Example:
        >>> frame = failure_iou({"a": [1, 1, 0, 0], "b": [1, 0, 1, 0], "c": [1, 1, 0, 0]})
        >>> frame.round(2).values.tolist()
        [[1.0, 0.33, 1.0], [0.33, 1.0, 0.33], [1.0, 0.33, 1.0]]
    """
    names = list(failures)
    if not names:
        raise ValueError("failures is empty: pass at least one model's failure mask")
    lengths = {len(np.asarray(failures[n]).reshape(-1)) for n in names}
    if len(lengths) > 1:
        raise ValueError(f"failure masks have different lengths {sorted(lengths)}")
    masks = np.stack([np.asarray(failures[n]).astype(bool).reshape(-1) for n in names])
    m = masks.astype(np.float64)
    inter = m @ m.T
    counts = m.sum(axis=1)
    union = counts[:, None] + counts[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    frame = pd.DataFrame(iou, index=names, columns=names)
    if categories is not None:
        missing = [n for n in names if n not in categories]
        if missing:
            raise ValueError(f"categories has no category for models {missing}")
        frame.attrs["categories"] = {n: categories[n] for n in names}
    return frame


def mean_iou(frame: pd.DataFrame, categories: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Mean IoU over pairs of distinct models within a category and across categories.

    Returns:
        ``{"same_category": float | None, "cross_category": float | None, "pairs_same": int,
        "pairs_cross": int}`` (``None`` when there is no such pair).
    """
    categories = categories or frame.attrs.get("categories")
    if not categories:
        raise ValueError("mean_iou needs categories (an argument, or failure_iou(categories=))")
    same, cross = [], []
    for a, b in itertools.combinations(frame.index, 2):
        (same if categories[a] == categories[b] else cross).append(float(frame.loc[a, b]))
    return {
        "same_category": float(np.mean(same)) if same else None,
        "cross_category": float(np.mean(cross)) if cross else None,
        "pairs_same": len(same),
        "pairs_cross": len(cross),
    }


def plot_failure_iou(frame: pd.DataFrame, *, ax: Any = None, annotate: bool = True) -> Any:
    """A heatmap of :func:`failure_iou`'s matrix, models grouped by category (needs ``plot``).

    Returns:
        The matplotlib ``Axes``.
    """
    plt = require("matplotlib.pyplot", feature="plot_failure_iou")
    categories = frame.attrs.get("categories") or {}
    order = sorted(
        frame.index, key=lambda n: (str(categories.get(n, "")), list(frame.index).index(n))
    )
    data = frame.loc[order, order]
    if ax is None:
        size = 1.0 + 0.55 * len(order)
        _, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(data.values, vmin=0.0, vmax=1.0, cmap="viridis")
    labels = [f"{n} ({categories[n]})" if n in categories else str(n) for n in order]
    ax.set_xticks(range(len(order)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(order)), labels)
    if annotate and len(order) <= 20:
        for i, j in itertools.product(range(len(order)), repeat=2):
            value = data.values[i, j]
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.6 else "white")  # fmt: skip
    ax.figure.colorbar(image, ax=ax, label="IoU of failure sets")
    ax.set_title("Failure overlap (intersection over union)")
    return ax
