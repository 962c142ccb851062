"""Train ToyCLIP, the tiny open_clip CLIP that captions ToyWorld failures, and ship its weights.

ToyCLIP (config: ``failmodes/toyworld/weights/toyclip.json``) is trained from scratch with a
symmetric InfoNCE loss and a learnable logit scale on ToyWorld images rendered on the fly:
every (shape, background, colour) combination equally often, mostly in the world's own style
and partly in the renderer's "generated" style. Each image gets one caption naming its shape
with its background ("a photo of a circle on grass"), with its colour ("a photo of a red
circle"), or with both ("a photo of a red circle on grass"); every text is made by
:func:`failmodes.attributes.prompt`, so training captions are exactly the captioner's prompts.

The image-to-text side contrasts each image with the batch's captions *and* a bank of every
shape+background and colour+shape caption (400 texts), so that the values of one class, which
the captioner must tell apart, are always among the negatives; a caption counts as a positive
for every image it truly describes (a multi-positive InfoNCE), so "a photo of a circle on
grass" is not pushed away from a red circle on grass. The text-to-image side contrasts each
image's caption with the batch's images.

It is deterministic for a given ``--seed`` and thread count, runs on the CPU in a few minutes,
writes the weights in float16 (``failmodes/toyworld/weights/toyclip.safetensors`` by default)
and prints validation metrics measured through :class:`failmodes.captioners.CLIPCaptioner`
loaded from the written file, as the demo loads it: per attribute and world seed, the share of
balanced world-style debug images whose true value is picked among their class's uncommon
values (the demo's candidates).

Usage::

    python scripts/train_toyclip.py                 # train, write the weights, validate
    python scripts/train_toyclip.py --eval-only     # validate the shipped weights
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors.torch import save_file

from failmodes.attributes import phrase, prompt
from failmodes.toyworld.toyclip import TOYCLIP, register_toyclip, toyclip_config
from failmodes.toyworld.world import BACKGROUNDS, COLORS, SHAPES, ToyWorld, render

BG_NAMES = list(BACKGROUNDS)
BG_PHRASES = [BACKGROUNDS[b] for b in BG_NAMES]
COLOR_NAMES = list(COLORS)
N_SHAPES, N_BGS, N_COLORS = len(SHAPES), len(BG_NAMES), len(COLOR_NAMES)
DEFAULT_OUT = toyclip_config().with_suffix(".safetensors")
_NOT_TRAINING = ("out", "eval_only", "eval_seeds", "eval_images", "log_every", "val_every")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the data")
    p.add_argument("--steps", type=int, default=400, help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=128, help="images per step")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW)")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument(
        "--scale-lr", type=float, default=10.0, help="learning-rate multiplier of the logit scale"
    )
    p.add_argument("--warmup", type=int, default=20, help="linear warm-up steps")
    p.add_argument(
        "--generated-share",
        type=float,
        default=0.2,
        help="share of training images in the renderer's 'generated' style",
    )
    p.add_argument(
        "--caption-mix",
        type=float,
        nargs=3,
        default=(0.35, 0.35, 0.3),
        metavar=("BG", "COLOR", "BOTH"),
        help="probabilities of a shape+background, colour+shape and full caption",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the weights")
    p.add_argument("--eval-only", action="store_true", help="only validate the weights at --out")
    p.add_argument(
        "--eval-seeds", type=int, nargs="+", default=(0, 1, 2), help="ToyWorld seeds to validate on"
    )
    p.add_argument("--eval-images", type=int, default=2000, help="debug images per world")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument(
        "--val-every",
        type=int,
        default=0,
        help="held-out zero-shot accuracy every this many steps (0: never)",
    )
    return p.parse_args(argv)


# ---------------------------------------------------------------- captions
def bg_caption(s: int, b: int) -> str:
    return prompt(SHAPES[s], BG_PHRASES[b], "background")


def color_caption(s: int, c: int) -> str:
    return prompt(SHAPES[s], COLOR_NAMES[c], "color")


def full_caption(s: int, b: int, c: int) -> str:
    return prompt(phrase(SHAPES[s], BG_PHRASES[b], "background"), COLOR_NAMES[c], "color")


def caption_bank() -> tuple[list[str], np.ndarray]:
    """Every shape+background and colour+shape caption, with its (shape, bg, colour) facts.

    Returns the texts and an ``(n, 3)`` int array; -1 marks an attribute the text leaves open.
    """
    texts, facts = [], []
    for s in range(N_SHAPES):
        for b in range(N_BGS):
            texts.append(bg_caption(s, b))
            facts.append((s, b, -1))
    for s in range(N_SHAPES):
        for c in range(N_COLORS):
            texts.append(color_caption(s, c))
            facts.append((s, -1, c))
    return texts, np.asarray(facts, dtype=np.int64)


# ---------------------------------------------------------------- data
class BalancedStream:
    """Batches of (shape, background, colour) triples, every combination once per pass."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng([seed, 1])
        grid = np.stack(
            np.meshgrid(np.arange(N_SHAPES), np.arange(N_BGS), np.arange(N_COLORS), indexing="ij"),
            -1,
        )
        self.combos = grid.reshape(-1, 3)
        self.order = np.empty(0, dtype=np.int64)

    def next(self, n: int) -> np.ndarray:
        while len(self.order) < n:
            self.order = np.concatenate([self.order, self.rng.permutation(len(self.combos))])
        take, self.order = self.order[:n], self.order[n:]
        return self.combos[take]


