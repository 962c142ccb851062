"""Tiny real models built in-process, for offline tests, examples and conformance checks.

They are the real classes of their libraries (open_clip, diffusers, transformers, timm) with
random weights and a few layers: no download, no network, and fast on a CPU. Their outputs mean
nothing; they exist so that code paths can be exercised end to end.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from failmodes._imports import require

__all__ = [
    "TINY_CLIP_IMAGE_SIZE",
    "TinySafetyChecker",
    "clip_tokenizer",
    "tiny_clip",
    "tiny_img2img",
    "tiny_instruct_pix2pix",
    "tiny_stable_diffusion",
]

TINY_CLIP_IMAGE_SIZE = 32
"""The side in pixels of the images [`tiny_clip`][tiny_clip]'s model takes."""


def tiny_clip(seed: int = 0) -> tuple[torch.nn.Module, Any, Any]:
    """A two-layer open_clip CLIP with random weights: ``(model, preprocess, tokenizer)``.

    About 3.4M parameters, most in the token embedding (open_clip's 49,408-token vocabulary). The
    model takes 32x32 images; ``preprocess`` is open_clip's inference transform (PIL image ->
    normalised ``(3, 32, 32)`` tensor) and ``tokenizer`` is ViT-B-32's (it ships its BPE, so it
    works offline). The same seed gives the same weights; the global torch RNG is untouched.
    Needs the ``clip`` extra.

    Args:
        seed: seed of the weights.

    Returns:
        ``(model, preprocess, tokenizer)``: an ``open_clip.CLIP`` in eval mode with 32-dimensional
        embeddings, its image transform and its tokenizer.

    Raises:
        ImportError: if open_clip is not installed (it names the extra).

    Examples:
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


@functools.lru_cache(maxsize=1)
def _clip_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's BPE vocabulary and merges, read from the file open_clip ships."""
    bpe = require("open_clip.tokenizer", feature="the CLIP tokenizer")
    with gzip.open(bpe.default_bpe(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(bpe.bytes_to_unicode().values())
    symbols += [s + "</w>" for s in symbols]
    symbols += ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return {s: i for i, s in enumerate(symbols)}, merges


def clip_tokenizer() -> Any:
    """The tokenizer of Stable Diffusion 1.x's text encoder, built offline.

    A ``transformers.CLIPTokenizer`` with OpenAI CLIP's 49,408-token BPE vocabulary, read from
    the copy that open_clip ships (so it needs the ``clip`` extra as well as ``transformers``),
    and a context of 77 tokens. It gives the token ids of ``openai/clip-vit-large-patch14``'s
    tokenizer, and pads with ``<|endoftext|>`` as Stable Diffusion's does.

    Returns:
        A ``transformers.CLIPTokenizer``.

    Raises:
        ImportError: if transformers or open_clip is not installed (it names the extra).

    Examples:
        >>> from failmodes.testing.tiny import clip_tokenizer
        >>> tokenizer = clip_tokenizer()
        >>> tokenizer("a photo of a fox").input_ids
        [49406, 320, 1125, 539, 320, 3240, 49407]
    """
    transformers = require("transformers", feature="the CLIP tokenizer")
    vocab, merges = _clip_bpe()
    return transformers.CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=77)


class TinySafetyChecker(torch.nn.Module):
    """A stand-in for diffusers' Stable Diffusion safety checker that blanks chosen images.

    It follows the call protocol of ``StableDiffusionSafetyChecker``: the pipeline calls it with
    ``images`` (the decoded ``(B, 3, H, W)`` batch in ``[-1, 1]``) and ``clip_input`` (the
    feature extractor's pixels), and it returns ``(images, has_nsfw_concept)`` with the flagged
    images set to zero, which the pipeline turns into black images. Which images it flags is
    decided by ``blank``, called with each image as the pipeline would return it, so tests can
    exercise the blank-image path of a generator without the real checker's CLIP-L weights.

    Args:
        blank: ``blank(image) -> bool`` for an RGB PIL image; ``None`` flags every image.
        return_flags: return the per-image flags, as diffusers' checker does. ``False`` returns
            ``None`` in their place: the pipeline then denormalises the zeroed images to flat
            grey, as a checker that blanks silently would leave them.

    Attributes:
        seen_: number of images checked so far.
        blanked_: number of images blanked so far.

    Examples:
        >>> from failmodes.testing.tiny import TinySafetyChecker, tiny_stable_diffusion
        >>> pipe = tiny_stable_diffusion(safety_checker=TinySafetyChecker())
        >>> out = pipe("a photo of a fox", num_inference_steps=2)
        >>> out.nsfw_content_detected, out.images[0].getextrema()
        ([True], ((0, 0), (0, 0), (0, 0)))
    """

    def __init__(
        self, blank: Callable[[Image.Image], bool] | None = None, *, return_flags: bool = True
    ):
        super().__init__()
        self.blank = blank
        self.return_flags = return_flags
        self.seen_ = 0
        self.blanked_ = 0
        # gives the module a device and a dtype, which the pipeline reads off its components
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def device(self) -> torch.device:
        """The device the checker is on (the pipeline reads it off its components)."""
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        """The checker's dtype (the pipeline casts ``clip_input`` to it)."""
        return self._anchor.dtype

    def forward(self, clip_input: torch.Tensor, images: Any) -> tuple[Any, list[bool] | None]:
        """Check a batch as the pipeline calls its safety checker; flagged images are zeroed.

        Args:
            clip_input: the feature extractor's pixels (unused: ``blank`` looks at the images).
            images: the decoded batch, a ``(B, 3, H, W)`` tensor in ``[-1, 1]`` or a
                ``(B, H, W, 3)`` array in ``[0, 1]``; flagged images are set to zero in place.

        Returns:
            ``(images, flags)``: the batch, and one boolean per image (``None`` when
            ``return_flags`` is ``False``).
        """
        flags = []
        for k in range(len(images)):
            if self.blank is None:
                flags.append(True)
                continue
            image = images[k : k + 1]
            if torch.is_tensor(image):  # as the pipeline's postprocess does it
                image = (image / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy()
            pixels = (np.asarray(image[0]) * 255).round().astype("uint8")
            flags.append(bool(self.blank(Image.fromarray(pixels))))
        for k, flag in enumerate(flags):
            if flag:
                images[k] = torch.zeros_like(images[k]) if torch.is_tensor(images) else 0.0
        self.seen_ += len(flags)
        self.blanked_ += sum(flags)
        return images, (flags if self.return_flags else None)


def tiny_stable_diffusion(seed: int = 0, safety_checker: torch.nn.Module | None = None) -> Any:
    """A real ``diffusers.StableDiffusionPipeline`` of tiny components with random weights.

    The components have Stable Diffusion 1.x's kinds and wiring, shrunk: a two-level
    ``UNet2DConditionModel`` (4 and 8 channels, cross-attention width 32), a two-level
    ``AutoencoderKL`` (a 2x latent, so the default image is 64x64), a two-layer
    ``CLIPTextModel`` of width 32 over CLIP's full vocabulary with
    [`clip_tokenizer`][clip_tokenizer], and SD 1.5's own scheduler (``PNDMScheduler`` with its
    configuration). Two steps make a 64x64 image in well under a tenth of a second on one CPU
    thread; the images are noise-like and mean nothing.

    The same seed gives the same weights; the global torch RNG is untouched. Needs the
    ``diffusion`` extra, and open_clip (the ``clip`` extra) for the tokenizer's vocabulary.

    Args:
        seed: seed of the weights.
        safety_checker: a module with the safety checker's call protocol (see
            [`TinySafetyChecker`][TinySafetyChecker]), or ``None`` for none. With one, a small
            ``CLIPImageProcessor`` is added as the pipeline's feature extractor, which the
            pipeline needs to call a checker.

    Returns:
        The pipeline, on the CPU in float32, its modules in eval mode.

    Examples:
        >>> import torch
        >>> from failmodes.testing.tiny import tiny_stable_diffusion
        >>> pipe = tiny_stable_diffusion(seed=0)
        >>> out = pipe("a photo of a fox", num_inference_steps=2,
        ...            generator=torch.Generator().manual_seed(0))
        >>> out.images[0].size
        (64, 64)
    """
    diffusers = require("diffusers", feature="tiny_stable_diffusion")
    return diffusers.StableDiffusionPipeline(**_tiny_parts(seed, safety_checker))


def tiny_img2img(seed: int = 0) -> Any:
    """A real ``diffusers.StableDiffusionImg2ImgPipeline`` of tiny components, random weights.

    The components of [`tiny_stable_diffusion`][tiny_stable_diffusion]; the pipeline takes an
    ``image`` and a ``strength``, and its output has the image's size.

    Args:
        seed: seed of the weights.

    Returns:
        The pipeline, on the CPU in float32.

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> from failmodes.testing.tiny import tiny_img2img
        >>> out = tiny_img2img()("a photo of a fox", image=Image.new("RGB", (32, 32), "red"),
        ...                      strength=0.5, num_inference_steps=4,
        ...                      generator=torch.Generator().manual_seed(0))
        >>> out.images[0].size
        (32, 32)
    """
    diffusers = require("diffusers", feature="tiny_img2img")
    return diffusers.StableDiffusionImg2ImgPipeline(**_tiny_parts(seed, None))


def tiny_instruct_pix2pix(seed: int = 0) -> Any:
    """A real ``diffusers.StableDiffusionInstructPix2PixPipeline`` of tiny components.

    The components of [`tiny_stable_diffusion`][tiny_stable_diffusion], with a UNet that reads
    the source image's latents beside the noisy ones (8 input channels), as InstructPix2Pix's
    does; random weights, so its edits mean nothing.

    Args:
        seed: seed of the weights.

    Returns:
        The pipeline, on the CPU in float32.

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> from failmodes.testing.tiny import tiny_instruct_pix2pix
        >>> pipe = tiny_instruct_pix2pix()
        >>> out = pipe("put the fox in snow", image=Image.new("RGB", (32, 32), "red"),
        ...            num_inference_steps=2, generator=torch.Generator().manual_seed(0))
        >>> out.images[0].size
        (32, 32)
    """
    diffusers = require("diffusers", feature="tiny_instruct_pix2pix")
    parts = _tiny_parts(seed, None, in_channels=8)
    parts.pop("image_encoder", None)
    return diffusers.StableDiffusionInstructPix2PixPipeline(**parts)


def _tiny_parts(
    seed: int, safety_checker: torch.nn.Module | None, in_channels: int = 4
) -> dict[str, Any]:
    """The tiny pipelines' components: UNet, VAE, text encoder, tokenizer and scheduler."""
    diffusers = require("diffusers", feature="tiny diffusers pipelines")
    transformers = require("transformers", feature="tiny diffusers pipelines")
    width = 32  # the text encoder's width, which the UNet cross-attends to
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = diffusers.UNet2DConditionModel(
            sample_size=32,
            in_channels=in_channels,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(4, 8),
            layers_per_block=1,
            attention_head_dim=2,
            cross_attention_dim=width,
            norm_num_groups=2,
        )
        vae = diffusers.AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(4, 8),
            latent_channels=4,
            norm_num_groups=2,
            sample_size=64,
        )
        text_encoder = transformers.CLIPTextModel(
            transformers.CLIPTextConfig(
                vocab_size=49408,
                hidden_size=width,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=49406,
                eos_token_id=49407,
                pad_token_id=49407,
            )
        )
    scheduler = diffusers.PNDMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        set_alpha_to_one=False,
        skip_prk_steps=True,
        steps_offset=1,
    )
    feature_extractor = None
    if safety_checker is not None:
        feature_extractor = transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )
    return {
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": clip_tokenizer(),
        "unet": unet.eval(),
        "scheduler": scheduler,
        "safety_checker": safety_checker,
        "feature_extractor": feature_extractor,
        "requires_safety_checker": False,
    }
