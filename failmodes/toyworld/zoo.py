"""A zoo of ToyWorld classifiers in two architecture families, to study failures across models.

Chegini & Feizi compare the failures of many ImageNet models and find that models of one
family (ResNets, ViTs, ...) fail on much the same images, so that one generated set can repair a
whole family (section 5.3.2). The zoo is that setting in miniature: small convolutional networks
(category ``"cnn"``) and small MLP-Mixers on 4x4 patches (category ``"mixer"``), each
made the way the demo's classifier is made:

1. a backbone pretrained on broad, *balanced* ToyWorld renders with the multi-task recipe of
   the shipped backbone ([`pretrain_backbone`][pretrain_backbone]: name the shape, and with smaller
   weights the background and the colour), never on a world's biased split;
2. a linear head fitted from zero on the world's biased training split by
   [`LinearHeadTrainer`][failmodes.heads.LinearHeadTrainer] with ``weight_decay=HEAD_WEIGHT_DECAY``,
   as [`toy_classifier`][failmodes.toyworld.toy_classifier] does.

Pretraining does not depend on the world, so each backbone is pretrained once (a minute or two
on one CPU thread) and kept in failmodes' cache ([`failmodes.cache`][failmodes.cache]) under a key
made of its architecture, its training settings, its seed and a hash of the renderer's source; the
heads are cached per world.

Examples:
    >>> from failmodes.toyworld import ToyWorld
    >>> from failmodes.toyworld.zoo import ZOO, zoo_models
    >>> sorted({spec.category for spec in ZOO.values()})
    ['cnn', 'mixer']

    The whole zoo on one world (pretraining the six backbones takes several minutes the first
    time; they are cached afterwards):

    ```python
    models = zoo_models(ToyWorld(seed=0))
    models["cnn-narrow"].model(torch.rand(2, 3, 32, 32)).shape  # torch.Size([2, 10])
    ```
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from failmodes.progress import progress_bar
from failmodes.toyworld.model import MEAN, STD, ToyBackbone
from failmodes.toyworld.world import BACKGROUNDS, COLORS, SHAPES, ToyWorld, render_batch

__all__ = [
    "PRETRAINING",
    "ZOO",
    "ToyMixer",
    "ZooModel",
    "ZooSpec",
    "balanced_data",
    "build_backbone",
    "pretrain_backbone",
    "zoo_backbone",
    "zoo_models",
]

logger = logging.getLogger("failmodes")

# Part of every zoo backbone's cache key: bump it when an architecture's code or the pretraining
# loop changes what a given spec computes, so that no stale weights are read back.
_RECIPE_VERSION = 1
_ATTRIBUTES = ("shape", "background", "color")


# -- data and pretraining ------------------------------------------------------------------------


def balanced_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` world-style images with shape, background and colour drawn uniformly.

    Args:
        n: the number of images.
        seed: seed of the draws and of the rendering.

    Returns:
        ``(images, targets)``: float32 ``(n, 3, 32, 32)`` in [0, 1] and int64 ``(n, 3)`` columns
        (shape, background, colour) as indices into ``SHAPES``, ``BACKGROUNDS``, ``COLORS``.

    Examples:
        >>> from failmodes.toyworld.zoo import balanced_data
        >>> images, targets = balanced_data(4, seed=0)
        >>> images.shape, str(images.dtype), targets.shape
        ((4, 3, 32, 32), 'float32', (4, 3))
    """
    rng = np.random.default_rng([seed, 1])
    targets = np.stack(
        [
            rng.integers(len(SHAPES), size=n),
            rng.integers(len(BACKGROUNDS), size=n),
            rng.integers(len(COLORS), size=n),
        ],
        axis=1,
    )
    bgs, cols = list(BACKGROUNDS), list(COLORS)
    pixels = render_batch(
        [SHAPES[i] for i in targets[:, 0]],
        [bgs[i] for i in targets[:, 1]],
        [cols[i] for i in targets[:, 2]],
        int(rng.integers(2**31)),
    )
    return pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0, targets.astype(np.int64)


