"""Image helpers that need only Pillow and numpy: lazily read lists, RGB, blank checks, PNG.

Results, the report and the cache use these without importing torch, so that
``import failmodes`` and reading a result stay light.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
from PIL import Image

__all__ = [
    "ImageList",
    "describe_image",
    "describe_shape",
    "file_inside",
    "image_shape",
    "is_blank",
    "png_bytes",
    "thumbnail",
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

    Attributes:
        items: the images and paths, as given.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> from failmodes.images import ImageList
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     Image.new("RGB", (4, 4), "blue").save(Path(tmp) / "blue.png")
        ...     images = ImageList([Image.new("RGB", (4, 4), "red"), Path(tmp) / "blue.png"])
        ...     print(images, images[1].getpixel((0, 0)), len(images.select([False, True])))
        ImageList(2 images, 1 on disk) (0, 0, 255) 1
    """

    def __init__(self, items: Iterable[Image.Image | str | os.PathLike]):
        self.items: list[Image.Image | str | os.PathLike] = list(items)

    def __len__(self) -> int:
        """The number of images."""
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> Image.Image: ...

    @overload
    def __getitem__(self, index: slice) -> ImageList: ...

    def __getitem__(self, index: int | slice) -> Image.Image | ImageList:
        """Image ``index`` (read from its file when it is one), or a slice as an ``ImageList``."""
        if isinstance(index, slice):
            return ImageList(self.items[index])
        item = self.items[index]
        if isinstance(item, Image.Image):
            return item
        with Image.open(item) as image:
            return image.convert("RGB")

    def select(self, keep: Sequence[bool] | np.ndarray) -> ImageList:
        """The images where ``keep`` is true, still unread.

        Args:
            keep: one boolean per image.

        Returns:
            A new ``ImageList`` of the kept items.

        Raises:
            ValueError: if ``keep`` does not have one entry per image.
        """
        if len(keep) != len(self.items):
            raise ValueError(
                f"keep must have one entry per image ({len(self.items)}), got {len(keep)}"
            )
        return ImageList(item for item, k in zip(self.items, keep, strict=True) if k)

    def __repr__(self) -> str:
        """How many images, and how many of them are files."""
        on_disk = sum(not isinstance(item, Image.Image) for item in self.items)
        return f"ImageList({len(self.items)} images, {on_disk} on disk)"


