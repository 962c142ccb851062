"""The Debugger's steps, with small real models and user-written components."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from failmodes import (
    Caption,
    Debugger,
    FailureCaptioner,
    FeatureExtractor,
    ImageGenerator,
    StaticProposer,
    TorchExtractor,
)
from failmodes.data import labels_of
from failmodes.settings import RULES
from failmodes.toyworld import ToyWorld

NAMES = list(ToyWorld().class_names)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.AvgPool2d(4),
        nn.Flatten(),
        nn.Linear(3 * 8 * 8, 24),
        nn.Tanh(),
        nn.Linear(24, len(NAMES)),
    )


class LookupCaptioner(FailureCaptioner):
    """A user's captioner that knows the truth for the images it was given."""

    def __init__(self, dataset):
        self.dataset = dataset

    def caption(self, images, *, image_classes, candidates, attribute="background"):
        truth = {self.dataset.pixels[i].tobytes(): g for i, g in enumerate(self.dataset.groups)}
        out = []
        for img, name in zip(images, image_classes, strict=True):
            value = truth[np.asarray(img).tobytes()]
            out.append(Caption(value if value in candidates[name] else None, 1.0))
        return out


class RetrievalGenerator(ImageGenerator):
    """A user's non-text generator: retrieves world images of the class (and value)."""

    def __init__(self, pool):
        self.pool = pool

    def generate(self, requests, *, progress=None):
        out = []
        for req in requests:
            rng = np.random.default_rng(req.seed)
            idx = [
                i
                for i, (y, g) in enumerate(zip(self.pool.labels, self.pool.groups, strict=False))
                if y == req.class_index and (req.value is None or g == req.value)
            ]
            pick = rng.choice(idx, size=req.count, replace=True)
            out.append([self.pool[int(i)][0] for i in pick])
        return out


@pytest.fixture(scope="module")
def world_data():
    world = ToyWorld(seed=1)
    return world, world.train(per_class=20), world.debug(1200), world.test(600)


def _debugger(world, debug, pool, **kw):
    settings = dict(
        extractor=TorchExtractor(_model(), batch_size=256, progress=False),
        proposer=StaticProposer(world.uncommon_values()),
        captioner=LookupCaptioner(debug),
        generator=RetrievalGenerator(pool),
        class_names=NAMES,
        k=[1, 2],
        lam=[0.5, 1.0],
        images_per_mode=[3, 5],
        progress=False,
    )
    settings.update(kw)
    return Debugger(**settings)


def test_split_is_disjoint_balanced_and_seeded(world_data):
    world, _, debug, _ = world_data
    dbg = _debugger(world, debug, debug)
    failures = dbg.find_failures(debug, seed=3)
    seed, held, val = set(failures.seed), set(failures.heldout), set(failures.validation)
    assert not seed & held and not seed & val and not held & val
    labels, preds = failures.labels, failures.predictions
    assert (preds[failures.seed] != labels[failures.seed]).all()
    assert (preds[failures.heldout] != labels[failures.heldout]).all()
    outside = np.setdiff1d(np.arange(len(labels)), failures.validation)
    assert seed | held == set(outside[preds[outside] != labels[outside]].tolist())
    for c in range(len(NAMES)):
        n_seed = int((labels[failures.seed] == c).sum())
        n_held = int((labels[failures.heldout] == c).sum())
        assert n_held - n_seed in (0, 1)
        n_val = int((labels[failures.validation] == c).sum())
        assert n_val == round(0.2 * int((labels == c).sum()))
    again = dbg.find_failures(debug, seed=3)
    assert np.array_equal(again.seed, failures.seed)
    other = dbg.find_failures(debug, seed=4)
    assert not np.array_equal(other.seed, failures.seed)


