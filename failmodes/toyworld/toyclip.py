"""ToyCLIP: a tiny open_clip CLIP trained on ToyWorld, the embedded world's captioner.

ToyCLIP is a plain open_clip ``open_clip.CLIP`` of 1.8M parameters: a ViT of 3 layers of
width 64 on 32x32 images in 4x4 patches, average-pooled (small patches and average pooling make
the object's colour quick to learn), and a text transformer of 2 layers of width 32 on
open_clip's own BPE tokenizer (49408 tokens, which hold most of the parameters; context 20, room
for every ToyWorld prompt with a longer template), both projected to 64 dimensions. It is
trained contrastively on ToyWorld images and captions ("a photo of a red circle on grass"; see
``scripts/train_toyclip.py``) and shipped in float16 (3.5 MB).

It is loaded exactly as a real CLIP is, so the demo's captioner runs the same code as with
ViT-B/32:

```python
open_clip.add_model_config("failmodes/toyworld/weights/toyclip.json")  # register_toyclip()
model, _, preprocess = open_clip.create_model_and_transforms(
    "toyclip", pretrained="failmodes/toyworld/weights/toyclip.safetensors")
tokenizer = open_clip.get_tokenizer("toyclip")
```

It was trained on images normalised with open_clip's default (OpenAI) mean and std, because
open_clip 3.x keeps its default preprocessing for a model name with a checkpoint *file* (it reads
a preprocess config only from a pretrained tag or a ``local-dir:``/``hf-hub:`` folder); the
inference transform is therefore: resize 32 (a no-op on ToyWorld images), centre crop 32,
to tensor, normalise with those mean and std.

Importing this module loads nothing: open_clip is imported and the weights are read only when
a model is built.

Examples:
    >>> from failmodes.toyworld import ToyWorld, toyclip_captioner
    >>> world = ToyWorld(seed=0)
    >>> debug = world.debug(20)
    >>> captions = toyclip_captioner(progress=False).caption(
    ...     debug.images, image_classes=debug.shapes, candidates=world.uncommon_values())
    >>> len(captions)
    20
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from failmodes._imports import require
from failmodes.captioners.openclip import CLIPCaptioner

__all__ = [
    "TOYCLIP",
    "register_toyclip",
    "toyclip_captioner",
    "toyclip_config",
    "toyclip_weights",
]

TOYCLIP = "toyclip"
"""The open_clip model name ToyCLIP is registered under."""

_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_CONFIG = _WEIGHTS_DIR / f"{TOYCLIP}.json"
_WEIGHTS = _WEIGHTS_DIR / f"{TOYCLIP}.safetensors"


def toyclip_config() -> Path:
    """The path of ToyCLIP's open_clip model config (a JSON file shipped with the package).

    Returns:
        The ``toyclip.json`` file in the package's ``weights`` folder.

    Examples:
        >>> from failmodes.toyworld.toyclip import toyclip_config
        >>> toyclip_config().name
        'toyclip.json'
    """
    return _CONFIG


def toyclip_weights() -> Path:
    """The path of ToyCLIP's shipped weights (a float16 safetensors file of 3.5 MB).

    Returns:
        The ``toyclip.safetensors`` file in the package's ``weights`` folder.

    Raises:
        FileNotFoundError: if the weights are missing (run ``scripts/train_toyclip.py``).

    Examples:
        >>> from failmodes.toyworld import toyclip_weights
        >>> toyclip_weights().name
        'toyclip.safetensors'
    """
    if not _WEIGHTS.is_file():
        raise FileNotFoundError(
            f"ToyCLIP weights not found at {_WEIGHTS}; the package data is incomplete. "
            "Reinstall failmodes, or train them with: python scripts/train_toyclip.py"
        )
    return _WEIGHTS


def register_toyclip() -> str:
    """Register ToyCLIP's config with open_clip under the name ``"toyclip"``; safe to repeat.

    After this, ``open_clip.create_model_and_transforms("toyclip", pretrained=...)`` and
    ``open_clip.get_tokenizer("toyclip")`` work as for any built-in model.

    Returns:
        The registered model name, ``"toyclip"``.

    Raises:
        ImportError: if open_clip is not installed (it names the extra to install).
        ValueError: if another config is already registered under ``"toyclip"``.

    Examples:
        >>> import open_clip
        >>> from failmodes.toyworld import register_toyclip, toyclip_weights
        >>> name = register_toyclip()
        >>> model, _, preprocess = open_clip.create_model_and_transforms(
        ...     name, pretrained=str(toyclip_weights()))
        >>> open_clip.get_tokenizer(name)(["a photo of a red circle on grass"]).shape
        torch.Size([1, 20])
    """
    open_clip = require("open_clip", feature="ToyCLIP")
    config = json.loads(_CONFIG.read_text())
    if TOYCLIP not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG)
    registered = open_clip.get_model_config(TOYCLIP)
    if registered != config:
        raise ValueError(
            f"open_clip already has a different model config named {TOYCLIP!r}: {registered}"
        )
    return TOYCLIP


def toyclip_captioner(**kwargs: Any) -> CLIPCaptioner:
    """A [`CLIPCaptioner`][failmodes.captioners.CLIPCaptioner] on ToyCLIP; nothing is loaded yet.

    Args:
        **kwargs: passed to ``CLIPCaptioner`` (``batch_size``, ``device``, ``progress``,
            ``min_prob``, ``template``, ...).

    Returns:
        ``CLIPCaptioner("toyclip", pretrained=str(toyclip_weights()), **kwargs)``, with
        ToyCLIP registered with open_clip (also in any process the captioner is sent to).

    Raises:
        ImportError: if open_clip is not installed (it names the extra).

    Examples:
        >>> from failmodes.toyworld import ToyWorld, ToyWorldGenerator, toyclip_captioner
        >>> from failmodes import GenerationRequest
        >>> request = GenerationRequest(0, "circle", "on sand", "a photo of a circle on sand", 2, 0)
        >>> images = ToyWorldGenerator(ToyWorld(seed=0)).generate([request])[0]
        >>> captioner = toyclip_captioner(progress=False)
        >>> captions = captioner.caption(images, image_classes=["circle", "circle"],
        ...                              candidates={"circle": ["on sand", "in water"]})
        >>> [caption.value for caption in captions]
        ['on sand', 'on sand']
    """
    register_toyclip()
    return _ToyCLIPCaptioner(TOYCLIP, pretrained=str(toyclip_weights()), **kwargs)


class _ToyCLIPCaptioner(CLIPCaptioner):
    """A ``CLIPCaptioner`` on ToyCLIP that registers ToyCLIP's config before it captions.

    So it works in any process it is sent to (a Ray worker, say), not only the one that made it.
    """

    def caption(self, images: Any, **kwargs: Any) -> Any:
        """``CLIPCaptioner.caption``, with ToyCLIP registered first.

        Args:
            images: the images.
            **kwargs: ``image_classes``, ``candidates`` and ``attribute``.

        Returns:
            One [`Caption`][failmodes.interfaces.Caption] per image.
        """
        register_toyclip()
        return super().caption(images, **kwargs)
