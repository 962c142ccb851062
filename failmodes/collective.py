"""Failures shared across models: overlap of failure sets, within and across model categories.

Chegini & Feizi (section 5.3, figure 4) find that models of one family (ResNets, ViTs, CLIPs, ...)
fail on much the same images: the intersection over union of their failure sets is high within
a category and lower across categories. [`failure_iou`][failure_iou] computes that matrix for any
set of models evaluated on the same debug set.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from failmodes._imports import require
from failmodes.attributes import phrase
from failmodes.ranking import wilson_interval

if TYPE_CHECKING:
    from failmodes.debugger import Debugger
    from failmodes.results import GeneratedSet, RunResult

__all__ = [
    "CollectiveResult",
    "Comparison",
    "collective_repair",
    "compare",
    "failure_iou",
    "failure_masks",
    "mean_iou",
    "plot_failure_iou",
    "pooled_modes",
]


def failure_masks(
    predictions: Mapping[str, Sequence[int] | np.ndarray], labels: Sequence[int] | np.ndarray
) -> dict[str, np.ndarray]:
    """``{model: boolean mask of its failures}`` from each model's predictions on one debug set.

    Args:
        predictions: ``{model: predicted label per debug sample}``.
        labels: the debug set's true labels.

    Returns:
        ``{model: mask}``, ``True`` where the model's prediction differs from the label, in the
        order of ``predictions``.

    Raises:
        ValueError: if a model's predictions do not have one entry per label.

    Examples:
        >>> from failmodes.collective import failure_masks
        >>> masks = failure_masks({"a": [0, 1, 1], "b": [0, 0, 1]}, labels=[0, 1, 0])
        >>> {name: mask.tolist() for name, mask in masks.items()}
        {'a': [False, False, True], 'b': [False, True, True]}
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
            e.g. from [`failure_masks`][failure_masks]; every mask has the same length.
        categories: ``{model: category}`` (``"ResNet"``, ``"ViT"``, ...); kept in the frame's
            ``attrs["categories"]`` and used by [`mean_iou`][mean_iou] and
            [`plot_failure_iou`][plot_failure_iou].

    Returns:
        A square DataFrame indexed by model names in input order; the diagonal is 1 (0 for a
        model without failures), and the IoU of two models without failures is 0.

    Raises:
        ValueError: if ``failures`` is empty, the masks differ in length, or ``categories``
            lacks a model.

    Examples:
        >>> from failmodes.collective import failure_iou
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

    Args:
        frame: a matrix from [`failure_iou`][failure_iou].
        categories: ``{model: category}`` for every model of ``frame``; ``None`` uses the
            categories given to [`failure_iou`][failure_iou] (``frame.attrs["categories"]``).

    Returns:
        ``{"same_category": float | None, "cross_category": float | None, "pairs_same": int,
        "pairs_cross": int}`` (``None`` when there is no such pair).

    Raises:
        ValueError: if no categories are given nor kept in ``frame``.

    Examples:
        >>> from failmodes.collective import failure_iou, mean_iou
        >>> frame = failure_iou({"a": [1, 1, 0, 0], "b": [1, 0, 1, 0], "c": [1, 1, 0, 0]},
        ...                     categories={"a": "cnn", "b": "vit", "c": "cnn"})
        >>> summary = mean_iou(frame)
        >>> round(summary["same_category"], 2), round(summary["cross_category"], 2)
        (1.0, 0.33)
        >>> summary["pairs_same"], summary["pairs_cross"]
        (1, 2)
    """
    categories = categories or frame.attrs.get("categories")
    if not categories:
        raise ValueError("mean_iou needs categories (an argument, or failure_iou(categories=))")
    missing = [name for name in frame.index if name not in categories]
    if missing:
        raise ValueError(f"categories has no category for the models {missing}")
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
    """A heatmap of [`failure_iou`][failure_iou]'s matrix, models grouped by category.

    Needs matplotlib (``pip install "failmodes[plot]"``).

    Args:
        frame: a matrix from [`failure_iou`][failure_iou]; its categories, when it has them,
            group the models and label them.
        ax: the matplotlib ``Axes`` to draw on; ``None`` makes a new figure sized to the
            number of models.
        annotate: write each IoU in its cell (for up to 20 models).

    Returns:
        The matplotlib ``Axes``.

    Raises:
        ImportError: if matplotlib is not installed (it names the extra).

    Examples:
        ```python
        frame = failure_iou(failure_masks(predictions, labels), categories=categories)
        ax = plot_failure_iou(frame)
        ax.figure.savefig("failure_iou.png", bbox_inches="tight")
        ```
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
            ax.text(
                j,
                i,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if value > 0.6 else "white",
            )
    ax.figure.colorbar(image, ax=ax, label="IoU of failure sets")
    ax.set_title("Failure overlap (intersection over union)")
    return ax


