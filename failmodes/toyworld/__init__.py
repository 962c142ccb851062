"""ToyWorld: the embedded world that runs the whole method on a laptop CPU, offline."""

from failmodes.toyworld.demo import DEMO_LIMITS, DEMO_SETTINGS, demo_components, run_demo
from failmodes.toyworld.editor import ToyWorldEditor
from failmodes.toyworld.generator import ToyWorldGenerator
from failmodes.toyworld.model import HEAD_WEIGHT_DECAY, ToyBackbone, load_backbone, toy_classifier
from failmodes.toyworld.toyclip import register_toyclip, toyclip_captioner, toyclip_weights
from failmodes.toyworld.world import BACKGROUNDS, COLORS, SHAPES, ToyDataset, ToyWorld, render
from failmodes.toyworld.zoo import (
    ZOO,
    ToyMixer,
    ZooModel,
    ZooSpec,
    pretrain_backbone,
    zoo_backbone,
    zoo_models,
)

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "DEMO_LIMITS",
    "DEMO_SETTINGS",
    "HEAD_WEIGHT_DECAY",
    "SHAPES",
    "ZOO",
    "ToyBackbone",
    "ToyDataset",
    "ToyMixer",
    "ToyWorld",
    "ToyWorldEditor",
    "ToyWorldGenerator",
    "ZooModel",
    "ZooSpec",
    "demo_components",
    "load_backbone",
    "pretrain_backbone",
    "register_toyclip",
    "render",
    "run_demo",
    "toy_classifier",
    "toyclip_captioner",
    "toyclip_weights",
    "zoo_backbone",
    "zoo_models",
]
