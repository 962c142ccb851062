"""Conformance checks for components, and tiny real models for offline tests.

``check_*`` functions run a component through its interface's contract (as scikit-learn's
``check_estimator`` does for estimators) and raise an ``AssertionError`` that says what is wrong.
Use them in your own tests when you write a generator, captioner, proposer, extractor, head
trainer or image filter. [`failmodes.testing.tiny`][failmodes.testing.tiny] builds tiny models of
the real backends.
"""

from __future__ import annotations

from failmodes.testing.checks import (
    check_captioner,
    check_extractor,
    check_filter,
    check_generator,
    check_head_trainer,
    check_proposer,
    sample_images,
)

__all__ = [
    "check_captioner",
    "check_extractor",
    "check_filter",
    "check_generator",
    "check_head_trainer",
    "check_proposer",
    "sample_images",
]
