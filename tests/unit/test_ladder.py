"""The repair ladder: the debug set's own images (DFR), generated images on top, each weighed.

The objective a head is refit on is ``mean CE(train) + lam_real * mean CE(real) + lam * mean
CE(generated)`` plus the trainer's penalty; these tests hold the trainer and the steps to it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from failmodes import Debugger, Features, HeadTrainer, LinearHeadTrainer
from failmodes.steps import fit_head, real_set

WEIGHT_DECAY = 1e-2


def _data(n: int, d: int = 5, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def _objective(head, sets, weight_decay=WEIGHT_DECAY):
    """The objective written out by hand: ``sum of weight * mean CE`` plus the L2 penalty."""
    total = sum(
        weight * torch.nn.functional.cross_entropy(head(x.double()), y) for x, y, weight in sets
    )
    params = head.weight.square().sum() + head.bias.square().sum()
    return total + weight_decay / 2 * params


def _gradient(head, sets) -> float:
    """The largest entry of the hand-written objective's gradient at ``head``."""
    params = [p.detach().double().requires_grad_() for p in (head.weight, head.bias)]
    probe = torch.nn.Linear(head.in_features, head.out_features).double()
    probe.weight, probe.bias = (torch.nn.Parameter(p) for p in params)
    _objective(probe, sets).backward()
    return max(float(p.grad.abs().max()) for p in (probe.weight, probe.bias))


def test_the_fitted_head_minimises_the_objective_written_out_by_hand():
    train, generated, real = _data(60), _data(40, seed=1), _data(10, seed=2)
    trainer = LinearHeadTrainer(weight_decay=WEIGHT_DECAY, precision="float64")
    head = trainer.fit(
        *train,
        extra_features=generated[0],
        extra_labels=generated[1],
        lam=0.7,
        extras=[(real[0], real[1], 2.5)],
    )
    sets = [(*train, 1.0), (*generated, 0.7), (*real, 2.5)]
    assert _gradient(head, sets) < 1e-4  # a minimum of the objective with every weight
    assert _gradient(head, sets[:2]) > 1e-2  # and not of the objective without the real term
    assert _gradient(head, [(*train, 1.0), (*generated, 0.7), (*real, 1.0)]) > 1e-2


def test_a_set_given_twice_weighs_as_one_set_with_the_weights_added():
    train, extra = _data(60), _data(30, seed=1)
    trainer = LinearHeadTrainer(weight_decay=WEIGHT_DECAY, precision="float64", tol=1e-10)
    twice = trainer.fit(
        *train,
        extra_features=extra[0],
        extra_labels=extra[1],
        lam=0.5,
        extras=[(extra[0], extra[1], 1.5)],
    )
    once = trainer.fit(*train, extra_features=extra[0], extra_labels=extra[1], lam=2.0)
    torch.testing.assert_close(twice.weight, once.weight, atol=1e-5, rtol=0)
    as_extras = trainer.fit(*train, extras=[(extra[0], extra[1], 2.0)])
    torch.testing.assert_close(as_extras.weight, once.weight, atol=1e-5, rtol=0)


def test_an_extra_set_is_checked_like_the_first():
    train, extra = _data(20), _data(5, seed=1)
    trainer = LinearHeadTrainer()
    with pytest.raises(ValueError, match=r"extras\[0\] weight must be a finite number >= 0"):
        trainer.fit(*train, extras=[(extra[0], extra[1], -1.0)])
    with pytest.raises(ValueError, match=r"extras\[0\] features has dimension 2"):
        trainer.fit(*train, extras=[(extra[0][:, :2], extra[1], 1.0)])
    with pytest.raises(TypeError, match=r"extras\[0\] must be \(features, labels, weight\)"):
        trainer.fit(*train, extras=[(extra[0], extra[1])])


def _features(n, seed):
    x, y = _data(n, seed=seed)
    return Features(x, y.numpy())


def test_generated_images_weighing_nothing_give_the_dfr_rungs_head():
    train, generated, real = _features(60, 0), _features(40, 1), _features(10, 2)
    init = torch.nn.Linear(5, 3)
    trainer = LinearHeadTrainer()
    dfr = fit_head(trainer, init, train, real=real, lam_real=1.5)
    with_nothing_generated = fit_head(
        trainer, init, train, generated, lam=0.0, real=real, lam_real=1.5
    )
    assert torch.equal(dfr.weight, with_nothing_generated.weight)
    both = fit_head(trainer, init, train, generated, lam=1.0, real=real, lam_real=1.5)
    assert not torch.equal(both.weight, dfr.weight)


class TodaysTrainer(HeadTrainer):
    """A trainer written for the signature before real images: one extra set, no ``extras``."""

    def fit(
        self,
        features,
        labels,
        *,
        extra_features=None,
        extra_labels=None,
        lam=0.5,
        init=None,
        num_classes=None,
        seed=0,
    ):
        return LinearHeadTrainer().fit(
            features,
            labels,
            extra_features=extra_features,
            extra_labels=extra_labels,
            lam=lam,
            init=init,
            num_classes=num_classes,
            seed=seed,
        )


