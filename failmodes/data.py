"""Datasets as failmodes reads them: map-style ``(image, label)`` pairs, nothing more.

Anything indexable with ``len`` (a list of pairs, a torch ``Dataset``, torchvision's
``ImageFolder``) or any iterable of pairs works. A dataset may also carry, per sample, the value
of the spurious attribute in an attribute ``groups`` (ToyWorld's datasets do); then evaluation
reports worst-group and per-value accuracy.

[`ImageList`][failmodes.images.ImageList], [`to_rgb`][failmodes.images.to_rgb] and
[`is_blank`][failmodes.images.is_blank] live in [`failmodes.images`][failmodes.images] (they need
no torch) and are importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from failmodes.images import ImageList, is_blank, to_rgb

__all__ = [
    "HFDataset",
    "ImageDataset",
    "ImageList",
    "as_labels",
    "groups_of",
    "images_at",
    "is_blank",
    "iter_items",
    "labels_of",
    "materialize",
    "read_item",
    "subset",
    "to_rgb",
]


class ImageDataset(torch.utils.data.Dataset):
    """A map-style dataset over in-memory images, with labels and optional group values.

    Args:
        images: PIL images or ``(C, H, W)`` tensors, or an [`ImageList`][ImageList] (kept unread).
        labels: one integer label per image.
        groups: optionally, the spurious attribute's value per image (``None`` entries for
            unknown values); with groups, evaluation reports per-value accuracy.

    Attributes:
        images: the images (a list, or the [`ImageList`][ImageList] given).
        labels: the labels, as a list of ints.
        groups: the group values, or ``None``.

    Raises:
        ValueError: if ``labels`` or ``groups`` do not have one entry per image, or a label is
            not an integer (integral floats such as ``1.0`` are taken).

    Examples:
        >>> from PIL import Image
        >>> from failmodes.data import ImageDataset
        >>> data = ImageDataset([Image.new("RGB", (8, 8))] * 3, [0, 1, 1],
        ...                     groups=["on grass", "on sand", None])
        >>> len(data), data[1][1], data.targets
        (3, 1, [0, 1, 1])
    """

    def __init__(
        self,
        images: Sequence[Any],
        labels: Sequence[int],
        groups: Sequence[str | None] | None = None,
    ):
        if len(images) != len(labels):
            raise ValueError(
                f"images and labels must have the same length, got {len(images)} and {len(labels)}"
            )
        if groups is not None and len(groups) != len(images):
            raise ValueError(f"groups must have one value per image, got {len(groups)}")
        self.images = images if isinstance(images, ImageList) else list(images)
        self.labels = as_labels(labels).tolist()
        self.groups = None if groups is None else list(groups)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.images[index], self.labels[index]

    @property
    def targets(self) -> list[int]:
        """The labels, under the name torchvision's datasets give them."""
        return self.labels


class HFDataset(torch.utils.data.Dataset):
    """A Hugging Face ``datasets.Dataset`` read as ``(image, label)`` pairs.

    Rows are read by index, so images are decoded only when an item is read; the labels are
    read as one column. The class names come from the label column's ``ClassLabel`` feature
    when it has one. A dataset backed by files (one that ``load_dataset`` read or prepared) is
    known to the cache by those files, without reading its images.

    Args:
        dataset: a ``datasets.Dataset`` (one split, e.g. ``load_dataset(name, split="test")``).
        image: the column of images (PIL images, as the ``Image`` feature decodes them).
        label: the column of integer labels.

    Attributes:
        dataset: the ``datasets.Dataset``.
        image: the image column's name.
        label: the label column's name.

    Raises:
        KeyError: from [`targets`][targets] or an item, if a column does not exist.

    Examples:
        ```python
        from datasets import load_dataset

        from failmodes.data import HFDataset

        test = HFDataset(load_dataset("cifar10", split="test"), image="img", label="label")
        image, label = test[0]
        test.classes[:2]  # ['airplane', 'automobile']
        ```
    """

    def __init__(self, dataset: Any, *, image: str = "image", label: str = "label"):
        self.dataset = dataset
        self.image = image
        self.label = label

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        row = self.dataset[int(index)]
        return row[self.image], _item(row[self.label])

    @property
    def targets(self) -> list[int]:
        """The labels, read as one column."""
        return as_labels(list(self.dataset[self.label]), f"the {self.label!r} column").tolist()

    @property
    def classes(self) -> list[str] | None:
        """The label column's class names (its ``ClassLabel``'s ``names``), or ``None``."""
        feature = self.dataset.features.get(self.label)
        names = getattr(feature, "names", None)
        return None if names is None else list(names)

    @property
    def cache_key(self) -> Any:
        """The dataset's files (paths, sizes, times), columns and length, for the cache.

        [`data_fingerprint`][failmodes.cache.data_fingerprint] reads it. A dataset held in
        memory has no files, and no ``cache_key`` (reading it raises ``AttributeError``): the
        cache then reads its items to describe it.
        """
        files = [entry["filename"] for entry in getattr(self.dataset, "cache_files", None) or []]
        if not files:
            raise AttributeError("a dataset held in memory has no cache_key")
        stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
        return {"hf": stats, "rows": len(self), "image": self.image, "label": self.label}


