"""The Debugger: composes the five components and runs the method, step by step or whole."""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from failmodes import __version__
from failmodes.attributes import get_attribute, prompt
from failmodes.cache import (
    Cache,
    cached,
    data_fingerprint,
    digest,
    fingerprint,
    resolve_cache,
    tensor_digest,
)
from failmodes.data import ImageDataset, groups_of, images_at, is_blank, labels_of
from failmodes.filters import REASONS, ImageFilter
from failmodes.interfaces import (
    BackgroundProposer,
    Caption,
    FailureCaptioner,
    FeatureExtractor,
    GenerationRequest,
    HeadTrainer,
    ImageGenerator,
)
from failmodes.results import (
    FailureModes,
    FailureSet,
    GeneratedSet,
    RunResult,
    failure_examples,
)

__all__ = ["Debugger"]

# images generated between two cache writes, at most (plus one request)
_GENERATION_GROUP = 64

logger = logging.getLogger("failmodes")


def _derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any parts, stable across runs and platforms."""
    blob = "\x1f".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF


def _check_not_blank(generated: GeneratedSet) -> None:
    """Raise when a generated image is one flat colour (a blanked or failed image)."""
    for i, image in enumerate(generated.images):
        if is_blank(image):
            request = generated.requests[int(generated.request_index[i])]
            raise ValueError(
                f"the generator returned a blank image (one flat colour) for {request.prompt!r} "
                f"(class {request.class_name!r}, value {request.value!r}); blank images are not "
                "used as training data: fix the generator or have it replace them"
            )


def _validation_splits(
    failures: FailureSet, debug_f: torch.Tensor, debug_y: np.ndarray
) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    """The validation part of the debug set, whole and its failures, as evaluation splits."""
    val = failures.validation
    val_fail = val[failures.predictions[val] != debug_y[val]]
    return {
        "validation": (debug_f[val], debug_y[val]),
        "validation_failures": (debug_f[val_fail], debug_y[val_fail]),
    }


def _head_digest(head: torch.nn.Linear) -> str:
    return tensor_digest([p for p in (head.weight, head.bias) if p is not None])


def _accuracy(logits: torch.Tensor, labels: np.ndarray, index: np.ndarray | None = None) -> float:
    if index is not None:
        logits, labels = logits[torch.as_tensor(index, dtype=torch.long)], labels[index]
    if len(labels) == 0:
        return float("nan")
    return float((logits.argmax(1).numpy() == labels).mean())


def _check(value: Any, name: str, kind: type, expected: str) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}")


class Debugger:
    """Find, describe, cover and repair a classifier's failure modes.

    The constructor only stores its arguments; every step is a method that can be called on
    its own, and [`run`][run] calls them all.

    Args:
        extractor: splits the model into frozen backbone features and its linear head.
        proposer: lists uncommon attribute values per class.
        captioner: picks the most likely value for each failure.
        generator: makes images for (class, value) requests.
        head_trainer: retrains the head; ``None`` uses
            [`failmodes.LinearHeadTrainer`][failmodes.heads.linear.LinearHeadTrainer].
        class_names: class names by label index.
        attribute: the spurious attribute (``"background"``, ``"color"``, ...).
        k: failure modes per class, or a list of candidates chosen on the validation part.
        lam: weight of the generated images' loss, or a list of candidates.
        images_per_mode: images per (class, value) mode, or a list of candidates.
        validation_fraction: share of the debug set set aside (per class, seeded) to choose
            ``k``, ``lam`` and ``images_per_mode``; never used for failures or reporting.
        tolerance: a candidate is eligible only if its validation accuracy is at most this
            much below the original head's.
        baselines: also fit the ``random``, ``uniform`` and ``refit`` baselines in [`run`][run].
        image_filter: checks generated images before they are used, e.g.
            [`CaptionFilter`][failmodes.filters.CaptionFilter]; rejected images are dropped and
            replaced (see [`generate`][generate]). ``None``: every image is used.
        filter_rounds: how many times short requests are sent again to replace rejected images.
        cache: where the results of deterministic steps are kept (features, proposals,
            captions, generated images, head fits; see [`failmodes.cache`][failmodes.cache]):
            ``True`` (the default) for ``$FAILMODES_CACHE`` or the user cache folder, a folder, a
            [`Cache`][failmodes.cache.Cache], or ``False`` for none. With a cache, a run that was
            killed resumes where it stopped, and a rerun with the same arguments reads its
            results back. Components whose configuration cannot be described (see
            [`failmodes.cache.fingerprint`][failmodes.cache.fingerprint]) are not cached.
        checkpoint_every: features are computed and cached this many images at a time, so a
            killed extraction redoes at most this many; generation is cached request by request.
        examples_per_mode: thumbnails of this many failures per failure mode are kept in the
            result (``RunResult.examples``, shown by its report); 0 keeps none.
        batch_size: passed to the extractor; ``None`` keeps the extractor's own.
        progress: show progress bars; ``None`` keeps each component's own setting.

    Examples:
        The steps one at a time, with only the components they need: here a model that
        predicts ``fox`` for every image, so every ``owl`` of the debug set is a failure.

        >>> import torch
        >>> from torch import nn
        >>> from failmodes import Debugger, TorchExtractor
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
        >>> with torch.no_grad():
        ...     _ = model[1].weight.zero_(), model[1].bias.copy_(torch.tensor([1.0, 0.0]))
        >>> debug = [(torch.zeros(3, 2, 2), i % 2) for i in range(20)]  # (image, label) pairs
        >>> dbg = Debugger(extractor=TorchExtractor(model), class_names=["fox", "owl"],
        ...                cache=False)
        >>> failures = dbg.find_failures(debug, seed=0)
        >>> len(failures.validation), len(failures.seed), len(failures.heldout)
        (4, 4, 4)
        >>> dbg.requests({("owl", "in a desert"): 3}, seed=0)[0].prompt
        'a photo of an owl in a desert'

        The whole method on ToyWorld (about a minute on a laptop CPU, offline):

        ```python
        from failmodes.toyworld import ToyWorld, demo_components

        world = ToyWorld(seed=0)
        dbg = Debugger(**demo_components(world))
        result = dbg.run(world.train(), world.debug(), world.test(), seed=0)
        result.to_frame()  # accuracy per method and split
        ```
    """

    def __init__(
        self,
        *,
        extractor: FeatureExtractor,
        proposer: BackgroundProposer | None = None,
        captioner: FailureCaptioner | None = None,
        generator: ImageGenerator | None = None,
        head_trainer: HeadTrainer | None = None,
        class_names: Sequence[str],
        attribute: str = "background",
        k: int | Sequence[int] = 3,
        lam: float | Sequence[float] = 0.5,
        images_per_mode: int | Sequence[int] = 20,
        validation_fraction: float = 0.2,
        tolerance: float = 0.005,
        baselines: bool = True,
        image_filter: ImageFilter | None = None,
        filter_rounds: int = 2,
        cache: bool | str | Path | Cache = True,
        checkpoint_every: int = 1024,
        examples_per_mode: int = 4,
        batch_size: int | None = None,
        progress: bool | None = None,
    ):
        self.extractor = extractor
        self.proposer = proposer
        self.captioner = captioner
        self.generator = generator
        self.head_trainer = head_trainer
        self.class_names = class_names
        self.attribute = attribute
        self.k = k
        self.lam = lam
        self.images_per_mode = images_per_mode
        self.validation_fraction = validation_fraction
        self.tolerance = tolerance
        self.baselines = baselines
        self.image_filter = image_filter
        self.filter_rounds = filter_rounds
        self.cache = cache
        self.checkpoint_every = checkpoint_every
        self.examples_per_mode = examples_per_mode
        self.batch_size = batch_size
        self.progress = progress

    # ------------------------------------------------------------------ helpers
    @property
    def components(self) -> dict[str, Any]:
        """Every constructor argument by name, the five components and the settings.

        ``Debugger(**{**dbg.components, "generator": g})`` builds the same Debugger with another
        generator; [`replace`][replace] does the same in one call.
        """
        return {
            "extractor": self.extractor,
            "proposer": self.proposer,
            "captioner": self.captioner,
            "generator": self.generator,
            "head_trainer": self.head_trainer,
            "class_names": self.class_names,
            "attribute": self.attribute,
            "k": self.k,
            "lam": self.lam,
            "images_per_mode": self.images_per_mode,
            "validation_fraction": self.validation_fraction,
            "tolerance": self.tolerance,
            "baselines": self.baselines,
            "image_filter": self.image_filter,
            "filter_rounds": self.filter_rounds,
            "cache": self.cache,
            "checkpoint_every": self.checkpoint_every,
            "examples_per_mode": self.examples_per_mode,
            "batch_size": self.batch_size,
            "progress": self.progress,
        }

    def replace(self, **changes: Any) -> Debugger:
        """A new Debugger with the same components and settings, except those given.

        Args:
            **changes: constructor arguments to change, e.g. ``generator=MyGenerator()``.

        Returns:
            A new [`Debugger`][failmodes.debugger.Debugger]; this one is left as it is.

        Raises:
            TypeError: a name that is not a constructor argument.

        Examples:
            >>> from torch import nn
            >>> from failmodes import Debugger, StaticProposer, TorchExtractor
            >>> dbg = Debugger(extractor=TorchExtractor(nn.Linear(4, 2)),
            ...                class_names=["fox", "owl"],
            ...                proposer=StaticProposer({"fox": ["in a desert"]}), k=3)
            >>> other = dbg.replace(k=5)
            >>> other.k, other.proposer is dbg.proposer, dbg.k
            (5, True, 3)
        """
        settings = self.components
        unknown = sorted(set(changes) - set(settings))
        if unknown:
            raise TypeError(
                f"replace() got unknown argument(s) {unknown}; expected Debugger's arguments: "
                f"{sorted(settings)}"
            )
        return type(self)(**{**settings, **changes})

    def _require(self, name: str, kind: type) -> Any:
        component = getattr(self, name)
        if component is None:
            raise ValueError(f"{name} is needed for this step; pass {name}= to Debugger")
        _check(component, name, kind, f"a {kind.__name__}")
        return component

    def _trainer(self) -> HeadTrainer:
        if self.head_trainer is None:
            from failmodes.heads.linear import LinearHeadTrainer

            return LinearHeadTrainer()
        _check(self.head_trainer, "head_trainer", HeadTrainer, "a HeadTrainer")
        return self.head_trainer

    @staticmethod
    def _grid(value: Any, name: str, cast: type, minimum: float) -> list:
        values = list(value) if isinstance(value, list | tuple) else [value]
        if not values:
            raise ValueError(f"{name} must be a value or a non-empty list of values")
        out = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float) or v < minimum:
                raise ValueError(
                    f"{name} must be a number >= {minimum} (or a list of them), got {v!r}"
                )
            if cast is int and int(v) != v:
                raise ValueError(f"{name} must be an integer (or a list of them), got {v!r}")
            out.append(cast(v))
        return sorted(set(out))

    def _class_names(self) -> list[str]:
        names = list(self.class_names)
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError("class_names must be a non-empty list of non-empty strings")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"class_names must be unique; repeated: {dup}")
        return names

    def _labels(self, data: Any, name: str) -> np.ndarray:
        labels = labels_of(data)
        n_classes = len(self._class_names())
        classes = getattr(data, "classes", None)  # torchvision's folder datasets name theirs
        if isinstance(classes, list | tuple) and len(classes) != n_classes:
            raise ValueError(
                f"{name} has {len(classes)} classes ({list(classes)[:5]}...) but there are "
                f"{n_classes} class_names; pass one name per label index of the data"
            )
        if len(labels) == 0:
            raise ValueError(f"{name} is empty")
        bad = labels[(labels < 0) | (labels >= n_classes)]
        if len(bad):
            raise ValueError(
                f"{name} has labels outside [0, {n_classes}) for the {n_classes} class_names, "
                f"e.g. {bad[:5].tolist()}"
            )
        return labels

    def features(self, data: Any, *, name: str = "data") -> tuple[torch.Tensor, np.ndarray]:
        """Backbone features and labels of a dataset of ``(image, label)`` pairs.

        With a cache, the features are read back when the extractor and the data are the same
        as in an earlier call; otherwise they are computed ``checkpoint_every`` images at a
        time, each part cached as soon as it is done, so a killed run resumes from its last
        finished part.

        Args:
            data: a dataset of ``(image, label)`` pairs (see [`failmodes.data`][failmodes.data]).
            name: what to call the data in log lines and error messages.

        Returns:
            ``(features, labels)``: an ``(n, d)`` float32 tensor and an ``(n,)`` int64 array.

        Raises:
            ValueError: if no extractor was given, ``class_names`` is empty or repeats a name,
                ``data`` is empty, holds labels outside ``[0, len(class_names))`` or names
                another number of classes (``data.classes``), ``checkpoint_every`` is not a
                positive integer, or the extractor returns features of the wrong shape or with
                NaN or infinite values.
            TypeError: if the extractor is not a
                [`FeatureExtractor`][failmodes.interfaces.FeatureExtractor].
        """
        extractor = self._require("extractor", FeatureExtractor)
        labels = self._labels(data, name)
        started = time.perf_counter()
        spec = self._spec(extractor=fingerprint(extractor), data=data_fingerprint(data))
        feats = self._cached_features(extractor, data, len(labels), spec)
        if feats.ndim != 2 or feats.shape[0] != len(labels):
            raise ValueError(
                f"the extractor returned features of shape {tuple(feats.shape)} for {name} "
                f"with {len(labels)} samples; expected ({len(labels)}, d)"
            )
        if not torch.isfinite(feats).all():
            raise ValueError(f"the extractor returned NaN or infinite features for {name}")
        logger.info(
            "features of %s: %s in %.1fs", name, tuple(feats.shape), time.perf_counter() - started
        )
        feats = feats.float()
        if spec is not None:
            self._remember(feats, digest(spec))
        return feats, labels

    def _cached_features(
        self, extractor: FeatureExtractor, data: Any, n: int, spec: dict | None
    ) -> torch.Tensor:
        def extract(part: Any) -> torch.Tensor:
            return extractor.extract(part, batch_size=self.batch_size, progress=self.progress)

        cache = self._cache()
        if cache is None or spec is None:
            return extract(data)
        key = cache.key("features", spec)
        hit = cache.get_tensors("features", key)
        if hit is not None:
            return hit["features"]
        step = self.checkpoint_every
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"checkpoint_every must be an integer >= 1, got {step!r}")
        parts = []
        for start in range(0, n, step):
            stop = min(start + step, n)
            part_key = cache.key("feature-parts", {"of": spec, "start": start, "stop": stop})
            part = cache.get_tensors("feature-parts", part_key)
            if part is None:
                if start == 0 and stop == n:
                    view = data
                elif isinstance(data, torch.Tensor):
                    view = data[start:stop]
                else:
                    view = torch.utils.data.Subset(data, range(start, stop))
                part = {"features": extract(view).float()}
                cache.put_tensors("feature-parts", part_key, part)
            parts.append(part["features"])
        feats = torch.cat(parts)
        cache.put_tensors("features", key, {"features": feats})
        return feats

    def _cache(self) -> Cache | None:
        return resolve_cache(self.cache)

    @staticmethod
    def _spec(**parts: Any) -> dict | None:
        """A cache spec, or ``None`` (not cached) when any part could not be described."""
        return None if any(v is None for v in parts.values()) else parts

    def _remember(self, feats: torch.Tensor, key: str) -> None:
        """Note the cache identity of a features tensor, for the keys of head fits on it."""
        if not hasattr(self, "_identities"):
            self._identities: dict[int, tuple[weakref.ref, str]] = {}
        self._identities[id(feats)] = (weakref.ref(feats), key)

    def _identity(self, feats: torch.Tensor | None) -> str | None:
        """The cache identity of features: remembered, else a hash of their values."""
        if feats is None:
            return None
        ref, key = getattr(self, "_identities", {}).get(id(feats), (None, None))
        if ref is not None and ref() is feats:
            return key
        return tensor_digest([feats])

    def _head(self, feats: torch.Tensor) -> torch.nn.Linear:
        head = self._require("extractor", FeatureExtractor).head
        if head.in_features != feats.shape[1]:
            raise ValueError(
                f"the extractor's head takes {head.in_features} features but the features have "
                f"{feats.shape[1]}"
            )
        if head.out_features != len(self._class_names()):
            raise ValueError(
                f"the head has {head.out_features} outputs but there are "
                f"{len(self._class_names())} class_names"
            )
        return head

    @staticmethod
    def _logits(head: torch.nn.Linear, feats: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return head.float()(feats)

    # ------------------------------------------------------------------ steps
    def find_failures(
        self,
        debug: Any,
        *,
        seed: int = 0,
        features: tuple[torch.Tensor, np.ndarray] | None = None,
    ) -> FailureSet:
        """Set aside the validation part, then split the failures per class half and half.

        Per class, a ``validation_fraction`` share of the debug samples is set aside first;
        the model's mistakes among the rest are shuffled and split in two halves,
        ``debug_seed`` (used by the next steps) and ``debug_heldout`` (never used).

        Args:
            debug: the debug set, ``(image, label)`` pairs.
            seed: seed of both splits; the same seed gives the same split.
            features: precomputed ``(features, labels)`` of ``debug`` (from
                [`features`][features]); ``None`` computes them.

        Returns:
            A [`FailureSet`][failmodes.results.FailureSet]; the model scores 0 on its ``seed``
            and ``heldout`` parts.

        Raises:
            ValueError: if ``validation_fraction`` is not in ``[0, 1)``, the extractor's head
                does not fit the features or the class names, or the model makes no mistake
                outside the validation part; and as [`features`][features] does.
        """
        feats, labels = features if features is not None else self.features(debug, name="debug")
        frac = self.validation_fraction
        if not 0 <= frac < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {frac}")
        preds = self._logits(self._head(feats), feats).argmax(1).numpy()
        rng = np.random.default_rng(_derive_seed("split", seed))
        validation, seed_part, heldout = [], [], []
        for c in range(len(self._class_names())):
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
        result = FailureSet(
            labels,
            preds,
            np.sort(np.asarray(validation, dtype=np.int64)),
            np.sort(np.asarray(seed_part, dtype=np.int64)),
            np.sort(np.asarray(heldout, dtype=np.int64)),
        )
        logger.info(
            "failures: %d debug_seed, %d debug_heldout, %d validation samples",
            len(result.seed),
            len(result.heldout),
            len(result.validation),
        )
        return result

    def propose(self) -> dict[str, list[str]]:
        """Ask the proposer for uncommon values of the attribute for every class.

        With a cache, only the classes without a cached answer are asked, and the answers
        received before a proposer's error (the ``partial`` of a
        [`ProposalError`][failmodes.proposers.ProposalError]) are cached before it is raised, so a
        rerun asks only for the rest.

        Returns:
            ``{class_name: [value, ...]}`` for every class, in ``class_names`` order.

        Raises:
            ValueError: if no proposer was given, ``class_names`` is invalid, or the proposer
                left a class out.
            TypeError: if the proposer is not a
                [`BackgroundProposer`][failmodes.interfaces.BackgroundProposer] or returns
                something other than a dict.
            Exception: whatever the proposer raises (e.g. a
                [`ProposalError`][failmodes.proposers.ProposalError]), after its partial
                answers are cached.
        """
        proposer = self._require("proposer", BackgroundProposer)
        names = self._class_names()
        cache = self._cache()
        proposer_fp = fingerprint(proposer)
        specs = {
            n: self._spec(proposer=proposer_fp, attribute=self.attribute, class_name=n)
            for n in names
        }
        known: dict[str, list[str]] = {}
        if cache is not None:
            for n in names:
                if specs[n] is not None:
                    hit = cache.get_json("proposals", cache.key("proposals", specs[n]))
                    if hit is not None:
                        known[n] = hit
        missing = [n for n in names if n not in known]
        if missing:
            try:
                proposals = proposer.propose(missing, attribute=self.attribute)
            except Exception as err:
                # keep what arrived before the error (ProposalError.partial), for the rerun
                partial = getattr(err, "partial", None)
                if cache is not None and isinstance(partial, dict):
                    for n, values in partial.items():
                        if n in specs and specs[n] is not None and values:
                            cache.put_json("proposals", cache.key("proposals", specs[n]), values)
                raise
            if not isinstance(proposals, dict):
                raise TypeError(f"the proposer must return a dict, got {type(proposals).__name__}")
            absent = [n for n in missing if n not in proposals]
            if absent:
                raise ValueError(f"the proposer returned no entry for classes {absent}")
            for n in missing:
                known[n] = list(proposals[n])
                if cache is not None and specs[n] is not None:
                    cache.put_json("proposals", cache.key("proposals", specs[n]), known[n])
        return {n: list(known[n]) for n in names}

    def caption(
        self,
        debug: Any,
        failures: FailureSet,
        proposals: dict[str, list[str]],
        *,
        k: int | None = None,
    ) -> FailureModes:
        """Caption the ``debug_seed`` failures and keep the top-``k`` values per class.

        Classes with failures but no proposals raise an error; classes without failures have
        no failure modes (they are left out of generation). With a cache, the captions of the
        same failures by the same captioner among the same candidates are read back.

        Args:
            debug: the debug set that ``failures`` indexes into.
            failures: the split from [`find_failures`][find_failures].
            proposals: ``{class_name: [value, ...]}`` from [`propose`][propose]; each class's
                failures are captioned among its values.
            k: failure modes kept per class; ``None``: the largest of the Debugger's ``k``.

        Returns:
            A [`FailureModes`][failmodes.results.FailureModes] with the captions and the top-``k``
            values of each class.

        Raises:
            ValueError: if no captioner was given, a class with failures has no proposals, the
                captioner does not return one caption per image, or ``k`` is not a positive
                integer.
            TypeError: if the captioner is not a
                [`FailureCaptioner`][failmodes.interfaces.FailureCaptioner].
        """
        captioner = self._require("captioner", FailureCaptioner)
        names = self._class_names()
        k = int(k if k is not None else max(self._grid(self.k, "k", int, 1)))
        idx = failures.seed
        classes = [names[int(failures.labels[i])] for i in idx]
        empty = sorted({c for c in classes if not proposals.get(c)})
        if empty:
            raise ValueError(
                f"classes {empty} have failures but no proposed "
                f"{get_attribute(self.attribute).plural or 'values'}; give the proposer values "
                "for them"
            )
        started = time.perf_counter()

        def run_captioner() -> list[list]:
            if not len(idx):
                return []
            captions = captioner.caption(
                images_at(debug, idx),
                class_names=classes,
                candidates=proposals,
                attribute=self.attribute,
            )
            if len(captions) != len(idx):
                raise ValueError(
                    f"the captioner returned {len(captions)} captions for {len(idx)} images"
                )
            return [[c.value, float(c.score)] for c in captions]

        spec = self._spec(
            captioner=fingerprint(captioner),
            data=data_fingerprint(debug),
            indices=digest([int(i) for i in idx]),
            classes=classes,
            candidates={c: proposals[c] for c in sorted(set(classes))},
            attribute=self.attribute,
        )
        captions = [
            Caption(v, s)
            for v, s in cached(self._cache(), "captions", spec, run_captioner, as_json=True)
        ]
        logger.info("captioned %d failures in %.1fs", len(idx), time.perf_counter() - started)
        return FailureModes.from_captions(
            class_names=names,
            attribute=self.attribute,
            indices=idx,
            labels=failures.labels[idx],
            predictions=failures.predictions[idx],
            captions=captions,
            candidates=proposals,
            k=k,
        )

    def requests(
        self,
        counts: dict[tuple[str, str | None], int],
        *,
        seed: int = 0,
    ) -> list[GenerationRequest]:
        """Generation jobs for ``{(class_name, value or None): count}``, one seed per job.

        Each job's prompt comes from [`failmodes.attributes.prompt`][failmodes.attributes.prompt]
        and its seed from ``seed``, the class and the value, so a job does not depend on the
        others.

        Args:
            counts: images wanted per ``(class_name, value)``; ``value=None`` asks for the bare
                class ("a photo of a fox"). Counts of 0 or less are skipped.
            seed: the run's seed.

        Returns:
            One [`GenerationRequest`][failmodes.interfaces.GenerationRequest] per positive
            count, in the order of ``counts``.

        Raises:
            ValueError: if a class name is not one of ``class_names``.
        """
        names = self._class_names()
        unknown = sorted({name for name, _ in counts} - set(names))
        if unknown:
            raise ValueError(
                f"counts names classes that are not in class_names: {unknown[:5]}"
                f"{' ...' if len(unknown) > 5 else ''}"
            )
        out = []
        for (name, value), count in counts.items():
            if count <= 0:
                continue
            out.append(
                GenerationRequest(
                    class_index=names.index(name),
                    class_name=name,
                    value=value,
                    prompt=prompt(name, value, self.attribute),
                    count=int(count),
                    seed=_derive_seed("generate", seed, name, value),
                    attribute=self.attribute,
                )
            )
        return out

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        candidates: Mapping[str, Sequence[str]] | None = None,
    ) -> GeneratedSet:
        """Run the generator on ``requests``, check what it returns, and filter it.

        With an ``image_filter``, images it rejects are dropped and replaced: the short requests
        are sent again with a new seed derived from the request and the round, up to
        ``filter_rounds`` times. A request that is still short keeps fewer images (never a
        rejected one); ``GeneratedSet.filter_report`` counts what was dropped and why.

        With a cache, each request's images are read back (lazily, as files) when the same
        generator made them before, and new ones are cached a few requests at a time.

        Args:
            requests: the generation jobs.
            candidates: ``{class_name: [value, ...]}`` that the filter's value check tells an
                image's value apart from; ``None`` uses the values requested per class.

        Returns:
            A [`GeneratedSet`][failmodes.results.GeneratedSet] of every kept image, with a
            ``filter_report`` when an ``image_filter`` ran.

        Raises:
            ValueError: if no generator was given, it returns the wrong number of images or a
                blank (one-colour) image, ``filter_rounds`` is not an integer >= 0, or the
                filter gives a verdict that is neither ``None`` nor one of
                [`REASONS`][failmodes.filters.REASONS].
            TypeError: if the generator is not an
                [`ImageGenerator`][failmodes.interfaces.ImageGenerator] or ``image_filter`` not
                an [`ImageFilter`][failmodes.filters.ImageFilter].
        """
        generator = self._require("generator", ImageGenerator)
        if not requests:
            return GeneratedSet.from_outputs([], [])
        requests = list(requests)
        started = time.perf_counter()
        outputs, ids = self._run_generator(generator, requests)
        generated = GeneratedSet.from_outputs(requests, outputs, image_ids=ids)
        if self.image_filter is not None:
            generated = self._filter(generated, candidates)
        logger.info(
            "generated %d images for %d requests in %.1fs",
            len(generated),
            len(requests),
            time.perf_counter() - started,
        )
        return generated

    def _run_generator(
        self, generator: ImageGenerator, requests: list[GenerationRequest]
    ) -> tuple[list[Sequence[Any]], list[str] | None]:
        """The generator's images for ``requests`` and, with a cache, an id per image.

        With a cache, request by request: cached requests are read back lazily (PNG files
        with a manifest of each image's provenance, decoded only when used); the others are
        generated a few at a time and each is cached as soon as its group is done, so a killed
        run loses at most one group. An image's id is its request's cache key and its place.
        """
        cache = self._cache()
        gen_fp = fingerprint(generator)
        if cache is None or gen_fp is None:
            outputs = generator.generate(requests, progress=self.progress)
            _check_not_blank(GeneratedSet.from_outputs(requests, outputs))
            return outputs, None
        keys = [
            cache.key("generated", {"generator": gen_fp, "request": asdict(r)}) for r in requests
        ]
        ids = [f"{key}/{n}" for r, key in zip(requests, keys, strict=True) for n in range(r.count)]
        outputs: list[Sequence[Any] | None] = []
        for r, key in zip(requests, keys, strict=True):
            hit = cache.get_images("generated", key, lazy=True)
            outputs.append(hit[0] if hit is not None and len(hit[0]) == r.count else None)
        todo = [j for j, out in enumerate(outputs) if out is None]
        if todo:
            logger.info("generating %d of %d requests (%d cached)", len(todo), len(requests),
                        len(requests) - len(todo))  # fmt: skip
        group: list[int] = []
        for position, j in enumerate(todo):
            group.append(j)
            size = sum(requests[i].count for i in group)
            if size < _GENERATION_GROUP and position < len(todo) - 1:
                continue
            made = generator.generate([requests[i] for i in group], progress=self.progress)
            checked = GeneratedSet.from_outputs([requests[i] for i in group], made)
            _check_not_blank(checked)
            seeds = getattr(generator, "seeds_", None)
            for g, i in enumerate(group):
                images = [im for im, o in zip(checked.images, checked.request_index, strict=True)
                          if o == g]  # fmt: skip
                outputs[i] = images
                image_seeds = (
                    list(seeds[g]) if isinstance(seeds, list) and len(seeds) == len(group)
                    else [requests[i].image_seed(n) for n in range(requests[i].count)]
                )  # fmt: skip
                manifest = {
                    "request": asdict(requests[i]),
                    "job_id": requests[i].job_id,
                    "generator": gen_fp,
                    "images": [{"index": n, "seed": int(sd)} for n, sd in enumerate(image_seeds)],
                }
                cache.put_images("generated", keys[i], images, manifest)
            group = []
        return outputs, ids  # type: ignore[return-value]

    def _filter(
        self, generated: GeneratedSet, candidates: Mapping[str, Sequence[str]] | None
    ) -> GeneratedSet:
        """Drop the images the filter rejects and ask for replacements, round by round."""
        image_filter = self.image_filter
        _check(image_filter, "image_filter", ImageFilter, "an ImageFilter (or None)")
        rounds = self.filter_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
            raise ValueError(f"filter_rounds must be an integer >= 0, got {rounds!r}")
        generator = self._require("generator", ImageGenerator)
        names = self._class_names()
        requests = generated.requests
        if candidates is None:
            candidates = {}
            for r in requests:
                if r.value is not None:
                    candidates.setdefault(r.class_name, [])
                    if r.value not in candidates[r.class_name]:
                        candidates[r.class_name].append(r.value)
        kept: list[list[Any]] = [[] for _ in requests]
        kept_ids: list[list[str | None]] = [[] for _ in requests]
        dropped = {reason: np.zeros(len(requests), dtype=np.int64) for reason in REASONS}
        batch = list(
            zip(
                generated.request_index.tolist(),
                list(generated.images),
                generated.image_ids or [None] * len(generated),
                strict=True,
            )
        )
        for round_ in range(rounds + 1):
            verdicts = image_filter.check(
                [image for _, image, _ in batch],
                [requests[j] for j, _, _ in batch],
                class_names=names,
                candidates=candidates,
            )
            if len(verdicts) != len(batch):
                raise ValueError(
                    f"image_filter.check returned {len(verdicts)} verdicts for {len(batch)} images"
                )
            for (j, image, image_id), verdict in zip(batch, verdicts, strict=True):
                if verdict is None:
                    kept[j].append(image)
                    kept_ids[j].append(image_id)
                elif verdict in dropped:
                    dropped[verdict][j] += 1
                else:
                    raise ValueError(
                        f"image_filter.check returned {verdict!r}; expected None or one of "
                        f"{REASONS}"
                    )
            short = [j for j, r in enumerate(requests) if len(kept[j]) < r.count]
            if not short or round_ == rounds:
                break
            retry = [
                replace(
                    requests[j],
                    count=requests[j].count - len(kept[j]),
                    seed=_derive_seed("replace", requests[j].seed, round_ + 1),
                )
                for j in short
            ]
            outputs, ids = self._run_generator(generator, retry)
            again = GeneratedSet.from_outputs(retry, outputs, image_ids=ids)
            batch = list(
                zip(
                    [short[i] for i in again.request_index.tolist()],
                    list(again.images),
                    again.image_ids or [None] * len(again),
                    strict=True,
                )
            )
        report = pd.DataFrame(
            {
                "class": [r.class_name for r in requests],
                "value": [r.value for r in requests],
                "requested": [r.count for r in requests],
                "kept": [len(k) for k in kept],
                **{f"dropped_{reason}": dropped[reason] for reason in REASONS},
            }
        )
        total = int(sum(d.sum() for d in dropped.values()))
        missing = int((report["requested"] - report["kept"]).sum())
        logger.info(
            "image filter dropped %d of %d images; %d could not be replaced in %d rounds",
            total,
            total + int(report["kept"].sum()),
            missing,
            rounds,
        )
        flat_ids = [i for ids in kept_ids for i in ids]
        return GeneratedSet.from_outputs(
            requests,
            kept,
            filter_report=report,
            image_ids=None if None in flat_ids else flat_ids,
        )

    def repair(
        self,
        train_features: torch.Tensor,
        train_labels: np.ndarray,
        extra_features: torch.Tensor | None = None,
        extra_labels: np.ndarray | None = None,
        *,
        lam: float = 0.5,
        seed: int = 0,
    ) -> torch.nn.Linear:
        """Refit the head on train features plus ``lam``-weighted generated features.

        The fit starts from the model's own head. With a cache, a fit with the same trainer,
        features, labels, ``lam``, start and ``seed`` is read back instead of repeated.

        Args:
            train_features: ``(n, d)`` features of the training data (from
                [`features`][features]).
            train_labels: their ``n`` labels.
            extra_features: ``(m, d)`` features of generated images, or ``None`` for a plain
                refit on the training data.
            extra_labels: their ``m`` labels; given with ``extra_features``.
            lam: the weight (``>= 0``) of the generated images' mean loss.
            seed: passed to the head trainer.

        Returns:
            The new head, a float32 ``nn.Linear`` on the CPU.

        Raises:
            ValueError: if ``lam`` is negative or the extractor's head does not fit the features
                or the class names; and whatever the trainer raises on its inputs.
            TypeError: if ``head_trainer`` is not a
                [`HeadTrainer`][failmodes.interfaces.HeadTrainer].
        """
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        trainer = self._trainer()
        init = self._head(train_features)
        labels = torch.as_tensor(train_labels, dtype=torch.long)
        extra = None if extra_labels is None else torch.as_tensor(extra_labels, dtype=torch.long)
        num_classes = len(self._class_names())

        def fit() -> dict[str, torch.Tensor]:
            head = trainer.fit(
                train_features,
                labels,
                extra_features=extra_features,
                extra_labels=extra,
                lam=float(lam),
                init=init,
                num_classes=num_classes,
                seed=seed,
            )
            out = {"weight": head.weight.detach().float()}
            if head.bias is not None:
                out["bias"] = head.bias.detach().float()
            return out

        spec = self._spec(
            trainer=fingerprint(trainer),
            train=self._identity(train_features),
            labels=tensor_digest([labels]),
            extra="none" if extra_features is None else self._identity(extra_features),
            extra_labels="none" if extra is None else tensor_digest([extra]),
            lam=float(lam),
            init=_head_digest(init),
            num_classes=num_classes,
            seed=seed,
        )
        params = cached(self._cache(), "heads", spec, fit, as_json=False)
        weight = params["weight"]
        head = torch.nn.utils.skip_init(
            torch.nn.Linear, weight.shape[1], weight.shape[0], bias="bias" in params
        )
        with torch.no_grad():
            head.weight.copy_(weight)
            if "bias" in params:
                head.bias.copy_(params["bias"])
        return head

    def evaluate(
        self,
        head: torch.nn.Linear,
        splits: dict[str, tuple[torch.Tensor, np.ndarray]],
    ) -> dict[str, float]:
        """Accuracy of ``head`` on named ``(features, labels)`` splits.

        Args:
            head: the head to evaluate (any ``nn.Linear`` taking the features).
            splits: ``{name: (features, labels)}``, features ``(n, d)`` and ``n`` labels.

        Returns:
            ``{name: accuracy}``; ``nan`` for an empty split.
        """
        return {name: _accuracy(self._logits(head, f), y) for name, (f, y) in splits.items()}

    # ------------------------------------------------------------------ run
    def run(self, train: Any, debug: Any, test: Any, *, seed: int = 0) -> RunResult:
        """Run the whole method and its baselines.

        Args:
            train: the original training data (or a subset, e.g. 30 images per class), used to
                refit the head.
            debug: the debug set; its failures are found, split and captioned.
            test: the test set, used only for reporting.
            seed: seed of the splits, generation and solver.

        The steps, in order: [`propose`][propose], [`features`][features] of the three sets,
        [`find_failures`][find_failures], [`caption`][caption], one [`generate`][generate] at
        the largest ``k`` and images per mode, a [`repair`][repair] for every candidate setting
        (the setting is chosen on the validation part), and the baselines.

        Returns:
            A [`RunResult`][failmodes.results.RunResult].

        Raises:
            ValueError: if a component is missing, ``k``, ``lam`` or ``images_per_mode`` holds
                an invalid value, the proposer gives fewer values than ``k`` for a class; and as
                the steps do.
            TypeError: if a component does not implement its interface.
        """
        started = time.perf_counter()
        names = self._class_names()
        k_grid = self._grid(self.k, "k", int, 1)
        lam_grid = self._grid(self.lam, "lam", float, 0.0)
        n_grid = self._grid(self.images_per_mode, "images_per_mode", int, 1)
        for name in ("proposer", "captioner", "generator"):
            self._require(
                name,
                {
                    "proposer": BackgroundProposer,
                    "captioner": FailureCaptioner,
                    "generator": ImageGenerator,
                }[name],
            )
        self._trainer()
        get_attribute(self.attribute)

        # proposals first: cheap, and an error here costs nothing
        proposals = self.propose()
        # (a class with no proposals at all is an error only if it has failures: see caption)
        short = {c: len(v) for c, v in proposals.items() if 0 < len(v) < max(k_grid)}
        if short:
            raise ValueError(
                f"k={max(k_grid)} failure modes per class, but the proposer gave fewer "
                f"{get_attribute(self.attribute).plural or 'values'} for {len(short)} classes "
                f"(e.g. {dict(list(short.items())[:3])}); lower k or propose more values"
            )

        train_f, train_y = self.features(train, name="train")
        debug_f, debug_y = self.features(debug, name="debug")
        test_f, test_y = self.features(test, name="test")
        original = self._head(train_f)
        failures = self.find_failures(debug, seed=seed, features=(debug_f, debug_y))
        modes = self.caption(debug, failures, proposals, k=max(k_grid))

        # one targeted set at the largest k and images per mode; smaller candidates use prefixes
        k_max, n_max = max(k_grid), max(n_grid)
        ranked = modes.top_k(k_max)
        targeted = self.generate(
            self.requests({(c, v): n_max for c in names for v in ranked.get(c, [])}, seed=seed),
            candidates=proposals,
        )
        gen_f = self._features_of_generated(targeted)

        val_splits = _validation_splits(failures, debug_f, debug_y)
        before_val = self.evaluate(original, val_splits)

        def choose(candidates, feats, labels):
            return self._choose(
                candidates, feats, labels, (train_f, train_y), val_splits, before_val, seed
            )

        req_k = np.zeros(len(targeted), dtype=np.int64)  # rank of each image's mode
        img_i = np.zeros(len(targeted), dtype=np.int64)  # index of each image in its request
        for j, req in enumerate(targeted.requests):
            where = targeted.request_index == j
            req_k[where] = ranked[req.class_name].index(req.value)
            img_i[where] = np.arange(where.sum())
        cands = [
            ({"k": k, "images_per_mode": n}, (req_k < k) & (img_i < n), lam)
            for k, n, lam in itertools.product(k_grid, n_grid, lam_grid)
        ]
        (chosen, head), selection = choose(cands, gen_f, targeted.labels)
        k_star, n_star, lam_star = chosen["k"], chosen["images_per_mode"], chosen["lam"]
        selection.insert(0, "method", "failmodes")
        modes.modes = modes.top_k(k_star)
        examples = failure_examples(debug, modes, per_mode=self.examples_per_mode)
        chosen_set = targeted.select((req_k < k_star) & (img_i < n_star))
        heads = {"before": original, "failmodes": head}
        baseline_sets: dict[str, GeneratedSet] = {}

        if self.baselines:
            per_class = {c: len(modes.modes.get(c, [])) * n_star for c in names}
            all_values = list(dict.fromkeys(v for c in names for v in proposals[c]))
            rng = np.random.default_rng(_derive_seed("uniform", seed))
            uniform_counts: dict[tuple[str, str | None], int] = {}
            for c in names:
                for v in rng.choice(len(all_values), size=per_class[c], replace=True):
                    key = (c, all_values[int(v)])
                    uniform_counts[key] = uniform_counts.get(key, 0) + 1
            for method, counts in (
                ("random", {(c, None): per_class[c] for c in names}),
                ("uniform", uniform_counts),
            ):
                gen = baseline_sets[method] = self.generate(
                    self.requests(counts, seed=seed), candidates=proposals
                )
                f = self._features_of_generated(gen)
                everything = np.ones(len(gen), dtype=bool)
                (_, heads[method]), table = choose(
                    [
                        ({"k": k_star, "images_per_mode": n_star}, everything, lam)
                        for lam in lam_grid
                    ],
                    f,
                    gen.labels,
                )
                table.insert(0, "method", method)
                selection = pd.concat([selection, table], ignore_index=True)
            heads["refit"] = self.repair(train_f, train_y, lam=0.0, seed=seed)

        splits = {
            "test": (test_f, test_y),
            "debug_seed": (debug_f[failures.seed], debug_y[failures.seed]),
            "debug_heldout": (debug_f[failures.heldout], debug_y[failures.heldout]),
            "validation": val_splits["validation"],
        }
        accuracy = {m: self.evaluate(h, splits) for m, h in heads.items()}
        test_groups = groups_of(test)
        group_accuracy = {}
        if test_groups is not None:
            groups = np.asarray(["" if g is None else str(g) for g in test_groups])
            for m, h in heads.items():
                logits = self._logits(h, test_f)
                group_accuracy[m] = {
                    g: _accuracy(logits, test_y, np.flatnonzero(groups == g))
                    for g in sorted(set(groups.tolist()))
                }
        config = {
            "k": k_star,
            "lam": lam_star,
            "images_per_mode": n_star,
            "k_grid": k_grid,
            "lam_grid": lam_grid,
            "images_per_mode_grid": n_grid,
            "validation_fraction": self.validation_fraction,
            "tolerance": self.tolerance,
            "attribute": self.attribute,
            "seed": seed,
            "version": __version__,
        }
        result = RunResult(
            class_names=names,
            attribute=self.attribute,
            accuracy=accuracy,
            group_accuracy=group_accuracy,
            failures=failures,
            modes=modes,
            generated=chosen_set,
            selection=selection,
            config=config,
            caption_accuracy=self._caption_accuracy(debug, modes),
            baseline_generated=baseline_sets,
            heads=heads,
            examples=examples,
            seconds=time.perf_counter() - started,
        )
        logger.info("run finished in %.1fs", result.seconds)
        return result

    def _choose(
        self,
        candidates: Sequence[tuple[dict, np.ndarray, float]],
        feats: torch.Tensor,
        labels: np.ndarray,
        train: tuple[torch.Tensor, np.ndarray],
        val_splits: dict[str, tuple[torch.Tensor, np.ndarray]],
        before_val: dict[str, float],
        seed: int,
    ) -> tuple[tuple[dict, torch.nn.Linear], pd.DataFrame]:
        """Fit each ``(settings, image mask, lam)`` candidate; pick one on the validation part.

        The pick maximises accuracy on the validation part's failures among the candidates that
        keep its overall accuracy within ``tolerance`` of the original head's (the most accurate
        overall when none does).
        """
        rows, best, best_key = [], None, None
        for settings, mask, lam in candidates:
            head = self.repair(
                *train, feats[torch.as_tensor(mask)], labels[mask], lam=lam, seed=seed
            )
            acc = self.evaluate(head, val_splits)
            eligible = acc["validation"] >= before_val["validation"] - self.tolerance
            row = {
                **settings,
                "lam": lam,
                "val_acc": acc["validation"],
                "val_failure_acc": acc["validation_failures"],
                "eligible": eligible,
            }
            rows.append(row)
            key = (eligible, acc["validation_failures"] if eligible else acc["validation"])
            if best_key is None or key > best_key:
                best, best_key = (row, head), key
        return best, pd.DataFrame(rows)

    def refit_on(
        self,
        generated: GeneratedSet,
        train: Any,
        debug: Any,
        *,
        failures: FailureSet,
        seed: int = 0,
    ) -> tuple[torch.nn.Linear, float, pd.DataFrame]:
        """Repair this model's head with a given generated set (made for another model, say).

        ``lam`` is chosen among the Debugger's ``lam`` values on the validation part of
        ``failures`` (this model's split of ``debug``), as [`run`][run] chooses it.

        Args:
            generated: the images to repair with, e.g. made by another model's Debugger.
            train: the training data, refit on.
            debug: the debug set ``failures`` indexes into.
            failures: this model's split of ``debug`` (from [`find_failures`][find_failures] or
                its [`RunResult`][failmodes.results.RunResult]); its validation part chooses
                ``lam``.
            seed: passed to the head trainer.

        Returns:
            ``(head, lam, selection table)``: the repaired head, the chosen ``lam``, and one row
            per candidate ``lam`` with its validation accuracies.

        Raises:
            ValueError: if ``lam`` holds an invalid value; and as [`features`][features] and
                [`repair`][repair] do.
        """
        lam_grid = self._grid(self.lam, "lam", float, 0.0)
        train_f, train_y = self.features(train, name="train")
        debug_f, debug_y = self.features(debug, name="debug")
        original = self._head(train_f)
        val_splits = _validation_splits(failures, debug_f, debug_y)
        before_val = self.evaluate(original, val_splits)
        gen_f = self._features_of_generated(generated)
        everything = np.ones(len(generated), dtype=bool)
        (row, head), table = self._choose(
            [({}, everything, lam) for lam in lam_grid],
            gen_f,
            generated.labels,
            (train_f, train_y),
            val_splits,
            before_val,
            seed,
        )
        return head, float(row["lam"]), table

    def _features_of_generated(self, generated: GeneratedSet) -> torch.Tensor:
        if len(generated) == 0:
            d = self._require("extractor", FeatureExtractor).head.in_features
            return torch.zeros(0, d)
        data = ImageDataset(generated.images, generated.labels)
        if generated.image_ids is not None:  # known by provenance: no need to read the pixels
            data.cache_key = {"generated": digest([generated.image_ids, data.labels])}
        feats, _ = self.features(data, name="generated images")
        return feats

    @staticmethod
    def _caption_accuracy(debug: Any, modes: FailureModes) -> float | None:
        """Among captioned failures whose true value is a candidate, the share captioned so."""
        groups = groups_of(debug)
        if groups is None:
            return None
        hits = total = 0
        for i, y, cap in zip(modes.indices, modes.labels, modes.captions, strict=True):
            truth = groups[int(i)]
            if truth is not None and truth in modes.candidates.get(modes.class_names[int(y)], []):
                total += 1
                hits += cap.value == truth
        return hits / total if total else None
