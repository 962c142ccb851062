"""Proposers: per class, the uncommon values of the spurious attribute.

[`StaticProposer`][StaticProposer] returns values the user gives,
[`ChatGPTProposer`][ChatGPTProposer] asks a chat model (OpenAI or any server that speaks its
protocol; ``openai`` extra); every proposer merges redundant values with
[`merge_values`][merge_values].
"""

from __future__ import annotations

from failmodes.proposers.chatgpt import ChatGPTProposer, ProposalError
from failmodes.proposers.merge import merge_values, normalize_value
from failmodes.proposers.static import StaticProposer

__all__ = ["ChatGPTProposer", "ProposalError", "StaticProposer", "merge_values", "normalize_value"]
