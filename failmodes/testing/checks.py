"""Conformance checks: does a component keep its interface's contract?

Each ``check_*`` runs a component on small inputs and raises ``AssertionError`` with a message
that says which part of the contract is broken. They are what
[`failmodes.Debugger`][failmodes.debugger.Debugger] relies on, so a component that passes them works
in a run. They are deliberately small: a check builds a handful of inputs and calls the component a
few times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from failmodes._checks import check_class_names, check_number, check_seed
from failmodes.errors import SettingError
from failmodes.images import is_blank
from failmodes.interfaces import (
    REASONS,
    BackgroundProposer,
    Caption,
    EditingGenerator,
    FailureCaptioner,
    FeatureExtractor,
    GenerationRequest,
    HeadTrainer,
    ImageFilter,
    ImageGenerator,
)
from failmodes.proposers.merge import merge_values
from failmodes.settings import keyword_problem

__all__ = [
    "check_captioner",
    "check_extractor",
    "check_filter",
    "check_generator",
    "check_head_trainer",
    "check_proposer",
    "sample_images",
]


def sample_images(count: int = 4, size: int = 64, *, seed: int = 0) -> list[Image.Image]:
    """Distinct RGB test images (smooth colour gradients with noise), the same for a seed.

    Args:
        count: how many images (``0`` gives ``[]``).
        size: their side in pixels, at least 2 (an image of one pixel is one colour: blank).
        seed: seed of the colours and the noise.

    Returns:
        ``count`` RGB PIL images of ``size x size`` pixels, none of them blank.

    Raises:
        SettingError: if ``count``, ``size`` or ``seed`` is not an integer in its range.

    Examples:
        >>> from failmodes.testing import sample_images
        >>> images = sample_images(2, size=16)
        >>> [(image.mode, image.size) for image in images]
        [('RGB', (16, 16)), ('RGB', (16, 16))]
    """
    count = check_number(count, "count", minimum=0, integer=True)
    size = check_number(size, "size", minimum=2, integer=True)
    rng = np.random.default_rng(check_seed(seed))
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    images = []
    for _ in range(count):
        low, high = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
        grid = ramp[:, None, None] * (high - low) + low + rng.normal(0, 12, (size, size, 3))
        images.append(Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8), "RGB"))
    return images


_CANDIDATES = {
    "fox": ["in a desert", "on a frozen lake", "in a city street"],
    "wallet": ["on a beach", "in a jungle", "on a kitchen table"],
}


def _fail(component: Any, message: str) -> AssertionError:
    return AssertionError(f"{type(component).__name__}: {message}")


def _as_list(value: Any, name: str, expected: str) -> list:
    """``value`` as a non-empty list, or a SettingError naming ``name`` (a string is one value)."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise SettingError(name, f"must be {expected}, got {type(value).__name__} {value!r:.60}")
    items = list(value)
    if not items:
        raise SettingError(name, f"must be {expected}, got an empty {type(value).__name__}")
    return items


def _check_interface(component: Any, kind: type) -> None:
    """An AssertionError unless ``component`` is a ``kind`` whose methods take every keyword."""
    if not isinstance(component, kind):
        raise _fail(component, f"is not a failmodes.interfaces.{kind.__name__}")
    problem = keyword_problem(component, kind)
    if problem:
        raise AssertionError(problem)


# -- FeatureExtractor ----------------------------------------------------------------------------


