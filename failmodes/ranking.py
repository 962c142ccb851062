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

import abc
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "ALLOCATIONS",
    "DEFAULT_RANK",
    "RANKINGS",
    "STATS_COLUMNS",
    "CountRanking",
    "ExcessRanking",
    "Ranking",
    "allocate",
    "allocation_weights",
    "get_ranking",
    "mode_counts",
    "mode_stats",
    "rank_values",
    "register_ranking",
    "spread_counts",
    "top_modes",
    "wilson_interval",
]

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


class Ranking(abc.ABC):
    """How a class's captioned values are ranked into its failure modes.

    A ranking orders the rows of a class's [`mode_stats`][mode_stats] (one per value) and may
    leave some out. Register a new one with [`register_ranking`][register_ranking]; its
    ``name`` is then accepted wherever a ranking is (``Debugger(rank=...)``, ``failmodes demo
    --rank``), and ``Debugger(rank=MyRanking())`` takes an unregistered one.

    Attributes:
        name: how settings, configs and the command line name it.
        needs_successes: whether it needs a sample of each class's successes captioned too
            (failure rates against the class's base rate); the captions step then captions them.
        explanation: how the report words the rule, after "per class,".

    Examples:
        A ranking by lift (failure rate over the class's), used without registering it:

        >>> from failmodes.ranking import Ranking, mode_stats
        >>> class ByLift(Ranking):
        ...     name = "lift"
        ...     needs_successes = True
        ...     explanation = "the values that fail most often against the class are its modes"
        ...     def key(self, row):
        ...         return (-row.lift, -row.failures)
        >>> table = mode_stats({"on a table": (40, 400), "in snow": (3, 4)},
        ...                    class_failures=100, class_total=1000)
        >>> ByLift().rank(table)
        ['in snow', 'on a table']
    """

    name: str = ""
    needs_successes: bool = False
    explanation: str = ""

    @abc.abstractmethod
    def key(self, row: Any) -> tuple:
        """The sort key of one value (a row of [`mode_stats`][mode_stats]); smaller first.

        Args:
            row: the value's row, with the fields of [`STATS_COLUMNS`][STATS_COLUMNS].

        Returns:
            A tuple; ties are broken by the class's candidate order, then the value.
        """

    def keeps(self, row: Any, *, has_successes: bool) -> bool:
        """Whether a value with at least one failure may be a mode (by default, every one).

        Args:
            row: the value's row of [`mode_stats`][mode_stats].
            has_successes: whether successes were captioned, so that its rate is known.

        Returns:
            ``True`` to keep the value among the ranked ones.
        """
        return True

    def rank(
        self, stats: pd.DataFrame, *, order: Sequence[str] = (), has_successes: bool = False
    ) -> list[str]:
        """A class's values with failures that this ranking keeps, best first.

        Args:
            stats: the class's [`mode_stats`][mode_stats].
            order: the class's candidates; their order breaks the remaining ties.
            has_successes: whether successes were captioned (see [`keeps`][keeps]).

        Returns:
            The ranked values.
        """
        position = {v: i for i, v in enumerate(order)}
        rows = [
            r
            for r in stats.itertuples(index=False)
            if r.failures > 0 and self.keeps(r, has_successes=has_successes)
        ]
        rows.sort(key=lambda r: (*self.key(r), position.get(r.value, len(position)), r.value))
        return [r.value for r in rows]

    def explain(self, *, has_successes: bool) -> str:
        """How the report words the rule, after "per class,".

        Args:
            has_successes: whether successes were captioned.

        Returns:
            ``explanation``, unless the ranking reads otherwise without successes.
        """
        return self.explanation

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class CountRanking(Ranking):
    """The paper's ranking: the values with the most failures first."""

    name = "count"
    needs_successes = False
    explanation = "the most frequent ones are its failure modes"

    def key(self, row: Any) -> tuple:
        """Failures, most first.

        Args:
            row: the value's row of [`mode_stats`][mode_stats].

        Returns:
            ``(-failures,)``.
        """
        return (-row.failures,)


