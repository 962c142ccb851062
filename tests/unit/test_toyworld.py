"""ToyWorld: worlds, generator, shipped backbone, style gap and the classifier's shortcut."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from failmodes.interfaces import GenerationRequest, ImageGenerator
from failmodes.toyworld import (
    BACKGROUNDS,
    COLORS,
    SHAPES,
    ToyBackbone,
    ToyWorld,
    ToyWorldGenerator,
    load_backbone,
    toy_classifier,
)


def _request(
    class_name="circle", value="on grass", count=3, seed=0, attribute="background", class_index=None
):
    index = SHAPES.index(class_name) if class_index is None else class_index
    return GenerationRequest(
        class_index=index,
        class_name=class_name,
        value=value,
        prompt=f"a photo of {class_name} {value}",
        count=count,
        seed=seed,
        attribute=attribute,
    )


def _pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im) for im in images])


@pytest.fixture(scope="module")
def backbone() -> ToyBackbone:
    return load_backbone()


@torch.no_grad()
def _features(backbone, pixels: np.ndarray) -> torch.Tensor:
    return backbone(torch.from_numpy(pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0))


# ---------------------------------------------------------------- worlds
def test_world_is_deterministic():
    a, b = ToyWorld(seed=3).train(per_class=4), ToyWorld(seed=3).train(per_class=4)
    assert np.array_equal(a.pixels, b.pixels)
    assert a.groups == b.groups
    assert not np.array_equal(a.pixels, ToyWorld(seed=4).train(per_class=4).pixels)


@pytest.mark.parametrize("attribute", ["background", "color"])
def test_train_is_biased_and_debug_balanced(attribute):
    world = ToyWorld(seed=1, attribute=attribute, strength=0.9)
    common = world.common_values
    train = world.train(per_class=40)
    share = np.mean([g == common[y] for g, y in zip(train.groups, train.labels, strict=True)])
    assert 0.84 <= share <= 0.96
    assert all(Counter(train.labels)[c] == 40 for c in range(len(SHAPES)))
    debug = world.debug(1000)
    assert Counter(debug.labels) == {c: 100 for c in range(len(SHAPES))}
    share = np.mean([g == common[y] for g, y in zip(debug.groups, debug.labels, strict=True)])
    assert share < 0.1  # uniform: 1 / 24 backgrounds, 1 / 16 colours
    counts = Counter(debug.groups)
    assert len(counts) == len(world.values)
    assert max(counts.values()) < 2 * 1000 / len(world.values)


# ---------------------------------------------------------------- generator
def test_generator_is_an_image_generator_and_counts():
    gen = ToyWorldGenerator(ToyWorld(seed=0))
    assert isinstance(gen, ImageGenerator)
    out = gen.generate(
        [_request(count=3), _request("star", "in fog", count=0), _request("bar", None, count=2)]
    )
    assert [len(images) for images in out] == [3, 0, 2]
    assert all(im.mode == "RGB" and im.size == (32, 32) for im in out[0] + out[2])


def test_generator_is_deterministic_and_images_regenerate_alone():
    world = ToyWorld(seed=0)
    request = _request(count=4, seed=7)
    first = _pixels(ToyWorldGenerator(world).generate([request])[0])
    again = _pixels(ToyWorldGenerator(world).generate([request])[0])
    assert np.array_equal(first, again)
    alone = np.asarray(ToyWorldGenerator(world).render(request, 2))
    assert np.array_equal(first[2], alone)
    assert not np.array_equal(first[0], first[1])
    other = _pixels(ToyWorldGenerator(world).generate([_request(count=4, seed=8)])[0])
    assert not np.array_equal(first, other)


def test_generator_draws_the_requested_value():
    world = ToyWorld(seed=0, attribute="color")
    gen = ToyWorldGenerator(world)
    images = gen.generate([_request("square", "red", count=6, attribute="color")])[0]
    red = np.array(COLORS["red"], dtype=float)
    centres = _pixels(images).astype(float)
    # the object is red somewhere in every image
    assert all((np.abs(c - red).sum(-1) < 120).any() for c in centres)


def test_bare_class_requests_follow_the_training_bias():
    world = ToyWorld(seed=2, strength=0.9)
    heart = SHAPES.index("heart")
    request = _request("heart", None, count=120)
    # image i is the world's biased draw (common value with probability strength) from its seed
    drawn = [
        world.sample([heart], biased=True, seed=request.image_seed(i)).groups[0]
        for i in range(request.count)
    ]
    share = np.mean([g == world.common_values[heart] for g in drawn])
    assert 0.8 <= share <= 0.98
    pixels = _pixels(ToyWorldGenerator(world, style="world").generate([request])[0][:3])
    for i in range(3):
        expected = world.sample([heart], biased=True, seed=request.image_seed(i), style="world")
        assert np.array_equal(pixels[i], expected.pixels[0])


def test_generator_accepts_background_names_and_phrases():
    gen = ToyWorldGenerator(ToyWorld(seed=0))
    a = gen.generate([_request(value="on grass", count=1)])[0][0]
    b = gen.generate([_request(value="grass", count=1)])[0][0]
    assert a.size == b.size


@pytest.mark.parametrize(
    ("request_kwargs", "match"),
    [
        ({"class_name": "dodecahedron", "class_index": 0}, "unknown class 'dodecahedron'.*circle"),
        ({"class_name": "star", "class_index": 0}, "class_index 0 does not match"),
        ({"value": "on the moon"}, "unknown background value 'on the moon'.*on grass"),
        ({"value": "red"}, "unknown background value 'red'"),
        ({"value": "red", "attribute": "color"}, "attribute 'color'"),
    ],
)
def test_generator_rejects_unknown_classes_and_values(request_kwargs, match):
    gen = ToyWorldGenerator(ToyWorld(seed=0))
    with pytest.raises(ValueError, match=match):
        gen.generate([_request(**request_kwargs)])


def test_generator_rejects_unknown_colors():
    gen = ToyWorldGenerator(ToyWorld(seed=0, attribute="color"))
    with pytest.raises(ValueError, match="unknown color value 'on grass'.*red"):
        gen.generate([_request(value="on grass", attribute="color")])


def test_vocabulary():
    assert len(SHAPES) == 10 and len(BACKGROUNDS) == 24 and len(COLORS) == 16


# ---------------------------------------------------------------- backbone and classifier
def test_shipped_backbone_loads_and_gives_finite_features(backbone):
    assert not backbone.training
    assert all(not p.requires_grad for p in backbone.parameters())
    images = torch.from_numpy(ToyWorld(seed=0).debug(20).tensors())
    feats = backbone(images)
    assert feats.shape == (20, backbone.feature_dim)
    assert 64 <= backbone.feature_dim <= 256
    assert torch.isfinite(feats).all()
    assert feats.std(0).mean() > 0


def test_style_gap_is_linearly_separable(backbone):
    from failmodes.heads.linear import LinearHeadTrainer

    world = ToyWorld(seed=5)
    labels = np.arange(600) % len(SHAPES)
    real = world.sample(labels, biased=False, seed=1, style="world")
    fake = world.sample(labels, biased=False, seed=2, style="generated")
    feats = torch.cat([_features(backbone, real.pixels), _features(backbone, fake.pixels)])
    target = torch.cat([torch.zeros(600, dtype=torch.long), torch.ones(600, dtype=torch.long)])
    perm = torch.from_numpy(np.random.default_rng(0).permutation(1200))
    fit, held = perm[:600], perm[600:]
    mean, std = feats[fit].mean(0), feats[fit].std(0) + 1e-6
    feats = (feats - mean) / std
    head = LinearHeadTrainer(weight_decay=1e-3, max_iter=500).fit(
        feats[fit], target[fit], num_classes=2
    )
    with torch.no_grad():
        accuracy = (head(feats[held]).argmax(1) == target[held]).float().mean().item()
    assert accuracy >= 0.95


@pytest.mark.parametrize("attribute", ["background", "color"])
def test_classifier_learns_the_shortcut(backbone, attribute):
    world = ToyWorld(seed=0, attribute=attribute)
    model = toy_classifier(world, per_class=50, backbone=backbone)
    assert isinstance(model[-1], torch.nn.Linear) and model[-1].out_features == len(SHAPES)
    test = world.test(600)
    with torch.no_grad():
        pred = model(torch.from_numpy(test.tensors())).argmax(1).numpy()
    ok = pred == np.asarray(test.labels)
    common = np.array(
        [g == world.common_values[y] for g, y in zip(test.groups, test.labels, strict=True)]
    )
    assert ok[common].mean() >= 0.9
    assert ok[~common].mean() <= ok[common].mean() - 0.25


# ---------------------------------------------------------------- worlds with cues
def _digest(data) -> str:
    import hashlib
    import json

    h = hashlib.sha256(data.pixels.tobytes())
    h.update(json.dumps([data.labels, data.groups, data.backgrounds, data.colors]).encode())
    return h.hexdigest()[:16]


@pytest.mark.parametrize(
    ("world", "digests"),
    [
        # measured with the world module as it was before cues and debug_strength existed
        (ToyWorld(seed=0), ("cd24935856dceabb", "d394b5b149dd1b1f", "c5f6dd49fba90fe4")),
        (
            ToyWorld(seed=3, attribute="color", strength=0.85),
            ("89450b2188fefd0a", "613606afea73b19b", "9802dc6ec12b4179"),
        ),
    ],
)
def test_worlds_without_cues_render_every_split_as_before(world, digests):
    assert (_digest(world.train(6)), _digest(world.debug(60)), _digest(world.test(60))) == digests
    assert (
        ToyWorld(
            seed=world.seed,
            attribute=world.attribute,
            strength=world.strength,
            cues=None,
            debug_strength=0.0,
        )
        == world
    )


@pytest.mark.parametrize("attribute", ["background", "color"])
def test_a_cue_value_appears_only_with_its_class_in_train(attribute):
    world = ToyWorld(seed=4, attribute=attribute, strength=0.5, cues=3)
    cues = world.cue_values
    assert len(cues) == 3 and len(set(cues.values())) == 3
    assert world.common_values == [cues.get(y) for y in range(len(SHAPES))]
    train = world.train(per_class=200)
    labels, groups = np.array(train.labels), np.array(train.groups)
    for label, value in cues.items():
        assert set(labels[groups == value]) == {label}
        assert 0.4 <= np.mean(groups[labels == label] == value) <= 0.6  # strength 0.5
    free = [v for v in world.values if v not in cues.values()]
    others = [y for y in range(len(SHAPES)) if y not in cues]
    seen = Counter(groups[np.isin(labels, others)])
    assert set(seen) == set(free)  # every other class is on the free values only, all of them
    assert max(seen.values()) < 3 * min(seen.values())  # roughly uniformly


def test_debug_strength_leans_debug_and_test_towards_the_train_distribution():
    balanced = ToyWorld(seed=4, strength=0.5, cues=2).debug(2000)
    leaning = ToyWorld(seed=4, strength=0.5, cues=2, debug_strength=0.6)
    cue_label, cue = next(iter(leaning.cue_values.items()))
    debug = leaning.debug(2000)
    share = np.mean(np.array(debug.groups)[np.array(debug.labels) == cue_label] == cue)
    base = np.mean(np.array(balanced.groups)[np.array(balanced.labels) == cue_label] == cue)
    assert base < 0.1  # 1 in 24 when balanced
    assert 0.6 * 0.5 - 0.08 <= share - base <= 0.6 * 0.5 + 0.08
    assert _digest(leaning.test(50)) != _digest(leaning.debug(50))


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"cues": 0}, ValueError, "cues must be None or an integer from 1 to 10"),
        ({"cues": 11}, ValueError, "cues must be None"),
        ({"cues": 2.5}, ValueError, "cues must be None"),
        ({"cues": True}, ValueError, "cues must be None"),
        ({"debug_strength": 1.5}, ValueError, r"debug_strength must be in \[0, 1\]"),
        ({"debug_strength": float("nan")}, ValueError, "debug_strength must be in"),
        ({"strength": "high"}, TypeError, "strength must be a number"),
    ],
)
def test_bad_world_settings_are_refused(kwargs, error, says):
    with pytest.raises(error, match=says):
        ToyWorld(**kwargs)


def test_train_like_is_drawn_as_train_but_apart_from_it():
    world = ToyWorld(seed=0, strength=0.9)
    fresh = world.train_like(200)
    common = [world.common_values[y] for y in fresh.labels]
    assert np.mean(np.array(fresh.groups) == np.array(common)) > 0.8
    assert _digest(fresh) != _digest(world.sample(fresh.labels, biased=True, seed=0))
    assert _digest(world.train_like(200)) == _digest(fresh)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"seed": -1}, r"seed must be an integer >= 0 and <= 4294967295, got -1"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"seed": "a"}, "seed must be an integer"),
        ({"seed": True}, "seed must be an integer"),
        ({"seed": 2**32}, "seed must be an integer"),
        ({"size": 0}, r"size must be an integer >= 1, got 0"),
        ({"size": -8}, "size must be an integer >= 1"),
        ({"size": 20.5}, "size must be an integer >= 1"),
        ({"size": "32"}, "size must be an integer >= 1"),
    ],
)
def test_bad_world_seeds_and_sizes_are_refused_when_the_world_is_made(kwargs, says):
    with pytest.raises(ValueError, match=says):
        ToyWorld(**kwargs)


def test_a_world_takes_integral_seeds_and_sizes_as_the_same_world():
    assert ToyWorld(seed=np.int64(3), size=np.int32(16)) == ToyWorld(seed=3, size=16)
    assert repr(ToyWorld(seed=3.0)) == repr(ToyWorld(seed=3))  # the cache keys use the repr
    assert ToyWorld(size=3).train(1).pixels.shape == (10, 3, 3, 3)


@pytest.mark.parametrize("split", ["train", "train_like", "debug", "test"])
@pytest.mark.parametrize("size", [-1, -5, 2.5, "3", True])
def test_bad_split_sizes_are_refused_naming_the_argument(split, size):
    name = "per_class" if split == "train" else "n"
    with pytest.raises(ValueError, match=rf"{name} must be an integer >= 0, got {size!r}"):
        getattr(ToyWorld(seed=0), split)(size)


def test_split_sizes_may_be_zero_or_integral():
    world = ToyWorld(seed=0)
    assert len(world.debug(0)) == 0 and len(world.train(0)) == 0
    assert world.debug(np.int64(3)).labels == world.debug(3.0).labels == world.debug(3).labels


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"debug_size": 10**12}, "debug_size must be an integer >= 1 and <= 100000"),
        ({"debug_size": 0}, "debug_size must be an integer >= 1"),
        ({"images_per_mode": 10**9}, "images_per_mode must be an integer >= 1 and <= 1000"),
        ({"images_per_mode": [20, 10**9]}, "images_per_mode must be an integer >= 1 and <="),
    ],
)
def test_the_demo_refuses_sizes_beyond_its_bounds_before_any_work(kwargs, says):
    from failmodes.toyworld import run_demo
    from failmodes.toyworld.demo import DEMO_LIMITS

    assert DEMO_LIMITS == {"debug_size": 100_000, "images_per_mode": 1_000}
    with pytest.raises(ValueError, match=says):
        run_demo(cache=False, **kwargs)
