"""Step 7, a repair: what to generate, which candidates to try, and the one chosen.

A [`RepairPlan`][RepairPlan] is data: the generation requests and, per candidate, its
settings, how many images of each mode it uses and its ``lam``. [`targeted_plan`][targeted_plan]
makes the targeted repair's (one set at the largest ``k`` and images per mode, every candidate a
subset of it), [`baseline_plans`][baseline_plans] the random and uniform baselines' (as many
images per class), [`given_plan`][given_plan] one for a set already made.
[`repair`][repair] runs any plan with the components of a [`RepairTools`][RepairTools]:
generation, the candidates fitted, one chosen on the validation part. The
[`Debugger`][failmodes.debugger.Debugger], the [sweeps][failmodes.sweeps] and
[collective repair][failmodes.collective.collective_repair] all repair through it.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from failmodes.cache import Cache
from failmodes.engines import Engine, using
from failmodes.interfaces import (
    FeatureExtractor,
    GenerationRequest,
    HeadTrainer,
    ImageFilter,
    ImageGenerator,
)
from failmodes.methods import DEFAULT_SCORE, LADDER
from failmodes.progress import stage
from failmodes.ranking import spread_counts
from failmodes.results import Features, GeneratedSet, PreparedRun
from failmodes.settings import takes_keyword
from failmodes.steps._common import derive_seed
from failmodes.steps.features import generated_features
from failmodes.steps.generation import generate, make_requests
from failmodes.steps.selection import Candidate, Selection, select_head

__all__ = [
    "Repair",
    "RepairPlan",
    "RepairTools",
    "Trial",
    "baseline_plans",
    "baseline_requests",
    "given_plan",
    "lam_candidates",
    "preferred_rung",
    "real_plan",
    "real_weights",
    "repair",
    "targeted_counts",
    "targeted_plan",
]

Modes = Mapping[str, Sequence[str]]


@dataclass(frozen=True, kw_only=True)
class RepairTools:
    """The components and settings a repair runs with.

    [`Debugger.tools`][failmodes.debugger.Debugger.tools] makes one from its own;
    [`repair`][repair] takes one.

    Attributes:
        extractor: the model's backbone and head (the generated images' features).
        head_trainer: refits the head.
        generator: makes the images (``None`` when the plan asks for none).
        class_names: all class names, by label index.
        attribute: the spurious attribute.
        cache: where images, features and fits are kept, or ``None``.
        image_filter: drops generated images it rejects, or ``None``.
        filter_rounds: how many times short requests are sent again.
        tolerance: how far below the original head's validation accuracy a candidate may be.
        guard_tolerance: how far below the original head's guard accuracy a candidate may be.
        select_by: what chooses among the eligible candidates: ``"loss"`` or ``"accuracy"`` on
            the validation part's failures ([`SCORES`][failmodes.methods.SCORES]).
        batch_size: passed to the extractor (``None``: its own).
        progress: progress bars of extraction and generation (``None``: each component's own).
        checkpoint_every: features are computed and cached this many images at a time.
        engine: where generation and extraction run (``None``: the engine in use, see
            [`failmodes.engines.using`][failmodes.engines.using]).
        source_data: the data the requests' ``sources`` index, for an editing generator (the
            training data, or the debug set); ``None`` for text-to-image.
    """

    extractor: FeatureExtractor
    head_trainer: HeadTrainer
    generator: ImageGenerator | None = None
    class_names: Sequence[str]
    attribute: str = "background"
    cache: Cache | None = None
    image_filter: ImageFilter | None = None
    filter_rounds: int = 2
    tolerance: float = 0.005
    guard_tolerance: float = 0.01
    select_by: str = DEFAULT_SCORE
    batch_size: int | None = None
    progress: bool | None = None
    checkpoint_every: int = 1024
    engine: Engine | None = None
    source_data: Any = None

    def generate(
        self, requests: Sequence[GenerationRequest], *, candidates: Modes | None = None
    ) -> GeneratedSet:
        """Images for ``requests`` ([`generate`][failmodes.steps.generation.generate]).

        Args:
            requests: the generation jobs.
            candidates: the values the filter tells an image's value apart from, per class.

        Returns:
            The kept images.
        """
        with using(self.engine):
            return generate(
                self.generator,
                requests,
                class_names=self.class_names,
                cache=self.cache,
                image_filter=self.image_filter,
                filter_rounds=self.filter_rounds,
                candidates=candidates,
                progress=self.progress,
                sources=self.source_data,
            )

    def features(self, generated: GeneratedSet) -> Features:
        """Features of generated images ([`generated_features`][failmodes.steps.features]).

        Args:
            generated: the images.

        Returns:
            Their features, labelled with their requests' classes.
        """
        with using(self.engine):
            return generated_features(
                self.extractor,
                generated,
                cache=self.cache,
                batch_size=self.batch_size,
                progress=self.progress,
                checkpoint_every=self.checkpoint_every,
            )

    def select(
        self,
        prepared: PreparedRun,
        generated: GeneratedSet,
        candidates: Sequence[Candidate],
        *,
        seed: int = 0,
    ) -> Selection:
        """Each candidate fitted, one chosen ([`select_head`][failmodes.steps.select_head]).

        Args:
            prepared: the run's features, original head, validation part and guard.
            generated: the images the candidates select from.
            candidates: the settings to try.
            seed: passed to the head trainer.

        Returns:
            The [`Selection`][failmodes.steps.selection.Selection].
        """
        stage("choosing among %d candidates on the validation part", len(candidates))
        return select_head(
            self.head_trainer,
            prepared,
            self.features(generated),
            candidates,
            tolerance=self.tolerance,
            guard_tolerance=self.guard_tolerance,
            select_by=self.select_by,
            seed=seed,
            cache=self.cache,
        )


@dataclass(frozen=True)
class Trial:
    """One candidate of a plan, before the images exist.

    Attributes:
        settings: what it stands for (the selection table's columns), e.g. ``{"k": 3,
            "images_per_mode": 20}``.
        lam: the weight of its images' loss.
        counts: how many images of each ``(class, value)`` it uses, the first of each request;
            ``None``: every image.
        lam_real: the weight of the debug set's own images' loss (``PreparedRun.real``).
    """

    settings: dict[str, Any]
    lam: float
    counts: Mapping[tuple[str, str | None], int] | None = None
    lam_real: float = 0.0


@dataclass(frozen=True)
class RepairPlan:
    """What a repair generates, and which subsets of it, with which weights, it tries.

    Attributes:
        method: the name the repair is reported under (``"failmodes"``, ``"uniform"``, ...).
        requests: the generation jobs; every candidate uses some of their images.
        trials: the candidates, in the selection table's order.
        modes: ``{class_name: [value, ...]}``, the modes the images cover, best first; a
            candidate with a ``k`` setting covers each class's first ``k``.
    """

    method: str
    requests: tuple[GenerationRequest, ...]
    trials: tuple[Trial, ...]
    modes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def candidates(self, generated: GeneratedSet) -> list[Candidate]:
        """The trials as [`Candidate`][failmodes.steps.selection.Candidate]s of ``generated``.

        Args:
            generated: the images made for ``requests`` (fewer when a filter dropped some).

        Returns:
            One candidate per trial, in order.
        """
        offsets = generated.offsets
        modes = [(r.class_name, r.value) for r in generated.requests]
        out = []
        for trial in self.trials:
            if trial.counts is None:
                keep = np.ones(len(generated), dtype=bool)
            else:
                wanted = np.asarray([trial.counts.get(m, 0) for m in modes], dtype=np.int64)
                keep = offsets < wanted[generated.request_index]
            out.append(Candidate(dict(trial.settings), keep, trial.lam, trial.lam_real))
        return out

    def modes_at(self, settings: Mapping[str, Any]) -> dict[str, list[str]]:
        """The modes a candidate with ``settings`` covers: each class's first ``k``.

        Args:
            settings: a candidate's settings (without ``k``: every mode of the plan).

        Returns:
            ``{class_name: [value, ...]}``.
        """
        k = settings.get("k")
        return {name: list(values)[:k] for name, values in self.modes.items() if values[:k]}


@dataclass(frozen=True)
class Repair:
    """One repair: its plan's images, every candidate fitted, and the one chosen.

    Attributes:
        method: the plan's method.
        selection: the chosen candidate's settings, head and the search's table (with
            ``kept_original`` when a guard refused every candidate).
        generated: the images the chosen candidate used (the best refused one's when the
            original head was kept).
        modes: the modes those images cover, ``{class_name: [value, ...]}``.
        pool: every image made for the plan.
        candidates: the candidates tried, in the table's order.
    """

    method: str
    selection: Selection
    generated: GeneratedSet
    modes: dict[str, list[str]]
    pool: GeneratedSet
    candidates: list[Candidate]


def repair(
    tools: RepairTools,
    prepared: PreparedRun,
    plan: RepairPlan,
    *,
    proposals: Modes | None = None,
    generated: GeneratedSet | None = None,
    seed: int = 0,
) -> Repair:
    """Run a plan: its images generated, every candidate fitted, one chosen on validation.

    Nothing given is changed: the chosen modes and images are values of the result.

    Args:
        tools: the components and settings to repair with.
        prepared: the run's features, original head, validation part and guard.
        plan: what to generate and try.
        proposals: every class's proposed values, which the image filter tells an image's value
            apart from; ``None``: the values requested.
        generated: images already made for ``plan.requests`` (another model's repair, a set of
            your own), used instead of generating them.
        seed: passed to the head trainer.

    Returns:
        The [`Repair`][Repair].

    Examples:
        ```python
        tools = dbg.tools()
        plan = targeted_plan(modes.top_k(3), class_names=names, attribute="background",
                             k=[3], images_per_mode=[20], lam=[0.5, 1.0], seed=0)
        fixed = repair(tools, dbg.prepare(train, debug, seed=0), plan, proposals=proposals)
        fixed.selection.settings, fixed.modes
        ```
    """
    pool = tools.generate(plan.requests, candidates=proposals) if generated is None else generated
    candidates = plan.candidates(pool)
    selection = tools.select(prepared, pool, candidates, seed=seed)
    chosen = candidates[selection.index]
    return Repair(
        plan.method,
        selection,
        pool.select(chosen.keep),
        plan.modes_at(chosen.settings),
        pool,
        candidates,
    )


def preferred_rung(repairs: Mapping[str, Repair]) -> str:
    """The rung of the ladder that validation prefers: the largest selection key.

    Args:
        repairs: ``{method: Repair}`` with the methods of
            [`LADDER`][failmodes.methods.LADDER] (others are ignored).

    Returns:
        ``"dfr"`` or ``"failmodes"``; on a tie the cheaper, the first of the ladder.
    """
    rungs = [m for m in LADDER if m in repairs]
    return max(rungs, key=lambda m: repairs[m].selection.key)


def targeted_plan(
    ranked: Modes,
    *,
    class_names: Sequence[str],
    attribute: str,
    k: Sequence[int],
    images_per_mode: Sequence[int],
    lam: Sequence[float],
    weights: Mapping[str, Mapping[str, float]] | None = None,
    lam_real: Sequence[float] = (),
    uniform_prior: Sequence[float] = (0.0,),
    proposals: Modes | None = None,
    class_failures: Mapping[str, int] | None = None,
    sources: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    method: str = "failmodes",
) -> RepairPlan:
    """The targeted repair: one set at the largest ``k`` and images per mode, subsets tried.

    Every ``(k, images per mode, lam, lam_real)`` is a candidate, ``k`` varying slowest: the
    top-``k`` modes of each class, the first images of each mode (as many as
    ``images_per_mode``, or a share of the class's ``k x images_per_mode`` in proportion to
    ``weights``), with the debug set's own images weighing 0 or each of ``lam_real``. With a
    ``uniform_prior`` above 0, a class's images lean toward all of its proposed values while it
    has few captioned failures ([`spread_counts`][failmodes.ranking.spread_counts]).

    Args:
        ranked: ``{class_name: [value, ...]}``, each class's modes, best first (at least the
            largest ``k`` of them).
        class_names: all class names, by label index (the requests' order).
        attribute: the spurious attribute.
        k: candidate numbers of modes per class.
        images_per_mode: candidate numbers of images per mode (on average, with ``weights``).
        lam: candidate weights.
        weights: ``{class_name: {value: weight}}`` to share a class's images among its modes
            (see [`mode_counts`][failmodes.ranking.mode_counts]); ``None``: evenly.
        lam_real: candidate weights of the debug set's own images, beside 0 (none: 0 only).
        uniform_prior: candidate numbers of pseudo-failures per class spread evenly over its
            values (0: the modes alone).
        proposals: every class's proposed values (needed with a ``uniform_prior`` above 0).
        class_failures: each class's captioned failures (likewise).
        sources: ``{class_name: [index, ...]}`` of the source data's images each class's
            requests edit, for an editing generator (see
            [`make_requests`][failmodes.steps.generation.make_requests]); ``None``: none.
        seed: the run's seed (the requests' seeds).
        method: the name the repair is reported under.

    Returns:
        The [`RepairPlan`][RepairPlan].

    Examples:
        >>> from failmodes.steps import targeted_plan
        >>> plan = targeted_plan({"fox": ["in a desert", "at sea"]}, class_names=["fox"],
        ...                      attribute="background", k=[1, 2], images_per_mode=[2],
        ...                      lam=[0.5])
        >>> [(r.value, r.count) for r in plan.requests]
        [('in a desert', 2), ('at sea', 2)]
        >>> [trial.settings for trial in plan.trials]
        [{'k': 1, 'images_per_mode': 2}, {'k': 2, 'images_per_mode': 2}]
    """
    spread = any(prior > 0 for prior in uniform_prior)
    if spread and (proposals is None or class_failures is None):
        raise ValueError("a uniform_prior above 0 needs the proposals and the class_failures")
    shape = {
        (kk, n, prior): spread_counts(
            ranked,
            proposals or {},
            class_failures or {},
            k=kk,
            images_per_mode=n,
            prior=prior,
            weights=weights,
        )
        for kk, n, prior in itertools.product(k, images_per_mode, uniform_prior)
    }
    most = targeted_counts(shape.values())
    values = {c: [*ranked.get(c, []), *(proposals or {}).get(c, [])] for c in class_names}
    order = dict.fromkeys((c, v) for c in class_names for v in values[c])
    counts = {mode: most[mode] for mode in order if mode in most}
    trials = tuple(
        Trial(
            {"k": kk, "images_per_mode": n, **({"uniform_prior": prior} if spread else {})},
            float(w),
            counts_of,
            r,
        )
        for (kk, n, prior), counts_of in shape.items()
        for w in lam
        for r in _with_zero(lam_real)
    )
    requests = make_requests(
        counts, class_names=class_names, attribute=attribute, seed=seed, sources=sources
    )
    top = max(k)
    modes = {name: tuple(values)[:top] for name, values in ranked.items()}
    return RepairPlan(method, tuple(requests), trials, modes)


def targeted_counts(
    candidates: Iterable[Mapping[tuple[str, str], int]],
) -> dict[tuple[str, str], int]:
    """Images to generate per mode so that every candidate is a subset of one set.

    Args:
        candidates: each candidate's images per ``(class_name, value)``.

    Returns:
        ``{(class_name, value): count}``, the most any candidate uses.

    Examples:
        >>> from failmodes.steps import targeted_counts
        >>> targeted_counts([{("fox", "at sea"): 2}, {("fox", "at sea"): 5, ("fox", "in snow"): 1}])
        {('fox', 'at sea'): 5, ('fox', 'in snow'): 1}
    """
    counts: dict[tuple[str, str], int] = {}
    for wanted in candidates:
        for mode, c in wanted.items():
            counts[mode] = max(counts.get(mode, 0), c)
    return counts


def baseline_plans(
    modes: Modes,
    proposals: Modes,
    *,
    class_names: Sequence[str],
    attribute: str,
    k: int,
    images_per_mode: int,
    lam: Sequence[float],
    lam_real: Sequence[float] = (),
    sources: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
) -> dict[str, RepairPlan]:
    """The random and uniform baselines, with as many images per class as the targeted repair.

    Each tries every ``lam`` on all of its images, with the debug set's own images weighing 0
    or each of ``lam_real`` as the targeted repair's do; its settings are the targeted repair's
    chosen ``k`` and images per mode.

    Args:
        modes: the targeted repair's chosen modes of each class.
        proposals: every class's proposed values.
        class_names: all class names, by label index.
        attribute: the spurious attribute.
        k: the targeted repair's chosen ``k``.
        images_per_mode: its chosen images per mode.
        lam: candidate weights.
        lam_real: candidate weights of the debug set's own images, beside 0.
        sources: the source images each class's requests edit (an editing generator edits for
            the baselines too), or ``None``.
        seed: the run's seed.

    Returns:
        ``{"random": plan, "uniform": plan}``.
    """
    asked = baseline_requests(
        modes,
        proposals,
        class_names=class_names,
        attribute=attribute,
        images_per_mode=images_per_mode,
        sources=sources,
        seed=seed,
    )
    settings = {"k": k, "images_per_mode": images_per_mode}
    return {
        method: RepairPlan(
            method,
            tuple(requests),
            tuple(Trial(settings, float(w), None, r) for w in lam for r in _with_zero(lam_real)),
            {name: tuple(values) for name, values in modes.items()},
        )
        for method, requests in asked.items()
    }


def baseline_requests(
    modes: Modes,
    proposals: Modes,
    *,
    class_names: Sequence[str],
    attribute: str,
    images_per_mode: int,
    sources: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
) -> dict[str, list[GenerationRequest]]:
    """The baselines' requests, with as many images per class as the targeted repair.

    ``random`` (the paper's random debugging) asks for the bare class ("a photo of a fox");
    ``uniform`` draws each image's value uniformly among all proposed values.

    Args:
        modes: the chosen failure modes of each class.
        proposals: every class's proposed values.
        class_names: all class names, by label index.
        attribute: the spurious attribute.
        images_per_mode: the chosen images per mode.
        sources: the source images each class's requests edit, or ``None``.
        seed: the run's seed.

    Returns:
        ``{"random": [...], "uniform": [...]}``.
    """
    names = list(class_names)
    per_class = {c: len(modes.get(c, [])) * images_per_mode for c in names}
    all_values = list(dict.fromkeys(v for c in names for v in proposals[c]))
    rng = np.random.default_rng(derive_seed("uniform", seed))
    uniform: dict[tuple[str, str | None], int] = {}
    for c in names:
        for v in rng.choice(len(all_values), size=per_class[c], replace=True):
            key = (c, all_values[int(v)])
            uniform[key] = uniform.get(key, 0) + 1
    counts = {"random": {(c, None): per_class[c] for c in names}, "uniform": uniform}
    return {
        method: make_requests(
            wanted, class_names=names, attribute=attribute, seed=seed, sources=sources
        )
        for method, wanted in counts.items()
    }


def real_plan(lam_real: Sequence[float], *, method: str = "dfr") -> RepairPlan:
    """The debug set's own images alone (deep feature reweighting): nothing generated.

    One candidate per weight of the run's real images (``PreparedRun.real``); the head is
    refit on ``mean CE(train) + lam_real * mean CE(real)``.

    Args:
        lam_real: candidate weights (each ``> 0``).
        method: the name the repair is reported under.

    Returns:
        The [`RepairPlan`][RepairPlan].

    Examples:
        >>> from failmodes.steps import real_plan
        >>> [(trial.lam, trial.lam_real) for trial in real_plan([0.5, 2.0]).trials]
        [(0.0, 0.5), (0.0, 2.0)]
    """
    return RepairPlan(method, (), tuple(Trial({}, 0.0, None, float(r)) for r in lam_real))


def real_weights(tools: RepairTools, lam_real: Sequence[float]) -> list[float]:
    """The weights of real images that candidates with generated images may give them.

    Weighing real and generated images each by its own weight needs a head trainer whose
    ``fit`` takes ``extras``; one written without it (the signature before real images) fits
    the real images alone and the generated ones alone, and the candidates that weigh both are
    left out, with a warning naming the signature to write.

    Args:
        tools: the repair's components (its head trainer).
        lam_real: the candidate weights of the real images.

    Returns:
        ``lam_real``, or none when the trainer cannot weigh two sets.
    """
    if not lam_real or takes_keyword(tools.head_trainer.fit, "extras"):
        return list(lam_real)
    warnings.warn(
        f"{type(tools.head_trainer).__name__}.fit does not take extras: the candidates that "
        "weigh the debug set's own images and generated images together are left out (write "
        "fit(features, labels, *, extra_features=None, extra_labels=None, lam=0.5, extras=(), "
        "init=None, num_classes=None, seed=0) to try them)",
        stacklevel=3,
    )
    return []


def _with_zero(weights: Sequence[float]) -> list[float]:
    """0 and each weight, without repeats: the candidates' weights of the real images."""
    return list(dict.fromkeys([0.0, *(float(w) for w in weights)]))


def given_plan(
    lam: Sequence[float], *, settings: Mapping[str, Any] | None = None, method: str = "given"
) -> RepairPlan:
    """A plan for a set made already: every image, with each ``lam``; nothing generated.

    [`repair`][repair] runs it with ``generated=`` the set.

    Args:
        lam: candidate weights.
        settings: what the candidates stand for (columns of the selection table).
        method: the name the repair is reported under.

    Returns:
        The [`RepairPlan`][RepairPlan].
    """
    return RepairPlan(method, (), tuple(Trial(dict(settings or {}), float(w)) for w in lam))


def lam_candidates(
    n_images: int, lam: Sequence[float], settings: dict[str, Any] | None = None
) -> list[Candidate]:
    """One candidate per ``lam``, each using all ``n_images`` images of a set.

    Args:
        n_images: the set's size.
        lam: candidate weights.
        settings: what the candidates stand for (columns of the selection table).

    Returns:
        One [`Candidate`][failmodes.steps.selection.Candidate] per ``lam``.
    """
    everything = np.ones(n_images, dtype=bool)
    return [Candidate(dict(settings or {}), everything, float(weight)) for weight in lam]
