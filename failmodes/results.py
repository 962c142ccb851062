"""Result types: plain dataclasses with ``to_frame()`` (pandas) and JSON-friendly summaries."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from failmodes.attributes import phrase
from failmodes.images import ImageList
from failmodes.interfaces import Caption, GenerationRequest
from failmodes.methods import SPLITS
from failmodes.ranking import (
    DEFAULT_RANK,
    STATS_COLUMNS,
    Ranking,
    get_ranking,
    mode_stats,
    top_modes,
)

__all__ = [
    "FailureExample",
    "FailureModes",
    "FailureSet",
    "Features",
    "GeneratedSet",
    "ModeAccuracy",
    "PreparedRun",
    "RunResult",
]


@dataclass
class Features:
    """Backbone features of a dataset with its labels, as the steps hand them to each other.

    It unpacks like a pair, ``features, labels = dbg.features(data)``.

    Attributes:
        features: an ``(n, d)`` float32 tensor on the CPU, or
            [`FeatureShards`][failmodes.shards.FeatureShards] of a set kept out of memory
            (``Debugger(train_shards=True)``), which head fits read shard by shard.
        labels: the ``n`` int64 labels.
        key: what the features were computed from, as a digest (the extractor's settings and
            the data's fingerprint); the cache keys of head fits on them use it. ``None`` when
            unknown: the values are then hashed when a key is needed.

    Examples:
        >>> import numpy as np, torch
        >>> from failmodes import Features
        >>> data = Features(torch.eye(3), np.array([0, 1, 1]), key="demo")
        >>> features, labels = data
        >>> part = data.select(np.array([False, True, True]))
        >>> len(part), part.labels.tolist(), part.key != data.key
        (2, [1, 1], True)
    """

    features: Any
    labels: np.ndarray
    key: str | None = None

    @classmethod
    def of(cls, features: Any, labels: Any = None) -> Features:
        """``Features`` from a tensor (or array) and labels; ``Features`` pass through.

        Args:
            features: ``(n, d)`` features, a ``(features, labels)`` pair, ``Features``, or
                [`FeatureShards`][failmodes.shards.FeatureShards] (which carry their labels).
            labels: their ``n`` labels (``None`` for a pair, ``Features`` or shards).

        Returns:
            The features as ``Features``, in a tensor (shards stay shards).
        """
        if isinstance(features, Features):
            return features
        if labels is None and hasattr(features, "num_shards"):  # FeatureShards: labels with them
            return cls(features, features.labels.numpy())
        if labels is None and isinstance(features, tuple | list) and len(features) == 2:
            features, labels = features
        import torch  # results stay importable without torch

        from failmodes.data import as_labels

        return cls(torch.as_tensor(features), as_labels(labels))

    def __post_init__(self) -> None:
        """Refuse features and labels of different lengths."""
        if self.features is not None and len(self.features) != len(self.labels):
            raise ValueError(
                f"{len(self.features)} rows of features but {len(self.labels)} labels; give one "
                "label per row"
            )

    def __iter__(self) -> Any:
        """``features`` then ``labels``, so that the object unpacks like a pair."""
        return iter((self.features, self.labels))

    def __len__(self) -> int:
        """The number of rows."""
        return len(self.labels)

    def select(self, index: Sequence[int] | Sequence[bool] | np.ndarray) -> Features:
        """The rows at ``index`` (positions, or one boolean per row).

        Args:
            index: positions, or a boolean mask with one entry per row.

        Returns:
            A new ``Features`` whose key, when this one has a key, names the selection too.
        """
        import torch  # results stay importable without torch

        if not isinstance(self.features, torch.Tensor):
            raise TypeError(
                f"rows cannot be selected from {type(self.features).__name__}; select needs "
                "features held in a tensor"
            )
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        index = index.astype(np.int64)
        key = None
        if self.key is not None:
            key = hashlib.sha256(self.key.encode() + b"|" + index.tobytes()).hexdigest()
        return Features(self.features[torch.as_tensor(index)], self.labels[index], key)


@dataclass
class PreparedRun:
    """What every use of one model on one debug set starts from.

    [`Debugger.prepare`][failmodes.debugger.Debugger.prepare] makes it;
    [`run`][failmodes.debugger.Debugger.run], [`refit_on`][failmodes.debugger.Debugger.refit_on],
    the [sweeps][failmodes.sweeps] and [collective repair][failmodes.collective.collective_repair]
    share it.

    Attributes:
        train: features of the training data (the head is refit on them).
        debug: features of the debug set.
        test: features of the test set, or ``None`` when none was given.
        head: the model's original head.
        failures: the debug set's failures and validation part.
        validation: ``{"validation": ..., "validation_failures": ...}``, the validation part of
            the debug set and the original head's failures among it; candidates are chosen on
            it.
        guard: features of in-distribution images that the repair does not train on, or
            ``None``: a candidate that loses more than the guard tolerance on them is refused.
        extra: ``{name: features}``, more sets every head is evaluated on (for reporting only).
        real: features of the debug set's own images that a repair may refit on (its
            ``debug_seed`` failures, see [`real_set`][failmodes.steps.failures.real_set]), or
            ``None``.
        guard_source: where the guard came from: ``"given"`` (``run(..., guard=data)``),
            ``"train"`` (a held-out share of the training data, a proxy; see
            [`guard_split`][failmodes.steps.failures.guard_split]) or ``None`` (no guard).
        guard_head: the head a candidate's guard accuracy is compared with: ``None`` for the
            original head (a guard of the user's, which the model never saw); for a share of
            the training data, the head refit on the rest of it alone, which did not see that
            share either (the original head did, so it would flatter itself).
        guard_resolution: the smallest loss on the guard taken as a loss: a candidate is
            refused when it loses more than the larger of this and the guard tolerance. 0 for a
            guard of the user's (the tolerance is taken as given); for a share of the training
            data, two of its images' worth (a proxy of a hundred images cannot tell a loss of
            one image from noise).
        train_rows: the rows of the training data that ``train`` holds (``None``: every row;
            a share held out as the guard is not among them).

    Examples:
        ```python
        prep = dbg.prepare(train, debug, test, seed=0)
        prep.failures.heldout  # the debug_heldout failures, by debug-set index
        dbg.evaluate(prep.head, prep.validation)  # the original head on the validation part
        ```
    """

    train: Features
    debug: Features
    test: Features | None
    head: Any
    failures: FailureSet
    validation: dict[str, Features]
    guard: Features | None = None
    extra: dict[str, Features] = field(default_factory=dict)
    real: Features | None = None
    guard_source: str | None = None
    guard_head: Any = None
    guard_resolution: float = 0.0
    train_rows: np.ndarray | None = None


@dataclass
class FailureSet:
    """The debug set's failures, split per class into ``debug_seed`` and ``debug_heldout``.

    Indices refer to the debug set. Samples of the debug set's validation part (used to choose
    hyper-parameters) are in ``validation`` and never among the failures.

    Attributes:
        labels: true label of every debug sample.
        predictions: the model's prediction for every debug sample.
        validation: indices of the validation part of the debug set.
        seed: indices of the failures used for debugging.
        heldout: indices of the failures never used (an unbiased measure).

    Examples:
        [`Debugger.find_failures`][failmodes.debugger.Debugger.find_failures] makes one; by
        hand, for a debug set of five samples:

        >>> import numpy as np
        >>> from failmodes import FailureSet
        >>> failures = FailureSet(
        ...     labels=np.array([0, 0, 1, 1, 1]),
        ...     predictions=np.array([1, 0, 0, 1, 0]),
        ...     validation=np.array([1, 3]),
        ...     seed=np.array([0]),
        ...     heldout=np.array([2, 4]),
        ... )
        >>> failures.failures
        array([0, 2, 4])
        >>> failures.to_frame()["part"].tolist()
        ['debug_seed', 'debug_heldout', 'debug_heldout']
    """

    labels: np.ndarray
    predictions: np.ndarray
    validation: np.ndarray
    seed: np.ndarray
    heldout: np.ndarray

    @property
    def failures(self) -> np.ndarray:
        """All failure indices outside the validation part, sorted."""
        return np.sort(np.concatenate([self.seed, self.heldout]))

    def to_frame(self) -> pd.DataFrame:
        """The failures as a table, one row per failure, by debug-set index.

        Returns:
            Columns ``index`` (in the debug set), ``label``, ``prediction`` and ``part``
            (``"debug_seed"`` or ``"debug_heldout"``).
        """
        rows = [(int(i), "debug_seed") for i in self.seed] + [
            (int(i), "debug_heldout") for i in self.heldout
        ]
        rows.sort()
        idx = np.array([r[0] for r in rows], dtype=np.int64)
        return pd.DataFrame(
            {
                "index": idx,
                "label": self.labels[idx],
                "prediction": self.predictions[idx],
                "part": [r[1] for r in rows],
            }
        )


@dataclass
class FailureModes:
    """Captions of the ``debug_seed`` failures and, per class, the top-k values.

    Attributes:
        class_names: all class names, by label index.
        attribute: the spurious attribute.
        indices: debug-set indices of the captioned failures.
        labels: their true labels.
        predictions: the model's predictions for them.
        captions: one [`Caption`][failmodes.interfaces.Caption] per failure.
        candidates: the values each class's failures were captioned among.
        modes: ``{class_name: [value, ...]}``, the top-k values per class, ranked by ``rank``.
        success_indices: debug-set indices of the captioned successes (empty when only the
            failures were captioned).
        success_labels: their labels (the model predicted them right).
        success_captions: one [`Caption`][failmodes.interfaces.Caption] per success.
        usual: ``{class_name: value}``: each class's usual value, captioned beside the
            candidates; it counts in the class's totals and is never a mode.
        rank: the [ranking][failmodes.ranking.Ranking] of each class's values, by name
            (``"excess"``: the most failures beyond the class's base rate first, see
            [`stats`][stats]; ``"count"``: the most failures first) or as an object.
        significant: whether only values whose failure rate's interval clears the class's base
            rate are modes.

    Examples:
        [`Debugger.caption`][failmodes.debugger.Debugger.caption] makes one; by hand, from three
        captioned failures:

        >>> import numpy as np
        >>> from failmodes import Caption, FailureModes
        >>> modes = FailureModes.from_captions(
        ...     class_names=["fox", "wallet"],
        ...     attribute="background",
        ...     indices=np.array([3, 5, 8]),
        ...     labels=np.array([0, 0, 1]),
        ...     predictions=np.array([1, 1, 0]),
        ...     captions=[Caption("in a desert", 0.9), Caption("in a desert", 0.7),
        ...               Caption("in a jungle", 0.8)],
        ...     candidates={"fox": ["in a desert", "on a frozen lake"], "wallet": ["in a jungle"]},
        ...     k=1,
        ... )
        >>> modes.modes
        {'fox': ['in a desert'], 'wallet': ['in a jungle']}
        >>> modes.describe_mode("fox", "in a desert")
        'fox in a desert \u2192 predicted wallet (2 failures)'
    """

    class_names: list[str]
    attribute: str
    indices: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    captions: list[Caption]
    candidates: dict[str, list[str]]
    modes: dict[str, list[str]] = field(default_factory=dict)
    success_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    success_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    success_captions: list[Caption] = field(default_factory=list)
    usual: dict[str, str] = field(default_factory=dict)
    rank: str | Ranking = DEFAULT_RANK
    significant: bool = False

    @classmethod
    def from_captions(
        cls,
        *,
        class_names: Sequence[str],
        attribute: str,
        indices: np.ndarray,
        labels: np.ndarray,
        predictions: np.ndarray,
        captions: Sequence[Caption],
        candidates: dict[str, list[str]],
        k: int,
        successes: tuple[np.ndarray, np.ndarray, Sequence[Caption]] | None = None,
        usual: dict[str, str] | None = None,
        rank: str | Ranking = DEFAULT_RANK,
        significant: bool = False,
    ) -> FailureModes:
        """Count the captions per class and keep the ``k`` best-ranked values.

        Ties are broken by the order of the class's candidates, so the result is deterministic.

        Args:
            class_names: all class names, by label index.
            attribute: the spurious attribute the values belong to.
            indices: debug-set indices of the captioned failures.
            labels: their true labels.
            predictions: the model's predictions for them.
            captions: one [`Caption`][failmodes.interfaces.Caption] per failure, in the same
                order.
            candidates: ``{class_name: [value, ...]}``, the values each class's failures were
                captioned among (their order breaks ties).
            k: failure modes kept per class (at least 1); a class keeps fewer when fewer of its
                values were captioned.
            successes: ``(indices, labels, captions)`` of captioned successes, or ``None``.
            usual: each class's usual value (never a mode), or ``None``.
            rank: a ranking's name or a [`Ranking`][failmodes.ranking.Ranking].
            significant: keep only values whose failure rate's interval lies above the class's
                base rate (a class with none keeps its top ``k``, with a warning).

        Returns:
            The captions with ``modes`` set to the top ``k`` values of each class.

        Raises:
            ValueError: if ``k`` is less than 1 or ``rank`` is unknown.
        """
        if k < 1:
            raise ValueError(f"k must be a positive number of modes per class, got {k}")
        get_ranking(rank)  # a ValueError naming the rankings
        s_idx, s_labels, s_caps = successes if successes is not None else ([], [], [])
        result = cls(
            list(class_names),
            attribute,
            np.asarray(indices),
            np.asarray(labels),
            np.asarray(predictions),
            list(captions),
            dict(candidates),
            success_indices=np.asarray(s_idx, dtype=np.int64),
            success_labels=np.asarray(s_labels, dtype=np.int64),
            success_captions=list(s_caps),
            usual=dict(usual or {}),
            rank=rank,
            significant=significant,
        )
        result.modes = result.top_k(k, warn=True)
        return result

    def counts(self) -> dict[str, Counter]:
        """How many failures of each class were captioned with each value.

        Returns:
            ``{class_name: Counter(value -> number of failures)}``; failures captioned ``None``
            are not counted, and classes without a captioned failure are left out.
        """
        out: dict[str, Counter] = {}
        for label, cap in zip(self.labels, self.captions, strict=True):
            if cap.value is not None:
                out.setdefault(self.class_names[int(label)], Counter())[cap.value] += 1
        return out

    def class_failures(self) -> dict[str, int]:
        """Each class's captioned failures that were given a value.

        Returns:
            ``{class_name: failures}``, classes without one left out.
        """
        return {name: sum(counter.values()) for name, counter in self.counts().items()}

    @property
    def has_successes(self) -> bool:
        """Whether successes were captioned too, so that failure rates are known."""
        return len(self.success_captions) > 0

    def stats(self) -> pd.DataFrame:
        """Per class and value: failures, images, failure rate against the class's, excess.

        Counts are of the captioned images: the ``debug_seed`` failures and, when successes
        were captioned, a seeded half of the successes outside the validation part (so both are
        about half of their kind). A class's base rate is its captioned failures over its
        captioned images, whatever their value (the usual value and uncaptioned images
        included). Without captioned successes every total equals its failures.

        Returns:
            Columns ``class`` and those of [`STATS_COLUMNS`][failmodes.ranking.STATS_COLUMNS]
            (``lift`` = failure rate / base rate, ``excess`` = failures - total x base rate,
            ``ci_low``/``ci_high`` the 95% Wilson interval of the failure rate), one row per
            class with a captioned failure (in the order of their first failure) and captioned
            value, the usual value left out.
        """
        # counted once per captions: descriptions, top_k and the report ask for it per class
        key = (len(self.captions), len(self.success_captions), tuple(self.usual.items()))
        memo = self.__dict__.get("_stats_memo")
        if memo is None or memo[0] != key:
            frames = [
                mode_stats(counts, class_failures=fails, class_total=total).assign(
                    **{"class": name}
                )
                for name, (counts, fails, total) in self._class_counts().items()
            ]
            columns = ["class", *STATS_COLUMNS]
            table = (
                pd.concat(frames, ignore_index=True)[columns]
                if frames
                else pd.DataFrame(columns=columns)
            )
            memo = self.__dict__["_stats_memo"] = (key, table)
        return memo[1].copy()

    def excess(self) -> dict[str, dict[str, float]]:
        """``{class_name: {value: excess failures}}`` from [`stats`][stats].

        Returns:
            Each class's captioned values and their failures beyond the class's base rate
            (0 for every value when no success was captioned).
        """
        out: dict[str, dict[str, float]] = {}
        table = self.stats()
        for name, value, excess in zip(
            table["class"], table["value"], table["excess"], strict=True
        ):
            out.setdefault(name, {})[value] = float(excess)
        return out

    def _class_counts(self) -> dict[str, tuple[dict[str, tuple[int, int]], int, int]]:
        """``{class: ({value: (failures, total)}, failures, total)}``, classes as they fail."""
        tallies: dict[str, dict[str | None, list[int]]] = {}
        parts = (
            (self.labels, self.captions, 1),
            (self.success_labels, self.success_captions, 0),
        )
        for labels, captions, failed in parts:
            for label, cap in zip(labels, captions, strict=True):
                row = tallies.setdefault(self.class_names[int(label)], {})
                row.setdefault(cap.value, [0, 0])
                row[cap.value][0] += failed
                row[cap.value][1] += 1
        out = {}
        for name in dict.fromkeys(self.class_names[int(y)] for y in self.labels):
            row = tallies[name]
            usual = self.usual.get(name)
            counts = {v: (f, t) for v, (f, t) in row.items() if v is not None and v != usual}
            order = {v: i for i, v in enumerate(self.candidates.get(name, []))}
            counts = dict(
                sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
            )
            out[name] = (
                counts,
                sum(f for f, _ in row.values()),
                sum(t for _, t in row.values()),
            )
        return out

    def top_k(self, k: int, *, warn: bool = False) -> dict[str, list[str]]:
        """The ``k`` best-ranked values per class (by ``rank``), ties broken by candidate order.

        The policy is [`failmodes.ranking.top_modes`][failmodes.ranking.top_modes]: with
        ``rank="excess"`` and captioned successes, only values that fail more often than their
        class (positive excess) can be modes, so a class whose failures are spread evenly over
        its values keeps fewer, or none.

        Args:
            k: values kept per class.
            warn: warn when ``significant`` is set and a class has no value whose interval
                clears its base rate (it keeps its top ``k`` instead).

        Returns:
            ``{class_name: [value, ...]}``, best first; classes without a captioned failure are
            left out.
        """
        return top_modes(self, k, warn=warn)

    def top_prediction(self, class_name: str, value: str) -> str | None:
        """The class most often predicted for failures of ``class_name`` captioned ``value``.

        Args:
            class_name: the failures' true class.
            value: the value they were captioned with.

        Returns:
            The predicted class's name, or ``None`` when no failure of ``class_name`` was
            captioned ``value``.
        """
        predictions = self._predictions().get((class_name, value))
        return None if not predictions else self.class_names[predictions.most_common(1)[0][0]]

    def _predictions(self) -> dict[tuple[str, str], Counter]:
        """``{(class_name, value): Counter(predicted label -> failures)}``, in one pass."""
        out: dict[tuple[str, str], Counter] = {}
        for y, p, cap in zip(self.labels, self.predictions, self.captions, strict=True):
            if cap.value is not None:
                out.setdefault((self.class_names[int(y)], cap.value), Counter())[int(p)] += 1
        return out

    def describe_mode(self, class_name: str, value: str) -> str:
        """One mode in words: ``"wallet in a jungle -> predicted mushroom (12 failures)"``.

        Args:
            class_name: the mode's class.
            value: the mode's value.

        Returns:
            The class with its value, the class most often predicted for those failures
            (``None`` when there are none) and their number.
        """
        return self.descriptions([(class_name, value)])[(class_name, value)]

    def descriptions(
        self, modes: Sequence[tuple[str, str]] | None = None
    ) -> dict[tuple[str, str], str]:
        """Descriptions of several modes, as [`describe_mode`][describe_mode] words them.

        Args:
            modes: ``(class_name, value)`` pairs; ``None``: the chosen modes (``self.modes``),
                class by class in label order.

        Returns:
            ``{(class_name, value): description}``, in the order of ``modes``.
        """
        if modes is None:
            modes = [
                (name, value) for name in self.class_names for value in self.modes.get(name, [])
            ]
        stats = self._predictions()
        rates = self._rates() if self.has_successes else {}
        out = {}
        for name, value in modes:
            predictions = stats.get((name, value), Counter())
            top = predictions.most_common(1)
            pred = self.class_names[top[0][0]] if top else None
            n_fail = sum(predictions.values())
            how = _count(n_fail, "failure")
            if (name, value) in rates:
                total, lift = rates[(name, value)]
                how = f"{n_fail} of {total} fail, {_times(lift)} the class's rate"
            out[(name, value)] = (
                f"{phrase(name, value, self.attribute)} \u2192 predicted {pred} ({how})"
            )
        return out

    def _rates(self) -> dict[tuple[str, str], tuple[int, float]]:
        """``{(class_name, value): (captioned images, lift)}`` of every captioned value."""
        table = self.stats()
        return {
            (c, v): (int(t), float(lift))
            for c, v, t, lift in zip(
                table["class"], table["value"], table["total"], table["lift"], strict=True
            )
        }

    def describe(self) -> list[str]:
        """Readable failure modes: ``"wallet in a jungle -> predicted mushroom (12 failures)"``.

        Returns:
            One description per chosen mode, class by class in label order.
        """
        return list(self.descriptions().values())

    def to_frame(self) -> pd.DataFrame:
        """The captions as a table, one row per captioned failure.

        Returns:
            Columns ``index`` (in the debug set), ``class``, ``predicted`` (class names),
            ``value`` (``None`` when uncaptioned), ``score`` and ``is_mode`` (whether ``value``
            is one of the class's chosen modes); when successes were captioned too, also the
            failure's value's ``total``, ``failure_rate``, ``base_rate``, ``lift``, ``excess``,
            ``ci_low`` and ``ci_high`` (see [`stats`][stats]).
        """
        names = [self.class_names[int(y)] for y in self.labels]
        frame = pd.DataFrame(
            {
                "index": self.indices,
                "class": names,
                "predicted": [self.class_names[int(p)] for p in self.predictions],
                "value": [c.value for c in self.captions],
                "score": [c.score for c in self.captions],
                "is_mode": [
                    c.value is not None and c.value in self.modes.get(n, [])
                    for n, c in zip(names, self.captions, strict=True)
                ],
            }
        )
        if not self.has_successes:
            return frame
        stats = self.stats().drop(columns="failures")
        return frame.merge(stats, on=["class", "value"], how="left")


@dataclass
class FailureExample:
    """A small picture of one failure, kept so that a report can show what failed.

    Attributes:
        index: the failure's index in the debug set.
        label: its true label.
        prediction: the model's prediction for it.
        value: the value it was captioned with (``None`` when no candidate was likely enough).
        score: the captioner's score for ``value``.
        png: the thumbnail, PNG-encoded, at most ``size`` pixels a side (see
            [`failure_examples`][failmodes.thumbnails.failure_examples]).

    Examples:
        >>> from failmodes import FailureExample
        >>> FailureExample(index=3, label=0, prediction=1, value="in a desert", score=0.9,
        ...                png=b"")
        FailureExample(index=3, label=0, prediction=1, value='in a desert', score=0.9)
    """

    index: int
    label: int
    prediction: int
    value: str | None
    score: float
    png: bytes = field(repr=False)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _times(lift: float) -> str:
    return "n/a\u00d7" if math.isnan(lift) else f"{lift:.1f}\u00d7"


@dataclass
class GeneratedSet:
    """Images made for a list of requests, flattened, with their label and value.

    Attributes:
        requests: the generation jobs.
        images: all images, request by request.
        labels: the class index of each image.
        values: the attribute value of each image (``None`` for bare-class requests).
        request_index: for each image, the index of its request.
        filter_report: with an image filter, one row per request: ``requested``, ``kept`` and
            ``dropped_<reason>`` counts (``None`` without a filter).
        image_ids: a stable id per image (its cache entry and place in it) when every image
            went through the cache, else ``None``. The Debugger caches the set's features under
            these ids, so a rerun does not read the images at all; images read back from the
            cache come as an [`ImageList`][failmodes.images.ImageList] of their files.
        generator: the class name of the generator that made the images (for error messages),
            or ``None``.

    Examples:
        [`Debugger.generate`][failmodes.debugger.Debugger.generate] makes one; by hand, from a
        generator's outputs for two requests:

        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> from failmodes import GeneratedSet, GenerationRequest
        >>> requests = [
        ...     GenerationRequest(0, "fox", "in a desert", "a photo of a fox in a desert", 2, 0),
        ...     GenerationRequest(1, "owl", None, "a photo of an owl", 1, 0),
        ... ]
        >>> outputs = [[Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")],
        ...            [Image.new("RGB", (8, 8), "green")]]
        >>> generated = GeneratedSet.from_outputs(requests, outputs)
        >>> len(generated), generated.labels.tolist(), generated.values
        (3, [0, 0, 1], ['in a desert', 'in a desert', None])
        >>> len(generated.select([True, False, True]))
        2
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = generated.export(Path(tmp) / "generated")
        ...     GeneratedSet.load(folder).values
        ['in a desert', 'in a desert', None]
    """

    requests: list[GenerationRequest]
    images: Sequence[Any]
    labels: np.ndarray
    values: list[str | None]
    request_index: np.ndarray
    filter_report: pd.DataFrame | None = field(default=None, repr=False)
    image_ids: list[str] | None = field(default=None, repr=False)
    generator: str | None = field(default=None, repr=False)

    @classmethod
    def from_outputs(
        cls,
        requests: Sequence[GenerationRequest],
        outputs: Sequence[Sequence[Any]],
        *,
        filter_report: pd.DataFrame | None = None,
        image_ids: Sequence[str] | None = None,
    ) -> GeneratedSet:
        """Flatten a generator's per-request outputs, checking their number and count.

        Each request must have exactly ``count`` images, or at most ``count`` when a
        ``filter_report`` says that a filter dropped some. Outputs that are
        [`ImageList`][failmodes.images.ImageList] stay unread.

        Args:
            requests: the generation jobs.
            outputs: one sequence of images per request, in request order (what
                [`ImageGenerator.generate`][failmodes.interfaces.ImageGenerator.generate]
                returns).
            filter_report: the image filter's per-request counts, when one ran (see the class's
                ``filter_report``).
            image_ids: one stable id per image, in flattened order; ``None`` when not every
                image has one.

        Returns:
            The flattened set; its images are an [`ImageList`][failmodes.images.ImageList] when
            any output is one, else a list.

        Raises:
            ValueError: if there is not one output per request, a request has the wrong number
                of images, or ``image_ids`` does not have one id per image.
        """
        if len(outputs) != len(requests):
            raise ValueError(
                f"the generator returned {len(outputs)} image lists for {len(requests)} requests"
            )
        items: list[Any] = []
        labels, values, owner = [], [], []
        for j, (req, imgs) in enumerate(zip(requests, outputs, strict=True)):
            if len(imgs) != req.count and not (filter_report is not None and len(imgs) < req.count):
                raise ValueError(
                    f"the generator returned {len(imgs)} images for request {j} "
                    f"({req.prompt!r}) that asked for count={req.count}"
                )
            items.extend(imgs.items if isinstance(imgs, ImageList) else imgs)
            labels.extend([req.class_index] * len(imgs))
            values.extend([req.value] * len(imgs))
            owner.extend([j] * len(imgs))
        lazy = any(isinstance(imgs, ImageList) for imgs in outputs)
        if image_ids is not None and len(image_ids) != len(items):
            raise ValueError(
                f"image_ids must have one id per image ({len(items)}), got {len(image_ids)}"
            )
        return cls(
            list(requests),
            ImageList(items) if lazy else items,
            np.asarray(labels, dtype=np.int64),
            values,
            np.asarray(owner, dtype=np.int64),
            filter_report,
            None if image_ids is None else list(image_ids),
        )

    def select(self, keep: Sequence[bool] | np.ndarray) -> GeneratedSet:
        """The images where ``keep`` is true; requests and the filter report stay whole.

        Args:
            keep: one boolean per image.

        Returns:
            A new set with the kept images, their labels, values, request indices and ids.

        Raises:
            ValueError: if ``keep`` does not have one entry per image.
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self),):
            raise ValueError(
                f"keep must have one boolean per image ({len(self)}), got {keep.shape}"
            )
        images = (
            self.images.select(keep)
            if isinstance(self.images, ImageList)
            else [im for im, k in zip(self.images, keep, strict=True) if k]
        )
        return GeneratedSet(
            self.requests,
            images,
            self.labels[keep],
            [v for v, k in zip(self.values, keep, strict=True) if k],
            self.request_index[keep],
            self.filter_report,
            None
            if self.image_ids is None
            else [i for i, k in zip(self.image_ids, keep, strict=True) if k],
            self.generator,
        )

    def __len__(self) -> int:
        return len(self.images)

    def export(self, folder: str | Path) -> Path:
        """Write the images as an image folder, ``<class>/<value>/NNNN.png``, with a manifest.

        See [`export_generated`][failmodes.generated_files.export_generated].

        Args:
            folder: where to write; it must not exist yet or be empty (it is created).

        Returns:
            ``folder``, as a ``Path``.

        Raises:
            FileExistsError: if ``folder`` exists and is not empty.
        """
        from failmodes.generated_files import export_generated

        return export_generated(self, folder)

    @classmethod
    def load(cls, folder: str | Path) -> GeneratedSet:
        """Read a set written by [`export`][export].

        See [`read_generated`][failmodes.generated_files.read_generated].

        Args:
            folder: the folder [`export`][export] wrote, with its ``manifest.json``.

        Returns:
            The set, its images decoded as RGB PIL images (without the filter report or image
            ids, which are not exported).

        Raises:
            FileNotFoundError: if the folder has no ``manifest.json`` or an image is missing.
            ValueError: if the manifest names a file outside the folder.
        """
        from failmodes.generated_files import read_generated

        requests, images, owner = read_generated(folder)
        labels = np.asarray([requests[j].class_index for j in owner], dtype=np.int64)
        return cls(requests, images, labels, [requests[j].value for j in owner], owner)

    @property
    def offsets(self) -> np.ndarray:
        """For each image, its index within its request (``request.image_seed(offset)``)."""
        offsets = np.zeros(len(self.request_index), dtype=np.int64)
        for j in np.unique(self.request_index):
            where = np.flatnonzero(self.request_index == j)
            offsets[where] = np.arange(len(where))
        return offsets

    @property
    def n_filtered_out(self) -> int | None:
        """How many images the filter dropped in all (``None`` without a filter)."""
        if self.filter_report is None:
            return None
        dropped = [c for c in self.filter_report.columns if c.startswith("dropped_")]
        return int(self.filter_report[dropped].to_numpy().sum())

    def to_frame(self) -> pd.DataFrame:
        """The images as a table, one row per image.

        Returns:
            Columns ``label``, ``class``, ``value``, ``prompt``, ``job_id`` (of the image's
            request) and ``seed`` (the image's own, ``request.image_seed(i)``).
        """
        reqs = [self.requests[int(j)] for j in self.request_index]
        offsets = self.offsets
        return pd.DataFrame(
            {
                "label": self.labels,
                "class": [r.class_name for r in reqs],
                "value": self.values,
                "prompt": [r.prompt for r in reqs],
                "job_id": [r.job_id for r in reqs],
                "seed": [r.image_seed(int(o)) for r, o in zip(reqs, offsets, strict=True)],
            }
        )


