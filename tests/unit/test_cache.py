"""The on-disk cache: keys, atomic entries, and the Debugger's reuse and resume of its steps."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from failmodes import Debugger, GenerationRequest, StaticProposer, TorchExtractor
from failmodes.cache import Cache, CacheWarning, data_fingerprint, fingerprint
from failmodes.data import ImageDataset, ImageList
from failmodes.heads import LinearHeadTrainer
from failmodes.interfaces import BackgroundProposer, ImageGenerator
from failmodes.proposers import ProposalError
from failmodes.toyworld import ToyWorld, ToyWorldGenerator

WORLD = ToyWorld(seed=2)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.AvgPool2d(4),
        nn.Flatten(),
        nn.Linear(192, 16),
        nn.Tanh(),
        nn.Linear(16, len(WORLD.class_names)),
    )


class CountingExtractor(TorchExtractor):
    """A TorchExtractor that counts the images it was asked for, and can fail on a call.

    Its bookkeeping is private or ends in ``_`` (learned state), so that it is not taken for a
    setting in the cache key.
    """

    def __init__(self, model, fail_on_call: int | None = None, **kwargs):
        super().__init__(model, **kwargs)
        self.calls_: list[int] = []
        self._fail_on_call = fail_on_call

    @property
    def calls(self) -> list[int]:
        return self.calls_

    def extract(self, data, *, batch_size=None, progress=None):
        self.calls_.append(len(data))
        if self._fail_on_call is not None and len(self.calls_) == self._fail_on_call:
            raise RuntimeError("the machine went away")
        return super().extract(data, batch_size=batch_size, progress=progress)


# -- the store -----------------------------------------------------------------------------------


def test_entries_round_trip_and_leave_no_temporary_files(tmp_path):
    cache = Cache(tmp_path)
    key = cache.key("kind", {"a": 1})
    assert cache.get_json("kind", key) is None
    cache.put_json("kind", key, {"values": ["in a desert"]})
    assert cache.get_json("kind", key) == {"values": ["in a desert"]}
    cache.put_tensors("t", key, {"x": torch.arange(6).reshape(2, 3)})
    assert torch.equal(cache.get_tensors("t", key)["x"], torch.arange(6).reshape(2, 3))
    images = [Image.new("RGB", (4, 4), (i * 40, 0, 0)) for i in range(3)]
    given = {"prompt": "p", "images": [{"seed": i} for i in range(3)]}
    cache.put_images("img", key, images, given)
    assert given["images"][0] == {"seed": 0}  # the caller's manifest is left as it was
    back, manifest = cache.get_images("img", key)
    assert [im.tobytes() for im in back] == [im.tobytes() for im in images]
    assert [item["seed"] for item in manifest["images"]] == [0, 1, 2]
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    assert len(list(cache.files())) == 2 + 4  # json, safetensors, 3 PNGs + manifest


def test_a_corrupt_entry_is_a_miss_and_is_removed(tmp_path):
    cache = Cache(tmp_path)
    key = cache.key("t", {})
    cache.put_tensors("t", key, {"x": torch.ones(100)})
    path = cache.entry("t", key).with_suffix(".safetensors")
    path.write_bytes(path.read_bytes()[:50])  # a file cut short
    with pytest.warns(CacheWarning, match="cannot be used"):
        assert cache.get_tensors("t", key) is None
    assert not path.exists()


def test_keys_follow_the_content():
    model = _model()
    before = fingerprint(TorchExtractor(model))
    assert fingerprint(TorchExtractor(model)) == before
    with torch.no_grad():
        model[2].weight[0, 0] += 1e-3  # a fine-tuned model
    assert fingerprint(TorchExtractor(model)) != before
    assert fingerprint(TorchExtractor(model, progress=True)) == fingerprint(TorchExtractor(model))
    # a transform that cannot be described: the component is not cached
    assert fingerprint(TorchExtractor(model, transform=lambda im: im)) is None
    images = [Image.new("RGB", (4, 4), (i, 0, 0)) for i in range(3)]
    data = ImageDataset(images, [0, 1, 2])
    changed = ImageDataset([*images[:2], Image.new("RGB", (4, 4), (9, 9, 9))], [0, 1, 2])
    assert data_fingerprint(data) == data_fingerprint(ImageDataset(images, [0, 1, 2]))
    assert data_fingerprint(changed) != data_fingerprint(data)
    assert data_fingerprint(ImageDataset(images, [0, 1, 1])) != data_fingerprint(data)
    assert data_fingerprint(iter(images)) is None


def test_folder_datasets_are_keyed_by_their_files(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (4, 4)).save(folder / f"{i}.png")

    class Folder:  # what torchvision's ImageFolder exposes
        def __init__(self):
            self.samples = [(str(p), 0) for p in sorted(folder.iterdir())]
            self.transform = None

        def __len__(self):
            return len(self.samples)

        def __getitem__(self, i):
            return Image.open(self.samples[i][0]), 0

    before = data_fingerprint(Folder())
    Image.new("RGB", (4, 4), (1, 2, 3)).save(folder / "1.png")
    os.utime(folder / "1.png", ns=(1, 1))  # a rewritten file: other size or time
    assert data_fingerprint(Folder()) != before
    named = Folder()
    named.cache_key = "my-dataset-v2"
    assert data_fingerprint(named) == {"name": "my-dataset-v2"}


def test_the_api_key_is_not_part_of_a_proposers_key():
    pytest.importorskip("openai")
    from failmodes import ChatGPTProposer

    key = fingerprint(ChatGPTProposer("m", base_url="http://x/v1", api_key="sk-secret-123"))
    assert "sk-secret-123" not in json.dumps(key)
    other = fingerprint(ChatGPTProposer("m", base_url="http://x/v1", api_key="sk-other"))
    assert key == other


# -- the Debugger --------------------------------------------------------------------------------


def _debugger(tmp_path, extractor, **kwargs) -> Debugger:
    settings = {
        "proposer": StaticProposer(WORLD.uncommon_values()),
        "generator": ToyWorldGenerator(WORLD),
        "head_trainer": LinearHeadTrainer(weight_decay=1e-2),
        "class_names": WORLD.class_names,
        "cache": tmp_path / "cache",
    }
    return Debugger(extractor=extractor, **{**settings, **kwargs})


def test_features_are_read_back_and_resume_after_a_crash(tmp_path):
    data = WORLD.debug(1000)
    model = _model()
    reference = TorchExtractor(model).extract(data)
    crashing = CountingExtractor(model, fail_on_call=3)
    dbg = _debugger(tmp_path, crashing, checkpoint_every=300)
    with pytest.raises(RuntimeError, match="went away"):
        dbg.features(data)
    assert crashing.calls == [300, 300, 300]  # two parts done and cached, the third crashed
    resumed = CountingExtractor(model)
    feats, _ = _debugger(tmp_path, resumed, checkpoint_every=300).features(data)
    assert resumed.calls == [300, 100]  # only the parts not done before
    assert torch.equal(feats, reference)
    again = CountingExtractor(model)
    feats_again, _ = _debugger(tmp_path, again, checkpoint_every=300).features(data)
    assert again.calls == [] and torch.equal(feats_again, reference)
    changed = CountingExtractor(_model(seed=1))
    _debugger(tmp_path, changed, checkpoint_every=300).features(data)
    assert sum(changed.calls) == 1000  # another model never meets these entries


def test_without_a_cache_nothing_is_written(tmp_path):
    extractor = CountingExtractor(_model())
    dbg = _debugger(tmp_path, extractor, cache=False)
    data = WORLD.debug(50)
    dbg.features(data)
    dbg.features(data)
    assert extractor.calls == [50, 50]
    assert not (tmp_path / "cache").exists()


class FlakyGenerator(ImageGenerator):
    """ToyWorld's renderer that fails once, at a given call."""

    def __init__(self, world, fail_on_call=None):
        self.inner = ToyWorldGenerator(world)
        self.world = world
        self.fail_on_call = fail_on_call
        self.asked: list[str] = []

    def cache_key(self):
        return {"renderer": fingerprint(self.inner)}

    def generate(self, requests, *, progress=None):
        if self.fail_on_call is not None and len(self.asked) + 1 >= self.fail_on_call:
            self.fail_on_call = None
            raise RuntimeError("out of GPU memory")
        self.asked.extend(r.job_id for r in requests)
        return self.inner.generate(requests)


