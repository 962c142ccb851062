"""Loading open_clip models, shared by the CLIP captioner and the CLIP feature extractor."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from failmodes._imports import require

logger = logging.getLogger("failmodes")

# open_clip model names with these schemas carry their own weights; ``pretrained`` is ignored.
SCHEMAS = ("local-dir:", "hf-hub:")
# the temperature of OpenAI's CLIP, for a model object without ``logit_scale``
DEFAULT_LOGIT_SCALE = 100.0


def load_open_clip(
    model: str | Any,
    pretrained: str | None,
    *,
    tokenizer: Callable[..., torch.Tensor] | None,
    preprocess: Callable[..., torch.Tensor] | None,
    device: torch.device,
    owner: str,
    need: tuple[str, ...] = ("tokenizer", "preprocess"),
) -> tuple[Any, Callable[..., torch.Tensor] | None, Callable[..., torch.Tensor] | None]:
    """Build a model by name, or adopt a model object; return ``(model, tokenizer, preprocess)``.

    A model by name gets open_clip's own tokenizer and inference transform unless ``tokenizer``
    or ``preprocess`` is given. A model object must come with those listed in ``need``; ``owner``
    names the component in error messages. The model is moved to ``device`` and put in eval mode.
    """
    if isinstance(model, str):
        open_clip = require("open_clip", feature=owner)
        pretrained = None if model.startswith(SCHEMAS) else pretrained
        logger.info("loading open_clip model %r (pretrained=%r)", model, pretrained)
        built, _, default_preprocess = open_clip.create_model_and_transforms(
            model, pretrained=pretrained, device=device
        )
        if tokenizer is None:
            tokenizer = open_clip.get_tokenizer(model)
        if preprocess is None:
            preprocess = default_preprocess
        model = built
    else:
        if not (hasattr(model, "encode_image") and hasattr(model, "encode_text")):
            raise TypeError(
                f"{owner}(model=...) must be an open_clip model name or a model with "
                f"encode_image and encode_text, got {type(model).__name__}"
            )
        given = {"tokenizer": tokenizer, "preprocess": preprocess}
        missing = [name for name in need if given[name] is None]
        if missing:
            raise ValueError(
                f"{owner} was given a model object, so it also needs "
                f"{' and '.join(missing)}=...: e.g. tokenizer=open_clip.get_tokenizer(name) "
                "and the preprocess from open_clip.create_model_and_transforms(name, ...)"
            )
        if isinstance(model, torch.nn.Module):
            model = model.to(device)
    if isinstance(model, torch.nn.Module):
        model.eval()
    return model, tokenizer, preprocess


def logit_scale(model: Any, device: torch.device) -> torch.Tensor:
    """The model's softmax temperature ``exp(logit_scale)`` as a float32 scalar."""
    scale = getattr(model, "logit_scale", None)
    if scale is None:
        logger.debug("model has no logit_scale; using %s", DEFAULT_LOGIT_SCALE)
        return torch.tensor(DEFAULT_LOGIT_SCALE, device=device)
    return torch.as_tensor(scale, dtype=torch.float32, device=device).detach().exp().reshape(())
