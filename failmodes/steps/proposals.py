"""Step 3, proposals: per class, the values of the spurious attribute that are uncommon for it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from failmodes._checks import check_instance, component_name
from failmodes.attributes import get_attribute
from failmodes.cache import Cache, cache_spec, fingerprint
from failmodes.interfaces import BackgroundProposer
from failmodes.progress import stage

__all__ = ["check_enough_values", "check_values", "propose"]

logger = logging.getLogger("failmodes")


def propose(
    proposer: BackgroundProposer,
    class_names: Sequence[str],
    *,
    attribute: str = "background",
    cache: Cache | None = None,
) -> dict[str, list[str]]:
    """Ask the proposer for uncommon values of the attribute for every class.

    With a cache, only the classes without a cached answer are asked, and the answers
    received before a proposer's error (the ``partial`` of a
    [`ProposalError`][failmodes.proposers.ProposalError]) are cached before it is raised, so a
    rerun asks only for the rest.

    Args:
        proposer: the proposer.
        class_names: the classes to ask about.
        attribute: the spurious attribute.
        cache: where answers are kept per class, or ``None``.

    Returns:
        ``{class_name: [value, ...]}`` for every class, in ``class_names`` order.

    Raises:
        ValueError: if the proposer left a class out.
        TypeError: if ``proposer`` is not a
            [`BackgroundProposer`][failmodes.interfaces.BackgroundProposer] or returns
            something other than a dict.
        Exception: whatever the proposer raises, after its partial answers are cached.

    Examples:
        >>> from failmodes import StaticProposer
        >>> from failmodes.steps import propose
        >>> propose(StaticProposer({"fox": ["in a desert"], "owl": []}), ["fox", "owl"])
        {'fox': ['in a desert'], 'owl': []}
    """
    check_instance(proposer, "proposer", BackgroundProposer, "a BackgroundProposer")
    store = _Answers(cache, proposer, attribute)
    known = {n: hit for n in class_names if (hit := store.get(n)) is not None}
    missing = [n for n in class_names if n not in known]
    if missing:
        stage(
            "proposing %s for %d classes", get_attribute(attribute).plural or "values", len(missing)
        )
        known.update(_ask(proposer, missing, attribute, store))
    return {n: list(known[n]) for n in class_names}


def _ask(
    proposer: BackgroundProposer, missing: list[str], attribute: str, store: _Answers
) -> dict[str, list[str]]:
    """The proposer's answers for ``missing``, each cached; partial answers kept on an error."""
    try:
        proposals = proposer.propose(missing, attribute=attribute)
    except Exception as err:
        partial = getattr(err, "partial", None)  # ProposalError: what arrived before the error
        if isinstance(partial, dict):
            for name, values in partial.items():
                if name in missing and values:
                    store.put(name, values)
        raise
    name = component_name(proposer)
    if not isinstance(proposals, dict):
        raise TypeError(f"{name}.propose must return a dict, got {type(proposals).__name__}")
    absent = [n for n in missing if n not in proposals]
    if absent:
        raise ValueError(f"{name}.propose returned no entry for classes {absent}")
    answers = {n: check_values(proposals[n], n, name) for n in missing}
    for name, values in answers.items():
        store.put(name, values)
    return answers


class _Answers:
    """The proposer's cached answers, one entry per class (nothing when there is no cache)."""

    def __init__(self, cache: Cache | None, proposer: BackgroundProposer, attribute: str):
        self.cache = cache
        self.proposer = fingerprint(proposer) if cache is not None else None
        self.attribute = attribute

    def _key(self, name: str) -> str | None:
        spec = cache_spec(proposer=self.proposer, attribute=self.attribute, class_name=name)
        return None if self.cache is None or spec is None else self.cache.key("proposals", spec)

    def get(self, name: str) -> Any:
        key = self._key(name)
        return None if key is None else self.cache.get_json("proposals", key)

    def put(self, name: str, values: list[str]) -> None:
        key = self._key(name)
        if key is not None:
            self.cache.put_json("proposals", key, values)


def check_enough_values(proposals: dict[str, list[str]], k: int, attribute: str) -> None:
    """Raise when a class has some proposals but fewer than ``k`` (checked before any feature).

    A class with no proposals at all is an error only if it has failures (the caption step
    says so).

    Args:
        proposals: ``{class_name: [value, ...]}``.
        k: the largest number of failure modes per class.
        attribute: the attribute, named in the message.

    Raises:
        ValueError: naming ``k`` and the short classes.
    """
    short = {c: len(v) for c, v in proposals.items() if 0 < len(v) < k}
    if short:
        raise ValueError(
            f"k={k} failure modes per class, but the proposer gave fewer "
            f"{get_attribute(attribute).plural or 'values'} for {len(short)} classes "
            f"(e.g. {dict(list(short.items())[:3])}); lower k or propose more values"
        )


def check_values(values: Any, class_name: str, proposer: str = "the proposer") -> list[str]:
    """One class's proposed values, checked: a list of non-empty strings.

    Args:
        values: what the proposer returned for the class.
        class_name: the class.
        proposer: how to name the proposer in the error.

    Returns:
        The values, as a list.

    Raises:
        TypeError: if ``values`` is not a list (a string, a set, a mapping) or holds anything
            but strings.
        ValueError: if a value is empty or blank.
    """
    if isinstance(values, str | bytes | Mapping | set | frozenset) or not isinstance(
        values, Iterable
    ):
        raise TypeError(
            f"{proposer}.propose must return a list of strings for class {class_name!r}, got "
            f"{type(values).__name__} {values!r:.80}"
        )
    values = list(values)
    if not all(isinstance(v, str) for v in values):
        raise TypeError(
            f"{proposer}.propose must return a list of strings for class {class_name!r}, got "
            f"{values!r:.80}"
        )
    if any(not v.strip() for v in values):
        raise ValueError(f"{proposer}.propose returned an empty value for class {class_name!r}")
    return values