def test_generation_resumes_request_by_request_with_provenance(tmp_path):
    name = WORLD.class_names[0]
    values = WORLD.uncommon_values()[name][:4]
    requests = [
        GenerationRequest(0, name, v, f"a photo of a {name} {v}", 40, seed=i)
        for i, v in enumerate(values)
    ]  # 40 images each: groups of two requests per cache write
    first = FlakyGenerator(WORLD, fail_on_call=2)
    with pytest.raises(RuntimeError, match="GPU"):
        _debugger(tmp_path, TorchExtractor(_model()), generator=first).generate(requests)
    assert len(first.asked) == 2  # one group of two requests done before the failure
    second = FlakyGenerator(WORLD)
    generated = _debugger(tmp_path, TorchExtractor(_model()), generator=second).generate(requests)
    assert second.asked == [r.job_id for r in requests[2:]]
    expected = ToyWorldGenerator(WORLD).generate(requests)
    assert [im.tobytes() for im in generated.images] == [
        im.tobytes() for ims in expected for im in ims
    ]
    manifests = sorted((tmp_path / "cache" / "generated").rglob("manifest.json"))
    assert len(manifests) == 4
    manifest = json.loads(manifests[0].read_text())
    assert manifest["request"]["prompt"].startswith(f"a photo of a {name}")
    assert len(manifest["images"]) == 40 and "seed" in manifest["images"][0]
    assert manifest["generator"] == {"renderer": fingerprint(ToyWorldGenerator(WORLD))}


