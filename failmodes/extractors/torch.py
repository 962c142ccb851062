"""Features from any PyTorch classifier whose head is a linear layer.

The features are what the head sees: the input of the model's last ``nn.Linear``, captured with a
forward pre-hook while the whole model runs, or ``backbone(x)`` for an explicit backbone and head.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from failmodes._checks import check_device, check_number
from failmodes._modules import find_head
from failmodes.data import iter_items, read_item
from failmodes.errors import SettingError
from failmodes.images import to_rgb
from failmodes.interfaces import FeatureExtractor
from failmodes.progress import progress_bar, resolve_progress

__all__ = ["TorchExtractor"]

logger = logging.getLogger("failmodes")

Transform = Callable[[Any], torch.Tensor]


class TorchExtractor(FeatureExtractor):
    """Features of a PyTorch classifier: the input of its linear head.

    Pass either ``model``, any ``nn.Module`` whose last registered ``nn.Linear`` is its classifier
    head (``nn.Sequential`` models, torchvision ResNets' ``fc``, custom modules), or an explicit
    ``backbone`` and ``head``, where the features are ``backbone(x)`` flattened to ``(n, d)``.
    Either way ``head(features)`` gives the model's logits.

    During [`extract`][extract] the model is put in eval mode and run under
    ``torch.inference_mode``; the training flag of every submodule is restored afterwards. The model
    is moved to ``device`` in place, as ``nn.Module.to`` does.

    Args:
        model: a classifier whose last ``nn.Linear`` is its head; or ``None`` with ``backbone``
            and ``head``.
        backbone: a module mapping a batch of images to features (flattened to ``(n, d)``).
        head: the ``nn.Linear`` mapping the backbone's features to logits.
        transform: maps a PIL image to a ``(C, H, W)`` float tensor (a torchvision transform,
            typically with normalization); numpy arrays are read as PIL images first and tensors
            are passed to it as they are. ``None``: PIL images and ``(H, W, C)`` uint8 arrays
            become RGB float tensors in ``[0, 1]``, tensors pass through unchanged.
        batch_size: images per forward pass.
        device: where the model runs (``"cpu"``, ``"cuda"``, a ``torch.device``).
        num_workers: ``DataLoader`` worker processes that read and transform images of a
            map-style dataset; ``0`` reads them in this process.
        precision: ``"auto"`` (float16 autocast on CUDA, the model's own dtype elsewhere),
            ``"float32"`` (the model's own dtype everywhere), ``"float16"`` or ``"bfloat16"``
            (autocast to that type; on a CPU only ``"bfloat16"`` is fast). Features are returned
            as float32 whatever the precision.
        progress: show a progress bar; ``None`` shows one only on a terminal.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from failmodes.extractors import TorchExtractor
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> extractor = TorchExtractor(model, batch_size=2)
        >>> images = torch.rand(5, 3, 2, 2)
        >>> features = extractor.extract(images)
        >>> features.shape
        torch.Size([5, 8])
        >>> torch.allclose(extractor.logits(features), model(images), atol=1e-6)
        True
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        backbone: nn.Module | None = None,
        head: nn.Linear | None = None,
        transform: Transform | None = None,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        num_workers: int = 0,
        precision: str = "auto",
        progress: bool | None = None,
    ):
        self.model = model
        self.backbone = backbone
        # `head` is the interface's property (a CPU copy of whichever head is in use), so the
        # argument is kept under a private name.
        self._head = head
        self.transform = transform
        self.batch_size = batch_size
        self.device = device
        self.num_workers = num_workers
        self.precision = precision
        self.progress = progress

    @property
    def head(self) -> nn.Linear:
        """A copy of the classifier's head as a plain ``nn.Linear``, float32 on the CPU.

        Changing the copy leaves the model alone; reading it leaves the global RNG alone.
        """
        _, head, _ = self._parts()
        # skip_init: no random initialisation, so reading the head leaves the global RNG alone
        copy = nn.utils.skip_init(
            nn.Linear, head.in_features, head.out_features, bias=head.bias is not None
        )
        with torch.no_grad():
            copy.weight.copy_(head.weight)
            if head.bias is not None:
                copy.bias.copy_(head.bias)
        return copy

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The head applied to ``features`` (without gradients), on the CPU.

        Args:
            features: ``(n, d)`` features, e.g. from [`extract`][extract]; any device or
                floating dtype (they are copied to float32 on the CPU).

        Returns:
            ``(n, num_classes)`` float32 logits, the model's own output for those images.

        Raises:
            ValueError: if ``model``, ``backbone`` and ``head`` are not a valid combination.
            TypeError: if the model has no ``nn.Linear`` head.
        """
        with torch.no_grad():
            return self.head(features.to("cpu", torch.float32))

    def extract(
        self, data: Any, *, batch_size: int | None = None, progress: bool | None = None
    ) -> torch.Tensor:
        """Compute the features the head sees, one row per image.

        Args:
            data: images (PIL images of any mode, ``(H, W, C)`` uint8 numpy arrays, ``(C, H, W)``
                tensors, or one ``(N, C, H, W)`` tensor), or ``(image, label)`` pairs, as a
                sequence, a torch ``Dataset`` (a ``TensorDataset``'s first tensor holds the
                images) or any iterable; labels are ignored.
            batch_size: images per forward pass; ``None`` keeps the extractor's own.
            progress: show a progress bar; ``None`` keeps the extractor's own.

        Returns:
            A ``(n, d)`` float32 tensor on the CPU, in input order.

        Raises:
            SettingError: a ``ValueError`` naming a setting that cannot be used (see
                [`check_params`][check_params]), before the model is made.
            ValueError: if ``data`` is empty, images in one batch differ in size, the head's
                input is not ``(n, d)``, or the features hold NaN or inf.
            TypeError: if an image has an unsupported type, or no head can be found.
        """
        self.check_params()  # before the model is made (or downloaded)
        return self._extract(data, batch_size, progress, self._parts())

    def check_params(self, *, here: bool = True) -> torch.device:
        """Check the settings without the model or any image, as [`extract`][extract] does first.

        Args:
            here: also check that this machine has ``device``; ``False`` for settings meant
                for another machine (``failmodes run --check`` of a file for a Ray cluster).

        Returns:
            ``device`` as a ``torch.device``.

        Raises:
            SettingError: a ``ValueError`` naming the first setting (``batch_size``,
                ``num_workers``, ``precision``, ``device``) that cannot be used, and what it
                must be.

        Examples:
            >>> from failmodes.extractors import TorchExtractor
            >>> TorchExtractor(batch_size=0).check_params()
            Traceback (most recent call last):
                ...
            failmodes.errors.SettingError: batch_size must be an integer >= 1, got 0
        """
        check_number(self.batch_size, "batch_size", minimum=1, integer=True)
        check_number(self.num_workers, "num_workers", minimum=0, integer=True)
        choices = ["auto", *_PRECISIONS]
        if self.precision not in choices:
            raise SettingError("precision", f"must be one of {choices}, got {self.precision!r}")
        return check_device(self.device, here=here)

    def _extract(
        self,
        data: Any,
        batch_size: int | None,
        progress: bool | None,
        parts: tuple[nn.Module, nn.Linear | None, str | None],
    ) -> torch.Tensor:
        """[`extract`][extract] with the parts given (a ``None`` head skips the dimension check)."""
        runner, head, name = parts
        device = self.check_params()
        own = self.batch_size if batch_size is None else batch_size
        batch_size = check_number(own, "batch_size", minimum=1, integer=True)
        if isinstance(data, DataLoader):
            raise TypeError(
                "pass the dataset itself (loader.dataset), not a DataLoader: the extractor "
                "batches it (batch_size=, num_workers=)"
            )
        size = _length(data)
        if size == 0:
            raise ValueError("data is empty: there are no images to extract features from")

        roots = [runner] if name is not None or head is None else [runner, head]
        for root in roots:
            root.to(device)
        dtype = next((p.dtype for p in runner.parameters() if p.is_floating_point()), torch.float32)
        flags = [(module, module.training) for root in roots for module in root.modules()]
        logger.debug(
            "extracting features of %s images with %s (head %r) in batches of %d on %s",
            "?" if size is None else size,
            type(runner).__name__,
            name,
            batch_size,
            device,
        )
        source = self._batches(data, batch_size, device)
        batches = progress_bar(
            source,
            progress=resolve_progress(progress, self.progress),
            total=None if size is None else math.ceil(size / batch_size),
            desc="features",
            unit="batch",
        )
        forward = _Forward(runner, head, name, _autocast(self.precision, device), device, dtype)
        chunks: list[torch.Tensor] = []
        try:
            for root in roots:
                root.eval()
            with torch.inference_mode():
                chunks = [
                    forward(number, start, batch) for number, (start, batch) in enumerate(batches)
                ]
        finally:
            batches.close()
            source.close()  # releases DataLoader workers right away
            forward.close()
            for module, training in flags:
                module.training = training
        if not chunks:
            raise ValueError("data is empty: there are no images to extract features from")
        # outside inference mode, so the result is an ordinary tensor that autograd accepts
        return torch.cat(chunks)

    def _parts(self) -> tuple[nn.Module, nn.Linear, str | None]:
        """The module to run, its head, and the head's name in ``model`` (``None``: explicit)."""
        model, backbone, head = self.model, self.backbone, self._head
        if model is not None:
            if backbone is not None or head is not None:
                given = " and ".join(
                    arg for arg, v in (("backbone=", backbone), ("head=", head)) if v is not None
                )
                raise ValueError(
                    f"pass either model= or backbone= and head=, not both (got model= and {given})"
                )
            name, found = find_head(model)
            return model, found, name
        if backbone is None and head is None:
            raise ValueError(
                "TorchExtractor needs model= (an nn.Module whose last nn.Linear is its head) or "
                "backbone= and head="
            )
        if backbone is None or head is None:
            given = "backbone=" if head is None else "head="
            raise ValueError(f"backbone= and head= go together, got only {given}")
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be a torch.nn.Module, got {type(backbone).__name__}")
        if not isinstance(head, nn.Linear):
            raise TypeError(f"head must be a torch.nn.Linear, got {type(head).__name__}")
        return backbone, head, None

    def _image_transform(self) -> Transform | None:
        """The transform of PIL images when ``transform`` is not given (subclasses: the model's)."""
        return None

    def _batches(
        self, data: Any, batch_size: int, device: torch.device
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(index of the batch's first image, batch)`` in input order."""
        source = data.tensors[0] if isinstance(data, TensorDataset) and data.tensors else data
        transform = self.transform
        # tensors pass through unless the user gave a transform; PIL images get the model's own
        pil = transform if transform is not None else self._image_transform()
        if transform is None and isinstance(source, torch.Tensor) and source.ndim >= 1:
            # already a batch of images: slices are views, no per-image work
            for start in range(0, len(source), batch_size):
                yield start, source[start : start + batch_size]
            return
        if self.num_workers > 0 and _is_map_style(source):
            loader = DataLoader(
                _Images(source, transform, pil),
                batch_size=batch_size,
                shuffle=False,
                num_workers=self.num_workers,
                collate_fn=_collate,
                pin_memory=device.type == "cuda",
            )
            iterator = iter(loader)
            try:
                yield from iterator
            finally:
                # Stop the workers now: left to the iterator's __del__ after an error (whose
                # traceback keeps the iterator alive), the shutdown waits 5 s per worker.
                shutdown = getattr(iterator, "_shutdown_workers", None)
                if shutdown is not None:
                    shutdown()
            return
        if self.num_workers > 0:
            logger.warning(
                "num_workers=%d needs a map-style dataset (len and indexing); reading %s in this "
                "process",
                self.num_workers,
                type(source).__name__,
            )
        images: list[torch.Tensor] = []
        start = 0
        for image, _ in iter_items(source):
            images.append(_to_tensor(image, transform, pil))
            if len(images) == batch_size:
                yield start, _stack(images, start)
                start += len(images)
                images = []
        if images:
            yield start, _stack(images, start)


class _Images(Dataset):
    """A map-style view of ``data`` giving ``(index, image tensor)``, for DataLoader workers."""

    def __init__(self, data: Any, transform: Transform | None, pil: Transform | None):
        self.data = data
        self.transform = transform
        self.pil = pil

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        image, _ = next(iter_items((read_item(self.data, index),)))
        return index, _to_tensor(image, self.transform, self.pil)


def _collate(items: Sequence[tuple[int, torch.Tensor]]) -> tuple[int, torch.Tensor]:
    start = items[0][0]
    return start, _stack([image for _, image in items], start)


class _Forward:
    """Runs batches through the model and returns their features (the head's input), checked.

    With a head named in the model, the features are captured by a forward pre-hook on it while
    the whole model runs; with an explicit backbone they are ``backbone(x)`` flattened.
    """

    def __init__(
        self,
        runner: nn.Module,
        head: nn.Linear | None,
        name: str | None,
        autocast: Any,
        device: torch.device,
        dtype: torch.dtype,
    ):
        self.runner, self.head, self.name = runner, head, name
        self.autocast, self.device, self.dtype = autocast, device, dtype
        self.captured: list[torch.Tensor] = []
        self.hook = (
            None if name is None else head.register_forward_pre_hook(self.capture, with_kwargs=True)
        )

    def capture(self, _module: nn.Module, args: tuple, kwargs: dict) -> None:
        """The pre-hook: keep the head's input."""
        self.captured.append(args[0] if args else kwargs["input"])

    def __call__(self, number: int, start: int, batch: torch.Tensor) -> torch.Tensor:
        """Features of batch ``number`` (images from ``start``), float32 on the CPU."""
        if not batch.is_floating_point():
            raise TypeError(
                f"images {start}-{start + len(batch) - 1} are {batch.dtype} tensors; "
                "pass float tensors (e.g. uint8 / 255) or give transform="
            )
        batch = batch.to(device=self.device, dtype=self.dtype, non_blocking=True)
        if self.name is None:
            with self.autocast:
                features = _backbone_features(self.runner, self.head, batch)
        else:
            self.captured.clear()
            with self.autocast:
                output = self.runner(batch)
            features = _captured_features(self.captured, self.name, len(batch))
            if number == 0:
                _check_logits(features, output, self.head, self.name)
        if not torch.isfinite(features).all():
            raise ValueError(
                f"features of batch {number} (images {start}-{start + len(batch) - 1})"
                " contain NaN or inf"
            )
        return features.to("cpu", torch.float32)

    def close(self) -> None:
        """Remove the hook."""
        if self.hook is not None:
            self.hook.remove()


def _length(data: Any) -> int | None:
    if not hasattr(data, "__len__"):
        return None
    try:
        return len(data)
    except TypeError:  # e.g. an IterableDataset without __len__
        return None


def _is_map_style(data: Any) -> bool:
    return hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, dict)


def _to_tensor(image: Any, transform: Transform | None, pil: Transform | None) -> torch.Tensor:
    """One image as a ``(C, H, W)`` tensor (see ``TorchExtractor``'s ``transform``).

    Tensors go through ``transform`` (when given); PIL images and arrays through ``pil``.
    """
    if isinstance(image, torch.Tensor):
        if transform is None:
            return image
        try:
            out = transform(image)
        except TypeError as err:
            raise TypeError(
                "transform does not accept tensor images; pass PIL images, or a transform that "
                "takes tensors (torchvision.transforms.v2)"
            ) from err
    else:
        if isinstance(image, np.ndarray):
            if pil is None and image.dtype == np.uint8 and image.shape[2:] == (3,):
                return _hwc_to_float(image)
            image = _array_to_pil(image)
        if not isinstance(image, Image.Image):
            raise TypeError(
                f"unsupported image type {type(image).__name__}; expected a PIL image, an "
                "(H, W, C) uint8 numpy array or a (C, H, W) tensor"
            )
        image = to_rgb(image)
        if pil is None:
            return _hwc_to_float(np.array(image))
        out = pil(image)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"transform must return a (C, H, W) tensor, got {type(out).__name__}")
    return out


def _hwc_to_float(array: np.ndarray) -> torch.Tensor:
    """An ``(H, W, 3)`` uint8 array as a ``(3, H, W)`` float32 tensor in ``[0, 1]``."""
    chw = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return chw.to(torch.float32).div_(255.0)


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    try:
        return Image.fromarray(array)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"cannot read a numpy image of shape {array.shape} and dtype {array.dtype}; use an "
            "(H, W, C) or (H, W) uint8 array"
        ) from err


def _stack(images: list[torch.Tensor], start: int) -> torch.Tensor:
    """Stack one batch, naming the image whose size differs when they do not match."""
    try:
        return torch.stack(images)
    except RuntimeError as err:
        first = tuple(images[0].shape)
        for offset, image in enumerate(images):
            if tuple(image.shape) != first:
                raise ValueError(
                    f"cannot batch images of different sizes: image {start + offset} has shape "
                    f"{tuple(image.shape)} but image {start} has {first}; resize them to one size "
                    "(e.g. with transform=) or use batch_size=1"
                ) from err
        raise


def _backbone_features(
    backbone: nn.Module, head: nn.Linear | None, batch: torch.Tensor
) -> torch.Tensor:
    out = backbone(batch)
    if not isinstance(out, torch.Tensor) or out.ndim == 0 or len(out) != len(batch):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"backbone must return a tensor with one row per image ({len(batch)}), got {shape}"
        )
    features = out.reshape(len(out), -1)
    if head is not None and features.shape[1] != head.in_features:
        raise ValueError(
            f"backbone gives {features.shape[1]} features per image (output shape "
            f"{tuple(out.shape)}) but head takes {head.in_features}"
        )
    return features


