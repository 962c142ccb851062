"""Step 4, captions: each ``debug_seed`` failure's most likely value; per class, the top k."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from failmodes._checks import check_instance, check_seed, component_name
from failmodes.attributes import get_attribute
from failmodes.cache import Cache, cache_spec, cached, data_fingerprint, digest, fingerprint
from failmodes.data import groups_of, images_at
from failmodes.interfaces import Caption, FailureCaptioner
from failmodes.progress import stage
from failmodes.ranking import DEFAULT_RANK, Ranking, get_ranking
from failmodes.results import FailureModes, FailureSet
from failmodes.settings import GRIDS
from failmodes.steps._map import JOB_IMAGES, chunks, map_jobs
from failmodes.steps.failures import check_failures_of, sample_successes

__all__ = ["caption_accuracy", "caption_failures", "check_captions"]

logger = logging.getLogger("failmodes")


def caption_failures(
    captioner: FailureCaptioner,
    debug: Any,
    failures: FailureSet,
    proposals: Mapping[str, Sequence[str]],
    *,
    class_names: Sequence[str],
    k: int,
    attribute: str = "background",
    cache: Cache | None = None,
    rank: str | Ranking = DEFAULT_RANK,
    significant: bool = False,
    usual: Mapping[str, str] | None = None,
    seed: int = 0,
) -> FailureModes:
    """Caption the ``debug_seed`` failures and keep the top-``k`` values per class.

    Classes with failures but no proposals raise an error; classes without failures have no
    failure modes. With a ranking that needs no successes (``rank="count"``) only the failures
    are captioned, among their class's proposals. With one that does (``rank="excess"``, the
    default) or ``significant``, a seeded half of each class's successes outside the validation
    part is captioned too, failures and successes among the proposals plus the class's ``usual``
    value, so that each value's failure rate is known (see
    [`FailureModes.stats`][failmodes.results.FailureModes.stats]). Images are captioned in jobs
    of a few thousand; with a cache, each job's captions by the same captioner among the same
    candidates are read back.

    Args:
        captioner: picks each failure's value among its class's proposals.
        debug: the debug set that ``failures`` indexes into.
        failures: the split from [`find_failures`][failmodes.steps.find_failures].
        proposals: ``{class_name: [value, ...]}``; each class's failures are captioned among
            its values.
        class_names: all class names by label index.
        k: failure modes kept per class (at least 1).
        attribute: the spurious attribute.
        cache: where captions are kept, or ``None``.
        rank: a registered ranking's name or a [`Ranking`][failmodes.ranking.Ranking].
        significant: keep only values whose failure rate's interval clears the class's base
            rate (a class with none keeps its top ``k``, with a warning).
        usual: ``{class_name: value}``, each class's usual value (captioned, never a mode), for
            the classes that have one; ignored when no success is captioned.
        seed: the run's seed, which draws the captioned successes.

    Returns:
        A [`FailureModes`][failmodes.results.FailureModes] with the captions and the top-``k``
        values of each class.

    Raises:
        ValueError: if ``failures`` were found on a debug set of another size, a class with
            failures has no proposals, the captioner does not return one caption per image, or
            ``k`` is not a positive integer.
        TypeError: if ``captioner`` is not a
            [`FailureCaptioner`][failmodes.interfaces.FailureCaptioner].
    """
    check_instance(captioner, "captioner", FailureCaptioner, "a FailureCaptioner")
    check_failures_of(failures, debug)
    k = GRIDS["k"].check_one(k, "k")
    seed = check_seed(seed)
    with_successes = get_ranking(rank).needs_successes or bool(significant)
    idx = failures.seed
    classes = [class_names[int(failures.labels[i])] for i in idx]
    empty = sorted({c for c in classes if not proposals.get(c)})
    if empty:
        raise ValueError(
            f"classes {empty} have failures but no proposed "
            f"{get_attribute(attribute).plural or 'values'}; give the proposer values for them"
        )
    successes = sample_successes(failures, seed=seed) if with_successes else idx[:0]
    if with_successes:
        failing = set(classes)
        successes = np.asarray(
            [i for i in successes if class_names[int(failures.labels[i])] in failing],
            dtype=np.int64,
        )
    usual = {c: v for c, v in (usual or {}).items() if v} if with_successes else {}
    candidates = {
        c: [*values, *([usual[c]] if c in usual and usual[c] not in values else [])]
        for c, values in proposals.items()
    }
    everything = np.concatenate([idx, successes])
    stage(
        "captioning %s debug_seed failures%s",
        f"{len(idx):,}",
        f" and {len(successes):,} successes" if with_successes else "",
    )
    started = time.perf_counter()
    job = partial(
        _caption_job,
        captioner,
        debug,
        everything,
        classes + [class_names[int(failures.labels[i])] for i in successes],
        candidates,
        attribute,
        cache,
        None if cache is None else data_fingerprint(debug),
    )
    captions = [c for part in map_jobs(job, chunks(len(everything), JOB_IMAGES)) for c in part]
    logger.info("captioned %d images in %.1fs", len(everything), time.perf_counter() - started)
    _warn_if_mostly_unnamed(captions[: len(idx)], component_name(captioner))
    return FailureModes.from_captions(
        class_names=class_names,
        attribute=attribute,
        indices=idx,
        labels=failures.labels[idx],
        predictions=failures.predictions[idx],
        captions=captions[: len(idx)],
        candidates=dict(proposals),
        k=k,
        successes=(successes, failures.labels[successes], captions[len(idx) :]),
        usual=usual,
        rank=rank,
        significant=significant,
    )


def _caption_job(
    captioner: FailureCaptioner,
    debug: Any,
    idx: Sequence[int],
    classes: list[str],
    proposals: Mapping[str, Sequence[str]],
    attribute: str,
    cache: Cache | None,
    data: Any,
    rows: range,
) -> list[Caption]:
    """One job: the captions of failures ``rows`` (positions in ``idx``), cached."""
    part = [int(idx[r]) for r in rows]
    names = classes[rows.start : rows.stop]

    def run() -> list[list]:
        captions = captioner.caption(
            images_at(debug, part), image_classes=names, candidates=proposals, attribute=attribute
        )
        check_captions(captions, names, proposals, component_name(captioner))
        return [[c.value, float(c.score)] for c in captions]

    spec = None
    if cache is not None:
        spec = cache_spec(
            captioner=fingerprint(captioner),
            data=data,
            indices=digest(part),
            classes=names,
            candidates={c: list(proposals[c]) for c in sorted(set(names))},
            attribute=attribute,
        )
    return [Caption(v, s) for v, s in cached(cache, "captions", spec, run, as_json=True)]


def caption_accuracy(debug: Any, modes: FailureModes) -> float | None:
    """Among captioned failures whose true value is a candidate, the share captioned so.

    Args:
        debug: the debug set; its ``groups`` (each sample's true value) are compared.
        modes: the captions.

    Returns:
        The share, or ``None`` when the debug set carries no groups or no failure's true value
        was a candidate.
    """
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


def check_captions(
    captions: Any,
    image_classes: Sequence[str],
    candidates: Mapping[str, Sequence[str]],
    captioner: str = "the captioner",
) -> None:
    """What a captioner returned, checked: one Caption per image, values among the candidates.

    Args:
        captions: what ``captioner.caption`` returned.
        image_classes: the class of each image it was given.
        candidates: ``{class_name: [value, ...]}`` it was given.
        captioner: how to name the captioner in the error.

    Raises:
        TypeError: if ``captions`` is not a list of [`Caption`][failmodes.interfaces.Caption]s
            or a score is not a number.
        ValueError: if there is not one caption per image, or a value is not among the
            image's class's candidates (nor ``None``), or a score is NaN.
    """
    if not isinstance(captions, Sequence) or isinstance(captions, str | bytes):
        raise TypeError(
            f"{captioner}.caption must return a list of Caption, got {type(captions).__name__}"
        )
    if len(captions) != len(image_classes):
        raise ValueError(
            f"{captioner}.caption returned {len(captions)} captions for {len(image_classes)} "
            "images; it must return one per image, in order"
        )
    for caption, name in zip(captions, image_classes, strict=True):
        if not isinstance(caption, Caption):
            raise TypeError(
                f"{captioner}.caption must return Caption objects (value, score), got "
                f"{type(caption).__name__} {caption!r:.60}"
            )
        allowed = candidates.get(name, ())
        if caption.value is not None and caption.value not in allowed:
            raise ValueError(
                f"{captioner}.caption returned {caption.value!r} for an image of class {name!r}, "
                f"which is not among the candidates it was given ({list(allowed)[:5]}...)"
            )
        score = caption.score
        if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
            raise TypeError(
                f"{captioner}.caption gave a score that is not a number: {score!r} for class "
                f"{name!r}"
            )


def _warn_if_mostly_unnamed(captions: Sequence[Caption], captioner: str) -> None:
    """A warning when the captioner named no value for most of the failures."""
    unnamed = sum(c.value is None for c in captions)
    if captions and unnamed * 2 > len(captions):
        warnings.warn(
            f"{captioner} named no value for {unnamed} of {len(captions)} failures; those count "
            "for no failure mode (are the candidates right? is its min_prob too high?)",
            stacklevel=3,
        )
