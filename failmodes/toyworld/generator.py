"""ToyWorld's image generator: the world's renderer behind the ImageGenerator interface.

It plays the part of a text-to-image model in the embedded world. A request names a class (a
shape) and a value of the world's attribute (a background phrase such as ``"on grass"`` in
background worlds, a colour name such as ``"red"`` in colour worlds); the other attribute is drawn
uniformly. A bare class (``value=None``, "a photo of a circle") is drawn as the training data
shows it, with the class's common value with probability ``world.strength``, as a text-to-image
model shows a class in its usual context. Images are rendered in the ``"generated"`` style by
default, which differs from the world's own images as diffusion images differ from photos.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from failmodes.errors import SettingError
from failmodes.interfaces import GenerationRequest, ImageGenerator
from failmodes.progress import progress_bar, resolve_progress
from failmodes.toyworld.world import BACKGROUNDS, SHAPES, ToyWorld

__all__ = ["STYLES", "ToyWorldGenerator", "ToyWorldPainter", "resolve_request"]

STYLES = ("generated", "world")
"""The styles ToyWorld's generator and editor paint in ([`render`][failmodes.toyworld.render])."""


class ToyWorldPainter:
    """What ToyWorld's generator and editor share: their world, style and progress setting.

    Args:
        world: the [`ToyWorld`][failmodes.toyworld.ToyWorld] whose vocabulary, attribute and
            common values (for bare-class requests) are used.
        style: one of [`STYLES`][STYLES]: ``"generated"`` (default: the renderer's own style,
            with a gap from the world's images) or ``"world"`` (the world's own style, for
            ablations).
        progress: show a progress bar over requests; ``None`` shows none.
    """

    def __init__(self, world: ToyWorld, *, style: str = "generated", progress: bool | None = None):
        self.world = world
        self.style = style
        self.progress = progress

    @property
    def attribute(self) -> str:
        """The world's attribute: the only one whose values this component paints.

        The Debugger reads it when it is made, so the settings are checked then
        ([`check_params`][check_params]).
        """
        self.check_params()
        return self.world.attribute

    def check_params(self) -> None:
        """Check ``world`` and ``style``, as generating or editing does first.

        Raises:
            SettingError: a ``ValueError`` naming the first setting that cannot be used.

        Examples:
            >>> from failmodes.toyworld import ToyWorld, ToyWorldEditor, ToyWorldGenerator
            >>> ToyWorldGenerator(ToyWorld(), style="photo").check_params()
            Traceback (most recent call last):
                ...
            failmodes.errors.SettingError: style must be one of ('generated', 'world'), got 'photo'
            >>> ToyWorldEditor("a world").check_params()
            Traceback (most recent call last):
                ...
            failmodes.errors.SettingError: world must be a ToyWorld, got str
        """
        if not isinstance(self.world, ToyWorld):
            raise SettingError("world", f"must be a ToyWorld, got {type(self.world).__name__}")
        if self.style not in STYLES:
            raise SettingError("style", f"must be one of {STYLES}, got {self.style!r}")


def resolve_request(world: ToyWorld, request: GenerationRequest) -> tuple[int, str | None]:
    """A request's class index and value in ``world``'s vocabulary, checked.

    Args:
        world: the world.
        request: its class must be a ToyWorld shape (``class_index`` its index), its attribute
            the world's, and its value one of the world's values (a bare background name such
            as ``"grass"`` is read as its phrase) or ``None``.

    Returns:
        ``(label, value)``.

    Raises:
        ValueError: naming what is not in the world's vocabulary.
    """
    name = request.class_name.strip().lower() if isinstance(request.class_name, str) else ""
    if name not in SHAPES:
        raise ValueError(
            f"unknown class {request.class_name!r}; ToyWorld classes are {', '.join(SHAPES)}"
        )
    index = SHAPES.index(name)
    if request.class_index != index:
        raise ValueError(
            f"class_index {request.class_index} does not match class {name!r} "
            f"(index {index} in ToyWorld)"
        )
    if request.value is None:
        return index, None
    attribute = world.attribute
    if request.attribute != attribute:
        raise ValueError(
            f"request is for attribute {request.attribute!r} but this world renders only "
            f"{attribute!r} values: use Debugger(attribute={attribute!r})"
        )
    text = request.value.strip().lower()
    if text in world.values:
        return index, text
    if attribute == "background" and text in BACKGROUNDS:  # a bare name: "grass"
        return index, BACKGROUNDS[text]
    raise ValueError(
        f"unknown {attribute} value {request.value!r}; allowed: {', '.join(world.values)}"
    )


class ToyWorldGenerator(ToyWorldPainter, ImageGenerator):
    """Render requested (class, value) images of a ToyWorld.

    Image ``i`` of a request is rendered from ``request.image_seed(i)`` alone, so any image can
    be regenerated on its own, bit-identical, in any order and on any worker.

    Args:
        world: the [`ToyWorld`][failmodes.toyworld.ToyWorld] whose vocabulary, attribute and common
            values (for bare-class requests) are used.
        style: ``"generated"`` (default: the renderer's own style, with a gap from the world's
            images) or ``"world"`` (the world's own style, for ablations).
        progress: show a progress bar over requests; ``None`` shows none.

    Examples:
        >>> from failmodes import GenerationRequest
        >>> from failmodes.toyworld import ToyWorld, ToyWorldGenerator
        >>> gen = ToyWorldGenerator(ToyWorld(seed=0))
        >>> req = GenerationRequest(0, "circle", "on grass", "a photo of a circle on grass", 2, 0)
        >>> [im.size for im in gen.generate([req])[0]]
        [(32, 32), (32, 32)]
    """

    def render(self, request: GenerationRequest, i: int) -> Image.Image:
        """Image ``i`` of ``request``, rendered from ``request.image_seed(i)`` alone.

        Args:
            request: the request; its class must be a ToyWorld shape (``class_index`` its
                index) and its value one of the world's values (a bare background name such as
                ``"grass"`` is read as its phrase), or ``None``.
            i: the image's index in the request.

        Returns:
            An RGB PIL image of the world's size.

        Raises:
            ValueError: the class or value is not in the world's vocabulary.
            IndexError: ``i`` is not in ``range(request.count)``.
        """
        label, value = resolve_request(self.world, request)
        data = self.world.sample(
            [label], biased=True, seed=request.image_seed(i), style=self.style, values=[value]
        )
        return data[0][0]

    def generate(
        self, requests: Sequence[GenerationRequest], *, progress: bool | None = None
    ) -> list[list[Image.Image]]:
        """Render ``request.count`` images per request.

        Args:
            requests: the jobs to run; every class and value is checked before any rendering.
            progress: show a progress bar; ``None`` keeps the generator's own.

        Returns:
            One list per request, in request order, of ``request.count`` RGB PIL images.

        Raises:
            SettingError: if ``world`` or ``style`` cannot be used.
            ValueError: a request names an unknown class or value (the message says what is
                allowed).
        """
        self.check_params()
        requests = list(requests)
        for request in requests:
            resolve_request(self.world, request)
        bar = progress_bar(
            requests,
            progress=resolve_progress(progress, self.progress),
            desc="rendering",
            unit="request",
        )
        return [[self.render(r, i) for i in range(r.count)] for r in bar]