def _feature_dim(module: nn.Module) -> int:
    d = getattr(module, "feature_dim", None)
    if d is None:
        raise TypeError(
            f"{type(module).__name__} has no feature_dim attribute: pretrain_backbone needs the "
            "dimension d of the (n, d) features to size its auxiliary heads"
        )
    return int(d)


def pretrain_backbone(
    backbone: nn.Module | Callable[[], nn.Module],
    *,
    n_train: int = 10_000,
    n_val: int = 2_000,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    w_background: float = 0.3,
    w_color: float = 0.3,
    seed: int = 0,
    progress: bool | None = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Pretrain a backbone on balanced world-style renders, with the multi-task recipe.

    Three linear heads on the backbone's features name the shape, the background and the colour
    of ``n_train`` balanced images ([`balanced_data`][balanced_data]), and the backbone and heads
    minimise

        CE(shape) + w_background * CE(background) + w_color * CE(color)

    with AdamW under a one-cycle learning-rate schedule, in shuffled mini-batches. The features
    then hold the object and, linearly readable, its context, as ImageNet features do. This is
    how the shipped backbone was made (``scripts/train_toyworld_backbone.py`` calls this
    function) and how every backbone of the zoo is made.

    Everything random is drawn from ``seed``: the images (``seed`` for training,
    ``seed + 1_000_003`` for validation), the initial weights (``backbone`` is called, and the
    heads built, under ``torch.manual_seed(seed)``; torch's global random state is restored
    afterwards) and the order of the batches. The same seed and number of threads give the
    same weights, bit for bit, on a CPU.

    Args:
        backbone: a function building the module to pretrain, e.g.
            ``lambda: ToyBackbone((16, 32, 64))``; or a module, pretrained in place as it is
            initialised. It maps ``(n, 3, 32, 32)`` images in [0, 1] to ``(n, d)`` features and
            has a ``feature_dim`` attribute ``d``.
        n_train: training images.
        n_val: validation images, on which the heads' accuracies are reported.
        epochs: passes over the training images.
        batch_size: images per step.
        lr: the peak learning rate of the one-cycle schedule.
        weight_decay: AdamW's decoupled weight decay.
        w_background: weight of the background's cross-entropy (0 leaves it out).
        w_color: weight of the colour's cross-entropy (0 leaves it out).
        seed: the seed of the data, the initial weights and the batch order.
        progress: show a progress bar over the epochs; ``None`` shows one only on a terminal.

    Returns:
        ``(backbone, info)``: the pretrained module in eval mode, and ``info`` with
        ``validation_accuracy`` (``{"shape", "background", "color"}``: the pretraining heads'
        accuracy on the validation images), ``loss`` (the mean training loss of each epoch)
        and ``seconds`` (``{"render", "train"}``).

    Raises:
        ValueError: if ``n_train``, ``n_val``, ``epochs`` or ``batch_size`` is not a positive
            integer.
        TypeError: if the backbone has no ``feature_dim``.

    Examples:
        >>> from failmodes.toyworld import ToyBackbone
        >>> backbone, info = pretrain_backbone(
        ...     lambda: ToyBackbone((8, 16)), n_train=64, n_val=32, epochs=1, batch_size=32
        ... )
        >>> sorted(info["validation_accuracy"])
        ['background', 'color', 'shape']
    """
    for name, value, low in (
        ("n_train", n_train, 1),
        ("n_val", n_val, 1),
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    start = time.perf_counter()
    x_train, t_train = balanced_data(n_train, seed)
    x_val, t_val = balanced_data(n_val, seed + 1_000_003)
    render_s = time.perf_counter() - start

    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = backbone if isinstance(backbone, nn.Module) else backbone()
        d = _feature_dim(module)
        heads = nn.ModuleList(
            [nn.Linear(d, len(SHAPES)), nn.Linear(d, len(BACKGROUNDS)), nn.Linear(d, len(COLORS))]
        )
        weights = (1.0, w_background, w_color)
        params = list(module.parameters()) + list(heads.parameters())
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        steps_per_epoch = math.ceil(n_train / batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch
        )
        xt, tt = torch.from_numpy(x_train), torch.from_numpy(t_train)
        gen = torch.Generator().manual_seed(seed)
        bar = progress_bar(range(epochs), progress=progress, desc="pretraining", leave=False)
        for epoch in bar:
            module.train()
            order = torch.randperm(n_train, generator=gen)
            total = 0.0
            for i in range(0, n_train, batch_size):
                idx = order[i : i + batch_size]
                feats = module(xt[idx])
                loss = sum(
                    w * nn.functional.cross_entropy(h(feats), tt[idx, j])
                    for j, (w, h) in enumerate(zip(weights, heads, strict=True))
                    if w > 0
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / n_train)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            logger.info(
                "pretraining epoch %d/%d: loss %.4f (%.0f s)",
                epoch + 1,
                epochs,
                losses[-1],
                time.perf_counter() - start,
            )
    train_s = time.perf_counter() - start - render_s

    module.eval()
    with torch.no_grad():
        fv = torch.cat(
            [module(torch.from_numpy(x_val[i : i + 500])) for i in range(0, len(x_val), 500)]
        )
        val_acc = {
            name: float((heads[j](fv).argmax(1).numpy() == t_val[:, j]).mean())
            for j, name in enumerate(_ATTRIBUTES)
        }
    logger.info("pretraining heads' validation accuracy: %s", val_acc)
    info = {
        "validation_accuracy": val_acc,
        "loss": losses,
        "seconds": {"render": render_s, "train": train_s},
    }
    return module, info


# -- a second family: an MLP-Mixer on 4x4 patches ------------------------------------------------


class _MixerBlock(nn.Module):
    """An MLP-Mixer block: an MLP across tokens (per channel), then one across channels."""

    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(
            nn.Linear(tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, tokens)
        )
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(
            nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class ToyMixer(nn.Module):
    """A small MLP-Mixer mapping ``(n, 3, 32, 32)`` images in [0, 1] to ``(n, d)`` features.

    The image is cut into ``patch x patch`` patches (64 of 4x4 pixels at 32x32), each embedded
    linearly; ``depth`` Mixer blocks follow (Tolstikhin et al., 2021: an MLP across the tokens,
    then one across the channels, each pre-normed and residual), and the features are the
    layer-normed mean of the tokens, so ``d`` is ``dim``. Inputs are normalised inside the
    module, as [`ToyBackbone`][failmodes.toyworld.ToyBackbone]'s are. It has no convolution but the
    patch embedding: what it learns of space, it learns in the token MLPs.

    Args:
        dim: token width, the feature dimension.
        depth: Mixer blocks.
        token_hidden: hidden width of the MLPs across tokens.
        mlp_ratio: hidden width of the MLPs across channels, over ``dim``.
        patch: patch side in pixels.
        image_size: image side in pixels (a multiple of ``patch``).

    Raises:
        ValueError: if ``image_size`` is not a multiple of ``patch``.

    Examples:
        >>> import torch
        >>> from failmodes.toyworld import ToyMixer
        >>> ToyMixer(dim=32, depth=1)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 32])
    """

    def __init__(
        self,
        dim: int = 64,
        depth: int = 4,
        token_hidden: int = 64,
        mlp_ratio: int = 2,
        patch: int = 4,
        image_size: int = 32,
    ):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch ({patch})")
        self.dim, self.depth, self.token_hidden = int(dim), int(depth), int(token_hidden)
        self.mlp_ratio, self.patch, self.image_size = int(mlp_ratio), int(patch), int(image_size)
        tokens = (image_size // patch) ** 2
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.blocks = nn.Sequential(
            *[_MixerBlock(tokens, dim, token_hidden, mlp_ratio * dim) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    @property
    def feature_dim(self) -> int:
        """The dimension ``d`` of the features (``dim``)."""
        return self.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a batch of images.

        Args:
            x: float ``(n, 3, image_size, image_size)`` images in [0, 1].

        Returns:
            ``(n, dim)`` features.
        """
        x = (x - self.mean) / self.std
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        return self.norm(self.blocks(tokens)).mean(dim=1)


