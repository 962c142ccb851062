"""The component interfaces of failmodes, one verb each.

A user swaps any step of the pipeline by passing another object that implements the matching
abstract base class to [`failmodes.Debugger`][failmodes.debugger.Debugger]:

| interface | verb | what it does |
|---|---|---|
| [`FeatureExtractor`][FeatureExtractor] | `extract` | images -> frozen backbone features (+ head) |
| [`BackgroundProposer`][BackgroundProposer] | `propose` | class names -> uncommon values |
| [`FailureCaptioner`][FailureCaptioner] | `caption` | failure images -> the likeliest value |
| [`ImageGenerator`][ImageGenerator] | `generate` | structured requests -> images |
| [`EditingGenerator`][EditingGenerator] | `edit` | requests and real images -> edited images |
| [`HeadTrainer`][HeadTrainer] | `fit` | features -> a new linear head |
| [`ImageFilter`][ImageFilter] | `check` | generated images -> keep or drop (optional) |

[`failmodes.testing`][failmodes.testing.checks] has one conformance check per interface
(``check_generator(my_generator)``, ...), and each interface's examples below implement it in a
few lines and pass that check.
"""

from __future__ import annotations

import abc
import hashlib
import json
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "REASONS",
    "BackgroundProposer",
    "Caption",
    "EditingGenerator",
    "FailureCaptioner",
    "FeatureExtractor",
    "GenerationRequest",
    "HeadTrainer",
    "ImageFilter",
    "ImageGenerator",
]


class FeatureExtractor(abc.ABC):
    """Splits a classifier into a frozen backbone (images -> features) and its linear head.

    Subclasses implement [`extract`][extract] and the [`head`][head] property. ``head(features)``
    must give the model's logits, so that the head can be retrained on cached features alone.
    [`TorchExtractor`][failmodes.extractors.torch.TorchExtractor] does this for any PyTorch
    classifier.

    Examples:
        An extractor whose "backbone" flattens the pixels, checked with
        [`check_extractor`][failmodes.testing.checks.check_extractor]:

        >>> import torch
        >>> from failmodes import FeatureExtractor
        >>> from failmodes.data import iter_items
        >>> from failmodes.testing import check_extractor
        >>> class Pixels(FeatureExtractor):
        ...     def __init__(self, head):
        ...         self._head = head
        ...     def extract(self, data, *, batch_size=None, progress=None):
        ...         rows = [torch.as_tensor(image).flatten() for image, _ in iter_items(data)]
        ...         return torch.stack(rows).float()
        ...     @property
        ...     def head(self):
        ...         return self._head
        >>> extractor = Pixels(torch.nn.Linear(12, 2))
        >>> extractor.extract(torch.rand(5, 3, 2, 2)).shape
        torch.Size([5, 12])
        >>> check_extractor(extractor, list(torch.rand(3, 3, 2, 2)))
    """

    @abc.abstractmethod
    def extract(
        self, data: Any, *, batch_size: int | None = None, progress: bool | None = None
    ) -> torch.Tensor:
        """Compute backbone features.

        Args:
            data: images (PIL images or ``(C, H, W)`` tensors), or ``(image, label)`` pairs as a
                map-style dataset, a torch ``Dataset`` or any iterable; labels are ignored.
            batch_size: images per forward pass; ``None`` keeps the extractor's own.
            progress: show a progress bar; ``None`` keeps the extractor's own.

        Returns:
            A ``(n, d)`` float32 tensor on the CPU, one row per image, in input order.
        """

    @property
    @abc.abstractmethod
    def head(self) -> torch.nn.Linear:
        """The classifier's linear head, mapping features to logits (a copy may be returned)."""


