import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from failmodes import Caption, FailureModes, GeneratedSet, GenerationRequest, RunResult

NAMES = ["wallet", "fox"]


def _modes(k=2):
    captions = [
        Caption(v, 0.9) for v in ["in a jungle", "in a jungle", "on ice", None, "at sea", "in snow"]
    ]
    return FailureModes.from_captions(
        class_names=NAMES,
        attribute="background",
        indices=np.arange(6),
        labels=np.array([0, 0, 0, 0, 1, 1]),
        predictions=np.array([1, 1, 0, 1, 0, 0]),
        captions=captions,
        candidates={"wallet": ["on ice", "in a jungle"], "fox": ["in snow", "at sea"]},
        k=k,
    )


def test_top_k_by_frequency_with_deterministic_ties():
    modes = _modes()
    assert modes.modes == {"wallet": ["in a jungle", "on ice"], "fox": ["in snow", "at sea"]}
    assert modes.top_k(1) == {"wallet": ["in a jungle"], "fox": ["in snow"]}
    assert modes.counts()["wallet"]["in a jungle"] == 2


def test_describe_names_the_prediction():
    lines = _modes(1).describe()
    assert lines[0] == "wallet in a jungle \u2192 predicted fox (2 failures)"
    assert lines[1] == "fox in snow \u2192 predicted wallet (1 failure)"
    modes = _modes(2)
    assert modes.describe_mode("wallet", "on ice") == (
        "wallet on ice \u2192 predicted wallet (1 failure)"
    )
    assert modes.top_prediction("wallet", "in a jungle") == "fox"
    assert modes.top_prediction("fox", "in a jungle") is None
    assert list(modes.descriptions()) == [(n, v) for n in NAMES for v in modes.modes[n]]


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k must be"):
        _modes(k=0)


def test_frame_marks_modes():
    frame = _modes(1).to_frame()
    assert frame["is_mode"].tolist() == [True, True, False, False, False, True]


def _request(count, value="on ice"):
    return GenerationRequest(0, "wallet", value, "a photo of a wallet on ice", count, seed=3)


def test_generated_set_checks_counts():
    img = Image.new("RGB", (2, 2))
    gen = GeneratedSet.from_outputs([_request(2), _request(1, None)], [[img, img], [img]])
    assert gen.labels.tolist() == [0, 0, 0] and gen.values == ["on ice", "on ice", None]
    assert len(gen.to_frame()) == 3
    with pytest.raises(ValueError, match="returned 1 images for request 0"):
        GeneratedSet.from_outputs([_request(2)], [[img]])
    with pytest.raises(ValueError, match="2 image lists for 1 requests"):
        GeneratedSet.from_outputs([_request(1)], [[img], [img]])


def test_image_seeds_do_not_depend_on_count_and_differ_per_image():
    a, b = _request(5), _request(2)
    assert [a.image_seed(i) for i in range(2)] == [b.image_seed(i) for i in range(2)]
    assert len({a.image_seed(i) for i in range(5)}) == 5
    assert a.job_id != b.job_id
    assert a.image_seed(0) != _request(5, "at sea").image_seed(0)
    with pytest.raises(IndexError):
        b.image_seed(2)


def test_generated_set_exports_as_an_image_folder_and_reads_back(tmp_path):
    from failmodes.toyworld import ToyWorld, ToyWorldGenerator

    requests = [
        GenerationRequest(0, "circle", "on ice", "a photo of a circle on ice", 2, 0),
        GenerationRequest(1, "square", None, "a photo of a square", 1, 1),
    ]
    generated = GeneratedSet.from_outputs(
        requests, ToyWorldGenerator(ToyWorld()).generate(requests)
    )
    generated.export(tmp_path / "set")
    files = sorted(
        p.relative_to(tmp_path / "set").as_posix() for p in (tmp_path / "set").rglob("*.png")
    )
    assert files == ["circle/on_ice/0000.png", "circle/on_ice/0001.png", "square/_none/0002.png"]
    back = GeneratedSet.load(tmp_path / "set")
    assert back.requests == requests
    assert back.values == generated.values and np.array_equal(back.labels, generated.labels)
    assert [im.tobytes() for im in back.images] == [im.tobytes() for im in generated.images]
    assert back.to_frame()["seed"].tolist() == generated.to_frame()["seed"].tolist()
    with pytest.raises(FileExistsError, match="not empty"):
        generated.export(tmp_path / "set")


