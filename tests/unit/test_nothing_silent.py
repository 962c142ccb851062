"""Nothing silent: each reproduction of a silent wrong result or a raw traceback, now caught.

Every test here was written first as a reproduction of what a careful user found: a wrong
result given without a word, or a traceback that did not name the culprit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from test_bad_input import _onehot_debugger
from torch import nn

from failmodes import (
    BackgroundProposer,
    Caption,
    DataError,
    Debugger,
    FailureCaptioner,
    FailureSet,
    GenerationRequest,
    ImageGenerator,
    StaticProposer,
    TorchExtractor,
)
from failmodes.data import ImageDataset, labels_of
from failmodes.results import Features
from failmodes.steps import caption_failures, generate, propose


def _onehot(n_classes: int = 2, **kwargs) -> Debugger:
    """A known classifier: features are one-hot predictions, the head reads them back."""
    return _onehot_debugger(n_classes, **kwargs)


def _failures(n: int = 8) -> FailureSet:
    """Class 0 and 1 alternate; the model calls everything class 1: class 0 images fail."""
    labels = np.arange(n) % 2
    predictions = np.ones(n, dtype=int)
    none = np.array([], dtype=int)
    return FailureSet(labels, predictions, none, np.flatnonzero(labels == 0), none)


def _images(n: int = 8) -> list[tuple[Image.Image, int]]:
    return [(Image.new("RGB", (8, 8), (10 * i, 50, 90)), i % 2) for i in range(n)]


class _Captioner(FailureCaptioner):
    """Answers what it was built with, whatever the image: a user's component, as written."""

    def __init__(self, answer):
        self.answer = answer

    def caption(self, images, *, image_classes, candidates, attribute="background"):
        return [self.answer(i) for i in range(len(images))]


# ---------------------------------------------------------------- labels and names
def test_float_labels_that_are_not_integers_are_refused():
    features = torch.eye(2)[[0, 1, 1, 0]]
    with pytest.raises(ValueError, match=r"labels must be integers.*0\.7"):
        Features.of(features, np.array([0.7, 1.9, 1.0, 0.0]))
    with pytest.raises(ValueError, match="labels must be integers"):
        labels_of(ImageDataset(["a", "b"], [0.5, 1]))


def test_integral_float_labels_are_read_as_integers():
    got = Features.of(torch.eye(2), np.array([1.0, 0.0]))
    assert got.labels.tolist() == [1, 0] and got.labels.dtype == np.int64
    assert labels_of([("a", 1.0), ("b", 0.0)]).tolist() == [1, 0]  # as pandas gives them


def test_class_names_given_as_a_string_are_refused():
    with pytest.raises(ValueError, match="class_names must be a list"):
        Debugger(extractor=TorchExtractor(nn.Linear(2, 2)), class_names="fo").find_failures(
            None, features=(torch.eye(2), np.array([0, 1]))
        )


def test_features_and_labels_of_different_lengths_are_refused():
    features = torch.eye(2)[np.arange(20) % 2]
    with pytest.raises(ValueError, match="20 rows of features but 10 labels"):
        _onehot().find_failures(None, features=(features, np.arange(10) % 2))


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("tolerance", float("nan")),
        ("tolerance", -1),
        ("guard_tolerance", 2.0),
        ("validation_fraction", float("nan")),
    ],
)
def test_numeric_settings_are_range_checked_before_any_work(setting, value):
    with pytest.raises(ValueError, match=f"{setting} must be"):
        _onehot(**{setting: value})


@pytest.mark.parametrize("seed", [1.5, -1, "0", True])
def test_a_seed_that_is_not_a_non_negative_integer_is_refused(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        _onehot().find_failures(None, seed=seed, features=(torch.eye(2), np.array([1, 0])))


# ---------------------------------------------------------------- what components return
class _Returns(BackgroundProposer):
    def __init__(self, answer):
        self.answer = answer

    def propose(self, class_names, *, attribute="background"):
        return {name: self.answer for name in class_names}


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ("in a desert", "a list of strings for class 'fox', got str 'in a desert'"),
        ([1, None], "a list of strings for class 'fox', got [1, None]"),
        (["in a desert", ""], "an empty value for class 'fox'"),
    ],
)
def test_a_proposers_bad_answer_is_named(answer, says):
    with pytest.raises(TypeError if "empty" not in says else ValueError, match="_Returns") as err:
        propose(_Returns(answer), ["fox"])
    assert says in str(err.value)