class BackgroundProposer(abc.ABC):
    """Lists, per class, values of the spurious attribute that are uncommon for that class.

    Subclasses implement [`propose`][propose].
    [`StaticProposer`][failmodes.proposers.static.StaticProposer] returns values you give;
    [`ChatGPTProposer`][failmodes.proposers.chatgpt.ChatGPTProposer] asks a chat model.

    Examples:
        A proposer with one answer for every class, checked with
        [`check_proposer`][failmodes.testing.checks.check_proposer]:

        >>> from failmodes import BackgroundProposer
        >>> from failmodes.proposers import merge_values
        >>> from failmodes.testing import check_proposer
        >>> class AtNight(BackgroundProposer):
        ...     def propose(self, class_names, *, attribute="background"):
        ...         return {name: merge_values(["at night", "in the dark"]) for name in class_names}
        >>> AtNight().propose(["fox"])
        {'fox': ['at night', 'in the dark']}
        >>> check_proposer(AtNight())
    """

    @abc.abstractmethod
    def propose(
        self, class_names: Sequence[str], *, attribute: str = "background"
    ) -> dict[str, list[str]]:
        """Propose uncommon attribute values.

        Args:
            class_names: the classes to ask about.
            attribute: the spurious attribute (``"background"``, ``"color"``, ``"size"``, ...).

        Returns:
            ``{class_name: [value, ...]}`` with one entry per class, values as phrases that read
            after the class name ("in a desert", "on a frozen lake"; for ``color`` an adjective),
            redundant values merged (see
            [`failmodes.proposers.merge_values`][failmodes.proposers.merge_values]).
        """

    def usual_values(
        self, class_names: Sequence[str], *, attribute: str = "background"
    ) -> dict[str, str]:
        """Each class's usual value, for the classes whose usual value the proposer knows.

        When modes are ranked against successes (``Debugger(rank="excess")``), images are
        captioned among a class's proposals plus its usual value, so that a success in its
        usual setting is not counted under an uncommon value. It counts in the class's totals
        and is never a failure mode. The default knows none.

        Args:
            class_names: the classes to ask about.
            attribute: the spurious attribute.

        Returns:
            ``{class_name: value}``; classes left out have no known usual value.
        """
        return {}


@dataclass(frozen=True)
class Caption:
    """The value a captioner picked for one failure image.

    Attributes:
        value: the chosen value, or ``None`` when no candidate was likely enough.
        score: the captioner's probability (or score) for ``value``; for ``None``, for the best
            candidate that was rejected.

    Examples:
        >>> from failmodes import Caption
        >>> Caption("in a desert", 0.91)
        Caption(value='in a desert', score=0.91)
    """

    value: str | None
    score: float


class FailureCaptioner(abc.ABC):
    """Picks, for each failure image, the most likely value among its class's candidates.

    Subclasses implement [`caption`][caption].
    [`CLIPCaptioner`][failmodes.captioners.openclip.CLIPCaptioner] is the paper's (CLIP zero-shot).

    Examples:
        A captioner that always picks the class's first candidate (a stand-in for a model),
        checked with [`check_captioner`][failmodes.testing.checks.check_captioner]:

        >>> from failmodes import Caption, FailureCaptioner
        >>> from failmodes.testing import check_captioner
        >>> class FirstValue(FailureCaptioner):
        ...     def caption(self, images, *, image_classes, candidates, attribute="background"):
        ...         return [Caption(candidates[name][0], 1.0) for name in image_classes]
        >>> FirstValue().caption([None], image_classes=["fox"],
        ...                      candidates={"fox": ["in a desert"]})
        [Caption(value='in a desert', score=1.0)]
        >>> check_captioner(FirstValue())
    """

    @abc.abstractmethod
    def caption(
        self,
        images: Sequence[Any],
        *,
        image_classes: Sequence[str],
        candidates: Mapping[str, Sequence[str]],
        attribute: str = "background",
    ) -> list[Caption]:
        """Caption failure images.

        Args:
            images: PIL images or ``(C, H, W)`` tensors.
            image_classes: the true class name of each image (same length as ``images``).
            candidates: ``{class_name: [value, ...]}``, the values to choose among per class.
            attribute: the spurious attribute the values belong to.

        Returns:
            One [`Caption`][Caption] per image, in input order.
        """


