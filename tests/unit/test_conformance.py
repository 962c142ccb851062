"""Every backend passes failmodes.testing's checks, and each check catches a broken component."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from PIL import Image
from torch import nn

from failmodes import (
    Caption,
    CLIPCaptioner,
    GenerationRequest,
    LinearHeadTrainer,
    SettingError,
    StaticProposer,
    TorchExtractor,
)
from failmodes.interfaces import (
    BackgroundProposer,
    EditingGenerator,
    FailureCaptioner,
    HeadTrainer,
    ImageGenerator,
)
from failmodes.testing import (
    check_captioner,
    check_extractor,
    check_generator,
    check_head_trainer,
    check_proposer,
    sample_images,
)
from failmodes.toyworld import ToyWorld, ToyWorldGenerator

# -- every backend passes ------------------------------------------------------------------------


def test_torch_extractor_conforms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 16), nn.ReLU(), nn.Linear(16, 4))
    check_extractor(TorchExtractor(model))


def test_timm_extractor_conforms():
    timm = pytest.importorskip("timm")
    from failmodes import TimmExtractor

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3)
    check_extractor(TimmExtractor(model))


def test_openclip_extractor_conforms(tiny_clip):
    from failmodes import OpenCLIPExtractor

    model, preprocess, tokenizer = tiny_clip
    extractor = OpenCLIPExtractor(
        model,
        tokenizer=tokenizer,
        preprocess=preprocess,
        class_names=["fox", "wallet"],
        templates=["a photo of a {}."],
    )
    check_extractor(extractor)


def test_static_proposer_conforms():
    check_proposer(
        StaticProposer({"fox": ["in a desert", "desert", "on snow"], "wallet": ["on a beach"]})
    )


def test_clip_captioner_conforms(tiny_clip):
    model, preprocess, tokenizer = tiny_clip
    check_captioner(CLIPCaptioner(model, tokenizer=tokenizer, preprocess=preprocess))


def test_toyclip_captioner_conforms():
    from failmodes.toyworld import toyclip_captioner

    world = ToyWorld(seed=0)
    sample = world.sample([0, 1, 2, 3], seed=1, biased=False)
    names = [world.class_names[label] for label in sample.labels]
    candidates = {name: world.uncommon_values()[name][:3] for name in set(names)}
    check_captioner(
        toyclip_captioner(), list(sample.images), image_classes=names, candidates=candidates
    )


def test_toyworld_generator_conforms():
    world = ToyWorld(seed=0)
    name = world.class_names[0]
    value = world.uncommon_values()[name][0]
    requests = [
        GenerationRequest(0, name, value, f"a photo of a {name} {value}", 3, 0),
        GenerationRequest(0, name, None, f"a photo of a {name}", 1, 5),
    ]
    check_generator(ToyWorldGenerator(world), requests)


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_linear_head_trainer_conforms(solver):
    check_head_trainer(LinearHeadTrainer(solver=solver, weight_decay=1e-3, epochs=300))


# -- each check fails on a broken component ------------------------------------------------------


class _ShortGenerator(ImageGenerator):
    """Returns one image too few for every request."""

    def generate(self, requests, *, progress=None):
        return [[_noise(i) for i in range(max(r.count - 1, 0))] for r in requests]


class _BlankGenerator(ImageGenerator):
    def generate(self, requests, *, progress=None):
        return [[Image.new("RGB", (16, 16)) for _ in range(r.count)] for r in requests]


class _CountSeededGenerator(ImageGenerator):
    """Seeds each image from the request's seed and count: breaks the prefix property."""

    def generate(self, requests, *, progress=None):
        return [[_noise(r.seed * 100 + r.count * 10 + i) for i in range(r.count)] for r in requests]


def _noise(seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (16, 16, 3), generator=g, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy(), "RGB")


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        (_ShortGenerator(), "asked for 2 images"),
        (_BlankGenerator(), "blank"),
        (_CountSeededGenerator(), "image_seed"),
    ],
)
def test_check_generator_catches(generator, message):
    with pytest.raises(AssertionError, match=message):
        check_generator(generator)


