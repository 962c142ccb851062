"""Step 6, repair: the head refit on train features plus ``lam``-weighted generated features.

The objective is ``mean CE(train) + lam * mean CE(generated)`` (plus the trainer's penalty),
fitted from the model's own head; the backbone is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from failmodes._checks import check_instance, check_seed
from failmodes.cache import Cache, cache_spec, cached, digest, fingerprint, tensor_digest
from failmodes.interfaces import HeadTrainer
from failmodes.results import Features
from failmodes.settings import GRIDS
from failmodes.shards import FeatureShards

__all__ = ["fit_head"]

logger = logging.getLogger("failmodes")


def fit_head(
    trainer: HeadTrainer,
    init: torch.nn.Linear,
    train: Features,
    extra: Features | None = None,
    *,
    lam: float = 0.5,
    seed: int = 0,
    cache: Cache | None = None,
) -> torch.nn.Linear:
    """Refit the head on train features plus ``lam``-weighted extra (generated) features.

    The fit starts from ``init``, the model's own head, and keeps its number of classes. With
    a cache, a fit with the same trainer, features, labels, ``lam``, start and ``seed`` is read
    back instead of repeated.

    Args:
        trainer: the head trainer.
        init: the head to start from (not modified).
        train: features and labels of the training data.
        extra: features and labels of generated images, or ``None`` for a plain refit.
        lam: the weight (``>= 0``) of the extra images' mean loss.
        seed: passed to the trainer.
        cache: where fits are kept, or ``None``.

    Returns:
        The new head, a float32 ``nn.Linear`` on the CPU.

    Raises:
        ValueError: if ``lam`` is not a number ``>= 0``; and whatever the trainer raises.
        TypeError: if ``trainer`` is not a [`HeadTrainer`][failmodes.interfaces.HeadTrainer].

    Examples:
        >>> import numpy as np, torch
        >>> from failmodes import Features, LinearHeadTrainer
        >>> from failmodes.steps import fit_head
        >>> train = Features(torch.randn(40, 4), np.arange(40) % 2)
        >>> head = fit_head(LinearHeadTrainer(), torch.nn.Linear(4, 2), train, lam=0.0)
        >>> head.weight.shape
        torch.Size([2, 4])
    """
    check_instance(trainer, "head_trainer", HeadTrainer, "a HeadTrainer")
    lam = GRIDS["lam"].check_one(lam, "lam")
    seed = check_seed(seed)
    labels = torch.as_tensor(train.labels, dtype=torch.long)
    extra_labels = None if extra is None else torch.as_tensor(extra.labels, dtype=torch.long)

    def fit() -> dict[str, torch.Tensor]:
        head = trainer.fit(
            train.features,
            None if isinstance(train.features, FeatureShards) else labels,
            extra_features=None if extra is None else extra.features,
            extra_labels=extra_labels,
            lam=lam,
            init=init,
            num_classes=init.out_features,
            seed=seed,
        )
        out = {"weight": head.weight.detach().float()}
        if head.bias is not None:
            out["bias"] = head.bias.detach().float()
        return out

    spec = None
    if cache is not None:
        spec = cache_spec(
            trainer=fingerprint(trainer),
            train=_identity(train),
            labels=tensor_digest([labels]),
            extra="none" if extra is None else _identity(extra),
            extra_labels="none" if extra_labels is None else tensor_digest([extra_labels]),
            lam=lam,
            init=tensor_digest([p for p in (init.weight, init.bias) if p is not None]),
            num_classes=init.out_features,
            seed=seed,
        )
    return _linear(cached(cache, "heads", spec, fit, as_json=False))


def _identity(features: Features) -> str:
    """The cache identity of features: their key, else a hash of their values."""
    if features.key is not None:
        return features.key
    if isinstance(features.features, FeatureShards):  # one shard at a time
        return digest([tensor_digest([x]) for x, _ in features.features])
    return tensor_digest([features.features])


def _linear(params: Mapping[str, torch.Tensor]) -> torch.nn.Linear:
    """An ``nn.Linear`` holding ``weight`` (and ``bias``), without random initialisation."""
    weight = params["weight"]
    head = torch.nn.utils.skip_init(
        torch.nn.Linear, weight.shape[1], weight.shape[0], bias="bias" in params
    )
    with torch.no_grad():
        head.weight.copy_(weight)
        if "bias" in params:
            head.bias.copy_(params["bias"])
    return head
