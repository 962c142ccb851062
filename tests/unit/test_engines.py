"""Every data-mapping step hands its jobs to the engine in use, with a cache or without one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from failmodes import Debugger, GenerationRequest, TorchExtractor
from failmodes.engines import Engine, LocalEngine, using
from failmodes.steps import extract_features, generate


class CountingEngine(Engine):
    """An engine of the test's own: runs jobs here, and keeps what each map returned."""

    def __init__(self) -> None:
        self.maps: list[list] = []

    def map(self, work, jobs):
        results = [work(job) for job in jobs]
        self.maps.append(results)
        return results


def _extractor():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    return TorchExtractor(model, batch_size=4)


def _noise(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))


def _generator():
    from failmodes import ImageGenerator

    class Noise(ImageGenerator):  # a generator of the test's own: noise from each image's seed
        def generate(self, requests, *, progress=None):
            return [[_noise(r.image_seed(i)) for i in range(r.count)] for r in requests]

    return Noise()


def test_extraction_without_a_cache_is_cut_into_jobs_for_the_engine():
    data = [(torch.rand(3, 2, 2), i % 2) for i in range(25)]
    local = extract_features(_extractor(), data, cache=None, checkpoint_every=10)
    with using(CountingEngine()) as engine:
        counted = extract_features(_extractor(), data, cache=None, checkpoint_every=10)
    assert [len(results) for results in engine.maps] == [3]  # 10 + 10 + 5 images
    assert [len(part) for part in engine.maps[0]] == [10, 10, 5]
    assert torch.equal(counted.features, local.features)


def test_generation_without_a_cache_is_cut_into_jobs_for_the_engine():
    requests = [
        GenerationRequest(c, name, "at sea", f"a photo of a {name} at sea", 40, seed=c)
        for c, name in enumerate(["fox", "owl", "cat"])
    ]
    with using(LocalEngine()):
        local = generate(_generator(), requests, class_names=["fox", "owl", "cat"])
    with using(CountingEngine()) as engine:
        counted = generate(_generator(), requests, class_names=["fox", "owl", "cat"])
    assert len(engine.maps) == 1 and len(engine.maps[0]) == 2  # groups of about 64 images
    assert [np.asarray(im).tolist() for im in counted.images] == [
        np.asarray(im).tolist() for im in local.images
    ]


def test_a_run_without_a_cache_runs_extraction_captioning_and_generation_on_its_engine():
    pytest.importorskip("open_clip")
    from failmodes.toyworld import ToyWorld, demo_components

    world = ToyWorld(seed=3)
    train, debug, test = world.train(10), world.debug(300), world.test(100)
    settings = demo_components(world, cache=False, train=train, k=1, lam=0.5, images_per_mode=3)
    engine = CountingEngine()
    Debugger(**settings, engine=engine).run(train, debug, test, seed=0)
    kinds = {_kind(results[0]) for results in engine.maps if results}
    assert {"features", "captions", "images"} <= kinds


def _kind(result) -> str:
    if isinstance(result, torch.Tensor):
        return "features"
    if isinstance(result, list) and result and isinstance(result[0], list):
        return "images"
    if isinstance(result, list) and result and hasattr(result[0], "value"):
        return "captions"
    return type(result).__name__
