"""The library's own error for a setting that cannot be used."""

from __future__ import annotations

__all__ = ["SettingError"]


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
