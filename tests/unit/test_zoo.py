"""The ToyWorld model zoo: multi-task pretraining, the architectures, the cache, the heads."""

from __future__ import annotations

import pytest
import torch

from failmodes.cache import Cache
from failmodes.toyworld import ToyBackbone, ToyWorld, toy_classifier
from failmodes.toyworld.zoo import (
    ZOO,
    ToyMixer,
    ZooSpec,
    build_backbone,
    pretrain_backbone,
    zoo_backbone,
    zoo_models,
)

# a few seconds in all: tiny networks, a few dozen images, one epoch
TINY = {"n_train": 64, "n_val": 40, "epochs": 1, "batch_size": 32}
SPECS = {
    "c1": ZooSpec("cnn", "ToyBackbone", {"widths": (4, 8)}, seed=0),
    "c2": ZooSpec("cnn", "ToyBackbone", {"widths": (6, 12)}, seed=1),
    "m1": ZooSpec("mixer", "ToyMixer", {"dim": 16, "depth": 1, "token_hidden": 16}, seed=0),
}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pretraining_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    first, info = pretrain_backbone(lambda: ToyBackbone((4, 8)), seed=3, **TINY)
    assert torch.equal(torch.get_rng_state(), state)
    again, _ = pretrain_backbone(lambda: ToyBackbone((4, 8)), seed=3, **TINY)
    other, _ = pretrain_backbone(lambda: ToyBackbone((4, 8)), seed=4, **TINY)
    assert _same_weights(first, again)
    assert not _same_weights(first, other)
    assert not first.training
    assert set(info["validation_accuracy"]) == {"shape", "background", "color"}
    assert all(0.0 <= v <= 1.0 for v in info["validation_accuracy"].values())
    assert len(info["loss"]) == TINY["epochs"]


def test_pretraining_takes_a_module_and_checks_its_settings():
    module = ToyMixer(dim=16, depth=1, token_hidden=16)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    out, _ = pretrain_backbone(module, **TINY)
    assert out is module
    assert any(not torch.equal(before[k], v) for k, v in module.state_dict().items())
    with pytest.raises(ValueError, match="epochs"):
        pretrain_backbone(module, **{**TINY, "epochs": 0})
    with pytest.raises(TypeError, match="feature_dim"):
        pretrain_backbone(torch.nn.Flatten(), **TINY)


def test_the_zoo_has_two_families_of_at_least_three_models():
    per_category: dict[str, int] = {}
    for spec in ZOO.values():
        per_category[spec.category] = per_category.get(spec.category, 0) + 1
    assert len(per_category) >= 2
    assert min(per_category.values()) >= 3
    assert "cnn" in per_category
    for name, spec in ZOO.items():
        backbone = build_backbone(spec).eval()
        with torch.no_grad():
            feats = backbone(torch.rand(2, 3, 32, 32))
        assert feats.shape == (2, backbone.feature_dim), name
        if spec.category != "cnn":
            assert not any(
                isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
                for m in backbone.modules()
            ), name


def test_zoo_models_shapes_categories_and_heads(tmp_path):
    world = ToyWorld(seed=1)
    models = zoo_models(world, specs=SPECS, per_class=5, cache=tmp_path, **TINY)
    assert list(models) == list(SPECS)
    assert {n: m.category for n, m in models.items()} == {"c1": "cnn", "c2": "cnn", "m1": "mixer"}
    x = torch.rand(3, 3, 32, 32)
    for name, zm in models.items():
        assert zm.name == name
        backbone, head = zm.model
        assert isinstance(head, torch.nn.Linear) and head.out_features == len(world.class_names)
        assert not any(p.requires_grad for p in zm.model.parameters())
        with torch.no_grad():
            assert backbone(x).shape == (3, backbone.feature_dim)
            assert zm.model(x).shape == (3, 10)
        # the head is the one toy_classifier fits on the world's biased training split
        expected = toy_classifier(world, per_class=5, backbone=backbone)[-1]
        assert torch.allclose(head.weight, expected.weight, atol=1e-5)
        assert torch.allclose(head.bias, expected.bias, atol=1e-5)
        assert zm.pretraining["settings"] == {**SPECS[name].settings(**TINY)}


def test_backbones_are_cached_once_for_every_world(tmp_path):
    cache = Cache(tmp_path)
    spec = SPECS["c1"]
    first, info = zoo_backbone(spec, cache=cache, **TINY)
    entries = sorted(p.name for p in (tmp_path / "toyworld-zoo").rglob("*.*"))
    assert len(entries) == 2  # weights and report
    again, info_again = zoo_backbone(spec, cache=cache, **TINY)
    assert _same_weights(first, again)
    assert info_again == info  # read back: a new pretraining would time differently
    assert sorted(p.name for p in (tmp_path / "toyworld-zoo").rglob("*.*")) == entries

    # the world does not enter a backbone's key: other worlds reuse it, with their own heads
    a = zoo_models(ToyWorld(seed=1), specs=SPECS, names=["c1"], per_class=5, cache=cache, **TINY)
    b = zoo_models(ToyWorld(seed=2), specs=SPECS, names=["c1"], per_class=5, cache=cache, **TINY)
    assert a["c1"].pretraining == b["c1"].pretraining == info
    assert _same_weights(a["c1"].model[0], first)
    assert not torch.equal(a["c1"].model[-1].weight, b["c1"].model[-1].weight)

    # other settings or another seed are another entry
    zoo_backbone(spec, cache=cache, **{**TINY, "epochs": 2})
    zoo_backbone(ZooSpec("cnn", "ToyBackbone", {"widths": (4, 8)}, seed=5), cache=cache, **TINY)
    assert len(list((tmp_path / "toyworld-zoo").rglob("*.safetensors"))) == 3


def test_zoo_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown zoo models"):
        zoo_models(ToyWorld(), names=["nope"], cache=False)
    with pytest.raises(TypeError, match="unknown pretraining settings"):
        zoo_backbone(SPECS["c1"], cache=False, n_images=5)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_backbone(ZooSpec("x", "ResNet", {}))


def test_a_zoo_model_works_with_the_torch_extractor(tmp_path):
    from failmodes import TorchExtractor

    zm = zoo_models(ToyWorld(), specs=SPECS, names=["m1"], per_class=5, cache=tmp_path, **TINY)
    model = zm["m1"].model
    extractor = TorchExtractor(model, batch_size=4)
    assert torch.equal(extractor.head.weight, model[-1].weight)  # the head, not a hidden layer
    x = torch.rand(5, 3, 32, 32)
    feats = extractor.extract(x)
    assert feats.shape == (5, model[0].feature_dim)
    with torch.no_grad():
        assert torch.allclose(extractor.logits(feats), model(x), atol=1e-5)
