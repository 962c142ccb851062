"""ToyWorld: a small procedural world of shapes on backgrounds, in colours.

Every image shows one object (its class is its shape) in a named colour on a named background.
The vocabulary is fixed, so weights trained once serve every world; a world's ``seed`` draws its
images and which value of the spurious attribute is common for which class.

In ``attribute="background"`` worlds each class mostly appears on its own background in the
training split (the spurious cue) and colours are uniform; in ``attribute="color"`` worlds each
class mostly has its own colour and backgrounds are uniform. Debug and test splits are balanced.

Worlds with ``cues=N`` hold the classic spurious correlation instead: N values each predict one
class (in the training split a cue value appears only with its class), while every other class
appears uniformly on the values that are no class's cue. ``debug_strength`` lets the debug and
test splits lean towards the training split's distribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from failmodes._checks import check_number, check_seed
from failmodes.data import ImageDataset

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "SHAPES",
    "ToyDataset",
    "ToyWorld",
    "background_pixels",
    "finish",
    "object_mask",
    "object_pixels",
    "render",
    "render_batch",
    "render_scene",
    "render_scenes",
]

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "heart",
    "arrow",
    "crescent",
    "bar",
)
"""The shapes (ToyWorld's classes), in label order."""

# name -> phrase that reads after the class name ("a circle on grass")
BACKGROUNDS: dict[str, str] = {
    "grass": "on grass",
    "sand": "on sand",
    "water": "in water",
    "snow": "on snow",
    "brick": "by a brick wall",
    "night": "under a night sky",
    "wood": "on wood",
    "lava": "on lava",
    "clouds": "among clouds",
    "rock": "on rock",
    "forest": "in a forest",
    "ice": "on ice",
    "tiles": "on tiles",
    "carpet": "on a carpet",
    "road": "on a road",
    "sunset": "at sunset",
    "moss": "on moss",
    "mud": "in mud",
    "marble": "on marble",
    "fog": "in fog",
    "leaves": "on autumn leaves",
    "meadow": "in a flower meadow",
    "deep sea": "in the deep sea",
    "wallpaper": "on striped wallpaper",
}
"""The backgrounds: name -> the phrase that reads after a class name ("on grass")."""

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (245, 225, 30),
    "lime": (160, 235, 40),
    "green": (25, 130, 45),
    "cyan": (40, 220, 230),
    "blue": (30, 60, 225),
    "navy": (15, 20, 100),
    "purple": (125, 35, 175),
    "magenta": (230, 30, 210),
    "pink": (250, 150, 195),
    "brown": (115, 65, 25),
    "black": (12, 12, 12),
    "white": (248, 248, 248),
    "gray": (128, 128, 128),
    "beige": (225, 205, 160),
}
"""The named colours and their RGB values."""

VALUES = {"background": tuple(BACKGROUNDS.values()), "color": tuple(COLORS)}