@dataclass(frozen=True)
class GenerationRequest:
    """One independent generation job: ``count`` images of one class with one value.

    A request is a row of a job table: it carries everything needed to run it alone, in any
    order, on any worker, with the same result (the seed is fixed per job).

    Attributes:
        class_index: the class's label index.
        class_name: the class's name.
        value: the attribute value, or ``None`` for the bare class ("a photo of a wallet").
        prompt: the text prompt (text-to-image generators use it; others may ignore it).
        count: number of images to make, an integer >= 0 (refused otherwise when the request is
            made).
        seed: the job's seed; image ``i`` uses a seed derived from ``seed`` and ``i``.
        attribute: the spurious attribute ``value`` belongs to.
        sources: for an [`EditingGenerator`][EditingGenerator], the real image each image edits,
            as its index in the source data (the training data the Debugger was given), one per
            image, drawn with the job's seed so that the first ``n`` are those of the same
            request with ``count=n``; ``None`` for text-to-image (the request's id and seeds are
            then what they were before sources existed).

    Examples:
        >>> from dataclasses import replace
        >>> from failmodes import GenerationRequest
        >>> request = GenerationRequest(
        ...     class_index=0, class_name="fox", value="in a desert",
        ...     prompt="a photo of a fox in a desert", count=2, seed=0,
        ... )
        >>> len(request.job_id)
        16
        >>> request.image_seed(1) == replace(request, count=5).image_seed(1)
        True
    """

    class_index: int
    class_name: str
    value: str | None
    prompt: str
    count: int
    seed: int
    attribute: str = "background"
    sources: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        """Check ``count`` (a numpy integer is kept as an int); keep ``sources`` as a tuple.

        A manifest reads sources back as a list of ints.

        Raises:
            ValueError: if ``count`` is not an integer >= 0; the message names the request.
        """
        count = self.count
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise ValueError(
                f"count must be an integer >= 0, got {count!r} in the request for class "
                f"{self.class_name!r}, value {self.value!r}"
            )
        object.__setattr__(self, "count", int(count))
        if self.sources is not None:
            object.__setattr__(self, "sources", tuple(int(i) for i in self.sources))

    def identity(self) -> dict[str, Any]:
        """The request as plain data: its fields, ``sources`` only when it has them.

        Returns:
            What the job id, the image seeds and cache keys are computed from; a request
            without sources gives the dictionary it gave before sources existed.
        """
        out = asdict(self)
        if self.sources is None:
            del out["sources"]
        else:
            out["sources"] = list(self.sources)
        return out

    @property
    def job_id(self) -> str:
        """A stable identifier from the request's content (hash of its canonical JSON)."""
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def image_seed(self, i: int) -> int:
        """The seed of image ``i`` of this request, so any image can be regenerated alone.

        It does not depend on ``count``: the first ``n`` images of a request are the images of
        the same request with ``count=n``.

        Args:
            i: the image's index in the request, in ``range(count)``.

        Returns:
            A seed in ``[0, 2**31)``, a hash of the request's other fields and ``i``.

        Raises:
            IndexError: if ``i`` is not in ``range(count)``.
        """
        if not 0 <= i < self.count:
            raise IndexError(f"image index {i} out of range for count={self.count}")
        key = self.identity()
        del key["count"]
        key.pop("sources", None)  # image i's source is sources[i]; the seed needs no more
        blob = json.dumps(key, sort_keys=True, separators=(",", ":")) + f":{i}"
        digest = hashlib.sha256(blob.encode()).digest()
        return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class ImageGenerator(abc.ABC):
    """Makes images for structured requests (text-to-image, renderers, retrieval, editing).

    Subclasses implement [`generate`][generate]. A generator should be deterministic: image
    ``i`` of a request made from ``request.image_seed(i)`` alone, so that a larger budget's
    images hold a smaller one's and any image can be regenerated on its own.
    [`StableDiffusionGenerator`][failmodes.generators.diffusion.StableDiffusionGenerator] is the
    paper's; [`ToyWorldGenerator`][failmodes.toyworld.generator.ToyWorldGenerator] renders
    ToyWorld images.

    Examples:
        A generator of noise images, checked with
        [`check_generator`][failmodes.testing.checks.check_generator]:

        >>> import numpy as np
        >>> from PIL import Image
        >>> from failmodes import ImageGenerator
        >>> from failmodes.testing import check_generator
        >>> def noise(seed):
        ...     rng = np.random.default_rng(seed)
        ...     return Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        >>> class Noise(ImageGenerator):
        ...     def generate(self, requests, *, progress=None):
        ...         return [[noise(r.image_seed(i)) for i in range(r.count)] for r in requests]
        >>> check_generator(Noise())

    Attributes:
        attribute: the one attribute whose values the generator can make (a renderer of one
            world's backgrounds), or ``None`` (the default) for any; the
            [`Debugger`][failmodes.debugger.Debugger] refuses another ``attribute`` before any
            work.
        seeds_: after a call to [`generate`][generate], for each of its requests, the seed
            each returned image came from, when some differ from ``request.image_seed(i)`` (a
            generator that replaced a blank image with a new seed); ``None`` (the default):
            every image came from ``request.image_seed(i)``. The cache's manifests record it.
    """

    attribute: str | None = None
    seeds_: list[list[int]] | None = None

    @abc.abstractmethod
    def generate(
        self, requests: Sequence[GenerationRequest], *, progress: bool | None = None
    ) -> list[list[Image.Image]]:
        """Run generation jobs.

        Args:
            requests: the jobs to run.
            progress: show a progress bar; ``None`` keeps the generator's own.

        Returns:
            One list per request, in request order, of exactly ``request.count`` RGB PIL images.
        """


