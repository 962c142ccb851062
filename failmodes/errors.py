"""The library's own errors: a setting that cannot be used, and data a run cannot use."""

from __future__ import annotations

__all__ = ["DataError", "SettingError"]


class SettingError(ValueError):
    """A setting that cannot be used: its name and what it must be.

    Raised by the checks of a component's settings before any work, so that a caller can tell
    it from an error in the data (a step adds a note about the data to the others) and name the
    key (``failmodes run`` names ``model.batch_size``). It is a ``ValueError``.

    Args:
        name: the setting (``"batch_size"``).
        message: what is wrong, starting with what it must be (``"must be ..., got 0"``).

    Attributes:
        name: the setting.
        message: the message without the name.

    Examples:
        >>> from failmodes import LinearHeadTrainer, SettingError
        >>> try:
        ...     LinearHeadTrainer(weight_decay=-0.1).check_params()
        ... except SettingError as err:
        ...     print(err.name, "|", err.message)
        weight_decay | must be a finite number >= 0, got -0.1
    """

    def __init__(self, name: str, message: str):
        super().__init__(f"{name} {message}")
        self.name, self.message = name, message

    def __reduce__(self) -> tuple:
        return type(self), (self.name, self.message)  # pickled whole, as a Ray worker sends it


class DataError(ValueError):
    """Data a run cannot use as it is: what is wrong with it, and what to give instead.

    Raised by the checks of a run's data (no failure to debug, failures of another debug set, a
    guard share that holds out nothing of a class) before any image is generated, so that a
    caller can tell a user's data from a bug: ``failmodes run`` and ``failmodes demo`` print it
    in one line. It is a ``ValueError``.

    Examples:
        >>> import numpy as np
        >>> from failmodes import DataError
        >>> from failmodes.steps import guard_counts
        >>> try:
        ...     guard_counts(np.array([0, 0, 1, 1]), 0.1)
        ... except DataError as err:
        ...     print(str(err).split(":")[0])
        guard_fraction=0.1 holds out no image of class 0 (2 train images)
    """
