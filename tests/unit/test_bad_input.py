"""Bad input is caught early with a message naming the argument; properties of split and top-k."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn

from failmodes import (
    Caption,
    Debugger,
    FailureModes,
    GenerationRequest,
    StaticProposer,
    TorchExtractor,
)
from failmodes.data import ImageDataset, to_rgb
from failmodes.interfaces import FailureCaptioner, ImageGenerator
from failmodes.toyworld import ToyWorld, ToyWorldGenerator

WORLD = ToyWorld(seed=5)


def _onehot_debugger(n_classes: int, **kwargs) -> Debugger:
    """Features are one-hot predictions; the head reads them back (a known classifier)."""
    head = nn.Linear(n_classes, n_classes)
    with torch.no_grad():
        head.weight.copy_(10 * torch.eye(n_classes))
        head.bias.zero_()
    return Debugger(
        extractor=TorchExtractor(backbone=nn.Identity(), head=head),
        class_names=[f"class{i}" for i in range(n_classes)],
        cache=False,
        **kwargs,
    )


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=120),
    fraction=st.sampled_from([0.0, 0.2, 0.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_split_properties(data, fraction, seed):
    labels = np.array([y for y, _ in data])
    preds = np.array([p for _, p in data])
    if not (preds != labels).any():
        return  # no failures: the Debugger raises (tested below)
    dbg = _onehot_debugger(3, validation_fraction=fraction)
    features = torch.eye(3)[torch.as_tensor(preds)]
    try:
        failures = dbg.find_failures(None, seed=seed, features=(features, labels))
    except ValueError as err:  # every failure fell in the validation part
        assert "no failures" in str(err)
        return
    val, part, held = (
        set(x.tolist()) for x in (failures.validation, failures.seed, failures.heldout)
    )
    assert not (val & part or val & held or part & held)
    outside = [i for i in range(len(labels)) if i not in val]
    assert part | held == {i for i in outside if preds[i] != labels[i]}
    for c in range(3):
        members = int((labels == c).sum())
        assert sum(labels[i] == c for i in val) == int(round(fraction * members))
        n_seed = sum(labels[i] == c for i in part)
        n_held = sum(labels[i] == c for i in held)
        assert n_held - n_seed in (0, 1)
    again = dbg.find_failures(None, seed=seed, features=(features, labels))
    assert np.array_equal(again.seed, failures.seed)
    assert np.array_equal(again.heldout, failures.heldout)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.sampled_from(["in a desert", "on ice", "at sea", None]), max_size=40),
    k=st.integers(1, 4),
)
def test_top_k_properties(values, k):
    candidates = {"fox": ["in a desert", "on ice", "at sea"]}
    modes = FailureModes.from_captions(
        class_names=["fox", "owl"],
        attribute="background",
        indices=np.arange(len(values)),
        labels=np.zeros(len(values), dtype=np.int64),
        predictions=np.ones(len(values), dtype=np.int64),
        captions=[Caption(v, 0.5) for v in values],
        candidates=candidates,
        k=k,
    )
    chosen = modes.modes.get("fox", [])
    counts = Counter(v for v in values if v is not None)
    assert len(chosen) == min(k, len(counts))
    assert set(chosen) <= set(counts)
    ranked = [counts[v] for v in chosen]
    assert ranked == sorted(ranked, reverse=True)
    left_out = [counts[v] for v in counts if v not in chosen]
    assert not left_out or not chosen or max(left_out) <= min(ranked)


def test_class_names_that_do_not_fit_the_data_are_named():
    data = ImageDataset([Image.new("RGB", (8, 8))] * 3, [0, 1, 2])
    data.classes = ["a", "b", "c"]
    dbg = _onehot_debugger(4)
    with pytest.raises(ValueError, match="3 classes .* but there are 4 class_names"):
        dbg.features(data)
    with pytest.raises(ValueError, match=r"labels outside \[0, 2\)"):
        _onehot_debugger(2).features(ImageDataset([Image.new("RGB", (8, 8))] * 3, [0, 1, 2]))
    with pytest.raises(ValueError, match="debug is empty"):
        _onehot_debugger(2).features(ImageDataset([], []), name="debug")


def test_k_larger_than_the_proposals_is_caught_before_any_feature():
    class NoFeatures(TorchExtractor):
        def extract(self, data, *, batch_size=None, progress=None):
            raise AssertionError("features were computed before the check")

    dbg = Debugger(
        extractor=NoFeatures(backbone=nn.Flatten(), head=nn.Linear(3, 10)),
        proposer=StaticProposer({name: ["in a desert", "on ice"] for name in WORLD.class_names}),
        captioner=_AnyCaptioner(),
        generator=ToyWorldGenerator(WORLD),
        class_names=WORLD.class_names,
        k=3,
        cache=False,
    )
    with pytest.raises(ValueError, match="k=3 .* fewer backgrounds for 10 classes"):
        dbg.run(WORLD.train(2), WORLD.debug(20), WORLD.test(20))


class _AnyCaptioner(FailureCaptioner):
    def caption(self, images, *, image_classes, candidates, attribute="background"):
        return [Caption(None, 0.0) for _ in images]


def test_a_generator_that_returns_blank_images_is_stopped():
    class Blank(ImageGenerator):
        def generate(self, requests, *, progress=None):
            return [[Image.new("RGB", (32, 32), (0, 0, 0))] * r.count for r in requests]

    dbg = Debugger(
        extractor=TorchExtractor(backbone=nn.Flatten(), head=nn.Linear(3, 10)),
        generator=Blank(),
        class_names=WORLD.class_names,
        cache=False,
    )
    request = GenerationRequest(0, "circle", "on ice", "a photo of a circle on ice", 2, 0)
    with pytest.raises(ValueError, match="blank image .* 'a photo of a circle on ice'"):
        dbg.generate([request])


@pytest.mark.parametrize(
    ("mode", "size"), [("L", (8, 8)), ("RGBA", (8, 8)), ("CMYK", (8, 8)), ("I;16", (8, 8))]
)
def test_images_of_any_mode_become_rgb(mode, size):
    image = Image.new(mode, size)
    assert to_rgb(image).mode == "RGB"


def test_nan_features_are_named():
    class NaNs(TorchExtractor):
        def extract(self, data, *, batch_size=None, progress=None):
            out = torch.zeros(len(data), 3)
            out[1, 2] = float("nan")
            return out

    dbg = Debugger(
        extractor=NaNs(backbone=nn.Flatten(), head=nn.Linear(3, 2)),
        class_names=["a", "b"],
        cache=False,
    )
    with pytest.raises(ValueError, match="NaN or infinite features for train"):
        dbg.features(ImageDataset([Image.new("RGB", (4, 4))] * 2, [0, 1]), name="train")


@pytest.mark.parametrize(("lam", "match"), [(-0.5, "lam must be"), ([0.5, -1], "lam must be")])
def test_negative_lam_is_named(lam, match):
    with pytest.raises(ValueError, match=match):
        _onehot_debugger(2, lam=lam)
