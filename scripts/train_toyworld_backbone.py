"""Pretrain the ToyWorld backbone shipped in ``failmodes/toyworld/weights/``.

The backbone learns, on broad *balanced* world-style data (shapes x backgrounds x colours drawn
uniformly and independently), to name the shape with a small auxiliary weight on naming the
background and the colour:

    loss = CE(shape) + w_background * CE(background) + w_color * CE(color)

so that its features hold the object and, linearly readable, its context, as ImageNet features
do. A task head fitted on a world's small biased split then leans on the context (the shortcut),
and retraining that head alone can repair it. The loop is
:func:`failmodes.toyworld.zoo.pretrain_backbone`, which also pretrains the backbones of the
ToyWorld model zoo. Deterministic for a given seed and thread count,
CPU only: about 6 minutes on two shared cores (the shipped weights: 16 s rendering, 352 s
training).

Usage:
    python scripts/train_toyworld_backbone.py            # writes the shipped weights
    python scripts/train_toyworld_backbone.py --out /tmp/bb.safetensors --w-background 0.3
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from failmodes.toyworld.model import CONFIG_FILE, WEIGHTS_FILE, ToyBackbone
from failmodes.toyworld.zoo import pretrain_backbone

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "failmodes/toyworld/weights" / WEIGHTS_FILE


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-val", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--w-background", type=float, default=0.3)
    parser.add_argument("--w-color", type=float, default=0.3)
    parser.add_argument("--widths", type=str, default="16,32,64,128")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stdout, format="%(message)s")
    logging.getLogger("failmodes").setLevel(logging.INFO)  # the epochs' losses
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    widths = tuple(int(w) for w in args.widths.split(","))
    backbone, info = pretrain_backbone(
        lambda: ToyBackbone(widths=widths),
        n_train=args.n_train,
        n_val=args.n_val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        w_background=args.w_background,
        w_color=args.w_color,
        seed=args.seed,
    )
    val_acc = info["validation_accuracy"]
    d = backbone.feature_dim

    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to(torch.float32).contiguous()
        for k, v in backbone.state_dict().items()
        if v.dtype.is_floating_point
    }
    save_file(state, str(args.out))
    config = {
        "architecture": "ToyBackbone",
        "widths": list(widths),
        "feature_dim": d,
        "input": "float (n, 3, 32, 32) RGB in [0, 1], normalised inside the module",
        "training": {
            "script": "scripts/train_toyworld_backbone.py",
            "data": "balanced world-style ToyWorld images: shape, background and colour drawn "
            "uniformly and independently",
            "loss": "CE(shape) + w_background * CE(background) + w_color * CE(color)",
            "seed": args.seed,
            "n_train": args.n_train,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "AdamW, one-cycle",
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "w_background": args.w_background,
            "w_color": args.w_color,
            "threads": args.threads,
        },
        "validation_accuracy": {k: round(v, 4) for k, v in val_acc.items()},
        "n_val": args.n_val,
        "seconds": {k: round(v, 1) for k, v in info["seconds"].items()},
    }
    (args.out.with_suffix(".json")).write_text(json.dumps(config, indent=2) + "\n")
    if args.out.name == WEIGHTS_FILE:
        assert args.out.with_suffix(".json").name == CONFIG_FILE
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)", flush=True)
    return config


if __name__ == "__main__":
    main()
