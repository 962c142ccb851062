"""The ToyWorld classifier: a small pretrained CNN backbone and a linear head fitted on a world.

This is the paper's setting in miniature. The backbone was pretrained once on broad, *balanced*
ToyWorld data (every shape on every background in every colour) to name the shape and, with a
smaller weight, the background and the colour, so that its features hold the object and its
context as ImageNet features do (see ``scripts/train_toyworld_backbone.py``). The vocabulary never
changes, so the one shipped backbone serves every world seed, both attributes and all strengths.

The task head is then fitted from zero on a world's small, biased training split: the shortcut
(the class's common background or colour) lives in the head, and retraining the head alone can
repair it.

Examples:
    >>> from failmodes.toyworld import ToyWorld, toy_classifier
    >>> model = toy_classifier(ToyWorld(seed=0), per_class=5)
    >>> model[-1].out_features
    10
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from failmodes.toyworld.world import ToyDataset, ToyWorld

__all__ = ["HEAD_WEIGHT_DECAY", "ToyBackbone", "load_backbone", "toy_classifier"]

WEIGHTS_FILE = "backbone.safetensors"
CONFIG_FILE = "backbone.json"

HEAD_WEIGHT_DECAY = 0.1
"""The L2 penalty of ToyWorld heads, for the classifier's fit and for the repair step alike.

A strongly regularised head prefers the backbone's cheap, high-margin context features, so the
shortcut lives in the head; with 1e-3 a few rare images anywhere (even the random baseline's)
already undo much of it (see ``scripts/toyworld_experiment.py``).
"""

# per-channel mean and std of balanced world-style ToyWorld images
MEAN = (0.53, 0.49, 0.43)
STD = (0.31, 0.29, 0.32)


class ToyBackbone(nn.Module):
    """A small CNN mapping ``(n, 3, 32, 32)`` images in [0, 1] to ``(n, d)`` features.

    Each stage is a 3x3 convolution, batch norm and ReLU, followed by a 2x2 max-pool for all but
    the last stage; the features are the global average of the last stage, so ``d`` is the last
    width. Inputs are normalised inside the module.

    Args:
        widths: output channels of the stages; the last is the feature dimension.

    Attributes:
        widths: the stages' widths, as a tuple of ints.

    Examples:
        A fresh (untrained) backbone; [`load_backbone`][load_backbone] loads the shipped one:

        >>> import torch
        >>> from failmodes.toyworld import ToyBackbone
        >>> backbone = ToyBackbone(widths=(8, 16)).eval()
        >>> backbone(torch.rand(2, 3, 32, 32)).shape, backbone.feature_dim
        (torch.Size([2, 16]), 16)
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        layers: list[nn.Module] = []
        cin = 3
        for i, w in enumerate(self.widths):
            layers += [
                nn.Conv2d(cin, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            ]
            if i < len(self.widths) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    @property
    def feature_dim(self) -> int:
        """The dimension ``d`` of the features."""
        return self.widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a batch of images.

        Args:
            x: float ``(n, 3, H, W)`` images in [0, 1].

        Returns:
            ``(n, d)`` features.
        """
        x = (x - self.mean) / self.std
        return self.features(x).mean(dim=(2, 3))


def _weights_dir() -> Path:
    return Path(str(resources.files("failmodes.toyworld").joinpath("weights")))


def load_backbone(path: str | Path | None = None) -> ToyBackbone:
    """Load the shipped pretrained backbone (or one at ``path``), in eval mode, frozen.

    Args:
        path: a ``.safetensors`` file with a ``.json`` config beside it (same stem); ``None`` loads
            the weights shipped with failmodes.

    Returns:
        A [`ToyBackbone`][ToyBackbone] in eval mode whose parameters do not require gradients.

    Raises:
        FileNotFoundError: if ``path`` does not exist.

    Examples:
        >>> backbone = load_backbone()
        >>> backbone(torch.rand(2, 3, 32, 32)).shape[0]
        2
    """
    from safetensors.torch import load_file

    weights = Path(path) if path is not None else _weights_dir() / WEIGHTS_FILE
    config_path = weights.with_suffix(".json")
    config: dict[str, Any] = json.loads(config_path.read_text()) if config_path.exists() else {}
    backbone = ToyBackbone(widths=tuple(config.get("widths", ToyBackbone().widths)))
    backbone.load_state_dict(load_file(str(weights)))
    backbone.eval()
    backbone.requires_grad_(False)
    return backbone


@torch.no_grad()
def _features(backbone: nn.Module, images: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    """Backbone features of a ``(n, 3, H, W)`` float array in [0, 1]."""
    out = [
        backbone(torch.from_numpy(images[i : i + batch_size]))
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, getattr(backbone, "feature_dim", 0))


def toy_classifier(
    world: ToyWorld,
    *,
    per_class: int = 50,
    seed: int = 0,
    weight_decay: float = HEAD_WEIGHT_DECAY,
    backbone: ToyBackbone | None = None,
    train: ToyDataset | None = None,
) -> nn.Sequential:
    """The world's classifier: the pretrained backbone and a head fitted on the biased train split.

    The head is fitted from zero by [`LinearHeadTrainer`][failmodes.heads.LinearHeadTrainer] (L-BFGS
    on ``mean CE + weight_decay / 2 * ||params||^2``, the objective the repair step refits) over
    ``world.train(per_class)``; with only a few rare-value images per class it leans on the
    class's common value, which is the shortcut the library finds and repairs.

    Args:
        world: a [`ToyWorld`][failmodes.toyworld.ToyWorld].
        per_class: training images per class (the paper uses 30 per class on ImageNet).
        seed: passed to the head's solver (the objective is convex and the start is zero, so
            the result does not depend on it).
        weight_decay: the L2 penalty of the head's fit; use the same in the repair step, so that
            refitting on the training data alone gives this head back.
        backbone: the backbone to use; ``None`` loads the shipped one.
        train: ``world.train(per_class)`` when already made (it is rendered otherwise).

    Returns:
        ``nn.Sequential(backbone, head)`` in eval mode; ``model[-1]`` is the ``nn.Linear`` head.

    Examples:
        >>> import torch
        >>> from failmodes.toyworld import ToyWorld, toy_classifier
        >>> world = ToyWorld(seed=0)
        >>> model = toy_classifier(world, per_class=5)
        >>> model(torch.rand(2, 3, 32, 32)).shape, model[-1].out_features
        (torch.Size([2, 10]), 10)
    """
    from failmodes.heads.linear import LinearHeadTrainer

    backbone = load_backbone() if backbone is None else backbone
    backbone.eval()
    train = world.train(per_class) if train is None else train
    feats = _features(backbone, train.tensors())
    labels = torch.as_tensor(train.labels, dtype=torch.long)
    trainer = LinearHeadTrainer(solver="lbfgs", weight_decay=weight_decay)
    head = trainer.fit(feats, labels, num_classes=len(world.class_names), seed=seed)
    head.requires_grad_(False)
    return nn.Sequential(backbone, head).eval()