def test_a_captioners_value_that_was_never_proposed_is_refused():
    captioner = _Captioner(lambda i: Caption("on the moon", 0.9))
    with pytest.raises(ValueError, match=r"_Captioner.*'on the moon'.*not among the candidates"):
        caption_failures(
            captioner,
            _images(),
            _failures(),
            {"class0": ["in a desert"]},
            class_names=["class0", "class1"],
            k=1,
            rank="count",
        )


def test_a_captioner_returning_plain_strings_is_named():
    captioner = _Captioner(lambda i: "in a desert")
    with pytest.raises(TypeError, match=r"_Captioner.*Caption.*got str 'in a desert'"):
        caption_failures(
            captioner,
            _images(),
            _failures(),
            {"class0": ["in a desert"]},
            class_names=["class0", "class1"],
            k=1,
            rank="count",
        )


def test_a_captioner_that_names_no_value_for_most_failures_is_a_warning():
    captioner = _Captioner(lambda i: Caption(None, 0.1))
    with pytest.warns(UserWarning, match=r"_Captioner named no value for 4 of 4 failures"):
        modes = caption_failures(
            captioner,
            _images(),
            _failures(),
            {"class0": ["in a desert"]},
            class_names=["class0", "class1"],
            k=1,
            rank="count",
        )
    assert modes.modes == {}


class _Sized(ImageGenerator):
    def __init__(self, make):
        self.make = make

    def generate(self, requests, *, progress=None):
        return [[self.make(r, i) for i in range(r.count)] for r in requests]


def _request(count: int = 2) -> GenerationRequest:
    prompt = "a photo of a class0 in a desert"
    return GenerationRequest(0, "class0", "in a desert", prompt, count, 0)


def test_generated_images_of_another_size_are_named_with_the_request():
    def make(request, i):
        return Image.new("RGB", (8, 8) if i == 0 else (16, 16), (200, 10 * i, 30))

    with pytest.raises(ValueError, match=r"_Sized.*'a photo of a class0 in a desert'.*16x16"):
        generate(_Sized(make), [_request()], class_names=["class0", "class1"])


def test_a_generator_returning_none_is_named():
    with pytest.raises(TypeError, match=r"_Sized returned None .*'a photo of a class0"):
        generate(_Sized(lambda r, i: None), [_request()], class_names=["class0", "class1"])


# ---------------------------------------------------------------- models and data
def test_a_model_whose_last_module_is_not_its_head_is_a_warning():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2), nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="differs from its last nn.Linear"):
        TorchExtractor(model).extract([torch.rand(3, 2, 2) for _ in range(3)])


def test_a_debug_set_given_as_a_generator_is_read_once():
    dbg = _onehot(2)
    features = [torch.eye(2)[i % 2] for i in range(10)]
    data = ((features[i], i % 3 % 2) for i in range(10))  # a generator, read once
    failures = dbg.find_failures(data, seed=0)
    assert len(failures.labels) == 10


def test_no_warning_for_a_healthy_model():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TorchExtractor(model).extract([torch.rand(3, 2, 2) for _ in range(3)])


def test_static_proposer_is_still_fine():
    assert propose(StaticProposer({"fox": ["in a desert"]}), ["fox"]) == {"fox": ["in a desert"]}


# ---------------------------------------------------------------- folders are boundaries
def _exported(tmp_path):
    from failmodes import GeneratedSet

    request = _request(count=2)
    images = [Image.new("RGB", (8, 8), (200, 40 * i, 30)) for i in range(2)]
    generated = GeneratedSet(
        [request], images, np.zeros(2, dtype=int), [request.value] * 2, np.zeros(2, dtype=int)
    )
    folder = generated.export(tmp_path / "set")
    return GeneratedSet, folder


