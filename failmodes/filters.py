"""Checking generated images before they become training data.

A text-to-image model does not always draw what it was asked: the object may be missing, or the
background may be another one. As ALIA (Dunlap et al., 2023) filters its generated images, a
[`CaptionFilter`][CaptionFilter] asks the captioner whether each image shows its class and its
value; the [`Debugger`][failmodes.debugger.Debugger] drops the images that fail, counts them, and
asks the generator for replacements (with new seeds derived from the request) up to a number of
rounds. The interface, [`ImageFilter`][failmodes.interfaces.ImageFilter], is with the others in
[`failmodes.interfaces`][failmodes.interfaces].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from failmodes.interfaces import REASONS, FailureCaptioner, GenerationRequest, ImageFilter

__all__ = ["REASONS", "CaptionFilter", "ImageFilter"]


class CaptionFilter(ImageFilter):
    """Keeps an image when the captioner finds its class and its value in it.

    - **Class**: the captioner's zero-shot class probabilities over all classes
      ([`classify`][failmodes.captioners.openclip.CLIPCaptioner.classify]) must rank the
      requested class among the top ``class_top_k``.
    - **Value**: for a request with a value, captioning the image among its class's candidate
      values must give the requested value. Bare-class images, and classes with a single
      candidate, skip this check.

    Args:
        captioner: the captioner to ask; the class check needs one with a
            ``classify(images, class_names, template=...)`` method (such as
            [`CLIPCaptioner`][failmodes.captioners.CLIPCaptioner]).
        check_class: run the class check.
        check_value: run the value check.
        class_top_k: how high the requested class must rank (1: it must be the most likely).
        class_template: the text for the class check, with one ``{}`` for the class name.

    Examples:
        >>> from failmodes.filters import CaptionFilter
        >>> from failmodes.toyworld import toyclip_captioner
        >>> image_filter = CaptionFilter(toyclip_captioner(), class_top_k=2)

        In a run, the Debugger applies it to every generated image:

        ```python
        dbg = Debugger(**dbg.components | {"image_filter": image_filter, "filter_rounds": 2})
        generated = dbg.generate(requests)
        generated.filter_report  # per request: requested, kept, dropped_class, dropped_value
        ```
    """

    def __init__(
        self,
        captioner: FailureCaptioner,
        *,
        check_class: bool = True,
        check_value: bool = True,
        class_top_k: int = 1,
        class_template: str = "a photo of a {}.",
    ):
        self.captioner = captioner
        self.check_class = check_class
        self.check_value = check_value
        self.class_top_k = class_top_k
        self.class_template = class_template

    def check(
        self,
        images: Sequence[Any],
        requests: Sequence[GenerationRequest],
        *,
        class_names: Sequence[str],
        candidates: Mapping[str, Sequence[str]],
    ) -> list[str | None]:
        """Check that each image shows its class and, for a request with a value, its value.

        Args:
            images: the generated images.
            requests: the request each image was made for (same length as ``images``).
            class_names: all class names, by label index (the class check ranks among them).
            candidates: ``{class_name: [value, ...]}``, the values an image's value is told
                apart from (the requested value is added when missing).

        Returns:
            Per image, ``None`` to keep it, ``"class"`` when its class ranks below
            ``class_top_k``, or ``"value"`` when it is captioned with another value.

        Raises:
            ValueError: if ``images`` and ``requests`` differ in length or ``class_top_k`` is
                not an integer >= 1.
            TypeError: if ``captioner`` is not a
                [`FailureCaptioner`][failmodes.interfaces.FailureCaptioner], or the class check
                is on and it has no ``classify`` method.
        """
        images, requests = list(images), list(requests)
        if len(images) != len(requests):
            raise ValueError(
                f"images and requests must have the same length, got {len(images)} and "
                f"{len(requests)}"
            )
        if not isinstance(self.captioner, FailureCaptioner):
            raise TypeError(
                f"captioner must be a FailureCaptioner, got {type(self.captioner).__name__}"
            )
        top_k = self.class_top_k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"class_top_k must be an integer >= 1, got {top_k!r}")
        verdicts: list[str | None] = [None] * len(images)
        if not images:
            return verdicts
        if self.check_class:
            self._check_class(images, requests, list(class_names), verdicts)
        if self.check_value:
            self._check_value(images, requests, candidates, verdicts)
        return verdicts

    def _check_class(self, images, requests, class_names, verdicts) -> None:
        classify = getattr(self.captioner, "classify", None)
        if not callable(classify):
            raise TypeError(
                "the class check needs a captioner with classify(images, class_names); "
                f"{type(self.captioner).__name__} has none (pass check_class=False)"
            )
        probs = classify(images, class_names, template=self.class_template)
        wanted = torch.tensor([r.class_index for r in requests])
        # rank of the requested class: how many classes are strictly more likely
        rank = (probs > probs.gather(1, wanted[:, None])).sum(1)
        for i in torch.nonzero(rank >= self.class_top_k).flatten().tolist():
            verdicts[i] = "class"

    def _check_value(self, images, requests, candidates, verdicts) -> None:
        pools: dict[str, list[str]] = {}
        todo = []
        for i, request in enumerate(requests):
            if verdicts[i] is not None or request.value is None:
                continue
            pool = pools.setdefault(
                request.class_name, list(candidates.get(request.class_name, ()))
            )
            if request.value not in pool:  # the requested value is always a choice
                pool.append(request.value)
            todo.append(i)
        todo = [i for i in todo if len(pools[requests[i].class_name]) > 1]
        if not todo:
            return
        captions = self.captioner.caption(
            [images[i] for i in todo],
            image_classes=[requests[i].class_name for i in todo],
            candidates=pools,
            attribute=requests[todo[0]].attribute,
        )
        for i, caption in zip(todo, captions, strict=True):
            if caption.value != requests[i].value:
                verdicts[i] = "value"
