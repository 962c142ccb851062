"""Step 5, generation: images for every (class, value) failure mode, checked and filtered.

Requests are independent jobs (class, value, prompt, count, seed; the seed fixed per job), so
any of them can be run alone with the same result. Images stay per request through the
generator, the cache and the filter rounds, and become one
[`GeneratedSet`][failmodes.results.GeneratedSet] at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from failmodes._checks import check_instance, check_number, check_seed, component_name
from failmodes.attributes import prompt
from failmodes.cache import Cache, data_fingerprint, fingerprint
from failmodes.data import images_at
from failmodes.images import describe_shape, image_shape, is_blank
from failmodes.interfaces import (
    REASONS,
    EditingGenerator,
    GenerationRequest,
    ImageFilter,
    ImageGenerator,
)
from failmodes.progress import stage
from failmodes.results import GeneratedSet
from failmodes.settings import check_setting
from failmodes.steps._common import derive_seed
from failmodes.steps._map import JOB_IMAGES, chunks, map_jobs

__all__ = ["check_outputs", "generate", "make_requests", "source_pool"]

logger = logging.getLogger("failmodes")

# images generated between two cache writes, at most (plus one request)
GENERATION_GROUP = 64

# per request: its images, and their ids when they went through the cache
Images = list[list[Any]]
Ids = list[list[str]] | None


def make_requests(
    counts: Mapping[tuple[str, str | None], int],
    *,
    class_names: Sequence[str],
    attribute: str = "background",
    seed: int = 0,
    sources: Mapping[str, Sequence[int]] | None = None,
) -> list[GenerationRequest]:
    """Generation jobs for ``{(class_name, value or None): count}``, one seed per job.

    Each job's prompt comes from [`failmodes.attributes.prompt`][failmodes.attributes.prompt]
    and its seed from ``seed``, the class and the value, so a job does not depend on the
    others. With ``sources``, each image of a job is given a real image of its class to edit,
    drawn from the class's pool with the job's seed (so the first ``n`` are those of the same
    job with ``count=n``).

    Args:
        counts: images wanted per ``(class_name, value)``; ``value=None`` asks for the bare
            class ("a photo of a fox"). Counts of 0 or less are skipped.
        class_names: all class names by label index.
        attribute: the attribute the values belong to.
        seed: the run's seed.
        sources: ``{class_name: [index, ...]}``, the indices in the source data of each
            class's images that its jobs may edit; ``None``: text-to-image jobs.

    Returns:
        One [`GenerationRequest`][failmodes.interfaces.GenerationRequest] per positive count,
        in the order of ``counts``.

    Raises:
        ValueError: if a count is not an integer >= 0, a class name is not one of
            ``class_names``, or a class asked for has no source images.

    Examples:
        >>> from failmodes.steps import make_requests
        >>> [request] = make_requests({("owl", "in a desert"): 3}, class_names=["fox", "owl"])
        >>> request.class_index, request.prompt, request.count
        (1, 'a photo of an owl in a desert', 3)
    """
    names = list(class_names)
    seed = check_seed(seed)
    for key, count in counts.items():  # a count is a number of images: 2.5 or -2 is a mistake
        check_number(count, f"counts[{key!r}]", minimum=0, integer=True)
    unknown = sorted({name for name, _ in counts} - set(names))
    if unknown:
        raise ValueError(
            f"counts names classes that are not in class_names: {unknown[:5]}"
            f"{' ...' if len(unknown) > 5 else ''}"
        )
    requests = [
        GenerationRequest(
            class_index=names.index(name),
            class_name=name,
            value=value,
            prompt=prompt(name, value, attribute),
            count=int(count),
            seed=derive_seed("generate", seed, name, value),
            attribute=attribute,
        )
        for (name, value), count in counts.items()
        if count > 0
    ]
    return requests if sources is None else [_with_sources(r, sources) for r in requests]


def source_pool(
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    rows: Sequence[int] | np.ndarray | None = None,
) -> dict[str, list[int]]:
    """Each class's images an editor may edit, as indices into the source data.

    Args:
        labels: the source data's labels.
        class_names: all class names, by label index.
        rows: the rows that may be edited (``None``: every row).

    Returns:
        ``{class_name: [index, ...]}`` for the classes with at least one image.

    Examples:
        >>> from failmodes.steps import source_pool
        >>> source_pool([0, 1, 1, 0], ["fox", "owl"], rows=[1, 2, 3])
        {'fox': [3], 'owl': [1, 2]}
    """
    labels = np.asarray(labels)
    allowed = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
    pool: dict[str, list[int]] = {}
    for i in allowed:
        pool.setdefault(class_names[int(labels[i])], []).append(int(i))
    return {name: pool[name] for name in class_names if name in pool}


def _with_sources(
    request: GenerationRequest, sources: Mapping[str, Sequence[int]]
) -> GenerationRequest:
    """``request`` with one source per image, drawn from its class's pool with its seed."""
    pool = list(sources.get(request.class_name, ()))
    if not pool:
        raise ValueError(
            f"no source image of class {request.class_name!r} to edit: the source data holds "
            "none of its images"
        )
    rng = np.random.default_rng(derive_seed("sources", request.seed))
    picks = rng.integers(len(pool), size=request.count)
    return replace(request, sources=tuple(int(pool[int(j)]) for j in picks))


