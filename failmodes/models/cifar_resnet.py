"""The CIFAR-10 ResNets of He et al. (2016), able to load the widely used pretrained checkpoints.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition" (CVPR 2016), section 4.2:
a 3x3 convolution (3 -> 16 channels) with batch norm and ReLU, three stages of ``n`` basic
blocks with 16, 32 and 64 channels (strides 1, 2, 2), global average pooling and a linear
layer, ``6n + 2`` layers in all. The shortcuts are the paper's "option A": parameter-free, a
stride-2 subsampling and zero channels appended where a stage changes shape.

Module and parameter names follow the PyTorch implementation whose checkpoints are in common
use (Yerlan Idelbayev's ``pytorch_resnet_cifar10``: ``resnet20.th`` ... ``resnet110.th``):
``conv1``, ``bn1``, ``layer{1,2,3}.{i}.conv1/bn1/conv2/bn2`` and ``linear``, so
[`load_cifar_resnet`][load_cifar_resnet] reads those files as they are. The head is ``linear``, the
model's
only ``nn.Linear``, which is what
[`failmodes.TorchExtractor`][failmodes.extractors.torch.TorchExtractor] hooks:

```python
from failmodes import TorchExtractor
from failmodes.models import cifar_transform, load_cifar_resnet

model = load_cifar_resnet("resnet56.th")
extractor = TorchExtractor(model, transform=cifar_transform())
features = extractor.extract(images)  # PIL images, 32x32 -> (n, 64)
predictions = extractor.logits(features).argmax(dim=1)
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from failmodes.images import to_rgb

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CIFAR_RESNET_DEPTHS",
    "BasicBlock",
    "CifarResNet",
    "cifar_resnet",
    "cifar_transform",
    "load_cifar_resnet",
]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
"""The CIFAR-10 class names in label order (label 0 is ``"airplane"``)."""

# These are the ImageNet statistics, not CIFAR-10's own (0.491, 0.482, 0.447 / 0.247, 0.243,
# 0.261): the pretrained checkpoints were trained with them, so inputs must use them too.
CIFAR_MEAN = (0.485, 0.456, 0.406)
"""Per-channel mean (RGB, pixels in ``[0, 1]``) that the pretrained CIFAR ResNets expect."""

CIFAR_STD = (0.229, 0.224, 0.225)
"""Per-channel standard deviation (RGB, pixels in ``[0, 1]``) that they expect."""

CIFAR_RESNET_DEPTHS = (20, 32, 44, 56, 110)
"""The paper's CIFAR-10 depths with published weights (it also trains 1202); any ``6n + 2``."""

_BLOCK_KEY = re.compile(r"^layer1\.(\d+)\.")