class _BackgroundsGenerator(ImageGenerator):
    """A README-style generator: its own shapes on its own backgrounds, looked up by name."""

    attribute = "background"
    shapes = {"circle": 40, "square": 120}
    backgrounds = {"on grass": (40, 160, 40), "on sand": (220, 200, 140), None: (128, 128, 128)}

    def generate(self, requests, *, progress=None):
        return [[self._image(r, i) for i in range(r.count)] for r in requests]

    def _image(self, request, i):
        shade, colour = self.shapes[request.class_name], self.backgrounds[request.value]
        image = _noise(request.image_seed(i))
        image.paste(Image.new("RGB", (8, 8), colour), (0, 0))
        image.paste(Image.new("RGB", (4, 4), (shade, shade, shade)), (2, 2))
        return image


def test_check_generator_passes_a_generator_given_requests_it_serves():
    check_generator(
        _BackgroundsGenerator(),
        [
            GenerationRequest(0, "circle", "on sand", "a photo of a circle on sand", 2, 0),
            GenerationRequest(1, "square", None, "a photo of a square", 1, 1),
        ],
    )


def test_check_generator_names_the_default_request_a_generator_cannot_serve():
    with pytest.raises(AssertionError) as caught:
        check_generator(_BackgroundsGenerator())
    message = str(caught.value)
    assert "_BackgroundsGenerator" in message and "KeyError" in message
    assert "class 'fox', value 'in a desert', prompt 'a photo of a fox in a desert'" in message
    assert "check_generator(generator, requests=[GenerationRequest(" in message
    assert '2, 0, "background")' in message  # the attribute the generator declares


def test_check_generator_names_the_given_request_a_generator_cannot_serve():
    requests = [
        GenerationRequest(0, "circle", "on sand", "a photo of a circle on sand", 2, 0),
        GenerationRequest(1, "square", "on the moon", "a photo of a square on the moon", 1, 1),
    ]
    with pytest.raises(
        AssertionError, match=r"request 1 of 2 \(class 'square', value 'on the moon'"
    ):
        check_generator(_BackgroundsGenerator(), requests)


class _NoEmptyGenerator(_BackgroundsGenerator):
    """Serves every request but one with count=0 (it looks its first image up eagerly)."""

    def generate(self, requests, *, progress=None):
        if any(r.count == 0 for r in requests):
            raise IndexError("list index out of range")
        return super().generate(requests, progress=progress)


def test_check_generator_wraps_a_failure_on_a_request_with_count_0():
    requests = [GenerationRequest(0, "circle", "on sand", "a photo of a circle on sand", 2, 0)]
    with pytest.raises(AssertionError, match="count 0.*IndexError.*empty list"):
        check_generator(_NoEmptyGenerator(), requests)


class _ReversingCaptioner(FailureCaptioner):
    """Answers in reverse order (per-image values depend on position)."""

    def caption(self, images, *, image_classes, candidates, attribute="background"):
        out = [
            Caption(candidates[n][i % len(candidates[n])], 1.0) for i, n in enumerate(image_classes)
        ]
        return out[::-1]


class _InventingCaptioner(FailureCaptioner):
    def caption(self, images, *, image_classes, candidates, attribute="background"):
        return [Caption("on the moon", 0.9) for _ in images]


@pytest.mark.parametrize(
    ("captioner", "message"),
    [(_ReversingCaptioner(), "not one of|alone"), (_InventingCaptioner(), "on the moon")],
)
def test_check_captioner_catches(captioner, message):
    with pytest.raises(AssertionError, match=message):
        check_captioner(captioner)


class _UnmergedProposer(BackgroundProposer):
    def propose(self, class_names, *, attribute="background"):
        return {name: ["in a desert", "Deserts"] for name in class_names}


class _ForgetfulProposer(BackgroundProposer):
    def propose(self, class_names, *, attribute="background"):
        return {name: ["in a desert"] for name in list(class_names)[1:]}


@pytest.mark.parametrize(
    ("proposer", "message"),
    [(_UnmergedProposer(), "redundant"), (_ForgetfulProposer(), "one entry per class")],
)
def test_check_proposer_catches(proposer, message):
    with pytest.raises(AssertionError, match=message):
        check_proposer(proposer)