def generate(
    generator: ImageGenerator,
    requests: Sequence[GenerationRequest],
    *,
    class_names: Sequence[str],
    cache: Cache | None = None,
    image_filter: ImageFilter | None = None,
    filter_rounds: int = 2,
    candidates: Mapping[str, Sequence[str]] | None = None,
    progress: bool | None = None,
    sources: Any = None,
) -> GeneratedSet:
    """Run the generator on ``requests``, check what it returns, and filter it.

    An [`EditingGenerator`][failmodes.interfaces.EditingGenerator] is given, for each request,
    the images of ``sources`` its ``request.sources`` index; the cache keys of edited images
    name the source data too.

    With an ``image_filter``, images it rejects are dropped and replaced: the short requests
    are sent again with a new seed derived from the request and the round, up to
    ``filter_rounds`` times. A request that is still short keeps fewer images (never a
    rejected one); ``GeneratedSet.filter_report`` counts what was dropped and why.

    With a cache, each request's images are read back (lazily, as files) when the same
    generator made them before, and new ones are cached a few requests at a time, so a killed
    run loses at most one group.

    Args:
        generator: makes the images.
        requests: the generation jobs.
        class_names: all class names by label index (the filter's class check ranks among
            them).
        cache: where images are kept, or ``None``.
        image_filter: checks each image, or ``None`` to keep every image.
        filter_rounds: how many times short requests are sent again.
        candidates: ``{class_name: [value, ...]}`` that the filter's value check tells an
            image's value apart from; ``None`` uses the values requested per class.
        progress: passed to the generator.
        sources: the data the requests' ``sources`` index (``(image, label)`` pairs), for an
            editing generator; ``None`` for text-to-image.

    Returns:
        A [`GeneratedSet`][failmodes.results.GeneratedSet] of every kept image, with a
        ``filter_report`` when an ``image_filter`` ran.

    Raises:
        ValueError: if the generator returns the wrong number of images or a blank
            (one-colour) image, ``filter_rounds`` is not an integer >= 0, the filter gives a
            verdict that is neither ``None`` nor one of [`REASONS`][failmodes.interfaces.REASONS],
            or an editing generator is given a request without sources or no source data.
        TypeError: if ``generator`` is not an
            [`ImageGenerator`][failmodes.interfaces.ImageGenerator] or ``image_filter`` not an
            [`ImageFilter`][failmodes.interfaces.ImageFilter].
    """
    check_instance(generator, "generator", ImageGenerator, "an ImageGenerator")
    if image_filter is not None:
        check_instance(image_filter, "image_filter", ImageFilter, "an ImageFilter (or None)")
        filter_rounds = check_setting("filter_rounds", filter_rounds)
    requests = list(requests)
    if not requests:
        return GeneratedSet.from_outputs([], [])
    stage(
        "generating %s images for %d requests", f"{sum(r.count for r in requests):,}", len(requests)
    )
    started = time.perf_counter()
    _check_sources(generator, requests, sources)
    run = partial(_run_generator, generator, cache=cache, progress=progress, sources=sources)
    images, ids = run(requests)
    report = None
    if image_filter is not None:
        rounds = _FilterRounds(image_filter, run, requests, class_names, candidates)
        images, ids, report = rounds.apply(images, ids, filter_rounds)
    flat_ids = None if ids is None else [i for per in ids for i in per]
    generated = GeneratedSet.from_outputs(
        requests, images, filter_report=report, image_ids=flat_ids
    )
    generated.generator = component_name(generator)
    logger.info(
        "generated %d images for %d requests in %.1fs",
        len(generated),
        len(requests),
        time.perf_counter() - started,
    )
    return generated