def _captured_features(captured: list[torch.Tensor], name: str, count: int) -> torch.Tensor:
    if len(captured) != 1:
        raise ValueError(
            f"the model's last nn.Linear {name!r} ran {len(captured)} times in one forward pass, "
            "so it is not a classifier head; pass backbone= and head= explicitly"
        )
    features = captured[0]
    if features.ndim != 2 or len(features) != count:
        raise ValueError(
            f"the head {name!r} receives input of shape {tuple(features.shape)}, not "
            f"({count}, d); pass backbone= and head= so that features are backbone(x) flattened"
        )
    return features


_PRECISIONS = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _autocast(precision: str, device: torch.device) -> Any:
    """The autocast context for ``precision`` on ``device`` (a no-op one for full precision)."""
    if precision == "auto":
        precision = "float16" if device.type == "cuda" else "float32"
    dtype = _PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _check_logits(features: torch.Tensor, output: Any, head: nn.Linear, name: str) -> None:
    """Warn when ``head(features)`` is not the model's output (the head is not the last step)."""
    if not isinstance(output, torch.Tensor):
        return
    logits = nn.functional.linear(
        features.float(), head.weight.float(), head.bias.float() if head.bias is not None else None
    )
    output = output.float()
    # reduced precision (autocast) rounds the model's own head: compare at its resolution
    rtol, atol = (1e-3, 1e-4) if features.dtype == torch.float32 else (3e-2, 3e-2)
    if output.shape != logits.shape or not torch.allclose(output, logits, rtol=rtol, atol=atol):
        warnings.warn(
            f"the model's output differs from its last nn.Linear {name!r} applied to the "
            "features, so failmodes debugs that layer, not what the model outputs; if the model "
            "does more after it, pass backbone= and head= explicitly",
            stacklevel=4,
        )
