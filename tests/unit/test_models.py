"""Tests of failmodes.models: the CIFAR ResNets, their checkpoint loader and their transform."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from failmodes.extractors import TorchExtractor
from failmodes.models import (
    CIFAR10_CLASSES,
    CIFAR_MEAN,
    CIFAR_RESNET_DEPTHS,
    CIFAR_STD,
    cifar_resnet,
    cifar_transform,
    load_cifar_resnet,
)

# Parameter counts of the paper's Table 6 (0.27M, 0.46M, 0.66M, 0.85M, 1.7M), exactly.
PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


def _keys(depth: int) -> set[str]:
    n = (depth - 2) // 6
    keys = {"conv1.weight", "linear.weight", "linear.bias"}
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys |= {f"bn1.{k}" for k in bn}
    for stage in (1, 2, 3):
        for i in range(n):
            for j in (1, 2):
                keys.add(f"layer{stage}.{i}.conv{j}.weight")
                keys |= {f"layer{stage}.{i}.bn{j}.{k}" for k in bn}
    return keys


@pytest.mark.parametrize("depth", CIFAR_RESNET_DEPTHS)
def test_architecture_matches_the_paper_and_the_checkpoint_keys(depth):
    model = cifar_resnet(depth)
    assert model.depth == depth
    assert sum(p.numel() for p in model.parameters()) == PARAMS[depth]
    assert set(model.state_dict()) == _keys(depth)
    assert model.linear.in_features == 64 and model.linear.out_features == 10


def test_forward_shapes_and_features_are_the_heads_input():
    model = cifar_resnet(20, num_classes=7).eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (3, 64)
        torch.testing.assert_close(model(x), model.linear(features))
    extracted = TorchExtractor(model, progress=False).extract(x)
    torch.testing.assert_close(extracted, features)


def test_option_a_shortcut_has_no_parameters_and_zero_pads_channels():
    block = cifar_resnet(20).layer2[0]
    assert sum(p.numel() for p in block.shortcut.parameters()) == 0
    x = torch.randn(2, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


def test_seed_gives_the_same_weights_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = cifar_resnet(20, seed=1), cifar_resnet(20, seed=1), cifar_resnet(20, seed=2)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


@pytest.mark.parametrize("depth", [0, 2, 19, 21, 20.0, True, "20"])
def test_bad_depth_is_refused(depth):
    with pytest.raises(ValueError, match="6n \\+ 2"):
        cifar_resnet(depth)


def test_bad_num_classes_is_refused():
    with pytest.raises(ValueError, match="num_classes"):
        cifar_resnet(20, num_classes=0)


@pytest.mark.parametrize("wrapped", [True, False])
def test_load_reads_dataparallel_checkpoints_without_batch_counters(tmp_path, wrapped):
    """The published checkpoints: ``module.`` keys, no ``num_batches_tracked``, extra fields."""
    source = cifar_resnet(32, num_classes=4, seed=3)
    state = {f"module.{k}": v for k, v in source.state_dict().items() if "num_batches" not in k}
    path = tmp_path / "resnet32.th"
    torch.save({"best_prec1": 92.6, "state_dict": state} if wrapped else state, path)
    state_rng = torch.get_rng_state()
    model = load_cifar_resnet(path)
    assert torch.equal(state_rng, torch.get_rng_state())
    assert model.depth == 32 and model.linear.out_features == 4
    assert not model.training
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source.eval()(x))


def test_load_refuses_other_checkpoints(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": torch.nn.Linear(3, 2).state_dict()}, path)
    with pytest.raises(ValueError, match="not a CIFAR ResNet checkpoint"):
        load_cifar_resnet(path)
    state = cifar_resnet(20).state_dict()
    state["layer3.2.extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(ValueError, match="unexpected"):
        load_cifar_resnet(path)
    state = cifar_resnet(20).state_dict()
    del state["layer3.2.conv2.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="missing"):
        load_cifar_resnet(path)


def test_load_never_unpickles_code(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(cifar_resnet(20), path)  # a whole pickled module, not weights
    with pytest.raises(pickle.UnpicklingError):
        load_cifar_resnet(path)


def test_transform_normalises_every_input_type_alike():
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    transform = cifar_transform()
    from_pil = transform(Image.fromarray(array))
    expected = (
        torch.from_numpy(array).permute(2, 0, 1).float() / 255.0
        - torch.tensor(CIFAR_MEAN).view(3, 1, 1)
    ) / torch.tensor(CIFAR_STD).view(3, 1, 1)
    assert from_pil.dtype == torch.float32 and from_pil.shape == (3, 32, 32)
    torch.testing.assert_close(from_pil, expected)
    torch.testing.assert_close(transform(array), expected)
    torch.testing.assert_close(
        transform(torch.from_numpy(array).permute(2, 0, 1) / 255.0), expected
    )
    grey = transform(Image.fromarray(array[:, :, 0], mode="L"))
    torch.testing.assert_close(
        grey[0] * CIFAR_STD[0] + CIFAR_MEAN[0], grey[1] * CIFAR_STD[1] + CIFAR_MEAN[1]
    )
    assert pickle.loads(pickle.dumps(transform))(array).equal(transform(array))


def test_transform_refuses_bad_images_and_arguments():
    transform = cifar_transform()
    with pytest.raises(ValueError, match="uint8"):
        transform(np.zeros((32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="tensor images"):
        transform(torch.zeros(32, 32, 3))
    with pytest.raises(ValueError, match="3 values"):
        cifar_transform(mean=(0.5,))
    with pytest.raises(ValueError, match="positive"):
        cifar_transform(std=(0.2, 0.0, 0.2))


def test_classes_are_in_label_order():
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[-1] == "truck"
    assert len(set(CIFAR10_CLASSES)) == 10
