"""A run's TOML file: every problem is found before any work, in one line that names its key;
a good file builds the components, the engine and the datasets it describes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from failmodes import Debugger
from failmodes.cache import data_fingerprint
from failmodes.cli import main
from failmodes.config import SHORT_NAMES, ConfigError, load_config
from failmodes.extractors import TorchExtractor

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# ToyWorld parts at their smallest: checking reads no data, building takes a second
NAMES = """class_names = ["circle", "square", "triangle", "star", "cross", "ring", "heart", "arrow",
               "crescent", "bar"]"""
TRAIN = 'train = {factory = "failmodes.toyworld.parts:split", kwargs = {name = "train", size = 5}}'
SPLIT = '{factory = "failmodes.toyworld.parts:split", kwargs = {name = "debug", size = 60}'
BASE = f"""
seed = 0
{NAMES}

[model]
factory = "failmodes.toyworld.parts:classifier"
kwargs = {{per_class = 5}}

[datasets]
{TRAIN}
debug = {SPLIT}, take = 40}}
test = {SPLIT}, skip = 40}}

[proposer]
factory = "failmodes.toyworld.parts:proposer"

[head_trainer]
class = "linear"
weight_decay = 0.1

[debugger]
k = 2
"""


def _write(folder: Path, text: str, name: str = "run.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _image_folder(root: Path, classes=("n01", "n02", "n03"), per_class=6) -> None:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (8, 8), (40 * c, 20 * i, 0)).save(root / name / f"{i}.png")


BAD = [
    ("[model]", "[modle]", "modle", "unknown key; expected one of: seed, class_names, model"),
    (
        "kwargs = {per_class = 5}",
        "kwargs = {per_clas = 5}",
        "model.kwargs.per_clas",
        "unknown argument of classifier; expected one of: per_class, seed",
    ),
    (
        "kwargs = {per_class = 5}",
        'kwargs = {per_class = "5"}',
        "model.kwargs.per_class",
        "expected an integer, got a string '5'",
    ),
    (":classifier", ":clasifier", "model.factory", "'failmodes.toyworld.parts' has no 'clasifier'"),
    (
        "failmodes.toyworld.parts:classifier",
        "no_such_module:build",
        "model.factory",
        "cannot import 'no_such_module'",
    ),
    (
        "[model]\n",
        '[model]\ntimm = "resnet50"\n',
        "model",
        "expected exactly one of timm, factory; got timm and factory",
    ),
    (
        "kwargs = {per_class = 5}",
        'kwargs = {per_class = 5}\ndevise = "cpu"',
        "model.devise",
        "unknown key; expected one of: factory, kwargs, transform, batch_size, device",
    ),
    (
        "kwargs = {per_class = 5}",
        "kwargs = {per_class = 5}\nbatch_size = 0.5",
        "model.batch_size",
        "expected an integer, got a number 0.5",
    ),
    ("take = 40", "take = 0", "datasets.debug.take", "expected an integer >= 1, got an integer 0"),
    ("take = 40", "take = 40, tkae = 3", "datasets.debug.tkae", "unknown key; expected one of"),
    (
        "test = {",
        "tset = {",
        "datasets.tset",
        "unknown dataset; expected one of: train, debug, test, guard, extra",
    ),
    (
        TRAIN,
        'train = {path = "imagenet/train"}',
        "datasets.train.path",
        "imagenet/train does not exist",
    ),
    (
        '{name = "train", size = 5}',
        '{name = "train"}',
        "datasets.train.kwargs",
        "missing size, needed by split",
    ),
    (
        '{name = "train", size = 5}',
        '{name = "train", size = 5, sead = 1}',
        "datasets.train.kwargs.sead",
        "unknown argument of split",
    ),
    (
        TRAIN,
        'train = {hf = "cifar10"}',
        "datasets.train.split",
        "missing: a Hugging Face dataset needs its split",
    ),
    (
        'factory = "failmodes.toyworld.parts:proposer"',
        'class = "chatgtp"',
        "proposer.class",
        f"expected a short name ({', '.join(SHORT_NAMES)})",
    ),
    (
        'factory = "failmodes.toyworld.parts:proposer"',
        'class = "chatgpt"\nmodle = "gpt-4.1"',
        "proposer.modle",
        "unknown argument of ChatGPTProposer; expected one of: model, client",
    ),
    (
        'factory = "failmodes.toyworld.parts:proposer"',
        'class = "chatgpt"\nmax_retries = "2"',
        "proposer.max_retries",
        "expected an integer, got a string '2'",
    ),
    (
        'factory = "failmodes.toyworld.parts:proposer"',
        'class = "clip"',
        "proposer",
        "clip is not a BackgroundProposer",
    ),
    (
        "weight_decay = 0.1",
        "weight_decay = 0.1\nsolver = 3",
        "head_trainer.solver",
        "expected a string, got an integer 3",
    ),
    (
        "k = 2",
        'k = "five"',
        "debugger.k",
        "expected an integer or a list of integers, got a string 'five'",
    ),
    ("k = 2", "k = [2, 0]", "debugger.k", "must be an integer >= 1, got 0"),
    ("k = 2", 'k = 2\nrank = "lift"', "debugger.rank", "must be one of ['excess', 'count']"),
    ("k = 2", "k = 2\ntolerance = 2", "debugger.tolerance", "must be a number >= 0 and <= 1"),
    (
        "k = 2",
        'k = 2\nproposer = "chatgpt"',
        "debugger.proposer",
        "not a Debugger setting ([proposer] is a table of its own)",
    ),
    ("k = 2", "k = 2\nlams = [0.5]", "debugger.lams", "not a Debugger setting; expected one of"),
    ("k = 2", "k = 2\n[engine]\nspark = {}", "engine", 'expected "local", "ray" or a table'),
    (
        "k = 2",
        "k = 2\n[engine.ray]\nwokers = 2",
        "engine.ray.wokers",
        "unknown argument of RayEngine; expected one of: address, workers",
    ),
    (
        "k = 2",
        'k = 2\n[engine.ray]\nworkers = "8"',
        "engine.ray.workers",
        "expected an integer, got a string '8'",
    ),
    ("seed = 0", "seed = -1", "seed", "must be an integer >= 0 and <= 4294967295, got -1"),
    (
        NAMES,
        'class_names = "abc"',
        "class_names",
        "expected 'module:name' or 'package.module.Name', got 'abc'",
    ),
    (
        'class_names = ["circle", "square"',
        'class_names = ["circle", "circle"',
        "class_names",
        "must be unique; repeated: ['circle']",
    ),
    (NAMES, 'class_names = {file = "names.txt"}', "class_names.file", "names.txt does not exist"),
    (
        "k = 2",
        'k = 2\n[image_filter]\nclass = "caption"\ncaptioner = {class = "clip", modle = 1}',
        "image_filter.captioner.modle",
        "unknown argument of CLIPCaptioner",
    ),
]


@pytest.mark.parametrize(("old", "new", "key", "says"), BAD, ids=[case[2] for case in BAD])
def test_a_bad_key_is_named_with_what_was_expected(tmp_path, old, new, key, says):
    assert old in BASE
    path = _write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.key == key
    message = str(error.value)
    assert message.startswith(f"{key}: ") and says in message, message
    assert "\n" not in message


def test_the_base_file_is_good(tmp_path):
    config = load_config(_write(tmp_path, BASE))
    assert (config.seed, config.engine) == (0, "local")
    assert config.class_names[:2] == ["circle", "square"]


def test_a_file_that_is_not_toml_or_not_there_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^run.toml is not valid TOML: .*line 2"):
        load_config(_write(tmp_path, "seed = 0\nk = \n"))
    with pytest.raises(ConfigError, match=r"^cannot read .*missing.toml: No such file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"^model: missing: a run needs \[model\]"):
        load_config(_write(tmp_path, "seed = 0\n"))


def test_checking_builds_nothing(tmp_path):
    """A factory that would fail when called passes the check: only its signature is read."""
    path = _write(
        tmp_path, BASE.replace('{name = "debug", size = 60}, take', '{name = "x", size = 60}, take')
    )
    config = load_config(path)
    with pytest.raises(
        ConfigError,
        match=r"^datasets.debug.factory: split\(...\) refused its "
        r"arguments: split must be one of",
    ):
        config.build()


MODEL = 'factory = "failmodes.toyworld.parts:classifier"\nkwargs = {per_class = 5}'
ABSENT = f"cuda:{max(9, torch.cuda.device_count())}"  # a CUDA device this machine lacks
COUNT = torch.cuda.device_count()

# each passed the check and then failed at run time with a traceback
PASSED_THE_CHECK = [
    (
        "failmodes.toyworld.parts:classifier",
        ".parts:generator",
        "model.factory",
        "expected an absolute 'module:attribute' (a module that `import` finds), got "
        "'.parts:generator'",
    ),
    (
        NAMES,
        'class_names = "math:sqrt"',
        "class_names",
        "math:sqrt takes arguments (x); expected a list of strings, or a function of no "
        "arguments that returns one",
    ),
    ("k = 2", "k = 2\nlam = inf", "debugger.lam", "must be a number >= 0 and <= 1000000, got inf"),
    (MODEL, f"{MODEL}\nbatch_size = 0", "model.batch_size", "must be an integer >= 1, got 0"),
    (
        MODEL,
        f'{MODEL}\nprecision = "int4"',
        "model.precision",
        "must be one of ['auto', 'float32', 'float16', 'bfloat16'], got 'int4'",
    ),
    (
        MODEL,
        'timm = "resnet_nope"\npretrained = false',
        "model.timm",
        "must be a timm model name (timm.list_models()), got 'resnet_nope'",
    ),
    (
        MODEL,
        'timm = "test_resnet"\nmodel_kwargs = {pretrained = false}',
        "model.model_kwargs",
        "must leave out pretrained: pass pretrained= to TimmExtractor itself",
    ),
    (
        MODEL,
        f'{MODEL}\ndevice = "{ABSENT}"',
        "model.device",
        f"must be a device of this machine, got '{ABSENT}' but this machine has {COUNT} CUDA "
        "device",
    ),
    (
        MODEL,
        f'{MODEL}\ndevice = "gpu"',
        "model.device",
        "must be a torch device ('cpu', 'cuda', 'cuda:1', 'mps'), got 'gpu'",
    ),
    (
        "weight_decay = 0.1",
        "weight_decay = -0.1",
        "head_trainer.weight_decay",
        "must be a finite number >= 0, got -0.1",
    ),
]


def _refused_in_one_line(path: Path, capsys, key: str, says: str) -> None:
    """``load_config`` names the key; ``failmodes run --check`` says it in one line, status 2."""
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.key == key
    assert str(error.value).startswith(f"{key}: ") and says in str(error.value), str(error.value)
    assert main(["run", str(path), "--check"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    [line] = err.splitlines()
    assert line == f"failmodes run: error: {path}: {error.value}"


@pytest.mark.parametrize(
    ("old", "new", "key", "says"), PASSED_THE_CHECK, ids=[c[2] for c in PASSED_THE_CHECK]
)
def test_what_failed_at_run_time_is_refused_by_the_check(tmp_path, capsys, old, new, key, says):
    assert old in BASE
    _refused_in_one_line(_write(tmp_path, BASE.replace(old, new, 1)), capsys, key, says)


def test_a_module_whose_import_raises_is_one_line_naming_the_key(tmp_path, capsys, monkeypatch):
    (tmp_path / "explodes_on_import.py").write_text("raise RuntimeError('boom\\nat import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = BASE.replace("failmodes.toyworld.parts:classifier", "explodes_on_import:classifier")
    _refused_in_one_line(
        _write(tmp_path, text),
        capsys,
        "model.factory",
        "importing module 'explodes_on_import' raised RuntimeError: boom at import",
    )


NAMES_MODULE = """
def broken():
    raise RuntimeError("no names here")

