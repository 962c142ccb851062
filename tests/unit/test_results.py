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


# ---------------------------------------------------------------- a run saved and read back
@pytest.fixture(scope="module")
def small_run():
    """A real run of the demo's components on a small world, with an image filter and a guard."""
    pytest.importorskip("open_clip")
    from failmodes import Debugger
    from failmodes.filters import CaptionFilter
    from failmodes.toyworld import ToyWorld, demo_components

    world = ToyWorld(seed=11)
    components = demo_components(world, k=2, lam=[0.5, 1.0], images_per_mode=5, cache=False)
    components["image_filter"] = CaptionFilter(components["captioner"], class_top_k=3)
    dbg = Debugger(**components)
    extra = {"more": world.test(60)}
    return dbg.run(world.train(20), world.debug(1000), world.test(400), seed=0, extra=extra)


@pytest.fixture(scope="module")
def saved(small_run, tmp_path_factory):
    """``small_run`` saved with its images, and the folder."""
    return small_run.save(tmp_path_factory.mktemp("saved") / "run")


def _pixels(images, n=3):
    return [images[i].tobytes() for i in range(min(n, len(images)))]


def test_a_saved_run_reads_back_equal(small_run, saved, tmp_path):
    from pandas.testing import assert_frame_equal

    run = small_run
    assert run.generated.filter_report is not None and run.examples and run.mode_accuracy
    back = RunResult.load(saved)
    assert_frame_equal(back.to_frame(), run.to_frame())
    assert back.summary() == run.summary()
    assert_frame_equal(back.selection, run.selection)
    assert_frame_equal(back.failures.to_frame(), run.failures.to_frame())
    assert_frame_equal(back.modes.to_frame(), run.modes.to_frame())
    assert back.modes.modes == run.modes.modes and back.modes.describe() == run.modes.describe()
    assert back.mode_accuracy == run.mode_accuracy and back.group_accuracy == run.group_accuracy
    assert back.examples == run.examples  # the thumbnails' PNG bytes too
    for name, generated in {"failmodes": run.generated, **run.baseline_generated}.items():
        again = back.generated if name == "failmodes" else back.baseline_generated[name]
        assert_frame_equal(again.to_frame(), generated.to_frame())
        assert again.requests == generated.requests and again.image_ids == generated.image_ids
        assert _pixels(again.images) == _pixels(generated.images)
    assert_frame_equal(back.generated.filter_report, run.generated.filter_report)
    assert list(back.heads) == list(run.heads)
    for method, head in run.heads.items():
        assert torch_equal(back.heads[method].weight, head.weight), method
        assert torch_equal(back.heads[method].bias, head.bias), method
    # the report of the loaded run is the report of the run
    page = back.report(tmp_path / "back.html").read_text("utf-8")
    assert page == run.report(tmp_path / "run.html").read_text("utf-8")


def torch_equal(a, b):
    import torch

    return torch.equal(a.detach().cpu(), b.detach().cpu())


def test_a_run_saved_without_images_keeps_everything_else(small_run, tmp_path):
    from failmodes.collective import compare

    folder = small_run.save(tmp_path / "run", images=False)
    assert not (folder / "generated").exists()
    back = RunResult.load(folder)
    assert back.summary() == small_run.summary()
    assert len(back.generated) == len(small_run.generated) and set(back.generated.images) == {None}
    assert back.generated.values == small_run.generated.values
    page = back.report(tmp_path / "back.html").read_text("utf-8")
    assert "saved without its generated images" in page
    assert "saved without" not in small_run.report(tmp_path / "run.html").read_text("utf-8")
    assert compare(small_run, back).table.equals(compare(small_run, small_run).table)
    # saved again: the images it lacks are not written, the rest is
    again = RunResult.load(back.save(tmp_path / "again"))
    assert again.summary() == small_run.summary()


def test_saving_replaces_a_saved_run_and_nothing_else(small_run, tmp_path):
    folder = small_run.save(tmp_path / "run", images=False)
    small_run.save(folder, images=False)  # a run saved there before is replaced
    assert RunResult.load(folder).summary() == small_run.summary()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes\.txt is not a file of a run saved there"):
        small_run.save(folder)
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "run.json").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("1,2")
    with pytest.raises(FileExistsError, match="not a file of a run saved there"):
        small_run.save(tmp_path / "other")
    with pytest.raises(FileExistsError, match="is a file"):
        small_run.save(tmp_path / "other" / "data.csv")


