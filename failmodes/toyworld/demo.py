"""The ToyWorld demo: every component of the method, wired for one world, on a laptop CPU."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from failmodes._checks import check_grid, check_number
from failmodes.progress import stage
from failmodes.toyworld.world import ToyDataset, ToyWorld

if TYPE_CHECKING:
    from failmodes.results import RunResult

__all__ = [
    "DEMO_LIMITS",
    "DEMO_SETTINGS",
    "cached_classifier",
    "cached_split",
    "demo_components",
    "run_demo",
]

DEMO_SETTINGS: dict[str, Any] = {
    "train_per_class": 50,
    "debug_size": 10_000,
    "test_size": 5_000,
    "train_like_size": 2_000,
    "k": [3, 5],
    "lam": [0.5, 1.0, 2.0],
    "images_per_mode": [20, 40],
}
"""The demo's split sizes and search grids (``k``, ``lam`` and ``images_per_mode`` are chosen
on the validation part of the debug set)."""

DEMO_LIMITS: dict[str, int] = {
    "debug_size": 100_000,
    "images_per_mode": 1_000,
}
"""The largest ``debug_size`` and ``images_per_mode`` the demo takes (``failmodes demo``'s
``--debug-size`` and ``--images-per-mode``), refused beyond before any work.

ToyWorld renders about a thousand images a second on one CPU core and holds each as 3 KiB of
pixels, 12 KiB as the float tensor its classifier reads. 100,000 debug images, ten times the
demo's, render in minutes and take about 1 GiB as tensors; 1,000 images per mode, 25 times the
demo's largest, make up to 150,000 images for its 50 modes (5 per class) in three generated
sets. Sizes far beyond run for hours or fail to allocate memory on one machine, and the method
needs no more: the paper's few-shot setting is a few hundred debug images."""


def demo_components(
    world: ToyWorld, *, seed: int = 0, progress: bool | None = None, **overrides: Any
) -> dict[str, Any]:
    """The keyword arguments of a [`failmodes.Debugger`][failmodes.debugger.Debugger] for ``world``.

    The classifier is ToyWorld's pretrained backbone with a head fitted on the world's biased
    training split; proposals are the values uncommon for each class; captions come from
    ToyCLIP through [`failmodes.CLIPCaptioner`][failmodes.captioners.openclip.CLIPCaptioner]; images
    from the world's renderer.

    With ``cache`` left on (the default), the classifier's head is read from, or written to,
    failmodes' cache.

    Args:
        world: the world to debug.
        seed: seed of the classifier's head fit.
        progress: progress bars (``None``: when stderr is a terminal).
        **overrides: replace any component or setting of the Debugger
            (``generator=MyGenerator()``, ``cache=False``, ``k=[1, 2]``); ``train=`` gives the
            already rendered training split the classifier's head is fitted on (it is rendered
            otherwise), and ``extractor=`` another classifier (the demo's is then not made).

    Returns:
        ``{argument: value}`` for [`Debugger`][failmodes.debugger.Debugger]: ``extractor``,
        ``proposer``, ``captioner``, ``generator``, ``head_trainer``, ``class_names``,
        ``attribute``, ``k``, ``lam``, ``images_per_mode`` and ``progress``, with the overrides.

    Raises:
        ImportError: if open_clip, which ToyCLIP needs, is not installed (the ``clip`` extra).

    Examples:
        >>> from failmodes import Debugger
        >>> from failmodes.toyworld import ToyWorld, demo_components
        >>> world = ToyWorld(seed=0)
        >>> components = demo_components(world, cache=False, train=world.train(5), k=1)
        >>> type(components["generator"]).__name__, components["k"]
        ('ToyWorldGenerator', 1)
        >>> dbg = Debugger(**components)
    """
    from failmodes.extractors.torch import TorchExtractor
    from failmodes.heads.linear import LinearHeadTrainer
    from failmodes.proposers.static import StaticProposer
    from failmodes.toyworld.generator import ToyWorldGenerator
    from failmodes.toyworld.model import HEAD_WEIGHT_DECAY
    from failmodes.toyworld.toyclip import toyclip_captioner

    per_class = DEMO_SETTINGS["train_per_class"]
    train = overrides.pop("train", None)
    if "extractor" in overrides:  # another classifier: the demo's is not needed
        extractor = overrides.pop("extractor")
    else:
        model = cached_classifier(world, per_class, seed, train, overrides.get("cache", True))
        extractor = TorchExtractor(model, batch_size=500, progress=progress)
    components = {
        "extractor": extractor,
        "proposer": StaticProposer(
            world.uncommon_values(),
            usual={c: v for c, v in zip(world.class_names, world.common_values, strict=True) if v},
        ),
        "captioner": toyclip_captioner(batch_size=500, progress=progress),
        "generator": ToyWorldGenerator(world, progress=progress),
        "head_trainer": LinearHeadTrainer(weight_decay=HEAD_WEIGHT_DECAY),
        "class_names": world.class_names,
        "attribute": world.attribute,
        "k": DEMO_SETTINGS["k"],
        "lam": DEMO_SETTINGS["lam"],
        "images_per_mode": DEMO_SETTINGS["images_per_mode"],
        "progress": progress,
    }
    components.update(overrides)
    return components


