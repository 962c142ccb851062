"""How far the renderer's "generated" style is from ToyWorld's own images, as the backbone sees it.

A linear probe (logistic regression with ``LinearHeadTrainer``) on standardised backbone
features learns to tell world-style from generated-style images; its accuracy on held-out images
is the style gap (0.5: no gap; 1.0: fully separable). The same probe on world-style images
against images that ``ToyWorldEditor`` edited from other world-style images (into uniformly
drawn values) measures what editing leaves of the gap. Balanced images do not depend on which
value is common, so the world seed only changes the sample. Prints one JSON line per world.

    python benchmarks/style_gap.py --worlds 0 1 2 --n 2000
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from failmodes import GenerationRequest
from failmodes.heads.linear import LinearHeadTrainer
from failmodes.toyworld import SHAPES, ToyWorld, ToyWorldEditor, load_backbone
from failmodes.toyworld.model import _features


def edited(world: ToyWorld, n: int) -> np.ndarray:
    """``n`` world-style images edited by ``ToyWorldEditor`` into uniformly drawn values."""
    labels = np.arange(n) % len(SHAPES)
    sources = world.sample(labels, biased=False, seed=2 * world.seed + 3, style="world")
    rng = np.random.default_rng(world.seed)
    values = [world.values[j] for j in rng.integers(len(world.values), size=n)]
    editor = ToyWorldEditor(world)
    out = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        name = SHAPES[int(label)]
        request = GenerationRequest(
            int(label), name, value, f"{name} {value}", 1, i, world.attribute, sources=(i,)
        )
        out.append(np.asarray(editor.edit_one(request, sources[i][0], 0)))
    return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def style_gap(world: ToyWorld, n: int, backbone, kind: str = "generated") -> float:
    """Probe accuracy telling world-style images from ``kind`` ones (generated or edited)."""
    labels = np.arange(n) % len(SHAPES)
    real = world.sample(labels, biased=False, seed=2 * world.seed + 1, style="world")
    if kind == "edited":
        fake = edited(world, n)
    else:
        fake = world.sample(labels, biased=False, seed=2 * world.seed + 2, style=kind).tensors()
    feats = torch.cat([_features(backbone, real.tensors()), _features(backbone, fake)])
    target = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    perm = torch.from_numpy(np.random.default_rng(0).permutation(2 * n))
    fit, held = perm[:n], perm[n:]
    mean, std = feats[fit].mean(0), feats[fit].std(0) + 1e-6
    feats = (feats - mean) / std
    head = LinearHeadTrainer(weight_decay=1e-3, max_iter=500).fit(
        feats[fit], target[fit], num_classes=2
    )
    with torch.no_grad():
        return (head(feats[held]).argmax(1) == target[held]).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=2000, help="images per style")
    args = parser.parse_args()
    backbone = load_backbone()
    for seed in args.worlds:
        for attribute in ("background", "color"):
            world = ToyWorld(seed=seed, attribute=attribute)
            print(
                json.dumps(
                    {
                        "world_seed": seed,
                        "attribute": attribute,
                        "n": args.n,
                        "probe_accuracy": round(style_gap(world, args.n, backbone), 4),
                        "edited_probe_accuracy": round(
                            style_gap(world, args.n, backbone, kind="edited"), 4
                        ),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
