"""Tests of failmodes.heads: LinearHeadTrainer and patch_model."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from failmodes.heads import LinearHeadTrainer, patch_model
from failmodes.interfaces import HeadTrainer

D, C = 6, 4
WD = 1e-2  # well conditioned, so that tight tolerances are reached in a few iterations


def _problem(seed: int = 0, n: int = 80, m: int = 24, d: int = D, c: int = C, scale: float = 1.0):
    """Gaussian class clusters; the extra set is shifted so that it pulls the head elsewhere."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(c, d, generator=g)
    shift = 2.0 * torch.randn(d, generator=g)
    y = torch.arange(n) % c
    x = means[y] + torch.randn(n, d, generator=g)
    ye = torch.arange(m) % c
    xe = means[ye] + shift + torch.randn(m, d, generator=g)
    return scale * x, y, scale * xe, ye


def _objective(head, x, y, xe=None, ye=None, *, lam=0.5, wd=WD):
    """The stated objective, written independently of the library (float64, autograd)."""
    w = head.weight.detach().double().requires_grad_(True)
    b = head.bias.detach().double().requires_grad_(True)
    loss = F.cross_entropy(x.double() @ w.T + b, y)
    if xe is not None:
        loss = loss + lam * F.cross_entropy(xe.double() @ w.T + b, ye)
    loss = loss + wd / 2 * (w.pow(2).sum() + b.pow(2).sum())
    gw, gb = torch.autograd.grad(loss, [w, b])
    return loss.item(), max(gw.abs().max().item(), gb.abs().max().item())


def _trainer(**params):
    """A trainer run to a tight tolerance in float64 on the tests' weight decay."""
    return LinearHeadTrainer(**{"weight_decay": WD, "precision": "float64", "tol": 1e-7, **params})


def _fit(trainer=None, *args, **kwargs):
    return (trainer if trainer is not None else _trainer()).fit(*args, **kwargs)


