"""ToyWorld's editor: real ToyWorld images edited into a failure mode, as ALIA edits photos.

It plays the part of a diffusion editor (image-to-image, InstructPix2Pix) in the embedded
world, as [`ToyWorldGenerator`][failmodes.toyworld.generator.ToyWorldGenerator] plays a
text-to-image model. An edit keeps what the source shows and changes only the attribute: in a
background world, the source's object pixels are kept as they are and a new background of the
requested value is painted behind it (as inpainting does); in a colour world, the object is
repainted in the requested colour and the source's background kept. What it paints, it paints
in the renderer's ``"generated"`` style, so that the gain of an edit over a rendered image is
what the edit keeps, not a milder style.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from failmodes.interfaces import EditingGenerator, GenerationRequest
from failmodes.progress import progress_bar, resolve_progress
from failmodes.toyworld.generator import ToyWorldPainter, resolve_request
from failmodes.toyworld.world import (
    BACKGROUNDS,
    SHAPES,
    background_pixels,
    finish,
    object_mask,
    object_pixels,
)

__all__ = ["ToyWorldEditor"]

_BACKGROUND_OF = {phrase: name for name, phrase in BACKGROUNDS.items()}


class ToyWorldEditor(ToyWorldPainter, EditingGenerator):
    """Edit real ToyWorld images (each image knows its scene) into a requested value.

    Image ``i`` of a request edits ``images[i]`` with randomness from
    ``request.image_seed(i)`` alone, so an edit can be remade on its own, bit-identical. A bare
    class (``value=None``) draws its value as the training split does, as a text-to-image
    model shows a class in its usual context.

    Args:
        world: the [`ToyWorld`][failmodes.toyworld.ToyWorld] whose images are edited.
        style: the style of what the edit paints: ``"generated"`` (default, the renderer's) or
            ``"world"`` (an ablation).
        progress: show a progress bar over requests; ``None`` shows none.

    Examples:
        >>> import numpy as np
        >>> from failmodes import GenerationRequest
        >>> from failmodes.toyworld import ToyWorld, ToyWorldEditor
        >>> world = ToyWorld(seed=0)
        >>> train = world.train(2)
        >>> request = GenerationRequest(0, "circle", "on snow", "a photo of a circle on snow",
        ...                             count=1, seed=0, sources=(0,))
        >>> source = train[0][0]
        >>> [edited] = ToyWorldEditor(world).edit([request], [[source]])[0]
        >>> before, after = source.info["toyworld"], edited.info["toyworld"]
        >>> before["background"], after["background"], after["shape"] == before["shape"]
        ('road', 'snow', True)
    """

    def edit(
        self,
        requests: Sequence[GenerationRequest],
        images: Sequence[Sequence[Image.Image]],
        *,
        progress: bool | None = None,
    ) -> list[list[Image.Image]]:
        """Edit each request's source images into its value.

        Args:
            requests: the jobs; every class and value is checked before any edit.
            images: per request, its source images: ToyWorld images as a split gives them
                (their ``info["toyworld"]`` holds the scene).
            progress: show a progress bar; ``None`` keeps the editor's own.

        Returns:
            One list per request, in request order, of ``request.count`` RGB PIL images.

        Raises:
            SettingError: if ``world`` or ``style`` cannot be used.
            ValueError: a request names an unknown class or value, or a source is not a
                ToyWorld image that knows its scene, or of another class.
        """
        self.check_params()
        requests = list(requests)
        if len(images) != len(requests):
            raise ValueError(f"images has {len(images)} lists for {len(requests)} requests")
        for request, sources in zip(requests, images, strict=True):
            resolve_request(self.world, request)
            if len(sources) != request.count:
                raise ValueError(
                    f"request {request.prompt!r} asks for {request.count} images but has "
                    f"{len(sources)} sources"
                )
        bar = progress_bar(
            list(zip(requests, images, strict=True)),
            progress=resolve_progress(progress, self.progress),
            desc="editing",
            unit="request",
        )
        return [
            [self.edit_one(request, source, i) for i, source in enumerate(sources)]
            for request, sources in bar
        ]

    def edit_one(self, request: GenerationRequest, source: Image.Image, i: int) -> Image.Image:
        """Image ``i`` of ``request``: ``source`` edited into the request's value.

        Args:
            request: the request.
            source: the ToyWorld image it edits.
            i: the image's index in the request (its seed).

        Returns:
            The edited RGB image; its ``info["toyworld"]`` holds the edited scene.
        """
        label, value = resolve_request(self.world, request)
        scene = _scene(source, label)
        rng = np.random.default_rng(request.image_seed(i))
        if value is None:
            value = self.world.train_value(label, rng)
        size = source.size[0]
        mask = object_mask(scene["shape"], size, scene["geometry"])[..., None]
        pixels = np.asarray(source.convert("RGB"), dtype=np.float64)
        edited = dict(scene)
        if self.world.attribute == "background":
            name = _BACKGROUND_OF[value]
            painted = background_pixels(name, rng, size, style=self.style)
            out = pixels * mask + _finished(painted, self.style) * (1 - mask)
            edited["background"] = name
        else:
            painted = object_pixels(value, rng, size, style=self.style)
            out = _finished(painted, self.style) * mask + pixels * (1 - mask)
            edited["color"] = value
        image = Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), mode="RGB")
        image.info["toyworld"] = edited
        return image


def _finished(pixels: np.ndarray, style: str) -> np.ndarray:
    """Painted pixels in ``style``, as floats."""
    return np.asarray(finish(pixels, style=style), dtype=np.float64)


def _scene(source: Image.Image, label: int) -> dict[str, Any]:
    """The scene a ToyWorld source image carries, checked against the request's class."""
    scene = getattr(source, "info", {}).get("toyworld")
    if not isinstance(scene, dict) or scene.get("geometry") is None:
        raise ValueError(
            "ToyWorldEditor edits ToyWorld images that know their scene (a split of "
            "ToyWorld gives them, with info['toyworld']); this source does not"
        )
    if scene["shape"] != SHAPES[label]:
        raise ValueError(
            f"the source shows a {scene['shape']} but the request is for a {SHAPES[label]}"
        )
    return scene
