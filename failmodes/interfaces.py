"""The five component interfaces of failmodes, one verb each.

A user swaps any step of the pipeline by passing another object that implements the matching
abstract base class to [`failmodes.Debugger`][failmodes.debugger.Debugger]:

=========================  ===============  ==================================================
interface                  verb             what it does
=========================  ===============  ==================================================
[`FeatureExtractor`][FeatureExtractor]  ``extract``      images -> frozen backbone features (+ the
head) [`BackgroundProposer`][BackgroundProposer] ``propose``     class names -> uncommon attribute
values [`FailureCaptioner`][FailureCaptioner]  ``caption``      failure images -> the most likely
value each [`ImageGenerator`][ImageGenerator]    ``generate``     structured requests -> images
[`HeadTrainer`][HeadTrainer]       ``fit``          features -> a new linear head
=========================  ===============  ==================================================
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "BackgroundProposer",
    "Caption",
    "FailureCaptioner",
    "FeatureExtractor",
    "GenerationRequest",
    "HeadTrainer",
    "ImageGenerator",
]


class FeatureExtractor(abc.ABC):
    """Splits a classifier into a frozen backbone (images -> features) and its linear head.

    Subclasses implement [`extract`][extract] and the [`head`][head] property. ``head(features)``
    must give the model's logits, so that the head can be retrained on cached features alone.
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
    """Lists, per class, values of the spurious attribute that are uncommon for that class."""

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


@dataclass(frozen=True)
class Caption:
    """The value a captioner picked for one failure image.

    Attributes:
        value: the chosen value, or ``None`` when no candidate was likely enough.
        score: the captioner's probability (or score) for ``value``; for ``None``, for the best
            candidate that was rejected.
    """

    value: str | None
    score: float


class FailureCaptioner(abc.ABC):
    """Picks, for each failure image, the most likely value among its class's candidates."""

    @abc.abstractmethod
    def caption(
        self,
        images: Sequence[Any],
        *,
        class_names: Sequence[str],
        candidates: Mapping[str, Sequence[str]],
        attribute: str = "background",
    ) -> list[Caption]:
        """Caption failure images.

        Args:
            images: PIL images or ``(C, H, W)`` tensors.
            class_names: the true class name of each image (same length as ``images``).
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
        count: number of images to make.
        seed: the job's seed; image ``i`` uses a seed derived from ``seed`` and ``i``.
        attribute: the spurious attribute ``value`` belongs to.
    """

    class_index: int
    class_name: str
    value: str | None
    prompt: str
    count: int
    seed: int
    attribute: str = "background"

    @property
    def job_id(self) -> str:
        """A stable identifier from the request's content (hash of its canonical JSON)."""
        blob = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def image_seed(self, i: int) -> int:
        """The seed of image ``i`` of this request, so any image can be regenerated alone.

        It does not depend on ``count``: the first ``n`` images of a request are the images of
        the same request with ``count=n``.
        """
        if not 0 <= i < self.count:
            raise IndexError(f"image index {i} out of range for count={self.count}")
        key = asdict(self)
        del key["count"]
        blob = json.dumps(key, sort_keys=True, separators=(",", ":")) + f":{i}"
        digest = hashlib.sha256(blob.encode()).digest()
        return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class ImageGenerator(abc.ABC):
    """Makes images for structured requests (text-to-image, renderers, retrieval, editing)."""

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


class HeadTrainer(abc.ABC):
    """Retrains a linear head on frozen features."""

    @abc.abstractmethod
    def fit(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        *,
        extra_features: torch.Tensor | None = None,
        extra_labels: torch.Tensor | None = None,
        lam: float = 0.5,
        init: torch.nn.Linear | None = None,
        num_classes: int | None = None,
        seed: int = 0,
    ) -> torch.nn.Linear:
        """Fit a head on ``mean CE(features) + lam * mean CE(extra_features)`` (+ a penalty).

        Args:
            features: ``(n, d)`` features of the original training images.
            labels: ``(n,)`` their labels.
            extra_features: ``(m, d)`` features of generated images, or ``None``.
            extra_labels: ``(m,)`` their labels.
            lam: the weight of the generated images' mean loss (the paper's lambda).
            init: a head to start from (its shape fixes the number of classes).
            num_classes: the number of classes when ``init`` is ``None``.
            seed: seed of any randomness in the solver.

        Returns:
            A new ``torch.nn.Linear``; ``init`` is not modified.
        """
