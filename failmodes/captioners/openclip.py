"""CLIP zero-shot captioning on open_clip: for each failure image, the most likely value."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from failmodes._open_clip import load_open_clip, logit_scale
from failmodes.attributes import prompt
from failmodes.images import to_rgb
from failmodes.interfaces import Caption, FailureCaptioner
from failmodes.progress import progress_bar

__all__ = ["CLIPCaptioner"]

logger = logging.getLogger("failmodes")

Template = str | Callable[[str, str, str], str]


class CLIPCaptioner(FailureCaptioner):
    """Zero-shot CLIP: each image gets the value of its class whose prompt matches it best.

    For an image of class ``c`` with candidates ``v1 .. vk``, the captioner embeds the image and
    the prompts "a photo of a c v1" .. "a photo of a c vk" (made by
    [`failmodes.attributes.prompt`][failmodes.attributes.prompt]), takes the softmax of their cosine
    similarities scaled by the model's ``logit_scale`` over those k prompts only, and returns the
    best value with its probability. Text embeddings are computed once per prompt and kept in
    ``text_cache_``.

    Nothing is loaded when the captioner is made: a model given by name is built, and its weights
    read or downloaded by open_clip, on the first call to [`caption`][caption].

    Args:
        model: an open_clip model name (``"ViT-B-32"``, ``"local-dir:/path"``,
            ``"hf-hub:org/repo"``) or a model object with open_clip's
            ``encode_image(x, normalize=True)`` and ``encode_text(tokens, normalize=True)`` (and
            usually ``logit_scale``); a model object is moved to ``device`` and put in eval mode
            on first use.
        pretrained: the open_clip weights for a model name: a tag (``"openai"``) or a local
            checkpoint file; ignored for a model object and for names with a schema.
        tokenizer: texts -> token tensor. Required with a model object; by default for a name,
            ``open_clip.get_tokenizer(model)``.
        preprocess: PIL image -> ``(C, H, W)`` tensor. Required with a model object; by default
            for a name, open_clip's inference transform for that model.
        template: how a (class, value) pair becomes text. ``None``:
            [`failmodes.attributes.prompt`][failmodes.attributes.prompt] ("a photo of a fox in a
            desert"); a format string with one ``{}`` that receives the class with its value and
            article ("a blurry photo of {}."); or a callable ``template(class_name, value,
            attribute) -> str``.
        min_prob: below this probability the caption's value is ``None`` (in ``[0, 1]``).
        batch_size: images (and prompts) per forward pass.
        device: where the model runs (``"cpu"``, ``"cuda"``, a ``torch.device``).
        progress: show a progress bar over image batches; ``None`` shows it on a terminal only.

    Attributes:
        model_: the loaded model (after the first [`caption`][caption]).
        tokenizer_: the tokenizer in use.
        preprocess_: the image transform in use.
        text_cache_: ``{prompt text: normalised text embedding}``.

    Examples:
        >>> captioner = CLIPCaptioner("ViT-B-32", pretrained="openai")  # loads nothing yet
        >>> hasattr(captioner, "model_")
        False

        With a model in hand (here any open_clip model and its transforms):

        ```python
        model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", "openai")
        captioner = CLIPCaptioner(model, tokenizer=open_clip.get_tokenizer("ViT-B-32"),
                                  preprocess=preprocess)
        captioner.caption([image], image_classes=["fox"],
                          candidates={"fox": ["in a desert", "on a frozen lake"]})
        # [Caption(value='in a desert', score=0.93)]
        ```
    """

    def __init__(
        self,
        model: str | torch.nn.Module = "ViT-B-32",
        pretrained: str | None = "openai",
        *,
        tokenizer: Callable[[list[str]], torch.Tensor] | None = None,
        preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
        template: Template | None = None,
        min_prob: float = 0.0,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        progress: bool | None = None,
    ):
        self.model = model
        self.pretrained = pretrained
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.template = template
        self.min_prob = min_prob
        self.batch_size = batch_size
        self.device = device
        self.progress = progress

    def caption(
        self,
        images: Sequence[Any],
        *,
        image_classes: Sequence[str],
        candidates: Mapping[str, Sequence[str]],
        attribute: str = "background",
    ) -> list[Caption]:
        """Pick, for each image, the most likely value among its class's candidates.

        Args:
            images: PIL images (any mode; converted to RGB, then ``preprocess``-ed) or
                ``(C, H, W)`` tensors taken as already preprocessed; a ``(N, C, H, W)`` tensor
                works as N images.
            image_classes: the true class name of each image.
            candidates: ``{class_name: [value, ...]}``; every class in ``image_classes`` needs a
                non-empty list (exact duplicates count once).
            attribute: the attribute the values belong to (it decides how a prompt reads).

        Returns:
            One [`Caption`][failmodes.interfaces.Caption] per image, in input order: the best value
            and its probability, or ``Caption(None, p)`` when ``p < min_prob``.

        Raises:
            ValueError: on a length mismatch, a class without candidates, a blank candidate, or a
                bad ``min_prob``, ``batch_size`` or ``template``; a model object given without
                ``tokenizer`` or ``preprocess``.
            TypeError: on images that are neither PIL images nor tensors, or a string where a
                list is expected.
        """
        if isinstance(images, Image.Image):
            raise TypeError("images must be a list of images; wrap a single image in a list")
        if isinstance(image_classes, str):
            raise TypeError(
                f"image_classes must be a list of names, not a string ({image_classes!r})"
            )
        images = list(images)
        image_classes = list(image_classes)
        if len(images) != len(image_classes):
            raise ValueError(
                f"images and image_classes must have the same length, got {len(images)} images "
                f"and {len(image_classes)} class names"
            )
        values = _check_candidates(image_classes, candidates)
        min_prob, batch_size = self._check_options()
        texts = {
            name: [self._text(name, value, attribute) for value in vals]
            for name, vals in values.items()
        }
        if not images:
            return []

        model, _, _ = self._load()
        device = torch.device(self.device)
        self._encode_texts([t for ts in texts.values() for t in ts], batch_size, device)
        class_text = {
            name: torch.stack([self.text_cache_[t] for t in ts]) for name, ts in texts.items()
        }
        scale = logit_scale(model, device)

        captions: list[Caption] = []
        starts = range(0, len(images), batch_size)
        bar = progress_bar(starts, progress=self.progress, desc="captioning", unit="batch")
        with torch.no_grad():
            for start in bar:
                chunk = images[start : start + batch_size]
                features = self._encode_images(chunk, device)
                for row, name in zip(
                    features, image_classes[start : start + batch_size], strict=True
                ):
                    probs = torch.softmax(scale * (class_text[name] @ row), dim=0)
                    p, best = (float(x) for x in probs.max(dim=0))
                    value = values[name][int(best)] if p >= min_prob else None
                    captions.append(Caption(value, p))
        return captions

    def classify(
        self,
        images: Sequence[Any],
        class_names: Sequence[str],
        *,
        template: str = "a photo of a {}.",
    ) -> torch.Tensor:
        """Zero-shot class probabilities: for each image, a softmax over ``class_names``.

        Used to check that a generated image shows its class (see
        [`failmodes.filters.CaptionFilter`][failmodes.filters.CaptionFilter]).

        Args:
            images: PIL images or preprocessed ``(C, H, W)`` tensors.
            class_names: the classes to choose among.
            template: a format string with one ``{}`` for the class name.

        Returns:
            A ``(len(images), len(class_names))`` float32 CPU tensor whose rows sum to 1.

        Raises:
            ValueError: if ``class_names`` is empty or a single string, ``template`` has no
                ``{}`` field, or ``min_prob`` or ``batch_size`` is invalid.
            TypeError: on images that are neither PIL images nor tensors.
        """
        if isinstance(class_names, str) or not class_names:
            raise ValueError(f"class_names must be a non-empty list of names, got {class_names!r}")
        if "{}" not in template:
            raise ValueError(f"template {template!r} needs a '{{}}' field for the class name")
        _, batch_size = self._check_options()
        images = list(images)
        if not images:
            return torch.zeros(0, len(class_names))
        model, _, _ = self._load()
        device = torch.device(self.device)
        texts = [template.format(name) for name in class_names]
        self._encode_texts(texts, batch_size, device)
        text = torch.stack([self.text_cache_[t] for t in texts])
        scale = logit_scale(model, device)
        rows = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                features = self._encode_images(images[start : start + batch_size], device)
                rows.append(torch.softmax(scale * features @ text.T, dim=1).cpu())
        return torch.cat(rows)

    # -- loading ---------------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
        """Build (a name) or adopt (an object) the model, once; set ``model_`` and friends."""
        if hasattr(self, "model_"):
            return self.model_, self.tokenizer_, self.preprocess_
        model, tokenizer, preprocess = load_open_clip(
            self.model,
            self.pretrained,
            tokenizer=self.tokenizer,
            preprocess=self.preprocess,
            device=torch.device(self.device),
            owner="CLIPCaptioner",
        )
        self.model_, self.tokenizer_, self.preprocess_ = model, tokenizer, preprocess
        self.text_cache_: dict[str, torch.Tensor] = {}
        return model, tokenizer, preprocess

    def _check_options(self) -> tuple[float, int]:
        min_prob = float(self.min_prob)
        if not 0.0 <= min_prob <= 1.0:
            raise ValueError(f"min_prob must be in [0, 1], got {self.min_prob!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise TypeError(f"batch_size must be an int, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        template = self.template
        if isinstance(template, str):
            try:
                filled = {template.format(x) for x in ("\x00", "\x01")}
            except (IndexError, KeyError, ValueError) as err:
                raise ValueError(
                    f"template {template!r} must be a format string with one '{{}}' field, which "
                    "receives the class with its value ('a photo of {}')"
                ) from err
            if len(filled) != 2:
                raise ValueError(f"template {template!r} has no '{{}}' field for the class")
        elif template is not None and not callable(template):
            raise TypeError(
                "template must be None, a format string or a callable "
                f"(class_name, value, attribute) -> str, got {type(template).__name__}"
            )
        return min_prob, self.batch_size

    # -- text and images -------------------------------------------------------------------------

    def _text(self, class_name: str, value: str, attribute: str) -> str:
        template = self.template
        if template is None:
            return prompt(class_name, value, attribute)
        if isinstance(template, str):
            return prompt(class_name, value, attribute, template=template)
        text = template(class_name, value, attribute)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                f"template({class_name!r}, {value!r}, {attribute!r}) must return a non-empty "
                f"string, got {text!r}"
            )
        return text

    def _encode_texts(self, texts: Iterable[str], batch_size: int, device: torch.device) -> None:
        """Embed the texts not yet in ``text_cache_`` (each once), in batches."""
        new = [t for t in dict.fromkeys(texts) if t not in self.text_cache_]
        if not new:
            return
        logger.debug("CLIPCaptioner: encoding %d new prompts", len(new))
        with torch.no_grad():
            for start in range(0, len(new), batch_size):
                batch = new[start : start + batch_size]
                tokens = self.tokenizer_(batch).to(device)
                features = self.model_.encode_text(tokens, normalize=True).float()
                self.text_cache_.update(zip(batch, features, strict=True))

    def _encode_images(self, images: Sequence[Any], device: torch.device) -> torch.Tensor:
        tensors = [self._to_tensor(image) for image in images]
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise ValueError(
                f"images must all have one shape after preprocessing, got {sorted(shapes)}"
            )
        dtype = _input_dtype(self.model_)
        batch = torch.stack(tensors).to(device=device, dtype=dtype)
        try:
            return self.model_.encode_image(batch, normalize=True).float()
        except RuntimeError as err:
            size = getattr(getattr(self.model_, "visual", None), "image_size", None)
            size = (size, size) if isinstance(size, int) else size
            if not isinstance(size, tuple | list) or tuple(batch.shape[2:]) == tuple(size):
                raise  # not a size the model names, or not the size: the model's own error
            raise ValueError(
                f"images of shape {tuple(batch.shape[1:])} cannot be read by the CLIP model, "
                f"made for {size[0]}x{size[1]} images: image tensors are taken as already "
                "preprocessed; pass PIL images (preprocess resizes them) or tensors of that size"
            ) from err

    def _to_tensor(self, image: Any) -> torch.Tensor:
        image = to_rgb(image)
        if isinstance(image, Image.Image):
            tensor = self.preprocess_(image)
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"preprocess must return a tensor, got {type(tensor).__name__}")
        elif isinstance(image, torch.Tensor):
            tensor = image
        else:
            raise TypeError(
                "images must be PIL images or (C, H, W) tensors, got "
                f"{type(image).__name__} (for an array, use PIL.Image.fromarray)"
            )
        if tensor.ndim != 3:
            raise ValueError(f"an image tensor must be (C, H, W), got shape {tuple(tensor.shape)}")
        return tensor


def _check_candidates(
    image_classes: Sequence[str], candidates: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """The candidate values of each class in ``image_classes``, checked, duplicates removed."""
    if not isinstance(candidates, Mapping):
        raise TypeError(
            f"candidates must be a mapping {{class_name: [value, ...]}}, got "
            f"{type(candidates).__name__}"
        )
    names = list(dict.fromkeys(image_classes))
    missing = [name for name in names if name not in candidates]
    if missing:
        raise ValueError(f"candidates has no values for class(es) {missing}")
    values: dict[str, list[str]] = {}
    for name in names:
        raw = candidates[name]
        if isinstance(raw, str) or not isinstance(raw, Iterable):
            raise TypeError(f"candidates[{name!r}] must be a list of values, got {raw!r}")
        vals = list(raw)
        if not vals:
            raise ValueError(f"candidates[{name!r}] is empty: class {name!r} has no values")
        bad = [v for v in vals if not isinstance(v, str) or not v.strip()]
        if bad:
            raise ValueError(f"candidates[{name!r}] holds blank or non-string values {bad}")
        values[name] = list(dict.fromkeys(vals))
    return values


def _input_dtype(model: Any) -> torch.dtype:
    if isinstance(model, torch.nn.Module):
        for param in model.parameters():
            if param.is_floating_point():
                return param.dtype
    return torch.float32