def check_extractor(
    extractor: FeatureExtractor,
    images: Sequence[Any] | None = None,
    *,
    atol: float = 1e-4,
) -> None:
    """Check a [`FeatureExtractor`][failmodes.interfaces.FeatureExtractor].

    It must return one float32 CPU row per image, in input order, the same whatever the batch
    size and from run to run, and its ``head`` must be an ``nn.Linear`` that takes those rows.

    Args:
        extractor: the extractor.
        images: images it accepts (at least 3); ``None``: [`sample_images`][sample_images] (64x64
            RGB).
        atol: tolerance when comparing features of different batchings.

    Raises:
        AssertionError: naming the broken part of the contract; without ``images``, also when
            the extractor cannot read the 64x64 sample images (a model made for another size
            needs ``images=sample_images(4, size=<side>)``).
        ValueError: if fewer than 3 images are given.

    Examples:
        >>> from torch import nn
        >>> from failmodes import TorchExtractor
        >>> from failmodes.testing import check_extractor
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 4))
        >>> check_extractor(TorchExtractor(model))
    """
    _check_interface(extractor, FeatureExtractor)
    default = images is None
    images = sample_images(4) if default else list(images)
    if len(images) < 3:
        raise ValueError(f"check_extractor needs at least 3 images, got {len(images)}")
    try:
        features = extractor.extract(images, batch_size=2, progress=False)
    except Exception as err:
        if not default:
            raise
        width, height = images[0].size
        raise _fail(
            extractor,
            f"extract failed on the check's default images ({len(images)} RGB images of {width} "
            f"x {height} pixels): {type(err).__name__}: {err}. If the model takes another size "
            "or kind of input, pass images it accepts: "
            "check_extractor(extractor, images=sample_images(4, size=<side>))",
        ) from err
    _check_features(extractor, features, len(images))
    one_by_one = extractor.extract(images, batch_size=1, progress=False)
    if not torch.allclose(one_by_one, features, atol=atol, rtol=1e-3):
        raise _fail(extractor, "features depend on the batch size (batch_size=1 vs 2)")
    for i in (0, len(images) - 1):
        alone = extractor.extract(images[i : i + 1], progress=False)
        if alone.shape != (1, features.shape[1]) or not torch.allclose(
            alone[0], features[i], atol=atol, rtol=1e-3
        ):
            raise _fail(
                extractor, f"image {i} alone gives other features than row {i}: not in input order"
            )
    _check_head(extractor, features)


def _check_features(extractor: FeatureExtractor, features: Any, n: int) -> None:
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        raise _fail(extractor, f"extract must return an (n, d) tensor, got {_describe(features)}")
    if len(features) != n:
        raise _fail(extractor, f"extract returned {len(features)} rows for {n} images")
    if features.dtype != torch.float32 or features.device.type != "cpu":
        raise _fail(extractor, f"features must be float32 on the CPU, got {_describe(features)}")
    if not torch.isfinite(features).all():
        raise _fail(extractor, "features contain NaN or inf")


def _check_head(extractor: FeatureExtractor, features: torch.Tensor) -> None:
    head = extractor.head
    if not isinstance(head, nn.Linear):
        raise _fail(extractor, f"head must be an nn.Linear, got {type(head).__name__}")
    if head.in_features != features.shape[1]:
        raise _fail(
            extractor,
            f"head takes {head.in_features} features but extract gives {features.shape[1]}",
        )
    with torch.no_grad():
        logits = head.to("cpu", torch.float32)(features)
    if not torch.isfinite(logits).all():
        raise _fail(extractor, "head(features) contains NaN or inf")


# -- BackgroundProposer --------------------------------------------------------------------------


def check_proposer(
    proposer: BackgroundProposer,
    class_names: Sequence[str] = ("fox", "wallet"),
    *,
    attribute: str = "background",
) -> None:
    """Check a [`BackgroundProposer`][failmodes.interfaces.BackgroundProposer].

    It must return exactly one entry per class, each a non-empty list of distinct non-blank
    strings with redundant values already merged ([`merge_values`][failmodes.proposers.merge_values]
    leaves the list unchanged).

    Args:
        proposer: the proposer.
        class_names: the classes to ask about: a non-empty list of distinct names.
        attribute: the attribute to ask about.

    Raises:
        AssertionError: naming the broken part of the contract.
        ValueError: if ``class_names`` is not a non-empty list of distinct names (a string is
            one name, not a list).

    Examples:
        >>> from failmodes import StaticProposer
        >>> from failmodes.testing import check_proposer
        >>> check_proposer(StaticProposer({"fox": ["in a desert"], "wallet": ["in a jungle"]}))
    """
    _check_interface(proposer, BackgroundProposer)
    names = check_class_names(class_names)
    proposals = proposer.propose(names, attribute=attribute)
    if not isinstance(proposals, Mapping):
        raise _fail(proposer, f"propose must return a dict, got {type(proposals).__name__}")
    if sorted(proposals) != sorted(names):
        raise _fail(
            proposer, f"propose must return one entry per class {names}, got {sorted(proposals)}"
        )
    for name in names:
        values = proposals[name]
        if isinstance(values, str) or not isinstance(values, Sequence):
            raise _fail(proposer, f"proposals[{name!r}] must be a list, got {values!r}")
        if not values:
            raise _fail(proposer, f"proposals[{name!r}] is empty")
        if any(not isinstance(v, str) or not v.strip() for v in values):
            raise _fail(proposer, f"proposals[{name!r}] holds blank or non-string values")
        if merge_values(values) != list(values):
            raise _fail(
                proposer,
                f"proposals[{name!r}] holds redundant or untidy values: {list(values)} merges to "
                f"{merge_values(values)} (call failmodes.proposers.merge_values)",
            )