def render_images(
    triples: np.ndarray, generated_share: float, rng: np.random.Generator
) -> np.ndarray:
    out = np.empty((len(triples), 32, 32, 3), dtype=np.uint8)
    for i, (s, b, c) in enumerate(triples):
        style = "generated" if rng.random() < generated_share else "world"
        out[i] = np.asarray(render(SHAPES[s], BG_NAMES[b], COLOR_NAMES[c], rng, style=style))
    return out


def to_input(pixels: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``(n, H, W, 3)`` -> normalised float ``(n, 3, H, W)``, as open_clip's transform."""
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean[:, None, None]) / std[:, None, None]


def true_of(images: np.ndarray, texts: np.ndarray) -> torch.Tensor:
    """``(n_images, n_texts)`` float mask: whether each text describes each image."""
    s = images[:, None, 0] == texts[None, :, 0]
    b = (texts[None, :, 1] < 0) | (images[:, None, 1] == texts[None, :, 1])
    c = (texts[None, :, 2] < 0) | (images[:, None, 2] == texts[None, :, 2])
    return torch.from_numpy(s & b & c).float()


def soft_ce(logits: torch.Tensor, positives: torch.Tensor, dim: int) -> torch.Tensor:
    """Cross-entropy against the uniform distribution over ``positives`` along ``dim``."""
    targets = positives / positives.sum(dim, keepdim=True)
    return -(targets * logits.log_softmax(dim)).sum(dim).mean()


class QuickVal:
    """Zero-shot accuracy on fixed held-out images among all of a class's values (monitoring)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, tokens: torch.Tensor, n: int = 500):
        self.tokens = tokens
        self.sets = {}
        for attribute in ("background", "color"):
            data = ToyWorld(seed=12345, attribute=attribute).debug(n)
            values = BG_PHRASES if attribute == "background" else COLOR_NAMES
            truth = torch.tensor([values.index(v) for v in data.groups])
            self.sets[attribute] = (
                to_input(data.pixels, mean, std),
                torch.tensor(data.labels),
                truth,
            )

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        model.eval()
        txt = model.encode_text(self.tokens, normalize=True)
        by_bg = txt[: N_SHAPES * N_BGS].view(N_SHAPES, N_BGS, -1)
        by_color = txt[N_SHAPES * N_BGS :].view(N_SHAPES, N_COLORS, -1)
        out = {}
        for attribute, (x, shapes, truth) in self.sets.items():
            img = model.encode_image(x, normalize=True)
            bank = by_bg if attribute == "background" else by_color
            pred = torch.einsum("nd,nvd->nv", img, bank[shapes]).argmax(1)
            out[attribute] = (pred == truth).float().mean().item()
        model.train()
        return out


# ---------------------------------------------------------------- training
def param_groups(model: torch.nn.Module, weight_decay: float, scale_lr: float) -> list[dict]:
    """AdamW groups: decay on matrices only; the logit scale learns ``scale_lr`` times faster."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name == "logit_scale":
            continue
        if p.ndim < 2 or "embedding" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lr_mult": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0},
        {"params": [model.logit_scale], "weight_decay": 0.0, "lr_mult": scale_lr},
    ]


