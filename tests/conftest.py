"""Shared test fixtures: tiny real models built in-process (no download, no network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

TINY_CLIP_IMAGE_SIZE = 32


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models: intra-op threads only add overhead, badly so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_clip_model(seed: int) -> torch.nn.Module:
    """A two-layer open_clip CLIP (about 3.4M parameters, most in the token embedding)."""
    open_clip = pytest.importorskip("open_clip")
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
    return model.eval()


@pytest.fixture(scope="session")
def make_tiny_clip() -> Callable[..., tuple[torch.nn.Module, Any, Any]]:
    """A builder ``make_tiny_clip(seed=0) -> (model, preprocess, tokenizer)``.

    For fixtures of a wider scope than a test (a tiny CLIP trained once per module). The same
    seed gives the same weights; the global torch RNG is left untouched.
    """
    open_clip = pytest.importorskip("open_clip")
    tokenizer = open_clip.get_tokenizer("ViT-B-32")  # ships its BPE: works offline
    preprocess = open_clip.image_transform(TINY_CLIP_IMAGE_SIZE, is_train=False)

    def make(seed: int = 0) -> tuple[torch.nn.Module, Any, Any]:
        return _tiny_clip_model(seed), preprocess, tokenizer

    return make


@pytest.fixture
def tiny_clip(make_tiny_clip) -> tuple[torch.nn.Module, Any, Any]:
    """``(model, preprocess, tokenizer)``: a fresh, untrained tiny open_clip CLIP (seed 0).

    The model takes 32x32 images; ``preprocess`` is open_clip's inference transform (PIL image ->
    normalised ``(3, 32, 32)`` tensor) and ``tokenizer`` is ViT-B-32's, context length 77.
    """
    return make_tiny_clip(0)
