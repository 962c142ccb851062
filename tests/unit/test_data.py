import io

import numpy as np
import pytest
import torch
from PIL import Image

from failmodes.data import (
    ImageDataset,
    ImageList,
    groups_of,
    images_at,
    iter_items,
    labels_of,
    read_item,
    subset,
    to_rgb,
)


def test_iter_items_pairs_and_bare_images():
    img = Image.new("RGB", (4, 4))
    assert list(iter_items([(img, 3)])) == [(img, 3)]
    assert list(iter_items([img])) == [(img, None)]
    t = torch.zeros(3, 4, 4)
    assert list(iter_items(iter([(t, 1)])))[0][1] == 1
    assert list(iter_items([(t, torch.tensor(2))]))[0][1] == 2
    assert list(iter_items([(t, np.int64(5))]))[0][1] == 5


def test_labels_from_targets_or_iteration():
    data = ImageDataset([Image.new("RGB", (2, 2))] * 3, [0, 2, 1], groups=["a", "b", None])
    assert labels_of(data).tolist() == [0, 2, 1]
    assert labels_of([(Image.new("RGB", (2, 2)), 4)]).tolist() == [4]
    assert groups_of(data) == ["a", "b", None]
    assert groups_of([(1, 2)]) is None
    with pytest.raises(ValueError, match="pairs"):
        labels_of([Image.new("RGB", (2, 2))])


def test_images_at_by_index_and_from_iterables():
    imgs = [Image.new("RGB", (2, 2), (i, 0, 0)) for i in range(5)]
    data = ImageDataset(imgs, range(5))
    assert [im.getpixel((0, 0))[0] for im in images_at(data, [3, 1])] == [3, 1]
    gen = ((im, i) for i, im in enumerate(imgs))
    assert [im.getpixel((0, 0))[0] for im in images_at(gen, [4, 0])] == [4, 0]


def test_dataset_checks_lengths():
    with pytest.raises(ValueError, match="same length"):
        ImageDataset([1, 2], [0])
    with pytest.raises(ValueError, match="groups"):
        ImageDataset([1], [0], groups=["a", "b"])


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_to_rgb_converts_every_mode(mode):
    image = Image.new(mode, (5, 3))
    out = to_rgb(image)
    assert out.mode == "RGB" and out.size == (5, 3)


def test_to_rgb_scales_16_bit_and_composites_alpha():
    array = np.full((2, 2), 65535, dtype=np.uint16)
    assert to_rgb(Image.fromarray(array)).getpixel((0, 0)) == (255, 255, 255)
    clear = Image.new("RGBA", (2, 2), (255, 0, 0, 0))
    assert to_rgb(clear).getpixel((0, 0)) == (255, 255, 255)


def test_labels_and_groups_of_a_subset_are_read_without_its_images():
    from torch.utils.data import Subset

    class Folder:
        """An ImageFolder-like dataset whose images must not be read."""

        targets = [0, 1, 2, 1]
        groups = ["a", "b", "c", "d"]

        def __len__(self):
            return 4

        def __getitem__(self, i):
            raise AssertionError("an image was decoded")

    view = Subset(Folder(), [3, 0])
    assert labels_of(view).tolist() == [1, 0]
    assert groups_of(view) == ["d", "a"]


def _image_folder_with_a_truncated_png(root):
    """An ImageFolder of two classes whose ``owl/1.png`` stops halfway; returns that file."""
    for name in ("fox", "owl"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), "red").save(root / name / "0.png")
    buffer = io.BytesIO()
    Image.effect_noise((32, 32), 40).convert("RGB").save(buffer, "PNG")
    broken = root / "owl" / "1.png"
    broken.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return broken


def _said(err: BaseException) -> str:
    return "\n".join([str(err), *getattr(err, "__notes__", [])])


def test_a_truncated_file_of_an_image_folder_is_named(tmp_path):
    datasets = pytest.importorskip("torchvision.datasets")
    from torch.utils.data import Subset

    broken = _image_folder_with_a_truncated_png(tmp_path / "debug")
    data = datasets.ImageFolder(str(tmp_path / "debug"))
    with pytest.raises(OSError, match="truncated") as caught:
        list(iter_items(data))
    assert str(broken) in _said(caught.value)
    with pytest.raises(OSError) as caught:
        images_at(Subset(data, [2, 0]), [0])
    assert str(broken) in _said(caught.value)
    with pytest.raises(OSError) as caught:
        read_item(data, 2)
    assert str(broken) in _said(caught.value)
    assert read_item(data, 0)[1] == 0  # a readable file reads as before


def test_a_truncated_file_is_named_when_the_features_are_extracted(tmp_path):
    datasets = pytest.importorskip("torchvision.datasets")
    from torch import nn

    from failmodes import TorchExtractor
    from failmodes.steps import extract_features

    broken = _image_folder_with_a_truncated_png(tmp_path / "debug")
    data = datasets.ImageFolder(str(tmp_path / "debug"))
    extractor = TorchExtractor(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)))
    with pytest.raises(OSError) as caught:
        extract_features(extractor, data, class_names=["fox", "owl"], name="debug")
    assert str(broken) in _said(caught.value) and "debug" in _said(caught.value)


def test_a_truncated_file_of_an_image_list_is_named(tmp_path):
    broken = _image_folder_with_a_truncated_png(tmp_path)
    data = ImageDataset(ImageList([Image.new("RGB", (8, 8)), broken]), [0, 1])
    with pytest.raises(OSError) as caught:
        subset(data, [1])
    assert str(broken) in _said(caught.value)
