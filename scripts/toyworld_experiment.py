"""Simulate the failmodes pipeline on ToyWorld and measure targeted repair against its baselines.

For each world (attribute, strength, seed):

1. classifier = shipped backbone + head fitted from zero on the biased train split (L-BFGS);
2. balanced debug set; 20 % set aside (seeded) as the validation part; the rest's misclassified
   samples are the failures, split per class half/half (seeded) into seed and heldout;
3. failure modes = per class, the top-k most frequent *true* values among seed failures (oracle
   captions: the captioner is a separate piece);
4. ``n`` generated-style images per (class, value) from :class:`ToyWorldGenerator`;
5. the head refitted from the original head by L-BFGS on
   ``mean CE(train) + lam * mean CE(generated) + wd / 2 * ||params||^2``, for each lam;
6. baselines with the same number of images per class: *random* (bare-class requests, drawn as the
   training data shows the class) and *uniform* (values uniform among the class's uncommon
   values), and *refit* (lam = 0);
7. accuracy on test, debug seed, debug heldout, validation; worst-group (per value) test accuracy;
   test accuracy on common-value and rare-value images.

It also measures the style gap: a logistic-regression probe on backbone features telling
generated-style from world-style images apart, trained and tested on disjoint halves.

Usage:
    python scripts/toyworld_experiment.py --settings background:0.95 color:0.95 --seeds 0 1 2
    python scripts/toyworld_experiment.py --backbone /tmp/bb.safetensors --out /tmp/res.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from failmodes.attributes import prompt
from failmodes.interfaces import GenerationRequest
from failmodes.toyworld import ToyWorld, ToyWorldGenerator, load_backbone
from failmodes.toyworld.world import SHAPES, ToyDataset


# ---------------------------------------------------------------- library pieces (or stand-ins)
def make_trainer(weight_decay: float, max_iter: int):
    """``LinearHeadTrainer`` when the library has it, else a stand-in with the same objective."""
    try:
        from failmodes.heads.linear import LinearHeadTrainer

        return LinearHeadTrainer(solver="lbfgs", weight_decay=weight_decay, max_iter=max_iter)
    except ImportError:
        return _Trainer(weight_decay, max_iter)


class _Trainer:
    """mean CE(train) + lam * mean CE(extra) + wd / 2 * ||params||^2 by L-BFGS."""

    def __init__(self, weight_decay: float, max_iter: int):
        self.weight_decay = weight_decay
        self.max_iter = max_iter

    def fit(
        self,
        features,
        labels,
        *,
        extra_features=None,
        extra_labels=None,
        lam=0.5,
        init=None,
        num_classes=None,
        seed=0,
    ):
        head = nn.Linear(features.shape[1], num_classes or init.out_features)
        with torch.no_grad():
            if init is None:
                head.weight.zero_()
                head.bias.zero_()
            else:
                head.weight.copy_(init.weight)
                head.bias.copy_(init.bias)
        params = list(head.parameters())
        opt = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=self.max_iter,
            tolerance_grad=1e-7,
            tolerance_change=1e-10,
            history_size=20,
            line_search_fn="strong_wolfe",
        )
        use_extra = extra_features is not None and len(extra_features) > 0 and lam > 0

        def closure():
            opt.zero_grad()
            loss = nn.functional.cross_entropy(head(features), labels)
            if use_extra:
                loss = loss + lam * nn.functional.cross_entropy(head(extra_features), extra_labels)
            loss = loss + 0.5 * self.weight_decay * sum((p * p).sum() for p in params)
            loss.backward()
            return loss

        opt.step(closure)
        return head


@torch.no_grad()
def features_of(backbone: nn.Module, pixels: np.ndarray, batch: int = 500) -> torch.Tensor:
    """Backbone features of ``(n, H, W, 3)`` uint8 pixels."""
    x = torch.from_numpy(pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    return torch.cat([backbone(x[i : i + batch]) for i in range(0, len(x), batch)])


def pil_pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.uint8) for im in images])


def generate(
    world: ToyWorld,
    per_class_values: dict[int, list[str | None]],
    seed: int,
    style: str = "generated",
) -> tuple[np.ndarray, np.ndarray]:
    """Render images for ``{class: [value per image]}`` through :class:`ToyWorldGenerator`.

    Values are grouped into one request per (class, value), as the library's jobs are.
    """
    requests = []
    for c, values in per_class_values.items():
        for value, count in sorted(Counter(values).items(), key=lambda kv: str(kv[0])):
            requests.append(
                GenerationRequest(
                    class_index=c,
                    class_name=SHAPES[c],
                    value=value,
                    prompt=prompt(SHAPES[c], value, world.attribute),
                    count=count,
                    seed=seed,
                    attribute=world.attribute,
                )
            )
    gen = ToyWorldGenerator(world, style=style)
    out = gen.generate(requests)
    pixels = pil_pixels([im for imgs in out for im in imgs])
    labels = np.concatenate([[r.class_index] * r.count for r in requests])
    return pixels, labels


# ---------------------------------------------------------------- one world
def split_debug(labels: np.ndarray, wrong: np.ndarray, seed: int, val_share: float = 0.2):
    """As ``Debugger.find_failures``: per class, a validation share, then failures half/half."""
    rng = np.random.default_rng([seed, 11])
    val, seed_idx, held_idx = [], [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        n_val = int(round(val_share * len(members)))
        val += members[:n_val].tolist()
        failed = members[n_val:][wrong[members[n_val:]]]
        half = len(failed) // 2
        seed_idx += failed[:half].tolist()
        held_idx += failed[half:].tolist()
    return np.sort(val), np.sort(seed_idx), np.sort(held_idx)


def world_splits(world: ToyWorld, args):
    """The world's train, debug and test splits, from ``args.cache`` when it holds them."""
    if args.cache is None:
        return world.train(args.per_class), world.debug(args.n_debug), world.test(args.n_test)
    name = (
        f"{world.attribute}_{world.strength:g}_{world.seed}_{args.per_class}_"
        f"{args.n_debug}_{args.n_test}.npz"
    )
    path = Path(args.cache) / name
    keys = ("pixels", "labels", "groups", "shapes", "backgrounds", "colors")
    if path.exists():
        z = np.load(path)
        return tuple(
            ToyDataset(
                z[f"{s}_pixels"],
                z[f"{s}_labels"],
                z[f"{s}_groups"].tolist(),
                **{k: z[f"{s}_{k}"].tolist() for k in keys[3:]},
            )
            for s in ("train", "debug", "test")
        )
    splits = world.train(args.per_class), world.debug(args.n_debug), world.test(args.n_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        **{
            f"{s}_{k}": np.asarray(getattr(d, k))
            for s, d in zip(("train", "debug", "test"), splits, strict=True)
            for k in keys
        },
    )
    return splits