@pytest.mark.parametrize("name", ["../outside/x.png", "/etc/passwd", "link.png"])
def test_loading_a_generated_set_stays_inside_its_folder(tmp_path, name):
    import json

    load, folder = _exported(tmp_path)
    (tmp_path / "outside").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "outside" / "x.png")
    (folder / "link.png").symlink_to(tmp_path / "outside" / "x.png")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["images"][0]["file"] = name
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=f"names '{name}', which is not a file inside"):
        load.load(folder)


def test_generated_images_the_extractor_cannot_take_are_named():
    from failmodes.steps import generated_features

    def make(request, i):
        pixels = np.random.default_rng(i).integers(0, 255, (8, 8, 3), dtype=np.uint8)
        return Image.fromarray(pixels, mode="RGB")

    generated = generate(_Sized(make), [_request()], class_names=["class0", "class1"])
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))  # takes 3x2x2 images only
    with pytest.raises(ValueError, match=r"cannot take the images of _Sized .*8x8 RGB.*class0"):
        generated_features(TorchExtractor(model), generated)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("filter_rounds", -1),
        ("checkpoint_every", 0),
        ("examples_per_mode", 1.5),
        ("batch_size", 0),
    ],
)
def test_the_other_numeric_settings_are_checked_too(setting, value):
    with pytest.raises(ValueError, match=f"{setting} must be"):
        _onehot(**{setting: value}).run(_images(), _images(), _images(), seed=0)


def test_an_engine_that_is_not_one_is_named():
    with pytest.raises(TypeError, match="engine must be an Engine"):
        _onehot(engine="ray").features([(torch.eye(2)[0], 0)])


def test_a_component_that_does_not_pickle_is_named_before_ray_starts():
    pytest.importorskip("ray")
    from functools import partial

    from failmodes.engines import RayEngine

    class Unpicklable:
        def __reduce__(self):
            raise TypeError("holds an open socket")

    work = partial(lambda component, job: job, Unpicklable())
    with pytest.raises(TypeError, match="RayEngine cannot send Unpicklable to its workers"):
        RayEngine().map(work, [1, 2])


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"workers": 2.5}, "workers must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"gpus_per_worker": -1}, "gpus_per_worker must be a number >= 0"),
        ({"cpus_per_worker": 0}, "cpus_per_worker must be > 0"),
        ({"cpus_per_worker": float("nan")}, "cpus_per_worker must be"),
    ],
)
def test_a_ray_engine_refuses_its_settings_out_of_range_without_importing_ray(settings, says):
    from failmodes.engines import RayEngine

    with pytest.raises(ValueError, match=says):
        RayEngine(**settings)


# ---------------------------------------------------------------- what a newcomer tried
@pytest.mark.parametrize(
    ("items", "says"),
    [
        ([("a", 0), ("b", "3")], r"debug's labels must be integers.*'3' \(str\).*item 1"),
        ([("a", None)], r"debug's labels must be integers.*None \(NoneType\).*item 0"),
        (["a", "b"], r"debug must yield \(image, label\) pairs.*item 0 is a str, not a pair"),
        ([("a", 0.7)], r"debug's labels must be integers.*0\.7"),
    ],
)
def test_a_label_that_is_not_an_integer_is_named_with_its_data_and_item(items, says):
    with pytest.raises(ValueError, match=says):
        labels_of(items, "debug")
    with pytest.raises(ValueError, match=says):
        _onehot().features(items, name="debug")


class _OldGenerator(ImageGenerator):
    def generate(self, requests):  # written without the keyword the steps pass
        return [[Image.new("RGB", (8, 8), "red")] * r.count for r in requests]


def _ready(generator: ImageGenerator, **kwargs) -> Debugger:
    return _onehot(
        proposer=StaticProposer({"class0": ["in a desert"], "class1": ["in a desert"]}),
        captioner=_Captioner(lambda i: Caption("in a desert", 1.0)),
        generator=generator,
        **kwargs,
    )


