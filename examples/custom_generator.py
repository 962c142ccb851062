"""Swap one component: a retrieval "generator" that returns real images instead of renders.

Any object with ``generate(requests) -> [[image, ...] per request]`` fits: a text-to-image
model, an image editor, or, as here, retrieval from a pool of labelled images.

    python examples/custom_generator.py
"""

import numpy as np

from failmodes import Debugger, ImageGenerator
from failmodes.toyworld import ToyWorld, demo_components


class RetrievalGenerator(ImageGenerator):
    """Serves each (class, value) request with images of that class and value from a pool."""

    def __init__(self, pool):
        self.pool = pool

    def generate(self, requests, *, progress=None):
        out = []
        for req in requests:
            match = [
                i
                for i, (y, g) in enumerate(zip(self.pool.labels, self.pool.groups, strict=True))
                if y == req.class_index and (req.value is None or g == req.value)
            ]
            rng = np.random.default_rng(req.seed)  # the request's seed: reruns give the same
            out.append([self.pool[int(i)][0] for i in rng.choice(match, size=req.count)])
        return out


world = ToyWorld(seed=0)
pool = world.sample(np.arange(5000) % 10, biased=False, seed=123)  # a balanced image pool
dbg = Debugger(**demo_components(world), generator=RetrievalGenerator(pool))
result = dbg.run(world.train(), world.debug(), world.test(), seed=0)
print(result.to_frame().round(3))