def test_a_trainer_without_extras_fits_one_set_and_is_refused_two_with_the_signature():
    train, generated, real = _features(60, 0), _features(40, 1), _features(10, 2)
    init = torch.nn.Linear(5, 3)
    old, new = TodaysTrainer(), LinearHeadTrainer()
    for kwargs in ({"real": real, "lam_real": 1.0}, {"extra": generated, "lam": 1.0}):
        assert torch.equal(
            fit_head(old, init, train, **kwargs).weight, fit_head(new, init, train, **kwargs).weight
        )
    with pytest.raises(TypeError, match=r"does not take extras.*extras=\(\)"):
        fit_head(old, init, train, generated, lam=1.0, real=real, lam_real=1.0)


def test_the_real_set_is_the_debug_seed_failures_and_never_heldout_or_validation():
    from failmodes import FailureSet

    labels = np.arange(40) % 2
    predictions = np.where(np.arange(40) < 24, 1 - labels, labels)  # the first 24 fail
    failures = FailureSet(
        labels,
        predictions,
        validation=np.arange(24, 32),
        seed=np.arange(0, 24, 2),
        heldout=np.arange(1, 24, 2),
    )
    debug = Features(torch.arange(40.0)[:, None], labels)
    real = real_set(failures, debug)
    assert real.features[:, 0].int().tolist() == list(range(0, 24, 2))
    both = real_set(failures, debug, which="failures_and_successes", seed=0)
    rows = set(both.features[:, 0].int().tolist())
    assert set(range(0, 24, 2)) < rows and not rows & (set(range(1, 24, 2)) | set(range(24, 32)))
    assert len(rows) == 12 + 4  # half of the 8 successes outside the validation part
    assert real_set(failures, debug, which=None) is None
    with pytest.raises(ValueError, match="real must be one of"):
        real_set(failures, debug, which="everything")


@pytest.fixture(scope="module")
def small_world():
    pytest.importorskip("open_clip")
    from failmodes.toyworld import ToyWorld

    world = ToyWorld(seed=5)
    return world, world.train(20), world.debug(400), world.test(200), world.train_like(200)


def _components(world, train, **changes):
    from failmodes.toyworld import demo_components

    settings = dict(cache=False, train=train, k=[1, 2], lam=[0.5, 2.0], images_per_mode=[4])
    return demo_components(world, **{**settings, **changes})


def test_a_run_has_every_rung_and_no_repair_below_the_guard(small_world):
    world, train, debug, test, guard = small_world
    result = Debugger(**_components(world, train)).run(train, debug, test, seed=0, guard=guard)
    acc = result.accuracy
    assert list(acc) == ["before", "dfr", "failmodes", "random", "uniform", "refit"]
    before = acc["before"]["guard"]
    for method in ("dfr", "failmodes", "random", "uniform"):  # every repair chosen is guarded
        assert acc[method]["guard"] >= before - 0.01 - 1e-12, method
    assert result.chosen in ("dfr", "failmodes")
    summary = result.summary()
    assert summary["chosen_method"] == result.chosen and "dfr_heldout_acc_after" in summary
    rows = result.selection
    assert set(rows.method) == {"dfr", "failmodes", "random", "uniform"}
    assert (rows[rows.method == "dfr"].lam == 0).all()
    assert set(rows[rows.method == "failmodes"].lam_real) == {0.0, 0.25, 0.5, 1.0, 2.0}


def test_real_none_is_the_papers_repair(small_world):
    world, train, debug, test, _ = small_world
    result = Debugger(**_components(world, train, real=None)).run(
        train, debug, test, seed=0, guard=False
    )
    assert "dfr" not in result.accuracy and result.chosen is None
    assert "lam_real" not in result.selection and "chosen_method" not in result.summary()


def test_a_run_with_a_trainer_without_extras_leaves_out_the_candidates_that_weigh_both(
    small_world,
):
    world, train, debug, test, _ = small_world
    dbg = Debugger(**_components(world, train, head_trainer=TodaysTrainer()))
    with pytest.warns(UserWarning, match="does not take extras"):
        result = dbg.run(train, debug, test, seed=0, guard=False)
    rows = result.selection
    assert set(rows[rows.method == "failmodes"].lam_real) == {0.0}
    assert set(rows[rows.method == "dfr"].lam_real) == {0.25, 0.5, 1.0, 2.0}


def test_the_proxy_guard_is_held_out_of_every_refit(small_world):
    world, train, debug, test, _ = small_world
    dbg = Debugger(**_components(world, train))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: the proxy guard is the plain default
        prep = dbg.prepare(train, debug, test, seed=0)
    assert prep.guard_source == "train" and prep.guard_head is not None
    assert len(prep.train) + len(prep.guard) == len(train)


def test_a_run_whose_guard_refuses_every_candidate_says_so_in_its_report(small_world, tmp_path):
    world, train, debug, test, guard = small_world
    dbg = Debugger(**_components(world, train, guard_tolerance=0.0, baselines=False))
    with pytest.warns(UserWarning, match="the guard refused every candidate of .*failmodes"):
        result = dbg.run(train, debug, test, seed=0, guard=guard)
    assert (
        result.summary()["kept_original"]
        and "original head was kept" in (result.summary()["ladder"])
    )
    assert torch.equal(result.heads["failmodes"].weight, result.heads["before"].weight)
    page = result.report(tmp_path / "report.html").read_text()
    assert "<b>The original head was kept</b> for" in page and "failmodes" in page
    rows = result.selection
    refused = rows[rows.method == "failmodes"]
    assert not refused.chosen.any()  # no refused row is marked as chosen
    assert page.count('class="chosen"') == int(rows.chosen.sum())
    assert "when the guard refuses every candidate, the original head is kept" in page
