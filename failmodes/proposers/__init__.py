"""Proposers: per class, the uncommon values of the spurious attribute.

:class:`StaticProposer` returns values the user gives; every proposer merges redundant values
with :func:`merge_values`.
"""

from __future__ import annotations

from failmodes.proposers.merge import merge_values, normalize_value
from failmodes.proposers.static import StaticProposer

__all__ = ["StaticProposer", "merge_values", "normalize_value"]