def number():
    return 3

def names():
    return ("fox", "owl")
"""


@pytest.mark.parametrize(
    ("function", "says"),
    [
        (
            "broken",
            "names_probe:broken() raised RuntimeError: no names here; expected it to return a "
            "list of strings",
        ),
        ("number", "names_probe:number() returned an integer 3; expected a list of strings"),
    ],
)
def test_class_names_from_a_function_is_called_and_its_failure_named(
    tmp_path, capsys, monkeypatch, function, says
):
    (tmp_path / "names_probe.py").write_text(NAMES_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    text = BASE.replace(NAMES, f'class_names = "names_probe:{function}"')
    _refused_in_one_line(_write(tmp_path, text), capsys, "class_names", says)
    good = _write(tmp_path, text.replace(f":{function}", ":names"), "good.toml")
    assert load_config(good).class_names == ["fox", "owl"]


def test_a_device_of_another_machine_is_checked_by_name_alone(tmp_path):
    """Without its paths (a file for another machine), or on Ray, the machine is not asked."""
    text = BASE.replace(MODEL, f'{MODEL}\ndevice = "{ABSENT}"')
    assert load_config(_write(tmp_path, text), check_paths=False).data["model"]["device"] == ABSENT
    ray = _write(tmp_path, text.replace("seed = 0", 'seed = 0\nengine = "ray"'), "ray.toml")
    assert load_config(ray).engine == "ray"
    with pytest.raises(ConfigError, match="^model.device: must be a torch device"):
        load_config(_write(tmp_path, text.replace(ABSENT, "gpu")), check_paths=False)


def test_a_setting_error_at_run_time_says_nothing_of_the_images():
    """The note on the images is for the model's errors, not for a setting the error names."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    data = [(torch.rand(3, 2, 2), i % 2) for i in range(4)]
    dbg = Debugger(extractor=TorchExtractor(model, precision="int4"), class_names=["a", "b"])
    with pytest.raises(ValueError, match=r"^precision must be one of .*'int4'$") as caught:
        dbg.features(data, name="train")
    assert getattr(caught.value, "__notes__", []) == []


