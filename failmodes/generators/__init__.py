"""Image generators: structured requests -> images, and editors: real images -> edited ones.

[`StableDiffusionGenerator`][StableDiffusionGenerator] (diffusers) is the paper's generator;
[`StableDiffusionImg2ImgGenerator`][StableDiffusionImg2ImgGenerator] and
[`InstructPix2PixGenerator`][InstructPix2PixGenerator] edit real images into a failure mode.
They need the ``diffusion`` extra, and diffusers is imported only when a pipeline is loaded, so
importing this package needs only the base dependencies. ToyWorld's renderer and editor are
[`failmodes.toyworld.ToyWorldGenerator`][failmodes.toyworld.ToyWorldGenerator] and
[`failmodes.toyworld.ToyWorldEditor`][failmodes.toyworld.ToyWorldEditor].
"""

from __future__ import annotations

from failmodes.generators.diffusion import (
    SCHEDULERS,
    BlankImageError,
    StableDiffusionGenerator,
    replacement_seed,
)
from failmodes.generators.editing import InstructPix2PixGenerator, StableDiffusionImg2ImgGenerator

__all__ = [
    "SCHEDULERS",
    "BlankImageError",
    "InstructPix2PixGenerator",
    "StableDiffusionGenerator",
    "StableDiffusionImg2ImgGenerator",
    "replacement_seed",
]