def train(args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    model = open_clip.create_model(TOYCLIP, pretrained=None)
    pp = model.visual.preprocess_cfg
    mean, std = torch.tensor(pp["mean"]), torch.tensor(pp["std"])
    tokenizer = open_clip.get_tokenizer(TOYCLIP)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"ToyCLIP: {n_params / 1e6:.2f}M parameters; image size {pp['size']}, "
        f"mean {tuple(pp['mean'])}, std {tuple(pp['std'])}",
        flush=True,
    )

    bank_texts, bank_facts = caption_bank()
    bank_tokens = tokenizer(bank_texts)
    stream = BalancedStream(args.seed)
    mix = np.asarray(args.caption_mix, dtype=np.float64)
    mix = mix / mix.sum()
    opt = torch.optim.AdamW(
        param_groups(model, args.weight_decay, args.scale_lr),
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    max_scale = math.log(100.0)

    quick_val = QuickVal(mean, std, bank_tokens) if args.val_every else None
    model.train()
    start = time.perf_counter()
    for step in range(args.steps):
        lr = (
            args.lr
            * min(1.0, (step + 1) / args.warmup)
            * 0.5
            * (1 + math.cos(math.pi * step / args.steps))
        )
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_mult"]
        rng = np.random.default_rng([args.seed, 2, step])
        triples = stream.next(args.batch_size)
        x = to_input(render_images(triples, args.generated_share, rng), mean, std)

        # each image's caption: an index into the bank, or a new full caption
        kinds = rng.choice(3, size=len(triples), p=mix)
        full = {}
        assigned = np.empty(len(triples), dtype=np.int64)
        for i, ((s, b, c), kind) in enumerate(zip(triples, kinds, strict=True)):
            if kind == 0:
                assigned[i] = s * N_BGS + b
            elif kind == 1:
                assigned[i] = N_SHAPES * N_BGS + s * N_COLORS + c
            else:
                key = (int(s), int(b), int(c))
                assigned[i] = len(bank_texts) + full.setdefault(key, len(full))
        extra = list(full)
        tokens = bank_tokens
        facts = bank_facts
        if extra:
            tokens = torch.cat([bank_tokens, tokenizer([full_caption(*k) for k in extra])])
            facts = np.concatenate([bank_facts, np.asarray(extra, dtype=np.int64)])
        positives = true_of(triples, facts)  # (B, T)

        img = model.encode_image(x, normalize=True)
        txt = model.encode_text(tokens, normalize=True)
        logits = model.logit_scale.exp() * img @ txt.T  # (B, T)
        loss_i2t = soft_ce(logits, positives, dim=1)
        cols = torch.from_numpy(assigned)
        loss_t2i = soft_ce(logits[:, cols], positives[:, cols], dim=0)
        loss = 0.5 * (loss_i2t + loss_t2i)

        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, max_scale)
        if (step + 1) % args.log_every == 0 or step == 0:
            print(
                f"step {step + 1:4d}/{args.steps}  loss {loss.item():.3f} "
                f"(i2t {loss_i2t.item():.3f}, t2i {loss_t2i.item():.3f})  "
                f"scale {model.logit_scale.exp().item():.1f}  lr {lr:.2e}  "
                f"{time.perf_counter() - start:.0f}s",
                flush=True,
            )
        if quick_val is not None and (step + 1) % args.val_every == 0:
            acc = quick_val(model)
            print(
                "  held-out zero-shot accuracy among all values: "
                + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()),
                flush=True,
            )
    print(
        f"trained {args.steps} steps x {args.batch_size} images in "
        f"{time.perf_counter() - start:.0f}s",
        flush=True,
    )
    return model.eval()


def save(model: torch.nn.Module, path: Path, args: argparse.Namespace) -> None:
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # one metadata entry: safetensors writes several in no fixed order, and the file should be
    # the same bit for bit for the same seed
    meta = json.dumps(
        {
            "model": TOYCLIP,
            "script": "scripts/train_toyclip.py",
            **{k: v for k, v in vars(args).items() if k not in _NOT_TRAINING},
        },
        sort_keys=True,
        default=str,
    )
    save_file(state, str(path), metadata={"training": meta})
    path.chmod(0o644)  # package data: readable by all, as a checkout's other files
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, float16)", flush=True)


# ---------------------------------------------------------------- validation
def validate(path: Path, seeds, n_images: int) -> None:
    """Caption accuracy through CLIPCaptioner loaded from ``path``, as the demo runs it."""
    from failmodes.captioners.openclip import CLIPCaptioner

    print(
        f"validation: {n_images} balanced world-style debug images per world; "
        "candidates: every value but the class's common one",
        flush=True,
    )
    for attribute in ("background", "color"):
        accs = []
        for seed in seeds:
            world = ToyWorld(seed=seed, attribute=attribute)
            debug = world.debug(n_images)
            candidates = world.uncommon_values()
            keep = [
                i
                for i, (name, v) in enumerate(zip(debug.shapes, debug.groups, strict=True))
                if v in candidates[name]
            ]
            captioner = CLIPCaptioner(TOYCLIP, pretrained=str(path), progress=False)
            images = [Image.fromarray(debug.pixels[i]) for i in keep]
            names = [debug.shapes[i] for i in keep]
            t0 = time.perf_counter()
            captions = captioner.caption(
                images, image_classes=names, candidates=candidates, attribute=attribute
            )
            seconds = time.perf_counter() - t0
            hits = np.array(
                [c.value == debug.groups[i] for c, i in zip(captions, keep, strict=True)]
            )
            per_value = {}
            for i, h in zip(keep, hits, strict=True):
                per_value.setdefault(debug.groups[i], []).append(h)
            worst = min(per_value.items(), key=lambda kv: np.mean(kv[1]))
            accs.append(hits.mean())
            print(
                f"  {attribute:10s} world seed {seed}: accuracy {hits.mean():.3f} on "
                f"{len(keep)} images ({seconds:.1f}s incl. loading); worst value "
                f"{worst[0]!r} {np.mean(worst[1]):.2f}",
                flush=True,
            )
        print(f"  {attribute:10s} mean over seeds {list(seeds)}: {np.mean(accs):.3f}", flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    register_toyclip()
    if not args.eval_only:
        model = train(args)
        save(model, args.out, args)
    validate(args.out, args.eval_seeds, args.eval_images)


if __name__ == "__main__":
    main()
