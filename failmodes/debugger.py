"""The Debugger: holds the components and settings, and wires the steps of the method.

Each method calls a step of [`failmodes.steps`][failmodes.steps] with the Debugger's component,
settings and cache.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from failmodes import steps
from failmodes._checks import check_seed
from failmodes._components import check_known, checked_component, run_config
from failmodes.cache import Cache, resolve_cache
from failmodes.data import groups_of, labels_of, materialize
from failmodes.engines import Engine, on_engine
from failmodes.interfaces import (
    BackgroundProposer,
    EditingGenerator,
    FailureCaptioner,
    FeatureExtractor,
    GenerationRequest,
    HeadTrainer,
    ImageFilter,
    ImageGenerator,
)
from failmodes.methods import BASELINES, DEFAULT_SCORE
from failmodes.progress import stage
from failmodes.ranking import DEFAULT_RANK, Ranking, allocation_weights
from failmodes.results import (
    FailureModes,
    FailureSet,
    Features,
    GeneratedSet,
    PreparedRun,
    RunResult,
)
from failmodes.settings import GRIDS, check_settings
from failmodes.steps import Candidate, Repair, RepairTools, Selection
from failmodes.thumbnails import failure_examples

__all__ = ["Debugger"]

logger = logging.getLogger("failmodes")


@dataclasses.dataclass(kw_only=True, eq=False, frozen=True)
class Debugger:
    """Find, describe, cover and repair a classifier's failure modes.

    The constructor stores its keyword arguments (the fields below, the one list of settings)
    and checks each by its rule in [`failmodes.settings`][failmodes.settings], so a Debugger
    that exists is valid; it does not change afterwards ([`replace`][replace] makes another).
    Every step is a method that can be called on its own (each wraps a function of
    [`failmodes.steps`][failmodes.steps]), and [`run`][run] calls them all.

    Args:
        extractor: splits the model into frozen backbone features and its linear head.
        proposer: lists uncommon attribute values per class.
        captioner: picks the most likely value for each failure.
        generator: makes images for (class, value) requests.
        head_trainer: retrains the head; ``None``: a
            [`LinearHeadTrainer`][failmodes.heads.linear.LinearHeadTrainer].
        class_names: all class names, by label index: without surrounding whitespace, and
            distinct when lower-cased (CLIP tokenizers lower-case prompts).
        attribute: the spurious attribute (``"background"``, ``"color"``, ...).
        k: failure modes per class, or a list of candidates chosen on the validation part.
        lam: weight of the generated images' loss, or a list of candidates.
        images_per_mode: images per (class, value) mode, or a list of candidates.
        uniform_prior: pseudo-failures per class spread evenly over its proposed values, or a
            list of candidates: a class with ``m`` captioned failures puts ``m / (m + prior)``
            of its images on its modes and the rest on all of its values, so that with a
            handful of failures (captions that rank values by noise) the images lean toward the
            uniform baseline ([`spread_counts`][failmodes.ranking.spread_counts]); 0: the modes
            alone.
        real: the debug set's own images that every repair may also refit on, each candidate
            weighing them by 0 or by each ``lam_real`` (the DFR rung, deep feature reweighting):
            ``"failures"`` (its ``debug_seed`` failures), ``"failures_and_successes"`` (and the
            seeded half of its successes), or ``None`` (``False``, as a config file writes it):
            the paper's repair, generated images only. Never the validation part nor
            ``debug_heldout``.
        lam_real: the weight of the debug set's own images' loss, or a list of candidates
            (with ``real``); candidates with generated images also try 0.
        sources: the real images an [`EditingGenerator`][failmodes.interfaces.EditingGenerator]
            edits: ``"train"`` (the training data given to [`run`][run], the guard's share
            aside) or ``"debug_seed"`` (the debug set's ``debug_seed`` failures); each image's
            source is drawn from its class's with the job's seed. A text-to-image generator
            ignores it.
        validation_fraction: share of each class of the debug set set aside to choose ``k``,
            ``lam`` and ``images_per_mode``; never used for failures or reporting. When it
            leaves the validation part empty (0, or a debug set too small), the first
            candidate of each grid is taken, not chosen, with a warning.
        tolerance: a candidate is eligible only if its validation accuracy is at most this
            much below the original head's.
        guard_tolerance: a candidate whose accuracy on the guard is more than this below the
            original head's is refused.
        select_by: what chooses among the eligible candidates, on the validation part's
            failures: ``"loss"`` (their mean cross-entropy, lowest first: graded, so a handful
            of failures still tells candidates apart) or ``"accuracy"`` (the former rule, part of
            [`PAPER`][failmodes.settings.PAPER]; on a few failures candidates tie and the first
            wins). See [`SCORES`][failmodes.methods.SCORES].
        guard_fraction: without a guard of the user's own (``run(..., guard=...)``), this
            share of each class of the training data is held out of every refit and serves as
            the guard, a proxy (see [`guard_split`][failmodes.steps.failures.guard_split]); 0
            for none. A share that holds out no image of a class is refused before any work.
            Not with ``train_shards``.
        rank: how a class's values are ranked: the name of a registered
            [`Ranking`][failmodes.ranking.Ranking] (``"excess"``: failures beyond the class's
            base rate, from captioned successes as well, see
            [`FailureModes.stats`][failmodes.results.FailureModes.stats]; ``"count"``: failures,
            the paper's ranking) or a Ranking.
        significant: keep only values whose failure rate's interval clears the class's base rate
            (a class with none keeps its top ``k``, with a warning).
        allocation: how a class's images (``k`` x ``images_per_mode``) are shared among its
            modes: ``"even"``, or ``"excess"`` (in proportion to excess failures; needs
            captioned successes: a ranking that captions them, or ``significant``).
        baselines: also fit the ``random``, ``uniform`` and ``refit`` baselines in [`run`][run].
        image_filter: drops generated images it rejects, which are replaced (e.g. a
            [`CaptionFilter`][failmodes.filters.CaptionFilter]); ``None`` keeps every image.
        filter_rounds: how many times short requests are sent again to replace rejected images.
        cache: where steps keep their results, so a killed run resumes and a rerun reads them
            back ([`failmodes.cache`][failmodes.cache]): ``True`` for ``$FAILMODES_CACHE`` or the
            user cache folder, a folder, a [`Cache`][failmodes.cache.Cache], ``False`` for none.
        checkpoint_every: features are computed and cached this many images at a time.
        train_shards: keep the train features as shards in the cache and fit heads from them
            shard by shard, for train sets larger than memory (needs a cache).
        shard_dtype: how train shards are stored: ``"float32"`` or ``"float16"`` (half the size).
        examples_per_mode: failure thumbnails kept per mode for the report; 0 keeps none.
        batch_size: passed to the extractor; ``None`` keeps the extractor's own.
        progress: bars of extraction and generation (see
            [`failmodes.progress`][failmodes.progress]); ``None`` leaves it to each component.
        engine: where extraction, captioning, generation and filtering run: ``None`` or a
            [`LocalEngine`][failmodes.engines.LocalEngine] here, a
            [`RayEngine`][failmodes.engines.RayEngine] on a Ray cluster.

    Examples:
        The steps one at a time, with only the components they need: a model that predicts
        ``fox`` for every image fails on every ``owl``. [`run`][run] does the whole method.

        >>> import torch
        >>> from failmodes import Debugger, TorchExtractor
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> _ = model[1].weight.data.zero_(), model[1].bias.data.copy_(torch.tensor([1.0, 0.0]))
        >>> debug = [(torch.zeros(3, 2, 2), i % 2) for i in range(20)]  # (image, label) pairs
        >>> dbg = Debugger(extractor=TorchExtractor(model), class_names=["fox", "owl"],
        ...                cache=False)
        >>> len(dbg.find_failures(debug, seed=0).seed), dbg.replace(k=5).k
        (4, 5)
    """

    extractor: FeatureExtractor
    proposer: BackgroundProposer | None = None
    captioner: FailureCaptioner | None = None
    generator: ImageGenerator | None = None
    head_trainer: HeadTrainer | None = None
    class_names: Sequence[str]
    attribute: str = "background"
    k: int | Sequence[int] = 3
    lam: float | Sequence[float] = 0.5
    images_per_mode: int | Sequence[int] = 20
    uniform_prior: float | Sequence[float] = (0.0, 10.0)
    real: str | bool | None = "failures_and_successes"
    lam_real: float | Sequence[float] = (0.25, 0.5, 1.0, 2.0)
    sources: str | None = "train"
    validation_fraction: float = 0.2
    tolerance: float = 0.005
    guard_tolerance: float = 0.01
    select_by: str = DEFAULT_SCORE
    guard_fraction: float = 0.2
    rank: str | Ranking = DEFAULT_RANK
    significant: bool = False
    allocation: str = "even"
    baselines: bool = True
    image_filter: ImageFilter | None = None
    filter_rounds: int = 2
    cache: bool | str | Path | Cache = True
    checkpoint_every: int = 1024
    train_shards: bool = False
    shard_dtype: str = "float32"
    examples_per_mode: int = 4
    batch_size: int | None = None
    progress: bool | None = None
    engine: Engine | None = None

    def __post_init__(self) -> None:
        """Check every setting by its rule ([`check_settings`][failmodes.settings])."""
        check_settings(self.components)

    # ------------------------------------------------------------------ settings
    @property
    def components(self) -> dict[str, Any]:
        """Every constructor argument by name, the components and the settings.

        ``Debugger(**{**dbg.components, "generator": g})`` builds the same Debugger with another
        generator; [`replace`][replace] does the same in one call.
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Debugger:
        """A new Debugger with the same components and settings, except those given.

        Args:
            **changes: constructor arguments to change, e.g. ``generator=MyGenerator()``.

        Returns:
            A new [`Debugger`][failmodes.debugger.Debugger]; this one is left as it is.

        Raises:
            TypeError: a name that is not a constructor argument.
        """
        check_known(changes, self.components, "replace()")
        return dataclasses.replace(self, **changes)

    def grids(self) -> dict[str, list]:
        """The candidates of every repair, each grid setting's.

        Returns:
            ``{"k": [...], "lam": [...], "images_per_mode": [...], "uniform_prior": [...],
            "lam_real": [...]}``, sorted; ``lam_real`` (the weights of the debug set's own
            images) is empty when ``real`` is ``None``, and never holds 0 (a candidate with
            generated images tries 0 anyway).
        """
        grids = {name: rule.check(getattr(self, name), name) for name, rule in GRIDS.items()}
        real = [w for w in grids["lam_real"] if w > 0] if self.real else []
        return grids | {"lam_real": real}

    def tools(self, *, source_data: Any = None) -> RepairTools:
        """The components and settings a repair runs with ([`RepairTools`][failmodes.steps]).

        Args:
            source_data: the data an editing generator's requests index (see ``sources``).

        Returns:
            The extractor, head trainer (the default one for ``None``), generator, filter,
            cache, engine and the settings of generation and selection.
        """
        return RepairTools(
            extractor=self._component("extractor"),
            head_trainer=self._component("head_trainer"),
            generator=self.generator,
            class_names=list(self.class_names),
            attribute=self.attribute,
            cache=self._cache(),
            image_filter=self.image_filter,
            filter_rounds=self.filter_rounds,
            tolerance=self.tolerance,
            guard_tolerance=self.guard_tolerance,
            select_by=self.select_by,
            batch_size=self.batch_size,
            progress=self.progress,
            checkpoint_every=self.checkpoint_every,
            engine=self.engine,
            source_data=source_data,
        )

    def _component(self, name: str) -> Any:
        return checked_component(name, getattr(self, name))

    def _cache(self) -> Cache | None:
        return resolve_cache(self.cache)

    # ------------------------------------------------------------------ steps
    @on_engine
    def features(
        self,
        data: Any,
        *,
        name: str = "data",
        shards: bool = False,
        labels: np.ndarray | None = None,
    ) -> Features:
        """Features and labels of a dataset ([`extract_features`][failmodes.steps.features]).

        Args:
            data: a dataset of ``(image, label)`` pairs (see [`failmodes.data`][failmodes.data]).
            name: what to call the data in log lines and error messages.
            shards: keep them as shards in the cache (stored as ``shard_dtype``), not in memory.
            labels: its labels, read already (``steps.read_labels`` with the class names);
                ``None`` reads them.

        Returns:
            [`Features`][failmodes.results.Features]; ``features, labels = dbg.features(data)``.
        """
        return steps.extract_features(
            self._component("extractor"),
            data,
            class_names=self.class_names,
            name=name,
            shards=shards,
            shard_dtype=self.shard_dtype,
            cache=self._cache(),
            batch_size=self.batch_size,
            progress=self.progress,
            checkpoint_every=self.checkpoint_every,
            labels=labels,
        )

    def find_failures(
        self, debug: Any, *, seed: int = 0, features: Features | tuple | None = None
    ) -> FailureSet:
        """The validation part and the failures' split ([`find_failures`][failmodes.steps]).

        Args:
            debug: the debug set, ``(image, label)`` pairs.
            seed: seed of both splits; the same seed gives the same split.
            features: its features, or a ``(features, labels)`` pair; ``None`` computes them.

        Returns:
            A [`FailureSet`][failmodes.results.FailureSet].
        """
        feats = self.features(debug, name="debug") if features is None else Features.of(features)
        head = steps.original_head(self._component("extractor"), feats, self.class_names)
        return steps.find_failures(
            head,
            feats,
            num_classes=len(self.class_names),
            validation_fraction=self.validation_fraction,
            seed=seed,
        )

    def propose(self) -> dict[str, list[str]]:
        """Uncommon values for every class ([`propose`][failmodes.steps.proposals.propose]).

        Returns:
            ``{class_name: [value, ...]}`` for every class, in ``class_names`` order.
        """
        proposer = self._component("proposer")
        return steps.propose(
            proposer, self.class_names, attribute=self.attribute, cache=self._cache()
        )

    @on_engine
    def caption(
        self,
        debug: Any,
        failures: FailureSet,
        proposals: dict,
        *,
        k: int | None = None,
        seed: int = 0,
    ) -> FailureModes:
        """The failures' captions and top-``k`` modes ([`caption_failures`][failmodes.steps]).

        Args:
            debug: the debug set that ``failures`` indexes into.
            failures: the split from [`find_failures`][find_failures].
            proposals: ``{class_name: [value, ...]}`` from [`propose`][propose].
            k: failure modes kept per class; ``None``: the largest of the Debugger's ``k``.
            seed: draws the captioned successes (with a ranking that needs them, or
                ``significant``).

        Returns:
            A [`FailureModes`][failmodes.results.FailureModes].
        """
        names, proposer = self.class_names, self.proposer
        usual = {} if proposer is None else proposer.usual_values(names, attribute=self.attribute)
        return steps.caption_failures(
            self._component("captioner"),
            debug,
            failures,
            proposals,
            class_names=names,
            k=max(self.grids()["k"]) if k is None else k,
            attribute=self.attribute,
            cache=self._cache(),
            rank=self.rank,
            significant=self.significant,
            usual=usual,
            seed=seed,
        )

    def requests(self, counts: dict, *, seed: int = 0) -> list[GenerationRequest]:
        """Jobs for ``{(class_name, value or None): count}`` ([`make_requests`][failmodes.steps]).

        Args:
            counts: images per ``(class_name, value)``; ``value=None``: the bare class.
            seed: the run's seed.

        Returns:
            One [`GenerationRequest`][failmodes.interfaces.GenerationRequest] per positive count.
        """
        names, attribute = self.class_names, self.attribute
        return steps.make_requests(counts, class_names=names, attribute=attribute, seed=seed)

    @on_engine
    def generate(
        self, requests: Sequence[GenerationRequest], *, candidates: Mapping | None = None
    ) -> GeneratedSet:
        """Images for ``requests``, checked, filtered, cached ([`generate`][failmodes.steps]).

        Args:
            requests: the generation jobs.
            candidates: the values the filter tells an image's value apart from, per class;
                ``None``: the values requested.

        Returns:
            A [`GeneratedSet`][failmodes.results.GeneratedSet] of every kept image.
        """
        self._component("generator")  # a missing generator is named
        return self.tools().generate(requests, candidates=candidates)

    def repair(
        self,
        train_features: Any,
        train_labels: Any = None,
        extra_features: Any = None,
        extra_labels: Any = None,
        *,
        lam: float = 0.5,
        seed: int = 0,
    ) -> torch.nn.Linear:
        """The head refit from the model's own ([`fit_head`][failmodes.steps.repair.fit_head]).

        Args:
            train_features: ``(n, d)`` train features, ``Features`` or ``FeatureShards``.
            train_labels: their labels (``None`` with ``Features`` or shards).
            extra_features: generated features (or ``Features``); ``None``: a plain refit.
            extra_labels: their labels.
            lam: the weight (``>= 0``) of the generated images' mean loss.
            seed: passed to the head trainer.

        Returns:
            The new head, a float32 ``nn.Linear`` on the CPU.
        """
        train = Features.of(train_features, train_labels)
        extra = None if extra_features is None else Features.of(extra_features, extra_labels)
        tools = self.tools()
        head = steps.original_head(tools.extractor, train, self.class_names)
        return steps.fit_head(
            tools.head_trainer, head, train, extra, lam=lam, seed=seed, cache=tools.cache
        )

    @staticmethod
    def evaluate(head: torch.nn.Linear, splits: Mapping[str, Any]) -> dict[str, float]:
        """Accuracy of ``head`` on ``{name: Features or (features, labels)}``.

        Args:
            head: the head to evaluate.
            splits: the named splits.

        Returns:
            ``{name: accuracy}``; ``nan`` for an empty split.
        """
        return steps.evaluate(head, splits)

    # ------------------------------------------------------------------ the method
    def prepare(
        self,
        train: Any,
        debug: Any,
        test: Any = None,
        *,
        seed: int = 0,
        failures: FailureSet | None = None,
        guard: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> PreparedRun:
        """Features, original head, failures and validation part: where every use starts.

        [`run`][run], [`refit_on`][refit_on], the [sweeps][failmodes.sweeps] and
        [collective repair][failmodes.collective.collective_repair] all start from it.

        Args:
            train: the training data (the head is refit on it).
            debug: the debug set.
            test: the test set, or ``None``.
            seed: seed of the failures' split.
            failures: a split of ``debug`` to use (e.g. a run's); ``None`` makes it.
            guard: in-distribution data that the repair does not train on; ``None``: a
                held-out share of ``train`` (``guard_fraction``); ``False``: none (see
                [`run`][run]).
            extra: ``{name: data}``, more sets to evaluate every head on.

        Returns:
            A [`PreparedRun`][failmodes.results.PreparedRun].

        Raises:
            DataError: before any feature is computed, for ``failures`` of another debug set,
                or a ``guard_fraction`` that holds out no image of a class of ``train``; once
                the debug set's features are known, for ``failures`` the model did not make
                on it.
            TypeError: a ``guard`` that is not data, ``None`` nor ``False``.
        """
        train, debug, test, guard = (materialize(d) for d in (train, debug, test, guard))
        extra, read = self._check_data(train, debug, test, guard, extra, failures)
        train_f = self.features(
            train, name="train", shards=self.train_shards, labels=read.get("train")
        )
        steps.warn_missing_classes(train_f.labels, self.class_names, "train")
        debug_f = self.features(debug, name="debug", labels=read.get("debug"))
        test_f = None if test is None else self.features(test, name="test")
        extra_f = {name: self.features(data, name=name) for name, data in extra.items()}
        head = steps.original_head(self._component("extractor"), train_f, self.class_names)
        train_f, guard_f, source, train_rows = self._guard(train_f, guard, seed)
        reference, resolution = None, 0.0
        if source == "train":  # compared with a head that did not see the guard either
            tools = self.tools()
            reference = steps.fit_head(
                tools.head_trainer, head, train_f, lam=0.0, seed=seed, cache=tools.cache
            )
            resolution = 2 / len(guard_f)
        if failures is None:
            failures = self.find_failures(debug, seed=seed, features=debug_f)
        else:  # the same labels, and the same model's predictions
            steps.check_failures_of(failures, debug, features=debug_f, head=head)
        validation = steps.validation_splits(failures, debug_f)
        real = steps.real_set(failures, debug_f, which=self.real, seed=seed)
        return PreparedRun(
            train_f,
            debug_f,
            test_f,
            head,
            failures,
            validation,
            guard_f,
            extra_f,
            real,
            source,
            reference,
            resolution,
            train_rows,
        )

    def _check_data(
        self,
        train: Any,
        debug: Any,
        test: Any,
        guard: Any,
        extra: Mapping[str, Any] | None,
        failures: FailureSet | None,
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``prepare``'s data checked on what it is and its labels, before any feature.

        Returns ``(the extra sets, {"train" or "debug": the labels read to check them})``: the
        features of those sets take the labels read here rather than reading them again.
        """
        extra = steps.check_sets(train, debug, test, guard, extra)
        names, read = self.class_names, {}
        if failures is not None:
            read["debug"] = steps.read_labels(debug, "debug", names)
            steps.check_failures_of(failures, debug, labels=read["debug"])
        if guard is None and self.guard_fraction > 0 and not self.train_shards:
            read["train"] = steps.read_labels(train, "train", names)
            steps.guard_counts(read["train"], self.guard_fraction, names)
        return extra, read

    def _guard(self, train: Features, guard: Any, seed: int) -> tuple:
        """``(train refit on, guard features, where the guard came from, train's rows)``."""
        if guard is False or (guard is None and self.guard_fraction == 0):
            return train, None, None, None
        if guard is not None:
            return train, self.features(guard, name="guard"), "given", None
        if self.train_shards:
            warnings.warn(
                "no guard: with train_shards, no share of the training data can be held out "
                "as one; give run(..., guard=data), or guard=False to say there is none",
                stacklevel=4,
            )
            return train, None, None, None
        rest, held, rows = steps.guard_split(train, self.guard_fraction, seed=seed)
        return rest, held, "train", rows

    @on_engine
    def select(
        self,
        prepared: PreparedRun,
        generated: GeneratedSet,
        candidates: Sequence[Candidate],
        *,
        seed: int = 0,
    ) -> Selection:
        """Each candidate fitted, one chosen on validation ([`select_head`][failmodes.steps]).

        Args:
            prepared: from [`prepare`][prepare].
            generated: the images the candidates select from.
            candidates: the settings to try.
            seed: passed to the head trainer.

        Returns:
            A [`Selection`][failmodes.steps.selection.Selection].
        """
        return self.tools().select(prepared, generated, candidates, seed=seed)

    @on_engine
    def run(
        self,
        train: Any,
        debug: Any,
        test: Any,
        *,
        seed: int = 0,
        guard: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run the whole method and its baselines.

        In order: [`propose`][propose], [`prepare`][prepare], [`caption`][caption], the targeted
        repair ([`steps.repair`][failmodes.steps.plans.repair] of a
        [`targeted_plan`][failmodes.steps.plans.targeted_plan]: one set generated at the largest
        ``k`` and images per mode, a candidate per setting chosen on the validation part), then
        the baselines through the same step.

        Args:
            train: the training data (or a subset, e.g. 30 images per class) to refit on.
            debug: the debug set; its failures are found, split and captioned.
            test: the test set, used only for reporting.
            seed: seed of the splits, generation and solver.
            guard: in-distribution images (and labels) that the repair does not train on: a
                candidate whose accuracy on them is more than ``guard_tolerance`` below the
                original head's is refused, and if every one is, the original head is kept
                (the summary says so). ``None``: a seeded ``guard_fraction`` of each class of
                ``train``, held out of every refit, serves as the guard: a proxy, since the
                model trained on it, so a candidate is compared there with the head refit on
                the rest of ``train`` alone. ``False``: no guard; only the validation part is
                checked.
            extra: ``{name: data}``, more sets every head is evaluated on, reported beside
                ``test`` (e.g. ``{"original": images drawn like the training data}``).

        Returns:
            A [`RunResult`][failmodes.results.RunResult].

        Raises:
            ValueError: a missing component, fewer proposals than ``k``, bad data, no test set.
            TypeError: a ``guard`` that is not data, ``None`` nor ``False``.

        Warns:
            UserWarning: with an empty validation part and more than one candidate: the first
                candidate of each grid is taken, not chosen.
        """
        started = time.perf_counter()
        seed, grids = check_seed(seed), self.grids()
        steps.check_test(test)
        steps.check_guard(guard)
        train, debug, test, guard = (materialize(d) for d in (train, debug, test, guard))
        for name in ("proposer", "captioner", "generator"):
            self._component(name)
        proposals = self.propose()  # cheap, and an error here costs nothing
        steps.check_enough_values(proposals, max(grids["k"]), self.attribute)
        prep = self.prepare(train, debug, test, seed=seed, guard=guard, extra=extra)
        self._check_validation(prep, grids)
        captioned = self.caption(debug, prep.failures, proposals, k=max(grids["k"]), seed=seed)
        _warn_if_no_mode(captioned, prep.failures)
        repairs = self._repairs(
            prep, captioned, proposals, grids, seed, {"train": train, "debug": debug}
        )
        targeted = repairs["failmodes"]
        modes = dataclasses.replace(captioned, modes=targeted.modes)
        heads = {"before": prep.head} | {m: fixed.selection.head for m, fixed in repairs.items()}
        if self.baselines:
            tools = self.tools()
            heads["refit"] = steps.fit_head(
                tools.head_trainer, prep.head, prep.train, lam=0.0, seed=seed, cache=tools.cache
            )
        stage("evaluating %d heads", len(heads))
        accuracy, group_accuracy = steps.evaluate_run(prep, heads, groups_of(test))
        chosen = targeted.selection.settings
        result = RunResult(
            class_names=list(self.class_names),
            attribute=self.attribute,
            accuracy=accuracy,
            group_accuracy=group_accuracy,
            failures=prep.failures,
            modes=modes,
            generated=targeted.generated,
            selection=steps.selection_table({m: r.selection.table for m, r in repairs.items()}),
            config=run_config(self.components, grids, chosen, seed, prep),
            caption_accuracy=steps.caption_accuracy(debug, modes),
            mode_accuracy=steps.evaluate_modes(
                prep, heads, groups_of(debug), modes, targeted.generated
            ),
            baseline_generated={m: r.generated for m, r in repairs.items() if m in BASELINES},
            heads=heads,
            examples=failure_examples(debug, modes, per_mode=self.examples_per_mode),
            seconds=time.perf_counter() - started,
            chosen=steps.preferred_rung(repairs) if self.real else None,
            n_real=None if prep.real is None else len(prep.real),
        )
        _warn_if_refused(repairs)
        logger.info("run finished in %.1fs", result.seconds)
        return result

    def _repairs(
        self,
        prep: PreparedRun,
        modes: FailureModes,
        proposals: dict,
        grids: dict,
        seed: int,
        data: dict[str, Any],
    ) -> dict[str, Repair]:
        """The ladder's rungs (``dfr`` with ``real``, ``failmodes``) and the baselines."""
        pool, source_data = self._sources(prep, data)
        tools, out = self.tools(source_data=source_data), {}
        if grids["lam_real"]:
            stage("refitting on the debug set's own images (%s)", self.real)
            out["dfr"] = steps.repair(tools, prep, steps.real_plan(grids["lam_real"]), seed=seed)
        grids = grids | {"lam_real": steps.real_weights(tools, grids["lam_real"])}
        plan = steps.targeted_plan(
            modes.top_k(max(grids["k"])),
            class_names=self.class_names,
            attribute=self.attribute,
            weights=allocation_weights(modes, self.allocation),
            proposals=proposals,
            class_failures=modes.class_failures(),
            sources=pool,
            seed=seed,
            **grids,
        )
        targeted = out["failmodes"] = steps.repair(
            tools, prep, plan, proposals=proposals, seed=seed
        )
        if not self.baselines:
            return out
        chosen = targeted.selection.settings
        plans = steps.baseline_plans(
            targeted.modes,
            proposals,
            class_names=self.class_names,
            attribute=self.attribute,
            k=chosen["k"],
            images_per_mode=chosen["images_per_mode"],
            lam=grids["lam"],
            lam_real=grids["lam_real"],
            sources=pool,
            seed=seed,
        )
        for method, baseline in plans.items():
            stage("baseline: %s", method)
            out[method] = steps.repair(tools, prep, baseline, proposals=proposals, seed=seed)
        return out

    def _check_validation(self, prep: PreparedRun, grids: dict[str, list]) -> None:
        """A warning when the validation part is empty but ``grids`` offer a choice."""
        steps.check_validation(
            prep.failures,
            self.class_names,
            validation_fraction=self.validation_fraction,
            grids=grids,
        )

    def _sources(self, prep: PreparedRun, data: dict[str, Any]) -> tuple[Any, Any]:
        """``(each class's source indices, the source data)`` for an editor; else nothing."""
        if not isinstance(self.generator, EditingGenerator):
            return None, None
        if self.sources == "debug_seed":
            labels, rows, source = prep.failures.labels, prep.failures.seed, data["debug"]
        else:
            source = data["train"]
            labels, rows = labels_of(source, "train"), prep.train_rows
        return steps.source_pool(labels, self.class_names, rows), source

    def refit_on(
        self,
        generated: GeneratedSet,
        train: Any,
        debug: Any,
        *,
        failures: FailureSet | None = None,
        seed: int = 0,
    ) -> tuple[torch.nn.Linear, float, pd.DataFrame]:
        """This model's head repaired with a given set; ``lam`` chosen as [`run`][run] does.

        Args:
            generated: the images to repair with (made for another model, say).
            train: the training data, refit on.
            debug: the debug set ``failures`` indexes into.
            failures: this model's split of ``debug`` (its ``RunResult.failures``); ``None``:
                made with ``seed``.
            seed: passed to the head trainer (and the split).

        Returns:
            ``(head, lam, selection table)``, one row per candidate ``lam``.
        """
        prep = self.prepare(train, debug, seed=seed, failures=failures)
        lam = self.grids()["lam"]
        self._check_validation(prep, {"lam": lam})
        plan = steps.given_plan(lam, method="refit_on")
        fixed = steps.repair(self.tools(), prep, plan, generated=generated, seed=seed)
        pick = fixed.selection
        return pick.head, float(pick.settings["lam"]), pick.table


def _warn_if_refused(repairs: Mapping[str, Repair]) -> None:
    """A warning naming the repairs whose every candidate the guard refused."""
    refused = [m for m, fixed in repairs.items() if fixed.selection.settings.get("kept_original")]
    if refused:
        warnings.warn(
            f"the guard refused every candidate of {', '.join(refused)}: each lost more than "
            "guard_tolerance on the guard, so the original head is kept for it (the summary's "
            "kept_original); a larger guard_tolerance, or fewer images, may leave one",
            stacklevel=4,  # the caller of run
        )


def _warn_if_no_mode(modes: FailureModes, failures: FailureSet) -> None:
    """A warning when no class has a failure mode: nothing will be generated."""
    if any(modes.modes.values()):
        return
    named = sum(modes.class_failures().values())
    why = (
        "too few failures for the split to leave any in debug_seed (each class's failures are "
        "split half and half)"
        if len(failures.seed) == 0
        else "no captioned value fails more often than its class does"
    )
    warnings.warn(
        f"no failure mode was found: {len(failures.seed)} debug_seed failures, {named} captioned "
        f"with an uncommon value ({why}); nothing is generated, and the failmodes row refits "
        "on what else the repair has (a larger debug set gives the captions more to rank)",
        stacklevel=4,  # the caller of run
    )
