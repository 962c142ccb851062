"""Failure overlap across models: the IoU matrix, its means per category, and its heatmap."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failmodes.collective import (
    compare,
    failure_iou,
    failure_masks,
    mean_iou,
    plot_failure_iou,
    pooled_modes,
)


def test_iou_by_hand():
    frame = failure_iou(
        {"r20": [1, 1, 0, 0, 1], "r56": [1, 1, 0, 0, 0], "vit": [0, 0, 1, 1, 1]},
        categories={"r20": "ResNet", "r56": "ResNet", "vit": "ViT"},
    )
    assert frame.loc["r20", "r56"] == pytest.approx(2 / 3)
    assert frame.loc["r20", "vit"] == pytest.approx(1 / 5)
    assert frame.loc["r56", "vit"] == 0.0
    means = mean_iou(frame)
    assert means["same_category"] == pytest.approx(2 / 3)
    assert means["cross_category"] == pytest.approx(0.1)
    assert (means["pairs_same"], means["pairs_cross"]) == (1, 2)


def test_masks_from_predictions_and_bad_input():
    masks = failure_masks({"a": [0, 1, 2], "b": [0, 0, 0]}, labels=[0, 1, 1])
    assert masks["a"].tolist() == [False, False, True]
    with pytest.raises(ValueError, match="same debug set"):
        failure_masks({"a": [0, 1]}, labels=[0, 1, 1])
    with pytest.raises(ValueError, match="different lengths"):
        failure_iou({"a": [1, 0], "b": [1, 0, 1]})
    with pytest.raises(ValueError, match="no category for models"):
        failure_iou({"a": [1], "b": [1]}, categories={"a": "x"})
    with pytest.raises(ValueError, match="needs categories"):
        mean_iou(failure_iou({"a": [1], "b": [1]}))
    with pytest.raises(ValueError, match="empty"):
        failure_iou({})
    with pytest.raises(ValueError, match=r"no category for the models \['b'\]"):
        mean_iou(failure_iou({"a": [1, 0], "b": [1, 1]}), categories={"a": "cnn"})
    with pytest.raises(ValueError, match="at least one model"):
        pooled_modes({}, k=3)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=5))
def test_iou_properties(rows):
    frame = failure_iou({f"m{i}": row for i, row in enumerate(rows)})
    values = frame.to_numpy()
    assert np.allclose(values, values.T)
    assert ((values >= 0) & (values <= 1)).all()
    for i, row in enumerate(rows):
        assert values[i, i] == (1.0 if any(row) else 0.0)
        for j, other in enumerate(rows):
            a, b = np.array(row), np.array(other)
            union = (a | b).sum()
            assert values[i, j] == pytest.approx((a & b).sum() / union if union else 0.0)


def test_heatmap_draws_one_cell_per_pair(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    frame = failure_iou(
        {"a": [1, 0, 1], "b": [1, 1, 0], "c": [0, 1, 1]},
        categories={"a": "CNN", "b": "ViT", "c": "CNN"},
    )
    ax = plot_failure_iou(frame)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a (CNN)", "c (CNN)", "b (ViT)"]
    assert len(ax.texts) == 9
    ax.figure.savefig(tmp_path / "iou.png")
    assert (tmp_path / "iou.png").stat().st_size > 0


@pytest.fixture(scope="module")
def two_models():
    pytest.importorskip("open_clip")
    from failmodes import Debugger
    from failmodes.toyworld import ToyWorld, demo_components, toy_classifier
    from failmodes.toyworld.model import load_backbone

    world = ToyWorld(seed=7)
    train, debug, test = world.train(30), world.debug(1500), world.test(500)
    backbone = load_backbone()
    debuggers, results = {}, {}
    for name, per_class in (("head30", 30), ("head15", 15)):
        model = toy_classifier(world, per_class=per_class, backbone=backbone)
        settings = demo_components(world, k=[2, 3], lam=[0.5, 2.0], images_per_mode=[10])
        from failmodes import TorchExtractor

        settings["extractor"] = TorchExtractor(model, batch_size=500)
        debuggers[name] = Debugger(**settings)
        results[name] = debuggers[name].run(train, debug, test, seed=0)
    return debuggers, results, (train, debug, test)


def test_pooled_modes_count_each_models_failures(two_models):
    from failmodes.collective import pooled_modes

    _, results, _ = two_models
    pooled = pooled_modes(results, k=2)
    assert pooled and all(len(values) == 2 for values in pooled.values())
    for name, values in pooled.items():
        counts = Counter()
        for result in results.values():
            modes = result.modes
            for label, caption in zip(modes.labels, modes.captions, strict=True):
                if modes.class_names[int(label)] == name and caption.value is not None:
                    counts[caption.value] += 1
        assert [counts[v] for v in values] == sorted(counts.values(), reverse=True)[: len(values)]


def test_source_repair_gives_the_source_its_own_gain(two_models):
    from failmodes.collective import collective_repair

    debuggers, results, data = two_models
    out = collective_repair(debuggers, results, *data, kind="source", source="head30")
    table = out.table
    assert table.loc["head30", "collective_gain"] == pytest.approx(
        table.loc["head30", "individual_gain"]
    )
    assert out.modes == results["head30"].modes.top_k(results["head30"].config["k"])
    other = table.loc["head15"]
    assert out.ratio == pytest.approx(other["collective_gain"] / other["individual_gain"])
    assert other["collective_gain"] > 0  # the other model's heldout failures improve too
    pooled = collective_repair(debuggers, results, *data, kind="pooled")
    assert pooled.source is None and len(pooled.table) == 2
    assert pooled.ratio == pytest.approx(
        pooled.table["collective_gain"].sum() / pooled.table["individual_gain"].sum()
    )


def test_collective_repair_arguments_are_checked(two_models):
    from failmodes.collective import collective_repair

    debuggers, results, data = two_models
    with pytest.raises(ValueError, match="kind must be"):
        collective_repair(debuggers, results, *data, kind="both")
    with pytest.raises(ValueError, match="not one of the models"):
        collective_repair(debuggers, results, *data, kind="source", source="nope")
    with pytest.raises(ValueError, match="no RunResult"):
        collective_repair(debuggers, {"head30": results["head30"]}, *data)
    with pytest.raises(ValueError, match="images_per_mode must be a positive integer, got 2.5"):
        collective_repair(debuggers, results, *data, images_per_mode=2.5)


# ---------------------------------------------------------------- compare
def _run_of(predictions, labels, groups, seed_part, names=("circle", "square", "star")):
    """A RunResult whose debug_seed failures and sampled successes are captioned with the truth."""
    from failmodes import Caption, FailureModes, FailureSet, RunResult

    labels, predictions = np.asarray(labels), np.asarray(predictions)
    failures = FailureSet(
        labels,
        predictions,
        validation=np.array([], dtype=int),
        seed=np.asarray(seed_part),
        heldout=np.array([], dtype=int),
    )
    right = np.flatnonzero(predictions == labels)
    modes = FailureModes.from_captions(
        class_names=list(names),
        attribute="background",
        indices=failures.seed,
        labels=labels[failures.seed],
        predictions=predictions[failures.seed],
        captions=[Caption(groups[i], 1.0) for i in failures.seed],
        candidates={n: ["on rock", "in fog", "on sand"] for n in names},
        k=1,
        successes=(right, labels[right], [Caption(groups[i], 1.0) for i in right]),
        rank="excess",
    )
    return RunResult(
        class_names=list(names),
        attribute="background",
        accuracy={},
        group_accuracy={},
        failures=failures,
        modes=modes,
        generated=None,
        selection=None,
        config={},
    )


def test_compare_finds_each_models_own_cue():
    rng = np.random.default_rng(0)
    n = 600
    labels = np.arange(n) % 3
    groups = [["on rock", "in fog", "on sand"][j] for j in rng.integers(3, size=n)]
    # model a learned "rock means circle": squares and stars on rock are called circles;
    # model b learned "fog means star": circles and squares in fog are called stars
    pred_a = np.where((np.array(groups) == "on rock") & (labels != 0), 0, labels)
    pred_b = np.where((np.array(groups) == "in fog") & (labels != 2), 2, labels)
    flip = rng.random(n) < 0.03  # a little noise for both
    pred_a[flip], pred_b[flip] = (labels[flip] + 1) % 3, (labels[flip] + 1) % 3
    run_a = _run_of(pred_a, labels, groups, np.flatnonzero(pred_a != labels)[::2])
    run_b = _run_of(pred_b, labels, groups, np.flatnonzero(pred_b != labels)[::2])
    comparison = compare(run_a, run_b, names=("cnn", "mixer"))
    clear = comparison.table[comparison.table["fails"].notna()]
    found = set(zip(clear["class"], clear["value"], clear["fails"], strict=True))
    assert found == {
        ("square", "on rock", "cnn"),
        ("star", "on rock", "cnn"),
        ("circle", "in fog", "mixer"),
        ("square", "in fog", "mixer"),
    }
    lines = comparison.describe()
    assert len(lines) == 4
    assert any(line.startswith("cnn fails on square on rock, mixer does not: ") for line in lines)
    assert any(line.startswith("mixer fails on circle in fog, cnn does not: ") for line in lines)
    row = comparison.table.set_index(["class", "value"]).loc[("square", "on rock")]
    assert row["failures_cnn"] > 0.8 * row["total"] and row["ci_low_cnn"] > row["ci_high_mixer"]


def test_compare_refuses_runs_of_different_debug_sets_or_names():
    labels = np.arange(30) % 3
    groups = ["on rock"] * 30
    run = _run_of(np.zeros(30, dtype=int), labels, groups, np.array([1, 2]))
    other = _run_of(np.zeros(31, dtype=int), np.arange(31) % 3, groups + ["in fog"], [1])
    with pytest.raises(ValueError, match="different debug sets"):
        compare(run, other)
    with pytest.raises(ValueError, match="two distinct non-empty strings"):
        compare(run, run, names=("a", "a"))
