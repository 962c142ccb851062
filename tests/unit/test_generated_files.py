"""A generated set exported as an image folder: any class name, never a half-written folder."""

import numpy as np
import pytest
from PIL import Image

from failmodes import GeneratedSet, GenerationRequest
from failmodes.images import ImageList

LONG = "very rare long-tailed " * 14  # 308 characters, more than a file name may hold


def _noise(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def _set(requests, images=None) -> GeneratedSet:
    images = images or [_noise(i) for i in range(sum(r.count for r in requests))]
    owner = np.repeat(np.arange(len(requests)), [r.count for r in requests])
    return GeneratedSet(
        list(requests),
        images,
        np.asarray([requests[j].class_index for j in owner]),
        [requests[j].value for j in owner],
        owner,
    )


def _names(folder):
    return [p.name for p in folder.rglob("*")]


def test_long_class_names_and_values_export_and_read_back(tmp_path):
    value = "in a " + "misty " * 60 + "forest"
    requests = [
        GenerationRequest(0, LONG + "fox", value, f"a photo of a {LONG}fox {value}", 2, 0),
        GenerationRequest(1, LONG + "owl", None, f"a photo of a {LONG}owl", 1, 1),
        GenerationRequest(2, "cat", "on sand", "a photo of a cat on sand", 1, 2),
    ]
    generated = _set(requests)
    folder = generated.export(tmp_path / "set")
    assert all(len(name.encode()) <= 255 for name in _names(folder))
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert len(classes) == 3 and "cat" in classes  # two long names, told apart by their hash
    assert (folder / "cat" / "on_sand" / "0003.png").is_file()  # short names as before
    back = GeneratedSet.load(folder)
    assert back.requests == requests
    assert back.values == generated.values
    assert np.array_equal(back.labels, generated.labels)
    assert [im.tobytes() for im in back.images] == [im.tobytes() for im in generated.images]


def test_names_of_many_bytes_per_character_are_cut_on_bytes(tmp_path):
    name = "renard à queue très longue " * 12 + "é" * 100
    requests = [GenerationRequest(0, name, "sur la neige", f"une photo de {name}", 1, 0)]
    folder = _set(requests).export(tmp_path / "set")
    assert all(len(name.encode()) <= 255 for name in _names(folder))
    assert GeneratedSet.load(folder).requests == requests


def test_the_same_names_give_the_same_folders(tmp_path):
    requests = [GenerationRequest(0, LONG + "fox", "on ice", "a fox on ice", 1, 0)]
    first = _set(requests).export(tmp_path / "one")
    second = _set(requests).export(tmp_path / "two")
    assert sorted(_names(first)) == sorted(_names(second))


def test_a_failed_export_leaves_no_folder(tmp_path):
    requests = [GenerationRequest(0, "fox", "on ice", "a photo of a fox on ice", 2, 0)]
    images = ImageList([_noise(0), tmp_path / "pruned.png"])  # the second file is gone
    with pytest.raises(FileNotFoundError):
        _set(requests, images).export(tmp_path / "out" / "set")
    assert list((tmp_path / "out").iterdir()) == []  # neither the set nor a staging folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        _set(requests, images).export(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []  # an empty folder given stays as it was
