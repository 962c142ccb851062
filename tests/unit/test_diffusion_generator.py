"""StableDiffusionGenerator on a real (tiny) diffusers pipeline, built in-process."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from failmodes.generators import (
    SCHEDULERS,
    BlankImageError,
    StableDiffusionGenerator,
    replacement_seed,
)
from failmodes.interfaces import GenerationRequest, ImageGenerator

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("open_clip")

from failmodes.testing.tiny import TinySafetyChecker, tiny_stable_diffusion  # noqa: E402


def request(name: str = "fox", value: str | None = "in a desert", count: int = 3, seed: int = 0):
    text = f"a photo of a {name}" + (f" {value}" if value else "")
    return GenerationRequest(0, name, value, text, count, seed)


FOX = request()
OWL = request("owl", "on a frozen lake", count=2, seed=1)


@pytest.fixture(scope="module")
def pipe():
    """The tiny pipeline, shared: the generator runs a new pipeline on its components."""
    return tiny_stable_diffusion(seed=0)


@pytest.fixture(scope="module")
def checked_pipe(pipe):
    """The same weights with a safety checker (that passes everything) and its feature extractor.

    Tests give the generator their own checker, which replaces this one.
    """
    components = tiny_stable_diffusion(seed=0, safety_checker=TinySafetyChecker(lambda im: False))
    parts = {
        **pipe.components,
        "feature_extractor": components.feature_extractor,
        "safety_checker": components.safety_checker,
    }
    return type(pipe)(**parts)


def make(model, **kwargs) -> StableDiffusionGenerator:
    settings = {"steps": 2, "device": "cpu", "progress": False, **kwargs}
    return StableDiffusionGenerator(model, **settings)


def arrays(images: list[Image.Image]) -> list[np.ndarray]:
    return [np.asarray(image) for image in images]


def same(a: list[Image.Image], b: list[Image.Image]) -> bool:
    """Bit-identical images."""
    return len(a) == len(b) and all(map(np.array_equal, arrays(a), arrays(b)))


def close(a: list[Image.Image], b: list[Image.Image]) -> bool:
    """The same images up to float rounding, which depends on the batch size in CPU kernels.

    A few pixel values may differ by one level; distinct images differ by tens of levels.
    """
    if len(a) != len(b):
        return False
    for x, y in zip(arrays(a), arrays(b), strict=True):
        diff = np.abs(x.astype(int) - y)
        if diff.max() > 1 or (diff > 0).mean() > 0.01:
            return False
    return True


@pytest.fixture(scope="module")
def fox_images(pipe) -> list[Image.Image]:
    """FOX's images, generated alone in one batch: the reference the other tests compare to."""
    return make(pipe).generate([FOX])[0]


def test_count_order_and_rgb(pipe, fox_images):
    gen = make(pipe, batch_size=2)
    assert isinstance(gen, ImageGenerator)
    empty = request("cat", count=0)
    out = gen.generate([FOX, empty, OWL])
    assert [len(images) for images in out] == [3, 0, 2]
    for image in out[0] + out[2]:
        assert isinstance(image, Image.Image)
        assert image.mode == "RGB" and image.size == (64, 64)
        assert np.asarray(image).std() > 1  # not a blank image
    assert close(out[0], fox_images)  # in order: image i is image i of FOX generated alone
    assert gen.blank_replaced_ == [0, 0, 0]
    assert gen.seeds_ == [
        [FOX.image_seed(i) for i in range(3)],
        [],
        [OWL.image_seed(0), OWL.image_seed(1)],
    ]


def test_same_image_whatever_the_batch(pipe, fox_images):
    # FOX alone in one batch, after OWL in batches of 2 (its images straddle two calls) ...
    mixed = make(pipe, batch_size=2).generate([OWL, FOX])
    assert close(mixed[1], fox_images)
    # ... one image per call, and with a smaller count: the first images are the same
    assert close(make(pipe, batch_size=1).generate([request(count=2)])[0], fox_images[:2])
    # and OWL's images do not depend on FOX's
    assert close(mixed[0], make(pipe).generate([OWL])[0])
    # the same run twice: bit for bit
    assert same(make(pipe, batch_size=2).generate([OWL, FOX])[1], mixed[1])


def test_stochastic_scheduler_is_per_image_too(pipe):
    gen = make(pipe, scheduler="euler_a")
    alone = gen.generate([FOX])[0]
    assert close(make(pipe, scheduler="euler_a", batch_size=2).generate([OWL, FOX])[1], alone)


def test_different_seeds_differ(pipe, fox_images):
    pixels = arrays(fox_images)
    assert not np.array_equal(pixels[0], pixels[1])  # images of a request differ
    other_seed = make(pipe).generate([request(seed=7)])[0]
    assert not any(map(np.array_equal, pixels, arrays(other_seed)))


