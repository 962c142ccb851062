"""Editing generators: requests that carry their sources, ToyWorld's editor, diffusion editors."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from failmodes import Debugger, EditingGenerator, GenerationRequest
from failmodes.steps import generate, make_requests, source_pool
from failmodes.testing import check_generator
from failmodes.toyworld import ToyWorld, ToyWorldEditor
from failmodes.toyworld.world import object_mask

FOX = GenerationRequest(0, "circle", "on snow", "a photo of a circle on snow", 3, 7)


def test_a_request_without_sources_has_the_id_and_seeds_it_had_before_sources():
    fields = {
        "class_index": 0,
        "class_name": "circle",
        "value": "on snow",
        "prompt": "a photo of a circle on snow",
        "count": 3,
        "seed": 7,
        "attribute": "background",
    }  # a request's fields before sources existed, hashed as job_id always hashed them
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    assert FOX.job_id == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert FOX.identity() == fields


def test_an_editing_requests_id_depends_on_its_sources_and_its_seeds_do_not():
    a = dataclasses.replace(FOX, sources=(1, 2, 3))
    b = dataclasses.replace(FOX, sources=(1, 2, 4))
    assert len({FOX.job_id, a.job_id, b.job_id}) == 3
    assert [a.image_seed(i) for i in range(3)] == [FOX.image_seed(i) for i in range(3)]
    assert dataclasses.replace(a, sources=[1, 2, 3]) == a  # a manifest's list reads back


def test_sources_are_drawn_per_job_so_a_smaller_job_has_the_first_ones():
    pool = {"circle": [10, 11, 12, 13]}
    big = make_requests({("circle", "on snow"): 6}, class_names=["circle"], sources=pool)[0]
    small = make_requests({("circle", "on snow"): 2}, class_names=["circle"], sources=pool)[0]
    assert big.sources[:2] == small.sources and set(big.sources) <= set(pool["circle"])
    with pytest.raises(ValueError, match="no source image of class 'circle'"):
        make_requests({("circle", "on snow"): 1}, class_names=["circle"], sources={})
    assert source_pool([0, 1, 0], ["circle", "square"], rows=[1, 2]) == {
        "square": [1],
        "circle": [2],
    }


@pytest.mark.parametrize(("attribute", "value"), [("background", "on snow"), ("color", "blue")])
def test_the_toyworld_editor_keeps_what_the_source_shows_exactly(attribute, value):
    world = ToyWorld(seed=0, attribute=attribute)
    train = world.train(4)
    sources = [train[i][0] for i in range(4)]  # four circles
    request = GenerationRequest(
        0, "circle", value, f"a photo of a {value} circle", 4, 0, attribute, sources=(0, 1, 2, 3)
    )
    edited = ToyWorldEditor(world).edit([request], [sources])[0]
    for source, image in zip(sources, edited, strict=True):
        scene = source.info["toyworld"]
        mask = object_mask(scene["shape"], 32, scene["geometry"])
        kept = mask == 1 if attribute == "background" else mask == 0  # the object / its ground
        before, after = np.asarray(source), np.asarray(image)
        assert kept.any() and np.array_equal(before[kept], after[kept])
        assert not np.array_equal(before[~kept], after[~kept])  # the rest is repainted
        assert image.info["toyworld"][attribute] == (
            "snow" if attribute == "background" else "blue"
        )
    again = ToyWorldEditor(world).edit([request], [sources])[0]
    assert [np.asarray(a).tolist() for a in again] == [np.asarray(b).tolist() for b in edited]


def test_the_toyworld_editor_passes_the_generator_check_and_refuses_what_it_cannot_edit():
    world = ToyWorld(seed=0)
    train = world.train(2)
    sources = [train[0][0], train[1][0]]  # circles
    check_generator(
        ToyWorldEditor(world),
        [dataclasses.replace(FOX, count=2, sources=(0, 1))],
        sources=sources,
    )
    editor = ToyWorldEditor(world)
    with pytest.raises(TypeError, match="edits real images"):
        editor.generate([FOX])
    from PIL import Image

    with pytest.raises(ValueError, match="ToyWorld images that know their scene"):
        editor.edit([dataclasses.replace(FOX, count=1)], [[Image.new("RGB", (32, 32))]])


def test_an_editor_without_sources_is_refused_before_any_work():
    from failmodes.toyworld import demo_components

    world = ToyWorld(seed=0)
    settings = demo_components(world, cache=False, train=world.train(2))
    with pytest.raises(ValueError, match="edits real images, but sources is None"):
        Debugger(**{**settings, "generator": ToyWorldEditor(world), "sources": None})
    with pytest.raises(ValueError, match="has none sources for count=3"):
        generate(ToyWorldEditor(world), [FOX], class_names=world.class_names, sources=[])
    with pytest.raises(ValueError, match="give generate\\(..., sources=data\\)"):
        generate(
            ToyWorldEditor(world),
            [dataclasses.replace(FOX, sources=(0, 0, 0))],
            class_names=world.class_names,
        )


@pytest.fixture(scope="module")
def world_run():
    pytest.importorskip("open_clip")
    world = ToyWorld(seed=5)
    return world, world.train(20), world.debug(300), world.test(100)


def _run(world_run, generator, **changes):
    from failmodes.toyworld import demo_components

    world, train, debug, test = world_run
    settings = demo_components(world, cache=False, train=train, k=1, lam=1.0, images_per_mode=2)
    dbg = Debugger(**{**settings, "generator": generator, **changes})
    return dbg.run(train, debug, test, seed=0, guard=False)


def test_a_run_with_the_toyworld_editor_edits_training_images_for_every_generated_row(world_run):
    world, train, _, _ = world_run
    result = _run(world_run, ToyWorldEditor(world))
    pool = {(i, int(y)) for i, y in enumerate(train.labels)}
    for made in (result.generated, *result.baseline_generated.values()):
        assert len(made) > 0
        for request in made.requests:
            assert request.sources is not None and len(request.sources) == request.count
            assert {(i, request.class_index) for i in request.sources} <= pool
    frame = result.generated.to_frame()
    assert (frame["class"] == [world.class_names[y] for y in result.generated.labels]).all()


@pytest.mark.parametrize("kind", ["img2img", "instruct-pix2pix"])
def test_tiny_diffusion_editors_run_end_to_end_through_the_debugger(world_run, kind):
    pytest.importorskip("diffusers")
    from failmodes.generators import InstructPix2PixGenerator, StableDiffusionImg2ImgGenerator
    from failmodes.testing.tiny import tiny_img2img, tiny_instruct_pix2pix

    if kind == "img2img":
        editor = StableDiffusionImg2ImgGenerator(tiny_img2img(), steps=4, device="cpu")
    else:
        editor = InstructPix2PixGenerator(tiny_instruct_pix2pix(), steps=2, device="cpu")
    assert isinstance(editor, EditingGenerator)
    result = _run(world_run, editor, sources="debug_seed")
    made = result.generated
    assert len(made) > 0 and made.images[0].size == (32, 32)
    seed_part = set(result.failures.seed.tolist())
    assert all(set(r.sources) <= seed_part for r in made.requests)  # never heldout or validation
    assert np.isfinite(result.accuracy["failmodes"]["debug_heldout"])


@pytest.mark.parametrize("count", [-2, 2.5, True, "3", None])
def test_a_request_count_must_be_an_integer_at_least_zero(count):
    with pytest.raises(ValueError, match=r"count must be an integer >= 0, got .* in the request"):
        dataclasses.replace(FOX, count=count)
    with pytest.raises(ValueError, match="request for class 'circle', value 'on snow'"):
        dataclasses.replace(FOX, count=count)


def test_a_request_takes_integral_counts_as_ints():
    assert dataclasses.replace(FOX, count=0).count == 0
    request = dataclasses.replace(FOX, count=np.int64(3))
    assert type(request.count) is int and request == FOX and request.job_id == FOX.job_id


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda world: ToyWorldEditor("x"), "world must be a ToyWorld, got str"),
        (lambda world: ToyWorldEditor(world, style="bogus"), "style must be one of"),
    ],
)
def test_an_editor_that_cannot_edit_is_refused_before_any_work(make, says):
    from failmodes import SettingError
    from failmodes.toyworld import ToyWorldGenerator, demo_components

    world = ToyWorld(seed=0)
    editor = make(world)
    with pytest.raises(SettingError, match=says):
        editor.check_params()
    with pytest.raises(SettingError, match=says):
        editor.edit([dataclasses.replace(FOX, count=0)], [[]])
    settings = demo_components(world, cache=False, train=world.train(2))
    with pytest.raises(SettingError, match=says):  # when the Debugger is made
        Debugger(**{**settings, "generator": editor})
    renderer = ToyWorldGenerator(editor.world, style=editor.style)  # the renderer checks alike
    with pytest.raises(SettingError, match=says):
        renderer.check_params()
    ToyWorldEditor(world).check_params()
    ToyWorldGenerator(world, style="world").check_params()