class OnceFailingProposer(BackgroundProposer):
    """Answers class by class from a table, failing once at one class as ChatGPTProposer does."""

    def __init__(self, values, fails_on):
        self.values = values
        self.fails_on = fails_on
        self.asked: list[str] = []

    def cache_key(self):
        return {"table": self.values}

    def propose(self, class_names, *, attribute="background"):
        answers = {}
        for name in class_names:
            self.asked.append(name)
            if name == self.fails_on:
                self.fails_on = None
                raise ProposalError("rate limited", name, attribute, partial=answers)
            answers[name] = list(self.values[name])
        return answers


def test_proposals_received_before_an_error_are_kept(tmp_path):
    values = WORLD.uncommon_values()
    failing = WORLD.class_names[3]
    proposer = OnceFailingProposer(values, fails_on=failing)
    dbg = _debugger(tmp_path, TorchExtractor(_model()), proposer=proposer)
    with pytest.raises(ProposalError, match="rate limited"):
        dbg.propose()
    assert proposer.asked == WORLD.class_names[:4]
    proposer.asked.clear()
    proposals = dbg.propose()
    assert proposer.asked == WORLD.class_names[3:]  # the three answers before are not asked again
    assert proposals == {n: list(values[n]) for n in WORLD.class_names}
    proposer.asked.clear()
    dbg.propose()
    assert proposer.asked == []


def test_a_whole_run_is_read_back_identically(tmp_path, monkeypatch):
    world = ToyWorld(seed=3)
    train, debug, test = world.train(20), world.debug(600), world.test(300)
    results = []
    decoded: list[str] = []
    original_open = Image.open

    def counting_open(fp, *args, **kwargs):
        decoded.append(str(fp))
        return original_open(fp, *args, **kwargs)

    for run in range(2):
        if run == 1:  # the rerun checks the generated files' bytes but never decodes them
            monkeypatch.setattr(Image, "open", counting_open)
        extractor = CountingExtractor(_model())
        generator = FlakyGenerator(world)
        dbg = Debugger(
            extractor=extractor,
            proposer=StaticProposer(world.uncommon_values()),
            captioner=_toyclip(),
            generator=generator,
            head_trainer=LinearHeadTrainer(weight_decay=1e-2),
            class_names=world.class_names,
            k=[1, 2],
            lam=[0.5, 1.0],
            images_per_mode=5,
            cache=tmp_path / "cache",
        )
        results.append((dbg.run(train, debug, test, seed=0), extractor.calls, generator.asked))
    (first, calls1, asked1), (second, calls2, asked2) = results
    assert sum(calls1) > 0 and len(asked1) > 0
    assert calls2 == [] and asked2 == []  # nothing recomputed
    a, b = first.summary(), second.summary()
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    for method, head in first.heads.items():
        assert torch.equal(head.weight, second.heads[method].weight), method
    assert isinstance(second.generated.images, ImageList)  # files, read only when indexed
    assert not [path for path in decoded if path.endswith(".png")]
    assert second.generated.images[0].size == first.generated.images[0].size