# ---------------------------------------------------------------- backgrounds
def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a random ``cells x cells`` grid, bilinearly upsampled."""
    grid = rng.random((cells + 1, cells + 1))
    t = np.linspace(0, cells, size, endpoint=False)
    i = t.astype(int)
    f = t - i
    f = f * f * (3 - 2 * f)
    a = grid[i][:, i] * (1 - f)[None, :] + grid[i][:, i + 1] * f[None, :]
    b = grid[i + 1][:, i] * (1 - f)[None, :] + grid[i + 1][:, i + 1] * f[None, :]
    return a * (1 - f)[:, None] + b * f[:, None]


def _mix(a, b, t: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]


@dataclass(frozen=True)
class _Canvas:
    """What every background is painted from: coordinates, a phase and three noises."""

    yy: np.ndarray
    xx: np.ndarray
    phase: float
    n1: np.ndarray  # coarse smooth noise
    n2: np.ndarray  # finer smooth noise
    fine: np.ndarray  # pixel noise (zero for smooth, generated-style images)
    rng: np.random.Generator
    size: int


def _grass(c: _Canvas) -> np.ndarray:
    strokes = np.sin(c.xx * 60 + c.n1 * 6 + c.phase) * 0.5 + 0.5
    return _mix((40, 110, 30), (110, 190, 60), 0.6 * strokes + 0.4 * c.fine * c.n2)


def _water(c: _Canvas) -> np.ndarray:
    waves = np.sin(c.yy * 40 + np.sin(c.xx * 9 + c.phase) * 2) * 0.5 + 0.5
    return _mix((20, 70, 160), (70, 140, 220), waves)


def _snow(c: _Canvas) -> np.ndarray:
    img = _mix((225, 230, 240), (250, 252, 255), c.n1)
    img -= (c.fine > 0.93)[..., None] * 40
    return img


def _brick(c: _Canvas) -> np.ndarray:
    row = (c.yy * 6).astype(int)
    off = (row % 2) * 0.5 / 3
    mortar = ((c.yy * 6) % 1 < 0.18) | (((c.xx + off) * 3) % 1 < 0.08)
    img = _mix((150, 50, 35), (185, 80, 50), c.n2)
    img[mortar] = (200, 195, 185)
    return img


def _night(c: _Canvas) -> np.ndarray:
    img = _mix((5, 8, 35), (20, 25, 70), c.yy)
    img[c.rng.random((c.size, c.size)) > 0.96] = (255, 255, 220)  # stars
    return img


def _wood(c: _Canvas) -> np.ndarray:
    grain = np.sin((c.yy + c.n1 * 0.3) * 50 + c.phase) * 0.5 + 0.5
    return _mix((110, 65, 30), (175, 115, 60), grain)


def _ice(c: _Canvas) -> np.ndarray:
    img = _mix((175, 225, 240), (215, 245, 250), c.n1)
    img[np.abs(np.sin(c.xx * 13 + c.yy * 7 + c.phase)) < 0.06] = (120, 170, 200)  # cracks
    return img


def _tiles(c: _Canvas) -> np.ndarray:
    check = ((c.xx * 4).astype(int) + (c.yy * 4).astype(int)) % 2
    return _mix((60, 60, 60), (230, 230, 230), check.astype(float))


def _carpet(c: _Canvas) -> np.ndarray:
    dots = (np.sin(c.xx * 50 + c.phase) * np.sin(c.yy * 50)) > 0.6
    img = _mix((90, 20, 90), (140, 50, 140), c.n2)
    img[dots] = (230, 200, 80)
    return img


def _road(c: _Canvas) -> np.ndarray:
    img = _mix((45, 45, 50), (70, 70, 75), c.fine * 0.7 + c.n2 * 0.3)
    lane = (np.abs(c.yy - 0.5) < 0.04) & ((c.xx * 4 + c.phase) % 1 < 0.55)
    img[lane] = (240, 210, 40)
    return img


def _marble(c: _Canvas) -> np.ndarray:
    vein = np.abs(np.sin((c.xx + c.yy) * 10 + c.n1 * 8)) < 0.12
    img = _mix((235, 235, 230), (250, 250, 248), c.n2)
    img[vein] = (150, 150, 160)
    return img


def _meadow(c: _Canvas) -> np.ndarray:
    img = _mix((70, 150, 50), (100, 180, 70), c.n2)
    img[c.rng.random((c.size, c.size)) > 0.93] = (245, 120, 200)  # flowers
    return img


_PAINTERS: dict[str, Callable[[_Canvas], np.ndarray]] = {
    "grass": _grass,
    "sand": lambda c: _mix((200, 170, 110), (235, 210, 150), 0.5 * c.n2 + 0.5 * c.fine),
    "water": _water,
    "snow": _snow,
    "brick": _brick,
    "night": _night,
    "wood": _wood,
    "lava": lambda c: _mix((60, 10, 5), (255, 120, 0), np.clip((c.n2 - 0.45) * 4, 0, 1)),
    "clouds": lambda c: _mix(
        (120, 170, 235), (250, 250, 255), np.clip((c.n1 + 0.5 * c.n2 - 0.6) * 2.5, 0, 1)
    ),
    "rock": lambda c: _mix((80, 80, 85), (150, 150, 150), 0.6 * c.n2 + 0.4 * c.fine),
    "forest": lambda c: _mix((10, 45, 15), (40, 100, 35), np.clip(c.n2 * 1.4 - 0.2, 0, 1)),
    "ice": _ice,
    "tiles": _tiles,
    "carpet": _carpet,
    "road": _road,
    "sunset": lambda c: _mix(
        (255, 150, 40), (90, 30, 110), np.clip(c.yy + 0.15 * c.n1 - 0.05, 0, 1)
    ),
    "moss": lambda c: _mix((120, 140, 30), (170, 190, 70), 0.5 * c.n2 + 0.5 * c.fine),
    "mud": lambda c: _mix((55, 35, 20), (95, 65, 35), c.n1),
    "marble": _marble,
    "fog": lambda c: _mix((185, 190, 195), (205, 208, 212), c.n1),
    "leaves": lambda c: _mix(
        (200, 60, 20), (240, 170, 30), np.clip(c.n2 * 1.3 - 0.15 + 0.3 * c.fine, 0, 1)
    ),
    "meadow": _meadow,
    "deep sea": lambda c: _mix((0, 40, 55), (0, 80, 95), c.n1),
    "wallpaper": lambda c: _mix(
        (230, 200, 120), (170, 40, 60), (np.sin(c.xx * 25 + c.phase) > 0).astype(float)
    ),
}


def _background(name: str, rng: np.random.Generator, size: int, smooth: bool) -> np.ndarray:
    """One ``(size, size, 3)`` float image in [0, 255] of a named background."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    noise = 0.0 if smooth else 1.0
    phase = rng.random() * 2 * math.pi
    n1 = _smooth_noise(rng, size, 4)
    n2 = _smooth_noise(rng, size, 8)
    fine = rng.random((size, size)) * noise
    img = _PAINTERS[name](_Canvas(yy, xx, phase, n1, n2, fine, rng, size))
    if not smooth:
        img = img + rng.normal(0, 6, img.shape)
    return img


