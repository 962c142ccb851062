"""TorchExtractor on real (tiny) torch modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

import failmodes
from failmodes.data import ImageDataset, to_rgb
from failmodes.extractors import TorchExtractor
from failmodes.interfaces import FeatureExtractor

SIZE = 8


def small_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * SIZE * SIZE, 16),
        nn.ReLU(),
        nn.Linear(16, 5),
    )


def images(n: int, seed: int = 0, size: int = SIZE) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return list(torch.rand(n, 3, size, size, generator=generator))


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.array(to_rgb(image), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def test_is_a_feature_extractor_and_exported():
    assert issubclass(TorchExtractor, FeatureExtractor)
    assert failmodes.TorchExtractor is TorchExtractor


def test_sequential_features_are_the_heads_input():
    model = small_model()
    x = torch.stack(images(10))
    features = TorchExtractor(model, batch_size=4).extract(list(x))
    with torch.no_grad():
        model.eval()  # the extractor runs the model in eval mode
        expected, logits = model[:-1](x), model(x)
    assert features.dtype == torch.float32 and features.device.type == "cpu"
    assert features.shape == (10, 16)
    torch.testing.assert_close(features, expected, rtol=0, atol=1e-6)
    extractor = TorchExtractor(model)
    torch.testing.assert_close(extractor.logits(features), logits, rtol=0, atol=1e-5)


def test_resnet18_features_are_the_avgpool_output():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10, weights=None).eval()
    x = torch.rand(6, 3, 32, 32)
    extractor = TorchExtractor(model, batch_size=4)
    features = extractor.extract(x)
    with torch.no_grad():
        pooled = nn.Sequential(*list(model.children())[:-1])(x).flatten(1)
        logits = model(x)
    assert features.shape == (6, 512)
    torch.testing.assert_close(features, pooled, rtol=0, atol=1e-5)
    head = extractor.head
    assert type(head) is nn.Linear and head.weight.dtype == torch.float32
    torch.testing.assert_close(head(features).detach(), logits, rtol=0, atol=1e-5)


def test_explicit_backbone_and_head():
    model = small_model()
    backbone, head = model[:-1], model[-1]
    x = torch.stack(images(7))
    extractor = TorchExtractor(backbone=backbone, head=head, batch_size=3)
    features = extractor.extract(list(x))
    torch.testing.assert_close(features, TorchExtractor(model).extract(x), rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(extractor.logits(features), model.eval()(x), atol=1e-5, rtol=0)


def test_backbone_output_is_flattened():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(2))  # (n, 2, 2, 2)
    extractor = TorchExtractor(backbone=backbone, head=nn.Linear(8, 3))
    assert extractor.extract(images(3)).shape == (3, 8)
    with pytest.raises(ValueError, match="8 features per image.*head takes 5"):
        TorchExtractor(backbone=backbone, head=nn.Linear(5, 3)).extract(images(3))


def test_mixed_image_kinds():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    gray16 = rng.integers(0, 65536, (SIZE, SIZE), dtype=np.uint16)
    pil = [
        Image.fromarray(rgb),
        Image.fromarray(rgb).convert("L"),
        Image.fromarray(rgb).convert("RGBA"),
        Image.fromarray(rgb).convert("CMYK"),
        Image.fromarray(gray16.astype(np.int32)).convert("I;16"),
        Image.fromarray(rgb).convert("P"),
    ]
    assert [im.mode for im in pil] == ["RGB", "L", "RGBA", "CMYK", "I;16", "P"]
    tensor = images(1)[0]
    data = [*pil, rgb, np.asarray(pil[1]), tensor]
    extractor = TorchExtractor(small_model(), batch_size=4)
    features = extractor.extract(data)
    expected = [pil_to_tensor(im) for im in [*pil, pil[0], pil[1]]] + [tensor]
    assert features.shape == (len(data), 16)
    torch.testing.assert_close(features, extractor.extract(expected), rtol=0, atol=0)
    # a numpy image and the same image as PIL give the same features
    torch.testing.assert_close(features[6], features[0], rtol=0, atol=0)


def test_transform_is_applied_to_pil_and_numpy_images():
    transforms = pytest.importorskip("torchvision.transforms")
    transform = transforms.Compose(
        [transforms.Resize(SIZE), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.2] * 3)]
    )
    rgb = np.random.default_rng(1).integers(0, 256, (2 * SIZE, 2 * SIZE, 3), dtype=np.uint8)
    extractor = TorchExtractor(small_model(), transform=transform)
    features = extractor.extract([Image.fromarray(rgb), rgb])
    expected = TorchExtractor(small_model()).extract([transform(Image.fromarray(rgb))])
    torch.testing.assert_close(features, expected.expand(2, -1), rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="does not accept tensor images"):
        extractor.extract(images(1))


def test_pairs_and_bare_images_give_identical_features():
    xs = images(9)
    extractor = TorchExtractor(small_model(), batch_size=4)
    bare = extractor.extract(xs)
    torch.testing.assert_close(extractor.extract([(x, i % 3) for i, x in enumerate(xs)]), bare)
    torch.testing.assert_close(extractor.extract(ImageDataset(xs, [0] * 9)), bare)
    torch.testing.assert_close(extractor.extract(iter(xs)), bare)  # an iterable, no len
    stacked = torch.stack(xs)
    torch.testing.assert_close(extractor.extract(stacked), bare)
    torch.testing.assert_close(extractor.extract(TensorDataset(stacked, torch.zeros(9))), bare)


@pytest.mark.parametrize("batch_size", [3, 64])
def test_order_is_kept_across_batch_sizes(batch_size):
    xs = images(11)
    model = small_model()
    one = TorchExtractor(model, batch_size=1).extract(xs)
    other = TorchExtractor(model, batch_size=64).extract(xs, batch_size=batch_size)
    torch.testing.assert_close(other, one, rtol=0, atol=1e-6)
    assert not torch.allclose(one[0], one[1])


def test_features_are_ordinary_tensors_for_autograd():
    features = TorchExtractor(small_model()).extract(images(4))
    assert not features.is_inference()
    head = nn.Linear(16, 5)
    nn.functional.cross_entropy(head(features), torch.tensor([0, 1, 2, 3])).backward()
    assert head.weight.grad is not None


@pytest.mark.parametrize("training", [True, False])
def test_training_flags_are_restored(training):
    model = small_model().train(training)
    model[1].training = not training  # a mixed state is restored exactly too
    before = [m.training for m in model.modules()]
    running_mean = model[1].running_mean.clone()
    TorchExtractor(model).extract(images(4))
    assert [m.training for m in model.modules()] == before
    torch.testing.assert_close(model[1].running_mean, running_mean)  # ran in eval mode


def test_head_is_a_detached_cpu_copy():
    model = small_model()
    head = TorchExtractor(model).head
    assert type(head) is nn.Linear and head is not model[-1]
    with torch.no_grad():
        head.weight.zero_()
    assert model[-1].weight.abs().sum() > 0
    state = torch.get_rng_state()
    TorchExtractor(model).head  # noqa: B018 - reading it must not consume global randomness
    assert torch.equal(torch.get_rng_state(), state)


def test_num_workers_gives_the_same_features():
    rng = np.random.default_rng(2)
    pil = [Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)) for _ in range(7)]
    data = ImageDataset(pil, list(range(7)))
    model = small_model()
    expected = TorchExtractor(model, batch_size=3).extract(data)
    features = TorchExtractor(model, batch_size=3, num_workers=2).extract(data)
    torch.testing.assert_close(features, expected, rtol=0, atol=0)


def test_num_workers_reports_mismatched_sizes():
    data = ImageDataset([*images(3), images(1, size=SIZE + 2)[0]], [0] * 4)
    with pytest.raises(ValueError, match=r"image 3 has shape \(3, 10, 10\)"):
        TorchExtractor(small_model(), batch_size=4, num_workers=2).extract(data)


def test_progress_bar(capsys):
    TorchExtractor(small_model(), batch_size=2, progress=True).extract(images(3))
    assert "2/2" in capsys.readouterr().err


def test_error_without_linear():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
    with pytest.raises(TypeError, match="no nn.Linear"):
        TorchExtractor(model).extract(images(2))


def test_error_model_and_backbone():
    model = small_model()
    with pytest.raises(ValueError, match="model= or backbone= and head=, not both.*backbone="):
        TorchExtractor(model, backbone=model[:-1]).extract(images(2))
    with pytest.raises(ValueError, match="needs model= .* or backbone= and head="):
        TorchExtractor().extract(images(2))
    with pytest.raises(ValueError, match="go together, got only head="):
        TorchExtractor(head=nn.Linear(2, 2)).head  # noqa: B018


def test_error_mismatched_sizes():
    xs = [*images(4), images(1, size=SIZE + 1)[0]]
    with pytest.raises(ValueError, match=r"image 4 has shape \(3, 9, 9\) but image 3 has"):
        TorchExtractor(small_model(), batch_size=3).extract(xs)


def test_error_empty_data():
    with pytest.raises(ValueError, match="empty"):
        TorchExtractor(small_model()).extract([])
    with pytest.raises(ValueError, match="empty"):
        TorchExtractor(small_model()).extract(iter([]))


class NaNAfter(nn.Module):
    """Features turn NaN from sample ``start`` on."""

    def __init__(self, start: int):
        super().__init__()
        self.start = start
        self.head = nn.Linear(3, 2)
        self.index = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x.mean(dim=(2, 3))
        rows = torch.arange(self.index, self.index + len(x))
        self.index += len(x)
        features = torch.where((rows >= self.start)[:, None], torch.nan, features)
        return self.head(features)


def test_error_nan_features_names_the_batch():
    with pytest.raises(ValueError, match=r"batch 2 \(images 4-5\) contain NaN"):
        TorchExtractor(NaNAfter(start=5), batch_size=2).extract(images(8))


def test_error_head_input_not_2d():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Linear(SIZE, 4))  # Linear on (n, 2, 8, 8)
    with pytest.raises(ValueError, match=r"receives input of shape \(2, 2, 8, 8\), not \(2, d\)"):
        TorchExtractor(model).extract(images(2))


def test_warns_when_the_head_is_not_the_last_step():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 4), nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="differs from its last nn.Linear"):
        TorchExtractor(model).extract(images(2))


def test_error_integer_tensors_and_unknown_types():
    with pytest.raises(TypeError, match="torch.uint8 tensors"):
        TorchExtractor(small_model()).extract(torch.zeros(2, 3, SIZE, SIZE, dtype=torch.uint8))
    with pytest.raises(TypeError, match="unsupported image type str"):
        TorchExtractor(small_model()).extract(["a.png"])