# -- building -----------------------------------------------------------------------------------


def test_the_base_file_builds_its_components_and_datasets(tmp_path):
    built = load_config(_write(tmp_path, BASE)).build()
    dbg = built.debugger
    assert type(dbg.extractor).__name__ == "TorchExtractor"  # a plain nn.Module
    assert type(dbg.proposer).__name__ == "StaticProposer"
    assert dbg.head_trainer.weight_decay == 0.1 and dbg.k == 2 and dbg.captioner is None
    assert type(dbg.engine).__name__ == "LocalEngine"
    assert (len(built.train), len(built.debug), len(built.test)) == (50, 40, 20)
    # one shuffle of the same 60 images: the debug and test sets share none, and cover them all
    debug, test = set(built.debug.indices), set(built.test.indices)
    assert not debug & test and debug | test == set(range(60))
    assert built.debug.dataset.labels == built.test.dataset.labels  # the same source
    assert (built.seed, built.guard, built.extra) == (0, None, {})


def test_the_seed_draws_the_split(tmp_path):
    first = load_config(_write(tmp_path, BASE, "a.toml")).build()
    again = load_config(_write(tmp_path, BASE, "b.toml")).build()
    other = load_config(_write(tmp_path, BASE.replace("seed = 0", "seed = 1"), "c.toml")).build()
    assert first.debug.indices == again.debug.indices != other.debug.indices


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ('engine = "local"', "LocalEngine()"),
        (
            'engine = "ray"',
            "RayEngine(address=None, workers=None, gpus_per_worker=0, cpus_per_worker=1)",
        ),
        (
            'engine = {ray = {address = "auto", workers = 8, gpus_per_worker = 1}}',
            "RayEngine(address='auto', workers=8, gpus_per_worker=1, cpus_per_worker=1)",
        ),
    ],
)
def test_the_engine_is_local_or_ray(tmp_path, engine, expected):
    path = _write(tmp_path, BASE.replace("seed = 0", f"seed = 0\n{engine}"))
    assert repr(load_config(path).build().debugger.engine) == expected


