"""Modes ranked against successes, and the guard that protects in-distribution accuracy."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch

from failmodes import Caption, FailureModes, FailureSet, Features, StaticProposer
from failmodes.heads.linear import LinearHeadTrainer
from failmodes.ranking import allocate, mode_counts, mode_stats, rank_values, wilson_interval
from failmodes.results import PreparedRun
from failmodes.steps import check_extra, lam_candidates, sample_successes, select_head


# ---------------------------------------------------------------- arithmetic
@pytest.mark.parametrize(
    ("failures", "total", "low", "high"),
    [
        # by hand: p = f/n, z = 1.96, centre = (p + z²/2n) / (1 + z²/n),
        # half = z sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)
        (31, 40, 0.6250, 0.8768),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 100, 0.0215, 0.1118),
    ],
)
def test_wilson_interval_against_hand_computed_cases(failures, total, low, high):
    got = wilson_interval(failures, total)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_of_nothing_is_everything_and_bad_counts_are_refused():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="failures <= total"):
        wilson_interval(3, 2)


def test_lift_and_excess_against_hand_computed_cases():
    # a class with 100 failures among 1,000 images: base rate 0.1
    table = mode_stats(
        {"in a jungle": (31, 40), "on a table": (40, 400), "in snow": (2, 60)},
        class_failures=100,
        class_total=1000,
    ).set_index("value")
    assert table.loc["in a jungle", "failure_rate"] == pytest.approx(0.775)
    assert table.loc["in a jungle", "lift"] == pytest.approx(7.75)
    assert table.loc["in a jungle", "excess"] == pytest.approx(31 - 40 * 0.1)  # 27
    assert table.loc["on a table", "lift"] == pytest.approx(1.0)
    assert table.loc["on a table", "excess"] == pytest.approx(0.0)
    assert table.loc["in snow", "excess"] == pytest.approx(2 - 6.0)  # fails less than usual
    assert set(table["base_rate"]) == {0.1}


def test_rank_by_counts_prefers_the_frequent_value_and_by_excess_the_rare_failing_one():
    table = mode_stats(
        {"on a table": (40, 400), "in a jungle": (31, 40)}, class_failures=100, class_total=1000
    )
    assert rank_values(table, rank="count") == ["on a table", "in a jungle"]
    assert rank_values(table, rank="excess") == ["in a jungle", "on a table"]
    with pytest.raises(ValueError, match="rank must be one of"):
        rank_values(table, rank="lift")


# ---------------------------------------------------------------- FailureModes
def _fox(failed, succeeded=(), *, candidates, k, **options) -> FailureModes:
    """Class fox's captioned failures (all predicted owl) and successes, by their values."""
    n, m = len(failed), len(succeeded)
    successes = (np.arange(n, n + m), np.zeros(m, dtype=int), [Caption(v, 0.9) for v in succeeded])
    return FailureModes.from_captions(
        class_names=["fox", "owl"],
        attribute="background",
        indices=np.arange(n),
        labels=np.zeros(n, dtype=int),
        predictions=np.ones(n, dtype=int),
        captions=[Caption(v, 0.9) for v in failed],
        candidates={"fox": candidates, "owl": ["in a den"]},
        k=k,
        successes=successes if m else None,
        **options,
    )


def _modes(rank: str, significant: bool = False, k: int = 1) -> FailureModes:
    """Fox: "on a table" fails 6 of 60, "in a jungle" 4 of 5; its usual den 30 of 30 right.

    Successes: 54 on a table, 1 in a jungle, 30 in a den (usual), 5 uncaptioned.
    """
    return _fox(
        ["on a table"] * 6 + ["in a jungle"] * 4,
        ["on a table"] * 54 + ["in a jungle"] + ["in a den"] * 30 + [None] * 5,
        candidates=["on a table", "in a jungle"],
        k=k,
        usual={"fox": "in a den"},
        rank=rank,
        significant=significant,
    )


def test_stats_count_the_usual_value_and_uncaptioned_images_in_the_base_rate_only():
    stats = _modes("excess").stats().set_index("value")
    assert list(stats.index) == ["on a table", "in a jungle"]  # the usual value is no mode
    assert stats.loc["on a table", ["failures", "total"]].tolist() == [6, 60]
    assert stats.loc["in a jungle", ["failures", "total"]].tolist() == [4, 5]
    assert stats["base_rate"].iloc[0] == pytest.approx(10 / 100)  # 10 failures of 100 images
    assert stats.loc["in a jungle", "lift"] == pytest.approx(0.8 / 0.1)


def test_excess_and_count_rank_the_same_captions_differently():
    assert _modes("count").modes == {"fox": ["on a table"]}
    assert _modes("excess").modes == {"fox": ["in a jungle"]}
    by_excess = _modes("excess")
    assert dataclasses.replace(by_excess, rank="count").top_k(1) == {"fox": ["on a table"]}


