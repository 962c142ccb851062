"""Tiny real models built in-process, for offline tests, examples and conformance checks.

They are the real classes of their libraries (open_clip, diffusers, transformers, timm) with
random weights and a few layers: no download, no network, and fast on a CPU. Their outputs mean
nothing; they exist so that code paths can be exercised end to end.
"""

from __future__ import annotations

from typing import Any

import torch

from failmodes._imports import require

__all__ = ["TINY_CLIP_IMAGE_SIZE", "tiny_clip"]

TINY_CLIP_IMAGE_SIZE = 32


def tiny_clip(seed: int = 0) -> tuple[torch.nn.Module, Any, Any]:
    """A two-layer open_clip CLIP with random weights: ``(model, preprocess, tokenizer)``.

    About 3.4M parameters, most in the token embedding (open_clip's 49,408-token vocabulary). The
    model takes 32x32 images; ``preprocess`` is open_clip's inference transform (PIL image ->
    normalised ``(3, 32, 32)`` tensor) and ``tokenizer`` is ViT-B-32's (it ships its BPE, so it
    works offline). The same seed gives the same weights; the global torch RNG is untouched.

    Example:
        >>> from failmodes.testing.tiny import tiny_clip
        >>> model, preprocess, tokenizer = tiny_clip(seed=0)
        >>> model.encode_text(tokenizer(["a photo of a fox"])).shape
        torch.Size([1, 32])
    """
    open_clip = require("open_clip", feature="tiny_clip")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(
            embed_dim=32,
            vision_cfg=open_clip.CLIPVisionCfg(
                layers=2, width=64, head_width=32, patch_size=8, image_size=TINY_CLIP_IMAGE_SIZE
            ),
            text_cfg=open_clip.CLIPTextCfg(
                context_length=77, vocab_size=49408, width=64, heads=2, layers=2
            ),
        )
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    preprocess = open_clip.image_transform(TINY_CLIP_IMAGE_SIZE, is_train=False)
    return model.eval(), preprocess, tokenizer