def _damage(folder, how):
    """Damage a copy of a saved run as ``how`` says; the part the error must name."""
    import json

    from safetensors.numpy import load_file, save_file

    document = json.loads((folder / "run.json").read_text())
    if how == "no run.json":
        (folder / "run.json").unlink()
        return "run.json is missing"
    if how == "not JSON":
        (folder / "run.json").write_text("{ not json")
        return "run.json is not a saved run: it is not JSON"
    if how == "foreign JSON":
        (folder / "run.json").write_text('{"format": "someone.else/3"}')
        return "format 'someone.else/3'.*it is not a saved run"
    if how == "newer format":
        document["format"] = "failmodes.RunResult/2"
        (folder / "run.json").write_text(json.dumps(document))
        return "another version of failmodes wrote it"
    if how == "a part missing":
        del document["modes"]["captions"]
        (folder / "run.json").write_text(json.dumps(document))
        return "run.json is damaged: it has no 'modes.captions'"
    if how == "arrays missing":
        (folder / "arrays.safetensors").unlink()
        return "arrays.safetensors is missing"
    if how == "an array missing":
        arrays = load_file(folder / "arrays.safetensors")
        del arrays["failures.heldout"]
        save_file(arrays, folder / "arrays.safetensors")
        return "arrays.safetensors is damaged: it has no array 'failures.heldout'"
    if how == "arrays damaged":
        (folder / "arrays.safetensors").write_bytes(b"\x80\x04 not safetensors")
        return "arrays.safetensors is damaged"
    if how == "a thumbnail missing":
        (folder / document["examples"][0]["file"]).unlink()
        return "examples/0000.png is missing: a failure thumbnail"
    if how == "an image missing":
        next((folder / "generated" / "random").rglob("*.png")).unlink()
        return "is missing: an image of the 'random' set"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "no run.json",
        "not JSON",
        "foreign JSON",
        "newer format",
        "a part missing",
        "arrays missing",
        "an array missing",
        "arrays damaged",
        "a thumbnail missing",
        "an image missing",
    ],
)
def test_a_damaged_saved_run_is_refused_naming_the_path_and_the_part(saved, tmp_path, how):
    import shutil

    folder = shutil.copytree(saved, tmp_path / "copy")
    expected = _damage(folder, how)
    with pytest.raises((FileNotFoundError, ValueError), match=expected) as error:
        RunResult.load(folder)
    assert str(folder) in str(error.value)


def test_a_folder_without_a_saved_run_says_where_the_run_is(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        RunResult.load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"holds no saved run: .*run\.json is missing"):
        RunResult.load(tmp_path)
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="a summary.json alone cannot be read back"):
        RunResult.load(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="the run that failmodes demo or run saved is in"):
        RunResult.load(tmp_path)


# ---------------------------------------------------------------- compare, when nothing differs
def test_compare_says_why_no_mode_differs(small_run):
    from dataclasses import replace

    from failmodes.collective import compare

    same = compare(small_run, small_run, names=("one", "two"))
    assert same.table["fails"].isna().all()
    assert same.reason is not None and same.describe() == [
        f"no mode where one model fails clearly more often: {same.reason}"
    ]
    assert "the two models fail on the same images" in same.reason
    assert "settings are equal and their summaries equal on every figure" in same.reason
    # another repair setting: the original model's failures are the same
    other = replace(small_run, config={**small_run.config, "lam_grid": [4.0], "seed": 7})
    assert "the runs' settings differ (lam_grid, seed), but not the models' failures" in (
        compare(small_run, other).reason
    )
    # other figures from equal settings
    figures = replace(
        small_run, accuracy={**small_run.accuracy, "refit": small_run.accuracy["before"]}
    )
    assert "their figures differ (refit_" in compare(small_run, figures).reason
    # a few images fail differently, too few to set a mode apart
    captioned = [c.value is not None for c in small_run.modes.captions]
    failed = small_run.modes.indices[captioned][:2]
    labels, predictions = small_run.failures.labels, small_run.failures.predictions.copy()
    predictions[failed] = labels[failed]
    fixed = replace(small_run, failures=replace(small_run.failures, predictions=predictions))
    reason = compare(small_run, fixed, names=("cnn", "mixer")).reason
    assert reason.startswith("the models fail differently on 2 of the ")
    assert "on no mode are their failure rates' 95% intervals apart; the largest gap is " in reason
    # nothing captioned with a value: nothing to compare
    blank = replace(
        small_run.modes,
        captions=[Caption(None, 0.0)] * len(small_run.modes.captions),
        success_captions=[Caption(None, 0.0)] * len(small_run.modes.success_captions),
    )
    uncaptioned = replace(small_run, modes=blank)
    assert "there is none to compare" in compare(uncaptioned, uncaptioned).reason


