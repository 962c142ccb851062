"""Swap one component: a retrieval "generator" that returns real images instead of renders.

Any object with ``generate(requests) -> [[image, ...] per request]`` fits: a text-to-image
model, an image editor, or, as here, retrieval from a pool of labelled images. The guide
docs/guides/custom-generator.md walks through the contract and checks.

    python examples/custom_generator.py
"""

import numpy as np

from failmodes import Debugger, GenerationRequest, ImageGenerator
from failmodes.cache import data_fingerprint
from failmodes.testing import check_generator
from failmodes.toyworld import ToyWorld, demo_components


class RetrievalGenerator(ImageGenerator):
    """Serves each (class, value) request with images of that class and value from a pool."""

    def __init__(self, pool):
        self.pool = pool

    def cache_key(self):
        # what the images depend on: the pool's content (and this code's version)
        return {"retrieval": 1, "pool": data_fingerprint(self.pool)}

    def generate(self, requests, *, progress=None):
        out = []
        for req in requests:
            match = [
                i
                for i, (y, g) in enumerate(zip(self.pool.labels, self.pool.groups, strict=True))
                if y == req.class_index and (req.value is None or g == req.value)
            ]
            # image i depends on its own seed alone, so reruns and longer requests agree
            picks = [
                match[np.random.default_rng(req.image_seed(i)).integers(len(match))]
                for i in range(req.count)
            ]
            out.append([self.pool[int(i)][0] for i in picks])
        return out


if __name__ == "__main__":
    world = ToyWorld(seed=0)
    pool = world.sample(np.arange(5000) % 10, biased=False, seed=123)  # a balanced image pool
    generator = RetrievalGenerator(pool)
    # the interface's contract, as failmodes.testing checks it, on requests the pool can serve
    check_generator(
        generator,
        requests=[
            GenerationRequest(0, "circle", "on grass", "a photo of a circle on grass", 3, 0),
            GenerationRequest(3, "star", None, "a photo of a star", 2, 1),
        ],
    )
    dbg = Debugger(**demo_components(world, generator=generator))
    result = dbg.run(world.train(), world.debug(), world.test(), seed=0)
    print(result.to_frame().round(3).to_string())
