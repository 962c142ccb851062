"""Step 1, features: the model split into frozen backbone features and its linear head.

[`extract_features`][extract_features] computes (or reads back from the cache) the features of
a dataset, part by part (each part a job on the engine in use) so that a killed extraction
resumes;
[`generated_features`][generated_features] does it for a generated set, keyed by the images'
provenance so that a cached rerun never decodes them; [`original_head`][original_head] is the
model's own head, checked against the features and the classes.
"""

from __future__ import annotations

import logging
import numbers
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch

from failmodes._checks import check_instance
from failmodes.cache import Cache, cache_spec, data_fingerprint, digest, fingerprint
from failmodes.data import ImageDataset, iter_items, labels_of, materialize
from failmodes.errors import SettingError
from failmodes.images import describe_image, image_shape
from failmodes.interfaces import FeatureExtractor
from failmodes.progress import stage
from failmodes.results import Features, GeneratedSet
from failmodes.settings import check_setting
from failmodes.shards import SHARD_DTYPES, FeatureShards
from failmodes.steps._map import chunks, map_jobs
from failmodes.steps.evaluation import check_extra

__all__ = [
    "check_guard",
    "check_sets",
    "check_test",
    "extract_features",
    "generated_features",
    "original_head",
    "read_labels",
    "warn_missing_classes",
]

logger = logging.getLogger("failmodes")


def read_labels(data: Any, name: str, class_names: Sequence[str] | None = None) -> np.ndarray:
    """The labels of ``data``, checked against the classes.

    Args:
        data: a dataset of ``(image, label)`` pairs.
        name: what to call the data in error messages.
        class_names: all class names by label index; ``None`` skips the range checks.

    Returns:
        An int64 array, one label per sample.

    Raises:
        ValueError: if ``data`` is empty, names another number of classes (``data.classes``)
            or holds labels outside ``[0, len(class_names))``.
    """
    labels = labels_of(data, name)
    if len(labels) == 0:
        raise ValueError(f"{name} is empty")
    if class_names is None:
        return labels
    n_classes = len(class_names)
    classes = getattr(data, "classes", None)  # torchvision's folder datasets name theirs
    if isinstance(classes, list | tuple) and len(classes) != n_classes:
        raise ValueError(
            f"{name} has {len(classes)} classes ({list(classes)[:5]}...) but there are "
            f"{n_classes} class_names; pass one name per label index of the data"
        )
    bad = labels[(labels < 0) | (labels >= n_classes)]
    if len(bad):
        raise ValueError(
            f"{name} has labels outside [0, {n_classes}) for the {n_classes} class_names, "
            f"e.g. {bad[:5].tolist()}"
        )
    return labels


def warn_missing_classes(labels: np.ndarray, class_names: Sequence[str], name: str) -> None:
    """Warn naming the classes that ``labels`` (of the data called ``name``) lack.

    A head refit on training data without a class learns nothing of it (the ``refit``
    baseline never predicts it), and a repair only what it adds of that class.

    Args:
        labels: the data's labels.
        class_names: all class names by label index.
        name: what to call the data.
    """
    present = set(np.unique(labels).tolist())
    missing = [c for i, c in enumerate(class_names) if i not in present]
    if missing:
        warnings.warn(
            f"{name} has no image of class(es) {missing}: a head refit on it learns nothing of "
            "them (the refit baseline never predicts them), and a repair only what it adds; "
            f"give {name} images of every class",
            stacklevel=3,
        )


def check_guard(guard: Any) -> Any:
    """``guard`` as the data it holds, or ``None`` for ``None`` and ``False`` (no data given).

    Args:
        guard: in-distribution data, ``None`` (a share of train, ``guard_fraction``) or
            ``False`` (no guard).

    Returns:
        The data, or ``None``.

    Raises:
        TypeError: for ``True``, a number, or any other flag.
    """
    if guard is None or guard is False:
        return None
    if isinstance(guard, numbers.Number | np.bool_):
        raise TypeError(
            f"guard must be data, None or False, got {guard!r}: in-distribution (image, label) "
            "pairs, None for a share of train (guard_fraction), or False for no guard"
        )
    return guard


