"""The features step keeping a set as shards in the cache, and the Debugger fitting from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from failmodes import Debugger, TorchExtractor
from failmodes.cache import Cache
from failmodes.shards import FeatureShards
from failmodes.steps import extract_features
from failmodes.toyworld import ToyWorld, demo_components

N, D, C = 50, 12, 3


class _Counting(TorchExtractor):
    """A real TorchExtractor that counts the images it is asked for and can fail on a call
    (its counters end in "_", so they are not part of its cache key)."""

    def __init__(self, scale: float = 1.0, fail_on_call: int | None = None) -> None:
        torch.manual_seed(0)
        super().__init__(nn.Sequential(nn.Flatten(), nn.Linear(D, C)))
        self.scale, self.fail_on_call_, self.calls_, self.images_ = scale, fail_on_call, 0, 0

    def extract(self, data, *, batch_size=None, progress=None):
        self.calls_ += 1
        if self.calls_ == self.fail_on_call_:
            raise RuntimeError("the extractor stopped")
        self.images_ += len(data)
        return super().extract(data, batch_size=batch_size, progress=progress) * self.scale


def _data(n: int = N):
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(3, 2, 2, generator=g), i % C) for i in range(n)]


def _rows(shards: FeatureShards) -> torch.Tensor:
    return torch.cat([x for x, _ in shards])


def test_shards_hold_the_rows_of_an_in_memory_extraction_part_by_part(tmp_path):
    data, cache = _data(), Cache(tmp_path)
    whole = extract_features(_Counting(), data, cache=None)
    held = extract_features(_Counting(), data, cache=cache, checkpoint_every=16, shards=True)
    assert isinstance(held.features, FeatureShards)
    assert held.features.rows == (16, 16, 16, 2) and held.features.shape == (N, D)
    assert torch.equal(_rows(held.features), whole.features)
    assert np.array_equal(held.labels, whole.labels)
    assert {e.kind for e in cache.entries()} == {"feature-parts"}  # never joined into one
    joined = extract_features(_Counting(), data, cache=cache, checkpoint_every=16)
    assert held.key is not None and held.key != joined.key  # their fits are other entries


def test_float32_shards_reuse_the_parts_of_an_in_memory_extraction(tmp_path):
    data, cache = _data(), Cache(tmp_path)
    extract_features(_Counting(), data, cache=cache, checkpoint_every=16)
    again = _Counting()
    held = extract_features(again, data, cache=cache, checkpoint_every=16, shards=True)
    assert again.images_ == 0 and len(held.features) == N


def test_float16_shards_store_the_rounded_features_in_their_own_entries(tmp_path):
    data, cache = _data(), Cache(tmp_path)
    whole = extract_features(_Counting(), data, cache=None).features
    half = extract_features(
        _Counting(), data, cache=cache, checkpoint_every=20, shards=True, shard_dtype="float16"
    )
    first, _ = half.features.load(0)
    assert first.dtype == torch.float16
    assert torch.equal(_rows(half.features).float(), whole.half().float())
    again = _Counting()
    extract_features(again, data, cache=cache, checkpoint_every=20, shards=True)
    assert again.images_ == N  # float32 parts are other entries


def test_a_killed_sharded_extraction_resumes_from_its_last_part(tmp_path):
    data, cache = _data(), Cache(tmp_path)
    extractor = _Counting(fail_on_call=3)
    with pytest.raises(RuntimeError, match="stopped"):
        extract_features(extractor, data, cache=cache, checkpoint_every=16, shards=True)
    assert extractor.images_ == 32
    held = extract_features(extractor, data, cache=cache, checkpoint_every=16, shards=True)
    assert extractor.images_ == N and len(held.features) == N  # only the parts not cached


def test_features_beyond_float16_are_refused_naming_the_images(tmp_path):
    with pytest.raises(ValueError, match=r"images 0:16\) exceed float16's range.*float32"):
        extract_features(
            _Counting(scale=1e6),
            _data(),
            cache=Cache(tmp_path),
            name="train",
            checkpoint_every=16,
            shards=True,
            shard_dtype="float16",
        )


def test_a_pruned_part_is_named_when_a_fit_reads_it(tmp_path):
    cache = Cache(tmp_path)
    held = extract_features(
        _Counting(), _data(), cache=cache, checkpoint_every=16, shards=True, name="train"
    )
    assert cache.prune(older_than=0.0)
    with pytest.raises(FileNotFoundError, match=r"train \(images 0:16\) are gone .*extract"):
        held.features.load(0)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"cache": None}, ValueError, "shards=True needs a cache"),
        ({"shard_dtype": "bfloat16"}, ValueError, "shard_dtype must be one of"),
        ({"shards": "yes"}, TypeError, "shards must be True or False"),
    ],
)
def test_bad_shard_settings_are_refused(tmp_path, changes, error, match):
    kwargs = {"cache": Cache(tmp_path), "shards": True, **changes}
    with pytest.raises(error, match=match):
        extract_features(_Counting(), _data(), **kwargs)


def test_shards_of_features_the_cache_cannot_name_are_refused(tmp_path):
    extractor = _Counting()
    extractor.opaque = object()  # a setting the cache cannot describe: no key, no shards
    with pytest.raises(ValueError, match="the cache cannot name them: the extractor _Counting"):
        extract_features(extractor, _data(), cache=Cache(tmp_path), shards=True, name="train")


@pytest.mark.parametrize(
    ("setting", "value", "match"),
    [
        ("train_shards", 1, "train_shards must be True or False"),
        ("shard_dtype", "half", "shard_dtype must be one of"),
    ],
)
def test_bad_debugger_shard_settings_are_refused_before_any_work(setting, value, match):
    world = ToyWorld(seed=0)
    with pytest.raises((TypeError, ValueError), match=match):
        Debugger(**demo_components(world, cache=False), **{setting: value})


def test_a_run_from_train_shards_gives_the_figures_of_a_run_in_memory(tmp_path):
    world = ToyWorld(seed=3)
    train, debug, test = world.train(20), world.debug(400), world.test(200)

    def summary(**changes):
        settings = demo_components(
            world,
            cache=Cache(tmp_path / "cache"),
            train=train,
            k=[2],
            lam=[0.5, 1.0],
            images_per_mode=[5],
            baselines=False,
            checkpoint_every=256,
        )
        result = Debugger(**settings, **changes).run(train, debug, test, seed=0, guard=False)
        out = result.summary()
        out.pop("seconds")
        out["config"].pop("train_shards")
        return result, out

    memory, in_memory = summary()
    held, sharded = summary(train_shards=True)
    assert sharded == in_memory
    for name in ("failmodes", "before"):  # the same fit up to the order of its sums
        torch.testing.assert_close(
            held.heads[name].weight, memory.heads[name].weight, rtol=0, atol=1e-4
        )


def test_repair_takes_shards_as_train_features(tmp_path):
    world = ToyWorld(seed=0)
    dbg = Debugger(**demo_components(world, cache=Cache(tmp_path)))
    data = world.train(10)
    whole = dbg.features(data, name="train")
    held = dbg.features(data, name="train", shards=True)
    a = dbg.repair(whole, lam=0.0)
    b = dbg.repair(held.features, lam=0.0)
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=1e-4)