# -- collective repair ---------------------------------------------------------------------------


def pooled_modes(results: Mapping[str, RunResult], k: int) -> dict[str, list[str]]:
    """Per class, the ``k`` values most frequent among the captions of all models' failures.

    The captions of every model's ``debug_seed`` failures are pooled: an image that several
    models fail on counts once per model, so modes shared across the category weigh more.
    Ties are broken by the order of the class's candidates (as in one model's top-k).

    Args:
        results: ``{model: RunResult}`` of the models' own runs; the first one's candidates
            break ties.
        k: values kept per class.

    Returns:
        ``{class_name: [value, ...]}``, most frequent first; classes without captions are left
        out.

    Examples:
        ```python
        results = {name: dbg.run(train, debug, test, seed=0) for name, dbg in debuggers.items()}
        pooled_modes(results, k=3)  # {"circle": ["on sand", ...], ...}
        ```
    """
    if not results:
        raise ValueError("results must hold at least one model's RunResult, got none")
    first = next(iter(results.values()))
    counts: dict[str, Counter] = {}
    for result in results.values():
        modes = result.modes
        for label, caption in zip(modes.labels, modes.captions, strict=True):
            if caption.value is not None:
                counts.setdefault(modes.class_names[int(label)], Counter())[caption.value] += 1
    out = {}
    for name, counter in counts.items():
        order = {v: i for i, v in enumerate(first.modes.candidates.get(name, []))}
        ranked = sorted(counter, key=lambda v: (-counter[v], order.get(v, len(order)), v))
        out[name] = ranked[:k]
    return out


@dataclass
class CollectiveResult:
    """One generated set, made once for a category of models, reused by every one of them.

    Attributes:
        kind: ``"pooled"`` (type 1: the modes of all the models' failures pooled) or
            ``"source"`` (type 2: one model's own failure modes serve the whole category).
        source: the source model of a ``"source"`` repair.
        modes: the failure modes the set was generated for, per class.
        generated: the generated set.
        table: one row per model: its individual and collective gains on its own
            ``debug_heldout`` failures, their ratio (the paper's "relative accuracy"), the test
            accuracy before and after the collective repair, and the chosen ``lam``.
        ratio: the category's sum of collective gains over the sum of individual gains, the
            source model left out (``None`` when the individual gains sum to zero).
        heads: the collectively repaired head of each model.

    Examples:
        [`collective_repair`][collective_repair] makes one; by hand, for two models:

        >>> import pandas as pd
        >>> from failmodes.collective import CollectiveResult
        >>> from failmodes.results import GeneratedSet
        >>> table = pd.DataFrame({"model": ["a", "b"], "source": [True, False],
        ...                       "individual_gain": [0.4, 0.3], "collective_gain": [0.4, 0.24]})
        >>> result = CollectiveResult("source", "a", {"fox": ["in a desert"]},
        ...                           GeneratedSet.from_outputs([], []),
        ...                           table.set_index("model"), ratio=0.8)
        >>> result.to_frame()["collective_gain"].to_dict()
        {'a': 0.4, 'b': 0.24}
    """

    kind: str
    source: str | None
    modes: dict[str, list[str]]
    generated: GeneratedSet
    table: pd.DataFrame
    ratio: float | None
    heads: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """The per-model table.

        Returns:
            ``table``: one row per model (index ``model``), as described above.
        """
        return self.table


