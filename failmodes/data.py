"""Datasets as failmodes reads them: map-style ``(image, label)`` pairs, nothing more.

Anything indexable with ``len`` (a list of pairs, a torch ``Dataset``, torchvision's
``ImageFolder``) or any iterable of pairs works. A dataset may also carry, per sample, the value
of the spurious attribute in an attribute ``groups`` (ToyWorld's datasets do); then evaluation
reports worst-group and per-value accuracy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import torch
from PIL import Image

__all__ = [
    "ImageDataset",
    "ImageList",
    "groups_of",
    "images_at",
    "is_blank",
    "iter_items",
    "labels_of",
    "subset",
    "to_rgb",
]


class ImageList(Sequence[Image.Image]):
    """A list of images that may live on disk: a file is read (as RGB) each time it is indexed.

    Generated sets read back from the cache hold their images this way, so that a rerun whose
    features are cached never decodes them, and a large set need not sit in memory. Indexing
    gives PIL images; slicing or [`select`][select] gives another ``ImageList``. Use ``list(...)``
    for a plain list of decoded images.

    Args:
        items: PIL images or paths of image files, in order.

    Examples:
        >>> from PIL import Image
        >>> images = ImageList([Image.new("RGB", (4, 4), "red")])
        >>> len(images), images[0].size
        (1, (4, 4))
    """

    def __init__(self, items: Iterable[Image.Image | str | os.PathLike]):
        self.items: list[Image.Image | str | os.PathLike] = list(items)

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> Image.Image: ...

    @overload
    def __getitem__(self, index: slice) -> ImageList: ...

    def __getitem__(self, index: int | slice) -> Image.Image | ImageList:
        if isinstance(index, slice):
            return ImageList(self.items[index])
        item = self.items[index]
        if isinstance(item, Image.Image):
            return item
        with Image.open(item) as image:
            return image.convert("RGB")

    def select(self, keep: Sequence[bool] | np.ndarray) -> ImageList:
        """The images where ``keep`` (one boolean per image) is true, still unread."""
        if len(keep) != len(self.items):
            raise ValueError(
                f"keep must have one entry per image ({len(self.items)}), got {len(keep)}"
            )
        return ImageList(item for item, k in zip(self.items, keep, strict=True) if k)

    def __repr__(self) -> str:
        on_disk = sum(not isinstance(item, Image.Image) for item in self.items)
        return f"ImageList({len(self.items)} images, {on_disk} on disk)"


class ImageDataset(torch.utils.data.Dataset):
    """A map-style dataset over in-memory images, with labels and optional group values.

    Args:
        images: PIL images or ``(C, H, W)`` tensors, or an [`ImageList`][ImageList] (kept unread).
        labels: one integer label per image.
        groups: optionally, the spurious attribute's value per image.
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
        self.labels = [int(y) for y in labels]
        self.groups = None if groups is None else list(groups)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.images[index], self.labels[index]

    @property
    def targets(self) -> list[int]:
        return self.labels


def _is_label(value: Any) -> bool:
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.ndim == 0
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_pair(item: Any) -> bool:
    return isinstance(item, tuple | list) and len(item) == 2 and _is_label(item[1])


def iter_items(data: Any) -> Iterator[tuple[Any, int | None]]:
    """Yield ``(image, label)`` from a dataset of pairs, or ``(image, None)`` from bare images."""
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, dict):
        items: Iterable[Any] = (data[i] for i in range(len(data)))
    else:
        items = data
    for item in items:
        if _is_pair(item):
            yield item[0], int(item[1])
        else:
            yield item, None


def images_at(data: Any, indices: Sequence[int]) -> list[Any]:
    """The images at ``indices`` (in that order), read by index when the data allows it."""
    idx = [int(i) for i in indices]
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, dict):
        return [next(iter_items([data[i]]))[0] for i in idx]
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


def labels_of(data: Any) -> np.ndarray:
    """The integer labels of a dataset, read from ``targets``/``labels`` when it has them.

    A ``torch.utils.data.Subset`` of such a dataset (an ``ImageFolder``) is read the same way,
    without decoding its images.
    """
    parts = _subset_parts(data)
    if parts is not None:
        inner, indices = parts
        return labels_of(inner)[indices]
    for name in ("targets", "labels"):
        values = getattr(data, name, None)
        if values is not None and not callable(values):
            return np.asarray(values, dtype=np.int64)
    labels = [label for _, label in iter_items(data)]
    if any(label is None for label in labels):
        raise ValueError("data must yield (image, label) pairs to read labels from it")
    return np.asarray(labels, dtype=np.int64)


def groups_of(data: Any) -> list[str | None] | None:
    """The spurious attribute's value per sample, when the dataset carries ``groups``."""
    parts = _subset_parts(data)
    if parts is not None:
        inner_groups = groups_of(parts[0])
        return None if inner_groups is None else [inner_groups[i] for i in parts[1]]
    groups = getattr(data, "groups", None)
    return None if groups is None else list(groups)


def subset(data: Any, indices: Sequence[int]) -> ImageDataset:
    """The samples at ``indices`` as an [`ImageDataset`][ImageDataset] (groups kept when
    present)."""
    idx = [int(i) for i in indices]
    groups = groups_of(data)
    images, labels = [], []
    for i in idx:
        image, label = data[i]
        images.append(image)
        labels.append(label)
    return ImageDataset(images, labels, None if groups is None else [groups[i] for i in idx])


def to_rgb(image: Any) -> Any:
    """Convert a PIL image of any mode to 8-bit RGB; tensors and arrays pass through.

    Handles L, LA, P, RGBA (composited on white), CMYK, I;16 and I/F (scaled to 0-255).
    """
    if not isinstance(image, Image.Image):
        return image
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def is_blank(image: Any) -> bool:
    """Whether a PIL image is one flat colour (a blanked or failed generation); else ``False``."""
    if not isinstance(image, Image.Image):
        return False
    extrema = image.getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    return all(low == high for low, high in bands)