def test_run_end_to_end_with_user_components(world_data):
    world, train, debug, test = world_data
    pool = world.sample(np.arange(2000) % 10, biased=False, seed=99, style="generated")
    dbg = _debugger(world, debug, pool)
    result = dbg.run(train, debug, test, seed=0)
    acc = result.accuracy
    assert acc["before"]["debug_seed"] == 0 and acc["before"]["debug_heldout"] == 0
    assert list(acc) == ["before", "dfr", "failmodes", "random", "uniform", "refit"]
    cfg = result.config
    assert cfg["k"] in (1, 2) and cfg["lam"] in (0.5, 1.0) and cfg["images_per_mode"] in (3, 5)
    grids = dbg.grids()
    assert cfg["lam_real"] in [0.0, *grids["lam_real"]] and result.chosen in ("dfr", "failmodes")
    # the chosen candidate is the best eligible one on validation failures
    rows = result.selection[result.selection.method == "failmodes"]
    chosen = rows[
        (rows.k == cfg["k"])
        & (rows.lam == cfg["lam"])
        & (rows.images_per_mode == cfg["images_per_mode"])
        & (rows.lam_real == cfg["lam_real"])
        & (rows.uniform_prior == cfg["uniform_prior"])
    ]
    shape = [len(grids[name]) for name in ("k", "images_per_mode", "lam", "uniform_prior")]
    assert len(rows) == np.prod(shape) * (1 + len(grids["lam_real"]))
    assert len(chosen) == 1 and rows.eligible.any() and chosen.chosen.iloc[0]
    assert chosen.eligible.iloc[0]
    # the lowest loss on the validation part's failures (the default select_by)
    assert chosen.val_failure_loss.iloc[0] == rows[rows.eligible].val_failure_loss.min()
    # the chosen modes are the top k of the captions, and the images cover exactly those
    assert result.modes.modes == result.modes.top_k(cfg["k"])
    made = result.generated
    covered = {(NAMES[y], v) for y, v in zip(made.labels, made.values, strict=True)}
    assert covered <= {(c, v) for c, vs in result.modes.modes.items() for v in vs}
    # every method gets the same number of images per class
    counts = np.bincount(result.generated.labels, minlength=len(NAMES))
    for method in ("random", "uniform"):
        other = np.bincount(result.baseline_generated[method].labels, minlength=len(NAMES))
        assert np.array_equal(counts, other)
    assert all(v is None for v in result.baseline_generated["random"].values)
    # modes are among the class's proposals; generation covers exactly the chosen modes
    for name, values in result.modes.modes.items():
        assert len(values) <= cfg["k"]
        assert set(values) <= set(world.uncommon_values()[name])
    assert {(r.class_name, r.value) for r in result.generated.requests} >= {
        (c, v) for c, vs in result.modes.modes.items() for v in vs
    }
    assert result.caption_accuracy == 1.0
    summary = result.summary()
    for key in (
        "test_acc_before",
        "heldout_acc_after",
        "random_heldout_acc_after",
        "uniform_heldout_acc_after",
        "refit_heldout_acc_after",
        "dfr_heldout_acc_after",
        "chosen_method",
        "n_failures",
        "caption_accuracy",
        "failure_modes",
        "config",
    ):
        assert key in summary
    frame = result.to_frame()
    assert list(frame.index) == ["before", "dfr", "failmodes", "random", "uniform", "refit"]
    assert "worst_group_test" in frame.columns
    # the debug set knows its true values: held-out failures inside and outside the modes
    m = result.mode_accuracy
    assert m.n_in > 0 and m.n_in + m.n_out == len(result.failures.heldout)
    assert set(m.accuracy) == {"dfr", "failmodes", "random", "uniform", "refit"}
    for method, sides in m.accuracy.items():
        parts = m.n_in * sides["in_modes"] + m.n_out * sides["out_of_modes"]
        assert parts == pytest.approx(acc[method]["debug_heldout"] * (m.n_in + m.n_out))
    assert summary["heldout_in_modes_share"] == m.share
    uniform_out = m.accuracy["uniform"]["out_of_modes"]
    assert summary["uniform_heldout_out_of_modes_acc_after"] == uniform_out


def test_run_is_deterministic(world_data):
    world, train, debug, test = world_data
    a = _debugger(world, debug, debug, baselines=False, k=2, lam=1.0, images_per_mode=3)
    r1 = a.run(train, debug, test, seed=5)
    r2 = a.run(train, debug, test, seed=5)
    assert r1.accuracy == r2.accuracy
    assert torch.equal(r1.heads["failmodes"].weight, r2.heads["failmodes"].weight)