def check_outputs(
    requests: Sequence[GenerationRequest], outputs: Any, generator: str = "the generator"
) -> None:
    """Raise unless ``outputs`` holds ``count`` non-blank images per request, of one size and mode.

    Args:
        requests: the requests the generator was given.
        outputs: what it returned.
        generator: how to name the generator in the error.

    Raises:
        TypeError: naming the request for which something other than an image came back.
        ValueError: naming the request whose images are missing, extra, blank, or of another
            size or mode than the others.
    """
    if not isinstance(outputs, Sequence) or len(outputs) != len(requests):
        got = len(outputs) if isinstance(outputs, Sequence) else type(outputs).__name__
        raise ValueError(
            f"{generator}.generate returned {got} image lists for {len(requests)} requests"
        )
    first: tuple | None = None
    for j, (request, images) in enumerate(zip(requests, outputs, strict=True)):
        where = f"request {j} ({request.prompt!r}, class {request.class_name!r})"
        if images is None or isinstance(images, str | bytes) or len(images) != request.count:
            got = "None" if images is None else len(images)
            raise ValueError(
                f"{generator}.generate returned {got} images for {where}, which asked for "
                f"count={request.count}"
            )
        for i, image in enumerate(images):
            shape = image_shape(image)
            if shape is None:
                raise TypeError(
                    f"{generator} returned {type(image).__name__ if image is not None else None} "
                    f"for image {i} of {where}; expected a PIL image or an image tensor"
                )
            first = first or (shape, where)
            if shape != first[0]:
                raise ValueError(
                    f"{generator} returned, for image {i} of {where}, an image of "
                    f"{describe_shape(shape)}, but {describe_shape(first[0])} for {first[1]}; a "
                    "generated set must have one size and mode (resize them in the generator)"
                )
        if any(is_blank(image) for image in images):
            raise ValueError(
                f"{generator} returned a blank image (one flat colour) for {request.prompt!r} "
                f"(class {request.class_name!r}, value {request.value!r}); blank images are not "
                "used as training data: fix the generator or have it replace them"
            )


def _check_sources(generator: ImageGenerator, requests: list[GenerationRequest], data: Any) -> None:
    """An editor's requests carry one source per image, and the data they index is given."""
    if not isinstance(generator, EditingGenerator):
        return
    name = component_name(generator)
    for j, request in enumerate(requests):
        if request.sources is None or len(request.sources) != request.count:
            got = "none" if request.sources is None else f"{len(request.sources)}"
            raise ValueError(
                f"{name} edits real images, but request {j} ({request.prompt!r}) has {got} "
                f"sources for count={request.count}: give it requests with one source per "
                "image (a Debugger with sources='train' makes them)"
            )
    if data is None:
        raise ValueError(
            f"{name} edits real images: give generate(..., sources=data) the data the "
            "requests' sources index"
        )


def _make(
    generator: ImageGenerator,
    requests: list[GenerationRequest],
    data: Any,
    progress: bool | None,
) -> Any:
    """The generator's images for ``requests``: generated, or edited from their sources."""
    if not isinstance(generator, EditingGenerator):
        return generator.generate(requests, progress=progress)
    picked = images_at(data, [int(i) for r in requests for i in r.sources or ()])
    images, start = [], 0
    for r in requests:
        images.append(picked[start : start + r.count])
        start += r.count
    return generator.edit(requests, images, progress=progress)