def check_test(test: Any) -> Any:
    """``test``, or a ValueError when it is ``None``: a run measures every head on it.

    Args:
        test: the test set given to a run.

    Returns:
        ``test``.
    """
    if test is None:
        raise ValueError(
            "run needs a test set, got test=None: every head is measured on it for the report "
            "(prepare and refit_on take test=None)"
        )
    return test


def check_sets(
    train: Any, debug: Any, test: Any = None, guard: Any = None, extra: Any = None
) -> dict[str, Any]:
    """A run's data checked before any work: ``extra`` (see ``check_extra``), and image shapes.

    Tensors usually reach the model as they are (the extractors' own preprocessing sizes PIL
    images; a tensor passes unless a transform is given), so a set whose first image is a
    tensor of another shape than train's is read at another size, and a model that pools over
    any size gives features for it without a word. That is warned about; PIL images of
    different sizes are not. Only sets that can be read by index are looked at, so a one-shot
    iterable is not consumed.

    Args:
        train: the training data, whose first image the others are compared with.
        debug: the debug set.
        test: the test set, or ``None``.
        guard: the guard set, ``None`` or ``False`` (see [`check_guard`][check_guard]).
        extra: ``{name: data}`` or ``None``.

    Returns:
        ``extra`` as a dict (empty for ``None``).

    Raises:
        TypeError, ValueError: from ``check_guard`` and ``check_extra``.
    """
    guard = check_guard(guard)
    extra = check_extra(extra)
    first = _tensor_shape(_first_image(train))
    for name, data in {"debug": debug, "test": test, "guard": guard, **extra}.items():
        shape = None if first is None else _tensor_shape(_first_image(data))
        if shape is not None and shape != first:
            warnings.warn(
                f"{name}'s images are tensors of shape {shape} but train's are {first}: unless "
                "the extractor's transform resizes tensors, the model reads them at another "
                "size than the images its head was fitted on; resize them, or give PIL images",
                stacklevel=3,
            )
    return extra


def _first_image(data: Any) -> Any:
    """The first image of a set read by index (a one-shot iterable is not consumed), or None."""
    if data is None or isinstance(data, Iterator) or not hasattr(data, "__getitem__"):
        return None
    try:
        return next(iter_items([data[0]]))[0]
    except Exception:  # empty, or not indexable by position: the steps say why, later
        return None


def _tensor_shape(image: Any) -> tuple | None:
    """``(C, H, W)`` of an image given as a tensor or array, else ``None``."""
    shape = image_shape(image)
    return tuple(shape[1:]) if shape is not None and shape[0] == "tensor" else None


def _reading(extractor: FeatureExtractor, data: Any, name: str) -> str:
    """What the extractor was reading when it failed: the data's name and its first image."""
    image = _first_image(data)
    first = "the first cannot be read" if image is None else f"the first is {describe_image(image)}"
    return (
        f"failmodes: while {type(extractor).__name__} extracted the features of {name} "
        f"({first}); check that {name}'s images are what the model reads"
    )


