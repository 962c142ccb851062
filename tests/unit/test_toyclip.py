"""ToyCLIP: the shipped tiny CLIP loads through open_clip as a real CLIP does, and captions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from failmodes.toyworld import ToyWorld, register_toyclip, toyclip_captioner, toyclip_weights  # noqa: E402
from failmodes.toyworld.toyclip import TOYCLIP, toyclip_config  # noqa: E402


def test_import_reads_no_weights_and_imports_no_open_clip():
    code = (
        "import sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: event == 'open' and opened.append(str(args[0])))\n"
        "import failmodes.toyworld.toyclip, failmodes.toyworld\n"
        "assert 'open_clip' not in sys.modules, 'open_clip imported'\n"
        "bad = [p for p in opened if 'weights' in p and 'toyclip' in p]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_register_is_idempotent_and_tokenizer_is_open_clips_bpe():
    assert register_toyclip() == TOYCLIP
    assert register_toyclip() == TOYCLIP
    assert TOYCLIP in open_clip.list_models()
    tokenizer = open_clip.get_tokenizer(TOYCLIP)
    assert isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer)
    reference = open_clip.get_tokenizer("ViT-B-32")
    text = "a photo of a magenta crescent on striped wallpaper"
    tokens = tokenizer([text])
    assert tokens.shape == (1, tokenizer.context_length)
    n = int((tokens != 0).sum())
    assert torch.equal(tokens[0, :n], reference([text])[0, :n])


@pytest.fixture(scope="module")
def loaded():
    register_toyclip()
    model, _, preprocess = open_clip.create_model_and_transforms(
        TOYCLIP, pretrained=str(toyclip_weights())
    )
    return model.eval(), preprocess


def test_weights_load_through_open_clip_and_are_small(loaded):
    model, _ = loaded
    assert toyclip_weights().suffix == ".safetensors"
    assert toyclip_weights().stat().st_size < 10e6
    assert toyclip_config().is_file()
    n_params = sum(p.numel() for p in model.parameters())
    assert 1.5e6 < n_params < 3e6
    assert model.visual.image_size == (32, 32)
    assert model.vocab_size == 49408
    # trained, not freshly initialised: the temperature moved off open_clip's 1 / 0.07
    assert model.logit_scale.exp().item() > 20


def test_preprocess_is_the_training_normalisation(loaded):
    model, preprocess = loaded
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    from PIL import Image

    x = preprocess(Image.fromarray(pixels))
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN)[:, None, None]
    std = torch.tensor(open_clip.OPENAI_DATASET_STD)[:, None, None]
    expected = (torch.from_numpy(pixels).permute(2, 0, 1).float() / 255 - mean) / std
    assert x.shape == (3, 32, 32)
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def captioner():
    return toyclip_captioner(batch_size=256, progress=False)


@pytest.mark.parametrize("attribute", ["background", "color"])
def test_captions_pick_the_true_value(captioner, attribute):
    world = ToyWorld(seed=7, attribute=attribute)
    debug = world.debug(330)
    candidates = world.uncommon_values()
    keep = [
        i
        for i, (c, v) in enumerate(zip(debug.shapes, debug.groups, strict=False))
        if v in candidates[c]
    ]
    images = [debug[i][0] for i in keep]
    names = [debug.shapes[i] for i in keep]
    truth = np.array([debug.groups[i] for i in keep])
    captions = captioner.caption(
        images, image_classes=names, candidates=candidates, attribute=attribute
    )
    accuracy = np.mean([c.value for c in captions] == truth)
    assert accuracy >= 0.85, f"{attribute}: {accuracy:.3f}"
    assert all(0.0 < c.score <= 1.0 for c in captions)
    # the image decides: the same classes with each other's images are mostly wrong
    shuffled = np.random.default_rng(0).permutation(len(images))
    captions = captioner.caption(
        [images[j] for j in shuffled],
        image_classes=names,
        candidates=candidates,
        attribute=attribute,
    )
    assert np.mean([c.value for c in captions] == truth) < 0.3
