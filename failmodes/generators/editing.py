"""Editing generators on diffusers: real images edited into a failure mode (ALIA, DA-Fusion).

An edit keeps the object's real pixels and statistics and changes only the attribute, so the
images look like those the model sees, where a text-to-image model's differ in style.
[`StableDiffusionImg2ImgGenerator`][StableDiffusionImg2ImgGenerator] noises the source part of
the way (``strength``) and denoises it towards the request's prompt;
[`InstructPix2PixGenerator`][InstructPix2PixGenerator] follows an instruction ("put the fox in a
desert"). Both keep the conventions of
[`StableDiffusionGenerator`][failmodes.generators.diffusion.StableDiffusionGenerator]: nothing
is loaded until the first edit, images of several requests are batched, each image has its own
seed, blank images are made again with new seeds.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from PIL import Image

from failmodes.attributes import get_attribute
from failmodes.generators.diffusion import StableDiffusionGenerator
from failmodes.interfaces import EditingGenerator, GenerationRequest

__all__ = ["InstructPix2PixGenerator", "StableDiffusionImg2ImgGenerator"]


class _DiffusionEditor(StableDiffusionGenerator, EditingGenerator):
    """What the two editors share: ``edit`` runs the pipeline on each image's source."""

    def edit(
        self,
        requests: Sequence[GenerationRequest],
        images: Sequence[Sequence[Image.Image]],
        *,
        progress: bool | None = None,
    ) -> list[list[Image.Image]]:
        """Edit each request's source images into its value.

        Args:
            requests: the jobs; each image's seed comes from ``request.image_seed(i)``.
            images: per request, its source images (``images[j][i]`` for image ``i``).
            progress: show a progress bar over images; ``None`` keeps the generator's own.

        Returns:
            One list per request, in request order, of ``request.count`` RGB PIL images, none
            of them blank.

        Raises:
            ValueError, TypeError: a setting, a request or its sources are invalid.
            BlankImageError: an image was still blank after ``max_blank_retries`` new seeds.
            ImportError: diffusers is needed and missing (the message names the extra).
        """
        requests = list(requests)
        if len(images) != len(requests):
            raise ValueError(f"images has {len(images)} lists for {len(requests)} requests")
        sources = []
        for request, given in zip(requests, images, strict=True):
            if len(given) != request.count:
                raise ValueError(
                    f"request {request.prompt!r} asks for {request.count} images but has "
                    f"{len(given)} source images"
                )
            sources.append([_rgb(image) for image in given])
        return self._images(requests, sources, progress)

    def generate(
        self, requests: Sequence[GenerationRequest], *, progress: bool | None = None
    ) -> list[list[Image.Image]]:
        """Refused: an editor needs its source images (see ``edit``).

        Args:
            requests: the jobs.
            progress: unused.

        Returns:
            Nothing; it always raises.

        Raises:
            TypeError: always.
        """
        return EditingGenerator.generate(self, requests, progress=progress)


class StableDiffusionImg2ImgGenerator(_DiffusionEditor):
    """Edit real images towards ``"a photo of a fox in a desert"`` with image-to-image diffusion.

    diffusers' ``StableDiffusionImg2ImgPipeline`` noises each source image ``strength`` of the
    way and denoises it towards the request's prompt: a low ``strength`` keeps more of the
    source (its object, its statistics), a high one follows the prompt more (DA-Fusion uses
    about 0.5). The output has the source's size (rounded to the VAE's factor).

    Args:
        model: a model on the Hugging Face hub or a local folder in diffusers' layout (loaded
            as an image-to-image pipeline), or a pipeline object taking ``image`` and
            ``strength``.
        strength: how far each source is noised, in ``(0, 1]``.
        **settings: the settings of
            [`StableDiffusionGenerator`][failmodes.generators.diffusion.StableDiffusionGenerator]
            (``steps``, ``guidance_scale``, ``scheduler``, ``batch_size``, ``device``,
            ``dtype``, ...); ``height`` and ``width`` are the sources'.

    Examples:
        On the tiny test pipeline (random weights, offline):

        >>> from PIL import Image
        >>> from failmodes import GenerationRequest
        >>> from failmodes.generators import StableDiffusionImg2ImgGenerator
        >>> from failmodes.testing.tiny import tiny_img2img
        >>> editor = StableDiffusionImg2ImgGenerator(tiny_img2img(), steps=4, device="cpu")
        >>> request = GenerationRequest(0, "fox", "in a desert", "a photo of a fox in a desert",
        ...                             count=1, seed=0, sources=(0,))
        >>> source = Image.effect_noise((32, 32), 40).convert("RGB")
        >>> editor.edit([request], [[source]], progress=False)[0][0].size
        (32, 32)
    """

    _pipeline_class = "StableDiffusionImg2ImgPipeline"
    _more_params = ("strength",)

    def __init__(
        self,
        model: str | Any = "stable-diffusion-v1-5/stable-diffusion-v1-5",
        *,
        strength: float = 0.5,
        **settings: Any,
    ):
        super().__init__(model, **settings)
        self.strength = strength

    def _check_numbers(self) -> None:
        super()._check_numbers()
        strength = self.strength
        if not isinstance(strength, numbers.Real) or isinstance(strength, bool):
            raise ValueError(f"strength must be a number in (0, 1], got {strength!r}")
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be a number in (0, 1], got {strength!r}")

    def _call_options(self, images: list[Image.Image] | None) -> dict[str, Any]:
        return {"image": images, "strength": self.strength}