def collective_repair(
    debuggers: Mapping[str, Debugger],
    individual: Mapping[str, RunResult],
    train: Any,
    debug: Any,
    test: Any,
    *,
    kind: str = "pooled",
    source: str | None = None,
    k: int | None = None,
    images_per_mode: int | None = None,
    seed: int = 0,
) -> CollectiveResult:
    """Repair every model of a category with one generated set (Chegini & Feizi, section 5.4).

    Args:
        debuggers: ``{model: Debugger}``, one per model of the category, sharing the
            proposer's answers, the captioner, the generator, the class names and attribute.
            The generated set is made with the first one's generator.
        individual: ``{model: RunResult}`` of each model's own
            [`run`][failmodes.debugger.Debugger.run]
            on the same data and seed (their failures, captions and individual gains are used).
        train: the training data used to refit heads.
        debug: the debug set.
        test: the test set.
        kind: ``"pooled"`` (type 1) or ``"source"`` (type 2).
        source: the source model for ``kind="source"``; ``None``: the first model.
        k: failure modes per class; ``None``: the source's (or first model's) chosen ``k``.
        images_per_mode: images per mode; ``None``: that model's chosen number.
        seed: the seed of generation and of the head fits.

    Returns:
        A [`CollectiveResult`][CollectiveResult].

    Raises:
        ValueError: if ``debuggers`` is empty, ``individual`` lacks a model, ``kind`` is
            neither ``"pooled"`` nor ``"source"``, ``source`` is not one of the models, or
            ``source`` is given with ``kind="pooled"``; and as the Debugger's steps do.

    Examples:
        ```python
        debuggers = {name: Debugger(**components, extractor=TorchExtractor(model))
                     for name, model in models.items()}
        individual = {name: dbg.run(train, debug, test, seed=0) for name, dbg in debuggers.items()}
        pooled = collective_repair(debuggers, individual, train, debug, test, kind="pooled")
        pooled.table  # each model's individual and collective gains on its debug_heldout
        pooled.ratio  # collective over individual gains
        ```
    """
    names = list(debuggers)
    if not names:
        raise ValueError("debuggers is empty: pass at least one model's Debugger")
    missing = [n for n in names if n not in individual]
    if missing:
        raise ValueError(f"individual has no RunResult for models {missing}")
    if kind not in ("pooled", "source"):
        raise ValueError(f'kind must be "pooled" or "source", got {kind!r}')
    if kind == "source":
        source = names[0] if source is None else source
        if source not in debuggers:
            raise ValueError(f"source {source!r} is not one of the models {names}")
    elif source is not None:
        raise ValueError('source= is for kind="source"')
    reference = individual[source if source is not None else names[0]]
    k = int(reference.config["k"]) if k is None else int(k)
    if images_per_mode is not None and (
        isinstance(images_per_mode, bool)
        or not isinstance(images_per_mode, int | np.integer)
        or images_per_mode < 1
    ):
        raise ValueError(f"images_per_mode must be a positive integer, got {images_per_mode!r}")
    n = int(reference.config["images_per_mode"]) if images_per_mode is None else images_per_mode
    spread: dict = {}  # the source's own share of images beyond its modes, as in its run
    if kind == "pooled":
        modes = pooled_modes({m: individual[m] for m in names}, k)
    else:
        captions = individual[source].modes
        modes = captions.top_k(k)
        spread = {
            "uniform_prior": [float(reference.config.get("uniform_prior") or 0.0)],
            "proposals": captions.candidates,
            "class_failures": captions.class_failures(),
        }

    from failmodes.steps import evaluate, real_weights, repair, targeted_plan  # torch: on use

    proposals = individual[names[0]].modes.candidates
    rows, heads, generated = [], {}, None
    for name in names:  # the first model's generator makes the set; the others reuse it
        dbg, result = debuggers[name], individual[name]
        prep = dbg.prepare(train, debug, test, seed=seed, failures=result.failures)
        grids, tools = dbg.grids(), dbg.tools()
        plan = targeted_plan(
            modes,
            class_names=dbg.class_names,
            attribute=dbg.attribute,
            k=[k],
            images_per_mode=[n],
            lam=grids["lam"],
            lam_real=real_weights(tools, grids["lam_real"]),  # each model's own, as in its run
            seed=seed,
            **spread,
        )
        fixed = repair(tools, prep, plan, proposals=proposals, generated=generated, seed=seed)
        generated, pick = fixed.pool, fixed.selection
        heads[name] = pick.head
        held = prep.debug.select(result.failures.heldout)
        after = evaluate(pick.head, {"heldout": held, "test": prep.test})
        before_held = result.accuracy["before"]["debug_heldout"]
        own_gain = result.accuracy["failmodes"]["debug_heldout"] - before_held
        gain = after["heldout"] - before_held
        rows.append(
            {
                "model": name,
                "source": name == source,
                "individual_gain": own_gain,
                "collective_gain": gain,
                "relative_gain": gain / own_gain if own_gain > 0 else None,
                "test_before": result.accuracy["before"]["test"],
                "test_after": after["test"],
                "lam": float(pick.settings["lam"]),
            }
        )
    table = pd.DataFrame(rows).set_index("model")
    others = table[~table["source"]]
    total = float(others["individual_gain"].sum())
    ratio = float(others["collective_gain"].sum()) / total if total > 0 else None
    return CollectiveResult(kind, source, modes, generated, table, ratio, heads)