# -- FailureCaptioner ----------------------------------------------------------------------------


def check_captioner(
    captioner: FailureCaptioner,
    images: Sequence[Any] | None = None,
    *,
    image_classes: Sequence[str] | None = None,
    candidates: Mapping[str, Sequence[str]] | None = None,
    attribute: str = "background",
) -> None:
    """Check a [`FailureCaptioner`][failmodes.interfaces.FailureCaptioner].

    It must return one [`Caption`][failmodes.interfaces.Caption] per image, in input order, whose
    value is one of the image's class's candidates (or ``None``) with a finite score; the same
    images give the same captions alone and in a batch; no images give an empty list.

    Args:
        captioner: the captioner.
        images: images it accepts (at least 2); ``None``: [`sample_images`][sample_images].
        image_classes: the class of each image; ``None`` alternates ``"fox"`` and ``"wallet"``.
        candidates: ``{class: [value, ...]}``; ``None``: three backgrounds per class.
        attribute: the attribute of the values.

    Raises:
        AssertionError: naming the broken part of the contract.

    Examples:
        A captioner that gives every image its class's last candidate passes; one that
        answers in the wrong order does not:

        >>> from failmodes import Caption, FailureCaptioner
        >>> from failmodes.testing import check_captioner
        >>> class LastValue(FailureCaptioner):
        ...     def caption(self, images, *, image_classes, candidates, attribute="background"):
        ...         return [Caption(candidates[name][-1], 1.0) for name in image_classes]
        >>> check_captioner(LastValue())
        >>> class Reversed(LastValue):
        ...     def caption(self, images, *, image_classes, candidates, attribute="background"):
        ...         return super().caption(images, image_classes=image_classes[::-1],
        ...                                candidates=candidates, attribute=attribute)
        >>> check_captioner(Reversed())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        AssertionError: Reversed: caption 0 has value 'on a kitchen table', not one of ...
    """
    _check_interface(captioner, FailureCaptioner)
    images = list(images) if images is not None else sample_images(4)
    if image_classes is None:
        image_classes = [("fox", "wallet")[i % 2] for i in range(len(images))]
    image_classes = list(image_classes)
    candidates = _CANDIDATES if candidates is None else candidates
    captions = captioner.caption(
        images, image_classes=image_classes, candidates=candidates, attribute=attribute
    )
    _check_captions(captioner, captions, image_classes, candidates)
    for i in (0, len(images) - 1):
        alone = captioner.caption(
            [images[i]],
            image_classes=image_classes[i : i + 1],
            candidates=candidates,
            attribute=attribute,
        )
        if len(alone) != 1 or alone[0].value != captions[i].value:
            raise _fail(
                captioner,
                f"image {i} captioned alone gives {alone}, in a batch {captions[i]} (is the "
                "output in input order?)",
            )
    empty = captioner.caption([], image_classes=[], candidates=candidates, attribute=attribute)
    if empty != []:
        raise _fail(captioner, f"no images must give [], got {empty!r}")


def _check_captions(
    captioner: FailureCaptioner,
    captions: Any,
    image_classes: list[str],
    candidates: Mapping[str, Sequence[str]],
) -> None:
    if not isinstance(captions, list) or len(captions) != len(image_classes):
        raise _fail(
            captioner,
            f"caption must return a list of {len(image_classes)} captions, got "
            f"{_describe(captions)}",
        )
    for i, (caption, name) in enumerate(zip(captions, image_classes, strict=True)):
        if not isinstance(caption, Caption):
            raise _fail(captioner, f"caption {i} is a {type(caption).__name__}, not a Caption")
        if caption.value is not None and caption.value not in candidates[name]:
            raise _fail(
                captioner,
                f"caption {i} has value {caption.value!r}, not one of the candidates of class "
                f"{name!r}: {list(candidates[name])}",
            )
        if not isinstance(caption.score, float | int) or not math.isfinite(caption.score):
            raise _fail(captioner, f"caption {i} has a non-finite score {caption.score!r}")