@dataclass(frozen=True)
class ModeAccuracy:
    """Each repair on the held-out failures inside and outside the modes it targeted.

    A held-out failure is inside when its true value (the debug set's ``groups``) is one of
    the values its class was given images of. Targeting pays where repair fixes more of the
    failures inside than a blunt baseline does; the share inside bounds what it can gain.

    Attributes:
        n_in: held-out failures inside the targeted modes.
        n_out: the other held-out failures.
        accuracy: ``{method: {"in_modes": acc, "out_of_modes": acc}}`` for each repair
            (``nan`` for a side with no failures).

    Examples:
        >>> m = ModeAccuracy(30, 70, {"failmodes": {"in_modes": 0.4, "out_of_modes": 0.2}})
        >>> m.share
        0.3
    """

    n_in: int
    n_out: int
    accuracy: dict[str, dict[str, float]]

    @property
    def share(self) -> float:
        """The share of held-out failures inside the targeted modes."""
        return self.n_in / max(self.n_in + self.n_out, 1)


@dataclass
class RunResult:
    """Everything one [`failmodes.Debugger.run`][failmodes.debugger.Debugger.run] measured.

    Attributes:
        class_names: all class names, by label index.
        attribute: the spurious attribute the run was about.
        accuracy: ``{method: {split: accuracy}}`` for the methods of
            [`METHODS`][failmodes.methods.METHODS] the run made: ``before`` (the original
            head), ``dfr`` (refit on the debug set's own images), ``failmodes`` (targeted
            repair), ``random`` (bare-class images), ``uniform`` (values drawn uniformly) and
            ``refit`` (the head refit on train alone), on splits ``test``, ``debug_seed``,
            ``debug_heldout`` and ``validation`` (and a guard and extra sets by name).
        group_accuracy: per method, the test accuracy per attribute value (when known).
        failures: the debug set's failures and their split.
        modes: the captions and failure modes.
        generated: the targeted generated set (at the chosen ``k`` and images per mode).
        baseline_generated: the ``random`` and ``uniform`` baselines' generated sets.
        selection: the hyper-parameter search on the validation part, one row per candidate.
        config: the chosen ``k``, ``lam``, ``images_per_mode`` and the run's settings.
        caption_accuracy: among captioned failures whose true value is a candidate, the share
            captioned with it (when true values are known).
        mode_accuracy: each repair on the held-out failures inside and outside the modes it
            targeted, by their true values; ``None`` when the debug set carries no groups,
            none of them is a proposed value, or nothing was generated for a mode.
        heads: the fitted heads, per method.
        seconds: wall-clock time of the run.
        examples: thumbnails of a few failures of each failure mode, shown by [`report`][report]
            (see [`failure_examples`][failmodes.thumbnails.failure_examples]); empty when none
            were kept.
        chosen: the repair that validation prefers among the debug set's own images alone
            (``"dfr"``) and those with generated images on top (``"failmodes"``); ``None``
            when the run weighed no real images.
        n_real: how many of the debug set's own images the repairs could refit on (``None``:
            none).

    Examples:
        [`Debugger.run`][failmodes.debugger.Debugger.run] makes one; by hand, with two methods
        and the smallest parts:

        >>> import numpy as np
        >>> import pandas as pd
        >>> from failmodes import Caption, FailureModes, FailureSet, GeneratedSet, RunResult
        >>> failures = FailureSet(np.array([0, 1]), np.array([1, 0]), np.array([], dtype=int),
        ...                       np.array([0]), np.array([1]))
        >>> modes = FailureModes.from_captions(
        ...     class_names=["fox", "owl"], attribute="background", indices=np.array([0]),
        ...     labels=np.array([0]), predictions=np.array([1]),
        ...     captions=[Caption("in a desert", 0.9)], candidates={"fox": ["in a desert"]}, k=1,
        ... )
        >>> splits = ("test", "debug_seed", "debug_heldout", "validation")
        >>> result = RunResult(
        ...     class_names=["fox", "owl"],
        ...     attribute="background",
        ...     accuracy={"before": dict(zip(splits, (0.80, 0.0, 0.0, 0.85))),
        ...               "failmodes": dict(zip(splits, (0.84, 0.9, 0.5, 0.86)))},
        ...     group_accuracy={},
        ...     failures=failures,
        ...     modes=modes,
        ...     generated=GeneratedSet.from_outputs([], []),
        ...     selection=pd.DataFrame(),
        ...     config={"k": 1, "lam": 0.5, "images_per_mode": 20},
        ... )
        >>> result.to_frame()  # doctest: +NORMALIZE_WHITESPACE
                   test  debug_seed  debug_heldout  validation
        method
        before     0.80         0.0            0.0        0.85
        failmodes  0.84         0.9            0.5        0.86
        >>> result.summary()["heldout_acc_after"]
        0.5
    """

    class_names: list[str]
    attribute: str
    accuracy: dict[str, dict[str, float]]
    group_accuracy: dict[str, dict[str, float]]
    failures: FailureSet
    modes: FailureModes
    generated: GeneratedSet
    selection: pd.DataFrame
    config: dict[str, Any]
    caption_accuracy: float | None = None
    mode_accuracy: ModeAccuracy | None = None
    baseline_generated: dict[str, GeneratedSet] = field(default_factory=dict, repr=False)
    heads: dict[str, Any] = field(default_factory=dict, repr=False)
    seconds: float = 0.0
    examples: list[FailureExample] = field(default_factory=list, repr=False)
    chosen: str | None = None
    n_real: int | None = None

    def worst_group(self, method: str) -> float | None:
        """The lowest per-value test accuracy of ``method``, when groups are known.

        Args:
            method: one of the keys of ``accuracy`` (``"before"``, ``"failmodes"``, ...).

        Returns:
            The worst group's test accuracy, or ``None`` when the test set carried no groups
            (or ``method`` was not run).
        """
        groups = self.group_accuracy.get(method)
        return min(groups.values()) if groups else None

    def to_frame(self) -> pd.DataFrame:
        """The accuracy table: one row per method, one column per split.

        Returns:
            Rows ``before``, ``failmodes`` and the baselines run (index ``method``); columns
            ``test``, ``debug_seed``, ``debug_heldout``, ``validation``, when the test set
            carries groups ``worst_group_test``, then ``guard`` and the extra sets, if any.
        """
        frame = pd.DataFrame(self.accuracy).T
        more = [split for split in frame.columns if split not in SPLITS]
        frame = frame.reindex(columns=list(SPLITS))
        frame.index.name = "method"
        if self.group_accuracy:
            frame["worst_group_test"] = [self.worst_group(m) for m in frame.index]
        for split in more:
            frame[split] = [self.accuracy[m][split] for m in frame.index]
        return frame

    def summary(self) -> dict[str, Any]:
        """A flat JSON-ready summary (the keys of ``failmodes demo``'s ``summary.json``).

        Returns:
            Accuracies before and after (``test_acc_before``, ``test_acc_after``,
            ``seed_acc_after``, ``heldout_acc_after``, the baselines' ``<method>_<split>_acc_after``
            and worst-group accuracies; for a guard and each extra set ``<name>_acc_before``,
            ``<name>_acc_after`` and ``<method>_<name>_acc_after``), ``guard_given`` and
            ``kept_original`` (whether a guard refused every candidate); when ``mode_accuracy``
            is known, ``heldout_in_modes_share`` and each repair's ``heldout_in_modes_acc_after``
            and ``heldout_out_of_modes_acc_after`` (baselines prefixed by their name; ``None``
            for a side without failures); counts (``n_failures``, ``n_seed``, ``n_heldout``,
            ``n_generated``, ``n_filtered_out``), ``caption_accuracy``, ``failure_modes``,
            ``descriptions``, ``config`` and ``seconds``.

        Raises:
            KeyError: if ``accuracy`` lacks the ``before`` or ``failmodes`` method.
        """
        from failmodes.summary import run_summary

        return run_summary(self)

    def save_summary(self, path: str | Path) -> Path:
        """Write [`summary`][summary] as JSON.

        Args:
            path: the file to write; missing folders above it are created.

        Returns:
            ``path``, as a ``Path``.

        Raises:
            IsADirectoryError: if ``path`` is a folder.
            NotADirectoryError: if a folder above ``path`` is a file.
        """
        from failmodes.run_files import output_path

        path = output_path(path)
        text = json.dumps(self.summary(), indent=2, sort_keys=True, allow_nan=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        return path

    def report(
        self, path: str | Path, *, generated_per_mode: int = 4, max_classes: int | None = 50
    ) -> Path:
        """Write one self-contained HTML page about the run, readable in any browser.

        The page has the run's settings and counts, the accuracy of every method on every
        split (as a table and a bar chart), each class's failure modes with thumbnails of a
        few of its failures (from ``examples``) and of the images generated for it, and
        the hyper-parameter search. Images are embedded as PNG data; nothing is loaded from
        elsewhere and no script runs. The bar chart is drawn with matplotlib when it is
        installed (``pip install "failmodes[plot]"``), else with plain HTML.

        Args:
            path: the file to write; missing folders above it are created.
            generated_per_mode: generated images shown per failure mode.
            max_classes: classes shown with images, those with the most ``debug_seed``
                failures; the failure modes of the others are listed in words (``None``: all).

        Returns:
            ``path``, as a ``Path``.

        Raises:
            IsADirectoryError: if ``path`` is a folder.
            NotADirectoryError: if a folder above ``path`` is a file.
        """
        from failmodes._report import render
        from failmodes.run_files import output_path

        path = output_path(path)
        page = render(self, generated_per_mode=generated_per_mode, max_classes=max_classes)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
        return path

    def save(self, folder: str | Path, *, images: bool = True) -> Path:
        """Write the run into a folder that [`load`][load] reads back: JSON, safetensors, PNG.

        Everything the run holds is written: its tables, failures, captions, modes, generated
        sets, selection, heads, failure thumbnails and config (the layout and what is kept
        only approximately: [`failmodes.run_files`][failmodes.run_files]). Nothing is pickled,
        so a saved run can be read from anyone.

        Args:
            folder: a new or empty folder (it is created), or one that holds a run saved
                before, which is replaced whole: the new run is written beside it and takes
                its place once complete, so a save that fails leaves the old run as it was.
            images: ``True`` writes every generated image too, in image folders
                ``generated/<set>/`` as
                [`GeneratedSet.export`][failmodes.results.GeneratedSet.export] writes them;
                ``False`` keeps the sets' requests, labels and values without the images,
                which read back as ``None`` (the report then shows none).

        Returns:
            ``folder``, as a ``Path``.

        Raises:
            FileExistsError: if ``folder`` is a file, or holds files other than a saved run's.
            NotADirectoryError: if a folder above ``folder`` is a file.
            PermissionError: if ``folder`` holds a saved run but is read-only.
            TypeError: if ``images`` is not a bool, or a head is not an ``nn.Linear``.

        Examples:
            ```python
            result.save("runs/resnet50")
            again = RunResult.load("runs/resnet50")
            again.report("resnet50.html")
            ```
        """
        from failmodes.run_files import write_run

        return write_run(self, folder, images=images)

    @classmethod
    def load(cls, folder: str | Path) -> RunResult:
        """Read a run that [`save`][save] wrote, to report on it or compare it without a rerun.

        Args:
            folder: the folder [`save`][save] wrote (``failmodes demo`` and ``failmodes run``
                save theirs in ``<out>/run``).

        Returns:
            The run: its ``to_frame()``, ``summary()``, ``report()`` and
            [`compare`][failmodes.collective.compare] give what the saved run's gave. Its
            generated images are read only when used.

        Raises:
            FileNotFoundError: if the folder, its ``run.json`` or a file it lists is missing
                (the message names the path).
            ValueError: if the folder holds something else than a saved run, one of another
                format version, or a damaged one (the message names the file and the part).
        """
        from failmodes.run_files import read_run

        parts = read_run(folder)
        accuracy = parts["mode_accuracy"]
        return cls(
            **parts["run"],
            failures=FailureSet(**parts["failures"]),
            modes=FailureModes(**parts["modes"]),
            generated=_generated_set(parts["generated"]),
            baseline_generated={
                name: _generated_set(fields) for name, fields in parts["baseline_generated"].items()
            },
            mode_accuracy=None if accuracy is None else ModeAccuracy(**accuracy),
            examples=[FailureExample(**fields) for fields in parts["examples"]],
        )


def _generated_set(fields: dict[str, Any] | None) -> GeneratedSet | None:
    return None if fields is None else GeneratedSet(**fields)