def to_rgb(image: Any) -> Any:
    """Convert a PIL image of any mode to 8-bit RGB; tensors and arrays pass through.

    Handles L, LA, P, RGBA (composited on white), CMYK, I;16 (by its 16-bit depth), and I and F
    by their values' range, as thumbnails of arrays read it (``_as_uint8``): [0, 1] floats as
    a unit range, [0, 255] as 8-bit levels, [0, 65535] integers as 16-bit levels, other ranges
    stretched.

    Args:
        image: a PIL image, or anything else (returned as it is).

    Returns:
        An RGB PIL image (``image`` itself when it already is one), or ``image`` unchanged.

    Examples:
        >>> from PIL import Image
        >>> from failmodes.images import to_rgb
        >>> to_rgb(Image.new("RGBA", (1, 1), (0, 0, 0, 0))).getpixel((0, 0))
        (255, 255, 255)
        >>> to_rgb(Image.new("F", (1, 1), 0.5)).getpixel((0, 0))  # a float in [0, 1]
        (128, 128, 128)
    """
    if not isinstance(image, Image.Image):
        return image
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image)
        if image.mode.startswith("I;16"):  # the mode gives the depth, whatever the values
            array = array.astype(np.float64) / 65535.0
        return Image.fromarray(_as_uint8(array), mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def is_blank(image: Any) -> bool:
    """Whether a PIL image is one flat colour (a blanked or failed generation).

    Args:
        image: a PIL image; anything else is not blank.

    Returns:
        ``True`` when every band of ``image`` holds a single value.

    Examples:
        >>> from PIL import Image
        >>> from failmodes.images import is_blank
        >>> is_blank(Image.new("RGB", (8, 8), "black")), is_blank("not an image")
        (True, False)
    """
    if not isinstance(image, Image.Image):
        return False
    extrema = image.getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    return all(low == high for low, high in bands)


def thumbnail(image: Any, size: int) -> Image.Image | None:
    """An RGB PIL image at most ``size`` pixels a side, or ``None`` for what is not an image.

    Arrays and tensors may be ``(C, H, W)`` or ``(H, W, C)``; floats in [0, 1] or [0, 255] are
    scaled as such, other floats (normalised tensors) stretched to their range. Images no
    larger than ``size`` are kept at their size.

    Args:
        image: a PIL image, a numpy array or a torch tensor.
        size: the largest side of the result, in pixels.

    Returns:
        The thumbnail, or ``None`` when ``image`` cannot be read as one.

    Examples:
        >>> import numpy as np
        >>> from failmodes.images import thumbnail
        >>> thumbnail(np.zeros((3, 200, 100)), 50).size, thumbnail("text", 50)
        ((25, 50), None)
    """
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        array = _as_hwc(image)
        if array is None:
            return None
        image = Image.fromarray(np.ascontiguousarray(_as_uint8(array)))
    if not isinstance(image, Image.Image):
        return None
    image = to_rgb(image)
    if max(image.size) > size:
        image = image.copy()
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return image


def _as_hwc(array: np.ndarray) -> np.ndarray | None:
    """An ``(H, W)`` or ``(H, W, 3)`` view of an image array, or ``None``."""
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        return None
    return array


def _as_uint8(array: np.ndarray) -> np.ndarray:
    """Pixel values as uint8, by their range: the one rule for arrays, tensors and I/F images.

    Values in [0, 1] are a unit range (times 255), in [0, 255] 8-bit levels, integers in
    [0, 65535] 16-bit levels (divided by 257); other ranges (normalised tensors) are
    stretched to [0, 255]. An empty array is returned as uint8.
    """
    if array.dtype == np.uint8:
        return array
    sixteen = array.dtype.kind in "iu"
    array = np.nan_to_num(array.astype(np.float64))
    if array.size == 0:
        return array.astype(np.uint8)
    low, high = float(array.min()), float(array.max())
    if low >= 0 and high <= 1:
        array = array * 255
    elif sixteen and low >= 0 and 255 < high <= 65535:
        array = array / 257
    elif not (low >= 0 and high <= 255):
        array = (array - low) / ((high - low) or 1.0) * 255
    return np.clip(array.round(), 0, 255).astype(np.uint8)


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as an optimised PNG.

    Args:
        image: a PIL image.

    Returns:
        The PNG file's bytes.

    Examples:
        >>> from PIL import Image
        >>> from failmodes.images import png_bytes
        >>> png_bytes(Image.new("RGB", (2, 2)))[1:4]
        b'PNG'
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def file_inside(folder: str | os.PathLike[str], name: Any, what: str = "a manifest") -> Path:
    """The file ``name`` of ``folder``, refused if it resolves outside the folder.

    A manifest names its files relative to its folder; an absolute path, ``..`` or a symbolic
    link that leads out of the folder is refused, so that reading a folder someone else wrote
    never reads other files.

    Args:
        folder: the folder that holds the manifest.
        name: the file's name as the manifest gives it.
        what: what named the file, for the error.

    Returns:
        The file's path (not resolved), inside ``folder``.

    Raises:
        ValueError: if ``name`` is not a relative path inside ``folder``.

    Examples:
        >>> from failmodes.images import file_inside
        >>> file_inside("set", "00001.png").as_posix()
        'set/00001.png'
        >>> file_inside("set", "../outside/x.png")
        Traceback (most recent call last):
        ...
        ValueError: a manifest names '../outside/x.png', which is not a file inside set
    """
    root = Path(folder)
    if not isinstance(name, str) or not name or Path(name).is_absolute():
        raise ValueError(f"{what} names {name!r}, which is not a file inside {root}")
    path = root / name
    resolved, top = path.resolve(), root.resolve()
    if resolved == top or not resolved.is_relative_to(top):
        raise ValueError(f"{what} names {name!r}, which is not a file inside {root}")
    return path


def image_shape(image: Any) -> tuple | None:
    """The size and kind of an image, to compare images and name them in errors.

    Args:
        image: a PIL image, a ``(C, H, W)`` tensor or array, or anything else.

    Returns:
        ``("PIL", mode, width, height)`` or ``("tensor", C, H, W)``; ``None`` for a non-image.

    Examples:
        >>> from PIL import Image
        >>> from failmodes.images import image_shape
        >>> image_shape(Image.new("RGB", (4, 3)))
        ('PIL', 'RGB', 4, 3)
    """
    if isinstance(image, Image.Image):
        return ("PIL", image.mode, *image.size)
    shape = getattr(image, "shape", None)
    if shape is not None and len(shape) == 3:
        return ("tensor", *tuple(int(d) for d in shape))
    return None


def describe_shape(shape: tuple) -> str:
    """An [`image_shape`][image_shape] in words.

    Args:
        shape: what [`image_shape`][image_shape] returned for an image.

    Returns:
        ``"4x3 RGB"`` for a PIL image, ``"a tensor of shape (3, 8, 8)"`` for a tensor.
    """
    if shape[0] == "PIL":
        return f"{shape[2]}x{shape[3]} {shape[1]}"
    return f"a tensor of shape {tuple(shape[1:])}"


def describe_image(image: Any) -> str:
    """What an image (or anything given as one) is, for error messages.

    Args:
        image: anything given as an image.

    Returns:
        Its size and mode, its shape, or its type in words.

    Examples:
        >>> import torch
        >>> from failmodes.images import describe_image
        >>> describe_image(torch.zeros(3, 8, 8)), describe_image(torch.zeros(3072))
        ('a tensor of shape (3, 8, 8)', 'a tensor of shape (3072,)')
    """
    shape = image_shape(image)
    if shape is not None:
        return describe_shape(shape)
    dims = getattr(image, "shape", None)
    kind = {"Tensor": "a tensor", "ndarray": "an array"}.get(type(image).__name__)
    kind = kind or f"a {type(image).__name__}"
    return kind + ("" if dims is None else f" of shape {tuple(dims)}")