def test_descriptions_give_the_failure_rate_against_the_class():
    [line] = _modes("excess").describe()
    assert line == "fox in a jungle \u2192 predicted owl (4 of 5 fail, 8.0\u00d7 the class's rate)"
    frame = _modes("excess").to_frame()
    assert {"total", "failure_rate", "lift", "excess", "ci_low", "ci_high"} <= set(frame)
    row = frame[frame["value"] == "in a jungle"].iloc[0]
    assert row["total"] == 5 and row["excess"] == pytest.approx(4 - 0.5)


def test_without_successes_descriptions_and_ranking_are_the_papers():
    modes = _fox(
        ["in snow", "in snow", "in a den"], candidates=["in a den", "in snow"], k=1, rank="excess"
    )
    assert modes.modes == {"fox": ["in snow"]}
    assert modes.describe() == ["fox in snow \u2192 predicted owl (2 failures)"]
    assert "lift" not in modes.to_frame()


def test_significant_keeps_only_values_clearly_above_the_base_rate():
    modes = _modes("excess", significant=True, k=2)
    assert modes.modes == {"fox": ["in a jungle"]}  # 4 of 5 clears 0.1; 6 of 60 does not


def test_significant_falls_back_to_the_top_k_with_a_warning():
    # "on a table" fails 2 of 6, "in a jungle" 1 of 6, the usual den 0 of 6: base rate 3 / 18;
    # only the table fails beyond it, and too rarely to be sure
    failed = ["on a table", "on a table", "in a jungle"]
    succeeded = ["on a table"] * 4 + ["in a jungle"] * 5 + ["in a den"] * 6
    with pytest.warns(UserWarning, match="no value whose failure rate is clearly above"):
        modes = _fox(
            failed,
            succeeded,
            candidates=["on a table", "in a jungle"],
            k=2,
            usual={"fox": "in a den"},
            rank="excess",
            significant=True,
        )
    assert modes.modes == {"fox": ["on a table"]}  # the jungle fails at the class's rate


def test_by_excess_only_values_failing_beyond_their_class_are_modes():
    modes = _modes("excess", k=5)
    stats = modes.stats().set_index("value")
    assert stats.loc["on a table", "excess"] == pytest.approx(0.0)
    assert modes.modes == {"fox": ["in a jungle"]}
    assert _modes("count", k=5).modes == {"fox": ["on a table", "in a jungle"]}


def test_an_unknown_rank_is_refused():
    with pytest.raises(ValueError, match="rank must be one of"):
        _modes("lift")