class EditingGenerator(ImageGenerator):
    """Makes images by editing real images of the request's class (image-to-image, instructions).

    An edit keeps the object's real pixels and statistics and changes only the attribute (ALIA,
    DA-Fusion), so the images look like those the model sees. Each request carries its
    ``sources``, one index per image into the source data (the training data the
    [`Debugger`][failmodes.debugger.Debugger] was given, ``Debugger(sources=...)``); the
    generation step reads those images and hands them to [`edit`][edit]. Subclasses implement
    ``edit``; [`generate`][generate] is refused, since an edit needs its source images.

    Examples:
        An editor that paints a request's value over the source's top rows, checked with
        [`check_generator`][failmodes.testing.checks.check_generator]:

        >>> from PIL import Image, ImageDraw
        >>> from failmodes import EditingGenerator
        >>> from failmodes.testing import check_generator
        >>> class Banner(EditingGenerator):
        ...     def edit(self, requests, images, *, progress=None):
        ...         out = []
        ...         for request, sources in zip(requests, images):
        ...             edited = [source.convert("RGB").copy() for source in sources]
        ...             for image in edited:
        ...                 ImageDraw.Draw(image).rectangle([0, 0, image.width, 2], fill="red")
        ...             out.append(edited)
        ...         return out
        >>> check_generator(Banner())
    """

    @abc.abstractmethod
    def edit(
        self,
        requests: Sequence[GenerationRequest],
        images: Sequence[Sequence[Image.Image]],
        *,
        progress: bool | None = None,
    ) -> list[list[Image.Image]]:
        """Edit the source images of each request into its value.

        Args:
            requests: the jobs to run; each has ``sources``, one per image.
            images: per request, its source images (``images[j][i]`` is the real image that
                image ``i`` of request ``j`` edits), as the source data gives them.
            progress: show a progress bar; ``None`` keeps the generator's own.

        Returns:
            One list per request, in request order, of exactly ``request.count`` RGB PIL images.
        """

    def generate(
        self, requests: Sequence[GenerationRequest], *, progress: bool | None = None
    ) -> list[list[Image.Image]]:
        """Refused: an editor needs the source images, which the generation step reads.

        Args:
            requests: the jobs.
            progress: unused.

        Returns:
            Nothing; it always raises.

        Raises:
            TypeError: always, naming what to do instead.
        """
        raise TypeError(
            f"{type(self).__name__} edits real images: run it through the generation step with "
            "requests that carry sources (a Debugger with sources='train' does), or call "
            "edit(requests, images) with the images"
        )