def test_a_damaged_generated_image_is_regenerated_the_same(tmp_path):
    cache = Cache(tmp_path)
    world = ToyWorld(seed=3)
    generator = FlakyGenerator(world)
    dbg = _debugger(
        tmp_path,
        TorchExtractor(_model()),
        generator=generator,
        cache=cache,
        class_names=world.class_names,
    )
    request = dbg.requests({("circle", world.values[3]): 3}, seed=0)
    first = [im.tobytes() for im in dbg.generate(request).images]
    [png] = [p for p in cache.files() if p.name == "0001.png"]
    blob = bytearray(png.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    png.write_bytes(bytes(blob))
    with pytest.warns(CacheWarning, match="0001.png does not match its checksum"):
        again = dbg.generate(request)
    assert [im.tobytes() for im in again.images] == first


def test_lazy_images_are_checked_to_exist_and_read_on_demand(tmp_path):
    cache = Cache(tmp_path)
    key = cache.key("img", {})
    images = [Image.new("RGB", (4, 4), (i * 40, 0, 0)) for i in range(3)]
    cache.put_images("img", key, images, {"images": [{} for _ in images]})
    lazy, _ = cache.get_images("img", key, lazy=True)
    assert isinstance(lazy, ImageList) and len(lazy) == 3
    assert [im.tobytes() for im in lazy] == [im.tobytes() for im in images]
    assert [im.tobytes() for im in lazy[1:]] == [im.tobytes() for im in images[1:]]
    (cache.entry("img", key) / "0001.png").unlink()
    assert cache.get_images("img", key, lazy=True) is None  # a missing file: a miss
    assert not cache.entry("img", key).exists()


def _toyclip():
    pytest.importorskip("open_clip")
    from failmodes.toyworld import toyclip_captioner

    return toyclip_captioner()


def test_bad_cache_arguments_are_named(tmp_path):
    with pytest.raises(TypeError, match="cache must be"):
        _debugger(tmp_path, TorchExtractor(_model()), cache=3.5).features(WORLD.debug(10))
    with pytest.raises(ValueError, match="checkpoint_every"):
        _debugger(tmp_path, TorchExtractor(_model()), checkpoint_every=0).features(WORLD.debug(10))
    assert np.isfinite(1.0)


# ---------------------------------------------------------------- a cache that verifies
def _filled(tmp_path) -> Cache:
    cache = Cache(tmp_path / "c")
    cache.put_json("captions", "a" * 64, [["in snow", 0.9]])
    cache.put_tensors("features", "b" * 64, {"features": torch.arange(12.0).reshape(3, 4)})
    images = [Image.new("RGB", (6, 6), (i * 50, 20, 200)) for i in range(3)]
    cache.put_images("generated", "c" * 64, images, {"images": [{"seed": i} for i in range(3)]})
    return cache


def _flip(path, at=None):
    blob = bytearray(path.read_bytes())
    at = len(blob) // 2 if at is None else at
    blob[at] ^= 0x5A
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize(
    ("kind", "name", "read"),
    [
        ("captions", "a" * 64 + ".json", lambda c: c.get_json("captions", "a" * 64)),
        ("features", "b" * 64 + ".safetensors", lambda c: c.get_tensors("features", "b" * 64)),
        ("generated", "0001.png", lambda c: c.get_images("generated", "c" * 64, lazy=True)),
        ("generated", "manifest.json", lambda c: c.get_images("generated", "c" * 64)),
    ],
)
def test_a_flipped_byte_is_a_miss_and_verify_finds_it(tmp_path, kind, name, read):
    cache = _filled(tmp_path)
    [path] = [p for p in cache.files() if p.name == name]
    if name.endswith(".json") and kind == "captions":
        text = path.read_text()
        path.write_text(text.replace("in snow", "in snaw"))  # valid JSON, a wrong value
    else:
        _flip(path)
    [(entry, reason)] = cache.verify()
    assert entry.kind == kind and reason
    if kind == "captions" or name == "0001.png":
        assert "match its checksum" in reason
    with pytest.warns(CacheWarning, match="cannot be used"):
        assert read(cache) is None  # a miss, never a wrong value
    assert cache.verify() == []  # the read removed it


def test_entries_without_a_checksum_are_misses_with_one_warning(tmp_path):
    import warnings

    cache = Cache(tmp_path)
    for key in ("d" * 64, "e" * 64):
        path = cache.entry("proposals", key).with_suffix(".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"value": ["in snow"], "provenance": null}')  # an older failmodes's
    assert all("no checksum" in reason for _, reason in cache.verify())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.get_json("proposals", "d" * 64) is None
        assert cache.get_json("proposals", "e" * 64) is None
    [warning] = [w for w in caught if issubclass(w.category, CacheWarning)]  # one, not two
    assert "older failmodes, without checksums" in str(warning.message)
    assert cache.verify() == []


def test_verify_repair_removes_only_the_damaged_entries(tmp_path):
    cache = _filled(tmp_path)
    _flip(next(p for p in cache.files() if p.suffix == ".safetensors"))
    assert len(cache.verify(repair=True)) == 1
    assert cache.verify() == [] and cache.info()["entries"] == 2
    assert cache.get_json("captions", "a" * 64) == [["in snow", 0.9]]


def test_info_and_prune_by_last_use(tmp_path):
    import os
    import time

    cache = _filled(tmp_path)
    info = cache.info()
    assert info["entries"] == 3 and set(info["kinds"]) == {"captions", "features", "generated"}
    old = time.time() - 10 * 86400
    json_path = cache.entry("captions", "a" * 64).with_suffix(".json")
    os.utime(json_path, (old, old))
    assert [e.kind for e in cache.prune(older_than=5 * 86400)] == ["captions"]
    cache.get_tensors("features", "b" * 64)  # a use: the images become the least recent
    removed = cache.prune(max_bytes=cache.info()["bytes"] - 1)
    assert [e.kind for e in removed] == ["generated"] and cache.info()["entries"] == 1
    with pytest.raises(ValueError, match="older_than or max_bytes"):
        cache.prune()


def test_the_cache_commands(tmp_path, capsys):
    from failmodes.cli import main

    cache = _filled(tmp_path)
    where = ["--cache", str(cache.path)]
    assert main(["cache", "info", *where]) == 0
    assert "3 entries" in capsys.readouterr().out
    _flip(next(p for p in cache.files() if p.suffix == ".png"))
    assert main(["cache", "verify", *where]) == 1
    out = capsys.readouterr().out
    assert f"generated/{'c' * 64}: 0" in out and "1 damaged entry" in out
    assert main(["cache", "verify", "--repair", *where]) == 0
    assert main(["cache", "verify", *where]) == 0
    assert main(["cache", "prune", *where]) == 2
    assert "--older-than DAYS" in capsys.readouterr().err
    assert main(["cache", "prune", "--max-size", "0", *where]) == 0
    assert cache.info()["entries"] == 0
    assert main(["cache", "info", "--cache", str(tmp_path / "none")]) == 2


def test_a_cache_entry_naming_a_file_outside_its_folder_is_a_miss(tmp_path):
    import json

    cache = Cache(tmp_path / "cache")
    images = [Image.new("RGB", (8, 8), (200, 40 * i, 30)) for i in range(2)]
    cache.put_images("generated", "k1", images, {"images": [{}, {}]})
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), "red").save(outside)
    entry = cache.entry("generated", "k1")
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["images"][0]["file"] = "../../../secret.png"
    (entry / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning):
        assert cache.get_images("generated", "k1") is None
    assert outside.exists()  # refused, not read, and the file outside is left alone