def accuracy(head: nn.Linear, feats: torch.Tensor, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    with torch.no_grad():
        return float((head(feats).argmax(1).numpy() == labels).mean())


def evaluate(head: nn.Linear, ev: dict, world: ToyWorld) -> dict:
    """Accuracy on every split, worst-group (per value) and common/rare test accuracy."""
    out = {name: accuracy(head, f, y) for name, (f, y) in ev["splits"].items()}
    f, y, g = ev["test"]
    with torch.no_grad():
        ok = head(f).argmax(1).numpy() == y
    out["worst_group"] = float(min(ok[g == v].mean() for v in np.unique(g)))
    common = np.array([world.common_values[c] for c in y]) == g
    out["common"] = float(ok[common].mean())
    out["rare"] = float(ok[~common].mean())
    return out


def prefixed_set(
    world: ToyWorld,
    counts: dict[tuple[int, str | None], int],
    seed: int,
    backbone: nn.Module,
    style: str,
):
    """Render one request per (class, value); returns features, labels, value rank, image index."""
    feats, labels, keys, index = [], [], [], []
    for (c, value), count in counts.items():
        px, y = generate(world, {c: [value] * count}, seed=seed, style=style)
        feats.append(features_of(backbone, px))
        labels.append(y)
        keys += [(c, value)] * count
        index.append(np.arange(count))
    return torch.cat(feats), np.concatenate(labels), keys, np.concatenate(index)


def run_world(world: ToyWorld, backbone: nn.Module, args) -> dict:
    """The pipeline on one world, with the Debugger's choice of k, n and lam on validation."""
    t0 = time.perf_counter()
    trainer = make_trainer(args.weight_decay, args.max_iter)
    train, debug, test = world_splits(world, args)
    t_render = time.perf_counter() - t0
    f_train = features_of(backbone, train.pixels)
    f_debug = features_of(backbone, debug.pixels)
    f_test = features_of(backbone, test.pixels)
    y_train = torch.as_tensor(train.labels)
    head0 = trainer.fit(f_train, y_train, num_classes=len(SHAPES), seed=0)
    d_y, d_g = np.asarray(debug.labels), np.asarray(debug.groups)
    with torch.no_grad():
        wrong = head0(f_debug).argmax(1).numpy() != d_y
    val, seed_idx, held_idx = split_debug(d_y, wrong, world.seed)
    val_fail = val[wrong[val]]
    ev = {
        "splits": {
            "test": (f_test, np.asarray(test.labels)),
            "seed": (f_debug[seed_idx], d_y[seed_idx]),
            "heldout": (f_debug[held_idx], d_y[held_idx]),
            "val": (f_debug[val], d_y[val]),
            "val_failures": (f_debug[val_fail], d_y[val_fail]),
        },
        "test": (f_test, np.asarray(test.labels), np.asarray(test.groups)),
    }
    rows = {"before": evaluate(head0, ev, world)}
    val_before = rows["before"]["val"]

    # failure modes: per class, the most frequent true values among seed failures (oracle)
    k_max, n_max = max(args.k), max(args.n)
    modes = {
        c: [v for v, _ in Counter(d_g[seed_idx][d_y[seed_idx] == c].tolist()).most_common(k_max)]
        for c in range(len(SHAPES))
    }
    common = world.common_values
    info = {
        "n_failures": int(wrong.sum()),
        "n_seed": len(seed_idx),
        "n_heldout": len(held_idx),
        "n_val": len(val),
        "modes": {SHAPES[c]: m for c, m in modes.items()},
        "modes_are_cues": float(
            np.mean([v in common for m in modes.values() for v in m[: min(args.k)]])
        ),
    }

    def fit(fg, yg, lam):
        return trainer.fit(
            f_train,
            y_train,
            extra_features=fg,
            extra_labels=torch.as_tensor(yg),
            lam=lam,
            init=head0,
            seed=0,
        )

    def choose(candidates):
        """Debugger's rule: within tolerance of the original validation accuracy, the best
        validation-failure accuracy; else the best validation accuracy."""
        best, best_key = None, None
        for settings, fg, yg, lam in candidates:
            head = fit(fg, yg, lam)
            r = evaluate(head, ev, world)
            eligible = r["val"] >= val_before - args.tolerance
            key = (eligible, r["val_failures"] if eligible else r["val"])
            if best_key is None or key > best_key:
                best, best_key = dict(r, **settings, lam=lam), key
        return best

    t1 = time.perf_counter()
    tf, ty, tkeys, tidx = prefixed_set(
        world,
        {(c, v): n_max for c, m in modes.items() for v in m},
        args.gen_seed,
        backbone,
        args.style,
    )
    rank = np.array([modes[c].index(v) for c, v in tkeys])
    budget_max = {c: len(m) * n_max for c, m in modes.items()}
    rng = np.random.default_rng([world.seed, 23])
    unc = world.uncommon_values()
    uniform_seq = {
        c: [unc[SHAPES[c]][j] for j in rng.integers(len(unc[SHAPES[c]]), size=b)]
        for c, b in budget_max.items()
    }
    rf, ry, rkeys, ridx = prefixed_set(
        world, {(c, None): b for c, b in budget_max.items()}, args.gen_seed, backbone, args.style
    )
    uf, uy, ukeys, uidx = prefixed_set(
        world,
        {(c, v): n for c, seq in uniform_seq.items() for v, n in Counter(seq).items()},
        args.gen_seed,
        backbone,
        args.style,
    )
    t_gen = time.perf_counter() - t1

    if args.correct_style:  # feature-space style correction (shift generated features)
        ref = world.sample(train.labels, biased=True, seed=world.seed + 99, style=args.style)
        shift = f_train.mean(0) - features_of(backbone, ref.pixels).mean(0)
        tf, rf, uf = tf + shift, rf + shift, uf + shift

    def baseline_masks(k, n):
        per_class = {c: min(k, len(m)) * n for c, m in modes.items()}
        r_mask = ridx < np.array([per_class[c] for c, _ in rkeys])
        quota = {c: Counter(seq[: per_class[c]]) for c, seq in uniform_seq.items()}
        u_mask = uidx < np.array([quota[c][v] for c, v in ukeys])
        return r_mask, u_mask

    t2 = time.perf_counter()
    grid = {}
    for k in args.k:
        for n in args.n:
            t_mask = (rank < k) & (tidx < n)
            r_mask, u_mask = baseline_masks(k, n)
            for lam in args.lams if args.grid else []:
                for name, fg, yg, mask in (
                    ("targeted", tf, ty, t_mask),
                    ("random", rf, ry, r_mask),
                    ("uniform", uf, uy, u_mask),
                ):
                    grid[f"{name}|{k}|{n}|{lam:g}"] = evaluate(
                        fit(fg[mask], yg[mask], lam), ev, world
                    )
    cands = [
        ({"k": k, "n": n}, tf[m], ty[m], lam)
        for k in args.k
        for n in args.n
        for lam in args.lams
        for m in [(rank < k) & (tidx < n)]
    ]
    rows["targeted"] = choose(cands)
    k_star, n_star = rows["targeted"]["k"], rows["targeted"]["n"]
    r_mask, u_mask = baseline_masks(k_star, n_star)
    rows["random"] = choose(
        [({"k": k_star, "n": n_star}, rf[r_mask], ry[r_mask], lam) for lam in args.lams]
    )
    rows["uniform"] = choose(
        [({"k": k_star, "n": n_star}, uf[u_mask], uy[u_mask], lam) for lam in args.lams]
    )
    rows["refit"] = evaluate(trainer.fit(f_train, y_train, init=head0, lam=0.0), ev, world)
    t_fit = time.perf_counter() - t2
    info["seconds"] = {
        "render": round(t_render, 1),
        "generate": round(t_gen, 1),
        "fit": round(t_fit, 1),
        "total": round(time.perf_counter() - t0, 1),
    }
    return {
        "world": {"seed": world.seed, "attribute": world.attribute, "strength": world.strength},
        "info": info,
        "rows": rows,
        "grid": grid,
    }


# ---------------------------------------------------------------- style gap
def style_gap(world: ToyWorld, backbone: nn.Module, n: int, weight_decay: float = 1e-3) -> float:
    """Held-out accuracy of a linear probe telling generated-style from world-style images."""
    labels = np.arange(n) % len(SHAPES)
    real = world.sample(labels, biased=False, seed=world.seed + 501, style="world")
    fake = world.sample(labels, biased=False, seed=world.seed + 502, style="generated")
    f = torch.cat([features_of(backbone, real.pixels), features_of(backbone, fake.pixels)])
    y = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    perm = torch.from_numpy(np.random.default_rng(world.seed).permutation(2 * n))
    tr, te = perm[:n], perm[n:]
    mu, sd = f[tr].mean(0), f[tr].std(0) + 1e-6
    f = (f - mu) / sd
    head = make_trainer(weight_decay, 500).fit(f[tr], y[tr], num_classes=2)
    with torch.no_grad():
        return float((head(f[te]).argmax(1) == y[te]).float().mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", type=Path, default=None)
    p.add_argument("--settings", nargs="+", default=["background:0.95", "color:0.95"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--n-debug", type=int, default=10_000)
    p.add_argument("--n-test", type=int, default=5_000)
    p.add_argument("--k", nargs="+", type=int, default=[3, 5], help="candidates of k")
    p.add_argument(
        "--n", nargs="+", type=int, default=[10, 20], help="candidates of images per mode"
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.005,
        help="validation accuracy a candidate may lose (as the Debugger)",
    )
    p.add_argument("--grid", action="store_true", help="also fit every (method, k, n, lam)")
    p.add_argument("--lams", nargs="+", type=float, default=[0.5, 1.0, 2.0])
    p.add_argument("--weight-decay", type=float, default=1e-3)
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--gen-seed", type=int, default=0)
    p.add_argument("--style", default="generated")
    p.add_argument("--correct-style", action="store_true")
    p.add_argument("--style-gap", type=int, default=0, help="images per style for the probe")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--cache", type=Path, default=None, help="folder caching the worlds' splits")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    backbone = load_backbone(args.backbone)
    results = []
    for setting in args.settings:
        attribute, strength = setting.split(":")
        for s in args.seeds:
            world = ToyWorld(seed=s, attribute=attribute, strength=float(strength))
            res = run_world(world, backbone, args)
            if args.style_gap:
                res["style_gap"] = style_gap(world, backbone, args.style_gap)
            res["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
            results.append(res)
            r = res["rows"]
            line = " ".join(
                f"{m}: t{r[m]['test']:.3f} h{r[m]['heldout']:.3f}"
                for m in ("before", "refit", "targeted", "random", "uniform")
            )
            t = r["targeted"]
            print(
                f"{attribute} {strength} seed {s} | fails {res['info']['n_failures']} "
                f"c/r {r['before']['common']:.2f}/{r['before']['rare']:.2f} | {line} | "
                f"k {t['k']} n {t['n']} lam {t['lam']:g} lam_r {r['random']['lam']:g} "
                f"cues {res['info']['modes_are_cues']:.2f}"
                + (f" | gap {res['style_gap']:.3f}" if "style_gap" in res else "")
                + f" | {res['info']['seconds']['total']} s",
                flush=True,
            )
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(json.dumps(res) + "\n")
    return results


if __name__ == "__main__":
    main()
