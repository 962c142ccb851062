"""Benchmark: failures shared across the ToyWorld model zoo, and collective repair.

For each world seed (``ToyWorld(seed=s)``: backgrounds, rho = 0.95), every model of the zoo
(``failmodes.toyworld.zoo``: backbones pretrained on balanced renders, heads fitted on the
world's biased split) is debugged on its own with the demo's settings (``demo_components`` with
the zoo model's ``TorchExtractor``; ``Debugger.run``, cache on). Then:

- the failure IoU matrix of the models on the debug set (``failure_iou``), and its mean over
  pairs of models of one category and of different categories (``mean_iou``);
- per category, ``collective_repair(kind="pooled")`` (type 1: the modes of the category's
  failures pooled) and ``collective_repair(kind="source")`` (type 2: the first model's modes
  serve the whole category). A repair's ``ratio`` is the category's sum of collective gains on
  the models' own ``debug_heldout`` failures over the sum of their individual gains, the source
  model left out for type 2; ``relative_gain_type1`` and ``relative_gain_type2`` are those
  ratios averaged over categories (then over seeds).

Two references come with them: ``iou_independent_same`` / ``_cross``, the IoU the same pairs
would have if the models failed independently at their own failure rates
(``p_a p_b / (p_a + p_b - p_a p_b)``), and ``relative_gain_uniform``, the uniform baseline's
(rare values drawn uniformly, no failure modes at all) summed gains over the individual
repairs', per category: collective repair should be judged against it as well as against 1.

``cifar_resnet_iou_mean`` is the mean pairwise IoU of the failure sets of the four pretrained
CIFAR-10 ResNets (20, 32, 44, 56 layers) on the 10,000 CIFAR-10 test images, read from
``$FAILMODES_SHARED_DATA`` (default ``../shared/data`` relative to the repository root) with the
reader of ``tests/realdata/shared_data.py`` (through ``benchmarks/real_models.py``); their
predictions are kept in failmodes' cache. It is ``null``, with the reason, without the data.

Goals (issue): ``iou_same_category > iou_cross_category``; ``relative_gain_type2 >= 0.75``.

Run by hand (not in CI); progress goes to stderr, one JSON line to stdout::

    python benchmarks/collective.py                       # world seeds 0, 1, 2
    python benchmarks/collective.py --seeds 0 --heatmap benchmarks/collective_iou.png

The first run pretrains the zoo (about two minutes per backbone on one CPU thread); pretraining
does not depend on the world, so later runs and other seeds read the backbones from the cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from failmodes import Debugger, TorchExtractor
from failmodes.cache import Cache, resolve_cache
from failmodes.collective import (
    collective_repair,
    failure_iou,
    failure_masks,
    mean_iou,
    plot_failure_iou,
)
from failmodes.toyworld import ToyWorld
from failmodes.toyworld.demo import DEMO_SETTINGS, cached_split, demo_components
from failmodes.toyworld.zoo import ZOO, zoo_models

logger = logging.getLogger("benchmarks.collective")

CIFAR_DEPTHS = (20, 32, 44, 56)
HEADLINE = ("iou_same_category", "iou_cross_category", "relative_gain_type1", "relative_gain_type2")
# references, per seed and averaged: the IoU of independent failures at the models' failure
# rates, and the uniform baseline's summed gains over the individual repairs' (per category)
REFERENCES = ("iou_independent_same", "iou_independent_cross", "relative_gain_uniform")


def run_world(world_seed: int, names: list[str], seed: int, store: Cache) -> dict:
    """Every zoo model debugged on one world, their failure overlap and collective repairs."""
    started = time.perf_counter()
    world = ToyWorld(seed=world_seed)
    train = cached_split(world, "train", DEMO_SETTINGS["train_per_class"], store)
    debug = cached_split(world, "debug", DEMO_SETTINGS["debug_size"], store)
    test = cached_split(world, "test", DEMO_SETTINGS["test_size"], store)
    zoo = zoo_models(world, names=names, cache=store, train=train)

    debuggers, results, models = {}, {}, {}
    for name, zm in zoo.items():
        extractor = TorchExtractor(zm.model, batch_size=500, progress=False)
        debuggers[name] = Debugger(
            **demo_components(world, seed=seed, train=train, extractor=extractor, cache=store)
        )
        t = time.perf_counter()
        result = debuggers[name].run(train, debug, test, seed=seed)
        results[name] = result
        acc = result.accuracy
        models[name] = {
            "category": zm.category,
            "pretraining_shape_accuracy": zm.pretraining["validation_accuracy"]["shape"],
            "test_before": acc["before"]["test"],
            "test_after": acc["failmodes"]["test"],
            "heldout_after": acc["failmodes"]["debug_heldout"],
            "random_heldout_after": acc["random"]["debug_heldout"],
            "uniform_heldout_after": acc["uniform"]["debug_heldout"],
            "n_failures": int(len(result.failures.seed) + len(result.failures.heldout)),
            "k": result.config["k"],
            "lam": result.config["lam"],
            "images_per_mode": result.config["images_per_mode"],
            "seconds": round(time.perf_counter() - t, 1),
        }
        logger.info("world %d, %s: %s", world_seed, name, models[name])

    categories = {name: zm.category for name, zm in zoo.items()}
    masks = failure_masks({n: r.failures.predictions for n, r in results.items()}, debug.labels)
    frame = failure_iou(masks, categories)
    means = mean_iou(frame)
    # the IoU two models would have if they failed independently, at their own failure rates
    rates = frame.copy()
    for a in frame.index:
        for b in frame.columns:
            pa, pb = masks[a].mean(), masks[b].mean()
            rates.loc[a, b] = pa * pb / (pa + pb - pa * pb) if pa + pb > 0 else 0.0
    chance = mean_iou(rates, categories)

    per_category = {}
    for category in dict.fromkeys(categories.values()):
        members = [n for n in names if categories[n] == category]
        dbgs = {n: debuggers[n] for n in members}
        own = {n: results[n] for n in members}
        pooled = collective_repair(dbgs, own, train, debug, test, kind="pooled", seed=seed)
        source = collective_repair(dbgs, own, train, debug, test, kind="source", seed=seed)
        within = frame.loc[members, members].to_numpy()
        gains = {
            method: sum(
                results[n].accuracy[method]["debug_heldout"]
                - results[n].accuracy["before"]["debug_heldout"]
                for n in members
            )
            for method in ("failmodes", "uniform")
        }
        per_category[category] = {
            "iou_within": float(within[np.triu_indices(len(members), 1)].mean()),
            "type1": pooled.ratio,
            "type2": source.ratio,
            "uniform": gains["uniform"] / gains["failmodes"] if gains["failmodes"] > 0 else None,
            "source": source.source,
            "type1_table": _table(pooled.table),
            "type2_table": _table(source.table),
        }
        logger.info(
            "world %d, %s: type 1 %s, type 2 %s", world_seed, category, pooled.ratio, source.ratio
        )

    type1 = [c["type1"] for c in per_category.values() if c["type1"] is not None]
    type2 = [c["type2"] for c in per_category.values() if c["type2"] is not None]
    uniform = [c["uniform"] for c in per_category.values() if c["uniform"] is not None]
    return {
        "world_seed": world_seed,
        "iou_same_category": means["same_category"],
        "iou_cross_category": means["cross_category"],
        "relative_gain_type1": float(np.mean(type1)) if type1 else None,
        "relative_gain_type2": float(np.mean(type2)) if type2 else None,
        "iou_independent_same": chance["same_category"],
        "iou_independent_cross": chance["cross_category"],
        "relative_gain_uniform": float(np.mean(uniform)) if uniform else None,
        "per_category": per_category,
        "models": models,
        "iou": frame.round(4).to_dict(),
        "seconds": round(time.perf_counter() - started, 1),
        "_frame": frame,
    }


def _table(table) -> dict:
    columns = ["individual_gain", "collective_gain", "relative_gain", "test_after", "lam"]
    return {
        name: {
            c: (None if row[c] is None or row[c] != row[c] else round(float(row[c]), 4))
            for c in columns
        }
        for name, row in table.iterrows()
    }


def cifar_resnet_iou(store: Cache) -> dict:
    """Mean pairwise failure IoU of the pretrained CIFAR-10 ResNets on the CIFAR-10 test set."""
    from real_models import _shared_data  # the one reader of the shared data

    from failmodes.cache import fingerprint
    from failmodes.models import cifar_transform, load_cifar_resnet

    data = _shared_data()
    reason = data.missing(
        data.CIFAR10_TEST, *(f"cifar10-resnets/resnet{d}.th" for d in CIFAR_DEPTHS)
    )
    if reason:
        return {"cifar_resnet_iou_mean": None, "cifar_reason": reason}
    test_zip = data.data_root() / data.CIFAR10_TEST
    x = labels = None
    predictions = {}
    for depth in CIFAR_DEPTHS:
        path = data.cifar_resnet_path(depth)
        spec = {
            "checkpoint": fingerprint(str(path)),
            "data": fingerprint(str(test_zip)),
            "transform": "cifar_transform()",
        }
        key = store.key("benchmark-cifar-predictions", spec)
        hit = store.get_tensors("benchmark-cifar-predictions", key)
        if hit is None:
            if x is None:
                images, labels = data.read_cifar10("test")
                x = data.preload(images, cifar_transform())
                del images
            extractor = TorchExtractor(load_cifar_resnet(path), batch_size=256, progress=False)
            preds = extractor.logits(extractor.extract(x)).argmax(dim=1)
            hit = {"predictions": preds, "labels": torch.from_numpy(labels)}
            store.put_tensors("benchmark-cifar-predictions", key, hit)
            logger.info("resnet%d: predictions computed", depth)
        predictions[f"resnet{depth}"] = hit["predictions"].numpy()
        labels = hit["labels"].numpy()
    masks = failure_masks(predictions, labels)
    frame = failure_iou(masks, {name: "ResNet" for name in masks})
    return {
        "cifar_resnet_iou_mean": mean_iou(frame)["same_category"],
        "cifar_resnet_accuracy": {n: round(float(1 - m.mean()), 4) for n, m in masks.items()},
    }


def _spread(values: list[float | None]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def _machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="world seeds, comma-separated")
    parser.add_argument("--models", default=",".join(ZOO), help="zoo models, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="the pipeline's seed")
    parser.add_argument("--heatmap", type=Path, default=None, help="PNG of the first seed's IoU")
    parser.add_argument("--no-cifar", action="store_true", help="skip the CIFAR-10 ResNets")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ZOO))
    if unknown:
        parser.error(f"unknown zoo models {unknown}; choose from {', '.join(ZOO)}")
    store = resolve_cache(True)

    started = time.perf_counter()
    worlds = [run_world(s, names, args.seed, store) for s in seeds]
    if args.heatmap is not None:
        import matplotlib

        matplotlib.use("Agg")
        ax = plot_failure_iou(worlds[0]["_frame"])
        ax.set_title(f"Failure IoU on the debug set, ToyWorld seed {seeds[0]}")
        ax.figure.savefig(args.heatmap, dpi=72, bbox_inches="tight")
    for world in worlds:
        del world["_frame"]
    cifar = {"cifar_resnet_iou_mean": None, "cifar_reason": "--no-cifar"}
    if not args.no_cifar:
        cifar = cifar_resnet_iou(store)

    summary = {key: _spread([w[key] for w in worlds])["mean"] for key in HEADLINE}
    out = {
        **summary,
        **cifar,
        "goals": {
            "same_above_cross": summary["iou_same_category"] > summary["iou_cross_category"],
            "type2>=0.75": (summary["relative_gain_type2"] or 0.0) >= 0.75,
        },
        "references": {key: _spread([w[key] for w in worlds])["mean"] for key in REFERENCES},
        "spread": {key: _spread([w[key] for w in worlds]) for key in HEADLINE + REFERENCES},
        "per_seed": worlds,
        "models": names,
        "world": "ToyWorld(seed=s, attribute='background', strength=0.95)",
        "seconds": round(time.perf_counter() - started, 1),
        "machine": _machine(),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