# -- a cache at a URL ----------------------------------------------------------------------------

_URL_COUNT = iter(range(1_000_000))


@pytest.fixture(params=["file", "memory"])
def url(request, tmp_path):
    """A cache URL through fsspec: a local folder as ``file://``, or fsspec's in-memory store."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    return f"memory://failmodes-test-{os.getpid()}-{next(_URL_COUNT)}"


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(n)
    return [Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)) for _ in range(n)]


def test_a_cache_at_a_url_round_trips_every_kind(url):
    cache = Cache(url)
    assert cache.location == url and not cache.is_local and repr(cache) == f"Cache({url!r})"
    with pytest.raises(ValueError, match="at a URL, not a folder"):
        cache.path  # noqa: B018
    key = cache.key("kind", {"a": 1})
    cache.put_json("proposals", key, {"fox": ["in a desert"]})
    cache.put_tensors("features", key, {"features": torch.arange(6.0).reshape(2, 3)})
    images = _images(3)
    cache.put_images("generated", key, images, {"images": [{"seed": s} for s in range(3)]})
    assert cache.get_json("proposals", key) == {"fox": ["in a desert"]}
    assert torch.equal(
        cache.get_tensors("features", key)["features"], torch.arange(6.0).reshape(2, 3)
    )
    read, manifest = cache.get_images("generated", key, lazy=True)
    assert [np.asarray(i).tolist() for i in read] == [np.asarray(i).tolist() for i in images]
    assert [item["seed"] for item in manifest["images"]] == [0, 1, 2]
    info = cache.info()
    assert info["path"] == url and info["entries"] == 3
    assert {k: v["entries"] for k, v in info["kinds"].items()} == {
        "features": 1,
        "generated": 1,
        "proposals": 1,
    }
    assert cache.verify() == []
    assert all(str(f).startswith(url) for f in cache.files())


def test_an_image_entry_at_a_url_exists_once_its_manifest_is_written(url):
    """Object stores have no atomic rename: the manifest, written last, commits an entry."""
    cache = Cache(url)
    key = cache.key("generated", {"request": 1})
    folder = f"generated/{key[:2]}/{key}"
    cache.store.write(f"{folder}/0000.png", b"a writer was killed after its first image")
    assert cache.get_images("generated", key) is None  # uncommitted: a miss, nothing removed
    assert cache.store.exists(f"{folder}/0000.png")
    assert cache.verify() == [] and cache.verify(repair=True) == []  # maybe still being written
    assert cache.store.exists(f"{folder}/0000.png")
    [(entry, reason)] = cache.verify(grace=0)  # abandoned: damaged
    assert entry.kind == "generated" and "no manifest" in reason
    cache.put_images("generated", key, _images(2), {})
    assert len(cache.get_images("generated", key)[0]) == 2


def test_an_upload_in_flight_is_neither_damaged_nor_the_first_to_be_pruned(url):
    cache = Cache(url)
    old = cache.key("features", {"old": 1})
    cache.put_tensors("features", old, {"features": torch.ones(2)})
    key = cache.key("generated", {"request": 2})
    cache.store.write(f"generated/{key[:2]}/{key}/0000.png", b"the first of three images")
    in_flight = next(e for e in cache.entries() if e.kind == "generated")
    assert in_flight.last_used >= next(e for e in cache.entries() if e.kind == "features").last_used
    assert cache.verify() == []
    with pytest.raises(ValueError, match="grace must be a number >= 0, got -1"):
        cache.verify(grace=-1)


def test_a_damaged_object_at_a_url_is_a_miss_and_is_removed(url):
    cache = Cache(url)
    key = cache.key("features", {"x": 1})
    cache.put_tensors("features", key, {"features": torch.ones(3)})
    rel = f"features/{key[:2]}/{key}.safetensors"
    blob = bytearray(cache.store.read(rel))
    blob[-1] ^= 0xFF
    cache.store.write(rel, bytes(blob))
    with pytest.warns(CacheWarning, match=f"{url}/{rel}"):
        assert cache.get_tensors("features", key) is None
    assert not cache.store.exists(rel)
    cache.put_tensors("features", key, {"features": torch.ones(3)})
    assert cache.prune(max_bytes=0)[0].key == key and cache.info()["entries"] == 0


def test_a_cache_at_a_url_travels_as_text(url):
    cache = Cache(url, storage_options={"auto_mkdir": True} if url.startswith("file") else None)
    cache.put_json("k", cache.key("k", 1), [1])
    state = cache.__getstate__()
    assert state["_store"] is None and state["root"] == url
    twin = Cache.__new__(Cache)
    twin.__dict__.update(state)
    assert twin.get_json("k", twin.key("k", 1)) == [1]


def test_a_whole_run_with_a_file_url_cache_equals_one_with_a_folder(tmp_path):
    world = ToyWorld(seed=3)
    train, debug, test = world.train(20), world.debug(600), world.test(300)
    url = (tmp_path / "store").as_uri()
    summaries, counts = [], []
    for cache in (tmp_path / "folder", url, url):
        extractor, generator = CountingExtractor(_model()), FlakyGenerator(world)
        dbg = Debugger(
            extractor=extractor,
            proposer=StaticProposer(world.uncommon_values()),
            captioner=_toyclip(),
            generator=generator,
            head_trainer=LinearHeadTrainer(weight_decay=1e-2),
            class_names=world.class_names,
            k=[1, 2],
            lam=[0.5, 1.0],
            images_per_mode=5,
            cache=cache,
        )
        summary = dbg.run(train, debug, test, seed=0).summary()
        summary.pop("seconds")
        assert summary["config"].pop("cache") == str(cache)
        summaries.append(summary)
        counts.append((len(extractor.calls), len(generator.asked)))
    assert summaries[0] == summaries[1] == summaries[2]
    assert counts[1][0] > 0 and counts[1][1] > 0 and counts[2] == (0, 0)  # the rerun reads back
    folder, at_url = Cache(tmp_path / "folder").info(), Cache(url).info()
    assert {k: v["entries"] for k, v in folder["kinds"].items()} == {
        k: v["entries"] for k, v in at_url["kinds"].items()
    }


def test_the_cache_commands_take_a_url(tmp_path, capsys, monkeypatch):
    from failmodes.cli import main

    url = (tmp_path / "store").as_uri()
    cache = Cache(url)
    cache.put_json("proposals", "a" * 64, ["in a desert"])
    cache.put_images("generated", "c" * 64, _images(2), {})
    assert main(["cache", "info", "--cache", url]) == 0
    assert capsys.readouterr().out.startswith(f"{url}: 2 entries")
    monkeypatch.setenv("FAILMODES_CACHE", url)
    assert main(["cache", "verify"]) == 0
    assert f"0 damaged entries in {url}" in capsys.readouterr().out
    assert main(["cache", "prune", "--max-size", "0"]) == 0
    assert cache.info()["entries"] == 0
    assert main(["cache", "info", "--cache", f"{url}-none"]) == 2
    assert "no cache at" in capsys.readouterr().err


def test_check_writable_names_the_folder_or_url(tmp_path):
    Cache((tmp_path / "ok").as_uri()).check_writable()
    assert [p.name for p in (tmp_path / "ok").iterdir()] == []  # the probe is removed
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OSError, match="is a file, not a folder"):
        Cache(tmp_path / "file").check_writable()
    url = (tmp_path / "file" / "sub").as_uri()
    with pytest.raises(OSError, match=f"cannot write to {url}"):
        Cache(url).check_writable()


# -- what is a cache: CACHEDIR.TAG ---------------------------------------------------------------

_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"


def _foreign(folder):
    """A user's folder whose files look like entries to a careless eye: ``<x>/<ab>/<ab...>``."""
    files = {
        "docs/ab/abstract.txt": "my thesis",
        "notes/me/meeting.json": '{"when": "monday"}',
        "photos/xy/holiday.png": "not really a png",
    }
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return files