def test_a_component_method_without_a_keyword_the_steps_pass_is_refused_before_any_work():
    with pytest.raises(
        TypeError,
        match=r"generator: _OldGenerator.generate does not take "
        r"progress.*generate\(requests, \*, progress=None\)",
    ):
        _ready(_OldGenerator()).run(_images(), _images(), _images(), seed=0)
    from failmodes.testing import check_generator

    with pytest.raises(AssertionError, match="_OldGenerator.generate does not take progress"):
        check_generator(_OldGenerator())


def test_a_component_of_the_wrong_kind_is_named_with_its_article():
    with pytest.raises(TypeError, match="generator must be an ImageGenerator, got str"):
        _ready("stable diffusion").run(_images(), _images(), _images(), seed=0)


class _ColourRenderer(_OldGenerator):
    attribute = "color"

    def generate(self, requests, *, progress=None):
        return super().generate(requests)


def test_an_attribute_the_generator_cannot_make_is_refused_before_any_work():
    with pytest.raises(
        ValueError,
        match=r"attribute is 'background' but the generator "
        r"\(_ColourRenderer\) makes only 'color' values",
    ):
        _ready(_ColourRenderer()).run(_images(), _images(), _images(), seed=0)
    assert ImageGenerator.attribute is None  # a generator of any attribute, by default


def test_a_toyworld_generator_makes_its_worlds_attribute_only():
    from failmodes.toyworld import ToyWorld, ToyWorldGenerator

    generator = ToyWorldGenerator(ToyWorld(seed=0, attribute="color"))
    assert generator.attribute == "color"
    request = GenerationRequest(0, "circle", "on grass", "a circle on grass", 1, 0)
    with pytest.raises(ValueError, match=r"renders only 'color'.*Debugger\(attribute='color'\)"):
        generator.generate([request])


def test_the_models_own_error_says_which_data_it_was_reading():
    flat = [(torch.zeros(12), i % 2) for i in range(4)]  # vectors, not (C, H, W) images
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Linear(8, 2))
    dbg = Debugger(extractor=TorchExtractor(model), class_names=["a", "b"], cache=False)
    with pytest.raises(Exception) as caught:  # noqa: PT011 (the model's own error, kept)
        dbg.features(flat, name="debug")
    notes = " ".join(getattr(caught.value, "__notes__", []))
    if hasattr(caught.value, "add_note"):  # Python 3.11+
        assert "features of debug" in notes and "a tensor of shape (12,)" in notes


def test_image_tensors_of_another_size_than_clips_are_named(tiny_clip):
    from failmodes.captioners.openclip import CLIPCaptioner

    model, preprocess, tokenizer = tiny_clip
    captioner = CLIPCaptioner(model, tokenizer=tokenizer, preprocess=preprocess)
    with pytest.raises(
        ValueError,
        match=r"shape \(3, 8, 8\) cannot be read by the CLIP model, "
        r"made for \d+x\d+ images",
    ):
        captioner.caption(
            [torch.zeros(3, 8, 8)],
            image_classes=["fox"],
            candidates={"fox": ["in a desert", "in a jungle"]},
        )


def test_tensor_images_of_another_shape_than_trains_are_a_warning():
    from failmodes.steps import check_sets

    train = [(torch.zeros(3, 32, 32), i % 2) for i in range(4)]
    small = [(torch.zeros(3, 8, 8), i % 2) for i in range(4)]
    with pytest.warns(
        UserWarning,
        match=r"debug's images are tensors of shape \(3, 8, 8\) but "
        r"train's are \(3, 32, 32\)",
    ):
        assert check_sets(train, small, extra={"x": train}) == {"x": train}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same shapes, PIL images, one-shot iterables: quiet
        check_sets(train, train, train, train)
        check_sets(_images(), [(Image.new("RGB", (16, 16)), 0)])
        check_sets(train, iter(small))
    with pytest.raises(ValueError, match="taken by a split"):
        check_sets(train, train, extra={"test": train})


# ---------------------------------------------------------------- second pass (issue 28)
@pytest.mark.parametrize("url", ["memory://", "s3://", "file://", "://x", "s3:///"])
def test_a_cache_url_without_a_path_is_refused(url, tmp_path, monkeypatch):
    from failmodes.cache import Cache

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="names no place"):
        Cache(url).check_writable()
    assert list(tmp_path.iterdir()) == []  # nothing written in the current folder


