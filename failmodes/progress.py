"""One progress policy for the whole library: bars through ``tqdm.auto``, stages through logging.

Every ``progress`` argument, of a component or of a call, means the same:

- ``True``: show a bar;
- ``False``: show none;
- ``None`` (every default): show one when standard error is a terminal.

A call's ``progress=True`` or ``False`` wins over the component's own setting; ``None`` leaves
it to the component, whose own default is ``None`` as well. [`progress_bar`][progress_bar] is
the one place that turns the setting into a bar, so every component behaves alike.

Besides bars, the steps announce what they are doing ("features of debug (10,000 images)") as
INFO records of the ``failmodes.stage`` logger. Nothing is printed unless the application asks:
``failmodes demo`` prints them, and in a notebook
``logging.basicConfig(level="INFO")`` (or a handler on ``failmodes.stage``) shows them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

__all__ = ["STAGE_LOGGER", "progress_bar", "resolve_progress", "stage"]

STAGE_LOGGER = "failmodes.stage"
"""The logger whose INFO records name each stage of a run as it starts."""

_stages = logging.getLogger(STAGE_LOGGER)


def resolve_progress(call: bool | None, own: bool | None = None) -> bool | None:
    """The setting in force: a call's ``True``/``False`` over the component's own.

    Args:
        call: the ``progress`` a method was called with.
        own: the component's ``progress`` setting.

    Returns:
        ``call`` unless it is ``None``, else ``own``.

    Examples:
        >>> from failmodes.progress import resolve_progress
        >>> resolve_progress(None, False), resolve_progress(True, False), resolve_progress(None)
        (False, True, None)
    """
    return own if call is None else call


def progress_bar(
    iterable: Iterable[Any] | None = None, *, progress: bool | None = None, **options: Any
) -> tqdm:
    """A ``tqdm.auto`` bar shown as ``progress`` says (``None``: when stderr is a terminal).

    Args:
        iterable: what to iterate over, or ``None`` for a bar updated by hand.
        progress: ``True`` shows the bar, ``False`` hides it, ``None`` shows it on a terminal.
        **options: passed to ``tqdm`` (``desc``, ``total``, ``unit``, ``leave``, ...).

    Returns:
        The bar (iterate over it, or call ``update``; close it when done).

    Examples:
        >>> from failmodes.progress import progress_bar
        >>> sum(progress_bar(range(4), progress=False, desc="adding"))
        6
    """
    disable = None if progress is None else not progress
    return tqdm(iterable, disable=disable, **options)


def stage(message: str, *args: Any) -> None:
    """Announce the start of a stage (an INFO record of the ``failmodes.stage`` logger).

    Args:
        message: the stage, %-formatted with ``args`` as logging does.
        *args: the values of ``message``'s placeholders.

    Examples:
        >>> from failmodes.progress import stage
        >>> stage("features of %s (%d images)", "debug", 10_000)  # shown when INFO is on
    """
    _stages.info(message, *args)
