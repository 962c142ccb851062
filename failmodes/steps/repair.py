"""Step 6, fit: the head refit on train features plus weighted real and generated features.

The objective is ``mean CE(train) + lam_real * mean CE(real) + lam * mean CE(generated)`` (plus
the trainer's penalty), fitted from the model's own head; the backbone is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from failmodes._checks import check_instance, check_seed
from failmodes.cache import Cache, cache_spec, cached, digest, fingerprint, tensor_digest
from failmodes.interfaces import HeadTrainer
from failmodes.results import Features
from failmodes.settings import GRIDS, takes_keyword
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
    real: Features | None = None,
    lam_real: float = 0.0,
    seed: int = 0,
    cache: Cache | None = None,
) -> torch.nn.Linear:
    """Refit the head on train features and weighted generated and real features.

    The objective is ``mean CE(train) + lam_real * mean CE(real) + lam * mean CE(extra)`` plus
    the trainer's penalty. The fit starts from ``init``, the model's own head, and keeps its
    number of classes. With a cache, a fit with the same trainer, features, labels, weights,
    start and ``seed`` is read back instead of repeated; a fit with one set of extra images
    has the cache key it had before ``real`` existed.

    A trainer is given a set that weighs nothing as ``lam=0``; one set as ``extra_features``;
    two as ``extra_features`` (the generated ones) and ``extras`` (the real ones), which a
    trainer written without ``extras`` cannot take.

    Args:
        trainer: the head trainer.
        init: the head to start from (not modified).
        train: features and labels of the training data.
        extra: features and labels of generated images, or ``None`` for none.
        lam: the weight (``>= 0``) of the extra images' mean loss.
        real: features and labels of the debug set's own images, or ``None`` for none.
        lam_real: the weight (``>= 0``) of their mean loss.
        seed: passed to the trainer.
        cache: where fits are kept, or ``None``.

    Returns:
        The new head, a float32 ``nn.Linear`` on the CPU.

    Raises:
        ValueError: if a weight is not a number ``>= 0``; and whatever the trainer raises.
        TypeError: if ``trainer`` is not a [`HeadTrainer`][failmodes.interfaces.HeadTrainer],
            or must weigh two sets and does not take ``extras``.

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
    lam_real = GRIDS["lam"].check_one(lam_real, "lam_real")
    seed = check_seed(seed)
    if real is None or lam_real == 0 or len(real) == 0:
        sets = [] if extra is None else [(extra, lam)]  # as before real images existed
    elif extra is None or lam == 0 or len(extra) == 0:
        sets = [(real, lam_real)]  # the real images alone: one set, as any trainer takes it
    else:
        sets = [(extra, lam), (real, lam_real)]
        if not takes_keyword(trainer.fit, "extras"):
            raise TypeError(
                f"{type(trainer).__name__}.fit does not take extras, which weighing the debug "
                "set's own images and generated images each by its own weight needs: write it "
                "as fit(features, labels, *, extra_features=None, extra_labels=None, lam=0.5, "
                "extras=(), init=None, num_classes=None, seed=0), or use Debugger(real=None)"
            )
    labels = torch.as_tensor(train.labels, dtype=torch.long)
    given = [(f, torch.as_tensor(f.labels, dtype=torch.long), w) for f, w in sets]

    def fit() -> dict[str, torch.Tensor]:
        first = given[0] if given else None
        more = {"extras": [(f.features, y, w) for f, y, w in given[1:]]} if len(given) > 1 else {}
        head = trainer.fit(
            train.features,
            None if isinstance(train.features, FeatureShards) else labels,
            extra_features=None if first is None else first[0].features,
            extra_labels=None if first is None else first[1],
            lam=lam if first is None else first[2],
            init=init,
            num_classes=init.out_features,
            seed=seed,
            **more,
        )
        out = {"weight": head.weight.detach().float()}
        if head.bias is not None:
            out["bias"] = head.bias.detach().float()
        return out

    spec = None
    if cache is not None:
        first = given[0] if given else None
        spec = cache_spec(
            trainer=fingerprint(trainer),
            train=_identity(train),
            labels=tensor_digest([labels]),
            extra="none" if first is None else _identity(first[0]),
            extra_labels="none" if first is None else tensor_digest([first[1]]),
            lam=lam if first is None else first[2],
            init=tensor_digest([p for p in (init.weight, init.bias) if p is not None]),
            num_classes=init.out_features,
            seed=seed,
            **{
                f"extras_{i}": [_identity(f), tensor_digest([y]), w]
                for i, (f, y, w) in enumerate(given[1:])
            },
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