def test_check_extractor_catches_order_and_shape_errors():
    class Shuffled(TorchExtractor):
        def extract(self, data, *, batch_size=None, progress=None):
            return super().extract(data, batch_size=batch_size, progress=progress).flip(0)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 8), nn.Linear(8, 2))
    with pytest.raises(AssertionError, match="batch size|input order"):
        check_extractor(Shuffled(model))
    wrong_head = TorchExtractor(backbone=nn.Flatten(), head=nn.Linear(3 * 64 * 64, 2))
    wrong_head._head = nn.Linear(5, 2)  # a head that does not fit the features
    with pytest.raises((AssertionError, ValueError), match="head takes|features per image"):
        check_extractor(wrong_head)


class _WeightlessTrainer(HeadTrainer):
    """Ignores lam: always weighs the extra rows like the original ones."""

    def fit(
        self,
        features,
        labels,
        *,
        extra_features=None,
        extra_labels=None,
        lam=0.5,
        init=None,
        num_classes=None,
        seed=0,
    ):
        if extra_features is not None:
            features = torch.cat([features, extra_features])
            labels = torch.cat([labels, extra_labels])
        return LinearHeadTrainer(weight_decay=1e-3).fit(
            features, labels, init=init, num_classes=num_classes, seed=seed
        )


def test_check_head_trainer_catches_an_ignored_lam():
    with pytest.raises(AssertionError, match="lam=0"):
        check_head_trainer(_WeightlessTrainer())


def test_sample_images_are_distinct_and_seeded():
    a, b = sample_images(3, seed=0), sample_images(3, seed=0)
    assert [im.tobytes() for im in a] == [im.tobytes() for im in b]
    assert len({im.tobytes() for im in a}) == 3
    assert replace(GenerationRequest(0, "a", None, "p", 2, 0), count=1).count == 1


def test_stable_diffusion_generator_conforms():
    pytest.importorskip("diffusers")
    from failmodes import StableDiffusionGenerator
    from failmodes.testing.tiny import tiny_stable_diffusion

    check_generator(StableDiffusionGenerator(tiny_stable_diffusion(), steps=2, device="cpu"))


def test_chatgpt_proposer_conforms():
    pytest.importorskip("openai")
    from failmodes import ChatGPTProposer
    from failmodes.testing.openai_server import OpenAIServer

    answer = '{"values": ["in a desert", "Deserts", "on a frozen lake", "snow"]}'
    with OpenAIServer(answer) as server:
        check_proposer(ChatGPTProposer(base_url=server.base_url, api_key="k", max_retries=0))


# -- ImageFilter ---------------------------------------------------------------------------------


def test_caption_filter_conforms():
    from failmodes.filters import CaptionFilter
    from failmodes.testing import check_filter
    from failmodes.toyworld import toyclip_captioner

    world = ToyWorld(seed=0)
    sample = world.sample([0, 1, 2, 3], seed=2, biased=False)
    names = [world.class_names[label] for label in sample.labels]
    candidates = {name: world.uncommon_values()[name][:3] for name in world.class_names}
    requests = [
        GenerationRequest(int(y), n, candidates[n][0], f"a photo of a {n}", 1, i)
        for i, (y, n) in enumerate(zip(sample.labels, names, strict=True))
    ]
    check_filter(
        CaptionFilter(toyclip_captioner(), class_top_k=3),
        list(sample.images),
        requests,
        class_names=world.class_names,
        candidates=candidates,
    )


class _NotAFilter:
    def check(self, images, requests, *, class_names, candidates):
        return [None for _ in images]


@pytest.mark.parametrize(
    ("verdicts", "message"),
    [
        (lambda images: ["ok"] * len(images), "verdict 0 is 'ok'"),
        (lambda images: [None] * (len(images) + 1), "list of 4 verdicts"),
        (
            lambda images: (["value"] + [None] * (len(images) - 1))[::-1] if images else [],
            "checked alone",
        ),
        (lambda images: [None] * len(images) or None, "no images must give"),
    ],
)
def test_check_filter_catches(verdicts, message):
    from failmodes.interfaces import ImageFilter
    from failmodes.testing import check_filter

    class Broken(ImageFilter):
        def check(self, images, requests, *, class_names, candidates):
            return verdicts(list(images))

    with pytest.raises(AssertionError, match=message):
        check_filter(Broken())
    with pytest.raises(AssertionError, match="is not a failmodes.interfaces.ImageFilter"):
        check_filter(_NotAFilter())


