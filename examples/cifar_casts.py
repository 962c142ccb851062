"""Debug a real pretrained CIFAR-10 ResNet56 against colour casts, an attribute of your own.

A user's whole setting, written as a user would write it: a spurious attribute that is not a
background ("cast": how a photo's colours were altered), a captioner that reads the cast from
pixel statistics, and an editor that applies a cast to real training photos of the class (the
Debugger gives each request its source photos). The debug and test sets are CIFAR-10 test
photos, each with a uniformly drawn cast (or none). Every repair of the ladder is made:
refitting on the debug set's own failures (the DFR rung), edited images on top, and the
baselines; no guard is given, so the Debugger's own holds a share of the training photos out of
every refit and refuses a repair that costs more than 0.01 there. ``original`` reports the
accuracy on unaltered test photos that no step saw. λ is swept over {0.5, 1, 2}.
``--guard photos`` gives unaltered test photos as the guard, ``--guard none`` none;
``--real none`` makes the paper's repair, edited images only.

The model and the photos come from a folder laid out as ``../shared/data`` is (``cifar10/*.zip``
and ``cifar10-resnets/resnet56.th``)::

    python examples/cifar_casts.py --data ../shared/data --out cifar-casts
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from failmodes import Caption, Debugger, EditingGenerator, FailureCaptioner, StaticProposer
from failmodes.attributes import Attribute, register_attribute
from failmodes.data import ImageDataset
from failmodes.extractors import TorchExtractor
from failmodes.models import CIFAR10_CLASSES, cifar_transform, load_cifar_resnet

USUAL = "as taken"


def _gray(x):
    return x @ np.array([0.299, 0.587, 0.114])


# name -> what it does to an (H, W, 3) float array in [0, 255]; "as taken" is the usual value
CASTS = {
    USUAL: lambda x: x,
    "with a red cast": lambda x: x * np.array([1.0, 0.55, 0.55]) + np.array([60, 0, 0]),
    "with a green cast": lambda x: x * np.array([0.55, 1.0, 0.55]) + np.array([0, 60, 0]),
    "with a blue cast": lambda x: x * np.array([0.55, 0.55, 1.0]) + np.array([0, 0, 60]),
    "in black and white": lambda x: np.repeat(_gray(x)[..., None], 3, axis=2),
    "in sepia": lambda x: _gray(x)[..., None] * np.array([1.07, 0.74, 0.43]) + 20,
    "with inverted colours": lambda x: 255 - x,
    "underexposed": lambda x: x * 0.35,
    "overexposed": lambda x: x * 0.6 + 140,
    "washed out": lambda x: (x - x.mean()) * 0.3 + x.mean(),
    "oversaturated": lambda x: _gray(x)[..., None] + (x - _gray(x)[..., None]) * 2.5,
}
"""The casts; every one but ``"as taken"`` is an uncommon value for every class."""


def apply_cast(image: Image.Image, cast: str) -> Image.Image:
    """``image`` with ``cast`` applied."""
    x = np.asarray(image.convert("RGB"), dtype=np.float64)
    return Image.fromarray(np.clip(CASTS[cast](x), 0, 255).astype(np.uint8), mode="RGB")


def statistics(image: Image.Image) -> np.ndarray:
    """What a cast changes: each channel's mean, the brightness's spread, the saturation's."""
    x = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    chroma = x.max(axis=2) - x.min(axis=2)
    return np.array([*x.mean(axis=(0, 1)), _gray(x).std(), chroma.mean(), chroma.std()])


class StatisticsCaptioner(FailureCaptioner):
    """Names the cast whose typical pixel statistics are nearest an image's.

    Each cast's typical statistics are measured once on reference photos with the cast applied;
    a distance in units of each statistic's spread picks the nearest candidate.
    """

    def __init__(self, reference: list[Image.Image]):
        self.reference = reference
        self._centres: dict[str, np.ndarray] | None = None

    def cache_key(self):
        return {"statistics-captioner": 1, "reference": len(self.reference)}

    def _fit(self) -> dict[str, np.ndarray]:
        if self._centres is None:
            stats = {
                c: np.array([statistics(apply_cast(im, c)) for im in self.reference]) for c in CASTS
            }
            pooled = np.concatenate(list(stats.values()))
            self._scale = pooled.std(axis=0) + 1e-6
            self._centres = {c: s.mean(axis=0) for c, s in stats.items()}
        return self._centres

    def caption(self, images, *, image_classes, candidates, attribute="cast"):
        centres = self._fit()
        out = []
        for image, name in zip(images, image_classes, strict=True):
            s = statistics(image)
            options = [c for c in candidates[name] if c in centres]
            distances = np.array([np.linalg.norm((s - centres[c]) / self._scale) for c in options])
            weights = np.exp(-(distances - distances.min()))
            best = int(distances.argmin())
            out.append(Caption(options[best], float(weights[best] / weights.sum())))
        return out


