"""The paper's ImageNet setting: a timm model, ChatGPT, CLIP ViT-B/32 and Stable Diffusion 1.5.

Chegini & Feizi (arXiv 2312.05464, section 5.1 and table 4): the head is refit on 30 training
images per class; 30,000 of ImageNet's 50,000 validation images are the debug set and the other
20,000 the test set; the five most frequent failure backgrounds per class are generated
(k = 5) and weighted with lambda = 0.5. Needs a GPU, the ``all`` extra, ImageNet in the usual
folder layout (``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``), ``OPENAI_API_KEY`` (or
``--base-url`` for a local OpenAI-compatible server such as vLLM or Ollama), and downloads the
timm, CLIP and Stable Diffusion weights on first use::

    python examples/imagenet.py --imagenet /data/imagenet --model resnet50 --out runs/resnet50

Cost: features of 80,000 images (30,000 train, 50,000 validation), 1,000 questions to the chat
model, and at most ``1,000 classes x k x images-per-mode`` generated images for the method plus
as many for each baseline: with the defaults (k = 5, 10 images per mode) up to 50,000 images
each (fewer when a class has fewer than k failure modes). Measure your GPU's Stable Diffusion
throughput with ``benchmarks/gpu_generation.py`` before a full run (docs/guides/paper.md turns
its output into hours). ``--images-per-mode`` and ``--no-baselines`` cut the cost.

``--tiny`` runs the same code offline on a CPU in about a minute: a ToyWorld image folder, a timm
test model with random weights, a tiny random CLIP, a tiny random Stable Diffusion pipeline and a
local server playing the chat model. Its numbers mean nothing; it shows that the pieces fit::

    python examples/imagenet.py --tiny --out /tmp/failmodes-tiny
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Subset

from failmodes import (
    ChatGPTProposer,
    CLIPCaptioner,
    Debugger,
    LinearHeadTrainer,
    TimmExtractor,
)
from failmodes.generators import StableDiffusionGenerator

PAPER = {"k": 5, "lam": 0.5, "train_per_class": 30, "debug_size": 30_000}


def per_class_subset(dataset: Any, per_class: int, *, seed: int = 0) -> Subset:
    """``per_class`` images of each class of an ``ImageFolder``, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    targets = np.asarray(dataset.targets)
    chosen = [
        rng.choice(np.flatnonzero(targets == c), size=per_class, replace=False)
        for c in np.unique(targets)
    ]
    return Subset(dataset, np.sort(np.concatenate(chosen)).tolist())


def split_debug_test(dataset: Any, debug_size: int, *, seed: int = 0) -> tuple[Subset, Subset]:
    """A seeded split of the validation images into the debug and the test set."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    return Subset(dataset, np.sort(order[:debug_size]).tolist()), Subset(
        dataset, np.sort(order[debug_size:]).tolist()
    )


def imagenet_class_names() -> list[str]:
    """Readable, unique names in the sorted order of the wnid folders.

    They are open_clip's ``IMAGENET_CLASSNAMES`` with its two repeated names made unique
    (744 "projectile", 836 "sunglass"), read from ``imagenet-classes.txt`` beside this script.
    """
    path = Path(__file__).with_name("imagenet-classes.txt")
    return path.read_text(encoding="utf-8").splitlines()


def imagenet_data(root: Path, *, seed: int = 0) -> tuple[Any, Any, Any, list[str]]:
    """The paper's train, debug and test sets from an ImageNet folder, and readable names."""
    from torchvision.datasets import ImageFolder

    train = ImageFolder(root / "train")
    val = ImageFolder(root / "val")
    if len(train.classes) != 1000 or train.classes != val.classes:
        raise ValueError(f"{root} must hold the 1,000 ImageNet classes in train/ and val/")
    debug, test = split_debug_test(val, PAPER["debug_size"], seed=seed)
    return (
        per_class_subset(train, PAPER["train_per_class"], seed=seed),
        debug,
        test,
        imagenet_class_names(),
    )