def test_prune_and_repair_on_a_read_only_cache_say_what_they_could_not_remove(
    tmp_path, monkeypatch
):
    import failmodes._stores as stores
    from failmodes.cache import Cache

    cache = Cache(tmp_path / "cache")
    cache.put_json("proposals", "a" * 64, {"x": 1})
    cache.put_json("proposals", "e" * 64, {"x": 2})
    [damaged] = (tmp_path / "cache" / "proposals").rglob("eeee*.json")
    damaged.write_text("not what was written")

    def read_only(source, target):  # the file system refuses, as a read-only mount does
        raise PermissionError(13, "Read-only file system", str(source))

    monkeypatch.setattr(stores.os, "rename", read_only)
    assert len(cache.prune(older_than=0, dry_run=True)) == 2  # what would go
    with pytest.raises(OSError, match="could not remove 2 of 2 entries.*Read-only"):
        cache.prune(older_than=0)
    with pytest.raises(OSError, match="could not remove 1 of 1 entries"):
        cache.verify(repair=True)
    assert cache.info()["entries"] == 2  # nothing was said to be removed that is not


def test_prune_dry_run_removes_nothing(tmp_path):
    from failmodes.cache import Cache

    cache = Cache(tmp_path / "cache")
    cache.put_json("proposals", "b" * 64, {"x": 1})
    would = cache.prune(older_than=0, dry_run=True)
    assert len(would) == 1 and cache.info()["entries"] == 1
    assert len(cache.prune(older_than=0)) == 1 and cache.info()["entries"] == 0


def test_cache_info_skips_an_entry_that_another_process_removes_meanwhile(tmp_path):
    from failmodes.cache import Cache

    cache = Cache(tmp_path / "cache")
    for key in ("c" * 64, "c" * 63 + "d"):  # one shard: listed together
        cache.put_json("proposals", key, {"x": 1})
    entries = cache.entries()
    first = next(entries)
    for path in (tmp_path / "cache" / "proposals").rglob("*.json"):
        if path != first.path:
            path.unlink()  # another process prunes it between two listings
    assert list(entries) == []


@pytest.mark.parametrize("lam", [1e300, float("inf"), 1e7])
def test_an_absurd_lam_is_named_before_any_work(lam):
    with pytest.raises(ValueError, match="lam must be a number >= 0 and <= 1000000"):
        _onehot(lam=lam)
    with pytest.raises(ValueError, match="lam must be a finite number >= 0 and <= 1e\\+06"):
        from failmodes import LinearHeadTrainer

        LinearHeadTrainer().fit(
            torch.randn(8, 3),
            torch.arange(8) % 2,
            extra_features=torch.randn(4, 3),
            extra_labels=torch.arange(4) % 2,
            lam=lam,
        )


def test_features_too_large_for_the_solver_are_named():
    from failmodes import LinearHeadTrainer

    with pytest.raises(ValueError, match=r"features reach \de\+30 in magnitude.*standardise"):
        LinearHeadTrainer().fit(torch.randn(8, 3) * 1e30, torch.arange(8) % 2)


def test_a_summary_is_strict_json_with_none_for_missing_accuracies(tmp_path):
    import json
    import math

    from failmodes.summary import run_summary

    class Result:  # the parts of a RunResult a summary reads, with a NaN accuracy
        accuracy = {
            "before": {"test": 0.5, "debug_seed": 0.0, "debug_heldout": float("nan")},
            "failmodes": {"test": 0.6, "debug_seed": 0.5, "debug_heldout": float("nan")},
        }
        config = {"k": 1}
        chosen = None
        mode_accuracy = None
        failures = FailureSet(np.zeros(2), np.ones(2), np.array([]), np.array([0]), np.array([]))
        generated = None
        caption_accuracy = None
        seconds = 1.0

        def worst_group(self, method):
            return None

    from failmodes import GeneratedSet

    result = Result()
    result.generated = GeneratedSet.from_outputs([], [])
    result.modes = type("M", (), {"modes": {}, "describe": lambda self: []})()
    result.selection = None
    summary = run_summary(result)
    assert summary["heldout_acc_after"] is None
    text = json.dumps(summary, allow_nan=False)  # strict JSON: no NaN
    assert not any(isinstance(v, float) and math.isnan(v) for v in json.loads(text).values())