def test_is_a_head_trainer_and_constructor_only_stores():
    trainer = LinearHeadTrainer(solver="nope", lr=-1.0, tol=1e-3)
    assert isinstance(trainer, HeadTrainer)
    assert (trainer.solver, trainer.lr, trainer.tol) == ("nope", -1.0, 1e-3)
    with pytest.raises(ValueError, match="solver"):
        trainer.fit(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_returned_head_is_a_stationary_point_of_the_stated_objective(lam):
    x, y, xe, ye = _problem()
    head = _fit(None, x, y, extra_features=xe, extra_labels=ye, lam=lam, num_classes=C)
    _, grad = _objective(head, x, y, xe, ye, lam=lam)
    assert grad < 1e-5
    # The test can fail: the same head is far from stationary for other weightings.
    assert _objective(head, x, y, xe, ye, lam=lam * 2)[1] > 100 * grad
    assert _objective(head, x, y, xe, ye, lam=lam * len(xe) / len(x))[1] > 100 * grad
    assert _objective(head, x, y, xe, ye, lam=lam, wd=2 * WD)[1] > 100 * grad


def test_default_settings_reach_the_stated_tolerance():
    x, y, xe, ye = _problem()
    trainer = LinearHeadTrainer()  # weight decay 5e-4, mixed precision, tol 1e-4
    head = trainer.fit(x, y, extra_features=xe, extra_labels=ye, num_classes=C)
    zero = nn.Linear(D, C)
    nn.init.zeros_(zero.weight)
    nn.init.zeros_(zero.bias)
    scale = _objective(zero, x, y, xe, ye, wd=5e-4)[1]
    assert trainer.converged_
    assert _objective(head, x, y, xe, ye, wd=5e-4)[1] <= 1.5e-4 * scale
    assert trainer.grad_max_ <= 1e-4 * scale


def test_mixed_precision_finishes_in_float64_what_float32_cannot(caplog):
    x, y, xe, ye = _problem()
    kwargs = dict(extra_features=xe, extra_labels=ye, num_classes=C)
    single = LinearHeadTrainer(weight_decay=WD, precision="float32", tol=1e-7)
    with caplog.at_level("WARNING", logger="failmodes"):
        single.fit(x, y, **kwargs)
    assert not single.converged_
    assert "precision='mixed'" in caplog.text
    mixed = LinearHeadTrainer(weight_decay=WD, precision="mixed", tol=1e-7)
    head = mixed.fit(x, y, **kwargs)
    assert mixed.converged_ and mixed.n_iter_ > single.n_iter_
    assert _objective(head, x, y, xe, ye)[1] < 1e-5


def test_iteration_limit_is_reported(caplog):
    x, y, xe, ye = _problem()
    trainer = LinearHeadTrainer(max_iter=2, progress=True)
    with caplog.at_level("WARNING", logger="failmodes"):
        trainer.fit(x, y, extra_features=xe, extra_labels=ye, num_classes=C)
    assert not trainer.converged_ and trainer.n_iter_ == 2
    assert "stopped after 2 iterations" in caplog.text


def test_loss_and_gradient_are_exact_when_probabilities_underflow():
    # A very confident head (margins of hundreds of nats, one row labelled against it): the
    # reported loss and gradient must still be those of the stated objective. SGD with a
    # vanishing step returns the start itself, where loss_ and grad_max_ are evaluated.
    x, y, xe, ye = _problem()
    y = y.clone()
    y[0] = (y[0] + 1) % C
    confident = _fit(None, x, y, num_classes=C)
    with torch.no_grad():
        confident.weight *= 300
        confident.bias *= 300
    trainer = LinearHeadTrainer(solver="sgd", weight_decay=WD, epochs=1, lr=1e-30, momentum=0.0)
    head = trainer.fit(x, y, extra_features=xe, extra_labels=ye, init=confident)
    assert torch.equal(head.weight, confident.weight)
    loss, grad = _objective(head, x, y, xe, ye)
    assert trainer.loss_ == pytest.approx(loss, rel=1e-5)
    assert trainer.grad_max_ == pytest.approx(grad, rel=1e-4)


def test_float32_gradient_is_accurate_for_confident_rows():
    # Every row right with probability 1 - 1e-7 or so: in float32, 1 + 1e-7 rounds to 1, so a
    # gradient formed as softmax - one-hot would be mostly rounding. With no weight decay the
    # gradient is the data term alone; SGD with a vanishing step reports it at the start.
    g = torch.Generator().manual_seed(0)
    y = torch.arange(80) % C
    x = 5 * torch.randn(C, D, generator=g)[y] + torch.randn(80, D, generator=g)  # separable
    head = _fit(None, x, y, num_classes=C)
    with torch.no_grad():
        logits = head(x)
        margins = (logits.gather(1, y[:, None]) - logits).scatter(1, y[:, None], math.inf)
        factor = 16.0 / margins.min()  # every row: p(label) > 1 - 4e-7
        head.weight *= factor
        head.bias *= factor
    trainer = LinearHeadTrainer(solver="sgd", weight_decay=0.0, epochs=1, lr=1e-30)
    trainer.fit(x, y, init=head)
    loss, grad = _objective(head, x, y, wd=0.0)
    assert 1e-9 < grad < 1e-5
    assert trainer.grad_max_ == pytest.approx(grad, rel=1e-3)
    assert trainer.loss_ == pytest.approx(loss, rel=1e-3)


def test_loss_attribute_is_the_objective_at_the_returned_head():
    x, y, xe, ye = _problem()
    trainer = _trainer()
    head = trainer.fit(x, y, extra_features=xe, extra_labels=ye, lam=0.5, num_classes=C)
    assert trainer.loss_ == pytest.approx(_objective(head, x, y, xe, ye)[0], rel=1e-6)
    assert trainer.converged_
    assert 1 <= trainer.n_iter_ <= trainer.n_evals_
    assert torch.equal(trainer.head_.weight, head.weight)


def test_duplicating_the_extra_set_changes_nothing_because_it_is_a_mean():
    x, y, xe, ye = _problem()
    once = _fit(None, x, y, extra_features=xe, extra_labels=ye, num_classes=C)
    twice = _fit(
        None, x, y, extra_features=xe.repeat(2, 1), extra_labels=ye.repeat(2), num_classes=C
    )
    torch.testing.assert_close(once.weight, twice.weight, atol=1e-5, rtol=0)
    torch.testing.assert_close(once.bias, twice.bias, atol=1e-5, rtol=0)
    # The same holds for the train set; a smaller extra set, though, does change the head.
    more_train = _fit(
        None, x.repeat(2, 1), y.repeat(2), extra_features=xe, extra_labels=ye, num_classes=C
    )
    assert torch.allclose(once.weight, more_train.weight, atol=1e-5)
    fewer_extra = _fit(None, x, y, extra_features=xe[:8], extra_labels=ye[:8], num_classes=C)
    assert not torch.allclose(once.weight, fewer_extra.weight, atol=1e-3)


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_lam_zero_equals_no_extra_data(solver):
    x, y, xe, ye = _problem()
    trainer = _trainer(solver=solver, epochs=50)
    plain = trainer.fit(x, y, num_classes=C)
    zero = trainer.fit(x, y, extra_features=xe, extra_labels=ye, lam=0.0, num_classes=C)
    tiny = trainer.fit(x, y, extra_features=xe, extra_labels=ye, lam=1e-9, num_classes=C)
    assert torch.equal(plain.weight, zero.weight) and torch.equal(plain.bias, zero.bias)
    torch.testing.assert_close(plain.weight, tiny.weight, atol=1e-5, rtol=0)


def test_larger_lam_fits_the_extra_set_better_and_the_train_set_worse():
    x, y, xe, ye = _problem()
    low = _fit(None, x, y, extra_features=xe, extra_labels=ye, lam=0.5, num_classes=C)
    high = _fit(None, x, y, extra_features=xe, extra_labels=ye, lam=2.0, num_classes=C)
    with torch.no_grad():
        assert F.cross_entropy(high(xe), ye) < F.cross_entropy(low(xe), ye) - 1e-3
        assert F.cross_entropy(high(x), y) > F.cross_entropy(low(x), y) + 1e-3


def test_empty_extra_set_is_dropped():
    x, y, _, _ = _problem()
    plain = _fit(None, x, y, num_classes=C)
    empty = _fit(
        None,
        x,
        y,
        extra_features=torch.zeros(0, D),
        extra_labels=torch.zeros(0, dtype=torch.long),
        num_classes=C,
    )
    assert torch.equal(plain.weight, empty.weight)


def test_lbfgs_and_sgd_reach_the_same_objective():
    # With WD = 1e-2 the problem is well conditioned: 1000 full-batch SGD epochs converge.
    x, y, xe, ye = _problem(n=60, m=20)
    fast = LinearHeadTrainer(weight_decay=WD)  # default precision and tolerance
    paper = LinearHeadTrainer(solver="sgd", weight_decay=WD)  # the paper's other settings
    h_fast = fast.fit(x, y, extra_features=xe, extra_labels=ye, num_classes=C)
    h_sgd = paper.fit(x, y, extra_features=xe, extra_labels=ye, num_classes=C)
    f_fast = _objective(h_fast, x, y, xe, ye)[0]
    f_sgd = _objective(h_sgd, x, y, xe, ye)[0]
    assert f_fast <= f_sgd + 1e-6
    assert f_sgd == pytest.approx(f_fast, rel=1e-4)
    assert paper.loss_ == pytest.approx(f_sgd, rel=1e-5)
    assert fast.converged_ and paper.converged_ is None
    torch.testing.assert_close(h_fast.weight, h_sgd.weight, atol=1e-2, rtol=0)


def test_minibatch_sgd_descends_and_depends_on_seed():
    x, y, xe, ye = _problem()
    trainer = LinearHeadTrainer(solver="sgd", weight_decay=WD, epochs=20, batch_size=16, lr=0.05)
    a = trainer.fit(x, y, extra_features=xe, extra_labels=ye, num_classes=C, seed=1)
    b = trainer.fit(x, y, extra_features=xe, extra_labels=ye, num_classes=C, seed=1)
    c = trainer.fit(x, y, extra_features=xe, extra_labels=ye, num_classes=C, seed=2)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)
    zero = nn.Linear(D, C)
    nn.init.zeros_(zero.weight)
    nn.init.zeros_(zero.bias)
    assert _objective(a, x, y, xe, ye)[0] < 0.5 * _objective(zero, x, y, xe, ye)[0]


