"""OpenCLIPExtractor on a tiny real open_clip CLIP built in-process."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

pytest.importorskip("open_clip")

from failmodes import LinearHeadTrainer  # noqa: E402
from failmodes.extractors import OpenCLIPExtractor  # noqa: E402


def _extractor(tiny_clip, **kwargs) -> OpenCLIPExtractor:
    model, preprocess, tokenizer = tiny_clip
    return OpenCLIPExtractor(model, tokenizer=tokenizer, preprocess=preprocess, **kwargs)


def test_features_are_normalised_image_embeddings(tiny_clip):
    model, preprocess, _ = tiny_clip
    images = [Image.new("RGB", (48, 40), (i * 60, 30, 200)) for i in range(4)]
    features = _extractor(tiny_clip, head=nn.Linear(32, 3)).extract(images)
    with torch.no_grad():
        expected = model.encode_image(torch.stack([preprocess(im) for im in images]))
    expected = expected / expected.norm(dim=1, keepdim=True)
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-6)
    raw = _extractor(tiny_clip, head=nn.Linear(32, 3), normalize=False).extract(images)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(4))


def test_zero_shot_head_gives_clips_zero_shot_logits(tiny_clip):
    model, _, tokenizer = tiny_clip
    names = ["fox", "owl", "wallet"]
    templates = ["a photo of a {}.", "a drawing of a {}."]
    extractor = _extractor(tiny_clip, class_names=names, templates=templates)
    x = torch.rand(5, 3, 32, 32)
    logits = extractor.logits(extractor.extract(x))
    # computed here from the model alone: mean of normalised template embeddings, renormalised
    with torch.no_grad():
        image = model.encode_image(x, normalize=True)
        rows = []
        for name in names:
            text = model.encode_text(tokenizer([t.format(name) for t in templates]), normalize=True)
            mean = text.mean(0)
            rows.append(mean / mean.norm())
        expected = model.logit_scale.exp() * image @ torch.stack(rows).T
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert extractor.head_.out_features == 3


def test_fit_head_learns_a_linear_probe(tiny_clip):
    red = [(Image.new("RGB", (32, 32), (220, 20 + i, 20)), 0) for i in range(6)]
    blue = [(Image.new("RGB", (32, 32), (20, 20 + i, 220)), 1) for i in range(6)]
    extractor = _extractor(tiny_clip).fit_head(
        red + blue, head_trainer=LinearHeadTrainer(weight_decay=1e-4)
    )
    logits = extractor.logits(extractor.extract(red + blue))
    assert logits.argmax(1).tolist() == [0] * 6 + [1] * 6
    # a fitted head wins over the zero-shot one
    again = _extractor(tiny_clip, class_names=["a", "b"]).fit_head(red + blue)
    assert again.head_.bias.abs().sum() > 0  # not the zero-shot head (its bias is zero)


def test_model_by_name_loads_nothing_until_used():
    extractor = OpenCLIPExtractor("ViT-B-32", pretrained="openai", class_names=["fox"])
    assert not hasattr(extractor, "model_")


def test_missing_pieces_are_named(tiny_clip):
    model, preprocess, _ = tiny_clip
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="has no head"):
        _extractor(tiny_clip).extract(x)
    with pytest.raises(ValueError, match="normalize=True"):
        _extractor(tiny_clip, class_names=["a"], normalize=False).extract(x)
    with pytest.raises(ValueError, match="needs preprocess="):
        OpenCLIPExtractor(model, head=nn.Linear(32, 2)).extract(x)
    with pytest.raises(ValueError, match="needs tokenizer="):
        OpenCLIPExtractor(model, preprocess=preprocess, class_names=["a"]).extract(x)
    with pytest.raises(ValueError, match="class_names must be"):
        _extractor(tiny_clip, class_names="fox").extract(x)
    with pytest.raises(TypeError, match="encode_image"):
        OpenCLIPExtractor(nn.Linear(2, 2), preprocess=preprocess).extract(x)
