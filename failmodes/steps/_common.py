"""Helpers the steps share: derived seeds and logits."""

from __future__ import annotations

import hashlib
from typing import Any

import torch

__all__ = ["derive_seed", "logits"]


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any parts, stable across runs and platforms.

    Args:
        *parts: what the seed depends on (a step's name, the run's seed, a class, ...).

    Returns:
        An integer in ``[0, 2**31)``.

    Examples:
        >>> from failmodes.steps import derive_seed
        >>> derive_seed("split", 0) == derive_seed("split", 0) != derive_seed("split", 1)
        True
    """
    blob = "\x1f".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF


def logits(head: torch.nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """``head(features)`` in float32, without gradients."""
    with torch.no_grad():
        return head.float()(features)
