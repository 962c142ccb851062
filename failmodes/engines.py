"""Where the steps that map over data run their jobs: in this process, or on a Ray cluster.

Feature extraction, captioning, generation and filtering each cut their work into independent
jobs with fixed rows and seeds (a part of a dataset, a chunk of failures, a group of generation
requests), and hand the list to the engine in use. [`LocalEngine`][LocalEngine] (the default)
runs them here, in order. [`RayEngine`][RayEngine] runs them on a Ray Data actor pool, each
worker holding the job function (and so its model) once, and puts the results back in the
jobs' order; each job caches its result as it does locally, so the cache is the ledger: a
rerun skips finished jobs, whichever engine ran them.

An engine is never part of a cache key, and the same jobs give the same results on either
engine (bit for bit on a CPU: a worker uses as many torch threads as this process).

Examples:
    ```python
    from failmodes import Debugger
    from failmodes.engines import RayEngine

    dbg = Debugger(**components, engine=RayEngine(workers=4))  # a local Ray cluster
    dbg = Debugger(**components, engine=RayEngine("ray://head:10001", gpus_per_worker=1))
    ```
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from failmodes._checks import check_number
from failmodes._imports import require

__all__ = ["Engine", "LocalEngine", "RayEngine", "current_engine", "on_engine", "using"]


class Engine(abc.ABC):
    """Runs a list of independent jobs and returns their results in the jobs' order."""

    @abc.abstractmethod
    def map(self, work: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        """``[work(job) for job in jobs]``, wherever the engine runs them.

        Args:
            work: does one job (it caches its own result when a cache is in use).
            jobs: the jobs, each independent of the others.

        Returns:
            One result per job, in the order of ``jobs``.
        """


class LocalEngine(Engine):
    """Runs every job here, one after the other (the default engine).

    Examples:
        >>> from failmodes.engines import LocalEngine
        >>> LocalEngine().map(lambda job: job * 2, [1, 2, 3])
        [2, 4, 6]
    """

    def map(self, work: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        """Run the jobs in this process, in order.

        Args:
            work: does one job.
            jobs: the jobs.

        Returns:
            ``[work(job) for job in jobs]``.
        """
        return [work(job) for job in jobs]

    def __repr__(self) -> str:
        return "LocalEngine()"


class RayEngine(Engine):
    """Runs jobs on a Ray cluster through Ray Data (the ``ray`` extra).

    Each map is a Ray Data pipeline: one row per job, one job per block (the unit Ray retries
    when a worker dies), ``map_batches`` with a callable class on an actor pool, so that each
    worker unpickles the job function, and the model inside it, once. Results are put back in
    the jobs' order by job id, never by Ray's block order.

    Args:
        address: the cluster to join (``"auto"``, ``"ray://host:10001"``); ``None`` joins the
            running cluster of this process or starts a local one.
        workers: the actor pool's size (at most one worker per job); ``None``: the cluster's
            CPUs.
        gpus_per_worker: GPUs each worker asks for (a generation or extraction stage on a GPU).
        cpus_per_worker: CPUs each worker asks for (fractions allowed).
        batch_size: jobs per block, the unit a worker takes at once and Ray runs again when
            the worker dies; ``None``: one job per block. More jobs per block save Ray's
            per-block work on many small jobs, and a dead worker costs its unfinished block.
            The jobs themselves (their rows and seeds) are set by the steps, so results do not
            depend on it.

    Raises:
        ValueError: a setting out of its range (``workers`` and ``batch_size`` positive
            integers or ``None``, ``gpus_per_worker >= 0``, ``cpus_per_worker > 0``).
        ImportError: from [`map`][map], if ``ray`` is not installed (it names the extra).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        gpus_per_worker: float = 0,
        cpus_per_worker: float = 1,
        batch_size: int | None = None,
    ):
        for name, value in (("workers", workers), ("batch_size", batch_size)):
            if value is not None:
                check_number(value, name, minimum=1, integer=True)
        check_number(gpus_per_worker, "gpus_per_worker", minimum=0)
        check_number(cpus_per_worker, "cpus_per_worker", minimum=0)
        if cpus_per_worker == 0:
            raise ValueError("cpus_per_worker must be > 0 (a fraction shares a CPU), got 0")
        self.address = address
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self.cpus_per_worker = cpus_per_worker
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return (
            f"RayEngine(address={self.address!r}, workers={self.workers!r}, "
            f"gpus_per_worker={self.gpus_per_worker!r}, cpus_per_worker={self.cpus_per_worker!r}"
            + ("" if self.batch_size is None else f", batch_size={self.batch_size!r}")
            + ")"
        )

    def map(self, work: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        """Run the jobs on the cluster's workers; results in the jobs' order.

        Args:
            work: does one job; Ray must be able to serialize it, and so every component
                it holds.
            jobs: the jobs.

        Returns:
            One result per job, in the order of ``jobs``.

        Raises:
            TypeError: if ``work`` (a component in it) cannot be pickled; the error names it.
        """
        jobs = list(jobs)
        if not jobs:
            return []
        require("ray", feature="RayEngine")
        import ray
        import ray.data
        import torch

        _check_picklable(work)
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        per_block = self.batch_size or 1
        blocks = -(-len(jobs) // per_block)
        rows = ray.data.from_items([{"id": i} for i in range(len(jobs))])
        rows = rows.repartition(blocks)  # what Ray retries is one block of jobs
        done = rows.map_batches(
            _Worker,
            fn_constructor_args=(work, jobs, torch.get_num_threads()),
            batch_size=per_block,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(
                size=min(self.workers or _cluster_cpus(ray), blocks)
            ),
            num_cpus=self.cpus_per_worker,
            num_gpus=self.gpus_per_worker or None,
        )
        results: dict[int, Any] = {}
        for row in done.iter_rows():
            results[int(row["id"])] = row["result"].value
        missing = [i for i in range(len(jobs)) if i not in results]
        if missing:  # pragma: no cover - Ray retries failed blocks
            raise RuntimeError(f"RayEngine lost the results of jobs {missing[:5]}")
        return [results[i] for i in range(len(jobs))]


class _Worker:
    """One actor: the job function, unpickled once; a batch of job ids in, results out."""

    def __init__(self, work: Callable[[Any], Any], jobs: list[Any], threads: int):
        import torch

        torch.set_num_threads(threads)  # the same float sums as the local run
        self.work = work
        self.jobs = jobs

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        ids = [int(i) for i in batch["id"]]
        results = np.empty(len(ids), dtype=object)
        for n, i in enumerate(ids):
            results[n] = _Boxed(self.work(self.jobs[i]))
        return {"id": np.asarray(ids), "result": results}


class _Boxed:
    """A job's result as an opaque object, which Ray carries as it is (tensors stay tensors)."""

    def __init__(self, value: Any):
        self.value = value


def _cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _check_picklable(work: Callable[[Any], Any]) -> None:
    """Raise a TypeError naming the part of ``work`` that cannot be shipped to a worker."""
    import io

    import ray

    parts = [work]
    if isinstance(work, partial):
        parts = [*work.args, *work.keywords.values(), work.func]
    for part in parts:
        ok, failures = ray.util.inspect_serializability(part, print_file=io.StringIO())
        if not ok:
            inner = sorted({type(f.obj).__name__ for f in failures} - {type(part).__name__})
            within = f" (it holds {', '.join(inner)})" if inner else ""
            raise TypeError(
                f"RayEngine cannot send {type(part).__name__} to its workers: it does not "
                f"pickle{within}. A component must be picklable, or travel as the call that "
                "builds it from its settings, as every shipped component does: give it a "
                "__reduce__ returning (factory, args)"
            )


_LOCAL = LocalEngine()
_CURRENT: contextvars.ContextVar[Engine | None] = contextvars.ContextVar(
    "failmodes_engine", default=None
)


def current_engine() -> Engine:
    """The engine the steps use now ([`LocalEngine`][LocalEngine] unless [`using`][using] set one).

    Returns:
        The engine.
    """
    return _CURRENT.get() or _LOCAL


@contextlib.contextmanager
def using(engine: Engine | None) -> Iterator[Engine]:
    """Run the steps inside the ``with`` block on ``engine`` (``None``: keep the current one).

    Args:
        engine: an [`Engine`][Engine], or ``None``.

    Yields:
        The engine in use.

    Raises:
        TypeError: if ``engine`` is not an [`Engine`][Engine].

    Examples:
        >>> from failmodes.engines import LocalEngine, current_engine, using
        >>> with using(LocalEngine()) as engine:
        ...     current_engine() is engine
        True
    """
    if engine is None:
        yield current_engine()
        return
    if not isinstance(engine, Engine):
        raise TypeError(
            f"engine must be an Engine (LocalEngine, RayEngine), got {type(engine).__name__}"
        )
    token = _CURRENT.set(engine)
    try:
        yield engine
    finally:
        _CURRENT.reset(token)


def on_engine(method: Callable[..., Any]) -> Callable[..., Any]:
    """A method of an object with an ``engine`` attribute, run [`using`][using] that engine.

    Args:
        method: the method to wrap.

    Returns:
        The method, run inside ``using(self.engine)``.
    """

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with using(self.engine):
            return method(self, *args, **kwargs)

    return run