def _run_generator(
    generator: ImageGenerator,
    requests: list[GenerationRequest],
    *,
    cache: Cache | None,
    progress: bool | None,
    sources: Any = None,
) -> tuple[Images, Ids]:
    """The generator's images for ``requests`` and, with a cache, an id per image.

    Requests are generated in groups of about ``GENERATION_GROUP`` images, one job each on the
    engine in use. With a cache, request by request: cached requests are read back lazily (PNG
    files with a manifest of each image's provenance, decoded only when used), and each request
    generated is cached as soon as its group is done. An image's id is its request's cache key
    and its place. An edited image's key names its source data too; when that data has no
    fingerprint, nothing is cached.
    """
    gen_fp = None if cache is None else fingerprint(generator)
    edits = isinstance(generator, EditingGenerator)
    data_fp = data_fingerprint(sources) if edits and gen_fp is not None else None
    if gen_fp is None or (edits and data_fp is None):  # nothing it can name: nothing is kept
        groups = _groups(list(range(len(requests))), requests)
        job = partial(_generation_job, generator, requests, None, None, None, progress, sources)
        return [images for made in map_jobs(job, groups) for images in made], None
    spec = {"generator": gen_fp} | ({"sources": data_fp} if edits else {})
    keys = [cache.key("generated", {**spec, "request": r.identity()}) for r in requests]
    ids = [[f"{key}/{n}" for n in range(r.count)] for r, key in zip(requests, keys, strict=True)]
    images: list[Any] = []
    for r, key in zip(requests, keys, strict=True):
        hit = cache.get_images("generated", key, lazy=True)
        images.append(hit[0] if hit is not None and len(hit[0]) == r.count else None)
    todo = [j for j, out in enumerate(images) if out is None]
    if todo:
        logger.info(
            "generating %d of %d requests (%d cached)",
            len(todo),
            len(requests),
            len(requests) - len(todo),
        )
    groups = _groups(todo, requests)
    job = partial(_generation_job, generator, requests, keys, gen_fp, cache, progress, sources)
    for group, made in zip(groups, map_jobs(job, groups), strict=True):
        for j, out in zip(group, made, strict=True):
            images[j] = out
    return images, ids


def _groups(todo: list[int], requests: list[GenerationRequest]) -> list[list[int]]:
    """``todo`` cut into consecutive groups of about ``GENERATION_GROUP`` images."""
    groups, group = [], []
    for j in todo:
        group.append(j)
        if sum(requests[i].count for i in group) >= GENERATION_GROUP:
            groups.append(group)
            group = []
    return groups + ([group] if group else [])


def _generation_job(
    generator: ImageGenerator,
    requests: list[GenerationRequest],
    keys: list[str] | None,
    gen_fp: Any,
    cache: Cache | None,
    progress: bool | None,
    sources: Any,
    group: list[int],
) -> list[list[Any]]:
    """One job: the images of a group of requests, checked, each request cached (with one)."""
    asked = [requests[i] for i in group]
    made = _make(generator, asked, sources, progress)
    check_outputs(asked, made, component_name(generator))
    if cache is None or keys is None:
        return [list(images) for images in made]
    seeds = generator.seeds_
    for g, (i, images) in enumerate(zip(group, made, strict=True)):
        request, key = requests[i], keys[i]
        image_seeds = (
            list(seeds[g])
            if isinstance(seeds, list) and len(seeds) == len(group)
            else [request.image_seed(n) for n in range(request.count)]
        )
        manifest = {
            "request": request.identity(),
            "job_id": request.job_id,
            "generator": gen_fp,
            "images": [{"index": n, "seed": int(sd)} for n, sd in enumerate(image_seeds)],
        }
        cache.put_images("generated", key, images, manifest)
    return [list(images) for images in made]