@pytest.mark.parametrize(
    "trainer",
    [
        LinearHeadTrainer(),
        LinearHeadTrainer(precision="float64"),
        LinearHeadTrainer(precision="float32"),
        LinearHeadTrainer(solver="sgd", epochs=30),
        LinearHeadTrainer(solver="sgd", epochs=3, batch_size=7),
    ],
    ids=["mixed", "float64", "float32", "sgd", "sgd-minibatch"],
)
def test_deterministic(trainer):
    x, y, xe, ye = _problem()
    heads = [
        trainer.fit(x, y, extra_features=xe, extra_labels=ye, num_classes=C, seed=3)
        for _ in range(2)
    ]
    assert torch.equal(heads[0].weight, heads[1].weight)
    assert torch.equal(heads[0].bias, heads[1].bias)


def test_float32_solver_stops_near_the_minimum_at_the_limit_of_its_precision():
    x, y, xe, ye = _problem()
    trainer = LinearHeadTrainer(weight_decay=WD, precision="float32", tol=1e-7)
    head = trainer.fit(x, y, extra_features=xe, extra_labels=ye, num_classes=C)
    best = _fit(None, x, y, extra_features=xe, extra_labels=ye, num_classes=C)
    assert trainer.n_iter_ < trainer.max_iter  # it stopped on its own, not on the limit
    assert _objective(head, x, y, xe, ye)[1] < 1e-3
    assert _objective(head, x, y, xe, ye)[0] == pytest.approx(
        _objective(best, x, y, xe, ye)[0], rel=1e-6
    )


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_init_is_copied_not_modified_and_used_as_start(solver):
    x, y, xe, ye = _problem()
    init = nn.Linear(D, C)
    before = copy.deepcopy(init.state_dict())
    trainer = LinearHeadTrainer(solver=solver, epochs=1, lr=1e-6, max_iter=1)
    head = trainer.fit(x, y, extra_features=xe, extra_labels=ye, init=init)
    for key, value in init.state_dict().items():
        assert torch.equal(value, before[key])
    assert head is not init and head.weight is not init.weight
    if solver == "sgd":  # one tiny step: still next to init, not next to zero
        torch.testing.assert_close(head.weight, init.weight, atol=1e-5, rtol=0)