def _files(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()
    }


def test_housekeeping_refuses_a_folder_that_is_not_a_cache(tmp_path, capsys):
    from failmodes.cli import main

    files = _foreign(tmp_path / "mine")
    cache = Cache(tmp_path / "mine")
    refusal = f"{tmp_path / 'mine'} is not a failmodes cache (it has no CACHEDIR.TAG"
    for act in (cache.info, cache.verify, lambda: cache.verify(repair=True), cache.entries):
        with pytest.raises(ValueError, match=re.escape(refusal)):
            act()
    with pytest.raises(ValueError, match="failmodes writes one when it creates a cache"):
        cache.prune(max_bytes=0)
    for action in (["info"], ["verify", "--repair"], ["prune", "--max-size", "0"]):
        assert main(["cache", *action, "--cache", str(tmp_path / "mine")]) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith(f"failmodes cache: error: --cache: {refusal}")
    assert _files(tmp_path / "mine") == files  # every file as it was, and no tag written


def test_failmodes_tags_the_caches_it_writes(tmp_path, url):
    for cache in (Cache(tmp_path / "new"), Cache(url)):
        cache.put_json("proposals", "a" * 64, ["in a desert"])
        tag = cache.store.read("CACHEDIR.TAG").decode()
        first, second = tag.splitlines()[:2]
        assert first == _SIGNATURE and second.startswith("#") and "failmodes" in second
        assert cache.info()["entries"] == 1
        assert all(not str(f).endswith("CACHEDIR.TAG") for f in cache.files())  # no entry file
        cache.prune(max_bytes=0)
        assert cache.store.exists("CACHEDIR.TAG")  # pruning empties a cache, and keeps it one


