"""The one seam through which the data-mapping steps run their jobs.

Extraction, captioning, generation and filtering each express their work as a list of
independent jobs (a part of a dataset, a chunk of failures, a group of generation requests)
and a function that does one job, cache included, and returns its result. ``map_jobs`` hands
them to the engine in use ([`failmodes.engines`][failmodes.engines]): in this process, in
order, by default; on a Ray cluster with a ``RayEngine``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from failmodes.engines import current_engine

__all__ = ["JOB_IMAGES", "chunks", "map_jobs"]

Job = TypeVar("Job")
Result = TypeVar("Result")

JOB_IMAGES = 4096
"""Images per captioning or filtering job."""


def map_jobs(work: Callable[[Job], Result], jobs: Sequence[Job]) -> list[Result]:
    """``[work(job) for job in jobs]`` on the engine in use: results in the jobs' order."""
    return current_engine().map(work, jobs)


def chunks(count: int, size: int) -> list[range]:
    """``range(count)`` cut into consecutive ranges of at most ``size`` (none when empty)."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]