def test_components_swap_one(world_data):
    world, _, debug, _ = world_data
    dbg = _debugger(world, debug, debug)
    other = RetrievalGenerator(debug)
    swapped = Debugger(**{**dbg.components, "generator": other})
    assert swapped.generator is other and swapped.captioner is dbg.captioner
    replaced = dbg.replace(generator=other, k=2)
    assert replaced.generator is other and replaced.k == 2 and replaced.captioner is dbg.captioner
    assert dbg.generator is not other and dbg.k != 2  # the original is left as it is
    assert replaced.components == {**dbg.components, "generator": other, "k": 2}
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['generater'\]"):
        dbg.replace(generater=other)
    with pytest.raises(ValueError, match=r"not in class_names: \['unicorn'\]"):
        dbg.requests({("unicorn", None): 2}, seed=0)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"k": 0}, "k must be"),
        ({"lam": -1.0}, "lam must be"),
        ({"images_per_mode": [2.5]}, "images_per_mode must be an integer"),
        ({"class_names": NAMES[:-1] + [NAMES[0]]}, "unique"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"rank": "lift"}, r"rank must be one of \['excess', 'count'\]"),
    ],
)
def test_bad_settings_are_named_when_the_debugger_is_made(world_data, kw, match):
    world, train, debug, test = world_data
    with pytest.raises(ValueError, match=match):
        _debugger(world, debug, debug, **kw)
    dbg = _debugger(world, debug, debug)
    with pytest.raises(ValueError, match=match):
        dbg.replace(**kw)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dbg.k = 0  # a Debugger that exists stays valid


def test_class_names_that_do_not_fit_the_data_are_named(world_data):
    world, train, debug, test = world_data
    dbg = _debugger(world, debug, debug, class_names=NAMES[:-1])
    with pytest.raises(ValueError, match="labels outside"):
        dbg.run(train, debug, test)


def test_missing_component_is_named(world_data):
    world, train, debug, test = world_data
    dbg = _debugger(world, debug, debug, generator=None)
    with pytest.raises(ValueError, match="generator"):
        dbg.run(train, debug, test)
    with pytest.raises(TypeError, match="captioner must be a FailureCaptioner"):
        _debugger(world, debug, debug, captioner=object())


def test_class_with_failures_but_no_proposals(world_data):
    world, train, debug, test = world_data
    values = world.uncommon_values()
    values[NAMES[0]] = []
    dbg = _debugger(world, debug, debug, proposer=StaticProposer(values))
    with pytest.raises(ValueError, match=f"\\['{NAMES[0]}'\\] have failures but no proposed"):
        dbg.run(train, debug, test)


def test_no_failures_is_an_error(world_data):
    world, _, debug, _ = world_data
    # a head that predicts the label perfectly from a one-hot "backbone"
    onehot = nn.Linear(len(NAMES), len(NAMES))
    with torch.no_grad():
        onehot.weight.copy_(torch.eye(len(NAMES)) * 10)
        onehot.bias.zero_()

    class Perfect(FeatureExtractor):
        head = onehot

        def extract(self, data, *, batch_size=None, progress=None):
            return torch.eye(len(NAMES))[torch.as_tensor(labels_of(data))]

    dbg = _debugger(world, debug, debug, extractor=Perfect())
    with pytest.raises(ValueError, match="no failures"):
        dbg.find_failures(debug)


def test_extractor_head_must_fit_features(world_data):
    world, train, debug, test = world_data
    extractor = TorchExtractor(
        backbone=nn.Sequential(nn.AvgPool2d(4), nn.Flatten()), head=nn.Linear(10, len(NAMES))
    )
    dbg = _debugger(world, debug, debug, extractor=extractor)
    with pytest.raises(ValueError, match="head takes 10"):
        dbg.find_failures(debug)