def test_init_without_bias_and_start_does_not_change_the_minimum():
    x, y, xe, ye = _problem()
    from_zero = _fit(None, x, y, extra_features=xe, extra_labels=ye, num_classes=C)
    from_init = _fit(
        None, x, y, extra_features=xe, extra_labels=ye, init=nn.Linear(D, C, bias=False)
    )
    torch.testing.assert_close(from_zero.weight, from_init.weight, atol=1e-4, rtol=0)


def test_returns_a_fresh_float32_cpu_linear():
    x, y, _, _ = _problem()
    head = LinearHeadTrainer().fit(x.double(), y.int(), num_classes=C)
    assert type(head) is nn.Linear
    assert head.weight.dtype == head.bias.dtype == torch.float32
    assert head.weight.device.type == "cpu"
    assert (head.in_features, head.out_features) == (D, C)


def test_leaves_the_global_rng_alone_and_accepts_tensors_that_require_grad():
    x, y, xe, ye = _problem()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    LinearHeadTrainer().fit(x.requires_grad_(True), y, extra_features=xe, extra_labels=ye)
    assert torch.equal(torch.rand(3), expected)


def test_num_classes_is_inferred_or_taken_from_init():
    x, y, _, _ = _problem()
    assert LinearHeadTrainer().fit(x, y).out_features == C
    assert LinearHeadTrainer().fit(x, y, num_classes=C + 2).out_features == C + 2
    assert LinearHeadTrainer().fit(x, y, init=nn.Linear(D, C + 1)).out_features == C + 1


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    lam=st.floats(0.0, 4.0),
    n=st.integers(2, 40),
    m=st.integers(1, 20),
)
def test_stationary_for_random_problems(seed, lam, n, m):
    x, y, xe, ye = _problem(seed=seed, n=n, m=m, d=3, c=3)
    head = _trainer().fit(x, y, extra_features=xe, extra_labels=ye, lam=lam, num_classes=3)
    assert _objective(head, x, y, xe, ye, lam=lam)[1] < 1e-5