def test_negative_prompt_is_applied(pipe, fox_images):
    gen = make(pipe, negative_prompt="blurry, low quality")
    images = gen.generate([FOX])[0]
    assert not any(map(np.array_equal, arrays(images), arrays(fox_images)))
    assert same(gen.generate([FOX])[0], images)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("ddim", "DDIMScheduler"),
        ("DPM++", "DPMSolverMultistepScheduler"),
        ("dpm++_karras", "DPMSolverMultistepScheduler"),
        ("Euler-A", "EulerAncestralDiscreteScheduler"),
    ],
)
def test_scheduler_names_are_applied(pipe, fox_images, name, cls):
    gen = make(pipe, scheduler=name)
    images = gen.generate([FOX])[0]
    assert type(gen.pipeline_.scheduler).__name__ == cls
    assert not any(map(np.array_equal, arrays(images), arrays(fox_images)))
    # made from the pipeline's configuration; the given pipeline keeps its own scheduler
    assert gen.pipeline_.scheduler.config.beta_schedule == "scaled_linear"
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"
    if name == "dpm++_karras":
        assert gen.pipeline_.scheduler.config.use_karras_sigmas


def test_scheduler_class_and_object(pipe):
    gen = make(pipe, scheduler=diffusers.DDIMScheduler)
    by_class = gen.generate([request(count=1)])[0]
    scheduler = diffusers.DDIMScheduler.from_config(pipe.scheduler.config)
    gen_obj = make(pipe, scheduler=scheduler)
    assert same(gen_obj.generate([request(count=1)])[0], by_class)
    assert gen_obj.pipeline_.scheduler is scheduler
    assert same(make(pipe, scheduler="ddim").generate([request(count=1)])[0], by_class)


def test_every_scheduler_name_makes_its_class(pipe):
    for name, (cls, _) in SCHEDULERS.items():
        gen = make(pipe, scheduler=name)
        assert type(gen._make_scheduler(pipe)).__name__ == cls


def test_height_width_and_batch_size(pipe):
    gen = make(pipe, height=32, width=48, batch_size=3)
    images = gen.generate([request(count=4)])[0]
    assert [image.size for image in images] == [(48, 32)] * 4


def test_attention_slicing_gives_the_same_images(fox_images):
    gen = make(tiny_stable_diffusion(seed=0), attention_slicing=True)  # it changes the UNet
    assert close(gen.generate([FOX])[0], fox_images)


def denylist(images: list[Image.Image]):
    """A safety rule that flags these images (up to float rounding) and no other."""
    return lambda image: any(close([image], [banned]) for banned in images)


def test_blank_images_are_regenerated(checked_pipe, fox_images, caplog):
    checker = TinySafetyChecker(blank=denylist([fox_images[1], fox_images[2]]))
    gen = make(checked_pipe, safety_checker=checker, batch_size=2)
    with caplog.at_level(logging.INFO, logger="failmodes"):
        owl, fox = gen.generate([OWL, FOX])
    assert gen.blank_replaced_ == [0, 2]
    assert checker.blanked_ == 2 and checker.seen_ == 5 + 2
    assert close(fox[:1], fox_images[:1])
    for i in (1, 2):
        assert not np.array_equal(np.asarray(fox[i]), np.asarray(fox_images[i]))
        assert np.asarray(fox[i]).std() > 1
        assert gen.seeds_[1][i] == replacement_seed(FOX, i, 1) != FOX.image_seed(i)
    assert gen.seeds_[1][0] == FOX.image_seed(0)
    assert "came out blank" in caplog.text
    # the replacements are deterministic: FOX generated alone gives the same images
    assert close(make(checked_pipe, safety_checker=checker).generate([FOX])[0], fox)


def test_unflagged_flat_images_are_regenerated(checked_pipe, fox_images):
    # a checker that blanks without returning flags leaves flat grey images
    checker = TinySafetyChecker(blank=denylist(fox_images[:1]), return_flags=False)
    gen = make(checked_pipe, safety_checker=checker)
    images = gen.generate([FOX])[0]
    assert gen.blank_replaced_ == [1] and checker.blanked_ == 1
    assert all(np.asarray(image).std() > 1 for image in images)
    assert close(images[1:], fox_images[1:])


def test_persistent_blank_raises_a_clear_error(checked_pipe):
    checker = TinySafetyChecker()  # flags every image
    gen = make(checked_pipe, safety_checker=checker, max_blank_retries=2)
    with pytest.raises(BlankImageError) as info:
        gen.generate([request(count=2)])
    err = info.value
    assert err.request == request(count=2) and err.index == 0
    assert err.seeds == [
        FOX.image_seed(0),
        replacement_seed(FOX, 0, 1),
        replacement_seed(FOX, 0, 2),
    ]
    message = str(err)
    for part in ("image 0", "'fox'", "'in a desert'", "'a photo of a fox in a desert'"):
        assert part in message
    assert "max_blank_retries" in message and "safety_checker=False" in message
    assert checker.seen_ == 2 * 3
    with pytest.raises(BlankImageError, match="0 replacement"):
        make(checked_pipe, safety_checker=checker, max_blank_retries=0).generate([FOX])