def test_the_cache_command_names_a_broken_url_in_one_line(tmp_path):
    from test_cli import _failmodes

    done = _failmodes("cache", "verify", "--cache", "nosuch://x")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("failmodes cache: error: --cache: ")


def test_cache_info_into_a_closed_pipe_ends_quietly(tmp_path):
    import subprocess
    import sys

    from failmodes.cache import Cache

    cache = Cache(tmp_path / "cache")
    for i in range(2500):  # more lines than a pipe holds, so the writer meets the closed end
        cache.put_json(f"kind-with-a-long-name-{i:05d}", "a" * 64, {"x": i})
    command = [sys.executable, "-m", "failmodes.cli", "cache", "info", "--cache", str(cache.path)]
    shell = f"{subprocess.list2cmdline(command)} | head -1"
    done = subprocess.run(shell, shell=True, capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith(str(cache.path)) and "BrokenPipeError" not in done.stderr


def test_cache_prune_dry_run_on_the_command_line(tmp_path):
    from test_cli import _failmodes

    from failmodes.cache import Cache

    cache = Cache(tmp_path / "cache")
    cache.put_json("proposals", "f" * 64, {"x": 1})
    done = _failmodes(
        "cache", "prune", "--older-than", "0", "--dry-run", "--cache", str(cache.path)
    )
    assert done.returncode == 0 and done.stdout.startswith("would remove 1 entry")
    assert cache.info()["entries"] == 1


def test_a_run_that_finds_no_failure_mode_says_so():
    pytest.importorskip("open_clip")
    from failmodes.toyworld import ToyWorld, demo_components

    world = ToyWorld(seed=0)
    train, test = world.train(10), world.test(50)
    debug = world.debug(10)  # one image per class: every failure lands in debug_heldout
    dbg = Debugger(**demo_components(world, cache=False, train=train, k=1, lam=1.0))
    with pytest.warns(UserWarning, match="no failure mode was found: 0 debug_seed failures"):
        result = dbg.run(train, debug, test, seed=0, guard=False)
    assert result.modes.modes == {} and len(result.generated) == 0


# ---------------------------------------------------------------- nothing to decide on
def _onehot_set(predictions, labels, n_classes=2) -> list[tuple[torch.Tensor, int]]:
    """Items the one-hot Debugger reads back as ``predictions``, labelled ``labels``."""
    return [(torch.eye(n_classes)[p], int(y)) for p, y in zip(predictions, labels, strict=True)]


class _NoWork(TorchExtractor):
    """An extractor that must not be reached: the check comes before any work."""

    def extract(self, data, *, batch_size=None, progress=None):
        raise AssertionError("features were computed before the check")


def _idle(n_classes: int = 2, **kwargs) -> Debugger:
    """The one-hot Debugger with an extractor that refuses to work."""
    head = _onehot(n_classes).extractor.head
    return _onehot(n_classes, **kwargs).replace(
        extractor=_NoWork(backbone=nn.Identity(), head=head)
    )


class _Cycles(FailureCaptioner):
    """Names one of the first three values of each image's class, in turn."""

    def caption(self, images, *, image_classes, candidates, attribute="background"):
        return [Caption(candidates[c][i % 3], 1.0) for i, c in enumerate(image_classes)]


class _Copies(ImageGenerator):
    """A user's retrieval generator: images of the requested class from a pool."""

    def __init__(self, pool):
        self.pool = pool

    def generate(self, requests, *, progress=None):
        labels = labels_of(self.pool)
        out = []
        for r in requests:
            rows = np.flatnonzero(labels == r.class_index)
            out.append([self.pool[int(rows[j % len(rows)])][0] for j in range(r.count)])
        return out


@pytest.fixture(scope="module")
def toy():
    from failmodes.toyworld import ToyWorld

    world = ToyWorld(seed=1)
    return world, world.train(10), world.debug(300), world.test(100)


def _toy(world, pool, **kwargs) -> Debugger:
    """A cheap Debugger on ToyWorld: a small torch model and user-written components."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.AvgPool2d(4), nn.Flatten(), nn.Linear(192, 24), nn.Tanh(), nn.Linear(24, 10)
    )
    settings = dict(
        extractor=TorchExtractor(model, batch_size=256, progress=False),
        proposer=StaticProposer(world.uncommon_values()),
        captioner=_Cycles(),
        generator=_Copies(pool),
        class_names=world.class_names,
        k=1,
        lam=0.5,
        images_per_mode=3,
        uniform_prior=0.0,
        lam_real=1.0,
        progress=False,
        cache=False,
    )
    return Debugger(**{**settings, **kwargs})


def test_an_empty_validation_part_takes_the_first_candidate_and_says_so(toy):
    world, train, debug, test = toy
    dbg = _toy(world, train, validation_fraction=0, k=[1, 2], lam=[0.5, 2.0], baselines=False)
    says = r"validation_fraction=0 .*circle: 0 of 30.*first candidate of each grid .*taken, not"
    with pytest.warns(UserWarning, match=says):
        result = dbg.run(train, debug, test, guard=False)
    assert len(result.failures.validation) == 0
    assert (result.config["k"], result.config["lam"]) == (1, 0.5)
    ladder = result.summary()["ladder"]
    assert "validation prefers" not in ladder and "the validation part is empty" in ladder


def test_a_debug_set_too_small_for_a_validation_part_is_a_warning_with_several_candidates():
    from failmodes.steps import check_validation

    dbg = _onehot(2)
    features = (torch.eye(2)[[1, 1, 1, 1]], np.array([0, 1, 0, 1]))  # 2 images per class
    failures = dbg.find_failures(None, features=features)
    assert len(failures.validation) == 0  # round(0.2 * 2) is 0 for each class
    names = ["class0", "class1"]
    with pytest.warns(UserWarning, match=r"validation_fraction=0.2 .*class0: 0 of 2, class1: 0"):
        check_validation(failures, names, validation_fraction=0.2, grids={"k": [1, 2]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one candidate: nothing to choose, nothing to say
        check_validation(failures, names, validation_fraction=0.2, grids={"k": [1], "lam": [1]})


def test_a_guard_fraction_that_holds_out_no_image_of_a_class_is_refused_before_any_work():
    train = _onehot_set([0, 1] * 10, [0, 1] * 10)  # 10 images per class
    debug = _onehot_set([1] * 20, [0, 1] * 10)
    with pytest.raises(DataError) as err:
        _idle(guard_fraction=0.04).prepare(train, debug)
    assert str(err.value).startswith(
        "guard_fraction=0.04 holds out no image of class 'class0' (10 train images)"
    )
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("prior", [float("inf"), [0.0, float("inf")]])
def test_an_infinite_uniform_prior_is_refused(prior):
    from failmodes.settings import check_setting

    with pytest.raises(ValueError, match="uniform_prior must be a finite number >= 0, got inf"):
        _onehot(uniform_prior=prior)
    with pytest.raises(ValueError, match="uniform_prior must be a finite number >= 0, got inf"):
        check_setting("uniform_prior", prior)


def test_a_run_without_a_test_set_is_refused_before_any_work():
    data = _onehot_set([0, 1] * 10, [0, 1] * 10)
    with pytest.raises(ValueError, match=r"run needs a test set, got test=None"):
        _idle().run(data, data, None)


@pytest.mark.parametrize("guard", [True, 0, 1.5, np.False_])
def test_a_guard_that_is_not_data_none_or_false_is_refused_before_any_work(guard):
    data = _onehot_set([0, 1] * 10, [0, 1] * 10)
    says = f"guard must be data, None or False, got {guard!r}"
    with pytest.raises(TypeError, match=says.replace("(", r"\(").replace(")", r"\)")):
        _idle().run(data, data, data, guard=guard)
    with pytest.raises(TypeError, match="guard must be data, None or False"):
        _idle().prepare(data, data, guard=guard)


def test_no_failures_says_whether_the_model_or_the_validation_part_is_why():
    labels = np.array([0, 1] * 10)
    right = (torch.eye(2)[labels], labels)
    with pytest.raises(DataError, match="the model makes no mistakes on the 20 images of the"):
        _onehot().find_failures(None, features=right)
    wrong = torch.eye(2)[np.array([1, 1] + [0, 1] * 9)]  # two mistakes, both of class 0
    with pytest.raises(ValueError) as err:
        _onehot(validation_fraction=0.99).find_failures(None, features=(wrong, labels))
    said = str(err.value)
    assert "makes no mistakes" not in said and "no failures" in said
    assert "1 mistake " in said and "validation_fraction=0.99 sets aside 20 of its 20" in said


def test_failures_of_another_debug_set_are_refused_naming_both():
    debug = _onehot_set([1] * 20, [0, 1] * 10)
    train = _onehot_set([0, 1] * 10, [0, 1] * 10)
    failures = _onehot().find_failures(debug, seed=0)
    shorter = debug[:12]
    says = "failures were found on a debug set of 20 images, but debug has 12"
    with pytest.raises(ValueError, match=says):
        _idle().prepare(train, shorter, failures=failures)
    shuffled = _onehot_set([1] * 20, [1, 0] * 10)  # as long, other labels
    with pytest.raises(DataError, match="other labels at 20 of its 20 images"):
        _idle().prepare(train, shuffled, failures=failures, guard=False)
    other = _onehot_set([0] * 20, [0, 1] * 10)  # the same labels, other images
    with pytest.raises(DataError, match="other predictions at 20 of its 20 images"):
        _onehot().prepare(train, other, failures=failures, guard=False)  # seen in its features
    _onehot().prepare(train, debug, failures=failures, guard=False)  # its own debug set passes
    with pytest.raises(ValueError, match=says):
        caption_failures(
            _Captioner(lambda i: Caption("in a desert", 1.0)),
            shorter,
            failures,
            {"class0": ["in a desert"], "class1": ["on ice"]},
            class_names=["class0", "class1"],
            k=1,
            rank="count",
        )


@pytest.mark.parametrize(
    ("names", "says"),
    [
        (["circle", "Circle"], r"equal when lower-cased.*'circle' and 'Circle'"),
        (["circle ", "square"], r"surrounding whitespace: 'circle '"),
        (["square", "\tcircle"], r"surrounding whitespace: '\\tcircle'"),
    ],
)
def test_class_names_that_differ_only_in_case_or_whitespace_are_refused(names, says):
    from failmodes._checks import check_class_names

    with pytest.raises(ValueError, match=says):
        check_class_names(names)
    with pytest.raises(ValueError, match=says):
        Debugger(extractor=TorchExtractor(nn.Linear(2, 2)), class_names=names, cache=False)


def test_a_train_split_missing_a_class_is_a_warning():
    train = _onehot_set([0, 1] * 10, [0, 1] * 10, n_classes=3)  # no image of class2
    debug = _onehot_set([1, 1, 2] * 10, [0, 1, 2] * 10, n_classes=3)
    with pytest.warns(UserWarning, match=r"train has no image of class\(es\) \['class2'\]"):
        _onehot(3).prepare(train, debug, guard=False)


@pytest.mark.parametrize(("count", "says"), [(-2, "got -2"), (2.5, "got 2.5"), (True, "got True")])
def test_requests_for_a_count_that_is_no_number_of_images_are_refused(count, says):
    from failmodes.steps import make_requests

    named = r"counts\[\('owl', 'in a desert'\)\] must be an integer >= 0, "
    with pytest.raises(ValueError, match=named + says):
        make_requests({("owl", "in a desert"): count}, class_names=["fox", "owl"])
    [request] = make_requests({("owl", "in a desert"): np.int64(3)}, class_names=["fox", "owl"])
    assert request.count == 3 and type(request.count) is int
