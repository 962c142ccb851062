"""Choosing among candidates: by the loss on the validation part's failures, or their accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from failmodes import Debugger
from failmodes.interfaces import HeadTrainer
from failmodes.methods import SCORES
from failmodes.results import FailureSet, Features, PreparedRun
from failmodes.settings import PAPER
from failmodes.steps import lam_candidates, loss, select_head


class ScaledHead(HeadTrainer):
    """A head trainer of a user's own: the original head, sharpened by ``lam``.

    Every candidate it fits predicts what the original head predicts, so all tie on accuracy;
    a larger ``lam`` makes it surer, so the loss tells them apart.
    """

    def fit(self, features, labels, *, lam=0.5, **ignored):
        head = torch.nn.Linear(2, 2)
        with torch.no_grad():
            head.weight.copy_(torch.eye(2) * (1.0 + lam))
            head.bias.zero_()
        return head


def _prepared() -> tuple[PreparedRun, Features]:
    """Two classes on the axes; the original head gets the two validation images wrong."""
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.2], [0.1, 1.0]])
    labels = np.array([0, 1, 0, 1])
    original = torch.nn.Linear(2, 2)
    with torch.no_grad():
        original.weight.copy_(torch.eye(2).flip(0))  # swaps the classes
        original.bias.zero_()
    data = Features(x, labels)
    validation = np.array([2, 3])
    failures = FailureSet(labels, 1 - labels, validation, np.array([0]), np.array([1]))
    splits = {
        "validation": data.select(validation),
        "validation_failures": data.select(validation),
    }
    prep = PreparedRun(data.select(np.array([0, 1])), data, None, original, failures, splits)
    return prep, Features(torch.zeros(0, 2), np.zeros(0, dtype=int))


def test_the_loss_is_the_mean_cross_entropy_computed_by_hand():
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        head.bias.zero_()
    x, y = torch.tensor([[1.0, 1.0], [0.0, 1.0]]), np.array([0, 1])
    # logits (1, 2) and (0, 2): -log softmax of the label
    by_hand = (-(1 - math.log(math.e + math.e**2)) - (2 - math.log(1 + math.e**2))) / 2
    assert loss(head, (x, y)) == pytest.approx(by_hand, rel=1e-6)
    assert math.isnan(loss(head, (x[:0], y[:0])))


def test_by_loss_the_surest_of_equally_accurate_candidates_wins():
    prep, generated = _prepared()
    candidates = lam_candidates(0, [0.5, 4.0, 1.0])
    by_loss = select_head(ScaledHead(), prep, generated, candidates, select_by="loss")
    by_accuracy = select_head(ScaledHead(), prep, generated, candidates, select_by="accuracy")
    table = by_loss.table
    assert (table["val_failure_acc"] == 1.0).all()  # every candidate gets both right
    assert by_loss.settings["lam"] == 4.0  # the lowest loss
    assert table["val_failure_loss"].idxmin() == by_loss.index == 1
    assert by_accuracy.settings["lam"] == 0.5  # a tie: the first
    assert by_loss.key == (True, True, -table["val_failure_loss"][1])  # within the guard, eligible
    assert by_accuracy.key == (True, True, 1.0)


def test_select_by_is_a_setting_with_its_choices():
    assert Debugger.__dataclass_fields__["select_by"].default == "loss"
    assert PAPER["select_by"] == "accuracy"
    assert set(SCORES) == {"loss", "accuracy"}
    prep, generated = _prepared()
    with pytest.raises(ValueError, match=r"select_by must be one of \['loss', 'accuracy'\]"):
        select_head(ScaledHead(), prep, generated, lam_candidates(0, [1.0]), select_by="auc")