class InstructPix2PixGenerator(_DiffusionEditor):
    """Edit real images by instruction: "put the fox in a desert" (InstructPix2Pix).

    diffusers' ``StableDiffusionInstructPix2PixPipeline`` follows an instruction written from
    the request: ``instruction`` with ``{class_name}`` and ``{value}`` filled in, or
    ``bare_instruction`` for a bare class (the random baseline's requests).
    ``image_guidance_scale`` is how closely the edit keeps to the source.

    Args:
        model: a model on the Hugging Face hub or a local folder (``"timbrooks/instruct-pix2pix"``),
            or a pipeline object taking ``image`` and ``image_guidance_scale``.
        instruction: the instruction for a request with a value. For an attribute that reads
            before the class (colour), the default reads "make the fox red".
        bare_instruction: the instruction for a bare class.
        image_guidance_scale: how closely the edit keeps to the source (>= 1).
        **settings: the settings of
            [`StableDiffusionGenerator`][failmodes.generators.diffusion.StableDiffusionGenerator];
            ``height`` and ``width`` are the sources'.

    Examples:
        On the tiny test pipeline (random weights, offline):

        >>> from PIL import Image
        >>> from failmodes import GenerationRequest
        >>> from failmodes.generators import InstructPix2PixGenerator
        >>> from failmodes.testing.tiny import tiny_instruct_pix2pix
        >>> editor = InstructPix2PixGenerator(tiny_instruct_pix2pix(), steps=2, device="cpu")
        >>> request = GenerationRequest(0, "fox", "in a desert", "a photo of a fox in a desert",
        ...                             count=1, seed=0, sources=(0,))
        >>> editor.instruction_for(request)
        'put the fox in a desert'
        >>> source = Image.effect_noise((32, 32), 40).convert("RGB")
        >>> editor.edit([request], [[source]], progress=False)[0][0].size
        (32, 32)
    """

    _pipeline_class = "StableDiffusionInstructPix2PixPipeline"
    _more_params = ("instruction", "bare_instruction", "image_guidance_scale")

    def __init__(
        self,
        model: str | Any = "timbrooks/instruct-pix2pix",
        *,
        instruction: str | None = None,
        bare_instruction: str = "make it a photo of the {class_name}",
        image_guidance_scale: float = 1.5,
        **settings: Any,
    ):
        super().__init__(model, **settings)
        self.instruction = instruction
        self.bare_instruction = bare_instruction
        self.image_guidance_scale = image_guidance_scale

    def instruction_for(self, request: GenerationRequest) -> str:
        """The instruction the pipeline follows for ``request``.

        Args:
            request: the request.

        Returns:
            ``instruction`` (by default "put the {class_name} {value}", or "make the
            {class_name} {value}" for an attribute that reads before the class) or
            ``bare_instruction``, filled in.
        """
        if request.value is None:
            return self.bare_instruction.format(class_name=request.class_name)
        template = self.instruction
        if template is None:
            before = get_attribute(request.attribute).value_before_class
            template = "make the {class_name} {value}" if before else "put the {class_name} {value}"
        return template.format(class_name=request.class_name, value=request.value)

    def _check_numbers(self) -> None:
        super()._check_numbers()
        scale = self.image_guidance_scale
        if not isinstance(scale, numbers.Real) or isinstance(scale, bool) or not scale >= 1:
            raise ValueError(f"image_guidance_scale must be a number >= 1, got {scale!r}")
        for name in ("instruction", "bare_instruction"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string, got {type(value).__name__}")

    def _prompt(self, request: GenerationRequest) -> str:
        return self.instruction_for(request)

    def _call_options(self, images: list[Image.Image] | None) -> dict[str, Any]:
        return {"image": images, "image_guidance_scale": self.image_guidance_scale}


def _rgb(image: Any) -> Image.Image:
    """A source image as RGB PIL (a tensor or array is converted)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    from failmodes.images import to_rgb

    return to_rgb(image)