class _FilterRounds:
    """Drops the images a filter rejects and asks for replacements, round by round."""

    def __init__(
        self,
        image_filter: ImageFilter,
        run: Any,
        requests: list[GenerationRequest],
        class_names: Sequence[str],
        candidates: Mapping[str, Sequence[str]] | None,
    ):
        self.image_filter = image_filter
        self.run = run
        self.requests = requests
        self.class_names = list(class_names)
        self.candidates = _requested_values(requests) if candidates is None else candidates
        self.kept: Images = [[] for _ in requests]
        self.kept_ids: list[list[str | None]] = [[] for _ in requests]
        self.dropped = {reason: np.zeros(len(requests), dtype=np.int64) for reason in REASONS}

    def apply(self, images: Images, ids: Ids, rounds: int) -> tuple[Images, Ids, pd.DataFrame]:
        """The kept images and ids per request after up to ``rounds`` replacement rounds."""
        owners = list(range(len(self.requests)))
        for round_ in range(rounds + 1):
            self._judge(owners, images, ids)
            short = [j for j, r in enumerate(self.requests) if len(self.kept[j]) < r.count]
            if not short or round_ == rounds:
                break
            retry = [_replacement(self.requests[j], len(self.kept[j]), round_ + 1) for j in short]
            owners, (images, ids) = short, self.run(retry)
        report = self._report()
        flat = [i for per in self.kept_ids for i in per]
        return self.kept, (None if None in flat else self.kept_ids), report

    def _judge(self, owners: list[int], images: Images, ids: Ids) -> None:
        """Ask the filter about new images (``images[i]`` belong to request ``owners[i]``)."""
        batch = [
            (j, image, None if ids is None else ids[i][n])
            for i, j in enumerate(owners)
            for n, image in enumerate(images[i])
        ]
        jobs = chunks(len(batch), JOB_IMAGES)
        verdicts = [v for part in map_jobs(partial(self._check, batch), jobs) for v in part]
        for (j, image, image_id), verdict in zip(batch, verdicts, strict=True):
            if verdict is None:
                self.kept[j].append(image)
                self.kept_ids[j].append(image_id)
            elif verdict in self.dropped:
                self.dropped[verdict][j] += 1
            else:
                raise ValueError(
                    f"image_filter.check returned {verdict!r}; expected None or one of {REASONS}"
                )

    def _check(self, batch: list[tuple[int, Any, str | None]], rows: range) -> list[str | None]:
        """One job: the filter's verdicts on ``batch[rows]``."""
        part = batch[rows.start : rows.stop]
        verdicts = self.image_filter.check(
            [image for _, image, _ in part],
            [self.requests[j] for j, _, _ in part],
            class_names=self.class_names,
            candidates=self.candidates,
        )
        if len(verdicts) != len(part):
            raise ValueError(
                f"image_filter.check returned {len(verdicts)} verdicts for {len(part)} images"
            )
        return list(verdicts)

    def _report(self) -> pd.DataFrame:
        report = pd.DataFrame(
            {
                "class": [r.class_name for r in self.requests],
                "value": [r.value for r in self.requests],
                "requested": [r.count for r in self.requests],
                "kept": [len(k) for k in self.kept],
                **{f"dropped_{reason}": self.dropped[reason] for reason in REASONS},
            }
        )
        total = int(sum(d.sum() for d in self.dropped.values()))
        logger.info(
            "image filter dropped %d of %d images; %d could not be replaced",
            total,
            total + int(report["kept"].sum()),
            int((report["requested"] - report["kept"]).sum()),
        )
        return report


def _replacement(request: GenerationRequest, kept: int, round_: int) -> GenerationRequest:
    """The request for the images a filter round still misses, with a seed of its own.

    An edit's replacements edit the request's last sources again, under the new seed.
    """
    count = request.count - kept
    sources = None if request.sources is None else request.sources[kept:]
    seed = derive_seed("replace", request.seed, round_)
    return replace(request, count=count, seed=seed, sources=sources)


def _requested_values(requests: list[GenerationRequest]) -> dict[str, list[str]]:
    """``{class_name: [value, ...]}`` of the values requested per class, in request order."""
    candidates: dict[str, list[str]] = {}
    for r in requests:
        if r.value is not None:
            values = candidates.setdefault(r.class_name, [])
            if r.value not in values:
                values.append(r.value)
    return candidates