class _ShortcutA(nn.Module):
    """Option A: subsample by 2 and append zero channels (no parameters)."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.extra_channels // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra_channels - half))

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra_channels}"


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, and the identity or option-A shortcut.

    Args:
        in_planes: input channels.
        planes: output channels.
        stride: stride of the first convolution (and of the shortcut's subsampling): 1, or 2
            where the block changes shape.

    Raises:
        ValueError: if the block changes shape with a stride other than 2.

    Examples:
        >>> import torch
        >>> from failmodes.models import BasicBlock
        >>> BasicBlock(16, 32, stride=2)(torch.zeros(1, 16, 8, 8)).shape
        torch.Size([1, 32, 4, 4])
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            if stride != 2:
                raise ValueError(f"option-A shortcuts subsample by 2, got stride {stride}")
            self.shortcut: nn.Module = _ShortcutA(planes - in_planes)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output, ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

        Args:
            x: ``(N, in_planes, H, W)`` feature maps.

        Returns:
            ``(N, planes, H / stride, W / stride)`` feature maps.
        """
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A CIFAR-10 ResNet of depth ``6n + 2`` with option-A shortcuts (He et al., 2016).

    Build one with [`cifar_resnet`][cifar_resnet] or load a checkpoint with
    [`load_cifar_resnet`][load_cifar_resnet]. Inputs are normalised RGB images ``(N, 3, H, W)``
    (32x32 for CIFAR; global pooling accepts other sizes); the output is ``(N, num_classes)``
    logits.

    Args:
        blocks: basic blocks per stage (``n``).
        num_classes: outputs of the linear head.

    Attributes:
        depth: the number of weighted layers, ``6 * blocks + 2``.
        num_features: the width of the features the head sees (64).

    Examples:
        >>> import torch
        >>> from failmodes.models import CifarResNet
        >>> model = CifarResNet(blocks=1, num_classes=3).eval()
        >>> model.depth, model.forward_features(torch.zeros(2, 3, 32, 32)).shape
        (8, torch.Size([2, 64]))
    """

    def __init__(self, blocks: int, num_classes: int = 10):
        super().__init__()
        self.depth = 6 * blocks + 2
        self.num_features = 64
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, blocks, stride=1)
        self.layer2 = self._stage(16, 32, blocks, stride=2)
        self.layer3 = self._stage(32, 64, blocks, stride=2)
        self.linear = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled features: the input of the head ``linear``.

        Args:
            x: normalised RGB images ``(N, 3, H, W)``.

        Returns:
            ``(N, 64)`` features.
        """
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``linear(forward_features(x))``.

        Args:
            x: normalised RGB images ``(N, 3, H, W)``.

        Returns:
            ``(N, num_classes)`` logits.
        """
        return self.linear(self.forward_features(x))


def cifar_resnet(depth: int, *, num_classes: int = 10, seed: int = 0) -> CifarResNet:
    """A randomly initialised CIFAR ResNet of the given depth.

    Convolutions and the linear layer are drawn with Kaiming-normal initialisation (as in the
    checkpoints' training code), batch norms start at weight 1 and bias 0.

    Args:
        depth: ``6n + 2`` for a positive integer ``n``; the paper uses 20, 32, 44, 56, 110
            and 1202.
        num_classes: outputs of the linear head.
        seed: seed of the initialisation. The same seed gives the same weights; the global torch
            random state is left untouched.

    Returns:
        The model, in training mode (as ``nn.Module`` constructors leave it).

    Raises:
        ValueError: if ``depth`` is not of the form ``6n + 2`` or ``num_classes`` < 1.

    Examples:
        >>> import torch
        >>> from failmodes.models import cifar_resnet
        >>> model = cifar_resnet(20).eval()
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> sum(p.numel() for p in model.parameters())
        269722
    """
    blocks = _blocks_of(depth)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CifarResNet(blocks, num_classes)
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
    return model


def load_cifar_resnet(
    path: str | os.PathLike[str] | BinaryIO, *, map_location: str | torch.device = "cpu"
) -> CifarResNet:
    """Load a pretrained CIFAR ResNet from a ``.th`` / ``.pt`` checkpoint.

    The file is read with ``torch.load(..., weights_only=True)``, so no code in it runs. It may
    hold ``{"state_dict": ...}`` (the ``pytorch_resnet_cifar10`` files, which also store
    ``best_prec1``) or the state dict itself; a ``module.`` prefix (left by
    ``nn.DataParallel``) is removed. The depth and the number of classes are read from the
    weights.

    Args:
        path: the checkpoint file, or a binary file object.
        map_location: where the tensors are loaded (``"cpu"`` reads checkpoints saved on a GPU
            on any machine).

    Returns:
        The model with the checkpoint's weights, in eval mode.

    Raises:
        ValueError: if the file does not hold the weights of a CIFAR ResNet.

    Examples:
        >>> import io
        >>> import torch
        >>> from failmodes.models import cifar_resnet, load_cifar_resnet
        >>> buffer = io.BytesIO()
        >>> torch.save({"state_dict": cifar_resnet(20).state_dict()}, buffer)
        >>> _ = buffer.seek(0)
        >>> load_cifar_resnet(buffer).depth
        20
    """
    name = _name(path)
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not checkpoint:
        raise ValueError(f"{name} holds no state dict of a CIFAR ResNet")
    state = {_strip(key): value for key, value in checkpoint.items()}
    blocks = {int(m.group(1)) for key in state if (m := _BLOCK_KEY.match(key))}
    weight = state.get("linear.weight")
    if not blocks or not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        raise ValueError(
            f"{name} is not a CIFAR ResNet checkpoint: expected keys conv1, bn1, "
            f"layer1.0.conv1, ..., linear.weight; got {_preview(list(state))}"
        )
    with torch.random.fork_rng(devices=[]):  # its random initialisation is overwritten
        model = CifarResNet(max(blocks) + 1, num_classes=weight.shape[0])
    # Checkpoints written before batch norm counted its batches lack `num_batches_tracked`;
    # nothing at inference reads it, so a missing one is left at its initial 0.
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if unexpected or any(not key.endswith("num_batches_tracked") for key in missing):
        raise ValueError(
            f"{name} does not match a depth-{model.depth} CIFAR ResNet: missing "
            f"{_preview(missing)}, unexpected {_preview(unexpected)}"
        )
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(
            f"{name} does not match a depth-{model.depth} CIFAR ResNet: {err}"
        ) from err
    return model.to(map_location).eval()


class _Normalize:
    """Image -> normalised ``(3, H, W)`` float32 tensor (a class, so that it pickles)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image: Any) -> torch.Tensor:
        if isinstance(image, torch.Tensor):
            if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
                raise ValueError(
                    "tensor images must be (3, H, W) floats in [0, 1], got "
                    f"{image.dtype} of shape {tuple(image.shape)}"
                )
            x = image.to(torch.float32)
        else:
            if isinstance(image, Image.Image):
                image = to_rgb(image)
            array = np.asarray(image)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(
                    "images must be PIL images, (H, W, 3) uint8 arrays or (3, H, W) float "
                    f"tensors, got {type(image).__name__} of dtype {array.dtype} and shape "
                    f"{array.shape}"
                )
            x = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
            x = x.to(torch.float32).div_(255.0)
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return (
            f"cifar_transform(mean={tuple(self.mean.flatten().tolist())}, "
            f"std={tuple(self.std.flatten().tolist())})"
        )


