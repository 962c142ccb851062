"""The ToyWorld demo: every component of the method, wired for one world, on a laptop CPU."""

from __future__ import annotations

from typing import Any

from failmodes.toyworld.world import ToyWorld

__all__ = ["DEMO_SETTINGS", "demo_components", "run_demo"]

# the demo's sizes and search grids (chosen on the validation part of the debug set)
DEMO_SETTINGS: dict[str, Any] = {
    "train_per_class": 50,
    "debug_size": 10_000,
    "test_size": 5_000,
    "k": [3, 5],
    "lam": [0.5, 1.0, 2.0],
    "images_per_mode": [20, 40],
}


def demo_components(
    world: ToyWorld, *, seed: int = 0, progress: bool | None = False, **overrides: Any
) -> dict[str, Any]:
    """The keyword arguments of a :class:`failmodes.Debugger` for ``world``.

    The classifier is ToyWorld's pretrained backbone with a head fitted on the world's biased
    training split; proposals are the values uncommon for each class; captions come from
    ToyCLIP through :class:`failmodes.CLIPCaptioner`; images from the world's renderer.

    Args:
        world: the world to debug.
        seed: seed of the classifier's head fit.
        progress: show progress bars.
        **overrides: replace any component or setting (``generator=MyGenerator()``).
    """
    from failmodes.extractors.torch import TorchExtractor
    from failmodes.heads.linear import LinearHeadTrainer
    from failmodes.proposers.static import StaticProposer
    from failmodes.toyworld.clip import toyclip_captioner
    from failmodes.toyworld.generator import ToyWorldGenerator
    from failmodes.toyworld.model import HEAD_WEIGHT_DECAY, toy_classifier

    model = toy_classifier(world, per_class=DEMO_SETTINGS["train_per_class"], seed=seed)
    components = {
        "extractor": TorchExtractor(model, batch_size=500, progress=progress),
        "proposer": StaticProposer(world.uncommon_values()),
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
    progress: bool | None = False,
):
    """Run the whole method on one world; returns the :class:`failmodes.RunResult`."""
    from failmodes.debugger import Debugger

    world = ToyWorld(seed=world_seed, attribute=attribute, strength=strength)
    train = world.train(per_class=DEMO_SETTINGS["train_per_class"])
    debug = world.debug(DEMO_SETTINGS["debug_size"])
    test = world.test(DEMO_SETTINGS["test_size"])
    dbg = Debugger(**demo_components(world, seed=seed, progress=progress))
    result = dbg.run(train, debug, test, seed=seed)
    result.config.update(
        world_seed=world_seed,
        strength=strength,
        **{k: DEMO_SETTINGS[k] for k in ("train_per_class", "debug_size", "test_size")},
    )
    return result