def _is_label(value: Any) -> bool:
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.ndim == 0
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def as_labels(values: Any, name: str = "labels") -> np.ndarray:
    """Labels as an int64 array, refusing any that is not an integer.

    Integral floats (``1.0``, as pandas gives a column with a missing value) are read as
    integers; ``0.7``, NaN, booleans and strings are refused rather than truncated.

    Args:
        values: one label per sample (a list, an array, a tensor).
        name: what to call them in the error.

    Returns:
        A 1-d int64 array.

    Raises:
        ValueError: naming the first labels that are not integers, or a shape that is not 1-d.

    Examples:
        >>> from failmodes.data import as_labels
        >>> as_labels([1.0, 0, 2]).tolist()
        [1, 0, 2]
        >>> as_labels([0.7, 1.9])
        Traceback (most recent call last):
        ...
        ValueError: labels must be integers (integral floats such as 1.0 are accepted), got 0.7, 1.9
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one label per sample (1-d), got shape {array.shape}")
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array))
    else:  # objects, booleans, strings: each must be an integral number
        bad = np.array([not _integral(v) for v in array.tolist()], dtype=bool)
    if bad.any():
        shown = ", ".join(repr(v) for v in array[bad][:3].tolist())
        raise ValueError(
            f"{name} must be integers (integral floats such as 1.0 are accepted), got {shown}"
        )
    if array.dtype.kind == "f":
        return array.astype(np.int64)
    return np.asarray([int(v) for v in array.tolist()], dtype=np.int64)


def _integral(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    return bool(np.isfinite(value)) and float(value) == round(float(value))


def materialize(data: Any) -> Any:
    """``data`` itself when it can be read more than once; a one-shot iterable as a list.

    A generator (or any iterator) is consumed once, here, so that the steps that read a
    dataset several times (labels, features, captions) all see every item.

    Args:
        data: a dataset, a sequence, or any iterable of items.

    Returns:
        ``data``, or ``list(data)`` for an iterator.

    Examples:
        >>> from failmodes.data import materialize
        >>> materialize((i, 0) for i in range(2))
        [(0, 0), (1, 0)]
    """
    if isinstance(data, Iterator) or (isinstance(data, Iterable) and not hasattr(data, "__len__")):
        return list(data)
    return data


def _is_pair(item: Any) -> bool:
    return isinstance(item, tuple | list) and len(item) == 2 and _is_label(item[1])


def iter_items(data: Any) -> Iterator[tuple[Any, int | None]]:
    """Yield ``(image, label)`` from a dataset of pairs, or ``(image, None)`` from bare images.

    Args:
        data: a map-style dataset (read by index, in order) or any iterable; an item is a pair
            when it is a 2-tuple or list whose second element is an integer (or a 0-d tensor or
            array).

    Yields:
        ``(image, label)`` per item, ``label`` an ``int`` (a float that is not integral is
        passed on for [`as_labels`][as_labels] to refuse), or ``None`` for a bare image.

    Examples:
        >>> from failmodes.data import iter_items
        >>> list(iter_items([("a", 0), ("b", 1)])), list(iter_items(["c"]))
        ([('a', 0), ('b', 1)], [('c', None)])
    """
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, dict):
        items: Iterable[Any] = (read_item(data, i) for i in range(len(data)))
    else:
        items = data
    for item in items:
        if _is_pair(item):
            yield item[0], _item(item[1])
        else:
            yield item, None


def read_item(data: Any, index: int) -> Any:
    """Item ``index`` of a map-style dataset; when it fails, the error names the item's file.

    A folder dataset (torchvision's ``ImageFolder``, anything with ``samples`` or ``imgs`` of
    ``(path, label)``), an [`ImageList`][ImageList] or an [`ImageDataset`][ImageDataset] over
    one, and a ``torch.utils.data.Subset`` of these know each item's file: a truncated or
    unreadable image is then named by its path in a note on the error (in its message on
    Python 3.10), as the decoder's own error does not name it.

    Args:
        data: a map-style dataset.
        index: the item's position in ``data``.

    Returns:
        ``data[index]``.

    Raises:
        Exception: whatever reading the item raises, with the file's path added when known.

    Examples:
        >>> from failmodes.data import read_item
        >>> read_item([("a", 0), ("b", 1)], 1)
        ('b', 1)
    """
    try:
        return data[index]
    except Exception as err:  # the decoder's error, with the file it was reading
        path = _file_of(data, index)
        if path is not None:
            _add_note(err, f"failmodes: item {index} is the file {os.fspath(path)}")
        raise


def _file_of(data: Any, index: int) -> str | os.PathLike | None:
    """The file that item ``index`` of ``data`` is read from, when the dataset names it.

    Args:
        data: a folder dataset (``samples`` or ``imgs`` of ``(path, label)``, as torchvision's
            ``ImageFolder``), an [`ImageList`][ImageList], an [`ImageDataset`][ImageDataset]
            over one, or a ``torch.utils.data.Subset`` of any of these.
        index: the item's position in ``data``.

    Returns:
        The file's path, or ``None`` when the item is not read from a file the dataset names.

    Examples:
        >>> from failmodes.data import ImageList, _file_of
        >>> _file_of(ImageList(["red.png", "blue.png"]), 1), _file_of([("a", 0)], 0)
        ('blue.png', None)
    """
    parts = _subset_parts(data)
    if parts is not None:
        inner, indices = parts
        return _file_of(inner, indices[index]) if -len(indices) <= index < len(indices) else None
    if isinstance(data, ImageList):
        return _path_at(data.items, index)
    if isinstance(getattr(data, "images", None), ImageList):
        return _file_of(data.images, index)
    samples = getattr(data, "samples", None)
    return _path_at(getattr(data, "imgs", None) if samples is None else samples, index)


def _path_at(items: Any, index: int) -> str | os.PathLike | None:
    """``items[index]``, or its first element (``(path, label)``), when that is a path."""
    try:
        item = items[index]
    except (IndexError, KeyError, TypeError):  # no such item, or ``items`` is None
        return None
    if isinstance(item, tuple | list) and item:
        item = item[0]
    return item if isinstance(item, str | os.PathLike) else None


def _add_note(err: BaseException, note: str) -> None:
    """Add ``note`` to ``err``: as a note on Python 3.11+, in its message on 3.10."""
    if hasattr(err, "add_note"):
        err.add_note(note)
    elif len(err.args) == 1 and isinstance(err.args[0], str):
        err.args = (f"{err.args[0]}\n{note}",)


def images_at(data: Any, indices: Sequence[int]) -> list[Any]:
    """The images at ``indices`` (in that order), read by index when the data allows it.

    Args:
        data: a dataset of images or ``(image, label)`` pairs; an iterable without indexing is
            read through once.
        indices: positions in ``data``, in any order, repeats allowed.

    Returns:
        The images (labels dropped), one per index.

    Examples:
        >>> from failmodes.data import images_at
        >>> images_at([("a", 0), ("b", 1), ("c", 0)], [2, 0])
        ['c', 'a']
    """
    idx = [int(i) for i in indices]
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, dict):
        return [next(iter_items([read_item(data, i)]))[0] for i in idx]
    wanted = {i: None for i in idx}
    for i, (image, _) in enumerate(iter_items(data)):
        if i in wanted:
            wanted[i] = image
    return [wanted[i] for i in idx]


def _subset_parts(data: Any) -> tuple[Any, list[int]] | None:
    """``(dataset, indices)`` of a ``torch.utils.data.Subset``-like view, else ``None``."""
    inner, indices = getattr(data, "dataset", None), getattr(data, "indices", None)
    if inner is None or indices is None or not hasattr(data, "__getitem__"):
        return None
    return inner, [int(i) for i in indices]


def labels_of(data: Any, name: str = "data") -> np.ndarray:
    """The integer labels of a dataset, read from ``targets``/``labels`` when it has them.

    A ``torch.utils.data.Subset`` of such a dataset (an ``ImageFolder``) is read the same way,
    without decoding its images.

    Args:
        data: a dataset of ``(image, label)`` pairs.
        name: what to call the data in error messages.

    Returns:
        An int64 array, one label per sample.

    Raises:
        ValueError: if ``data`` has no ``targets`` or ``labels`` and yields bare images, or a
            label that is not an integer (naming the item and what it holds).

    Examples:
        >>> from failmodes.data import labels_of
        >>> labels_of([("a", 0), ("b", 2)])
        array([0, 2])
    """
    parts = _subset_parts(data)
    if parts is not None:
        inner, indices = parts
        return labels_of(inner, name)[indices]
    for field in ("targets", "labels"):
        values = getattr(data, field, None)
        if values is not None and not callable(values):
            return as_labels(values, f"{name}'s {field}")
    labels = [label for _, label in iter_items(data)]
    if None in labels:
        raise ValueError(_unlabelled(data, labels.index(None), name))
    return as_labels(labels, f"{name}'s labels")


def _unlabelled(data: Any, index: int, name: str) -> str:
    """Why item ``index`` of ``data`` gave no label: a pair whose label is not a number, or none."""
    try:
        item = data[index]
    except Exception:  # an iterable without indexing: say what is known
        item = None
    if isinstance(item, tuple | list) and len(item) == 2:
        label = item[1]
        return (
            f"{name}'s labels must be integers (class indices), got {label!r} "
            f"({type(label).__name__}) as the label of item {index}"
        )
    what = "not a pair" if item is None else f"a {type(item).__name__}, not a pair"
    return f"{name} must yield (image, label) pairs to read labels from it; item {index} is {what}"


def _item(label: Any) -> Any:
    """A label as a Python int when it is integral (0-d tensors and arrays too), else as it is."""
    if isinstance(label, torch.Tensor | np.ndarray):
        label = label.item()
    return int(label) if _integral(label) else label


def groups_of(data: Any) -> list[str | None] | None:
    """The spurious attribute's value per sample, when the dataset carries ``groups``.

    Args:
        data: a dataset, or a ``torch.utils.data.Subset`` of one.

    Returns:
        One value per sample (``None`` for unknown ones), or ``None`` when ``data`` has no
        ``groups``.

    Examples:
        >>> from failmodes.data import ImageDataset, groups_of
        >>> groups_of(ImageDataset(["a", "b"], [0, 1], groups=["on grass", None]))
        ['on grass', None]
        >>> groups_of([("a", 0)]) is None
        True
    """
    parts = _subset_parts(data)
    if parts is not None:
        inner_groups = groups_of(parts[0])
        return None if inner_groups is None else [inner_groups[i] for i in parts[1]]
    groups = getattr(data, "groups", None)
    return None if groups is None else list(groups)


def subset(data: Any, indices: Sequence[int]) -> ImageDataset:
    """The samples at ``indices`` as an [`ImageDataset`][ImageDataset], groups kept if present.

    Args:
        data: a map-style dataset of ``(image, label)`` pairs.
        indices: positions in ``data``, in the order wanted.

    Returns:
        A new in-memory dataset of those samples (their images are read).

    Examples:
        >>> from failmodes.data import subset
        >>> part = subset([("a", 0), ("b", 1), ("c", 0)], [2, 1])
        >>> part.images, part.labels
        (['c', 'b'], [0, 1])
    """
    idx = [int(i) for i in indices]
    groups = groups_of(data)
    images, labels = [], []
    for i in idx:
        image, label = read_item(data, i)
        images.append(image)
        labels.append(label)
    return ImageDataset(images, labels, None if groups is None else [groups[i] for i in idx])