# -- the zoo -------------------------------------------------------------------------------------

_ARCHITECTURES: dict[str, type[nn.Module]] = {
    "ToyBackbone": ToyBackbone,
    "ToyMixer": ToyMixer,
}

#: Pretraining settings common to every zoo backbone (a spec may override some): the shipped
#: backbone's recipe, with 1,000 validation images and 10 epochs, so that a backbone pretrains in
#: one to two minutes on one CPU thread.
PRETRAINING: dict[str, Any] = {
    "n_train": 10_000,
    "n_val": 1_000,
    "epochs": 10,
    "batch_size": 128,
    "lr": 3e-3,
    "weight_decay": 5e-4,
    "w_background": 0.3,
    "w_color": 0.3,
}
"""How every zoo backbone is pretrained (sizes, epochs, optimiser settings)."""

# The Mixers learn the shape more slowly per image than the CNNs and cost more per image: more,
# smaller steps at a lower peak rate on fewer images, to stay within about two minutes.
_MIXER_PRETRAINING = {"n_train": 8_000, "epochs": 8, "batch_size": 64, "lr": 2e-3}


@dataclass(frozen=True)
class ZooSpec:
    """How one zoo model's backbone is built and pretrained.

    Attributes:
        category: the architecture family (``"cnn"``, ``"mixer"``).
        architecture: the class, ``"ToyBackbone"`` or ``"ToyMixer"``.
        config: the class's keyword arguments.
        seed: the pretraining seed (data, initial weights, batch order).
        pretraining: settings of [`pretrain_backbone`][pretrain_backbone] that differ from
            [`PRETRAINING`][PRETRAINING].

    Examples:
        >>> from failmodes.toyworld import ZooSpec
        >>> spec = ZooSpec("cnn", "ToyBackbone", {"widths": (8, 16)}, seed=7)
        >>> settings = spec.settings(epochs=1)
        >>> settings["epochs"], settings["seed"], settings["n_train"]
        (1, 7, 10000)
    """

    category: str
    architecture: str
    config: Mapping[str, Any]
    seed: int = 0
    pretraining: Mapping[str, Any] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The full [`pretrain_backbone`][pretrain_backbone] settings, and the seed.

        The zoo's settings come first, then this spec's, then ``overrides``.

        Args:
            **overrides: settings of [`pretrain_backbone`][pretrain_backbone] that replace the
                zoo's and the spec's (not ``seed``, which is always the spec's).

        Returns:
            The keyword arguments of [`pretrain_backbone`][pretrain_backbone], ``seed``
            included.
        """
        return {**PRETRAINING, **self.pretraining, **overrides, "seed": self.seed}


#: The zoo: three convolutional networks and three MLP-Mixers, of different widths, depths and
#: pretraining seeds. Their pretraining heads name the shape of balanced validation renders at
#: 0.88 (``cnn-base``), 0.69 (``cnn-narrow``), 0.95 (``cnn-deep``), 0.66 (``mixer-base``), 0.64
#: (``mixer-small``) and 0.74 (``mixer-wide``) (the shipped backbone: 0.86), and the background
#: at 0.98-1.00. Pretraining took 40-100 s each on one thread of a shared 2-vCPU machine.
ZOO: dict[str, ZooSpec] = {
    "cnn-base": ZooSpec("cnn", "ToyBackbone", {"widths": (16, 32, 64, 128)}, seed=1),
    "cnn-narrow": ZooSpec("cnn", "ToyBackbone", {"widths": (8, 16, 32, 64)}, seed=2),
    "cnn-deep": ZooSpec("cnn", "ToyBackbone", {"widths": (16, 32, 64, 128, 128)}, seed=3),
    "mixer-base": ZooSpec(
        "mixer", "ToyMixer", {"dim": 64, "depth": 4}, seed=1, pretraining=_MIXER_PRETRAINING
    ),
    "mixer-small": ZooSpec(
        "mixer", "ToyMixer", {"dim": 48, "depth": 4}, seed=2, pretraining=_MIXER_PRETRAINING
    ),
    "mixer-wide": ZooSpec(
        "mixer",
        "ToyMixer",
        {"dim": 96, "depth": 3, "token_hidden": 96},
        seed=3,
        pretraining=_MIXER_PRETRAINING,
    ),
}
"""The zoo: name -> [`ZooSpec`][failmodes.toyworld.zoo.ZooSpec], three CNNs and three MLP-Mixers."""


@dataclass
class ZooModel:
    """One classifier of the zoo, its head fitted on one world.

    Attributes:
        name: its name in the zoo.
        category: its architecture family.
        model: ``nn.Sequential(backbone, head)`` in eval mode, frozen; ``model[-1]`` is the
            ``nn.Linear`` head, so [`TorchExtractor`][failmodes.extractors.torch.TorchExtractor]
            takes it as it is.
        spec: how its backbone was built and pretrained.
        pretraining: what [`pretrain_backbone`][pretrain_backbone] reported (validation accuracies,
            losses, seconds) and the settings it ran with.

    Examples:
        [`zoo_models`][zoo_models] makes them; here with a backbone pretrained for one quick
        epoch:

        >>> import torch
        >>> from failmodes.toyworld import ToyWorld, zoo_models
        >>> world = ToyWorld(seed=0)
        >>> models = zoo_models(world, names=["cnn-narrow"], per_class=5, cache=False,
        ...                     n_train=64, n_val=32, epochs=1)
        >>> zoo_model = models["cnn-narrow"]
        >>> zoo_model.category, zoo_model.model(torch.rand(2, 3, 32, 32)).shape
        ('cnn', torch.Size([2, 10]))
    """

    name: str
    category: str
    model: nn.Sequential
    spec: ZooSpec = field(repr=False)
    pretraining: dict[str, Any] = field(default_factory=dict, repr=False)


def build_backbone(spec: ZooSpec) -> nn.Module:
    """A freshly initialised backbone of ``spec``'s architecture (from torch's global RNG).

    Args:
        spec: the backbone's spec; its ``config`` are the architecture's keyword arguments.

    Returns:
        A [`ToyBackbone`][failmodes.toyworld.ToyBackbone] or [`ToyMixer`][ToyMixer], in training
        mode.

    Raises:
        ValueError: if ``spec.architecture`` is unknown.

    Examples:
        >>> from failmodes.toyworld.zoo import ZOO, build_backbone
        >>> build_backbone(ZOO["mixer-small"]).feature_dim
        48
    """
    if spec.architecture not in _ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {spec.architecture!r}; choose from {sorted(_ARCHITECTURES)}"
        )
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.config.items()}
    return _ARCHITECTURES[spec.architecture](**config)


def _renderer_digest() -> str:
    from failmodes.toyworld import world as world_module

    return hashlib.sha256(Path(world_module.__file__).read_bytes()).hexdigest()


def _backbone_key(spec: ZooSpec, settings: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "recipe": _RECIPE_VERSION,
        "architecture": spec.architecture,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.config.items()},
        "pretraining": dict(settings),
        "renderer": _renderer_digest(),
    }


def zoo_backbone(
    spec: ZooSpec, *, cache: Any = True, progress: bool | None = False, **pretraining: Any
) -> tuple[nn.Module, dict[str, Any]]:
    """``spec``'s pretrained backbone, read from the cache or pretrained (and cached).

    Args:
        spec: the backbone's spec (e.g. ``ZOO["mixer-base"]``).
        cache: ``True`` (the default cache folder), ``False``, a folder or a
            [`Cache`][failmodes.cache.Cache].
        progress: show a progress bar while pretraining.
        **pretraining: settings of [`pretrain_backbone`][pretrain_backbone] to override
            (``n_train=500``);
            they are part of the cache key.

    Returns:
        ``(backbone, info)``: the module in eval mode with frozen parameters, and the
        pretraining report (see [`pretrain_backbone`][pretrain_backbone]) with the ``settings``
        used.

    Raises:
        TypeError: if ``pretraining`` holds a setting that [`PRETRAINING`][PRETRAINING] lacks.
        ValueError: if ``spec.architecture`` is unknown or a setting is invalid.

    Examples:
        >>> from failmodes.toyworld import ZOO, zoo_backbone
        >>> backbone, info = zoo_backbone(ZOO["cnn-narrow"], cache=False,
        ...                               n_train=64, n_val=32, epochs=1)
        >>> backbone.feature_dim, info["settings"]["seed"]
        (64, 2)
    """
    from failmodes.cache import resolve_cache

    unknown = sorted(set(pretraining) - set(PRETRAINING))
    if unknown:
        raise TypeError(f"unknown pretraining settings {unknown}; known: {sorted(PRETRAINING)}")
    settings = spec.settings(**pretraining)
    store = resolve_cache(cache)
    key = store.key("toyworld-zoo", _backbone_key(spec, settings)) if store is not None else None
    state = store.get_tensors("toyworld-zoo", key) if store is not None else None
    info = store.get_json("toyworld-zoo", key) if store is not None else None
    if state is not None and info is not None:
        with torch.random.fork_rng(devices=[]):
            backbone = build_backbone(spec)  # initial weights are overwritten below
        backbone.load_state_dict(state)
        logger.debug("zoo backbone read from the cache: %s", key[:12])
    else:
        backbone, info = pretrain_backbone(
            lambda: build_backbone(spec), progress=progress, **settings
        )
        info = {**info, "settings": settings}
        if store is not None:
            store.put_tensors("toyworld-zoo", key, backbone.state_dict())
            store.put_json("toyworld-zoo", key, info)
    backbone.eval()
    backbone.requires_grad_(False)
    return backbone, info


def zoo_models(
    world: ToyWorld,
    *,
    names: Iterable[str] | None = None,
    specs: Mapping[str, ZooSpec] | None = None,
    per_class: int = 50,
    seed: int = 0,
    cache: Any = True,
    train: Any = None,
    progress: bool | None = False,
    **pretraining: Any,
) -> dict[str, ZooModel]:
    """The zoo's classifiers for ``world``: pretrained backbones, heads fitted on its biased split.

    Each backbone is read from the cache or pretrained ([`zoo_backbone`][zoo_backbone]); each head
    is fitted from zero on ``world.train(per_class)`` as
    [`toy_classifier`][failmodes.toyworld.toy_classifier] does
    ([`LinearHeadTrainer`][failmodes.heads.LinearHeadTrainer], L-BFGS, ``weight_decay=
    HEAD_WEIGHT_DECAY``) and cached per world and backbone, as the demo's head is.

    Args:
        world: the world whose biased training split the heads are fitted on.
        names: the models to make, in this order; ``None``: all of ``specs``.
        specs: ``{name: ZooSpec}``; ``None``: [`ZOO`][ZOO].
        per_class: training images per class for the heads (the demo's 50).
        seed: seed of the heads' fits.
        cache: ``True`` (the default cache folder), ``False``, a folder or a
            [`Cache`][failmodes.cache.Cache].
        train: ``world.train(per_class)`` when already rendered.
        progress: show progress bars while pretraining.
        **pretraining: [`pretrain_backbone`][pretrain_backbone] settings that override every spec's
            (``n_train=500, epochs=1`` for a quick look).

    Returns:
        ``{name: ZooModel}`` in the order of ``names``.

    Raises:
        ValueError: if a name is not in ``specs``; and as [`zoo_backbone`][zoo_backbone] does.
        TypeError: as [`zoo_backbone`][zoo_backbone] does.

    Examples:
        Two quick models (backbones pretrained for one short epoch, not cached):

        >>> from failmodes.toyworld import ToyWorld, zoo_models
        >>> models = zoo_models(ToyWorld(seed=0), names=["cnn-narrow", "mixer-small"],
        ...                     per_class=5, cache=False, n_train=64, n_val=32, epochs=1)
        >>> {name: model.category for name, model in models.items()}
        {'cnn-narrow': 'cnn', 'mixer-small': 'mixer'}

        The whole zoo, its backbones pretrained as specified and cached:

        ```python
        models = zoo_models(ToyWorld(seed=0))
        ```
    """
    from failmodes.cache import resolve_cache
    from failmodes.toyworld.demo import cached_classifier, cached_split

    specs = ZOO if specs is None else specs
    names = list(specs) if names is None else list(names)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(f"unknown zoo models {unknown}; choose from {sorted(specs)}")
    store = resolve_cache(cache)
    if train is None:
        train = cached_split(world, "train", per_class, store)
    out = {}
    for name in names:
        spec = specs[name]
        backbone, info = zoo_backbone(
            spec, cache=store if store is not None else False, progress=progress, **pretraining
        )
        model = cached_classifier(
            world, per_class, seed, train, store if store is not None else False, backbone=backbone
        )
        out[name] = ZooModel(name, spec.category, model, spec, info)
    return out