def test_a_timm_model_by_name_and_by_factory(tmp_path):
    by_name = '[model]\ntimm = "test_resnet"\npretrained = false\nmodel_kwargs = {num_classes = 10}'
    by_factory = (
        '[model]\nfactory = "timm:create_model"\ndevice = "cpu"\n'
        'kwargs = {model_name = "test_resnet", pretrained = false, num_classes = 3}'
    )
    model = BASE[BASE.index("[model]") : BASE.index("[datasets]")]
    for n, (text, classes) in enumerate(((by_name, 10), (by_factory, 3))):
        path = _write(tmp_path, BASE.replace(model, text + "\n\n"), f"{n}.toml")
        extractor = load_config(path).build().debugger.extractor
        assert type(extractor).__name__ == "TimmExtractor"  # timm's transform and pre-logits
        assert extractor.head.out_features == classes


def test_a_model_factory_must_return_a_module(tmp_path):
    path = _write(
        tmp_path,
        BASE.replace("failmodes.toyworld.parts:classifier", "builtins:dict").replace(
            "kwargs = {per_class = 5}", ""
        ),
    )
    with pytest.raises(
        ConfigError,
        match=r"^model.factory: returned a dict; expected a torch "
        "nn.Module or a FeatureExtractor$",
    ):
        load_config(path).build()