def run_demo(
    *,
    seed: int = 0,
    world_seed: int = 0,
    strength: float = 0.95,
    attribute: str = "background",
    cues: int | None = None,
    debug_strength: float = 0.0,
    images_per_mode: int | None = None,
    debug_size: int | None = None,
    generator: str = "render",
    guard: bool = True,
    progress: bool | None = None,
    cache: Any = True,
    **settings: Any,
) -> RunResult:
    """Run the whole method on one world, as ``failmodes demo`` does.

    The world's splits have the sizes of [`DEMO_SETTINGS`][DEMO_SETTINGS]; with a cache, they
    are rendered once and read back afterwards, as are the classifier and every step of the run.
    Every head is also evaluated on ``train_like``, fresh images drawn as the training split is:
    the price of the repair where the shortcut held.

    Args:
        seed: the run's seed (splits, generation, head fits) and the classifier head's.
        world_seed: the world's seed (its common values and images).
        strength: the share of training images showing their class's common value.
        attribute: the spurious attribute, ``"background"`` or ``"color"``.
        cues: the world's ``cues`` (see [`ToyWorld`][failmodes.toyworld.ToyWorld]).
        debug_strength: the world's ``debug_strength``.
        images_per_mode: a fixed number of images per mode instead of the demo's grid (or a
            grid of them), at most ``DEMO_LIMITS["images_per_mode"]``.
        debug_size: images in the debug set (``None``: the demo's 10,000), at most
            ``DEMO_LIMITS["debug_size"]``; a few hundred give a handful of failures per class,
            the paper's few-shot setting.
        generator: ``"render"`` (the world's renderer, text-to-image's stand-in), ``"edit"``
            (the world's editor, which edits training images into the failure modes:
            [`ToyWorldEditor`][failmodes.toyworld.editor.ToyWorldEditor]), or
            ``"render-world"`` (an ablation: the renderer in the world's own style, no gap).
        guard: hold a share of the train split out of every refit as a guard (the Debugger's
            ``guard_fraction``); ``False``: no guard.
        progress: progress bars (``None``: when stderr is a terminal).
        cache: the [`failmodes.Debugger`][failmodes.debugger.Debugger]'s (``True``, ``False``,
            a folder or a [`Cache`][failmodes.cache.Cache]).
        **settings: other [`Debugger`][failmodes.debugger.Debugger] settings (``rank``, ...).

    Returns:
        The [`RunResult`][failmodes.results.RunResult], its ``config`` with the world's
        settings and the split sizes added.

    Raises:
        ValueError: if ``attribute`` or ``strength`` is invalid, or ``debug_size`` or
            ``images_per_mode`` is not in ``[1, DEMO_LIMITS[name]]`` (checked before any work).

    Examples:
        About a minute on a laptop CPU:

        ```python
        result = run_demo(seed=0, world_seed=0, strength=0.95)
        result.to_frame()
        result.report("report.html")
        ```
    """
    from failmodes.cache import resolve_cache
    from failmodes.debugger import Debugger

    sizes = {split: DEMO_SETTINGS[f"{split}_size"] for split in ("debug", "test", "train_like")}
    if debug_size is not None:
        sizes["debug"] = _within_limit(debug_size, "debug_size")
    if images_per_mode is not None:
        _within_limit(images_per_mode, "images_per_mode", grid=True)
        settings["images_per_mode"] = images_per_mode
    world = ToyWorld(
        seed=world_seed,
        attribute=attribute,
        strength=strength,
        cues=cues,
        debug_strength=debug_strength,
    )
    store = resolve_cache(cache)
    stage(
        "rendering the world's train, debug and test splits%s",
        "" if store is None else " (or reading them from the cache)",
    )
    train = cached_split(world, "train", DEMO_SETTINGS["train_per_class"], store)
    splits = {split: cached_split(world, split, n, store) for split, n in sizes.items()}
    stage("loading the classifier (the shipped backbone, its head fitted on the train split)")
    if generator not in ("render", "edit", "render-world"):
        raise ValueError(f"generator must be 'render' or 'edit', got {generator!r}")
    if generator == "edit":
        from failmodes.toyworld.editor import ToyWorldEditor

        settings.setdefault("generator", ToyWorldEditor(world, progress=progress))
    elif generator == "render-world":  # an ablation: no style gap at all
        from failmodes.toyworld.generator import ToyWorldGenerator

        settings.setdefault("generator", ToyWorldGenerator(world, style="world", progress=progress))
    components = demo_components(
        world, seed=seed, progress=progress, cache=cache, train=train, **settings
    )
    result = Debugger(**components).run(
        train,
        splits["debug"],
        splits["test"],
        seed=seed,
        guard=None if guard else False,
        extra={"train_like": splits["train_like"]},
    )
    result.config.update(
        world_seed=world_seed,
        strength=strength,
        cues=cues,
        debug_strength=debug_strength,
        train_per_class=DEMO_SETTINGS["train_per_class"],
        demo_generator=generator,
        debug_size=sizes["debug"],
        test_size=sizes["test"],
        train_like_size=sizes["train_like"],
    )
    return result