def test_safety_checker_kept_off_or_replaced(checked_pipe):
    own = checked_pipe.safety_checker
    seen = own.seen_
    make(checked_pipe).generate([request(count=2)])  # True keeps the pipeline's checker
    assert own.seen_ == seen + 2
    gen = make(checked_pipe, safety_checker=False)
    assert len(gen.generate([request(count=2)])[0]) == 2
    assert gen.pipeline_.safety_checker is None and own.seen_ == seen + 2
    assert checked_pipe.safety_checker is own  # the given pipeline is unchanged
    strict = TinySafetyChecker(blank=lambda image: True)
    gen = make(checked_pipe, safety_checker=strict, max_blank_retries=0)
    with pytest.raises(BlankImageError):
        gen.generate([request(count=2)])
    assert strict.seen_ == 2 and own.seen_ == seen + 2


def test_checker_module_needs_a_feature_extractor(pipe):
    gen = make(pipe, safety_checker=TinySafetyChecker())
    with pytest.raises(ValueError, match="feature_extractor"):
        gen.generate([request(count=1)])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 2.5}, ValueError, "steps"),
        ({"guidance_scale": -1.0}, ValueError, "guidance_scale"),
        ({"guidance_scale": float("nan")}, ValueError, "guidance_scale"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"height": 60}, ValueError, "height.*multiple of 8"),
        ({"width": 0}, ValueError, "width"),
        ({"max_blank_retries": -1}, ValueError, "max_blank_retries"),
        ({"scheduler": "nope"}, ValueError, r"unknown scheduler 'nope'.*pndm, ddim"),
        ({"scheduler": 3}, TypeError, "scheduler"),
        ({"negative_prompt": ["a"]}, TypeError, "negative_prompt"),
        ({"safety_checker": "yes"}, TypeError, "safety_checker"),
    ],
)
def test_invalid_settings_name_the_argument(pipe, kwargs, error, match):
    gen = make(pipe, **kwargs)  # constructors only store
    with pytest.raises(error, match=match):
        gen.generate([request(count=1)])
    assert not hasattr(gen, "pipeline_")  # checked before anything is loaded


def test_invalid_model_and_requests(pipe):
    with pytest.raises(TypeError, match="model"):
        make(3).generate([request(count=1)])
    gen = make(pipe)
    with pytest.raises(TypeError, match="list"):
        gen.generate(FOX)
    with pytest.raises(TypeError, match="GenerationRequest"):
        gen.generate(["a photo of a fox"])
    with pytest.raises(ValueError, match="count"):
        gen.generate([request(count=-1)])
    assert not hasattr(gen, "pipeline_")


def test_lazy_loading_repr_and_empty_runs(pipe):
    gen = StableDiffusionGenerator(scheduler="dpm++", dtype=torch.float16)  # loads nothing
    assert gen.generate([]) == [] and gen.generate([request(count=0)]) == [[]]
    assert not hasattr(gen, "pipeline_")
    text = repr(gen)
    assert text.startswith("StableDiffusionGenerator(model='stable-diffusion-v1-5/")
    for part in ("steps=50", "guidance_scale=7.5", "scheduler='dpm++'", "dtype=torch.float16"):
        assert part in text
    assert "model=<StableDiffusionPipeline>" in repr(make(pipe))
    gen = make(pipe)
    assert gen.load() is gen.load() is gen.pipeline_
    assert gen.device_ == torch.device("cpu")


def test_model_by_folder_name(pipe, fox_images, tmp_path):
    pipe.save_pretrained(tmp_path)
    gen = make(str(tmp_path), safety_checker=False, load_kwargs={"local_files_only": True})
    assert not hasattr(gen, "pipeline_")
    images = gen.generate([FOX])[0]
    assert close(images, fox_images)
    assert gen.pipeline_.dtype == torch.float32  # float32 on the CPU
    assert gen.pipeline_.safety_checker is None
    loaded = make(str(tmp_path), dtype=torch.bfloat16).load()
    assert loaded.unet.dtype == loaded.text_encoder.dtype == torch.bfloat16


def test_progress_bar(pipe, capsys):
    make(pipe).generate([request(count=1)], progress=True)
    assert "generating" in capsys.readouterr().err


def test_tiny_pipeline_is_seeded_and_leaves_the_global_rng(pipe):
    state = torch.random.get_rng_state()
    a, b = tiny_stable_diffusion(seed=1), tiny_stable_diffusion(seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    for name in ("unet", "vae", "text_encoder"):
        weights = [getattr(p, name).state_dict() for p in (a, b, pipe)]
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
        assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    assert isinstance(a, diffusers.StableDiffusionPipeline) and a.tokenizer.model_max_length == 77


def test_without_diffusers_the_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # as if not installed
    gen = StableDiffusionGenerator("some/model", progress=False)
    with pytest.raises(ImportError, match=r'pip install "failmodes\[diffusion\]"'):
        gen.generate([request(count=1)])
