"""Pretrain the ToyWorld backbone shipped in ``failmodes/toyworld/weights/``.

The backbone learns, on broad *balanced* world-style data (shapes x backgrounds x colours drawn
uniformly and independently), to name the shape with a small auxiliary weight on naming the
background and the colour:

    loss = CE(shape) + w_background * CE(background) + w_color * CE(color)

so that its features hold the object and, linearly readable, its context, as ImageNet features
do. A task head fitted on a world's small biased split then leans on the context (the shortcut),
and retraining that head alone can repair it. Deterministic for a given seed and thread count,
CPU only: about 6 minutes on two shared cores (the shipped weights: 16 s rendering, 352 s
training).

Usage:
    python scripts/train_toyworld_backbone.py            # writes the shipped weights
    python scripts/train_toyworld_backbone.py --out /tmp/bb.safetensors --w-background 0.3
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from failmodes.toyworld.model import CONFIG_FILE, WEIGHTS_FILE, ToyBackbone
from failmodes.toyworld.world import BACKGROUNDS, COLORS, SHAPES, render_batch

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "failmodes/toyworld/weights" / WEIGHTS_FILE


def balanced_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` world-style images with shape, background and colour drawn uniformly.

    Returns:
        ``(images, targets)``: float32 ``(n, 3, 32, 32)`` in [0, 1] and int64 ``(n, 3)`` columns
        (shape, background, colour) as indices into SHAPES, BACKGROUNDS, COLORS.
    """
    rng = np.random.default_rng([seed, 1])
    targets = np.stack(
        [
            rng.integers(len(SHAPES), size=n),
            rng.integers(len(BACKGROUNDS), size=n),
            rng.integers(len(COLORS), size=n),
        ],
        axis=1,
    )
    bgs, cols = list(BACKGROUNDS), list(COLORS)
    pixels = render_batch(
        [SHAPES[i] for i in targets[:, 0]],
        [bgs[i] for i in targets[:, 1]],
        [cols[i] for i in targets[:, 2]],
        int(rng.integers(2**31)),
    )
    return pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0, targets.astype(np.int64)


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

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    x_train, t_train = balanced_data(args.n_train, args.seed)
    x_val, t_val = balanced_data(args.n_val, args.seed + 1_000_003)
    render_s = time.perf_counter() - start

    widths = tuple(int(w) for w in args.widths.split(","))
    backbone = ToyBackbone(widths=widths)
    d = backbone.feature_dim
    heads = nn.ModuleList(
        [nn.Linear(d, len(SHAPES)), nn.Linear(d, len(BACKGROUNDS)), nn.Linear(d, len(COLORS))]
    )
    weights = (1.0, args.w_background, args.w_color)
    params = list(backbone.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(args.n_train / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch
    )
    xt, tt = torch.from_numpy(x_train), torch.from_numpy(t_train)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        backbone.train()
        order = torch.randperm(args.n_train, generator=gen)
        total = 0.0
        for i in range(0, args.n_train, args.batch_size):
            idx = order[i : i + args.batch_size]
            feats = backbone(xt[idx])
            loss = sum(
                w * nn.functional.cross_entropy(h(feats), tt[idx, j])
                for j, (w, h) in enumerate(zip(weights, heads, strict=True))
                if w > 0
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(
            f"epoch {epoch + 1}/{args.epochs} loss {total / args.n_train:.4f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    train_s = time.perf_counter() - start - render_s

    backbone.eval()
    with torch.no_grad():
        fv = torch.cat(
            [backbone(torch.from_numpy(x_val[i : i + 500])) for i in range(0, len(x_val), 500)]
        )
        val_acc = {
            name: float((heads[j](fv).argmax(1).numpy() == t_val[:, j]).mean())
            for j, name in enumerate(("shape", "background", "color"))
        }
    print("held-out accuracy of the pretraining heads:", val_acc, flush=True)

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
        "seconds": {"render": round(render_s, 1), "train": round(train_s, 1)},
    }
    (args.out.with_suffix(".json")).write_text(json.dumps(config, indent=2) + "\n")
    if args.out.name == WEIGHTS_FILE:
        assert args.out.with_suffix(".json").name == CONFIG_FILE
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)", flush=True)
    return config


if __name__ == "__main__":
    main()