def extract_features(
    extractor: FeatureExtractor,
    data: Any,
    *,
    class_names: Sequence[str] | None = None,
    cache: Cache | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    checkpoint_every: int = 1024,
    name: str = "data",
    shards: bool = False,
    shard_dtype: str = "float32",
    labels: np.ndarray | None = None,
) -> Features:
    """Backbone features and labels of a dataset of ``(image, label)`` pairs.

    With a cache, the features are read back when the extractor and the data are the same as
    in an earlier call; otherwise they are computed ``checkpoint_every`` images at a time,
    each part cached as soon as it is done, so a killed run resumes from its last finished
    part. Each part is a job on the engine in use, with or without a cache.

    With ``shards=True`` the parts are never joined: the features come back as
    [`FeatureShards`][failmodes.shards.FeatureShards] over the cache's parts, each read when a
    pass over them asks for it, so a set larger than memory can be extracted and a head fitted
    from it ([`LinearHeadTrainer`][failmodes.heads.linear.LinearHeadTrainer]). The driver holds
    the labels only, on either engine.

    Args:
        extractor: the model's backbone and head.
        data: a dataset of ``(image, label)`` pairs (see [`failmodes.data`][failmodes.data]).
        class_names: all class names by label index; the labels are checked against them.
        cache: where features are kept, or ``None``.
        batch_size: passed to the extractor; ``None`` keeps the extractor's own.
        progress: passed to the extractor (see [`failmodes.progress`][failmodes.progress]).
        checkpoint_every: images per cached part.
        name: what to call the data in log lines and error messages.
        shards: keep the features as shards in the cache instead of one tensor; needs a cache.
        shard_dtype: how shards are stored: ``"float32"`` or ``"float16"`` (half the size;
            computed in float32, rounded when stored). Only with ``shards=True``.
        labels: the labels of ``data`` as [`read_labels`][read_labels] returned them with the
            same ``class_names``, so that a dataset without ``targets`` is not read once more
            for them; ``None`` reads them.

    Returns:
        [`Features`][failmodes.results.Features]: an ``(n, d)`` float32 tensor (or
        [`FeatureShards`][failmodes.shards.FeatureShards] with ``shards=True``) and ``n``
        labels.

    Raises:
        ValueError: if ``data`` is empty or its labels do not fit ``class_names``,
            ``checkpoint_every`` is not a positive integer, or the extractor returns features
            of the wrong shape or with NaN or infinite values (or beyond float16's range with
            ``shard_dtype="float16"``); with ``shards=True``, if there is no cache, the
            extractor or the data has no fingerprint, or ``shard_dtype`` is not a shard dtype.
        TypeError: if ``extractor`` is not a
            [`FeatureExtractor`][failmodes.interfaces.FeatureExtractor].

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from failmodes import TorchExtractor
        >>> from failmodes.steps import extract_features
        >>> extractor = TorchExtractor(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)))
        >>> data = [(torch.rand(3, 2, 2), i % 2) for i in range(5)]
        >>> features = extract_features(extractor, data, class_names=["fox", "owl"])
        >>> features.features.shape, features.labels.tolist()
        (torch.Size([5, 12]), [0, 1, 0, 1, 0])
    """
    check_instance(extractor, "extractor", FeatureExtractor, "a FeatureExtractor")
    _check_shards(shards, shard_dtype, cache)
    data = materialize(data)  # a one-shot iterable is read once, here
    labels = read_labels(data, name, class_names) if labels is None else labels
    stage("features of %s (%s images)", name, f"{len(labels):,}")
    started = time.perf_counter()
    spec = None
    if cache is not None:
        spec = cache_spec(extractor=fingerprint(extractor), data=data_fingerprint(data))

    def extract(part: Any) -> torch.Tensor:
        try:
            return extractor.extract(part, batch_size=batch_size, progress=progress)
        except SettingError:  # a setting of the extractor, named: the data is not at fault
            raise
        except Exception as err:  # the model's own error, with which data it was reading
            if hasattr(err, "add_note"):  # Python 3.11+
                err.add_note(_reading(extractor, data, name))
            raise

    if shards:
        if spec is None:
            raise ValueError(
                f"shards=True keeps the features of {name} in the cache, but the cache cannot "
                f"name them: the extractor {type(extractor).__name__} or the data has no "
                "fingerprint (see failmodes.cache.fingerprint: give it a cache_key(), or the "
                "data a cache_key)"
            )
        held = _sharded(cache, spec, extract, data, labels, checkpoint_every, shard_dtype, name)
        logger.info(
            "features of %s: %s rows in %s shards in %.1fs",
            name,
            f"{len(labels):,}",
            held.num_shards,
            time.perf_counter() - started,
        )
        return Features(held, labels, digest({**spec, "shards": shard_dtype}))
    if spec is None:  # no cache, or one that cannot name them: the parts are not kept
        feats = _parts(None, None, extract, data, len(labels), checkpoint_every)
    else:
        feats = _cached(cache, spec, extract, data, len(labels), checkpoint_every)
    _check_features(feats, len(labels), name)
    logger.info(
        "features of %s: %s in %.1fs", name, tuple(feats.shape), time.perf_counter() - started
    )
    return Features(feats.float(), labels, None if spec is None else digest(spec))


def _check_shards(shards: Any, shard_dtype: Any, cache: Cache | None) -> None:
    check_instance(shards, "shards", bool, "True or False")
    if not shards:
        return
    if shard_dtype not in SHARD_DTYPES:
        raise ValueError(f"shard_dtype must be one of {sorted(SHARD_DTYPES)}, got {shard_dtype!r}")
    if cache is None:
        raise ValueError(
            "shards=True needs a cache: the shards are its feature parts; give the Debugger a "
            "cache (cache=True or a folder or URL), or shards=False"
        )


