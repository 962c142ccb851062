"""Finding and replacing a model's linear head."""

from __future__ import annotations

import copy

from torch import nn

__all__ = ["find_head", "replace_head"]


def find_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """The last ``torch.nn.Linear`` registered in ``model`` (its classifier head).

    Raises:
        TypeError: if ``model`` is not an ``nn.Module`` or holds no ``nn.Linear``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise TypeError(
            f"model ({type(model).__name__}) has no nn.Linear layer to use as its head; pass "
            "backbone= and head= explicitly"
        )
    return found[-1]


def replace_head(model: nn.Module, head: nn.Linear, *, name: str | None = None) -> nn.Module:
    """A deep copy of ``model`` whose head (``name``, default: the last ``nn.Linear``) is ``head``.

    Raises:
        ValueError: if ``head``'s shape differs from the head it replaces.
    """
    name = name if name is not None else find_head(model)[0]
    old = model.get_submodule(name) if name else model
    if (old.in_features, old.out_features) != (head.in_features, head.out_features):
        raise ValueError(
            f"head has shape {head.in_features}->{head.out_features} but the model's head "
            f"{name!r} is {old.in_features}->{old.out_features}"
        )
    new = copy.deepcopy(head).to(next(old.parameters()).device)
    if not name:  # the model is the head itself
        return new
    patched = copy.deepcopy(model)
    parent_name, _, child = name.rpartition(".")
    parent = patched.get_submodule(parent_name) if parent_name else patched
    setattr(parent, child, new)
    return patched
