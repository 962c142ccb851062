"""Features of a CLIP image tower (open_clip), with a trained or a zero-shot linear head."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from failmodes._imports import require
from failmodes._open_clip import load_open_clip, logit_scale
from failmodes.data import labels_of
from failmodes.extractors.torch import TorchExtractor, Transform
from failmodes.interfaces import HeadTrainer

__all__ = ["OpenCLIPExtractor"]


class OpenCLIPExtractor(TorchExtractor):
    """A CLIP image tower as the frozen backbone, with a linear head on its embeddings.

    The features are ``model.encode_image(x, normalize=normalize)``. The head is, in this order
    of preference:

    1. one fitted on the features of labelled images with [`fit_head`][fit_head], as Chegini & Feizi
       do for their CLIP models (a linear probe);
    2. the ``head`` given;
    3. a zero-shot head built from ``class_names``: row ``c`` is the normalised mean text
       embedding of ``templates`` filled with class ``c`` (open_clip's
       ``build_zero_shot_classifier``), times the model's ``exp(logit_scale)``, bias zero, so that
       ``head(features)`` are CLIP's zero-shot logits.

    Nothing is loaded when the extractor is made: a model given by name is built, and its
    weights read or downloaded by open_clip, on first use. Then, too, the settings are checked:
    without a fitted head, a ``head`` or ``class_names``, a model object without ``preprocess``
    (or, for a zero-shot head, without ``tokenizer``), or a zero-shot head with
    ``normalize=False``, the first use raises a ``ValueError``; a missing open_clip an
    ``ImportError`` that names the extra.

    Args:
        model: an open_clip model name (``"ViT-B-32"``, ``"local-dir:/path"``,
            ``"hf-hub:org/repo"``) or an open_clip model object.
        pretrained: the weights for a model name: a tag (``"openai"``) or a checkpoint file.
        head: an ``nn.Linear`` from the embedding to the classes.
        class_names: the class names, for a zero-shot head.
        templates: format strings with one ``{}`` (or callables ``name -> text``) for the
            zero-shot head; ``None`` uses the 80 templates of OpenAI's ImageNet evaluation.
        tokenizer: texts -> tokens, for a zero-shot head with a model object; by default for a
            name, ``open_clip.get_tokenizer(model)``.
        preprocess: PIL image -> ``(C, H, W)`` tensor. Required with a model object; by default
            for a name, open_clip's inference transform for that model. Tensors are taken as
            already preprocessed.
        normalize: L2-normalise the image embeddings (a zero-shot head needs ``True``).
        batch_size: images per forward pass.
        device: where the model runs.
        num_workers: ``DataLoader`` worker processes that read and transform images.
        precision: ``"auto"`` (float16 autocast on CUDA), ``"float32"``, ``"float16"`` or
            ``"bfloat16"``; see [`TorchExtractor`][failmodes.extractors.TorchExtractor].
        progress: show a progress bar; ``None`` shows one only on a terminal.

    Attributes:
        model_: the CLIP model in use (after first use).
        head_: the head fitted by [`fit_head`][fit_head] or built zero-shot (after first use).

    Examples:
        >>> import torch
        >>> from failmodes.extractors import OpenCLIPExtractor
        >>> from failmodes.testing.tiny import tiny_clip
        >>> model, preprocess, tokenizer = tiny_clip()
        >>> extractor = OpenCLIPExtractor(
        ...     model, tokenizer=tokenizer, preprocess=preprocess,
        ...     class_names=["fox", "owl"], templates=["a photo of a {}."],
        ... )
        >>> features = extractor.extract(torch.rand(3, 3, 32, 32))
        >>> features.shape, extractor.logits(features).shape
        (torch.Size([3, 32]), torch.Size([3, 2]))
    """

    def __init__(
        self,
        model: str | nn.Module = "ViT-B-32",
        pretrained: str | None = "openai",
        *,
        head: nn.Linear | None = None,
        class_names: Sequence[str] | None = None,
        templates: Sequence[str | Callable[[str], str]] | None = None,
        tokenizer: Callable[..., torch.Tensor] | None = None,
        preprocess: Transform | None = None,
        normalize: bool = True,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        num_workers: int = 0,
        precision: str = "auto",
        progress: bool | None = None,
    ):
        super().__init__(
            model,
            batch_size=batch_size,
            device=device,
            num_workers=num_workers,
            precision=precision,
            progress=progress,
        )
        self.pretrained = pretrained
        self._head = head
        self.class_names = class_names
        self.templates = templates
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.normalize = normalize

    def fit_head(
        self,
        data: Any,
        labels: Sequence[int] | torch.Tensor | None = None,
        *,
        head_trainer: HeadTrainer | None = None,
        num_classes: int | None = None,
        seed: int = 0,
    ) -> OpenCLIPExtractor:
        """Fit a linear head on the embeddings of labelled images (a linear probe).

        Args:
            data: ``(image, label)`` pairs, or images with ``labels``.
            labels: the labels, when ``data`` holds images only.
            head_trainer: the solver; ``None`` uses
                [`LinearHeadTrainer`][failmodes.heads.LinearHeadTrainer] with its defaults.
            num_classes: the number of classes; ``None``: ``len(class_names)`` when given, else
                the largest label + 1.
            seed: passed to the trainer.

        Returns:
            The extractor itself, with ``head_`` set.

        Raises:
            ValueError: if ``data`` is empty; and as the trainer's ``fit`` does (labels out of
                range, mismatched lengths).
        """
        tower = _ImageTower(self._model(), bool(self.normalize))
        features = self._extract(data, None, None, (tower, None, None))
        if labels is None:
            labels = labels_of(data)
        labels = torch.as_tensor(labels)
        if num_classes is None and self.class_names is not None:
            num_classes = len(self.class_names)
        if head_trainer is None:
            from failmodes.heads.linear import LinearHeadTrainer

            head_trainer = LinearHeadTrainer()
        self.head_ = head_trainer.fit(features, labels, num_classes=num_classes, seed=seed)
        return self

    def _parts(self) -> tuple[nn.Module, nn.Linear, str | None]:
        model = self._model()
        return _ImageTower(model, bool(self.normalize)), self._resolve_head(model), None

    def _image_transform(self) -> Transform | None:
        self._model()
        return self.preprocess_

    def _model(self) -> Any:
        if not hasattr(self, "model_"):
            model, tokenizer, preprocess = load_open_clip(
                self.model,
                self.pretrained,
                tokenizer=self.tokenizer,
                preprocess=self.preprocess,
                device=torch.device(self.device),
                owner="OpenCLIPExtractor",
                need=("preprocess",),
            )
            self.model_, self.tokenizer_, self.preprocess_ = model, tokenizer, preprocess
        return self.model_

    def _resolve_head(self, model: Any) -> nn.Linear:
        if hasattr(self, "head_"):
            return self.head_
        if self._head is not None:
            if not isinstance(self._head, nn.Linear):
                raise TypeError(f"head must be a torch.nn.Linear, got {type(self._head).__name__}")
            return self._head
        if self.class_names is None:
            raise ValueError(
                "OpenCLIPExtractor has no head: pass head= (an nn.Linear), class_names= (a "
                "zero-shot head), or call fit_head(train_data) first"
            )
        self.head_ = self._zero_shot_head(model)
        return self.head_

    def _zero_shot_head(self, model: Any) -> nn.Linear:
        if not self.normalize:
            raise ValueError("a zero-shot head needs normalize=True (CLIP's cosine similarities)")
        names = self.class_names
        if isinstance(names, str) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"class_names must be a non-empty list of strings, got {names!r}")
        if self.tokenizer_ is None:
            raise ValueError(
                "a zero-shot head with a model object needs tokenizer= (e.g. "
                "open_clip.get_tokenizer(name))"
            )
        open_clip = require("open_clip", feature="OpenCLIPExtractor")
        templates = self.templates
        if templates is None:
            templates = open_clip.OPENAI_IMAGENET_TEMPLATES
        templates = [t if callable(t) else t.format for t in templates]
        if not templates:
            raise ValueError("templates must hold at least one template")
        device = torch.device(self.device)
        with torch.no_grad():
            weights = open_clip.build_zero_shot_classifier(
                model, self.tokenizer_, list(names), templates, device=device
            )  # (embed_dim, classes), columns normalised
            weights = weights.float().T * logit_scale(model, device)
        head = nn.utils.skip_init(nn.Linear, weights.shape[1], weights.shape[0])
        with torch.no_grad():
            head.weight.copy_(weights.cpu())
            head.bias.zero_()
        return head


class _ImageTower(nn.Module):
    """``model.encode_image`` as a module."""

    def __init__(self, model: Any, normalize: bool):
        super().__init__()
        self.model = model
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x, normalize=self.normalize)