def test_an_untagged_cache_of_an_earlier_failmodes_is_recognised_and_tagged(tmp_path):
    cache = _filled(tmp_path)  # proposals, features and an image entry
    (cache.path / "CACHEDIR.TAG").unlink()
    assert Cache(cache.path).info()["entries"] == 3
    assert (cache.path / "CACHEDIR.TAG").read_text().startswith(_SIGNATURE)
    (cache.path / "CACHEDIR.TAG").unlink()
    stray = cache.path / "captions" / "aa" / "notes.txt"
    stray.write_text("not an entry")
    with pytest.raises(ValueError, match="captions/aa/notes.txt is not a cache entry"):
        Cache(cache.path).prune(max_bytes=0)
    assert Cache(cache.path).get_json("captions", "a" * 64) == [["in snow", 0.9]]  # reads work
    assert len(list(cache.files())) == 3 + 4  # nothing was removed
    assert Cache(tmp_path / "empty").info()["entries"] == 0  # nothing to lose, nothing written
    assert not (tmp_path / "empty").exists()


def test_a_run_reads_and_writes_an_untagged_folder_and_tags_it(tmp_path):
    data = WORLD.debug(20)
    first, _ = _debugger(tmp_path, CountingExtractor(_model())).features(data)
    (tmp_path / "cache" / "CACHEDIR.TAG").unlink()
    again = CountingExtractor(_model())
    second, _ = _debugger(tmp_path, again).features(data)
    assert again.calls == [] and torch.equal(first, second)  # read back, untagged
    _foreign(tmp_path / "cache")
    _debugger(tmp_path, TorchExtractor(_model())).features(WORLD.debug(10))  # a write
    assert (tmp_path / "cache" / "CACHEDIR.TAG").read_text().startswith(_SIGNATURE)


def test_only_what_failmodes_names_is_an_entry_of_a_cache(tmp_path):
    """In a cache, ``<kind>/<key[:2]>/<key>`` with a suffix failmodes writes is an entry."""
    cache = _filled(tmp_path)
    stray = {
        "README.md": "about this cache",
        "docs/ab/abstract.txt": "a suffix failmodes does not write",
        "photos/xy/holiday.json": "not in the folder of its first two characters",
        "captions/aa/aanotes": "a file without a suffix",
    }
    for rel, text in stray.items():
        (cache.path / rel).parent.mkdir(parents=True, exist_ok=True)
        (cache.path / rel).write_text(text)
    assert cache.info()["entries"] == 3
    assert cache.verify(repair=True) == []  # nothing reported that is not removed
    assert len(cache.prune(max_bytes=0)) == 3
    assert _files(cache.path) == {**stray, "CACHEDIR.TAG": _files(cache.path)["CACHEDIR.TAG"]}