# ---------------------------------------------------------------- successes, usual values
def test_successes_are_a_seeded_half_of_each_class_outside_the_validation_part():
    labels = np.repeat([0, 1], 50)
    predictions = labels.copy()
    predictions[[0, 1, 60]] = 1 - labels[[0, 1, 60]]  # three failures
    failures = FailureSet(
        labels,
        predictions,
        validation=np.arange(40, 60),
        seed=np.array([0, 60]),
        heldout=np.array([1]),
    )
    chosen = sample_successes(failures, seed=0)
    assert len(set(chosen) & set(range(40, 60))) == 0
    assert (predictions[chosen] == labels[chosen]).all()
    # class 0: 40 outside the validation part, 2 failures; class 1: 40 outside, 1 failure
    assert np.bincount(labels[chosen]).tolist() == [(40 - 2) // 2, (40 - 1) // 2]
    assert sample_successes(failures, seed=0).tolist() == chosen.tolist()
    assert sample_successes(failures, seed=1).tolist() != chosen.tolist()


def test_static_proposer_usual_values():
    proposer = StaticProposer({"fox": ["in snow"]}, usual={"fox": "in a den"})
    assert proposer.usual_values(["fox", "owl"]) == {"fox": "in a den"}
    assert StaticProposer({"fox": ["in snow"]}).usual_values(["fox"]) == {}
    with pytest.raises(TypeError, match=r"StaticProposer\(usual=...\) must be a mapping"):
        StaticProposer({"fox": ["in snow"]}, usual={"fox": ""}).usual_values(["fox"])


# ---------------------------------------------------------------- guard and extra sets
def _prepared(guard_like_train: bool = True) -> tuple[PreparedRun, Features]:
    """Two classes in 2-D; the generated images sit where class 1's guard images are."""
    rng = np.random.default_rng(0)

    def cloud(centre, n):
        return torch.tensor(rng.normal(centre, 0.3, (n, 2)), dtype=torch.float32)

    train = Features(torch.cat([cloud((2, 0), 40), cloud((0, 2), 40)]), np.repeat([0, 1], 40))
    debug_x = torch.cat([cloud((2, 0), 30), cloud((0, 2), 20), cloud((1.2, 1.2), 10)])
    debug = Features(debug_x, np.array([0] * 30 + [1] * 30))
    head = LinearHeadTrainer().fit(train.features, torch.as_tensor(train.labels), num_classes=2)
    preds = head(debug.features).argmax(1).numpy()
    validation = np.arange(0, 60, 3)
    val_fail = validation[preds[validation] != debug.labels[validation]]
    failures = FailureSet(
        debug.labels, preds, validation, np.array([], dtype=int), np.array([], dtype=int)
    )
    splits = {"validation": debug.select(validation), "validation_failures": debug.select(val_fail)}
    guard = Features(torch.cat([cloud((2, 0), 50), cloud((0, 2), 50)]), np.repeat([0, 1], 50))
    prep = PreparedRun(train, debug, None, head, failures, splits, guard=guard)
    generated = Features(cloud((0.5, 1.8), 60), np.zeros(60, dtype=int))  # class 0 on class 1
    return prep, generated


def test_no_chosen_candidate_loses_more_than_the_guard_tolerance():
    prep, generated = _prepared()
    trainer = LinearHeadTrainer()
    before = (prep.head(prep.guard.features).argmax(1).numpy() == prep.guard.labels).mean()
    for tolerance in (0.0, 0.01, 0.05, 0.2):
        pick = select_head(
            trainer,
            prep,
            generated,
            lam_candidates(60, [0.1, 1.0, 10.0]),
            guard_tolerance=tolerance,
        )
        after = (pick.head(prep.guard.features).argmax(1).numpy() == prep.guard.labels).mean()
        assert after >= before - tolerance - 1e-12
        assert "guard_acc" in pick.table
        if pick.settings.get("kept_original"):
            assert pick.head is prep.head
            assert (pick.table["guard_acc"] < before - tolerance).all()


def test_a_guard_that_refuses_every_candidate_keeps_the_original_head():
    prep, generated = _prepared()
    pick = select_head(
        LinearHeadTrainer(), prep, generated, lam_candidates(60, [10.0, 50.0]), guard_tolerance=0.0
    )
    assert pick.settings["kept_original"] is True
    assert pick.head is prep.head
    assert not pick.table["eligible"].any()


def test_without_a_guard_the_selection_is_unchanged():
    prep, generated = _prepared()
    bare = dataclasses.replace(prep, guard=None)
    pick = select_head(LinearHeadTrainer(), bare, generated, lam_candidates(60, [0.1, 1.0]))
    assert "guard_acc" not in pick.table and "kept_original" not in pick.settings


@pytest.mark.parametrize(
    ("extra", "error", "says"),
    [
        ([1, 2], TypeError, "extra must be a mapping"),
        ({"": 1}, TypeError, "non-empty strings"),
        ({"test": 1}, ValueError, "'test' is taken"),
        ({"guard": 1}, ValueError, "'guard' is taken"),
    ],
)
def test_extra_sets_need_new_names(extra, error, says):
    with pytest.raises(error, match=says):
        check_extra(extra)


def test_guard_tolerance_must_be_a_share():
    prep, generated = _prepared()
    for bad in (-0.1, math.nan, 2.0):
        with pytest.raises(ValueError, match="guard_tolerance must be"):
            select_head(
                LinearHeadTrainer(), prep, generated, lam_candidates(60, [1.0]), guard_tolerance=bad
            )


def test_no_warning_without_significant():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _modes("excess", k=2)


# ---------------------------------------------------------------- sharing the images
def test_allocate_shares_in_proportion_and_sums_to_the_total():
    assert allocate([3.0, 1.0, 0.0], 10) == [8, 2, 0]  # 7.5, 2.5, 0: the tie goes first
    assert allocate([1.0, 1.0, 1.0], 10) == [4, 3, 3]
    assert allocate([-2.0, 0.0], 5) == [3, 2]  # nothing positive: evenly
    assert allocate([], 5) == []
    for weights in ([0.2, 5.0, 1.1, 0.0], [1e-9, 1.0]):
        assert sum(allocate(weights, 17)) == 17


def test_mode_counts_even_and_by_excess():
    ranked = {"fox": ["in a jungle", "on a table", "in snow"], "owl": ["at noon"]}
    assert mode_counts(ranked, k=2, images_per_mode=5) == {
        ("fox", "in a jungle"): 5,
        ("fox", "on a table"): 5,
        ("owl", "at noon"): 5,
    }
    weights = {
        "fox": {"in a jungle": 27.0, "on a table": 3.0, "in snow": 0.0},
        "owl": {"at noon": -1.0},
    }
    assert mode_counts(ranked, k=2, images_per_mode=5, weights=weights) == {
        ("fox", "in a jungle"): 9,
        ("fox", "on a table"): 1,
        ("owl", "at noon"): 5,
    }


def test_a_proposer_knows_no_usual_value_unless_it_says_so():
    from failmodes import BackgroundProposer

    class AtNight(BackgroundProposer):
        def propose(self, class_names, *, attribute="background"):
            return {name: ["at night"] for name in class_names}

    assert AtNight().usual_values(["fox"]) == {}
