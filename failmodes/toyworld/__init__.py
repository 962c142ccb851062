"""ToyWorld: the embedded world that runs the whole method on a laptop CPU, offline."""

from failmodes.toyworld.world import BACKGROUNDS, COLORS, SHAPES, ToyDataset, ToyWorld, render

__all__ = ["BACKGROUNDS", "COLORS", "SHAPES", "ToyDataset", "ToyWorld", "render"]