def test_image_folders_relative_to_the_file_subsets_and_class_names(tmp_path, monkeypatch):
    _image_folder(tmp_path / "data" / "train")
    _image_folder(tmp_path / "data" / "val")
    text = BASE.replace(NAMES, "")
    text = text.replace(
        text[text.index("[datasets]") : text.index("[proposer]")],
        '[datasets]\ntrain = {path = "data/train", per_class = 2}\n'
        'debug = {path = "data/val", take = 10, cache_key = "toy-val"}\n'
        'test = {path = "data/val", skip = 10, cache_key = "toy-val"}\n\n',
    )
    (tmp_path / "configs").mkdir()
    path = _write(tmp_path / "configs", text.replace('"data/', '"../data/'))
    monkeypatch.chdir(tmp_path / "configs" / "..")  # a folder other than the file's
    built = load_config(path).build()
    assert built.debugger.class_names == ["n01", "n02", "n03"]  # read from the train folder
    assert [built.train[i][1] for i in range(len(built.train))] == [0, 0, 1, 1, 2, 2]
    assert (len(built.debug), len(built.test)) == (10, 8)
    assert isinstance(built.debug[0][0], Image.Image)  # no transform: the steps read PIL images
    fingerprint = data_fingerprint(built.debug)
    assert fingerprint["subset_of"] == {"name": "toy-val"}  # the folder's files are not read
    assert data_fingerprint(built.test)["indices"] != fingerprint["indices"]


def test_a_missing_folder_can_be_left_unchecked(tmp_path):
    path = _write(tmp_path, BASE.replace(TRAIN, 'train = {path = "nowhere"}'))
    with pytest.raises(ConfigError, match="^datasets.train.path: .*nowhere does not exist"):
        load_config(path)
    assert load_config(path, check_paths=False).data["datasets"]["train"] == {"path": "nowhere"}