# ---------------------------------------------------------------- shapes
def _polygon(shape: str) -> list[tuple[float, float]] | None:
    """Vertices in a unit box centred on 0 (radius about 1); None for round shapes."""
    if shape == "square":
        return [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    if shape == "triangle":
        return [(0, -1), (0.95, 0.75), (-0.95, 0.75)]
    if shape == "star":
        pts = []
        for i in range(10):
            r = 1.0 if i % 2 == 0 else 0.42
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((r * math.cos(a), r * math.sin(a)))
        return pts
    if shape == "cross":
        w = 0.32
        return [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
    if shape == "heart":
        pts = []
        for i in range(40):
            t = 2 * math.pi * i / 40
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((x / 17, -y / 17 + 0.1))
        return pts
    if shape == "arrow":
        return [
            (-1, -0.25),
            (0.2, -0.25),
            (0.2, -0.65),
            (1, 0),
            (0.2, 0.65),
            (0.2, 0.25),
            (-1, 0.25),
        ]
    if shape == "bar":
        return [(-1, -0.28), (1, -0.28), (1, 0.28), (-1, 0.28)]
    return None


_SUPER = 4  # supersampling factor of the shape masks


def _mask(shape: str, size: int, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """An anti-aliased ``(size, size)`` mask in [0, 1]."""
    big = size * _SUPER
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, r = cx * _SUPER, cy * _SUPER, radius * _SUPER
    poly = _polygon(shape)
    if poly is not None:
        ca, sa = math.cos(angle), math.sin(angle)
        pts = [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in poly]
        draw.polygon(pts, fill=255)
    elif shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        q = r * 0.55
        draw.ellipse([cx - q, cy - q, cx + q, cy + q], fill=0)
    elif shape == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ox, oy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
        q = r * 0.85
        draw.ellipse([cx + ox - q, cy + oy - q, cx + ox + q, cy + oy + q], fill=0)
    else:  # pragma: no cover - the vocabulary is fixed
        raise KeyError(shape)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


# ---------------------------------------------------------------- rendering
def render(
    shape: str,
    background: str,
    color: str,
    rng: np.random.Generator,
    *,
    size: int = 32,
    style: str = "world",
) -> Image.Image:
    """Render one image.

    Args:
        shape: one of [`SHAPES`][SHAPES].
        background: a key of [`BACKGROUNDS`][BACKGROUNDS].
        color: a key of [`COLORS`][COLORS].
        rng: the source of every random choice (position, scale, rotation, texture, jitter).
        size: image side in pixels.
        style: ``"world"`` for the world's own images, ``"generated"`` for the renderer's images,
            which differ in style as diffusion images differ from photos (smoother textures,
            tint, contrast, saturated colours, a soft outline, no sensor noise).

    Returns:
        A ``size x size`` RGB PIL image.

    Raises:
        ValueError: if ``style`` is neither ``"world"`` nor ``"generated"``.
        KeyError: if ``background`` or ``color`` is not in the vocabulary.

    Examples:
        >>> import numpy as np
        >>> from failmodes.toyworld import render
        >>> image = render("star", "sand", "red", np.random.default_rng(0))
        >>> image.mode, image.size
        ('RGB', (32, 32))
    """
    return render_scene(shape, background, color, rng, size=size, style=style)[0]


def render_scene(
    shape: str,
    background: str,
    color: str,
    rng: np.random.Generator,
    *,
    size: int = 32,
    style: str = "world",
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """[`render`][render], and where the object lies: ``(image, (cx, cy, radius, angle))``.

    Args:
        shape: one of [`SHAPES`][SHAPES].
        background: a key of [`BACKGROUNDS`][BACKGROUNDS].
        color: a key of [`COLORS`][COLORS].
        rng: the source of every random choice.
        size: image side in pixels.
        style: ``"world"`` or ``"generated"``.

    Returns:
        The image and the object's geometry (centre, radius in pixels, rotation in radians),
        from which [`object_mask`][object_mask] gives the object's pixels.
    """
    if style not in ("world", "generated"):
        raise ValueError(f"style must be 'world' or 'generated', got {style!r}")
    generated = style == "generated"
    bg = background_pixels(background, rng, size, style=style)
    radius = size * rng.uniform(0.25, 0.36)
    margin = radius * 0.9
    cx = rng.uniform(margin, size - margin)
    cy = rng.uniform(margin, size - margin)
    angle = math.radians(rng.uniform(-30, 30))
    mask = object_mask(shape, size, (cx, cy, radius, angle))
    obj = object_pixels(color, rng, size, style=style)
    img = bg * (1 - mask[..., None]) + obj * mask[..., None]
    if not generated:
        img = img + rng.normal(0, 4, img.shape)
    return finish(img, style=style), (cx, cy, radius, angle)


def background_pixels(
    name: str, rng: np.random.Generator, size: int, *, style: str = "world"
) -> np.ndarray:
    """A background as a ``(size, size, 3)`` float array in [0, 255], before the style's finish.

    Args:
        name: a key of [`BACKGROUNDS`][BACKGROUNDS].
        rng: the source of its texture.
        size: its side in pixels.
        style: ``"generated"`` paints smooth textures without fine noise.

    Returns:
        The background's pixels.
    """
    return _background(name, rng, size, smooth=style == "generated")


def object_pixels(
    color: str, rng: np.random.Generator, size: int, *, style: str = "world"
) -> np.ndarray:
    """An object's paint, ``(size, size, 3)`` floats: its colour with a jitter and a soft top light.

    Args:
        color: a key of [`COLORS`][COLORS].
        rng: the source of the colour's jitter (larger in the generated style).
        size: the image's side in pixels.
        style: ``"world"`` or ``"generated"``.

    Returns:
        The paint, to be composited through [`object_mask`][object_mask].
    """
    jitter = rng.normal(0, 14 if style == "generated" else 8, 3)
    fill = np.clip(np.asarray(COLORS[color], dtype=np.float64) + jitter, 0, 255)
    shade = 1.0 - 0.15 * (np.mgrid[0:size, 0:size][0] / size - 0.5)  # soft top light
    return fill[None, None, :] * shade[..., None]


def object_mask(shape: str, size: int, geometry: tuple[float, float, float, float]) -> np.ndarray:
    """The object's coverage of each pixel, ``(size, size)`` in [0, 1] (1: object only).

    Args:
        shape: one of [`SHAPES`][SHAPES].
        size: the image's side in pixels.
        geometry: ``(cx, cy, radius, angle)``, as [`render_scene`][render_scene] gives it.

    Returns:
        The mask.
    """
    cx, cy, radius, angle = geometry
    return _mask(shape, size, cx, cy, radius, angle)


def finish(img: np.ndarray, *, style: str = "world") -> Image.Image:
    """A composited ``(size, size, 3)`` float image as an RGB image, in its style.

    The world's style keeps it as it is; the generated style adds contrast and a warm tint,
    saturates the colours and softens the image, as diffusion images tend to look.

    Args:
        img: the pixels, floats in about [0, 255].
        style: ``"world"`` or ``"generated"``.

    Returns:
        The RGB image.
    """
    if style == "generated":
        tint = np.array([1.08, 1.0, 0.88])
        img = (img - 128.0) * 1.35 + 128.0
        img = img * tint[None, None, :]
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB")
    if style == "generated":
        # saturated and soft, as diffusion images tend to be; the blur is the part a backbone
        # trained on world images sees most (a linear probe on its features tells the styles
        # apart at about 0.97 with it, 0.88 with the earlier radius of 0.7)
        out = ImageEnhance.Color(out).enhance(1.3)
        out = out.filter(ImageFilter.GaussianBlur(1.0))
    return out


def render_batch(
    shapes: Sequence[str],
    backgrounds: Sequence[str],
    colors: Sequence[str],
    seed: int,
    *,
    size: int = 32,
    style: str = "world",
) -> np.ndarray:
    """Render many images into a ``(n, size, size, 3)`` uint8 array, one seed for all.

    Args:
        shapes: one shape of [`SHAPES`][SHAPES] per image.
        backgrounds: one key of [`BACKGROUNDS`][BACKGROUNDS] per image.
        colors: one key of [`COLORS`][COLORS] per image.
        seed: seed of the one random generator that renders the images in turn.
        size: image side in pixels.
        style: ``"world"`` or ``"generated"`` (see [`render`][render]).

    Returns:
        The images as a ``(n, size, size, 3)`` uint8 array.

    Examples:
        >>> from failmodes.toyworld.world import render_batch
        >>> render_batch(["circle", "ring"], ["grass", "snow"], ["red", "blue"], seed=0).shape
        (2, 32, 32, 3)
    """
    return render_scenes(shapes, backgrounds, colors, seed, size=size, style=style)[0]


def render_scenes(
    shapes: Sequence[str],
    backgrounds: Sequence[str],
    colors: Sequence[str],
    seed: int,
    *,
    size: int = 32,
    style: str = "world",
) -> tuple[np.ndarray, np.ndarray]:
    """[`render_batch`][render_batch], and each object's geometry, ``(n, 4)``.

    Args:
        shapes: one shape of [`SHAPES`][SHAPES] per image.
        backgrounds: one key of [`BACKGROUNDS`][BACKGROUNDS] per image.
        colors: one key of [`COLORS`][COLORS] per image.
        seed: seed of the one random generator that renders the images in turn.
        size: image side in pixels.
        style: ``"world"`` or ``"generated"``.

    Returns:
        ``(pixels, geometry)``: the images, and ``(cx, cy, radius, angle)`` per image.
    """
    rng = np.random.default_rng(seed)
    n = len(shapes)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    geometry = np.empty((n, 4), dtype=np.float64)
    for i in range(n):
        image, geometry[i] = render_scene(
            shapes[i], backgrounds[i], colors[i], rng, size=size, style=style
        )
        out[i] = np.asarray(image)
    return out, geometry


# ---------------------------------------------------------------- datasets
def _count(value: Any, name: str, *, minimum: int = 0) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming ``name`` (as ``seed``'s)."""
    return check_number(value, name, minimum=minimum, integer=True)


class ToyDataset(ImageDataset):
    """A ToyWorld split: ``(PIL image, label)`` pairs with per-sample metadata.

    Made by [`ToyWorld.sample`][failmodes.toyworld.world.ToyWorld.sample] and the splits
    ([`ToyWorld.train`][failmodes.toyworld.world.ToyWorld.train], ...). Images are decoded from
    ``pixels`` when indexed.

    Args:
        pixels: ``(n, size, size, 3)`` uint8 array of the images.
        labels: class index (shape) per image.
        groups: the spurious attribute's value per image (a background phrase or a colour).
        shapes: the shape's name per image.
        backgrounds: the background's name (a key of [`BACKGROUNDS`][BACKGROUNDS]) per image.
        colors: the colour's name per image.
        geometry: ``(cx, cy, radius, angle)`` of each image's object, ``(n, 4)``, or ``None``.

    Attributes:
        pixels: ``(n, size, size, 3)`` uint8 array of the images.
        labels: class index (shape) per image.
        groups: the spurious attribute's value per image (a background phrase or a colour).
        shapes: the shape's name per image.
        backgrounds: the background's name per image.
        colors: the colour's name per image.
        geometry: each image's object geometry, or ``None``. An image read from the dataset
            carries its scene in ``image.info["toyworld"]`` (shape, background, colour and
            geometry), which [`ToyWorldEditor`][failmodes.toyworld.editor.ToyWorldEditor] edits.

    Examples:
        >>> from failmodes.toyworld import ToyWorld
        >>> data = ToyWorld(seed=0).test(n=4)
        >>> image, label = data[1]
        >>> image.size, label, data.shapes[1], data.tensors().shape
        ((32, 32), 1, 'square', (4, 3, 32, 32))
    """

    def __init__(
        self,
        pixels: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        groups: Sequence[str],
        *,
        shapes: Sequence[str],
        backgrounds: Sequence[str],
        colors: Sequence[str],
        geometry: np.ndarray | None = None,
    ):
        self.pixels = pixels
        self.labels = [int(y) for y in labels]
        self.groups = list(groups)
        self.shapes = list(shapes)
        self.backgrounds = list(backgrounds)
        self.colors = list(colors)
        self.geometry = None if geometry is None else np.asarray(geometry, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.pixels[index], mode="RGB")
        image.info["toyworld"] = self.scene(index)
        return image, self.labels[index]

    def scene(self, index: int) -> dict[str, Any]:
        """What image ``index`` shows: shape, background, colour and the object's geometry.

        Args:
            index: the image's index.

        Returns:
            ``{"shape", "background", "color", "geometry"}`` (``geometry`` ``None`` when the
            split does not know it).
        """
        geometry = None if self.geometry is None else [float(g) for g in self.geometry[index]]
        return {
            "shape": self.shapes[index],
            "background": self.backgrounds[index],
            "color": self.colors[index],
            "geometry": geometry,
        }

    @property
    def images(self) -> list[Image.Image]:  # type: ignore[override]
        """Every image, decoded as an RGB PIL image."""
        return [Image.fromarray(p, mode="RGB") for p in self.pixels]

    def tensors(self) -> np.ndarray:
        """The images as a float32 ``(n, 3, size, size)`` array in [0, 1].

        Returns:
            A new array, channels first, as [`ToyBackbone`][failmodes.toyworld.ToyBackbone]
            takes it.
        """
        return self.pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0


@dataclass(frozen=True)
class ToyWorld:
    """One world: which attribute value is common for which class, and how strongly.

    Args:
        seed: draws the common values (or the cues) and every image of the world's splits.
        attribute: the spurious attribute, ``"background"`` or ``"color"``.
        strength: the share of training images that show their class's common value (rho); in
            a world with ``cues``, the share of a cue's class that shows its cue.
        size: image side in pixels.
        cues: ``None`` (every class has a common value, as above), or the number of values, drawn
            from ``seed``, that are each tied to one class: in the training split a cue value
            appears only with its class, which shows it with probability ``strength`` and
            otherwise a value that is no class's cue; every other class appears uniformly on the
            values that are no class's cue. Between 1 and the number of classes.
        debug_strength: the share of debug and test images whose value is drawn as the training
            split draws it (the rest uniformly over all values); 0 gives balanced splits.

    Raises:
        ValueError: if ``seed`` is not an integer in ``[0, 2**32 - 1]``, ``size`` not an
            integer >= 1, ``attribute`` not ``"background"`` or ``"color"``, ``strength`` or
            ``debug_strength`` is not in ``[0, 1]``, or ``cues`` is not ``None`` or an integer
            from 1 to the number of classes.

    Examples:
        >>> from failmodes.toyworld import ToyWorld
        >>> world = ToyWorld(seed=0)
        >>> world.class_names[:3], world.common_values[0]
        (['circle', 'square', 'triangle'], 'on a road')
        >>> train = world.train(per_class=5)  # biased: circles mostly on a road
        >>> len(train), train.groups[:5]
        (50, ['on a road', 'on a road', 'on a road', 'on a road', 'on a road'])
        >>> len(world.debug(n=20)), len(world.uncommon_values()["circle"])
        (20, 23)
    """

    seed: int = 0
    attribute: str = "background"
    strength: float = 0.95
    size: int = 32
    cues: int | None = None
    debug_strength: float = 0.0

    def __post_init__(self):
        # integral seeds and sizes (2.0, numpy integers) kept as ints: the cache keys use the repr
        object.__setattr__(self, "seed", check_seed(self.seed))
        object.__setattr__(self, "size", _count(self.size, "size", minimum=1))
        if self.attribute not in VALUES:
            raise ValueError(
                f"attribute must be one of {sorted(VALUES)} in ToyWorld, got {self.attribute!r}"
            )
        for name in ("strength", "debug_strength"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
            if not 0.0 <= value <= 1.0:  # NaN fails too
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.cues is not None and (
            isinstance(self.cues, bool)
            or not isinstance(self.cues, int)
            or not 1 <= self.cues <= len(SHAPES)
        ):
            raise ValueError(
                f"cues must be None or an integer from 1 to {len(SHAPES)}, got {self.cues!r}"
            )

    @property
    def class_names(self) -> list[str]:
        """The classes, by label index: the shapes of [`SHAPES`][SHAPES]."""
        return list(SHAPES)

    @property
    def values(self) -> list[str]:
        """Every value of the world's attribute, as phrases (background) or colour names."""
        return list(VALUES[self.attribute])

    @property
    def common_values(self) -> list[str | None]:
        """The common value of each class (index = label), drawn from the world seed.

        In a world with ``cues``, a class's cue, and ``None`` for a class without one.
        """
        if self.cues is not None:
            common: list[str | None] = [None] * len(SHAPES)
            for label, value in self.cue_values.items():
                common[label] = value
            return common
        rng = np.random.default_rng([self.seed, 7919])
        order = rng.permutation(len(self.values))[: len(SHAPES)]
        return [self.values[i] for i in order]

    @property
    def cue_values(self) -> dict[int, str]:
        """``{label: value}``: the classes that have a cue and their cues (empty without cues)."""
        if self.cues is None:
            return {}
        rng = np.random.default_rng([self.seed, 7919, self.cues])
        values = rng.permutation(len(self.values))[: self.cues]
        labels = rng.permutation(len(SHAPES))[: self.cues]
        return {int(y): self.values[int(v)] for y, v in sorted(zip(labels, values, strict=True))}

    def uncommon_values(self) -> dict[str, list[str]]:
        """Per class, every value except its common one: what an oracle proposer would say.

        Returns:
            ``{class_name: [value, ...]}``, in the order of [`values`][values].
        """
        common = self.common_values
        return {c: [v for v in self.values if v != common[i]] for i, c in enumerate(SHAPES)}

    def train_value(self, label: int, rng: np.random.Generator) -> str:
        """One value drawn as the training split draws it for class ``label``.

        Args:
            label: the class index.
            rng: the source of the draw.

        Returns:
            The class's common value with probability ``strength``, else another value.
        """
        return self._train_draw()(rng, label)

    def _train_draw(self) -> Callable[[np.random.Generator, int], str]:
        """``draw(rng, label)``: one value drawn as the training split draws it for a class."""
        common = self.common_values
        if self.cues is not None:
            cues = set(self.cue_values.values())
            free = [v for v in self.values if v not in cues]
            others = [free] * len(SHAPES)
        else:
            others = [[v for v in self.values if v != c] for c in common]

        def draw(rng: np.random.Generator, label: int) -> str:
            value = common[label]
            if value is not None and rng.random() < self.strength:
                return value
            return others[label][rng.integers(len(others[label]))]

        return draw

    def _split_seed(self, split: str) -> int:
        return int(np.random.default_rng([self.seed, sum(map(ord, split))]).integers(2**31))

    def sample(
        self,
        labels: Sequence[int] | np.ndarray,
        *,
        biased: bool,
        seed: int,
        style: str = "world",
        values: list[str | None] | None = None,
    ) -> ToyDataset:
        """Render images of the given classes.

        Args:
            labels: class index of each image.
            biased: draw the attribute value as the training split does (the class's common
                value with probability ``strength``, else a uniformly drawn other value); if
                False, as the debug and test splits do (as the training split with probability
                ``debug_strength``, else uniformly over all values).
            seed: seed of the values, the other attribute and the rendering.
            style: ``"world"`` or ``"generated"`` (see [`render`][render]).
            values: fixed attribute values per image (``None`` entries are drawn as above).

        Returns:
            The images with their labels and metadata.

        Raises:
            ValueError: if a fixed value is not one of [`values`][values], or ``style`` is
                unknown.
        """
        labels = np.asarray(labels, dtype=np.int64)
        rng = np.random.default_rng(seed)
        n = len(labels)
        all_values = self.values
        train_draw = self._train_draw()
        chosen = []
        for i, y in enumerate(labels):
            fixed = values[i] if values is not None else None
            if fixed is not None:
                if fixed not in all_values:
                    raise ValueError(f"unknown {self.attribute} value {fixed!r}")
                chosen.append(fixed)
            elif biased or (self.debug_strength > 0 and rng.random() < self.debug_strength):
                chosen.append(train_draw(rng, int(y)))
            else:
                chosen.append(all_values[rng.integers(len(all_values))])
        bg_names = list(BACKGROUNDS)
        phrase_to_bg = {p: k for k, p in BACKGROUNDS.items()}
        color_names = list(COLORS)
        if self.attribute == "background":
            backgrounds = [phrase_to_bg[v] for v in chosen]
            colors = [color_names[j] for j in rng.integers(len(color_names), size=n)]
        else:
            colors = chosen
            backgrounds = [bg_names[j] for j in rng.integers(len(bg_names), size=n)]
        shapes = [SHAPES[y] for y in labels]
        pixels, geometry = render_scenes(
            shapes, backgrounds, colors, int(rng.integers(2**31)), size=self.size, style=style
        )
        return ToyDataset(
            pixels,
            labels,
            chosen,
            shapes=shapes,
            backgrounds=backgrounds,
            colors=colors,
            geometry=geometry,
        )

    def train(self, per_class: int = 50) -> ToyDataset:
        """The biased training split: ``per_class`` images per class.

        Each image shows its class's common value with probability ``strength``. The same world
        gives the same split.

        Args:
            per_class: images per class, an integer >= 0.

        Returns:
            The split, classes in label order (``per_class`` of class 0 first).

        Raises:
            ValueError: if ``per_class`` is not an integer >= 0.
        """
        labels = np.repeat(np.arange(len(SHAPES)), _count(per_class, "per_class"))
        return self.sample(labels, biased=True, seed=self._split_seed("train"))

    def train_like(self, n: int = 2_000) -> ToyDataset:
        """Fresh images drawn as the training split is, apart from it.

        A repair that removes a shortcut can cost accuracy where the shortcut held; this split
        shows that price (``run(..., extra={"train_like": ...})`` or as a guard).

        Args:
            n: images in all, an integer >= 0; labels cycle through the classes.

        Returns:
            The split; the same world gives the same split.

        Raises:
            ValueError: if ``n`` is not an integer >= 0.
        """
        labels = np.arange(_count(n, "n")) % len(SHAPES)
        return self.sample(labels, biased=True, seed=self._split_seed("train-like"))

    def _balanced(self, n: int, split: str) -> ToyDataset:
        labels = np.arange(_count(n, "n")) % len(SHAPES)
        return self.sample(labels, biased=False, seed=self._split_seed(split))

    def debug(self, n: int = 10_000) -> ToyDataset:
        """The debug split: classes uniform, values uniform (or leaning, see ``debug_strength``).

        Args:
            n: images in all, an integer >= 0; labels cycle through the classes.

        Returns:
            The split; the same world gives the same split.

        Raises:
            ValueError: if ``n`` is not an integer >= 0.
        """
        return self._balanced(n, "debug")

    def test(self, n: int = 5_000) -> ToyDataset:
        """The test split, drawn as the debug split is but apart from it.

        Args:
            n: images in all, an integer >= 0; labels cycle through the classes.

        Returns:
            The split; the same world gives the same split.

        Raises:
            ValueError: if ``n`` is not an integer >= 0.
        """
        return self._balanced(n, "test")
