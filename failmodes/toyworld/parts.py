"""ToyWorld's parts built from plain settings, for a ``failmodes run`` config file.

A config file names a factory as ``module:function`` and gives it keyword arguments, so each
part here takes the world's own settings (``seed``, ``attribute``, ``strength``, ``cues``,
``debug_strength``, as [`ToyWorld`][failmodes.toyworld.ToyWorld] takes them) rather than a world
object; a config file checks them against these signatures before any work. Parts made with the
same settings belong to the same world: its splits, the classifier trained on its biased
training split, its uncommon values and its renderer. ``examples/imagenet-tiny.toml`` uses them.

Examples:
    >>> from failmodes.toyworld import parts
    >>> data = parts.split("debug", 20, seed=0)
    >>> len(data), type(parts.generator(seed=0)).__name__
    (20, 'ToyWorldGenerator')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failmodes.toyworld.world import ToyDataset, ToyWorld

if TYPE_CHECKING:
    from torch import nn

    from failmodes.proposers.static import StaticProposer
    from failmodes.toyworld.generator import ToyWorldGenerator

__all__ = ["SPLITS", "classifier", "generator", "proposer", "split"]

SPLITS = ("train", "debug", "test", "train_like")
"""The splits [`split`][split] makes: ``ToyWorld.train`` (its size per class), ``debug``,
``test`` and ``train_like``."""


def split(
    name: str,
    size: int,
    *,
    seed: int = 0,
    attribute: str = "background",
    strength: float = 0.95,
    cues: int | None = None,
    debug_strength: float = 0.0,
) -> ToyDataset:
    """A split of the world with these settings.

    Args:
        name: ``"train"`` (biased: each class mostly shows its common value), ``"debug"``,
            ``"test"`` (balanced) or ``"train_like"`` (fresh images drawn as ``"train"``).
        size: images per class for ``"train"``, images in all for the others.
        seed: the world's seed (its common values and images).
        attribute: the spurious attribute, ``"background"`` or ``"color"``.
        strength: the share of training images that show their class's common value.
        cues: ``None``, or a world where that many values each predict one class.
        debug_strength: the share of debug and test images drawn as the training split is.

    Returns:
        The split, with the attribute's value of each image in ``groups``.

    Raises:
        ValueError: if ``name`` is not one of [`SPLITS`][SPLITS], or a setting is invalid.
    """
    if name not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {name!r}")
    world = _world(seed, attribute, strength, cues, debug_strength)
    return getattr(world, name)(size)


def classifier(
    *,
    per_class: int = 50,
    seed: int = 0,
    attribute: str = "background",
    strength: float = 0.95,
    cues: int | None = None,
    debug_strength: float = 0.0,
) -> nn.Sequential:
    """The world's classifier: the shipped backbone, its head fitted on the biased train split.

    Args:
        per_class: training images per class the head is fitted on.
        seed: the world's seed (its common values and images).
        attribute: the spurious attribute, ``"background"`` or ``"color"``.
        strength: the share of training images that show their class's common value.
        cues: ``None``, or a world where that many values each predict one class.
        debug_strength: the share of debug and test images drawn as the training split is.

    Returns:
        [`toy_classifier`][failmodes.toyworld.toy_classifier]'s ``nn.Sequential(backbone,
        head)``, in eval mode.
    """
    from failmodes.toyworld.model import toy_classifier

    return toy_classifier(
        _world(seed, attribute, strength, cues, debug_strength),
        per_class=per_class,
    )


def proposer(
    *,
    seed: int = 0,
    attribute: str = "background",
    strength: float = 0.95,
    cues: int | None = None,
    debug_strength: float = 0.0,
) -> StaticProposer:
    """The values uncommon for each class of the world, and each class's usual one.

    Args:
        seed: the world's seed (its common values and images).
        attribute: the spurious attribute, ``"background"`` or ``"color"``.
        strength: the share of training images that show their class's common value.
        cues: ``None``, or a world where that many values each predict one class.
        debug_strength: the share of debug and test images drawn as the training split is.

    Returns:
        A [`StaticProposer`][failmodes.proposers.StaticProposer], as the demo's.
    """
    from failmodes.proposers.static import StaticProposer

    toy = _world(seed, attribute, strength, cues, debug_strength)
    usual = {c: v for c, v in zip(toy.class_names, toy.common_values, strict=True) if v}
    return StaticProposer(toy.uncommon_values(), usual=usual)


def generator(
    *,
    style: str = "generated",
    progress: bool | None = None,
    seed: int = 0,
    attribute: str = "background",
    strength: float = 0.95,
    cues: int | None = None,
    debug_strength: float = 0.0,
) -> ToyWorldGenerator:
    """The world's renderer as an image generator.

    Args:
        style: ``"generated"`` (with the deliberate style gap from the world's own images)
            or ``"world"``; see [`ToyWorldGenerator`][failmodes.toyworld.ToyWorldGenerator].
        progress: show a progress bar; ``None`` shows one only on a terminal.
        seed: the world's seed (its common values and images).
        attribute: the spurious attribute, ``"background"`` or ``"color"``.
        strength: the share of training images that show their class's common value.
        cues: ``None``, or a world where that many values each predict one class.
        debug_strength: the share of debug and test images drawn as the training split is.

    Returns:
        A [`ToyWorldGenerator`][failmodes.toyworld.ToyWorldGenerator].
    """
    from failmodes.toyworld.generator import ToyWorldGenerator

    return ToyWorldGenerator(
        _world(seed, attribute, strength, cues, debug_strength),
        style=style,
        progress=progress,
    )


def _world(
    seed: int, attribute: str, strength: float, cues: int | None, debug_strength: float
) -> ToyWorld:
    return ToyWorld(
        seed=seed, attribute=attribute, strength=strength, cues=cues, debug_strength=debug_strength
    )
