"""CLIPCaptioner on a real (tiny) open_clip CLIP, built and trained in-process."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import failmodes
from failmodes.attributes import prompt
from failmodes.captioners import CLIPCaptioner
from failmodes.interfaces import Caption, FailureCaptioner

open_clip = pytest.importorskip("open_clip")

COLORS = {"red": (210, 40, 35), "green": (40, 170, 60), "blue": (40, 60, 210)}
CANDIDATES = {"square": list(COLORS), "circle": ["red"]}


def color_image(color: str, rng: np.random.Generator, mode: str = "RGB") -> Image.Image:
    """A 32x32 image of one colour: shade jitter, pixel noise and darker stripes (a texture)."""
    rgb = np.array(COLORS[color], dtype=np.float64) * rng.uniform(0.75, 1.15)
    pixels = np.broadcast_to(rgb, (32, 32, 3)) + rng.normal(0, 20, (32, 32, 3))
    period = int(rng.integers(4, 9))
    stripes = (np.arange(32) // (period // 2)) % 2 == 0
    pixels = pixels * np.where(stripes, 0.8, 1.0)[:, None, None] if rng.random() < 0.5 else pixels
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.convert(mode)


def colored(n: int, seed: int) -> tuple[list[Image.Image], list[str]]:
    rng = np.random.default_rng(seed)
    labels = [list(COLORS)[i % len(COLORS)] for i in range(n)]
    return [color_image(c, rng) for c in labels], labels


@pytest.fixture(scope="module")
def trained_clip(make_tiny_clip):
    """A tiny CLIP trained contrastively (image -> its caption among the colour captions).

    The token embedding (the bulk of the weights) is frozen to keep training under a second;
    the rest of both towers and the temperature learn.
    """
    model, preprocess, tokenizer = make_tiny_clip(0)
    images, labels = colored(48, seed=1)
    x = torch.stack([preprocess(image) for image in images])
    y = torch.tensor([list(COLORS).index(c) for c in labels])
    tokens = tokenizer([prompt("square", c, "color") for c in COLORS])
    model.token_embedding.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        optimizer = torch.optim.AdamW(params, lr=1e-3)
        model.train()
        for _ in range(25):
            image_features = model.encode_image(x, normalize=True)
            text_features = model.encode_text(tokens, normalize=True)
            logits = model.logit_scale.exp() * image_features @ text_features.T
            loss = torch.nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    assert loss.item() < 0.1
    return model, preprocess, tokenizer


def captioner_for(clip, **kwargs) -> CLIPCaptioner:
    model, preprocess, tokenizer = clip
    return CLIPCaptioner(model, tokenizer=tokenizer, preprocess=preprocess, **kwargs)


class CountingCLIP(torch.nn.Module):
    """Wraps an open_clip model (the library boundary) to count what it encodes."""

    def __init__(self, clip: torch.nn.Module):
        super().__init__()
        self.clip = clip
        self.text_calls = 0
        self.texts = 0
        self.image_calls = 0

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale

    def encode_text(self, tokens, normalize=False):
        self.text_calls += 1
        self.texts += len(tokens)
        return self.clip.encode_text(tokens, normalize=normalize)

    def encode_image(self, images, normalize=False):
        self.image_calls += 1
        return self.clip.encode_image(images, normalize=normalize)


# -- it looks at the image -----------------------------------------------------------------------


def test_trained_clip_captions_held_out_images_well_above_chance(trained_clip):
    images, labels = colored(30, seed=2)  # other shades, noise and textures than in training
    captions = captioner_for(trained_clip, batch_size=8).caption(
        images, image_classes=["square"] * len(images), candidates=CANDIDATES, attribute="color"
    )
    assert all(isinstance(c, Caption) for c in captions)
    accuracy = np.mean([c.value == label for c, label in zip(captions, labels, strict=True)])
    assert accuracy >= 0.9  # chance is 1/3, and exactly 1/3 for a captioner blind to images
    assert np.mean([c.score for c in captions]) > 0.8


def test_the_caption_changes_when_only_the_image_changes(trained_clip):
    rng = np.random.default_rng(3)
    captioner = captioner_for(trained_clip)
    picked = {}
    for color in COLORS:
        (caption,) = captioner.caption(
            [color_image(color, rng)],
            image_classes=["square"],
            candidates=CANDIDATES,
            attribute="color",
        )
        picked[color] = caption.value
    assert picked == {c: c for c in COLORS}


def test_scores_are_the_softmax_over_the_class_candidates(trained_clip):
    model, preprocess, tokenizer = trained_clip
    images, _ = colored(6, seed=4)
    captions = captioner_for(trained_clip).caption(
        images, image_classes=["square"] * 6, candidates=CANDIDATES, attribute="color"
    )
    with torch.no_grad():
        x = model.encode_image(torch.stack([preprocess(i) for i in images]), normalize=True)
        t = model.encode_text(
            tokenizer([prompt("square", c, "color") for c in COLORS]), normalize=True
        )
        probs = (model.logit_scale.exp() * x @ t.T).softmax(dim=-1)
    expected = probs.max(dim=-1)
    for caption, p, i in zip(captions, expected.values, expected.indices, strict=True):
        assert caption.value == list(COLORS)[int(i)]
        assert caption.score == pytest.approx(float(p), abs=1e-5)


def test_each_image_chooses_among_its_own_class_candidates_only(trained_clip):
    rng = np.random.default_rng(5)
    blue = color_image("blue", rng)
    captions = captioner_for(trained_clip).caption(
        [blue, blue], image_classes=["circle", "square"], candidates=CANDIDATES, attribute="color"
    )
    assert captions[0] == Caption("red", 1.0)  # the circle's only candidate
    assert captions[1].value == "blue"


def test_images_of_any_mode_and_preprocessed_tensors(trained_clip):
    _, preprocess, _ = trained_clip
    images, labels = colored(6, seed=6)
    captioner = captioner_for(trained_clip, batch_size=4)
    kwargs = dict(image_classes=["square"] * 6, candidates=CANDIDATES, attribute="color")
    reference = captioner.caption(images, **kwargs)
    as_rgba = captioner.caption([i.convert("RGBA") for i in images], **kwargs)
    as_tensors = captioner.caption([preprocess(i) for i in images], **kwargs)
    as_batch = captioner.caption(torch.stack([preprocess(i) for i in images]), **kwargs)
    for captions in (as_rgba, as_tensors, as_batch):
        assert [c.value for c in captions] == [c.value for c in reference]
        assert [c.score for c in captions] == pytest.approx([c.score for c in reference])
    grey = captioner.caption([i.convert("L") for i in images], **kwargs)  # to_rgb'd, no error
    assert len(grey) == 6 and all(c.value in COLORS for c in grey)


# -- text embeddings, min_prob, templates --------------------------------------------------------


def test_text_embeddings_are_computed_once_per_prompt(tiny_clip):
    model, preprocess, tokenizer = tiny_clip
    counting = CountingCLIP(model)
    captioner = CLIPCaptioner(counting, tokenizer=tokenizer, preprocess=preprocess, batch_size=2)
    images, _ = colored(5, seed=7)
    names = ["square", "square", "circle", "square", "circle"]
    captioner.caption(images, image_classes=names, candidates=CANDIDATES, attribute="color")
    assert counting.texts == 4  # red, green, blue square; red circle
    assert counting.text_calls == 2  # in batches of batch_size
    assert counting.image_calls == 3
    expected = {prompt("square", c, "color") for c in COLORS} | {"a photo of a red circle"}
    assert set(captioner.text_cache_) == expected

    captioner.caption(images, image_classes=names, candidates=CANDIDATES, attribute="color")
    assert counting.texts == 4
    more = {**CANDIDATES, "square": ["red", "yellow", "red"]}  # one new value, a duplicate
    captions = captioner.caption(
        images[:2], image_classes=["square"] * 2, candidates=more, attribute="color"
    )
    assert counting.texts == 5
    assert "a photo of a yellow square" in captioner.text_cache_
    assert all(c.value in ("red", "yellow") for c in captions)


def test_prompts_follow_the_attribute(tiny_clip):
    captioner = captioner_for(tiny_clip)
    images, _ = colored(1, seed=8)
    captioner.caption(images, image_classes=["fox"], candidates={"fox": ["in a desert"]})
    assert list(captioner.text_cache_) == ["a photo of a fox in a desert"]


def test_templates(tiny_clip):
    images, _ = colored(2, seed=9)
    kwargs = dict(image_classes=["fox", "fox"], candidates={"fox": ["in a desert", "at sea"]})
    captioner = captioner_for(tiny_clip, template="a blurry photo of {}.")
    captioner.caption(images, **kwargs)
    assert set(captioner.text_cache_) == {
        "a blurry photo of a fox in a desert.",
        "a blurry photo of a fox at sea.",
    }
    seen = []

    def template(class_name, value, attribute):
        seen.append((class_name, value, attribute))
        return f"{value} / {class_name}"

    captioner = captioner_for(tiny_clip, template=template)
    captions = captioner.caption(images, **kwargs, attribute="place")
    assert set(captioner.text_cache_) == {"in a desert / fox", "at sea / fox"}
    assert ("fox", "at sea", "place") in seen
    assert all(c.value in ("in a desert", "at sea") for c in captions)


def test_min_prob_gives_none_with_the_best_score(tiny_clip):
    images, _ = colored(4, seed=10)
    kwargs = dict(image_classes=["square"] * 4, candidates=CANDIDATES, attribute="color")
    plain = captioner_for(tiny_clip).caption(images, **kwargs)
    strict = captioner_for(tiny_clip, min_prob=0.999).caption(images, **kwargs)
    assert all(c.value in COLORS for c in plain)
    assert all(1 / 3 <= c.score < 0.999 for c in plain)  # an untrained model is unsure
    assert [c.value for c in strict] == [None] * 4
    assert [c.score for c in strict] == pytest.approx([c.score for c in plain])
    (sure,) = captioner_for(tiny_clip, min_prob=1.0).caption(
        images[:1], image_classes=["circle"], candidates=CANDIDATES
    )
    assert sure == Caption("red", 1.0)  # p >= min_prob keeps the value


def test_captions_are_deterministic_and_the_model_is_left_intact(tiny_clip):
    model, _, _ = tiny_clip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, _ = colored(4, seed=11)
    kwargs = dict(image_classes=["square"] * 4, candidates=CANDIDATES, attribute="color")
    first = captioner_for(tiny_clip).caption(images, **kwargs)
    assert captioner_for(tiny_clip).caption(images, **kwargs) == first
    other = captioner_for(tiny_clip, batch_size=3).caption(images, **kwargs)
    assert [c.value for c in other] == [c.value for c in first]
    assert [c.score for c in other] == pytest.approx([c.score for c in first])  # other GEMMs
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (dict(image_classes=["square"]), ValueError, "same length"),
        (dict(image_classes=["square", "owl"]), ValueError, r"no values for class\(es\) \['owl'\]"),
        (dict(candidates={"square": []}), ValueError, "class 'square' has no values"),
        (dict(candidates={"square": "red"}), TypeError, "list of values"),
        (dict(candidates={"square": ["red", " "]}), ValueError, "blank or non-string"),
        (dict(candidates=[("square", ["red"])]), TypeError, "mapping"),
        (dict(image_classes="square"), TypeError, "not a string"),
        (dict(images=["not an image"] * 2), TypeError, "PIL images or"),
        (dict(images=[np.zeros((32, 32, 3), np.uint8)] * 2), TypeError, "fromarray"),
        (dict(images=[torch.zeros(1, 3, 32, 32)] * 2), ValueError, r"\(C, H, W\)"),
        (dict(images=[torch.zeros(3, 32, 32), torch.zeros(3, 16, 16)]), ValueError, "one shape"),
    ],
)
def test_bad_inputs_raise_clear_errors(tiny_clip, change, error, match):
    images, _ = colored(2, seed=12)
    kwargs = dict(images=images, image_classes=["square"] * 2, candidates=CANDIDATES)
    kwargs.update(change)
    captioner = captioner_for(tiny_clip)
    with pytest.raises(error, match=match):
        captioner.caption(kwargs.pop("images"), **kwargs)


@pytest.mark.parametrize(
    ("option", "error", "match"),
    [
        (dict(min_prob=1.5), ValueError, "min_prob"),
        (dict(min_prob=-0.1), ValueError, "min_prob"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(batch_size=2.5), TypeError, "batch_size"),
        (dict(template="a photo"), ValueError, "no '{}' field"),
        (dict(template="a photo of {class_name}"), ValueError, "one '{}' field"),
        (dict(template=42), TypeError, "template"),
        (dict(template=lambda c, v, a: ""), ValueError, "non-empty string"),
    ],
)
def test_bad_options_raise_where_used(tiny_clip, option, error, match):
    captioner = captioner_for(tiny_clip, **option)  # stored, not checked
    images, _ = colored(1, seed=13)
    with pytest.raises(error, match=match):
        captioner.caption(images, image_classes=["square"], candidates=CANDIDATES)


def test_a_single_image_must_be_wrapped_in_a_list(tiny_clip):
    images, _ = colored(1, seed=14)
    with pytest.raises(TypeError, match="wrap a single image"):
        captioner_for(tiny_clip).caption(images[0], image_classes=["square"], candidates=CANDIDATES)


@pytest.mark.parametrize("missing", ["tokenizer", "preprocess"])
def test_a_model_object_needs_tokenizer_and_preprocess(tiny_clip, missing):
    model, preprocess, tokenizer = tiny_clip
    given = {"tokenizer": tokenizer, "preprocess": preprocess}
    del given[missing]
    captioner = CLIPCaptioner(model, **given)
    images, _ = colored(1, seed=15)
    with pytest.raises(ValueError, match=f"needs {missing}="):
        captioner.caption(images, image_classes=["square"], candidates=CANDIDATES)
    assert not hasattr(captioner, "model_")


def test_a_model_object_needs_the_open_clip_api(tiny_clip):
    _, preprocess, tokenizer = tiny_clip
    captioner = CLIPCaptioner(torch.nn.Linear(2, 2), tokenizer=tokenizer, preprocess=preprocess)
    images, _ = colored(1, seed=16)
    with pytest.raises(TypeError, match="encode_image and encode_text"):
        captioner.caption(images, image_classes=["square"], candidates=CANDIDATES)


# -- building by name ----------------------------------------------------------------------------


def test_a_named_captioner_loads_nothing_until_used():
    captioner = CLIPCaptioner("ViT-B-32", pretrained="openai")  # offline: would fail if it loaded
    assert isinstance(captioner, FailureCaptioner)
    assert vars(captioner) == {
        "model": "ViT-B-32",
        "pretrained": "openai",
        "tokenizer": None,
        "preprocess": None,
        "template": None,
        "min_prob": 0.0,
        "batch_size": 64,
        "device": "cpu",
        "progress": None,
    }
    for learned in ("model_", "tokenizer_", "preprocess_", "text_cache_"):
        assert not hasattr(captioner, learned)
    assert captioner.caption([], image_classes=[], candidates={}) == []
    assert not hasattr(captioner, "model_")


def test_a_named_captioner_builds_through_open_clip(trained_clip, tmp_path):
    model, _, _ = trained_clip
    vision = dict(layers=2, width=64, head_width=32, patch_size=8, image_size=32)
    text = dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2)
    config = {
        "model_cfg": {"embed_dim": 32, "vision_cfg": vision, "text_cfg": text},
        "preprocess_cfg": {"size": 32},
    }
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    torch.save(model.state_dict(), tmp_path / "open_clip_pytorch_model.bin")

    named = CLIPCaptioner(f"local-dir:{tmp_path}", progress=False)
    assert not hasattr(named, "model_")
    images, labels = colored(6, seed=17)
    kwargs = dict(image_classes=["square"] * 6, candidates=CANDIDATES, attribute="color")
    captions = named.caption(images, **kwargs)
    assert isinstance(named.model_, open_clip.CLIP) and not named.model_.training
    assert [c.value for c in captions] == labels
    reference = captioner_for(trained_clip).caption(images, **kwargs)
    assert [c.score for c in captions] == pytest.approx([c.score for c in reference], abs=1e-4)


def test_a_missing_open_clip_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # the import system is the boundary
    captioner = CLIPCaptioner("ViT-B-32")
    images, _ = colored(1, seed=18)
    with pytest.raises(ImportError, match=r"failmodes\[clip\]"):
        captioner.caption(images, image_classes=["square"], candidates=CANDIDATES)


def test_public_exports():
    assert failmodes.CLIPCaptioner is CLIPCaptioner