def _check_features(feats: Any, n: int, name: str) -> None:
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or feats.shape[0] != n:
        shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise ValueError(
            f"the extractor returned features of shape {shape} for {name} with {n} samples; "
            f"expected ({n}, d)"
        )
    if not torch.isfinite(feats).all():
        raise ValueError(f"the extractor returned NaN or infinite features for {name}")


def _cached(
    cache: Cache,
    spec: dict,
    extract: Callable[[Any], torch.Tensor],
    data: Any,
    n: int,
    checkpoint_every: int,
) -> torch.Tensor:
    """The whole entry when cached; else every part, read back or computed and cached."""
    key = cache.key("features", spec)
    hit = cache.get_tensors("features", key)
    if hit is not None:
        return hit["features"]
    feats = _parts(cache, spec, extract, data, n, checkpoint_every)
    cache.put_tensors("features", key, {"features": feats})
    return feats


def _parts(
    cache: Cache | None,
    spec: dict | None,
    extract: Callable[[Any], torch.Tensor],
    data: Any,
    n: int,
    checkpoint_every: int,
) -> torch.Tensor:
    """Every part as a job on the engine in use (each read back or cached with a cache)."""
    jobs = _part_jobs(n, checkpoint_every)
    return torch.cat(map_jobs(partial(_part, cache, spec, extract, data, n), jobs))


def _sharded(
    cache: Cache,
    spec: dict,
    extract: Callable[[Any], torch.Tensor],
    data: Any,
    labels: np.ndarray,
    checkpoint_every: int,
    dtype: str,
    name: str,
) -> FeatureShards:
    """Every part, computed and cached where missing, as shards that read the cache."""
    n = len(labels)
    jobs = _part_jobs(n, checkpoint_every)
    work = partial(_shard_part, cache, spec, extract, data, n, dtype, name)
    loaders = map_jobs(work, jobs)  # each job returns its loader, never its features
    return FeatureShards(loaders, labels, rows=[stop - start for start, stop in jobs])


def _part_jobs(n: int, checkpoint_every: int) -> list[tuple[int, int]]:
    """The parts of ``n`` images, ``(start, stop)`` of ``checkpoint_every`` images each."""
    step = check_setting("checkpoint_every", checkpoint_every)
    return [(part.start, part.stop) for part in chunks(n, step)]


def _part_key(cache: Cache, spec: dict, start: int, stop: int, dtype: str) -> str:
    """The key of a part; a float32 part is the same entry as one of an in-memory extraction."""
    of = {"of": spec, "start": start, "stop": stop}
    return cache.key("feature-parts", of if dtype == "float32" else {**of, "dtype": dtype})


def _shard_part(
    cache: Cache,
    spec: dict,
    extract: Callable[[Any], torch.Tensor],
    data: Any,
    n: int,
    dtype: str,
    name: str,
    job: tuple[int, int],
) -> _CachedPart:
    """One job of a sharded extraction: the part is cached, and a loader of it returned."""
    start, stop = job
    key = _part_key(cache, spec, start, stop, dtype)
    what = f"{name} (images {start}:{stop})"
    if cache.get_tensors("feature-parts", key) is None:  # read back whole: checked, then freed
        feats = extract(_rows(data, start, stop, n))
        _check_features(feats, stop - start, what)
        stored = feats.float().to(SHARD_DTYPES[dtype])
        if not torch.isfinite(stored).all():
            raise ValueError(
                f"the features of {what} exceed float16's range (largest magnitude "
                f"{feats.abs().max().item():.3g}); use shard_dtype='float32'"
            )
        cache.put_tensors("feature-parts", key, {"features": stored})
    return _CachedPart(cache, key, what)


class _CachedPart:
    """A shard's loader: the features of one cached part, read when called."""

    def __init__(self, cache: Cache, key: str, what: str) -> None:
        self.cache, self.key, self.what = cache, key, what

    def __call__(self) -> torch.Tensor:
        part = self.cache.get_tensors("feature-parts", self.key)
        if part is None:
            raise FileNotFoundError(
                f"the cached features of {self.what} are gone from {self.cache.location} "
                f"(feature-parts/{self.key}, pruned or damaged); extract them again"
            )
        return part["features"]