class ExcessRanking(Ranking):
    """Failures beyond the class's base rate first; with captioned successes, only values above it.

    A value that is merely frequent among a class's images collects many of its failures;
    ranking by excess failures (``failures - total x base rate``) puts a rare value that nearly
    always fails above it.
    """

    name = "excess"
    needs_successes = True
    explanation = "the values with the most failures beyond the class's rate are its failure modes"

    def key(self, row: Any) -> tuple:
        """Excess failures, then failures, most first.

        Args:
            row: the value's row of [`mode_stats`][mode_stats].

        Returns:
            ``(-excess, -failures)``, the excess rounded to 9 decimals (float noise ties).
        """
        return (-round(row.excess, 9), -row.failures)

    def keeps(self, row: Any, *, has_successes: bool) -> bool:
        """Only values failing beyond the class's rate, once that rate is known.

        Args:
            row: the value's row of [`mode_stats`][mode_stats].
            has_successes: whether successes were captioned.

        Returns:
            Whether the value's excess is positive (always ``True`` without successes).
        """
        return not has_successes or row.excess > 0

    def explain(self, *, has_successes: bool) -> str:
        """Without captioned successes every excess is 0, and the ranking is by count.

        Args:
            has_successes: whether successes were captioned.

        Returns:
            The rule, in words.
        """
        return self.explanation if has_successes else CountRanking.explanation


RANKINGS: dict[str, Ranking] = {}
"""The registered rankings by name; [`register_ranking`][register_ranking] adds one."""

DEFAULT_RANK = "excess"
"""The ranking used where none is given."""


def register_ranking(ranking: Ranking) -> Ranking:
    """Make ``ranking`` available by its name.

    Args:
        ranking: a [`Ranking`][Ranking] with a non-empty ``name``.

    Returns:
        ``ranking``.

    Raises:
        TypeError: if ``ranking`` is not a Ranking.
        ValueError: if its name is empty.
    """
    if not isinstance(ranking, Ranking):
        raise TypeError(f"ranking must be a Ranking, got {type(ranking).__name__}")
    if not isinstance(ranking.name, str) or not ranking.name:
        raise ValueError(f"{type(ranking).__name__}.name must be a non-empty string")
    RANKINGS[ranking.name] = ranking
    return ranking


for _builtin in (ExcessRanking(), CountRanking()):
    register_ranking(_builtin)


def get_ranking(rank: str | Ranking) -> Ranking:
    """The ranking named ``rank`` (a [`Ranking`][Ranking] passes through).

    Args:
        rank: a registered name (see [`RANKINGS`][RANKINGS]) or a Ranking.

    Returns:
        The ranking.

    Raises:
        ValueError: naming the registered rankings, if ``rank`` is neither.
    """
    if isinstance(rank, Ranking):
        return rank
    if isinstance(rank, str) and rank in RANKINGS:
        return RANKINGS[rank]
    raise ValueError(f"rank must be one of {list(RANKINGS)} or a Ranking, got {rank!r}")


def rank_values(
    stats: pd.DataFrame,
    *,
    rank: str | Ranking = DEFAULT_RANK,
    order: Sequence[str] = (),
    has_successes: bool = False,
) -> list[str]:
    """A class's values with failures, best first, by the ranking ``rank``.

    Args:
        stats: the class's [`mode_stats`][mode_stats].
        rank: a ranking's name or a [`Ranking`][Ranking].
        order: the class's candidates; their order breaks the remaining ties.
        has_successes: whether successes were captioned (a ranking may then leave values out).

    Returns:
        The values the ranking keeps, ranked.

    Raises:
        ValueError: if ``rank`` is not a registered ranking.
    """
    return get_ranking(rank).rank(stats, order=order, has_successes=has_successes)


def top_modes(modes: Any, k: int, *, warn: bool = False) -> dict[str, list[str]]:
    """The ``k`` best-ranked values of each class of ``modes``, by its ranking.

    Each class's values are ranked by ``modes.rank`` (see [`Ranking.rank`][Ranking.rank]), ties
    broken by the class's candidate order. With ``modes.significant`` and captioned successes,
    only values whose failure rate's Wilson interval lies above the class's base rate are kept;
    a class with none keeps its ranked values.

    Args:
        modes: a [`FailureModes`][failmodes.results.FailureModes].
        k: values kept per class.
        warn: warn when ``significant`` is set and a class has no value that clears its rate.

    Returns:
        ``{class_name: [value, ...]}``, best first; classes without a ranked value are left out.
    """
    ranking = get_ranking(modes.rank)
    out, fallback = {}, []
    for name, table in modes.stats().groupby("class", sort=False):
        ranked = ranking.rank(
            table, order=modes.candidates.get(name, []), has_successes=modes.has_successes
        )
        if not ranked:
            continue
        if modes.significant and modes.has_successes:
            clear = set(table.loc[table["ci_low"] > table["base_rate"], "value"])
            if clear:
                ranked = [v for v in ranked if v in clear]
            else:
                fallback.append(name)
        out[name] = ranked[:k]
    if warn and fallback:
        more = f", ... ({len(fallback) - 5} more)" if len(fallback) > 5 else ""
        shown = ", ".join(fallback[:5]) + more
        warnings.warn(
            f"{len(fallback)} classes have no value whose failure rate is clearly above the "
            f"class's ({shown}): they keep their top {k} values by {ranking.name}; caption more "
            "images to tell modes from chance",
            stacklevel=4,  # the caller of FailureModes.from_captions
        )
    return out