# -- ImageGenerator ------------------------------------------------------------------------------


def check_generator(
    generator: ImageGenerator,
    requests: Sequence[GenerationRequest] | None = None,
    *,
    sources: Sequence[Image.Image] | None = None,
    deterministic: bool = True,
    pixel_tolerance: int = 2,
) -> None:
    """Check an [`ImageGenerator`][failmodes.interfaces.ImageGenerator] (or an editor).

    It must return one list per request, in order, of exactly ``request.count`` RGB PIL images,
    none of them blank (a single colour); ``count=0`` gives an empty list. With
    ``deterministic`` (as the Debugger assumes, to reuse a larger budget's images for a smaller
    one), the same requests give the same pixels, and the first ``n`` images of a request are
    the images of the same request with ``count=n``. An
    [`EditingGenerator`][failmodes.interfaces.EditingGenerator] is run through ``edit``, each
    request's ``sources`` indexing ``sources``.

    Args:
        generator: the generator.
        requests: requests it can serve (at least one with ``count >= 2``); ``None``: two
            requests for a fox, ``"in a desert"`` and the bare class, of the attribute the
            generator declares (``"background"`` when it declares none). A generator that
            cannot make a fox needs requests of its own: the check's error then names the
            request it could not serve and shows how to pass ``requests=``.
        sources: for an editor, the real images the requests' ``sources`` index (not empty;
            a request's ``sources`` holds one index into it per image); ``None``: four noise
            images of 32 x 32 (and requests without sources get ``0, 1, ...``).
        deterministic: also check reproducibility and the prefix property.
        pixel_tolerance: how many levels (of 255) a pixel may differ between an image made in
            a batch and the same image made alone (kernels round differently for different
            batch sizes); the same requests run twice must give the same pixels exactly.

    Raises:
        AssertionError: naming the broken part of the contract, or the request (class, value,
            prompt, count) the generator could not serve, with the generator's own error.
        SettingError: before any generation, naming ``requests`` or ``sources`` when the check
            cannot work with them (a string, no request with ``count >= 2``, no sources, a
            request without one source index per image or with one past the end).

    Examples:
        >>> from failmodes.testing import check_generator
        >>> from failmodes.toyworld import ToyWorld, ToyWorldGenerator
        >>> from failmodes import GenerationRequest
        >>> generator = ToyWorldGenerator(ToyWorld(seed=0))
        >>> check_generator(generator, [
        ...     GenerationRequest(0, "circle", "on sand", "a photo of a circle on sand", 3, 0),
        ...     GenerationRequest(1, "square", None, "a photo of a square", 1, 0),
        ... ])
    """
    _check_interface(generator, ImageGenerator)
    given = requests is not None
    requests, run = _runner(generator, requests, sources)
    hint = _HINT_GIVEN if given else _HINT_DEFAULT.format(attribute=requests[0].attribute)

    def serve(asked: list[GenerationRequest]) -> Any:
        return _serve(generator, run, asked, hint)

    outputs = serve(requests)
    _check_outputs(generator, requests, outputs)
    empty = serve([_shorter(requests[0], 0)])
    if not isinstance(empty, list) or len(empty) != 1 or list(empty[0]) != []:
        raise _fail(generator, f"a request with count=0 must give [[]], got {_describe(empty)}")
    if deterministic:
        _check_deterministic(generator, serve, requests, outputs, pixel_tolerance)


_HINT_DEFAULT = (
    "check_generator's default requests ask for a fox; give it requests your generator can "
    "serve, at least one with count >= 2: check_generator(generator, requests=["
    'GenerationRequest(0, "<class>", "<value>", "a photo of a <class> <value>", 2, 0, '
    '"{attribute}"), ...])'
)
_HINT_GIVEN = "give check_generator requests=[...] that the generator can serve"
_HINT_EMPTY = "a request with count=0 must give an empty list of images"


