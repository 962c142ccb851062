"""Tests of failmodes.shards (FeatureShards) and of LinearHeadTrainer fitting from shards."""

from __future__ import annotations

import json
import weakref

import numpy as np
import pytest
import torch
from torch import nn

from failmodes import Features
from failmodes.cache import Cache
from failmodes.heads import LinearHeadTrainer
from failmodes.shards import MANIFEST, FeatureShards

N, D, C = 120, 6, 4


def _problem(seed: int = 0, n: int = N, m: int = 30):
    """Gaussian class clusters and a shifted extra set."""
    g = torch.Generator().manual_seed(seed)
    means = 2.0 * torch.randn(C, D, generator=g)
    y = torch.arange(n) % C
    x = means[y] + torch.randn(n, D, generator=g)
    ye = torch.arange(m) % C
    xe = means[ye] + torch.randn(D, generator=g) + torch.randn(m, D, generator=g)
    return x, y, xe, ye


def _trainer(**params):
    return LinearHeadTrainer(**{"weight_decay": 1e-2, "progress": False, **params})


def _assert_same_head(a: nn.Linear, b: nn.Linear, x: torch.Tensor, atol: float = 1e-5):
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=atol)
    torch.testing.assert_close(a.bias, b.bias, rtol=0, atol=atol)
    assert torch.equal(a(x).argmax(1), b(x).argmax(1))


# ----------------------------------------------------------------------------- fitting


@pytest.mark.parametrize("rows_per_shard", [7, 40, N])  # uneven last shard, even, one shard
@pytest.mark.parametrize("extra", [False, True])
@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_fit_from_shards_equals_fit_in_memory(tmp_path, rows_per_shard, extra, solver):
    x, y, xe, ye = _problem()
    more = {"extra_features": xe, "extra_labels": ye, "lam": 0.7} if extra else {}
    params = {"solver": solver, "epochs": 40} if solver == "sgd" else {}
    shards = FeatureShards.write(tmp_path / "s", x, y, rows_per_shard=rows_per_shard)
    in_memory = _trainer(**params)
    from_shards = _trainer(**params)
    _assert_same_head(in_memory.fit(x, y, **more), from_shards.fit(shards, **more), x)
    assert from_shards.loss_ == pytest.approx(in_memory.loss_, rel=1e-6)


def test_one_shard_without_extra_rows_is_bit_identical_to_in_memory(tmp_path):
    x, y, _, _ = _problem(1)
    shards = FeatureShards.write(tmp_path / "s", x, y, rows_per_shard=N)
    a, b = _trainer(), _trainer()
    head_a, head_b = a.fit(x, y), b.fit(shards)  # the same sums in the same order
    assert torch.equal(head_a.weight, head_b.weight) and torch.equal(head_a.bias, head_b.bias)
    assert (a.n_iter_, a.n_evals_, a.loss_) == (b.n_iter_, b.n_evals_, b.loss_)


def test_float16_shards_fit_the_rounded_features_and_stay_close(tmp_path):
    x, y, xe, ye = _problem(2)
    shards = FeatureShards.write(tmp_path / "s", x, y, rows_per_shard=25, dtype="float16")
    assert shards.dtype == "float16" and shards.load(0)[0].dtype == torch.float16
    head = _trainer().fit(shards, extra_features=xe, extra_labels=ye)
    rounded = _trainer().fit(x.half().float(), y, extra_features=xe, extra_labels=ye)
    _assert_same_head(head, rounded, x)
    exact = _trainer().fit(x, y, extra_features=xe, extra_labels=ye)
    _assert_same_head(head, exact, x, atol=1e-2)


def test_shards_from_cache_entries_fit_as_in_memory(tmp_path):
    x, y, _, _ = _problem(3)
    cache = Cache(tmp_path)
    cuts = [(0, 50), (50, 100), (100, N)]
    for start, stop in cuts:
        cache.put_tensors("feature-parts", f"part{start}", {"features": x[start:stop]})
    loaders = [
        lambda start=start: cache.get_tensors("feature-parts", f"part{start}") for start, _ in cuts
    ]
    shards = FeatureShards(loaders, y, rows=[stop - start for start, stop in cuts])
    assert shards.dim == D and len(shards) == N and shards.num_shards == 3
    _assert_same_head(_trainer().fit(x, y), _trainer().fit(shards), x)


def test_each_evaluation_reads_every_shard_once_holding_one_at_a_time():
    x, y, _, _ = _problem(4)
    loads: list[int] = []
    last: list[weakref.ref] = []

    def loader(index: int):
        def load() -> torch.Tensor:
            # the shard read before this one is gone: nothing kept it
            assert not last or last[-1]() is None, f"shard {loads[-1]} is still held"
            loads.append(index)
            shard = x[index * 30 : (index + 1) * 30].clone()
            last.append(weakref.ref(shard))
            return shard

        return load

    shards = FeatureShards([loader(i) for i in range(4)], y, rows=[30] * 4, dim=D)
    trainer = _trainer()
    trainer.fit(shards)
    assert loads == [0, 1, 2, 3] * trainer.n_evals_