@dataclass
class Comparison:
    """Where two models of one debug set fail differently, mode by mode.

    Attributes:
        names: the two models' names, as ``compare`` was given them.
        attribute: the spurious attribute.
        table: one row per ``(class, value)`` captioned in either run: ``class``, ``value``,
            ``total`` (captioned images outside the validation part), per model
            ``failures_<name>``, ``rate_<name>`` and its Wilson interval ``ci_low_<name>`` /
            ``ci_high_<name>``, and ``fails`` (the name of the model that fails clearly more
            often, the intervals apart, or ``None``).
        reason: when no mode is clearly apart, why, in words (no captioned image to compare;
            the models fail on the same images, and how the runs differ then; or the gaps
            that are within the intervals); ``None`` when a mode is.
    """

    names: tuple[str, str]
    attribute: str
    table: pd.DataFrame
    reason: str | None = None

    def describe(self) -> list[str]:
        """The modes where one model fails and the other does not, in words.

        Returns:
            ``"cnn fails on circle in fog, mixer does not: 24 vs 3 failures of 30 images"``,
            one line per mode where the intervals are apart, the largest gaps first; when there
            is none, one line that says why (the ``reason``).
        """
        if self.reason is not None:
            return [f"no mode where one model fails clearly more often: {self.reason}"]
        a, b = self.names
        rows = self.table[self.table["fails"].notna()]
        gap = (rows[f"failures_{a}"] - rows[f"failures_{b}"]).abs()
        lines = []
        for i in gap.sort_values(ascending=False, kind="stable").index:
            row = rows.loc[i]
            worse = row["fails"]
            better = b if worse == a else a
            lines.append(
                f"{worse} fails on {phrase(row['class'], row['value'], self.attribute)}, "
                f"{better} does not: {row[f'failures_{worse}']} vs {row[f'failures_{better}']} "
                f"failures of {row['total']} images"
            )
        return lines