def _serve(generator: ImageGenerator, run: Any, asked: list[GenerationRequest], hint: str) -> Any:
    """``run(asked)``; an error of the generator becomes an AssertionError naming the request."""
    try:
        return run(asked)
    except Exception as err:
        index, error = _culprit(run, asked, err)
        which = "the requests together" if index is None else f"request {index} of {len(asked)}"
        r = asked[0 if index is None else index]
        raise _fail(
            generator,
            f"could not serve {which} (class {r.class_name!r}, value {r.value!r}, prompt "
            f"{r.prompt!r}, count {r.count}, attribute {r.attribute!r}): "
            f"{type(error).__name__}: {error}. {hint if r.count else _HINT_EMPTY}",
        ) from err


def _culprit(
    run: Any, asked: list[GenerationRequest], err: Exception
) -> tuple[int | None, Exception]:
    """The first request that fails alone and its error; ``(None, err)`` when each is served."""
    if len(asked) == 1:
        return 0, err
    for index, request in enumerate(asked):
        try:
            run([request])
        except Exception as alone:
            return index, alone
    return None, err


def _runner(
    generator: ImageGenerator,
    requests: Sequence[GenerationRequest] | None,
    sources: Sequence[Image.Image] | None,
) -> tuple[list[GenerationRequest], Any]:
    """The check's requests (with sources for an editor) and the call that runs them."""
    attribute = getattr(generator, "attribute", None) or "background"
    fox = "a photo of a fox"
    if requests is None:
        requests = [
            GenerationRequest(0, "fox", "in a desert", f"{fox} in a desert", 2, 0, attribute),
            GenerationRequest(0, "fox", None, fox, 1, 1, attribute),
        ]
    requests = _checked_requests(requests)
    if not isinstance(generator, EditingGenerator):
        return requests, lambda asked: generator.generate(asked, progress=False)
    if sources is None:
        pool = _noise_images(4)
    else:
        pool = _as_list(
            sources, "sources", "a non-empty list of the images that the requests' sources index"
        )
    requests = [
        r if r.sources else replace(r, sources=tuple(i % len(pool) for i in range(r.count)))
        for r in requests
    ]
    _check_sources(requests, len(pool))

    def edit(asked: list[GenerationRequest]) -> Any:
        images = [[pool[i] for i in (r.sources or ())] for r in asked]
        return generator.edit(asked, images, progress=False)

    return requests, edit


def _checked_requests(requests: Any) -> list[GenerationRequest]:
    """The given requests as a list the check can work with, or a SettingError naming them."""
    expected = "a non-empty list of GenerationRequest, at least one with count >= 2"
    requests = _as_list(requests, "requests", expected)
    for r, request in enumerate(requests):
        if not isinstance(request, GenerationRequest):
            raise SettingError(
                f"requests[{r}]", f"must be a GenerationRequest, got {type(request).__name__}"
            )
    if all(request.count < 2 for request in requests):
        raise SettingError(
            "requests",
            "must hold at least one request with count >= 2 (the check compares its first image "
            "with the same request made with count=1), got counts "
            f"{[request.count for request in requests]}",
        )
    return requests


def _check_sources(requests: list[GenerationRequest], available: int) -> None:
    """A SettingError unless each request holds one index per image into ``available`` sources."""
    for r, request in enumerate(requests):
        indices = request.sources
        if len(indices) != request.count:
            raise SettingError(
                f"requests[{r}].sources",
                f"must hold one index per image (count={request.count}), got {list(indices)}",
            )
        outside = [i for i in indices if not 0 <= i < available]
        if outside:
            raise SettingError(
                f"requests[{r}].sources",
                f"must index the {available} images of sources (0 to {available - 1}), got "
                f"index {outside[0]}",
            )