# -- the checks refuse arguments they cannot check with ------------------------------------------

_SAND = GenerationRequest(0, "circle", "on sand", "a photo of a circle on sand", 2, 0)


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], r"requests must be a non-empty list of GenerationRequest.*got an empty list"),
        ("abc", r"requests must be a non-empty list of GenerationRequest.*got str 'abc'"),
        (["abc"], r"requests\[0\] must be a GenerationRequest, got str"),
        ([replace(_SAND, count=0)], r"at least one request with count >= 2.*got counts \[0\]"),
        ([replace(_SAND, count=1)] * 2, r"at least one request with count >= 2.*\[1, 1\]"),
    ],
)
def test_check_generator_refuses_requests_it_cannot_check_with(requests, message):
    with pytest.raises(SettingError, match=message):
        check_generator(_BackgroundsGenerator(), requests)


class _BannerEditor(EditingGenerator):
    """Paints a red band over the top rows of each source image."""

    def edit(self, requests, images, *, progress=None):
        out = []
        for sources in images:
            edited = [source.convert("RGB").copy() for source in sources]
            for image in edited:
                image.paste(Image.new("RGB", (image.width, 2), (255, 0, 0)), (0, 0))
            out.append(edited)
        return out


def test_check_generator_refuses_editor_sources_it_cannot_index():
    check_generator(_BannerEditor(), [_SAND])  # the default sources: four noise images
    with pytest.raises(SettingError, match=r"sources must be a non-empty list.*got an empty list"):
        check_generator(_BannerEditor(), [_SAND], sources=[])
    with pytest.raises(
        SettingError, match=r"requests\[0\]\.sources must index the 4 images.*got index 4"
    ):
        check_generator(_BannerEditor(), [replace(_SAND, sources=(0, 4))])
    with pytest.raises(SettingError, match=r"requests\[0\]\.sources must hold one index per image"):
        check_generator(_BannerEditor(), [replace(_SAND, sources=(0, 1, 2))])


@pytest.mark.parametrize(
    ("class_names", "message"),
    [
        ("fox", r"class_names must be a list.*got str 'fox'"),
        ([], r"class_names must be a non-empty"),
    ],
)
def test_check_proposer_refuses_class_names_that_are_not_a_list_of_names(class_names, message):
    proposer = StaticProposer({"f": ["a"], "o": ["b"], "x": ["c"], "fox": ["in a desert"]})
    with pytest.raises(ValueError, match=message):
        check_proposer(proposer, class_names=class_names)


def test_check_extractor_says_how_to_pass_images_a_model_for_another_size_accepts():
    torch.manual_seed(0)
    model = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(3 * 8 * 8, 4))  # 32 x 32
    with pytest.raises(AssertionError) as caught:
        check_extractor(TorchExtractor(model))
    message = str(caught.value)
    assert message.startswith("TorchExtractor: extract failed on the check's default images")
    assert "4 RGB images of 64 x 64 pixels" in message and "RuntimeError" in message
    assert "check_extractor(extractor, images=sample_images(4, size=<side>))" in message
    check_extractor(TorchExtractor(model), images=sample_images(4, size=32))  # the hint works


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": -1}, r"count must be an integer >= 0, got -1"),
        ({"count": 2.5}, r"count must be an integer >= 0, got 2.5"),
        ({"count": 2, "size": 0}, r"size must be an integer >= 2, got 0"),
        ({"count": 2, "seed": -1}, r"seed must be an integer >= 0"),
    ],
)
def test_sample_images_refuses_a_bad_count_size_or_seed(kwargs, message):
    with pytest.raises(SettingError, match=message):
        sample_images(**kwargs)


def test_sample_images_at_the_bounds():
    from failmodes.images import is_blank

    assert sample_images(0) == []
    images = sample_images(3.0, size=2)  # an integral float is an integer
    assert len(images) == 3 and not any(is_blank(image) for image in images)
