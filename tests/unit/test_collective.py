"""Failure overlap across models: the IoU matrix, its means per category, and its heatmap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failmodes.collective import failure_iou, failure_masks, mean_iou, plot_failure_iou


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