def allocation_weights(modes: Any, allocation: str) -> dict[str, dict[str, float]] | None:
    """How a class's images are shared among its modes, for [`mode_counts`][mode_counts].

    Args:
        modes: a [`FailureModes`][failmodes.results.FailureModes].
        allocation: one of [`ALLOCATIONS`][ALLOCATIONS]: ``"even"`` (``None``: evenly) or
            ``"excess"`` (in proportion to each value's excess failures).

    Returns:
        ``{class_name: {value: weight}}``, or ``None`` for an even share.

    Raises:
        ValueError: if ``allocation`` is not one of [`ALLOCATIONS`][ALLOCATIONS].
    """
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {list(ALLOCATIONS)}, got {allocation!r}")
    return modes.excess() if allocation == "excess" else None


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


def spread_counts(
    ranked: Mapping[str, Sequence[str]],
    proposals: Mapping[str, Sequence[str]],
    class_failures: Mapping[str, int],
    *,
    k: int,
    images_per_mode: int,
    prior: float,
    weights: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[tuple[str, str], int]:
    """Images per ``(class, value)``, leaning toward all of a class's values while few failed.

    A class with ``m`` captioned failures puts ``m / (m + prior)`` of its ``k x
    images_per_mode`` images on its top-``k`` modes (shared as [`mode_counts`][mode_counts]
    shares them) and the rest evenly on all of its proposed values: with a handful of failures
    it is close to the uniform baseline, with many close to the targeted repair. ``prior`` is
    a number of pseudo-failures spread evenly over the values; 0 is [`mode_counts`][mode_counts].

    Args:
        ranked: ``{class_name: [value, ...]}``, each class's modes, best first.
        proposals: ``{class_name: [value, ...]}``, each class's proposed values.
        class_failures: each class's captioned failures.
        k: modes per class.
        images_per_mode: images per mode on average.
        prior: pseudo-failures per class, ``>= 0``.
        weights: as for [`mode_counts`][mode_counts].

    Returns:
        ``{(class_name, value): count}``, values with no image left out.

    Examples:
        >>> from failmodes.ranking import spread_counts
        >>> ranked = {"fox": ["in snow"]}
        >>> proposals = {"fox": ["in snow", "at sea", "on sand", "in a den"]}
        >>> counts = spread_counts(ranked, proposals, {"fox": 4}, k=1, images_per_mode=8, prior=4)
        >>> [(value, n) for (_, value), n in counts.items()]
        [('in snow', 5), ('at sea', 1), ('on sand', 1), ('in a den', 1)]
    """
    if prior == 0:
        return mode_counts(ranked, k=k, images_per_mode=images_per_mode, weights=weights)
    out = {}
    for name, values in ranked.items():
        top = list(values)[:k]
        shares = [1.0] * len(top) if weights is None else [max(weights[name][v], 0.0) for v in top]
        shares = shares if sum(shares) > 0 else [1.0] * len(top)
        failures = class_failures.get(name, 0)
        targeted = failures / (failures + prior)
        spread = list(proposals.get(name, [])) or top
        share = dict.fromkeys([*top, *spread], 0.0)
        for value, weight in zip(top, shares, strict=True):
            share[value] += targeted * weight / sum(shares)
        for value in spread:
            share[value] += (1 - targeted) / len(spread)
        counts = allocate(list(share.values()), images_per_mode * len(top))
        out.update({(name, v): n for v, n in zip(share, counts, strict=True) if n > 0})
    return out