def _check_deterministic(
    generator: ImageGenerator,
    run: Any,
    requests: list[GenerationRequest],
    outputs: Any,
    pixel_tolerance: int,
) -> None:
    """The same requests give the same pixels; a request's first image does not hang on count."""
    again = run(requests)
    for r, (first, second) in enumerate(zip(outputs, again, strict=True)):
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            if not _same_pixels(a, b):
                raise _fail(generator, f"request {r}, image {i} differs between two runs")
    big = max(range(len(requests)), key=lambda r: requests[r].count)
    if requests[big].count >= 2:
        prefix = run([_shorter(requests[big], 1)])
        if not _same_pixels(prefix[0][0], outputs[big][0], pixel_tolerance):
            raise _fail(
                generator,
                "image 0 of a request with count=1 differs from image 0 of the same request "
                "with a larger count (derive each image's seed with request.image_seed(i))",
            )


def _shorter(request: GenerationRequest, count: int) -> GenerationRequest:
    """``request`` with ``count`` images (its first ``count`` sources)."""
    sources = None if request.sources is None else request.sources[:count]
    return replace(request, count=count, sources=sources)


def _noise_images(n: int) -> list[Image.Image]:
    """``n`` seeded noise images of 32 x 32, the sources an editor is checked with."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


def _check_outputs(
    generator: ImageGenerator, requests: Sequence[GenerationRequest], outputs: Any
) -> None:
    if not isinstance(outputs, list) or len(outputs) != len(requests):
        raise _fail(
            generator,
            f"generate must return a list of {len(requests)} lists, got {_describe(outputs)}",
        )
    for r, (request, images) in enumerate(zip(requests, outputs, strict=True)):
        if not isinstance(images, list) or len(images) != request.count:
            raise _fail(
                generator,
                f"request {r} asked for {request.count} images, got {_describe(images)}",
            )
        for i, image in enumerate(images):
            if not isinstance(image, Image.Image) or image.mode != "RGB":
                raise _fail(generator, f"request {r}, image {i} is not an RGB PIL image")
            if is_blank(image):
                raise _fail(generator, f"request {r}, image {i} is blank (one colour)")


def _same_pixels(a: Image.Image, b: Image.Image, tolerance: int = 0) -> bool:
    if a.size != b.size:
        return False
    diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
    return int(diff.max(initial=0)) <= tolerance


# -- HeadTrainer ---------------------------------------------------------------------------------


def check_head_trainer(trainer: HeadTrainer, *, seed: int = 0) -> None:
    """Check a [`HeadTrainer`][failmodes.interfaces.HeadTrainer].

    On three well separated classes it must return a new ``nn.Linear`` of the right shape that
    classifies them, leave ``init`` unchanged, honour ``num_classes`` (a class with no rows),
    give the same head for the same seed, ignore the extra rows when ``lam=0``, and let a large
    ``lam`` on extra rows with other labels move the head towards them.

    Args:
        trainer: the head trainer.
        seed: seed of the test data and of the fits.

    Raises:
        AssertionError: naming the broken part of the contract.

    Examples:
        >>> from failmodes import LinearHeadTrainer
        >>> from failmodes.testing import check_head_trainer
        >>> check_head_trainer(LinearHeadTrainer())
    """
    _check_interface(trainer, HeadTrainer)
    g = torch.Generator().manual_seed(seed)
    centers = 4.0 * torch.eye(3, 6)
    labels = torch.arange(30) % 3
    features = centers[labels] + 0.3 * torch.randn(30, 6, generator=g)
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
        torch.manual_seed(seed)
        init = nn.Linear(6, 3)
    before = [p.detach().clone() for p in init.parameters()]
    head = trainer.fit(features, labels, init=init, seed=seed)
    if not isinstance(head, nn.Linear) or (head.in_features, head.out_features) != (6, 3):
        raise _fail(trainer, f"fit must return an nn.Linear(6, 3), got {head!r}")
    unchanged = all(torch.equal(a, b) for a, b in zip(before, init.parameters(), strict=True))
    if head is init or not unchanged:
        raise _fail(trainer, "fit must return a new head and leave init unchanged")
    with torch.no_grad():
        accuracy = float((head(features).argmax(1) == labels).float().mean())
    if accuracy < 1.0:
        raise _fail(trainer, f"the head fits separable classes with accuracy {accuracy:.2f} < 1")
    wide = trainer.fit(features, labels, num_classes=5, seed=seed)
    if wide.out_features != 5:
        raise _fail(trainer, f"num_classes=5 gave a head with {wide.out_features} outputs")
    same = trainer.fit(features, labels, init=init, seed=seed)
    if not torch.equal(same.weight, head.weight):
        raise _fail(trainer, "the same data and seed gave a different head")
    # extra rows on class 0's center labelled 1: ignored at lam=0, decisive at a large lam
    extra = centers[torch.zeros(20, dtype=torch.long)] + 0.3 * torch.randn(20, 6, generator=g)
    extra_labels = torch.ones(20, dtype=torch.long)
    kwargs = {"extra_features": extra, "extra_labels": extra_labels, "init": init, "seed": seed}
    ignored = trainer.fit(features, labels, lam=0.0, **kwargs)
    if not torch.allclose(ignored.weight, head.weight, atol=1e-4, rtol=1e-3):
        raise _fail(trainer, "with lam=0 the extra rows changed the head")
    pulled = trainer.fit(features, labels, lam=10.0, **kwargs)
    with torch.no_grad():
        moved = float((pulled(extra).argmax(1) == 1).float().mean())
    if moved < 0.5:
        raise _fail(trainer, "with lam=10 the head still ignores the extra rows and their labels")


# -- ImageFilter ---------------------------------------------------------------------------------


def check_filter(
    image_filter: ImageFilter,
    images: Sequence[Any] | None = None,
    requests: Sequence[GenerationRequest] | None = None,
    *,
    class_names: Sequence[str] = ("fox", "wallet"),
    candidates: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Check an [`ImageFilter`][failmodes.interfaces.ImageFilter].

    It must return one verdict per image, in input order, each ``None`` (keep) or one of
    [`REASONS`][failmodes.interfaces.REASONS]; the same image gets the same verdict alone and in
    a batch, and no images give an empty list.

    Args:
        image_filter: the filter.
        images: images it accepts (at least 2); ``None``: [`sample_images`][sample_images].
        requests: the request of each image; ``None``: alternately a fox and a wallet, each
            with a background.
        class_names: all class names, by label index.
        candidates: ``{class: [value, ...]}``; ``None``: three backgrounds per class.

    Raises:
        AssertionError: naming the broken part of the contract.

    Examples:
        A filter that keeps everything passes; one that answers ``True`` does not:

        >>> from failmodes.interfaces import ImageFilter
        >>> from failmodes.testing import check_filter
        >>> class KeepAll(ImageFilter):
        ...     def check(self, images, requests, *, class_names, candidates):
        ...         return [None for _ in images]
        >>> check_filter(KeepAll())
        >>> class Yes(ImageFilter):
        ...     def check(self, images, requests, *, class_names, candidates):
        ...         return [True for _ in images]
        >>> check_filter(Yes())
        Traceback (most recent call last):
        ...
        AssertionError: Yes: verdict 0 is True; expected None or one of ('class', 'value')
    """
    _check_interface(image_filter, ImageFilter)
    images = list(images) if images is not None else sample_images(4)
    candidates = _CANDIDATES if candidates is None else candidates
    if requests is None:
        names = [("fox", "wallet")[i % 2] for i in range(len(images))]
        requests = [
            GenerationRequest(
                i % 2, name, candidates[name][0], f"a photo of a {name} {candidates[name][0]}", 1, i
            )
            for i, name in enumerate(names)
        ]
    requests = list(requests)

    def check(indices: Sequence[int]) -> Any:
        return image_filter.check(
            [images[i] for i in indices],
            [requests[i] for i in indices],
            class_names=list(class_names),
            candidates=candidates,
        )

    verdicts = check(range(len(images)))
    if not isinstance(verdicts, list) or len(verdicts) != len(images):
        raise _fail(
            image_filter,
            f"check must return a list of {len(images)} verdicts, got {_describe(verdicts)}",
        )
    for i, verdict in enumerate(verdicts):
        if verdict is not None and verdict not in REASONS:
            raise _fail(
                image_filter, f"verdict {i} is {verdict!r}; expected None or one of {REASONS}"
            )
    for i in (0, len(images) - 1):
        if check([i]) != [verdicts[i]]:
            raise _fail(
                image_filter,
                f"image {i} checked alone gives {check([i])}, in a batch {verdicts[i]!r} (is the "
                "output in input order?)",
            )
    if check([]) != []:
        raise _fail(image_filter, f"no images must give [], got {check([])!r}")


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)} on {value.device}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__