def test_an_empty_or_odd_cache_argument_is_refused(tmp_path, capsys, monkeypatch):
    from failmodes.cli import main

    monkeypatch.chdir(tmp_path)
    for empty in ("", "  "):
        with pytest.raises(ValueError, match="cache: an empty path is the current folder"):
            Cache(empty)
    with pytest.raises(ValueError, match="cache: an empty path is the current folder"):
        _debugger(tmp_path, TorchExtractor(_model()), cache="").features(WORLD.debug(10))
    for odd in (123, 1.5, True, ["a"]):
        with pytest.raises(TypeError, match="cache must be a folder path or an fsspec URL"):
            Cache(odd)
    assert main(["cache", "info", "--cache", ""]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("failmodes cache: error: --cache: an empty path is the current folder")
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


def test_a_file_as_the_cache_is_refused_before_any_work(tmp_path):
    import warnings

    afile = tmp_path / "afile"
    afile.write_text("x")
    extractor = CountingExtractor(_model())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "removed and recomputed" warning on the way
        refusal = f"^cache: {re.escape(str(afile))} is a file, not a folder$"
        with pytest.raises(NotADirectoryError, match=refusal):
            _debugger(tmp_path, extractor, cache=afile).features(WORLD.debug(10))
        for act in (
            lambda c: c.put_json("proposals", "a" * 64, [1]),
            lambda c: c.get_json("proposals", "a" * 64),
            lambda c: c.prune(max_bytes=0),
            lambda c: c.check_writable(),
        ):
            with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
                act(Cache(str(afile)))
    assert extractor.calls == [] and afile.read_text() == "x"


def test_a_password_in_a_cache_url_is_never_shown_or_recorded(tmp_path, capsys):
    from failmodes._components import run_config
    from failmodes.cli import main

    url = f"memory://alice:S3CRET-TOKEN@bucket-{os.getpid()}/fm"
    shown = f"memory://alice:***@bucket-{os.getpid()}/fm"
    cache = Cache(url)
    assert cache.location == shown and repr(cache) == f"Cache({shown!r})"
    cache.put_tensors("features", "b" * 64, {"features": torch.ones(3)})
    rel = f"features/bb/{'b' * 64}.safetensors"
    blob = bytearray(cache.store.read(rel))
    blob[-1] ^= 0xFF
    cache.store.write(rel, bytes(blob))
    [(entry, _)] = cache.verify()
    assert str(entry.path) == f"{shown}/{rel}" and cache.info()["path"] == shown
    assert all(str(f).startswith(shown) for f in cache.files())
    with pytest.warns(CacheWarning) as caught:
        cache.get_tensors("features", "b" * 64)
    assert "S3CRET" not in str(caught[0].message)
    for given in (url, Cache(url)):
        dbg = _debugger(tmp_path, TorchExtractor(_model()), cache=given)
        assert run_config(dbg.components, dbg.grids(), {}, 0)["cache"] == shown
    assert Cache(url).get_json("proposals", "a" * 64) is None  # the store has the real URL
    assert main(["cache", "info", "--cache", url.replace("/fm", "/none")]) == 2
    for broken in ("memory://alice:S3CRET@", "://alice:S3CRET@x", "nosuch://alice:S3CRET@x/y"):
        assert main(["cache", "info", "--cache", broken]) == 2
    err = capsys.readouterr().err
    assert "S3CRET" not in err and "no cache at memory://alice:***@" in err


def test_a_url_secret_is_hidden_in_text_that_quotes_it():
    from failmodes._urls import hide_credentials, url_credentials

    assert url_credentials("s3://key:secret@bucket/x") == ("s3://key:***@bucket/x", "secret")
    assert url_credentials("https://token@host/v1") == ("https://***@host/v1", "token")
    assert url_credentials("/a:b@c/x") == ("/a:b@c/x", None)  # a folder, not a URL
    fsspec_error = "[Errno 2] No such file: '/alice:S3CRET@bucket/fm/x'"
    assert hide_credentials(fsspec_error, "memory://alice:S3CRET@bucket/fm") == (
        "[Errno 2] No such file: '/alice:***@bucket/fm/x'"
    )
    assert hide_credentials("plain", "/a/folder") == "plain"
