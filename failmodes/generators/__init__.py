"""Image generators: structured requests -> images.

[`StableDiffusionGenerator`][StableDiffusionGenerator] (diffusers) is the paper's generator; it
needs the ``diffusion`` extra, and diffusers is imported only when a pipeline is loaded, so
importing this package needs only the base dependencies. ToyWorld's renderer is
[`failmodes.toyworld.ToyWorldGenerator`][failmodes.toyworld.ToyWorldGenerator].
"""

from __future__ import annotations

from failmodes.generators.diffusion import (
    SCHEDULERS,
    BlankImageError,
    StableDiffusionGenerator,
    replacement_seed,
)

__all__ = ["SCHEDULERS", "BlankImageError", "StableDiffusionGenerator", "replacement_seed"]