def _within_limit(value: Any, name: str, *, grid: bool = False) -> Any:
    """``value``, an integer in ``[1, DEMO_LIMITS[name]]`` (a list of them too with ``grid``)."""
    limit = DEMO_LIMITS[name]
    if grid and isinstance(value, list | tuple):
        check_grid(value, name, minimum=1, maximum=limit, integer=True)
        return value
    return check_number(value, name, minimum=1, maximum=limit, integer=True)


def cached_split(world: ToyWorld, split: str, size: int, cache: Any = None) -> ToyDataset:
    """A split of ``world``, read from ``cache`` when the same renderer drew it before.

    It is ``world.train(size)``, ``world.debug(size)``, ``world.test(size)`` or
    ``world.train_like(size)``.

    Args:
        world: the world.
        split: ``"train"``, ``"debug"``, ``"test"`` or ``"train_like"``.
        size: images per class for ``"train"``, images in all for the others.
        cache: a [`Cache`][failmodes.cache.Cache], or ``None`` to render without caching.

    Returns:
        The split, the same as rendering it.

    Raises:
        ValueError: if ``split`` is unknown.

    Examples:
        >>> import tempfile
        >>> from failmodes.cache import Cache
        >>> from failmodes.toyworld import ToyWorld
        >>> from failmodes.toyworld.demo import cached_split
        >>> world = ToyWorld(seed=0)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     first = cached_split(world, "debug", 20, Cache(tmp))
        ...     again = cached_split(world, "debug", 20, Cache(tmp))  # read back
        >>> again.labels == first.labels == world.debug(20).labels
        True
    """
    makers = {
        "train": world.train,
        "debug": world.debug,
        "test": world.test,
        "train_like": world.train_like,
    }
    if split not in makers:
        raise ValueError(f"split must be one of {sorted(makers)}, got {split!r}")
    if cache is None:
        return makers[split](size)
    from failmodes.toyworld import world as world_module

    spec = {
        "world": repr(world),
        "split": split,
        "size": int(size),
        "renderer": hashlib.sha256(Path(world_module.__file__).read_bytes()).hexdigest(),
        "fields": 2,  # the objects' geometry is kept too
    }
    key = cache.key("toyworld-splits", spec)
    pixels = cache.get_tensors("toyworld-splits", key)
    fields = cache.get_json("toyworld-splits", key)
    if pixels is not None and fields is not None:
        return ToyDataset(pixels["pixels"].numpy(), **fields)
    data = makers[split](size)
    fields = {
        "labels": data.labels,
        "groups": data.groups,
        "shapes": data.shapes,
        "backgrounds": data.backgrounds,
        "colors": data.colors,
        "geometry": None if data.geometry is None else data.geometry.tolist(),
    }
    cache.put_tensors("toyworld-splits", key, {"pixels": torch.from_numpy(data.pixels)})
    cache.put_json("toyworld-splits", key, fields)
    return data


def cached_classifier(
    world: ToyWorld, per_class: int, seed: int, train: Any, cache: Any, backbone: Any = None
) -> torch.nn.Module:
    """[`toy_classifier`][failmodes.toyworld.toy_classifier], its head read from the cache.

    Args:
        world: the world whose biased training split the head is fitted on.
        per_class: training images per class.
        seed: seed of the head's fit.
        train: the rendered training split, or ``None`` to render it.
        cache: a cache as [`Debugger`][failmodes.debugger.Debugger] takes it; the head is read
            from it when fitted before, and written to it otherwise.
        backbone: the frozen backbone; ``None``: the shipped one.

    Returns:
        ``nn.Sequential(backbone, head)`` in eval mode.
    """
    from torch import nn

    from failmodes.cache import fingerprint, resolve_cache, tensor_digest
    from failmodes.heads.linear import LinearHeadTrainer
    from failmodes.toyworld.model import HEAD_WEIGHT_DECAY, load_backbone, toy_classifier

    store = resolve_cache(cache)
    backbone = load_backbone() if backbone is None else backbone
    if store is None:
        return toy_classifier(world, per_class=per_class, seed=seed, backbone=backbone, train=train)
    spec = {
        "world": repr(world),
        "per_class": per_class,
        "seed": seed,
        "trainer": fingerprint(LinearHeadTrainer(weight_decay=HEAD_WEIGHT_DECAY)),
        "backbone": tensor_digest(backbone.state_dict()),
    }
    key = store.key("toyworld-heads", spec)
    params = store.get_tensors("toyworld-heads", key)
    if params is None:
        model = toy_classifier(
            world, per_class=per_class, seed=seed, backbone=backbone, train=train
        )
        store.put_tensors(
            "toyworld-heads", key, {"weight": model[-1].weight, "bias": model[-1].bias}
        )
        return model
    head = nn.utils.skip_init(nn.Linear, params["weight"].shape[1], params["weight"].shape[0])
    with torch.no_grad():
        head.weight.copy_(params["weight"])
        head.bias.copy_(params["bias"])
    head.requires_grad_(False)
    return nn.Sequential(backbone, head).eval()
