"""A proposer that returns values the user already knows, with no model and no network."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from failmodes.attributes import get_attribute
from failmodes.interfaces import BackgroundProposer
from failmodes.proposers.merge import merge_values

__all__ = ["StaticProposer"]

logger = logging.getLogger("failmodes")

ValueSource = Mapping[str, Sequence[str]] | Callable[[str, str], Iterable[str]]


class StaticProposer(BackgroundProposer):
    """Proposes fixed values: from a ``{class_name: [value, ...]}`` dict or a function.

    Use it when the uncommon values are known (a benchmark's group labels, a domain expert's
    list), to replay a language model's answers saved earlier, or in tests. Redundant values are
    merged with [`failmodes.proposers.merge_values`][failmodes.proposers.merge_values], as for every
    proposer.

    Args:
        values: either a mapping ``{class_name: [value, ...]}``, used whatever the attribute, or
            a callable ``values(class_name, attribute) -> [value, ...]``; ``attribute`` is the
            attribute's canonical name (``"colour"`` is passed as ``"color"``).
        usual: ``{class_name: value}``, the usual value of the classes that have a known one
            (see
            [`usual_values`][failmodes.interfaces.BackgroundProposer.usual_values]), or ``None``.

    Examples:
        >>> proposer = StaticProposer({"fox": ["in a desert", "Desert", "on a frozen lake"]})
        >>> proposer.propose(["fox"])
        {'fox': ['in a desert', 'on a frozen lake']}
        >>> colors = StaticProposer(lambda name, attribute: ["red", "blue"])
        >>> colors.propose(["arrow", "circle"], attribute="color")
        {'arrow': ['red', 'blue'], 'circle': ['red', 'blue']}
    """

    def __init__(self, values: ValueSource, usual: Mapping[str, str] | None = None):
        self.values = values
        self.usual = usual

    def usual_values(
        self, class_names: Sequence[str], *, attribute: str = "background"
    ) -> dict[str, str]:
        """The ``usual`` values given to the constructor, for the classes asked about.

        Args:
            class_names: the classes to ask about.
            attribute: ignored.

        Returns:
            ``{class_name: value}`` for the asked classes that have a usual value.

        Raises:
            TypeError: if ``usual`` is not a mapping of class names to non-empty strings.
        """
        usual = self.usual if self.usual is not None else {}
        if not isinstance(usual, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in usual.items()
        ):
            raise TypeError(
                "StaticProposer(usual=...) must be a mapping {class_name: value} of non-empty "
                f"strings, got {usual!r}"
            )
        return {c: usual[c] for c in class_names if c in usual}

    def propose(
        self, class_names: Sequence[str], *, attribute: str = "background"
    ) -> dict[str, list[str]]:
        """Return the values of each class asked for, merged, in the order asked.

        Args:
            class_names: the classes to return values for.
            attribute: the spurious attribute; passed to a callable ``values``, ignored by a
                mapping.

        Returns:
            ``{class_name: [value, ...]}`` with exactly the classes in ``class_names``.

        Raises:
            ValueError: if a mapping ``values`` has no entry for some of ``class_names`` (all the
                missing ones are named), or ``attribute`` is blank.
            TypeError: if ``values`` is neither a mapping nor a callable, or gives something
                other than a list of strings for a class.
        """
        if isinstance(class_names, str):
            raise TypeError(f"class_names must be a list of names, not a string ({class_names!r})")
        names = list(class_names)
        attribute_name = get_attribute(attribute).name
        source = self.values
        if isinstance(source, Mapping):
            missing = [name for name in dict.fromkeys(names) if name not in source]
            if missing:
                raise ValueError(
                    f"StaticProposer(values=...) has no values for class(es) {missing}; "
                    f"it has values for {_shorten(list(source))}"
                )
        elif not callable(source):
            raise TypeError(
                "StaticProposer(values=...) must be a mapping {class_name: [value, ...]} or a "
                f"callable (class_name, attribute) -> [value, ...], got {type(source).__name__}"
            )
        proposals: dict[str, list[str]] = {}
        for name in names:
            raw = source[name] if isinstance(source, Mapping) else source(name, attribute_name)
            _check_value_list(name, raw)
            proposals[name] = merge_values(raw)
            if not proposals[name]:
                logger.warning("StaticProposer has no %s values for class %r", attribute_name, name)
        return proposals


def _check_value_list(class_name: str, raw: object) -> None:
    if isinstance(raw, set | frozenset):
        raise TypeError(
            f"StaticProposer(values=...) gave a set for class {class_name!r}; a set has no order, "
            "so pass a list"
        )
    if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Iterable):
        raise TypeError(
            f"StaticProposer(values=...) must give a list of strings for class {class_name!r}, "
            f"got {raw!r}"
        )


def _shorten(names: list, limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"[{shown}{more}]"
