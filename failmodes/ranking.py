"""How failure modes are ranked: failure counts, or failures in excess of the class's rate.

A value that is merely frequent among a class's images also collects many of its failures; one
that is rare but nearly always fails collects few. Counting failures alone ranks the first above
the second. Captioning a sample of the class's successes as well gives, per value, how many of
its images fail, and so the failures it causes beyond what the class's base rate predicts.

Examples:
    >>> from failmodes.ranking import mode_stats, wilson_interval
    >>> [round(x, 3) for x in wilson_interval(31, 40)]
    [0.625, 0.877]
    >>> table = mode_stats({"in a jungle": (31, 40), "on a table": (40, 400)},
    ...                    class_failures=100, class_total=1000)
    >>> for row in table.itertuples():
    ...     print(row.value, row.failures, row.total, round(row.lift, 2), row.excess)
    in a jungle 31 40 7.75 27.0
    on a table 40 400 1.0 0.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

__all__ = [
    "ALLOCATIONS",
    "RANKS",
    "STATS_COLUMNS",
    "allocate",
    "mode_counts",
    "mode_stats",
    "rank_values",
    "wilson_interval",
]

RANKS = ("excess", "count")
"""The ways to rank a class's values: by excess failures, or by failure count (the paper's)."""

ALLOCATIONS = ("even", "excess")
"""How a class's images are shared among its modes: evenly, or in proportion to excess failures."""

STATS_COLUMNS = (
    "value",
    "failures",
    "total",
    "failure_rate",
    "base_rate",
    "lift",
    "excess",
    "ci_low",
    "ci_high",
)
"""The columns of [`mode_stats`][mode_stats], after ``class`` where a table has it."""

_Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


def wilson_interval(failures: int, total: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a failure rate (95% by default).

    Args:
        failures: failures among ``total`` images.
        total: images.
        z: the normal quantile of the interval's confidence.

    Returns:
        ``(low, high)``; ``(0.0, 1.0)`` when ``total`` is 0.

    Raises:
        ValueError: if the counts are negative or ``failures`` exceeds ``total``.

    Examples:
        >>> wilson_interval(0, 10)[0], round(wilson_interval(0, 10)[1], 4)
        (0.0, 0.2775)
    """
    if failures < 0 or total < 0 or failures > total:
        raise ValueError(f"need 0 <= failures <= total, got {failures} of {total}")
    if total == 0:
        return 0.0, 1.0
    p = failures / total
    z2 = z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def mode_stats(
    counts: Mapping[str, tuple[int, int]], *, class_failures: int, class_total: int
) -> pd.DataFrame:
    """One class's values against its base rate.

    Args:
        counts: ``{value: (failures, total)}``: the captioned failures and captioned images
            (failures and successes) of each value.
        class_failures: the class's captioned failures, whatever their value.
        class_total: the class's captioned images, whatever their value.

    Returns:
        One row per value, in the order of ``counts``, with the columns of
        [`STATS_COLUMNS`][STATS_COLUMNS]: ``failure_rate`` (failures / total), ``base_rate``
        (the class's), ``lift`` (their ratio; NaN when the base rate is 0), ``excess``
        (failures - total x base rate) and the Wilson interval of the failure rate.
    """
    base = class_failures / class_total if class_total else float("nan")
    rows = []
    for value, (failures, total) in counts.items():
        low, high = wilson_interval(failures, total)
        rate = failures / total if total else float("nan")
        rows.append(
            (
                value,
                failures,
                total,
                rate,
                base,
                rate / base if base else float("nan"),
                failures - total * base,
                low,
                high,
            )
        )
    return pd.DataFrame(rows, columns=list(STATS_COLUMNS))


def rank_values(
    stats: pd.DataFrame, *, rank: str = "excess", order: Sequence[str] = ()
) -> list[str]:
    """A class's values with failures, best first.

    Args:
        stats: the class's [`mode_stats`][mode_stats].
        rank: ``"excess"`` (excess failures, then failures) or ``"count"`` (failures).
        order: the class's candidates; their order breaks the remaining ties.

    Returns:
        The values that have at least one failure, ranked.

    Raises:
        ValueError: if ``rank`` is not one of [`RANKS`][RANKS].
    """
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {list(RANKS)}, got {rank!r}")
    position = {v: i for i, v in enumerate(order)}
    rows = [r for r in stats.itertuples(index=False) if r.failures > 0]

    def key(r) -> tuple:
        tie = (position.get(r.value, len(position)), r.value)
        if rank == "count":
            return (-r.failures, *tie)
        return (-round(r.excess, 9), -r.failures, *tie)

    return [r.value for r in sorted(rows, key=key)]


def allocate(weights: Sequence[float], total: int) -> list[int]:
    """``total`` items shared in proportion to ``weights`` (largest remainders; ties to the first).

    Negative weights count as 0; when no weight is positive, the items are shared evenly.

    Args:
        weights: one weight per share.
        total: the items to share.

    Returns:
        One count per weight, summing to ``total``.

    Examples:
        >>> allocate([3.0, 1.0, 0.0], 10), allocate([0.0, -1.0], 5)
        ([8, 2, 0], [3, 2])
    """
    clipped = [max(float(w), 0.0) for w in weights]
    if not clipped:
        return []
    if sum(clipped) <= 0:
        clipped = [1.0] * len(clipped)
    exact = [total * w / sum(clipped) for w in clipped]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def mode_counts(
    ranked: Mapping[str, Sequence[str]],
    *,
    k: int,
    images_per_mode: int,
    weights: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[tuple[str, str], int]:
    """Images per ``(class, value)`` for a class's top ``k`` modes.

    Args:
        ranked: ``{class_name: [value, ...]}``, each class's modes, best first.
        k: modes per class.
        images_per_mode: images per mode on average: a class with ``m`` modes (at most ``k``)
            gets ``m x images_per_mode`` images.
        weights: ``{class_name: {value: weight}}`` to share each class's images in proportion
            to (see [`allocate`][allocate]); ``None`` shares them evenly.

    Returns:
        ``{(class_name, value): count}``, modes with no image left out.
    """
    out = {}
    for name, values in ranked.items():
        top = list(values)[:k]
        if weights is None:
            counts = [images_per_mode] * len(top)
        else:
            counts = allocate([weights[name][v] for v in top], images_per_mode * len(top))
        out.update({(name, v): n for v, n in zip(top, counts, strict=True) if n > 0})
    return out