def compare(
    result_a: RunResult, result_b: RunResult, *, names: tuple[str, str] = ("a", "b")
) -> Comparison:
    """The modes where one model fails and the other does not.

    Both runs must be of one debug set (the same labels) with one proposal set, and should
    share their seed (so that their validation parts agree). Every image either run captioned
    (its ``debug_seed`` failures and, with ``rank="excess"``, its sampled successes) is counted
    for both models, from each run's predictions on the whole debug set; so both models are
    measured on the same images.

    Args:
        result_a: one model's [`RunResult`][failmodes.results.RunResult].
        result_b: the other's.
        names: what to call them in the table and the words.

    Returns:
        A [`Comparison`][Comparison]; when no mode is clearly apart, its ``reason`` (and its
        ``describe()``) says why.

    Raises:
        ValueError: if the runs are of different debug sets, proposals or attributes, the names
            are not two distinct non-empty strings, or the runs captioned one image differently
            (use one captioner and one ``rank`` for both).

    Examples:
        ```python
        comparison = compare(runs["cnn"], runs["mixer"], names=("cnn", "mixer"))
        comparison.describe()  # ["cnn fails on circle in fog, mixer does not: 24 vs 3 ..."]
        ```
    """
    a, b = _check_pair(result_a, result_b, names)
    counted = _counted(result_a, result_b)
    table = _comparison_table(result_a, result_b, counted, (a, b))
    reason = None
    if not table["fails"].notna().any():
        reason = _why_alike(result_a, result_b, table, counted, (a, b))
    return Comparison((a, b), result_a.attribute, table, reason)


def _counted(result_a: RunResult, result_b: RunResult) -> dict[int, str]:
    """``{debug index: value}`` of the images compared: captioned with a value, not validation."""
    validation = set(result_a.failures.validation.tolist()) | set(
        result_b.failures.validation.tolist()
    )
    captions = _shared_captions(result_a, result_b)
    return {
        index: value
        for index, value in sorted(captions.items())
        if value is not None and index not in validation
    }


def _wrong(result: RunResult, labels: np.ndarray) -> np.ndarray:
    return result.failures.predictions != labels


def _comparison_table(
    result_a: RunResult, result_b: RunResult, counted: dict[int, str], names: tuple[str, str]
) -> pd.DataFrame:
    """One row per ``(class, value)`` of the counted images: each model's failures there."""
    a, b = names
    labels = result_a.failures.labels
    wrong_a, wrong_b = _wrong(result_a, labels), _wrong(result_b, labels)
    tally: dict[tuple[str, str], list[int]] = {}
    for index, value in counted.items():
        row = tally.setdefault((result_a.class_names[int(labels[index])], value), [0, 0, 0])
        row[0] += 1
        row[1] += bool(wrong_a[index])
        row[2] += bool(wrong_b[index])
    rows = []
    for (cls, value), (total, fail_a, fail_b) in tally.items():
        ci_a, ci_b = wilson_interval(fail_a, total), wilson_interval(fail_b, total)
        fails = a if ci_a[0] > ci_b[1] else b if ci_b[0] > ci_a[1] else None
        rows.append(
            {
                "class": cls,
                "value": value,
                "total": total,
                f"failures_{a}": fail_a,
                f"rate_{a}": fail_a / total,
                f"ci_low_{a}": ci_a[0],
                f"ci_high_{a}": ci_a[1],
                f"failures_{b}": fail_b,
                f"rate_{b}": fail_b / total,
                f"ci_low_{b}": ci_b[0],
                f"ci_high_{b}": ci_b[1],
                "fails": fails,
            }
        )
    order = {name: i for i, name in enumerate(result_a.class_names)}
    table = pd.DataFrame(rows, columns=_comparison_columns(a, b))
    table = table.sort_values(
        ["class", "value"],
        key=lambda col: col.map(order) if col.name == "class" else col,
        kind="stable",
    )
    return table.reset_index(drop=True)


