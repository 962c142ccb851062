"""TimmExtractor on real timm models built with pretrained=False (timm's tiny test models)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

timm = pytest.importorskip("timm")

from failmodes import LinearHeadTrainer, patch_model  # noqa: E402
from failmodes.extractors import TimmExtractor  # noqa: E402


def _model(name: str = "test_vit", **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


@pytest.mark.parametrize("name", ["test_vit", "test_resnet", "test_convnext"])
def test_features_are_pre_logits_and_head_gives_the_models_logits(name):
    model = _model(name, num_classes=7)
    x = torch.rand(5, 3, 64, 64)
    extractor = TimmExtractor(model, batch_size=2)
    features = extractor.extract(x)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model(x)
    assert features.shape == (5, model.num_features)
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(extractor.logits(features), logits, rtol=1e-4, atol=1e-4)
    assert extractor.head.out_features == 7


def test_model_by_name_is_built_on_first_use_with_its_own_transform():
    extractor = TimmExtractor("test_vit", pretrained=False, model_kwargs={"num_classes": 3})
    assert not hasattr(extractor, "model_")  # the constructor only stores
    images = [Image.new("RGB", (50, 30), (200, 10, 10)), Image.new("L", (90, 90), 128)]
    features = extractor.extract(images)
    assert features.shape == (2, extractor.model_.num_features)
    # timm's inference transform for the model: resized and cropped to its input size
    size = timm.data.resolve_model_data_config(extractor.model_)["input_size"]
    assert tuple(extractor.transform_(images[0]).shape) == size


def test_dataloader_workers_give_the_same_features():
    model = _model("test_resnet", num_classes=4)
    data = [(Image.new("RGB", (40, 40), (i * 20, 100, 200 - i * 20)), i % 4) for i in range(6)]
    serial = TimmExtractor(model, batch_size=4).extract(data)
    parallel = TimmExtractor(model, batch_size=4, num_workers=2).extract(data)
    torch.testing.assert_close(serial, parallel)


def test_bfloat16_autocast_stays_close_and_returns_float32():
    model = _model("test_vit", num_classes=3)
    x = torch.rand(4, 3, 64, 64)
    full = TimmExtractor(model, precision="float32").extract(x)
    half = TimmExtractor(model, precision="bfloat16").extract(x)
    assert half.dtype == torch.float32
    assert not torch.equal(full, half)  # autocast really ran
    torch.testing.assert_close(half, full, rtol=0.1, atol=0.1)


def test_refit_head_patches_back_into_the_timm_model():
    model = _model("test_vit", num_classes=2)
    x = torch.rand(8, 3, 64, 64)
    x[4:] *= 0.2  # two visibly different groups
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    extractor = TimmExtractor(model)
    features = extractor.extract(x)
    head = LinearHeadTrainer(weight_decay=1e-3).fit(features, labels, num_classes=2)
    patched = patch_model(model, head)
    with torch.no_grad():
        assert torch.equal(patched(x).argmax(1), labels)
        torch.testing.assert_close(patched(x), head(features), rtol=1e-4, atol=1e-4)


def test_bad_models_and_arguments_are_named():
    with pytest.raises(TypeError, match="not an nn.Linear"):
        TimmExtractor(_model("test_vit", num_classes=0)).extract(torch.rand(1, 3, 64, 64))
    with pytest.raises(TypeError, match="use TorchExtractor"):
        _ = TimmExtractor(nn.Sequential(nn.Flatten(), nn.Linear(3, 2))).head
    with pytest.raises(TypeError, match="timm model name or a timm model"):
        _ = TimmExtractor(42).head
    with pytest.raises(ValueError, match="pretrained= to TimmExtractor"):
        _ = TimmExtractor("test_vit", model_kwargs={"pretrained": False}).head
    with pytest.raises(ValueError, match="precision must be one of"):
        TimmExtractor(_model(), precision="half").extract(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="model must be a timm model name .*'no_such_model_xyz'"):
        _ = TimmExtractor("no_such_model_xyz", pretrained=False).head