def test_a_hugging_face_dataset(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    images = [Image.new("RGB", (8, 8), (30 * i, 0, 0)) for i in range(6)]
    features = datasets.Features(
        {"img": datasets.Image(), "y": datasets.ClassLabel(names=["fox", "owl", "cat"])}
    )
    data = datasets.Dataset.from_dict({"img": images, "y": [0, 1, 2, 0, 1, 2]}, features=features)
    data.to_parquet(str(tmp_path / "train.parquet"))
    source = (
        f'hf = "parquet", split = "train", image = "img", label = "y", kwargs = {{data_files = '
        f'"{tmp_path / "train.parquet"}", cache_dir = "{tmp_path / "hf"}"}}'
    )
    text = BASE.replace(NAMES, "").replace(TRAIN, f"train = {{{source}}}")
    built = load_config(_write(tmp_path, text)).build()
    assert built.debugger.class_names == ["fox", "owl", "cat"]  # the ClassLabel's names
    image, label = built.train[4]
    assert isinstance(image, Image.Image) and label == 1 and built.train.targets[:3] == [0, 1, 2]
    assert "hf" in data_fingerprint(built.train)["name"]  # by its files, no image decoded
    with pytest.raises(
        ConfigError, match="^datasets.train.label: no column 'label'; the columns are img, y$"
    ):
        load_config(_write(tmp_path, text.replace(', label = "y"', ""))).build()


def test_without_the_datasets_package_the_extra_is_named(tmp_path):
    path = _write(tmp_path, BASE.replace(TRAIN, 'train = {hf = "cifar10", split = "train"}'))
    code = (
        "import sys\nsys.modules['datasets'] = None\nfrom failmodes.config import load_config\n"
        f"load_config({str(path)!r})"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "datasets.train.hf (Hugging Face datasets)" in done.stderr
    assert 'pip install "failmodes[datasets]"' in done.stderr


# -- the examples -----------------------------------------------------------------------------


def test_the_imagenet_example_checks_without_its_paths(tmp_path):
    config = load_config(EXAMPLES / "imagenet.toml", check_paths=False)
    data = config.data
    assert data["model"] == {
        "timm": "resnet50",
        "pretrained": True,
        "device": "cuda",
        "batch_size": 256,
        "num_workers": 8,
    }
    assert (data["debugger"]["k"], data["debugger"]["lam"]) == (5, 0.5)
    assert data["datasets"]["train"]["per_class"] == 30
    assert data["datasets"]["debug"]["take"] == data["datasets"]["test"]["skip"] == 30_000
    assert len(config.class_names) == 1000 and config.class_names[:2] == ["tench", "goldfish"]
    assert config.engine == "local"
    shutil.copy(EXAMPLES / "imagenet-classes.txt", tmp_path)
    on_cpu = (EXAMPLES / "imagenet.toml").read_text().replace('device = "cuda"', 'device = "cpu"')
    with pytest.raises(ConfigError, match="^datasets.train.path: .*/data/imagenet/train does not"):
        load_config(_write(tmp_path, on_cpu, "imagenet.toml"))  # a machine without its paths


def test_the_imagenet_example_builds_on_a_folder_and_on_ray(tmp_path):
    _image_folder(tmp_path / "imagenet" / "train")
    _image_folder(tmp_path / "imagenet" / "val")
    text = (EXAMPLES / "imagenet.toml").read_text()
    text = text.replace("/data/imagenet", str(tmp_path / "imagenet"))
    text = text.replace("take = 30000", "take = 12").replace("skip = 30000", "skip = 12")
    ray = '# [engine.ray]\n# address = "auto"\n# workers = 8\n# gpus_per_worker = 1\n'
    assert ray in text
    text = text.replace(ray, ray.replace("# ", ""))
    shutil.copy(EXAMPLES / "imagenet-classes.txt", tmp_path)
    built = load_config(_write(tmp_path, text, "imagenet.toml")).build()  # nothing downloads
    dbg = built.debugger
    assert (dbg.extractor.model, dbg.extractor.pretrained, dbg.extractor.device) == (
        "resnet50",
        True,
        "cuda",
    )
    assert (dbg.proposer.model, dbg.captioner.model, dbg.captioner.pretrained) == (
        "gpt-4.1-mini",
        "ViT-B-32",
        "openai",
    )
    assert dbg.generator.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert (dbg.head_trainer.solver, dbg.head_trainer.weight_decay) == ("lbfgs", 0.0005)
    assert (dbg.k, dbg.lam, dbg.images_per_mode, dbg.attribute) == (5, 0.5, 10, "background")
    assert repr(dbg.engine) == (
        "RayEngine(address='auto', workers=8, gpus_per_worker=1, cpus_per_worker=1)"
    )
    assert (len(built.train), len(built.debug), len(built.test)) == (18, 12, 6)


def test_the_tiny_example_checks():
    config = load_config(EXAMPLES / "imagenet-tiny.toml")
    assert config.class_names[0] == "circle" and config.engine == "local"
    assert set(config.data["datasets"]) == {"train", "debug", "test", "extra"}


# -- the command line ---------------------------------------------------------------------------


def test_the_command_names_the_key_in_one_line_and_writes_nothing(tmp_path, capsys):
    path = _write(tmp_path, BASE.replace("k = 2", "k = 0"))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (f"failmodes run: error: {path}: debugger.k: must be an integer >= 1, got 0\n")
    assert not (tmp_path / "out").exists()


def test_the_command_checks_a_file_without_running_it(tmp_path, capsys):
    path = _write(tmp_path, RUNNABLE)
    assert main(["run", str(path), "--check", "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out == (
        f"failmodes run: {path} (seed 0, engine local): checked, nothing run\n"
    )
    assert not (tmp_path / "out").exists()


def test_the_command_reports_a_missing_file_and_an_unusable_folder(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "failmodes.cli", "run", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"failmodes run: error: {tmp_path / 'nope.toml'}: cannot read")
    (tmp_path / "a-file").write_text("x")
    path = _write(tmp_path, BASE)
    assert main(["run", str(path), "--out", str(tmp_path / "a-file")]) == 2


RUNNABLE = BASE.replace(
    "[head_trainer]",
    '[captioner]\nfactory = "failmodes.toyworld:toyclip_captioner"\n\n'
    '[generator]\nfactory = "failmodes.toyworld.parts:generator"\n\n[head_trainer]',
)


@pytest.mark.parametrize("component", ["captioner", "generator"])
def test_a_run_and_its_check_refuse_a_file_without_a_component_a_run_needs(
    tmp_path, capsys, component
):
    text = BASE if component == "captioner" else RUNNABLE.replace("[generator]\nfactory", "# ")
    path = _write(tmp_path, text)
    load_config(path).build()  # a Debugger for some steps alone is fine
    for check in (["--check"], []):
        assert main(["run", str(path), *check, "--out", str(tmp_path / "out")]) == 2
        said = capsys.readouterr().err
        assert (
            said
            == f"failmodes run: error: {path}: {component}: missing: a run needs [{component}]\n"
        )
    with pytest.raises(ConfigError, match=rf"a run needs \[{component}\]"):
        load_config(path).run()


def test_data_a_run_cannot_use_is_one_line_not_a_traceback(tmp_path, capsys):
    path = _write(tmp_path, RUNNABLE.replace("k = 2", "k = 2\nguard_fraction = 0.05"))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"failmodes run: error: {path}: guard_fraction=0.05 holds out no image")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_stage_lines_are_printed_once_and_the_logger_left_as_it_was(tmp_path, capsys):
    import logging

    from failmodes.progress import STAGE_LOGGER

    stages = logging.getLogger(STAGE_LOGGER)
    before = (stages.level, stages.propagate, list(stages.handlers))
    path = _write(tmp_path, RUNNABLE.replace("k = 2", "k = 2\nguard_fraction = 0.05"))
    for _ in range(2):  # a notebook that calls main twice, its output replaced in between
        assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
        out = capsys.readouterr().out
        assert out.count("building the model, the components and the datasets") == 1
        assert (stages.level, stages.propagate, list(stages.handlers)) == before