class HeadTrainer(abc.ABC):
    """Retrains a linear head on frozen features.

    Subclasses implement [`fit`][fit].
    [`LinearHeadTrainer`][failmodes.heads.linear.LinearHeadTrainer] is the default.

    Examples:
        A trainer that solves weighted least squares on one-hot targets, each row weighted as
        the objective weighs it (``1/n`` for a training row, ``lam/m`` for an extra one), checked
        with [`check_head_trainer`][failmodes.testing.checks.check_head_trainer]:

        >>> import torch
        >>> from failmodes import HeadTrainer
        >>> from failmodes.testing import check_head_trainer
        >>> class RidgeHead(HeadTrainer):
        ...     def fit(self, features, labels, *, extra_features=None, extra_labels=None,
        ...             lam=0.5, init=None, num_classes=None, seed=0):
        ...         n = init.out_features if init is not None else num_classes
        ...         n = n or int(labels.max()) + 1
        ...         x, y, w = features, labels, torch.full((len(labels),), 1 / len(labels))
        ...         if extra_features is not None and len(extra_features):
        ...             m = len(extra_features)
        ...             x, y = torch.cat([x, extra_features]), torch.cat([y, extra_labels])
        ...             w = torch.cat([w, torch.full((m,), lam / m)])
        ...         x1 = torch.cat([x, torch.ones(len(x), 1)], dim=1)
        ...         gram = x1.T @ (w[:, None] * x1) + 1e-3 * torch.eye(x1.shape[1])
        ...         targets = torch.nn.functional.one_hot(y, n).float()
        ...         solution = torch.linalg.solve(gram, x1.T @ (w[:, None] * targets))
        ...         head = torch.nn.Linear(x.shape[1], n)
        ...         with torch.no_grad():
        ...             head.weight.copy_(solution[:-1].T)
        ...             head.bias.copy_(solution[-1])
        ...         return head
        >>> check_head_trainer(RidgeHead())
    """

    optional_keywords: tuple[str, ...] = ("extras",)
    """Keywords of [`fit`][fit] that a trainer may leave out: without ``extras`` it still fits
    every repair with at most one extra set (the paper's, or the debug set's own images alone),
    and a run leaves out the candidates that weigh two sets, with a warning."""

    @abc.abstractmethod
    def fit(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        *,
        extra_features: torch.Tensor | None = None,
        extra_labels: torch.Tensor | None = None,
        lam: float = 0.5,
        extras: Sequence[tuple[torch.Tensor, torch.Tensor, float]] = (),
        init: torch.nn.Linear | None = None,
        num_classes: int | None = None,
        seed: int = 0,
    ) -> torch.nn.Linear:
        """Fit a head on ``mean CE(features) + lam * mean CE(extra_features)`` (+ a penalty).

        Each of ``extras`` adds its own weighted term, ``weight * mean CE(its features)``: a
        repair that weighs the debug set's own images and generated images each by its own
        weight passes the generated ones as ``extra_features`` and the others in ``extras``.

        Args:
            features: ``(n, d)`` features of the original training images.
            labels: ``(n,)`` their labels.
            extra_features: ``(m, d)`` features of generated images, or ``None``.
            extra_labels: ``(m,)`` their labels.
            lam: the weight of the generated images' mean loss (the paper's lambda).
            extras: more sets, ``(features, labels, weight)`` each (see
                [`optional_keywords`][optional_keywords]).
            init: a head to start from (its shape fixes the number of classes).
            num_classes: the number of classes when ``init`` is ``None``.
            seed: seed of any randomness in the solver.

        Returns:
            A new ``torch.nn.Linear``; ``init`` is not modified.
        """


# why an image was dropped
REASONS = ("class", "value")
"""Why a filter may drop an image: it does not show its ``class``, or not its ``value``."""


class ImageFilter(abc.ABC):
    """Decides, for each generated image, whether it may be used as training data.

    Subclasses implement [`check`][check]; give one to
    [`Debugger(image_filter=...)`][failmodes.debugger.Debugger], which drops the images it
    rejects and asks the generator for replacements.
    [`CaptionFilter`][failmodes.filters.CaptionFilter] asks a captioner whether each image shows
    its class and value.

    Examples:
        A filter that rejects images too dark to show anything:

        >>> from PIL import Image
        >>> from failmodes import GenerationRequest
        >>> from failmodes.interfaces import ImageFilter
        >>> from failmodes.testing import check_filter
        >>> class DropDark(ImageFilter):
        ...     def check(self, images, requests, *, class_names, candidates):
        ...         bright = [image.convert("L").getextrema()[1] >= 20 for image in images]
        ...         return [None if ok else "value" for ok in bright]
        >>> request = GenerationRequest(0, "fox", "at night", "a photo of a fox at night", 2, 0)
        >>> images = [Image.new("RGB", (8, 8), (5, 5, 5)), Image.new("RGB", (8, 8), "white")]
        >>> DropDark().check(images, [request, request], class_names=["fox"],
        ...                  candidates={"fox": ["at night"]})
        ['value', None]
        >>> check_filter(DropDark())
    """

    @abc.abstractmethod
    def check(
        self,
        images: Sequence[Any],
        requests: Sequence[GenerationRequest],
        *,
        class_names: Sequence[str],
        candidates: Mapping[str, Sequence[str]],
    ) -> list[str | None]:
        """Check images.

        Args:
            images: the generated images.
            requests: the request each image was made for (same length as ``images``).
            class_names: all class names, by label index.
            candidates: ``{class_name: [value, ...]}``, the values an image's value is told
                apart from (the requested value is always one of them).

        Returns:
            Per image, ``None`` to keep it or the reason to drop it (one of [`REASONS`][REASONS]).
        """
