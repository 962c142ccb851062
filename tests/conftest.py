"""Shared test fixtures: tiny real models built in-process (no download, no network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def make_tiny_clip() -> Callable[..., tuple[torch.nn.Module, Any, Any]]:
    """A builder ``make_tiny_clip(seed=0) -> (model, preprocess, tokenizer)``.

    For fixtures of a wider scope than a test (a tiny CLIP trained once per module). The same
    seed gives the same weights; the global torch RNG is left untouched.
    """
    pytest.importorskip("open_clip")
    from failmodes.testing.tiny import tiny_clip

    return tiny_clip


@pytest.fixture
def tiny_clip(make_tiny_clip) -> tuple[torch.nn.Module, Any, Any]:
    """``(model, preprocess, tokenizer)``: a fresh, untrained tiny open_clip CLIP (seed 0).

    See :func:`failmodes.testing.tiny.tiny_clip`.
    """
    return make_tiny_clip(0)