def test_float32_then_float64_phases_read_shards_in_each_dtype(tmp_path, caplog):
    x, y, _, _ = _problem(5)
    x = 30.0 * x  # confident rows: float32 runs out of precision before tol=1e-12
    shards = FeatureShards.write(tmp_path / "s", x, y, rows_per_shard=50)
    a, b = _trainer(tol=1e-12), _trainer(tol=1e-12)
    with caplog.at_level("INFO", logger="failmodes"):
        head_a = a.fit(x, y)
    assert "continuing in float64" in caplog.text
    head_b = b.fit(shards)
    _assert_same_head(head_a, head_b, x, atol=1e-4)
    assert b.loss_ == pytest.approx(a.loss_, rel=1e-9)


# ----------------------------------------------------------------------------- refusals


def test_labels_given_with_shards_are_refused(tmp_path):
    x, y, _, _ = _problem()
    shards = FeatureShards.write(tmp_path / "s", x, y)
    with pytest.raises(ValueError, match="labels must be None when features are FeatureShards"):
        _trainer().fit(shards, y)


def test_labels_are_required_with_a_tensor():
    x, _, _, _ = _problem()
    with pytest.raises(ValueError, match="labels are required"):
        _trainer().fit(x)


def test_minibatch_sgd_from_shards_is_refused_naming_the_alternatives(tmp_path):
    x, y, _, _ = _problem()
    shards = FeatureShards.write(tmp_path / "s", x, y)
    with pytest.raises(ValueError, match="use solver='lbfgs' or batch_size=None"):
        _trainer(solver="sgd", batch_size=16).fit(shards)


def test_shards_of_another_dimension_than_init_are_refused(tmp_path):
    x, y, xe, ye = _problem()
    shards = FeatureShards.write(tmp_path / "s", x, y)
    with pytest.raises(ValueError, match=f"init has in_features={D + 1} but features has"):
        _trainer().fit(shards, init=nn.Linear(D + 1, C))
    with pytest.raises(ValueError, match="extra_features has dimension"):
        _trainer().fit(shards, extra_features=xe[:, 1:], extra_labels=ye)


def test_non_finite_features_in_a_shard_are_refused():
    x, y, _, _ = _problem()
    bad = x.clone()
    bad[70, 2] = float("nan")
    shards = FeatureShards([lambda: bad[:60], lambda: bad[60:]], y, rows=[60, 60])
    with pytest.raises(ValueError, match="shard 1 of the features contains NaN"):
        _trainer().fit(shards)


# ----------------------------------------------------------------------------- writing, opening


def test_write_then_open_gives_back_the_rows(tmp_path):
    x, y, _, _ = _problem()
    written = FeatureShards.write(tmp_path / "s", x, y, rows_per_shard=50)
    opened = FeatureShards.open(tmp_path / "s")
    for shards in (written, opened):
        assert (len(shards), shards.dim, shards.num_shards, shards.rows) == (N, D, 3, (50, 50, 20))
        assert shards.dtype == "float32" and shards.path == tmp_path / "s"
        assert torch.equal(torch.cat([f for f, _ in shards]), x)
        assert torch.equal(torch.cat([lab for _, lab in shards]), y)
        assert torch.equal(shards.labels, y)
    manifest = json.loads((tmp_path / "s" / MANIFEST).read_text())
    assert (manifest["n"], manifest["d"], manifest["dtype"]) == (N, D, "float32")
    assert [s["rows"] for s in manifest["shards"]] == [50, 50, 20]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "labels.safetensors",
        MANIFEST,
        "shard-00000.safetensors",
        "shard-00001.safetensors",
        "shard-00002.safetensors",
    ]


def test_write_from_batches_and_from_features_regroups_the_rows(tmp_path):
    x, y, _, _ = _problem()
    cuts = [0, 3, 40, 41, 97, N]
    batches = ((x[a:b].numpy(), y[a:b].tolist()) for a, b in zip(cuts, cuts[1:], strict=False))
    shards = FeatureShards.write(tmp_path / "b", batches, rows_per_shard=32)
    assert shards.rows == (32, 32, 32, 24)
    assert torch.equal(torch.cat([f for f, _ in shards]), x)
    assert torch.equal(shards.labels, y)
    features = Features(x, y.numpy())
    again = FeatureShards.write(tmp_path / "f", features, rows_per_shard=200)
    assert again.rows == (N,) and torch.equal(again.load(0)[0], x)


