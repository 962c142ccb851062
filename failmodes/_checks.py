"""Validation shared by the steps and the Debugger: one place, one message per kind of value."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from failmodes.errors import SettingError

__all__ = [
    "SettingError",
    "check_class_names",
    "check_device",
    "check_grid",
    "check_instance",
    "check_number",
]


def check_instance(value: Any, name: str, kind: type | tuple[type, ...], expected: str) -> None:
    """Raise a TypeError naming ``name`` unless ``value`` is a ``kind``."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}")


def check_number(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
    below: float | None = None,
    finite: bool = False,
) -> Any:
    """``value`` as an int or float, or a ValueError that names ``name`` and the range.

    Booleans and NaN are refused (numpy's numbers are numbers); ``integer`` accepts integral
    floats (``2.0``) and returns an int. ``minimum``/``maximum`` are inclusive bounds, ``below``
    an exclusive upper bound; ``finite`` refuses infinities too (the message says so where no
    upper bound does).
    """
    unbounded = maximum is None and below is None
    kind = "an integer" if integer else f"a {'finite ' if finite and unbounded else ''}number"
    bounds = [f">= {minimum}"] if minimum is not None else []
    bounds += [f"<= {maximum}"] if maximum is not None else []
    bounds += [f"< {below}"] if below is not None else []
    expected = f"{kind} {' and '.join(bounds)}".strip()
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)  # numpy numbers too
    ok = ok and not math.isnan(value)
    ok = ok and not ((integer or finite) and math.isinf(value))
    ok = ok and not (integer and int(value) != value)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    ok = ok and (below is None or value < below)
    if not ok:
        raise SettingError(name, f"must be {expected}, got {value!r}")
    return int(value) if integer else value


def check_grid(
    value: Any,
    name: str,
    *,
    minimum: float,
    integer: bool = False,
    maximum: float | None = None,
    finite: bool = False,
) -> list:
    """A setting given as one value or a list of candidates, as a sorted list without repeats.

    Each candidate is checked by [`check_number`][check_number], so the message is the same
    whether one value or a list was given.
    """
    values = list(value) if isinstance(value, list | tuple) else [value]
    if not values:
        raise ValueError(f"{name} must be a value or a non-empty list of values, got []")
    cast = int if integer else float
    bounds = {"minimum": minimum, "maximum": maximum, "integer": integer, "finite": finite}
    checked = [cast(check_number(v, name, **bounds)) for v in values]
    return sorted(set(checked))


def check_class_names(class_names: Any) -> list[str]:
    """``class_names`` as a list of distinct non-empty strings, by label index.

    A name with surrounding whitespace is refused (it would be carried into every prompt), and
    so are two names equal when lower-cased: CLIP tokenizers lower-case their text, so the two
    classes' prompts would be one.
    """
    if isinstance(class_names, str | bytes | Mapping) or not isinstance(class_names, Iterable):
        raise ValueError(
            "class_names must be a list of class names by label index, got "
            f"{type(class_names).__name__} {class_names!r:.60}"
        )
    names = list(class_names)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError("class_names must be a non-empty list of non-empty strings")
    padded = [n for n in names if n != n.strip()]
    if padded:
        raise ValueError(f"class_names must not have surrounding whitespace: {padded[0]!r}")
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"class_names must be unique; repeated: {repeated}")
    _check_case(names)
    return names


def _check_case(names: list[str]) -> None:
    """A ValueError naming the first two names that are equal when lower-cased."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise ValueError(
                "class_names must not be equal when lower-cased (CLIP tokenizers lower-case "
                f"prompts, so the classes could not be told apart): {other!r} and {name!r}"
            )


def check_device(device: Any, name: str = "device", *, here: bool = True) -> Any:
    """``device`` as a ``torch.device``, or a [`SettingError`][SettingError] naming ``name``.

    Args:
        device: a ``torch.device`` or its name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).
        name: the setting, for the message.
        here: also check that this machine has it: a CUDA index below
            ``torch.cuda.device_count()``, MPS where it is available. ``False`` checks the name
            alone (settings meant for another machine).

    Returns:
        The ``torch.device``.
    """
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise SettingError(
            name, f"must be a torch device ('cpu', 'cuda', 'cuda:1', 'mps'), got {device!r}"
        ) from None
    if here and parsed.type == "cuda":
        count = torch.cuda.device_count()
        if (parsed.index or 0) >= count:
            raise SettingError(
                name,
                f"must be a device of this machine, got {str(parsed)!r} but this machine has "
                f"{count} CUDA device{'' if count == 1 else 's'}",
            )
    if here and parsed.type == "mps" and not torch.backends.mps.is_available():
        raise SettingError(
            name, "must be a device of this machine, got 'mps' but this machine has no MPS device"
        )
    return parsed


SEED_MAX = 2**32 - 1


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed as an int in ``[0, 2**32 - 1]``, or a ValueError naming it (``1.0`` is taken)."""
    return check_number(seed, name, minimum=0, maximum=SEED_MAX, integer=True)


def component_name(component: Any) -> str:
    """How an error names a user's component: its class name."""
    return type(component).__name__