def test_compare_gives_no_reason_when_a_mode_differs():
    from failmodes import FailureSet
    from failmodes.collective import compare

    labels = np.zeros(40, dtype=int)
    captions = [Caption("on ice", 1.0)] * 40
    runs = []
    for predictions in (np.ones(40, dtype=int), np.zeros(40, dtype=int)):
        wrong = np.flatnonzero(predictions != labels)
        modes = FailureModes.from_captions(
            class_names=NAMES,
            attribute="background",
            indices=np.arange(40),
            labels=labels,
            predictions=predictions,
            captions=captions,
            candidates={"wallet": ["on ice"]},
            k=1,
        )
        failures = FailureSet(labels, predictions, np.array([], dtype=int), wrong, wrong[:0])
        runs.append(RunResult(NAMES, "background", {}, {}, failures, modes, None, None, config={}))
    comparison = compare(*runs)
    assert comparison.reason is None
    assert comparison.describe() == [
        "a fails on wallet on ice, b does not: 40 vs 0 failures of 40 images"
    ]


# ---------------------------------------------------------------- where a run is written
def test_a_resave_that_fails_part_way_leaves_the_saved_run_whole(small_run, tmp_path):
    import dataclasses

    from failmodes.images import ImageList

    folder = small_run.save(tmp_path / "run")
    before = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    missing = ImageList([tmp_path / "gone.png"] * len(small_run.generated))  # fails on export
    broken = dataclasses.replace(
        small_run, generated=dataclasses.replace(small_run.generated, images=missing)
    )
    with pytest.raises(FileNotFoundError, match="gone.png"):
        broken.save(folder)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == before
    assert RunResult.load(folder).summary() == small_run.summary()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary folder left behind
    # a save that succeeds replaces the run whole, and leaves nothing beside it either
    small_run.save(folder, images=False)
    assert not (folder / "generated").exists() and [p.name for p in tmp_path.iterdir()] == ["run"]
    assert RunResult.load(folder).summary() == small_run.summary()


def test_the_report_and_the_summary_create_their_folder_as_save_does(small_run, tmp_path):
    report = small_run.report(tmp_path / "missing" / "deeper" / "report.html")
    summary = small_run.save_summary(tmp_path / "missing" / "summary.json")
    assert report.read_text("utf-8").startswith("<!") and summary.read_text().startswith("{")


def test_a_folder_or_a_path_under_a_file_is_refused_naming_the_argument(small_run, tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    for write in (small_run.report, small_run.save_summary):
        with pytest.raises(IsADirectoryError, match=r"path .*folder is a folder, not a file"):
            write(tmp_path / "folder")
        with pytest.raises(NotADirectoryError, match=r"path .*afile.* is a file, not a folder"):
            write(tmp_path / "afile" / "out.html")
    with pytest.raises(NotADirectoryError, match=r"folder .*afile.* is a file, not a folder"):
        small_run.save(tmp_path / "afile" / "run")
    assert (tmp_path / "afile").read_text() == "x" and list((tmp_path / "folder").iterdir()) == []


@pytest.mark.parametrize("images", ["no", 0, None])
def test_images_must_be_a_bool(small_run, tmp_path, images):
    with pytest.raises(TypeError, match="images must be True or False"):
        small_run.save(tmp_path / "run", images=images)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- images read as shown
@pytest.mark.parametrize("kind", ["array", "F image"])
def test_float_grayscale_images_in_the_unit_range_are_read_as_such(kind):
    from failmodes.images import thumbnail, to_rgb

    gray = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    image = Image.fromarray(gray) if kind == "F image" else gray
    expected = np.repeat(np.round(gray * 255).astype(np.uint8)[..., None], 3, axis=-1)
    assert np.array_equal(np.asarray(thumbnail(image, 8)), expected)
    if kind == "F image":
        assert image.mode == "F"
        assert np.array_equal(np.asarray(to_rgb(image)), expected)
    # the one rule: [0, 255] floats as levels, 16-bit images by their depth
    levels = Image.fromarray(gray * 255)
    assert np.array_equal(np.asarray(to_rgb(levels)), expected)
    sixteen = Image.fromarray((gray * 65535).astype(np.uint16))
    assert np.abs(np.asarray(to_rgb(sixteen)).astype(int) - expected).max() <= 1