def cifar_transform(*, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD) -> Any:
    """The inference transform of the pretrained CIFAR ResNets: image -> normalised tensor.

    Equivalent to torchvision's ``Compose([ToTensor(), Normalize(mean, std)])`` without needing
    torchvision: pixels are scaled to ``[0, 1]``, then normalised per channel. There is no
    resizing or cropping: give it 32x32 images, as the models were trained on.

    Args:
        mean: per-channel mean to subtract (RGB).
        std: per-channel standard deviation to divide by (RGB).

    Returns:
        A picklable callable taking a PIL image (any mode; converted to RGB), an ``(H, W, 3)``
        uint8 array or a ``(3, H, W)`` float tensor in ``[0, 1]``, and returning a ``(3, H, W)``
        float32 tensor. Pass it as ``TorchExtractor(model, transform=cifar_transform())``.

    Raises:
        ValueError: if ``mean`` or ``std`` does not have 3 values, or a ``std`` is not positive.

    Examples:
        >>> from PIL import Image
        >>> from failmodes.models import cifar_transform
        >>> x = cifar_transform()(Image.new("RGB", (32, 32), (255, 0, 0)))
        >>> x.shape, round(float(x[0, 0, 0]), 4)
        (torch.Size([3, 32, 32]), 2.2489)
    """
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values (RGB), got {len(mean)} and {len(std)}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive, got {tuple(std)}")
    return _Normalize(mean, std)


def _blocks_of(depth: int) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"depth must be 6n + 2 for some n >= 1 (the paper's: {CIFAR_RESNET_DEPTHS}), "
            f"got {depth!r}"
        )
    return (depth - 2) // 6


def _name(path: Any) -> str:
    if isinstance(path, str | os.PathLike):
        return repr(os.fspath(path))
    return f"the {type(path).__name__} given"


def _strip(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def _preview(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)} keys)"
