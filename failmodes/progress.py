"""One progress policy for the whole library: bars through ``tqdm.auto``, stages through logging.

Every ``progress`` argument, of a component or of a call, means the same:

- ``True``: show a bar;
- ``False``: show none;
- ``None`` (every default): the library's default, [`set_progress`][set_progress]'s: a bar
  where a person watches one, on a terminal or in a Jupyter notebook.

A call's ``progress=True`` or ``False`` wins over the component's own setting; ``None`` leaves
it to the component, whose own default is ``None`` as well. [`progress_bar`][progress_bar] is
the one place that turns the setting into a bar, so every component behaves alike.

Besides bars, the steps announce what they are doing ("features of debug (10,000 images)") as
INFO records of the ``failmodes.stage`` logger. An application that configures logging decides
what it shows (``logging.basicConfig(level="INFO")`` shows them; ``failmodes demo`` prints them).
One that configures nothing, such as a plain script or a notebook, gets each stage as one line
on standard error, so that a long run is never silent.

To silence both, call ``failmodes.progress.set_progress(False)``, or set the environment
variable ``FAILMODES_PROGRESS=0`` before the library is imported (its value, ``0`` or ``1``, is
``set_progress``'s first setting). A ``progress=True`` given to a component or a call still
shows its bar.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

__all__ = ["STAGE_LOGGER", "progress_bar", "resolve_progress", "set_progress", "stage"]

STAGE_LOGGER = "failmodes.stage"
"""The logger whose INFO records name each stage of a run as it starts."""

PROGRESS_ENV = "FAILMODES_PROGRESS"
"""The environment variable whose ``0`` or ``1`` is the library's first progress setting."""

_stages = logging.getLogger(STAGE_LOGGER)
_setting: bool | None = None  # what progress=None means, as set_progress left it


def set_progress(show: bool | None) -> None:
    """Set what ``progress=None`` means everywhere, bars and stage lines alike.

    Args:
        show: ``False`` silences every bar left to its default and the stage lines printed to
            standard error; ``True`` shows bars wherever they are written, a log file included;
            ``None`` restores the default (bars on a terminal or in a notebook, stage lines
            where the application configured no logging).

    Raises:
        TypeError: ``show`` is not ``True``, ``False`` or ``None``.

    Examples:
        >>> from failmodes.progress import set_progress
        >>> set_progress(False)  # a quiet script or test
        >>> set_progress(None)  # back to the default
    """
    if show is not None and not isinstance(show, bool):
        raise TypeError(f"set_progress takes True, False or None, got {show!r}")
    global _setting
    _setting = show


def _from_environment() -> bool | None:
    text = os.environ.get(PROGRESS_ENV, "").strip()
    if text in ("0", "1"):
        return text == "1"
    if text not in ("", "auto"):
        warnings.warn(
            f"{PROGRESS_ENV} must be 0, 1 or auto, got {text!r}; progress is left to its default",
            stacklevel=2,
        )
    return None


def _watched() -> bool:
    """Whether a person watches standard error: a terminal, or a Jupyter notebook's cell."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    notebook = type(shell).__name__ == "ZMQInteractiveShell"
    return notebook or bool(getattr(sys.stderr, "isatty", lambda: False)())


def _logging_configured(logger: logging.Logger) -> bool:
    """Whether a handler other than a ``NullHandler`` would see ``logger``'s records."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


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
    show = _setting if progress is None else progress
    return tqdm(iterable, disable=not (_watched() if show is None else show), **options)


def stage(message: str, *args: Any) -> None:
    """Announce the start of a stage (an INFO record of the ``failmodes.stage`` logger).

    Where the application configured no logging, the stage is one line on standard error
    (``failmodes: <stage>``) unless [`set_progress`][set_progress] silenced it.

    Args:
        message: the stage, %-formatted with ``args`` as logging does.
        *args: the values of ``message``'s placeholders.

    Examples:
        >>> from failmodes.progress import stage
        >>> stage("features of %s (%d images)", "debug", 10_000)  # shown when INFO is on
    """
    if _logging_configured(_stages) or _setting is False:
        _stages.info(message, *args)
    else:
        print(f"failmodes: {message % args if args else message}", file=sys.stderr, flush=True)


_setting = _from_environment()