def test_config_records_every_setting_and_components_come_from_the_signature(world_data):
    import inspect

    world, train, debug, test = world_data
    dbg = _debugger(world, debug, debug, baselines=False, k=2, lam=1.0, images_per_mode=3)
    names = list(inspect.signature(Debugger).parameters)
    assert set(names) == set(RULES)  # every setting has its rule in the one table
    assert Debugger(**dbg.components).components == dbg.components
    config = dbg.run(train, debug, test, seed=0).config
    assert set(config) >= (set(names) - {"class_names"}) | {"k_grid", "lam_grid", "seed"}
    assert config["image_filter"] is None and config["filter_rounds"] == 2
    assert config["baselines"] is False and config["lam_grid"] == [1.0]
    assert config["generator"].endswith("RetrievalGenerator")
    assert config["head_trainer"] == "failmodes.heads.linear.LinearHeadTrainer"


def test_prepare_is_what_the_steps_share(world_data):
    world, train, debug, test = world_data
    dbg = _debugger(world, debug, debug)
    prep = dbg.prepare(train, debug, test, seed=3)
    failures = dbg.find_failures(debug, seed=3)
    assert np.array_equal(prep.failures.heldout, failures.heldout)
    assert len(prep.test) == len(test) and prep.guard_source == "train"
    assert len(prep.train) + len(prep.guard) == len(train)  # a share held out as the guard
    assert len(prep.guard) == len(NAMES) * round(0.2 * len(train) / len(NAMES))
    unguarded = dbg.prepare(train, debug, test, seed=3, guard=False)
    assert len(unguarded.train) == len(train) and unguarded.guard is None
    val = prep.validation["validation"]
    assert val.labels.tolist() == [debug.labels[i] for i in failures.validation]
    assert (dbg.evaluate(prep.head, prep.validation)["validation_failures"]) == 0.0
    again = dbg.prepare(train, debug, seed=0, failures=failures)
    assert again.failures is failures and again.test is None


@pytest.mark.parametrize(
    ("lam", "match"),
    [(-1.0, "lam must be a number >= 0 and <= 1000000, got -1.0"), (float("nan"), "got nan")],
)
def test_lam_has_one_message_in_the_constructor_and_in_repair(world_data, lam, match):
    world, train, debug, test = world_data
    with pytest.raises(ValueError, match=match):
        _debugger(world, debug, debug, lam=[0.5, lam])
    dbg = _debugger(world, debug, debug)
    features = dbg.features(train)
    with pytest.raises(ValueError, match=match):
        dbg.repair(features, lam=lam)


def test_every_progress_setting_defaults_to_a_bar_on_a_terminal():
    import inspect

    from failmodes import (
        CLIPCaptioner,
        LinearHeadTrainer,
        OpenCLIPExtractor,
        StableDiffusionGenerator,
        TimmExtractor,
    )
    from failmodes.progress import progress_bar
    from failmodes.toyworld import ToyWorldGenerator, demo_components, run_demo

    for owner in (
        TorchExtractor,
        TimmExtractor,
        OpenCLIPExtractor,
        CLIPCaptioner,
        StableDiffusionGenerator,
        LinearHeadTrainer,
        ToyWorldGenerator,
        Debugger,
        demo_components,
        run_demo,
    ):
        default = inspect.signature(owner).parameters["progress"].default
        assert default is None, owner
    assert progress_bar(range(3), progress=None).disable  # stderr is not a terminal in tests
    assert not progress_bar(range(3), progress=True).disable


class CountedReads(torch.utils.data.Dataset):
    """A user's dataset without ``targets``: its labels come only from reading its items."""

    def __init__(self, data):
        self.data, self.reads = data, 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        self.reads += 1
        return self.data[i]


def test_prepare_reads_the_items_of_a_dataset_without_targets_once_for_labels(world_data):
    # the labels read to check the guard's share (train) and the failures given (debug) are
    # the labels the features take: one pass for them, one for the features
    world, train, debug, _ = world_data
    dbg = _debugger(world, debug, debug, cache=False)
    failures = dbg.find_failures(debug, seed=0)
    counted_train, counted_debug = CountedReads(train), CountedReads(debug)
    prep = dbg.prepare(counted_train, counted_debug, seed=0, failures=failures)
    # (and one item looked at first, to see what the data holds)
    assert counted_train.reads // len(train) == 2 and counted_debug.reads // len(debug) == 2
    assert prep.guard is not None and (prep.debug.labels == labels_of(debug)).all()