def test_write_refuses_bad_input(tmp_path):
    x, y, _, _ = _problem()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "other.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        FeatureShards.write(tmp_path / "full", x, y)
    with pytest.raises(ValueError, match="too large for torch.float16"):
        FeatureShards.write(tmp_path / "a", x * 1e5, y, dtype="float16")
    with pytest.raises(ValueError, match="dtype must be one of"):
        FeatureShards.write(tmp_path / "b", x, y, dtype="int8")
    with pytest.raises(ValueError, match="labels are required"):
        FeatureShards.write(tmp_path / "c", x)
    with pytest.raises(ValueError, match="120 rows of features but 119 labels"):
        FeatureShards.write(tmp_path / "d", x, y[:-1])
    with pytest.raises(ValueError, match="no rows"):
        FeatureShards.write(tmp_path / "e", iter([]))
    assert not (tmp_path / "a" / MANIFEST).exists()  # a failed write leaves no manifest


def test_missing_manifest_or_shard_file_is_named(tmp_path):
    x, y, _, _ = _problem()
    FeatureShards.write(tmp_path / "s", x, y, rows_per_shard=50)
    (tmp_path / "s" / "shard-00001.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00001.safetensors is missing"):
        FeatureShards.open(tmp_path / "s")
    (tmp_path / "s" / MANIFEST).unlink()
    with pytest.raises(FileNotFoundError, match=f"has no {MANIFEST}"):
        FeatureShards.open(tmp_path / "s")


def test_damaged_shard_is_named_when_read(tmp_path):
    x, y, _, _ = _problem()
    shards = FeatureShards.write(tmp_path / "s", x, y, rows_per_shard=50)
    path = tmp_path / "s" / "shard-00002.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0xFF
    path.write_bytes(bytes(blob))
    opened = FeatureShards.open(tmp_path / "s")
    opened.load(0)
    with pytest.raises(ValueError, match="shard-00002.safetensors is damaged"):
        opened.load(2)
    with pytest.raises(ValueError, match="shard-00002.safetensors is damaged"):
        _trainer().fit(opened)
    del shards


def test_shard_with_a_damaged_header_is_named(tmp_path):
    x, y, _, _ = _problem()
    FeatureShards.write(tmp_path / "s", x, y, rows_per_shard=50)
    path = tmp_path / "s" / "shard-00000.safetensors"
    path.write_bytes(path.read_bytes()[:8] + b"{not a header" + path.read_bytes()[21:])
    with pytest.raises(ValueError, match="shard-00000.safetensors is damaged: its header"):
        FeatureShards.open(tmp_path / "s").load(0)


def test_damaged_labels_file_is_named_at_open(tmp_path):
    x, y, _, _ = _problem()
    FeatureShards.write(tmp_path / "s", x, y)
    path = tmp_path / "s" / "labels.safetensors"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match="labels.safetensors is damaged"):
        FeatureShards.open(tmp_path / "s")


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m: "{not json", "is not valid JSON"),
        (lambda m: {**m, "format": "other"}, "its format is not"),
        (lambda m: {**m, "version": 99}, "version 99"),
        (lambda m: {**m, "dtype": "int8"}, "dtype 'int8'"),
        (lambda m: {**m, "n": N + 1}, f"add up to {N}, not n={N + 1}"),
        (lambda m: {**m, "shards": [{**m["shards"][0], "file": "../x"}]}, "shards must be"),
        (lambda m: {**m, "labels": None}, "labels must be"),
    ],
)
def test_bad_manifest_is_named_with_what_is_wrong(tmp_path, change, match):
    x, y, _, _ = _problem()
    FeatureShards.write(tmp_path / "s", x, y)
    path = tmp_path / "s" / MANIFEST
    changed = change(json.loads(path.read_text()))
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(ValueError, match=match) as caught:
        FeatureShards.open(tmp_path / "s")
    assert str(path) in str(caught.value)


def test_loaders_are_checked_when_read():
    x, y, _, _ = _problem()
    with pytest.raises(ValueError, match="one count per shard"):
        FeatureShards([lambda: x], y, rows=[60, 60])
    with pytest.raises(ValueError, match="119 labels for 120 rows"):
        FeatureShards([lambda: x], y[:-1], rows=[N])
    shards = FeatureShards([lambda: None, lambda: x[:60, :3]], y, rows=[60, 60], dim=D)
    with pytest.raises(ValueError, match="shard 0: its loader gave nothing"):
        shards.load(0)
    with pytest.raises(ValueError, match=r"shard 1 has features of shape \(60, 3\)"):
        shards.load(1)
    with pytest.raises(IndexError):
        shards.load(2)
    assert np.array_equal(shards.labels.numpy(), y.numpy())
