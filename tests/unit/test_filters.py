"""CaptionFilter and the Debugger's drop-and-replace of generated images (ToyWorld, ToyCLIP)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from failmodes import Debugger, GenerationRequest, StaticProposer, TorchExtractor
from failmodes.filters import CaptionFilter
from failmodes.interfaces import ImageGenerator
from failmodes.steps import generate
from failmodes.toyworld import ToyWorld, ToyWorldGenerator, toy_classifier

pytest.importorskip("open_clip")
from failmodes.toyworld import toyclip_captioner  # noqa: E402

WORLD = ToyWorld(seed=0)


class SwapsValues(ImageGenerator):
    """Draws the wrong value for images whose seed is even; remembers what it drew."""

    def __init__(self, world: ToyWorld):
        self.inner = ToyWorldGenerator(world)
        self.world = world
        self.drawn: dict[int, str | None] = {}  # id(image) -> value actually drawn

    def generate(self, requests, *, progress=None):
        out = []
        for request in requests:
            right = self.inner.generate([request])[0]
            wrong_value = next(v for v in self.world.values if v != request.value)
            wrong = self.inner.generate([replace(request, value=wrong_value)])[0]
            images = []
            for i in range(request.count):
                swap = request.value is not None and request.image_seed(i) % 2 == 0
                image = wrong[i] if swap else right[i]
                self.drawn[id(image)] = wrong_value if swap else request.value
                images.append(image)
            out.append(images)
        return out


def _requests(n_values: int = 2, count: int = 8) -> list[GenerationRequest]:
    name = WORLD.class_names[0]
    values = WORLD.uncommon_values()[name][:n_values]
    return [
        GenerationRequest(0, name, v, f"a photo of a {name} {v}", count, seed=i)
        for i, v in enumerate(values)
    ]


def _debugger(generator, **kwargs) -> Debugger:
    return Debugger(
        extractor=TorchExtractor(toy_classifier(WORLD, per_class=10)),
        proposer=StaticProposer(WORLD.uncommon_values()),
        generator=generator,
        class_names=WORLD.class_names,
        **kwargs,
    )


def test_caption_filter_finds_the_wrong_values():
    generator = SwapsValues(WORLD)
    requests = _requests()
    outputs = generator.generate(requests)
    images = [im for ims in outputs for im in ims]
    owners = [r for r in requests for _ in range(r.count)]
    verdicts = CaptionFilter(toyclip_captioner(), check_class=False).check(
        images, owners, class_names=WORLD.class_names, candidates=WORLD.uncommon_values()
    )
    wrong = np.array(
        [generator.drawn[id(im)] != r.value for im, r in zip(images, owners, strict=True)]
    )
    dropped = np.array([v == "value" for v in verdicts])
    assert wrong.sum() >= 4  # the test has something to find
    # ToyCLIP reads ToyWorld's values well: most wrong images are caught, few right ones lost
    assert dropped[wrong].mean() >= 0.8
    assert dropped[~wrong].mean() <= 0.2


def test_debugger_drops_and_replaces_rejected_images():
    generator = SwapsValues(WORLD)
    image_filter = CaptionFilter(toyclip_captioner(), class_top_k=3)
    dbg = _debugger(generator, image_filter=image_filter, filter_rounds=3)
    requests = _requests()
    generated = dbg.generate(requests, candidates=WORLD.uncommon_values())
    report = generated.filter_report
    assert list(report["requested"]) == [r.count for r in requests]
    assert report["dropped_value"].sum() >= 4
    assert generated.n_filtered_out == int(report[["dropped_class", "dropped_value"]].sum().sum())
    # replacements filled the requests back up, and what is kept was drawn as requested
    assert (report["kept"] >= report["requested"] - 1).all()
    drawn = [generator.drawn[id(im)] for im in generated.images]
    right = np.mean([d == v for d, v in zip(drawn, generated.values, strict=True)])
    assert right >= 0.9
    assert len(generated) == report["kept"].sum()


def test_without_rounds_short_requests_keep_fewer_images():
    generator = SwapsValues(WORLD)
    dbg = _debugger(
        generator,
        image_filter=CaptionFilter(toyclip_captioner(), check_class=False),
        filter_rounds=0,
    )
    generated = dbg.generate(_requests(), candidates=WORLD.uncommon_values())
    report = generated.filter_report
    assert (report["kept"] < report["requested"]).any()
    assert (report["kept"] + report["dropped_value"] == report["requested"]).all()


def test_filter_errors_name_the_problem():
    images = ToyWorldGenerator(WORLD).generate(_requests(1, 2))[0]
    owners = _requests(1, 2) * 2

    class NoClassify(type(toyclip_captioner())):
        classify = None

    with pytest.raises(TypeError, match="classify"):
        CaptionFilter(NoClassify()).check(
            images, owners[:2], class_names=WORLD.class_names, candidates={}
        )
    with pytest.raises(ValueError, match="same length"):
        CaptionFilter(toyclip_captioner()).check(
            images, owners[:1], class_names=WORLD.class_names, candidates={}
        )
    with pytest.raises(ValueError, match="class_top_k"):
        CaptionFilter(toyclip_captioner(), class_top_k=0).check(
            images, owners[:2], class_names=WORLD.class_names, candidates={}
        )
    with pytest.raises(ValueError, match="filter_rounds"):
        _debugger(ToyWorldGenerator(WORLD), filter_rounds=-1)
    with pytest.raises(ValueError, match="filter_rounds"):
        generate(
            ToyWorldGenerator(WORLD),
            _requests(1, 2),
            class_names=WORLD.class_names,
            image_filter=CaptionFilter(toyclip_captioner()),
            filter_rounds=-1,
        )
