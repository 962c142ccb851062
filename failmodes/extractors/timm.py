"""Features of any timm model: ``forward_head(forward_features(x), pre_logits=True)``."""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from failmodes._imports import require
from failmodes.errors import SettingError
from failmodes.extractors.torch import TorchExtractor, Transform

__all__ = ["TimmExtractor"]


class TimmExtractor(TorchExtractor):
    """A timm classifier split into its pre-logits features and its linear classifier.

    The features are ``model.forward_head(model.forward_features(x), pre_logits=True)``, what
    timm's own classifier sees (after pooling, and after the head's norm for models such as
    ConvNeXt and ViT); the head is ``model.get_classifier()``, which must be an ``nn.Linear``.
    PIL images are preprocessed with timm's inference transform for the model
    (``timm.data.resolve_model_data_config`` and ``create_transform``) unless ``transform`` is
    given; tensors are taken as already preprocessed.

    Nothing is built when the extractor is made: a model given by name is created (and its
    weights read or downloaded by timm) on first use. Then, too, the settings are checked: an
    object without timm's ``forward_features``, ``forward_head`` and ``get_classifier``, or whose
    classifier is not an ``nn.Linear``, raises a ``TypeError``; a name timm does not know, or
    ``pretrained`` inside ``model_kwargs``, a ``ValueError``
    ([`check_params`][check_params] checks them without making the model); a missing timm an
    ``ImportError`` that names the extra.

    Args:
        model: a timm model name (``"resnet50"``, ``"vit_base_patch16_224.augreg_in21k_ft_in1k"``,
            ``"hf-hub:..."``) or a timm model object.
        pretrained: load timm's pretrained weights for a model name; ignored for an object.
        model_kwargs: more keyword arguments for ``timm.create_model`` (``num_classes``,
            ``checkpoint_path``, ``pretrained_cfg_overlay``, ...).
        transform: image -> ``(C, H, W)`` tensor, applied to every image (tensors too);
            ``None``: timm's inference transform for the model, for PIL images.
        batch_size: images per forward pass.
        device: where the model runs.
        num_workers: ``DataLoader`` worker processes that read and transform images.
        precision: ``"auto"`` (float16 autocast on CUDA), ``"float32"``, ``"float16"`` or
            ``"bfloat16"``; see [`TorchExtractor`][failmodes.extractors.TorchExtractor].
        progress: show a progress bar; ``None`` shows one only on a terminal.

    Attributes:
        model_: the timm model in use (after first use).
        transform_: the image transform in use (after first use).

    Examples:
        >>> import torch
        >>> from failmodes.extractors import TimmExtractor
        >>> extractor = TimmExtractor("test_vit", pretrained=False, batch_size=4)
        >>> features = extractor.extract(torch.rand(6, 3, 160, 160))
        >>> features.shape, extractor.head.out_features
        (torch.Size([6, 64]), 1000)
    """

    def __init__(
        self,
        model: str | nn.Module = "resnet50",
        pretrained: bool = True,
        *,
        model_kwargs: dict[str, Any] | None = None,
        transform: Transform | None = None,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        num_workers: int = 0,
        precision: str = "auto",
        progress: bool | None = None,
    ):
        super().__init__(
            model,
            transform=transform,
            batch_size=batch_size,
            device=device,
            num_workers=num_workers,
            precision=precision,
            progress=progress,
        )
        self.pretrained = pretrained
        self.model_kwargs = model_kwargs

    def check_params(self, *, here: bool = True) -> torch.device:
        """Check the settings, and a model name timm knows, without making the model.

        As [`TorchExtractor.check_params`][failmodes.extractors.torch.TorchExtractor.check_params],
        and a model name that timm's registry holds (with its tag, if any; nothing is
        downloaded), and ``model_kwargs`` without ``pretrained``.

        Args:
            here: also check that this machine has ``device``.

        Returns:
            ``device`` as a ``torch.device``.

        Raises:
            SettingError: a ``ValueError`` naming the first setting that cannot be used.

        Examples:
            >>> from failmodes.extractors import TimmExtractor
            >>> TimmExtractor("resnet_50").check_params()
            Traceback (most recent call last):
                ...
            failmodes.errors.SettingError: model must be a timm model name ...
        """
        device = super().check_params(here=here)
        if isinstance(self.model, str):
            _check_name(self.model, self.model_kwargs)
        return device

    def _parts(self) -> tuple[nn.Module, nn.Linear, str | None]:
        model = self._model()
        head = model.get_classifier()
        if not isinstance(head, nn.Linear):
            raise TypeError(
                f"the classifier of timm model {type(model).__name__} is "
                f"{type(head).__name__}, not an nn.Linear (num_classes=0 removes it); "
                "TimmExtractor needs a linear head"
            )
        return _PreLogits(model), head, None

    def _image_transform(self) -> Transform | None:
        if not hasattr(self, "transform_"):
            timm = require("timm", feature="TimmExtractor")
            config = timm.data.resolve_model_data_config(self._model())
            self.transform_ = timm.data.create_transform(**config, is_training=False)
        return self.transform_

    def _model(self) -> nn.Module:
        """Create (a name) or adopt (an object) the timm model, once."""
        if hasattr(self, "model_"):
            return self.model_
        model = self.model
        if isinstance(model, str):
            timm = _check_name(model, self.model_kwargs)
            kwargs = dict(self.model_kwargs or {})
            model = timm.create_model(model, pretrained=self.pretrained, **kwargs)
        elif not isinstance(model, nn.Module):
            raise TypeError(
                f"model must be a timm model name or a timm model, got {type(model).__name__}"
            )
        missing = [
            name
            for name in ("forward_features", "forward_head", "get_classifier")
            if not callable(getattr(model, name, None))
        ]
        if missing:
            raise TypeError(
                f"model {type(model).__name__} lacks timm's {', '.join(missing)}; for another "
                "PyTorch model use TorchExtractor"
            )
        self.model_ = model
        return model


def _check_name(name: str, model_kwargs: Any) -> Any:
    """timm, once ``name`` is known to it and ``model_kwargs`` leaves out ``pretrained``.

    A ``hf-hub:`` or ``local-dir:`` name is left to ``timm.create_model``.
    """
    timm = require("timm", feature="TimmExtractor")
    if "pretrained" in (model_kwargs or {}):
        raise SettingError(
            "model_kwargs", "must leave out pretrained: pass pretrained= to TimmExtractor itself"
        )
    if ":" in name:
        return timm
    architecture, _, tag = name.partition(".")
    if not timm.is_model(architecture):
        close = difflib.get_close_matches(architecture, timm.list_models(), n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise SettingError(
            "model", f"must be a timm model name (timm.list_models()), got {name!r}{hint}"
        )
    if tag and name not in timm.list_pretrained(name):
        raise SettingError(
            "model",
            f"must be a timm model name with a tag it has (timm.list_pretrained("
            f"'{architecture}.*')), got {name!r}",
        )
    return timm


class _PreLogits(nn.Module):
    """A timm model run up to (not including) its classifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)
