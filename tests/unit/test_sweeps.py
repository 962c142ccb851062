"""Sweeps of lambda and k on the validation part of the debug set (ToyWorld, demo components)."""

from __future__ import annotations

import pytest

pytest.importorskip("open_clip")

from failmodes import Debugger  # noqa: E402
from failmodes.sweeps import sweep_k, sweep_lam  # noqa: E402
from failmodes.toyworld import ToyWorld, demo_components  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    world = ToyWorld(seed=8)
    dbg = Debugger(**demo_components(world, k=[3], lam=[0.5], images_per_mode=[10]))
    return dbg, world.train(50), world.debug(1500)


def test_lam_sweep_matches_single_repairs(setup):
    dbg, train, debug = setup
    result = sweep_lam(dbg, train, debug, [0.0, 0.5, 2.0])
    table = result.to_frame()
    assert table["lam"].tolist() == [0.0, 0.5, 2.0]
    assert (table["k"] == 3).all() and (table["n_generated"] == table["n_generated"][0]).all()
    # lam = 0 ignores the generated images: the original head's objective, the same accuracy
    assert table["val_acc"][0] == pytest.approx(table["val_acc_before"][0], abs=0.01)
    # more weight on the failure modes' images helps the validation failures (figure 5a)
    assert table["val_failure_acc"][2] > table["val_failure_acc"][0]


def test_k_sweep_uses_prefixes_of_the_ranked_modes(setup):
    dbg, train, debug = setup
    table = sweep_k(dbg, train, debug, [1, 2, 3], lam=1.0).to_frame()
    assert table["k"].tolist() == [1, 2, 3]
    assert table["n_generated"].is_monotonic_increasing
    assert table["val_failure_acc"][2] >= table["val_failure_acc"][0]  # figure 5b's trend


def test_sweep_values_are_checked_and_plotted(setup, tmp_path):
    dbg, train, debug = setup
    with pytest.raises(ValueError, match="lam >= 0"):
        sweep_lam(dbg, train, debug, [-1.0])
    with pytest.raises(ValueError, match="k >= 1"):
        sweep_k(dbg, train, debug, [0])
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    ax = sweep_lam(dbg, train, debug, [0.5, 1.0]).plot()
    ax.figure.savefig(tmp_path / "sweep.png")
    assert len(ax.lines) == 3