def _rows(data: Any, start: int, stop: int, n: int) -> Any:
    """Images ``start:stop`` of ``data``, without copying when they are all of it."""
    if start == 0 and stop == n:
        return data
    if isinstance(data, torch.Tensor):
        return data[start:stop]
    return torch.utils.data.Subset(data, range(start, stop))


def _part(
    cache: Cache | None,
    spec: dict | None,
    extract: Callable[[Any], torch.Tensor],
    data: Any,
    n: int,
    job: tuple[int, int],
) -> torch.Tensor:
    """One job: the features of images ``start:stop``, from the cache or computed and cached."""
    start, stop = job
    if cache is None or spec is None:
        return extract(_rows(data, start, stop, n)).float()
    key = _part_key(cache, spec, start, stop, "float32")
    part = cache.get_tensors("feature-parts", key)
    if part is None:
        part = {"features": extract(_rows(data, start, stop, n)).float()}
        cache.put_tensors("feature-parts", key, part)
    return part["features"]


def generated_features(
    extractor: FeatureExtractor,
    generated: GeneratedSet,
    *,
    cache: Cache | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    checkpoint_every: int = 1024,
) -> Features:
    """Features of a generated set, labelled with the requests' classes.

    Images known by their provenance (``generated.image_ids``, set when they went through the
    cache) are keyed by it, so a cached rerun does not read them at all.

    Args:
        extractor: the model's backbone and head.
        generated: the images.
        cache: where features are kept, or ``None``.
        batch_size: passed to the extractor.
        progress: passed to the extractor.
        checkpoint_every: images per cached part.

    Returns:
        [`Features`][failmodes.results.Features] of the images (``(0, d)`` for an empty set).

    Raises:
        ValueError: if the extractor fails on the images, naming a request and the images'
            size and mode.
    """
    if len(generated) == 0:
        check_instance(extractor, "extractor", FeatureExtractor, "a FeatureExtractor")
        d = extractor.head.in_features
        return Features(torch.zeros(0, d), np.zeros(0, dtype=np.int64), "empty")
    data = ImageDataset(generated.images, generated.labels)
    if generated.image_ids is not None:  # known by provenance: no need to read the pixels
        data.cache_key = {"generated": digest([generated.image_ids, data.labels])}
    try:
        return extract_features(
            extractor,
            data,
            cache=cache,
            batch_size=batch_size,
            progress=progress,
            checkpoint_every=checkpoint_every,
            name="generated images",
        )
    except (RuntimeError, ValueError, TypeError) as err:
        request = generated.requests[int(generated.request_index[0])]
        image = generated.images[0]
        maker = generated.generator or "the generator"
        raise ValueError(
            f"the extractor {type(extractor).__name__} cannot take the images of {maker} (the "
            f"first is {_image_shape(image)}, for request {request.prompt!r}); does {maker} "
            f"make images of the size and mode the model takes? ({err})"
        ) from err


def _image_shape(image: Any) -> str:
    if hasattr(image, "mode") and hasattr(image, "size"):
        return f"a {image.size[0]}x{image.size[1]} {image.mode} image"
    return f"a tensor of shape {tuple(getattr(image, 'shape', ()))}"


def original_head(
    extractor: FeatureExtractor, features: Features | torch.Tensor, class_names: Sequence[str]
) -> torch.nn.Linear:
    """The model's own head, checked to take the features and give one logit per class.

    Args:
        extractor: the model's backbone and head.
        features: features of any data (their width is checked).
        class_names: all class names by label index.

    Returns:
        The extractor's head.

    Raises:
        ValueError: if the head takes another number of features or has another number of
            outputs than there are classes.
    """
    check_instance(extractor, "extractor", FeatureExtractor, "a FeatureExtractor")
    head = extractor.head
    feats = features.features if isinstance(features, Features) else features
    if head.in_features != feats.shape[1]:
        raise ValueError(
            f"the extractor's head takes {head.in_features} features but the features have "
            f"{feats.shape[1]}"
        )
    if head.out_features != len(class_names):
        raise ValueError(
            f"the head has {head.out_features} outputs but there are {len(class_names)} class_names"
        )
    return head
