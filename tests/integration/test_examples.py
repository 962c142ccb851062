"""The examples run: their offline modes, end to end, with the real backends on tiny models."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_imagenet_example_tiny_mode_runs_offline(tmp_path, monkeypatch):
    for extra in ("timm", "diffusers", "openai", "open_clip", "torchvision"):
        pytest.importorskip(extra)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    example = _load("imagenet")
    summary = example.main(["--tiny", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "report.html").stat().st_size > 0
    assert saved["config"]["lam"] == example.PAPER["lam"]
    assert saved["n_failures"] > 0 and saved["n_generated"] > 0
    # the tiny chat server's three backgrounds are the candidates of every failure mode
    backgrounds = {"in a desert", "on snow", "in a dark forest"}
    assert {v for values in saved["failure_modes"].values() for v in values} <= backgrounds
    assert summary["heldout_acc_after"] == saved["heldout_acc_after"]


def test_imagenet_splits_follow_the_paper():
    example = _load("imagenet")

    class Folder:
        targets = [i % 4 for i in range(40)]

        def __len__(self):
            return 40

    train = example.per_class_subset(Folder(), 3, seed=0)
    labels = [Folder.targets[i] for i in train.indices]
    assert sorted(labels) == sorted([0, 1, 2, 3] * 3)
    debug, test = example.split_debug_test(Folder(), 30, seed=0)
    assert len(debug) == 30 and len(test) == 10
    assert not set(debug.indices) & set(test.indices)


def test_imagenet_class_names_are_open_clips_made_unique():
    open_clip = pytest.importorskip("open_clip")
    names = _load("imagenet").imagenet_class_names()
    assert len(names) == 1000 and len(set(names)) == 1000
    pairs = enumerate(zip(names, open_clip.IMAGENET_CLASSNAMES, strict=True))
    changed = [i for i, (a, b) in pairs if a != b]
    assert changed == [744, 836]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["quickstart.py", "custom_generator.py"])
def test_toyworld_example_scripts_run(script, monkeypatch, tmp_path, capsys):
    pytest.importorskip("open_clip")
    import runpy

    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    printed = capsys.readouterr().out
    assert "failmodes" in printed and "debug_heldout" in printed