class CastEditor(EditingGenerator):
    """An editor: applies the requested cast to the real photo each image edits.

    Each request carries its sources, photos of its class from the training data the Debugger
    was given (``Debugger(sources="train")``), drawn with the job's seed.
    """

    def cache_key(self):
        return {"cast-editor": 1}

    def edit(self, requests, images, *, progress=None):
        return [
            [apply_cast(photo, request.value or USUAL) for photo in photos]
            for request, photos in zip(requests, images, strict=True)
        ]


def read_cifar10(data: Path, split: str, per_class: int, offset: int = 0):
    """``per_class`` photos of each class, from the ``offset``-th on, with their labels."""
    images, labels = [], []
    with zipfile.ZipFile(data / "cifar10" / f"{split}.zip") as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        for label, name in enumerate(CIFAR10_CLASSES):
            members = [n for n in names if n.split("/")[1] == name][offset : offset + per_class]
            for member in members:
                with Image.open(io.BytesIO(archive.read(member))) as image:
                    images.append(image.convert("RGB"))
                labels.append(label)
    return images, labels


def with_casts(images, labels, seed: int) -> ImageDataset:
    """Each photo with a uniformly drawn cast ("as taken" among them); the cast is its group."""
    rng = np.random.default_rng(seed)
    casts = [list(CASTS)[j] for j in rng.integers(len(CASTS), size=len(images))]
    return ImageDataset(
        [apply_cast(im, c) for im, c in zip(images, casts, strict=True)], labels, groups=casts
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("cifar-casts"))
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: yours)")
    parser.add_argument(
        "--guard",
        choices=["train", "photos", "none"],
        default="train",
        help="the guard: a held-out share of the training photos (the Debugger's own), "
        "unaltered test photos, or none (default: %(default)s)",
    )
    parser.add_argument(
        "--real",
        choices=["failures_and_successes", "failures", "none"],
        default="failures_and_successes",
        help="the debug set's own images the repairs may refit on; none: the paper's repair "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    register_attribute(
        Attribute("cast", "What colour casts can a photo of a {class_name} have?", plural="casts"),
        replace=True,
    )

    test_images, test_labels = read_cifar10(args.data, "test", 1000)
    order = np.random.default_rng(0).permutation(len(test_images))
    part = {
        "debug": order[:5000],
        "test": order[5000:7000],
        "guard": order[7000:8500],
        "original": order[8500:],
    }
    pick = {
        name: ([test_images[i] for i in idx], [test_labels[i] for i in idx])
        for name, idx in part.items()
    }
    debug = with_casts(*pick["debug"], seed=1)
    test = with_casts(*pick["test"], seed=2)
    guard, original = ImageDataset(*pick["guard"]), ImageDataset(*pick["original"])
    train = ImageDataset(*read_cifar10(args.data, "train", 100))
    reference = read_cifar10(args.data, "train", 5, offset=300)[0]

    model = load_cifar_resnet(args.data / "cifar10-resnets" / "resnet56.th")
    uncommon = [c for c in CASTS if c != USUAL]
    dbg = Debugger(
        extractor=TorchExtractor(model, transform=cifar_transform(), batch_size=250),
        proposer=StaticProposer(
            {c: uncommon for c in CIFAR10_CLASSES}, usual={c: USUAL for c in CIFAR10_CLASSES}
        ),
        captioner=StatisticsCaptioner(reference),
        generator=CastEditor(),
        sources="train",
        class_names=list(CIFAR10_CLASSES),
        attribute="cast",
        k=[3, 5],
        lam=[0.5, 1.0, 2.0],
        images_per_mode=[10, 20],
        real=None if args.real == "none" else args.real,
        cache=True if args.cache is None else args.cache,
    )
    chosen_guard = {"train": None, "photos": guard, "none": False}[args.guard]
    result = dbg.run(train, debug, test, seed=0, guard=chosen_guard, extra={"original": original})
    args.out.mkdir(parents=True, exist_ok=True)
    result.save_summary(args.out / "summary.json")
    result.report(args.out / "report.html")
    summary = result.summary()
    print(result.to_frame().round(3).to_string())
    for line in result.modes.describe()[:10]:
        print(" ", line)
    print(
        json.dumps(
            {
                k: summary.get(k)
                for k in (
                    "caption_accuracy",
                    "guard_acc_before",
                    "guard_acc_after",
                    "original_acc_before",
                    "original_acc_after",
                    "kept_original",
                    "chosen_method",
                    "ladder",
                )
            }
        )
    )
    return summary


if __name__ == "__main__":
    main()