def paper_debugger(args: argparse.Namespace, class_names: list[str]) -> Debugger:
    """The paper's components, each built by name (weights download on first use)."""
    return Debugger(
        extractor=TimmExtractor(args.model, device=args.device, num_workers=args.workers),
        proposer=ChatGPTProposer(args.chat_model, base_url=args.base_url),
        captioner=CLIPCaptioner("ViT-B-32", pretrained="openai", device=args.device),
        generator=StableDiffusionGenerator(
            "stable-diffusion-v1-5/stable-diffusion-v1-5", device=args.device
        ),
        head_trainer=LinearHeadTrainer(solver=args.solver),
        class_names=class_names,
        k=PAPER["k"],
        lam=PAPER["lam"],
        images_per_mode=args.images_per_mode,
        baselines=not args.no_baselines,
        progress=True,
    )


# -- the offline tiny mode ---------------------------------------------------------------------


def tiny_data(root: Path, *, seed: int = 0) -> tuple[Any, Any, Any, list[str]]:
    """A small ImageFolder tree of ToyWorld images, read back as the ImageNet path reads it."""
    from torchvision.datasets import ImageFolder

    from failmodes.toyworld import ToyWorld

    world = ToyWorld(seed=seed)
    for split, data in (("train", world.train(6)), ("val", world.debug(120))):
        for i, (image, label) in enumerate(data):
            folder = root / split / f"{label:02d}_{world.class_names[label]}"
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:05d}.png")
    train = ImageFolder(root / "train")
    debug, test = split_debug_test(ImageFolder(root / "val"), 80, seed=seed)
    return train, debug, test, world.class_names


def tiny_debugger(class_names: list[str], base_url: str, *, seed: int = 0) -> Debugger:
    """The same components as :func:`paper_debugger`, with tiny random models (offline)."""
    import timm
    import torch

    from failmodes.testing.tiny import tiny_clip, tiny_stable_diffusion

    model, preprocess, tokenizer = tiny_clip(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = timm.create_model("test_resnet", pretrained=False, num_classes=len(class_names))
    return Debugger(
        extractor=TimmExtractor(backbone),
        proposer=ChatGPTProposer("tiny", base_url=base_url, api_key="offline", max_retries=0),
        captioner=CLIPCaptioner(model, tokenizer=tokenizer, preprocess=preprocess),
        generator=StableDiffusionGenerator(
            tiny_stable_diffusion(seed), steps=2, batch_size=16, device="cpu", safety_checker=False
        ),
        head_trainer=LinearHeadTrainer(),
        class_names=class_names,
        k=2,
        lam=PAPER["lam"],
        images_per_mode=3,
    )


@contextlib.contextmanager
def tiny_chat_server():
    """A local server that answers every question with the same three backgrounds."""
    from failmodes.testing.openai_server import OpenAIServer

    answer = json.dumps({"values": ["in a desert", "on snow", "in a dark forest"]})
    with OpenAIServer(answer) as server:
        yield server.base_url


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imagenet", type=Path, help="ImageNet root with train/ and val/")
    parser.add_argument("--model", default="resnet50", help="any timm model name")
    parser.add_argument("--chat-model", default="gpt-4.1-mini", help="the proposer's model")
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible server's URL")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers")
    parser.add_argument("--images-per-mode", type=int, default=10)
    parser.add_argument(
        "--solver",
        default="lbfgs",
        choices=["lbfgs", "sgd"],
        help="lbfgs (fast, to convergence) or sgd (the paper's 1000 epochs)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip random and uniform")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("failmodes-imagenet"))
    parser.add_argument("--tiny", action="store_true", help="offline, tiny random models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)

    with contextlib.ExitStack() as stack:
        if args.tiny:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            train, debug, test, class_names = tiny_data(root, seed=args.seed)
            base_url = stack.enter_context(tiny_chat_server())
            dbg = tiny_debugger(class_names, base_url, seed=args.seed)
        else:
            if args.imagenet is None:
                parser.error("--imagenet is required (or --tiny)")
            train, debug, test, class_names = imagenet_data(args.imagenet, seed=args.seed)
            dbg = paper_debugger(args, class_names)
        result = dbg.run(train, debug, test, seed=args.seed)

    result.save_summary(args.out / "summary.json")
    result.report(args.out / "report.html")
    print(result.to_frame().round(3).to_string())
    return result.summary()


if __name__ == "__main__":
    main()