# ----------------------------------------------------------------------------- bad inputs


def _bad(**changes):
    x, y, xe, ye = _problem()
    kwargs = dict(features=x, labels=y, extra_features=xe, extra_labels=ye, num_classes=C)
    kwargs.update(changes)
    return kwargs


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (_bad(labels=torch.arange(79) % C), ValueError, "labels"),
        (_bad(extra_labels=torch.arange(5) % C), ValueError, "extra_labels"),
        (_bad(extra_features=torch.randn(24, D + 1)), ValueError, "extra_features"),
        (_bad(labels=torch.arange(80) % (C + 1)), ValueError, r"labels must lie in \[0, 4\)"),
        (_bad(labels=torch.arange(80) % C - 1), ValueError, "labels must lie"),
        (_bad(extra_labels=torch.full((24,), C)), ValueError, "extra_labels must lie"),
        (_bad(labels=(torch.arange(80) % C).float()), TypeError, "labels"),
        (_bad(lam=-0.1), ValueError, "lam"),
        (_bad(lam=math.nan), ValueError, "lam"),
        (_bad(features=torch.full((80, D), math.nan)), ValueError, "features contains NaN"),
        (_bad(extra_features=torch.full((24, D), math.inf)), ValueError, "extra_features"),
        (_bad(features=torch.randn(80)), ValueError, "features must be a 2-D"),
        (_bad(features=torch.zeros(0, D), labels=torch.zeros(0, dtype=int)), ValueError, "empty"),
        (_bad(extra_labels=None), ValueError, "extra_features was given without extra_labels"),
        (_bad(extra_features=None), ValueError, "extra_labels was given without extra_features"),
        (_bad(init=nn.Linear(D + 1, C)), ValueError, "init has in_features"),
        (_bad(init=nn.Linear(D, C + 1)), ValueError, "num_classes"),
        (_bad(init=nn.Conv1d(D, C, 1)), TypeError, "init"),
        (_bad(num_classes=0), ValueError, "num_classes"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        LinearHeadTrainer().fit(**kwargs)


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "adam"},
        {"weight_decay": -1.0},
        {"lr": 0.0},
        {"momentum": 1.0},
        {"epochs": 0},
        {"batch_size": 0},
        {"max_iter": 2.5},
        {"tol": -1e-3},
        {"history_size": 0},
        {"precision": "float16"},
    ],
)
def test_bad_hyper_parameters_raise_at_fit_naming_them(params):
    trainer = LinearHeadTrainer(**params)  # storing never raises
    name = next(iter(params))
    with pytest.raises(ValueError, match=name):
        trainer.fit(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))


# ----------------------------------------------------------------------------- patch_model


def test_patch_model_logits_equal_the_new_head_on_features():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(5, D), nn.ReLU())
    model = nn.Sequential(backbone, nn.Linear(D, C))
    images = torch.randn(10, 5)
    with torch.no_grad():
        features = backbone(images)
        old_logits = model(images)
    labels = torch.arange(10) % C
    head = LinearHeadTrainer().fit(features, labels, num_classes=C)
    patched = patch_model(model, head)
    with torch.no_grad():
        torch.testing.assert_close(patched(images), head(features))
        torch.testing.assert_close(model(images), old_logits)  # the original is untouched
    assert patched[1] is not head


def test_patch_model_by_name_and_shape_check():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, D)
            self.classifier = nn.Linear(D, C)
            self.aux = nn.Linear(D, 2)  # registered last: `name` picks the right one

        def forward(self, x):
            return self.classifier(torch.relu(self.fc(x)))

    model, head = Net(), nn.Linear(D, C)
    patched = patch_model(model, head, name="classifier")
    assert torch.equal(patched.classifier.weight, head.weight)
    assert torch.equal(patched.aux.weight, model.aux.weight)
    with pytest.raises(ValueError, match="shape"):
        patch_model(model, head)  # the last Linear (aux) is 6 -> 2


def test_exported_from_the_package():
    import failmodes

    assert failmodes.LinearHeadTrainer is LinearHeadTrainer
    assert failmodes.patch_model is patch_model