def test_a_selection_keeps_unread_files_unread_and_ids_aligned(tmp_path):
    from failmodes.data import ImageList

    red, blue = Image.new("RGB", (4, 4), "red"), Image.new("RGB", (4, 4), "blue")
    blue.save(tmp_path / "blue.png")
    requests = [_request(2), _request(1, "at sea")]
    generated = GeneratedSet.from_outputs(
        requests,
        [[red, red], ImageList([tmp_path / "blue.png"])],
        image_ids=["a/0", "a/1", "b/0"],
    )
    assert isinstance(generated.images, ImageList) and "1 on disk" in repr(generated.images)
    chosen = generated.select([False, True, True])
    assert isinstance(chosen.images, ImageList)
    assert [im.tobytes() for im in chosen.images] == [red.tobytes(), blue.tobytes()]
    assert chosen.image_ids == ["a/1", "b/0"] and chosen.values == ["on ice", "at sea"]
    assert chosen.request_index.tolist() == [0, 1] and chosen.requests == requests
    with pytest.raises(ValueError, match="keep must have one boolean per image"):
        generated.select([True])
    with pytest.raises(ValueError, match="image_ids must have one id per image"):
        GeneratedSet.from_outputs([_request(1)], [[red]], image_ids=["a", "b"])


def test_mode_accuracy_splits_the_held_out_failures_by_the_targeted_modes():
    import torch

    from failmodes import FailureSet, Features, PreparedRun
    from failmodes.steps import evaluate_modes

    # six held-out failures of wallet (label 0); the head predicts the larger coordinate
    x = torch.tensor([[1.0, 0], [0, 1], [1, 0], [0, 1], [0, 1], [1, 0]])
    debug = Features(x, np.zeros(6, dtype=int))
    failures = FailureSet(
        debug.labels,
        np.ones(6, dtype=int),
        np.array([], dtype=int),
        np.array([], dtype=int),
        np.arange(6),
    )
    prep = PreparedRun(debug, debug, None, None, failures, {})
    head = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    groups = ["on ice", "on ice", "in a jungle", "in a jungle", "in a jungle", "at home"]
    tile = Image.new("RGB", (2, 2))
    generated = GeneratedSet.from_outputs([_request(1, "in a jungle")], [[tile]])
    m = evaluate_modes(prep, {"before": head, "failmodes": head}, groups, _modes(), generated)
    # inside: rows 2, 3, 4 (one of three right); outside: 0, 1, 5 (two of three right)
    assert (m.n_in, m.n_out, m.share) == (3, 3, 0.5)
    assert m.accuracy == {
        "failmodes": {"in_modes": pytest.approx(1 / 3), "out_of_modes": pytest.approx(2 / 3)}
    }
    # a side without failures is nan here, and None in summary.json (which has no NaN)
    every = evaluate_modes(prep, {"failmodes": head}, ["in a jungle"] * 6, _modes(), generated)
    assert (every.n_in, every.n_out) == (6, 0)
    assert math.isnan(every.accuracy["failmodes"]["out_of_modes"])
    splits = dict.fromkeys(("test", "debug_seed", "debug_heldout", "validation"), 0.5)
    result = RunResult(
        class_names=NAMES,
        attribute="background",
        group_accuracy={},
        accuracy={"before": splits, "failmodes": splits},
        failures=failures,
        modes=_modes(),
        generated=generated,
        selection=pd.DataFrame(),
        config={},
        mode_accuracy=every,
    )
    summary = result.summary()
    assert summary["heldout_in_modes_share"] == 1.0
    assert summary["heldout_in_modes_acc_after"] == 0.5
    assert summary["heldout_out_of_modes_acc_after"] is None
    # unknown without groups, or when no true value was proposed for the class
    assert evaluate_modes(prep, {"failmodes": head}, None, _modes(), generated) is None
    assert evaluate_modes(prep, {"failmodes": head}, ["x"] * 6, _modes(), generated) is None