def _why_alike(
    result_a: RunResult,
    result_b: RunResult,
    table: pd.DataFrame,
    counted: dict[int, str],
    names: tuple[str, str],
) -> str:
    """Why no mode of ``table`` is clearly apart, in words."""
    if not counted:
        return (
            "there is none to compare: neither run captioned an image with a value outside the "
            "validation part"
        )
    labels = result_a.failures.labels
    index = np.fromiter(counted, dtype=np.int64, count=len(counted))
    differ = int((_wrong(result_a, labels)[index] != _wrong(result_b, labels)[index]).sum())
    if differ:
        return _within_intervals(table, names, differ, len(index), result_a.attribute)
    same = (
        f"the two models fail on the same images (each of the {len(index)} captioned images is "
        "a failure of both or of neither)"
    )
    settings = _differing(result_a.config, result_b.config)
    if settings:
        return f"{same}; the runs' settings differ ({settings}), but not the models' failures"
    figures = _differing(_figures(result_a), _figures(result_b))
    if figures:
        return f"{same}; the runs' settings are equal, their figures differ ({figures})"
    return f"{same}; the two runs' settings are equal and their summaries equal on every figure"


def _within_intervals(
    table: pd.DataFrame, names: tuple[str, str], differ: int, n: int, attribute: str
) -> str:
    """The gaps exist but are within the intervals: the largest one, in words."""
    a, b = names
    gap = (table[f"failures_{a}"] - table[f"failures_{b}"]).abs()
    row = table.loc[gap.idxmax()]
    return (
        f"the models fail differently on {differ} of the {n} captioned images, but on no mode "
        "are their failure rates' 95% intervals apart; the largest gap is "
        f"{row[f'failures_{a}']} ({a}) vs {row[f'failures_{b}']} ({b}) failures of "
        f"{row['total']} images of {phrase(row['class'], row['value'], attribute)}"
    )


def _differing(one: Mapping[str, Any], other: Mapping[str, Any]) -> str:
    """The keys whose values differ, sorted, at most five named."""
    keys = sorted(k for k in set(one) | set(other) if one.get(k) != other.get(k))
    more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    return ", ".join(keys[:5]) + more


def _figures(result: RunResult) -> dict[str, Any]:
    """The run's summary without its settings and run time (nothing when it has none)."""
    try:
        summary = result.summary()
    except KeyError:  # a run without the before or failmodes method has no summary
        return {}
    return {k: v for k, v in summary.items() if k not in ("config", "seconds")}


def _comparison_columns(a: str, b: str) -> list[str]:
    per_model = [
        f"{kind}_{name}" for name in (a, b) for kind in ("failures", "rate", "ci_low", "ci_high")
    ]
    return ["class", "value", "total", *per_model, "fails"]


def _check_pair(result_a: RunResult, result_b: RunResult, names: Any) -> tuple[str, str]:
    """The two names, once the runs are shown to be of one debug set and one proposal set."""
    if (
        not isinstance(names, tuple | list)
        or len(names) != 2
        or not all(isinstance(n, str) and n for n in names)
        or names[0] == names[1]
    ):
        raise ValueError(f"names must be two distinct non-empty strings, got {names!r}")
    fa, fb = result_a.failures, result_b.failures
    if len(fa.labels) != len(fb.labels) or not np.array_equal(fa.labels, fb.labels):
        raise ValueError("the two runs are of different debug sets (their labels differ)")
    if result_a.modes.candidates != result_b.modes.candidates:
        raise ValueError("the two runs were captioned among different proposals")
    if result_a.attribute != result_b.attribute:
        raise ValueError(
            f"the runs are about different attributes ({result_a.attribute!r}, "
            f"{result_b.attribute!r})"
        )
    return names[0], names[1]


def _shared_captions(result_a: RunResult, result_b: RunResult) -> dict[int, str | None]:
    """``{debug index: value}`` of every image either run captioned, checked to agree."""
    captions: dict[int, str | None] = {}
    disagree = 0
    for result in (result_a, result_b):
        modes = result.modes
        pairs = itertools.chain(
            zip(modes.indices.tolist(), modes.captions, strict=True),
            zip(modes.success_indices.tolist(), modes.success_captions, strict=True),
        )
        for index, caption in pairs:
            if index in captions and captions[index] != caption.value:
                disagree += 1
            captions.setdefault(int(index), caption.value)
    if disagree:
        raise ValueError(
            f"the two runs captioned {disagree} images differently; compare runs captioned by "
            "one captioner with one rank"
        )
    return captions
