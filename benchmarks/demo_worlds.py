"""Run ``failmodes demo`` on many worlds and check the goals of the ToyWorld demo.

Prints one JSON line per (world, rank, budget) run (the summary's accuracies, the baselines'
ratios to targeted repair, seconds and which goals hold, and where the held-out failures lie:
the share in the modes the repair targeted, by the world's true values, and each repair's
accuracy on those inside and outside them; with cues, each kind of failure's share and rate,
see ``failure_kinds``), then one line per (rank, budget) with the mean and spread over the
worlds, and, for worlds with a ``debug_strength``, whether a value that is frequent but rarely
fails is in the top k by counts and not by excess.

A world is ``attribute:strength:world_seed[:cues[:debug_strength]]``. ``--budgets`` takes numbers
of images per mode and ``grid`` (the demo's own choice among 20 and 40).

    python benchmarks/demo_worlds.py                       # the default worlds and the cue worlds
    python benchmarks/demo_worlds.py --worlds background:0.95:0 color:0.85:3
    python benchmarks/demo_worlds.py --worlds background:0.4:0:3 --budgets 5 grid --ranks excess
    python benchmarks/demo_worlds.py --worlds background:0.4:0:3 --budgets 5 --train-per-class 200

``--train-per-class`` fits the classifier's head on another number of training images per class
than the demo's 50: an experiment on the world, not the demo.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import time

import numpy as np

from failmodes.cache import resolve_cache
from failmodes.debugger import Debugger
from failmodes.methods import REAL_SETS, SCORES, SOURCE_SETS
from failmodes.ranking import ALLOCATIONS, DEFAULT_RANK, RANKINGS
from failmodes.toyworld import ToyWorld
from failmodes.toyworld.demo import DEMO_SETTINGS, cached_split, run_demo

_DEBUGGER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Debugger)}

DEFAULT_WORLDS = [
    f"{attribute}:{strength}:{seed}"
    for attribute in ("background", "color")
    for strength, seeds in ((0.95, (0, 1, 2)), (0.85, (3,)), (0.97, (4,)))
    for seed in seeds
]

CUE_WORLDS = [
    "background:0.4:0:3",
    "background:0.5:1:2:0.5",
    "background:0.3:2:4",
    "background:0.6:3:2:0.5",
    "color:0.4:0:3:0.5",
    "color:0.5:1:2",
    "color:0.3:2:4:0.5",
    "color:0.6:5:3",
]

KEYS = (
    "test_acc_before",
    "test_acc_after",
    "heldout_acc_after",
    "random_heldout_acc_after",
    "uniform_heldout_acc_after",
    "refit_heldout_acc_after",
    "train_like_acc_before",
    "train_like_acc_after",
    "caption_accuracy",
    "n_failures",
)


def goals(s: dict, cues: bool) -> dict[str, bool]:
    """The demo's goals (issue 2), or the cue worlds' (issue 13), on one run."""
    if not cues:
        return {
            "heldout>=0.20": s["heldout_acc_after"] >= 0.20,
            "random<=half": s["random_heldout_acc_after"] <= 0.5 * s["heldout_acc_after"],
            "test>=before-0.01": s["test_acc_after"] >= s["test_acc_before"] - 0.01,
            "caption>=0.90": s["caption_accuracy"] >= 0.90,
            "under_180s": s["seconds"] < 180,
        }
    return {
        "heldout>=0.20": s["heldout_acc_after"] >= 0.20,
        "uniform_ratio<=1/1.5": s["uniform_heldout_acc_after"] <= s["heldout_acc_after"] / 1.5,
        "random_ratio<=0.6": s["random_heldout_acc_after"] <= 0.6 * s["heldout_acc_after"],
        "test>=before-0.01": s["test_acc_after"] >= s["test_acc_before"] - 0.01,
    }


def frequent_not_failing(modes, k: int) -> bool:
    """Whether some class's top ``k`` by counts holds a value failing at most at its base rate
    that its top ``k`` by excess leaves out."""
    stats = modes.stats()
    by_count = dataclasses.replace(modes, rank="count").top_k(k)
    by_excess = dataclasses.replace(modes, rank="excess").top_k(k)
    for cls, value, lift in zip(stats["class"], stats["value"], stats["lift"], strict=True):
        if lift <= 1 and value in by_count.get(cls, []) and value not in by_excess.get(cls, []):
            return True
    return False


def in_modes(result, world: dict) -> dict[str, float]:
    """Where the held-out failures lie: the share in the modes the repair targeted (the run's
    ``mode_accuracy``), with cues the share on a cue value, and each repair's accuracy inside
    and outside the modes.
    """
    modes = result.mode_accuracy
    out = {"heldout_in_modes": modes.share}
    for method, sides in modes.accuracy.items():
        name = "targeted" if method == "failmodes" else method
        out[f"{name}_in_modes"] = sides["in_modes"]
        out[f"{name}_out_of_modes"] = sides["out_of_modes"]
    if world.get("cues"):
        options = {k: v for k, v in world.items() if k != "world_seed"}
        toy = ToyWorld(seed=world["world_seed"], **options)
        debug = cached_split(toy, "debug", DEMO_SETTINGS["debug_size"], resolve_cache(True))
        out.update(failure_kinds(result, toy, debug))
    return out


KINDS = ("cue_class_off_its_cue", "other_class_on_a_cue", "rest")


def failure_kinds(result, toy: ToyWorld, debug) -> dict[str, float]:
    """In a world with cues, the share of held-out failures on a cue value, and each kind of
    debug image: its share of the held-out failures and its failure rate (among the debug images
    outside the validation part). A class with a cue shown off it has lost its crutch on every
    other value alike; another class shown on a cue is drawn to the cue's class; the rest (a
    class on its own cue among them) fail for other reasons.
    """
    cue_of = toy.cue_values
    cues = set(cue_of.values())

    def kind(label: int, value: str) -> str:
        if label in cue_of and value != cue_of[label]:
            return KINDS[0]
        if value in cues and cue_of.get(label) != value:
            return KINDS[1]
        return KINDS[2]

    kinds = np.array([kind(int(y), g) for y, g in zip(debug.labels, debug.groups, strict=True)])
    failed = np.zeros(len(kinds), dtype=bool)
    failed[result.failures.failures] = True
    outside = np.ones(len(kinds), dtype=bool)
    outside[result.failures.validation] = False
    heldout = kinds[result.failures.heldout]
    values = [debug.groups[i] for i in result.failures.heldout]
    out = {"heldout_on_cues": float(np.mean([v in cues for v in values]))}
    for name in KINDS:
        rows = outside & (kinds == name)
        out[f"heldout_{name}"] = float(np.mean(heldout == name))
        out[f"rate_{name}"] = float(failed[rows].mean()) if rows.any() else None
    out["rate_overall"] = float(failed[outside].mean())
    return out


def parse_world(spec: str) -> dict:
    parts = spec.split(":")
    if not 3 <= len(parts) <= 5:
        raise SystemExit(f"a world is attribute:strength:seed[:cues[:debug_strength]], got {spec}")
    world = {"attribute": parts[0], "strength": float(parts[1]), "world_seed": int(parts[2])}
    if len(parts) > 3:
        world["cues"] = int(parts[3])
    if len(parts) > 4:
        world["debug_strength"] = float(parts[4])
    return world


def one_run(spec: str, world: dict, rank: str, budget: str, seed: int, **settings) -> dict:
    started = time.perf_counter()
    per_mode = None if budget == "grid" else int(budget)
    result = run_demo(seed=seed, rank=rank, images_per_mode=per_mode, **settings, **world)
    result.seconds = time.perf_counter() - started
    s = result.summary()
    row = {
        "world": spec,
        "seed": seed,
        "train_per_class": DEMO_SETTINGS["train_per_class"],
        "rank": rank,
        **settings,
        "debug_size": s["config"]["debug_size"],
        "n_seed": s["n_seed"],
        "budget": budget,
        "chosen": result.chosen,
        **{
            f"{method}:{split}": round(acc[split], 4)
            for method, acc in result.accuracy.items()
            for split in ("debug_heldout", "test", "train_like", "guard")
            if split in acc
        },
        **{key: s.get(key) for key in KEYS},
        "random_ratio": s["random_heldout_acc_after"] / max(s["heldout_acc_after"], 1e-9),
        "uniform_ratio": s["uniform_heldout_acc_after"] / max(s["heldout_acc_after"], 1e-9),
        "k": s["config"]["k"],
        "lam": s["config"]["lam"],
        "images_per_mode": s["config"]["images_per_mode"],
        "n_generated": s["n_generated"],
        "seconds": round(s["seconds"], 1),
        **in_modes(result, world),
    }
    if world.get("debug_strength") and result.modes.has_successes:
        row["frequent_not_failing_in_count_top_k"] = frequent_not_failing(
            result.modes, s["config"]["k"]
        )
    row["goals"] = goals(s, cues="cues" in world)
    return row


def mean_sd(values: list) -> list[float]:
    """``[mean, standard deviation]`` of the values that are not ``None`` or NaN, to 3 decimals."""
    values = [v for v in values if v is not None and v == v]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return [round(statistics.fmean(values), 3), round(sd, 3)]


def aggregate(rows: list[dict]) -> dict:
    targeted = [r["heldout_acc_after"] for r in rows]
    uniform = [r["uniform_heldout_acc_after"] for r in rows]
    random = [r["random_heldout_acc_after"] for r in rows]
    out = {
        "worlds": len(rows),
        "heldout_targeted": mean_sd(targeted),
        "heldout_uniform": mean_sd(uniform),
        "heldout_random": mean_sd(random),
        "targeted_over_uniform": _ratio(targeted, uniform),
        "random_over_targeted": _ratio(random, targeted),
        "test_change": mean_sd([r["test_acc_after"] - r["test_acc_before"] for r in rows]),
        "train_like_change": mean_sd(
            [r["train_like_acc_after"] - r["train_like_acc_before"] for r in rows]
        ),
        "meet_every_goal": sum(all(r["goals"].values()) for r in rows),
        **{
            key: mean_sd([r[key] for r in rows])
            for key in (
                "heldout_in_modes",
                "targeted_in_modes",
                "uniform_in_modes",
                "random_in_modes",
                "targeted_out_of_modes",
                "uniform_out_of_modes",
                "random_out_of_modes",
            )
        },
    }
    for key in [f"{part}_{name}" for name in KINDS for part in ("heldout", "rate")]:
        if all(key in r for r in rows):
            out[key] = mean_sd([r[key] for r in rows])
    flags = [
        r["frequent_not_failing_in_count_top_k"]
        for r in rows
        if "frequent_not_failing_in_count_top_k" in r
    ]
    if flags:
        out["frequent_not_failing_in_count_top_k"] = f"{sum(flags)} of {len(flags)}"
    return out


LADDER_METHODS = ("before", "refit", "dfr", "failmodes", "uniform", "random")


def ladder(rows: list[dict]) -> dict:
    """Every rung over a group of runs: mean and spread of each method on each split, and the
    repair validation chose (``dfr`` or ``failmodes``) on held-out failures."""
    out = {"runs": len(rows), "n_seed": mean_sd([r["n_seed"] for r in rows])}
    for method in LADDER_METHODS:
        for split in ("debug_heldout", "test", "train_like", "guard"):
            values = [r[f"{method}:{split}"] for r in rows if f"{method}:{split}" in r]
            if values:
                out[f"{method}:{split}"] = mean_sd(values)
    if all(r.get("chosen") for r in rows):
        out["chosen:debug_heldout"] = mean_sd([r[f"{r['chosen']}:debug_heldout"] for r in rows])
        out["chosen:test"] = mean_sd([r[f"{r['chosen']}:test"] for r in rows])
        out["chosen_failmodes"] = f"{sum(r['chosen'] == 'failmodes' for r in rows)} of {len(rows)}"
    return out


def _ratio(a: list[float], b: list[float]) -> float:
    """The ratio of the means."""
    return round(statistics.fmean(a) / max(statistics.fmean(b), 1e-9), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--worlds",
        nargs="+",
        default=DEFAULT_WORLDS + CUE_WORLDS,
        help="attribute:strength:world_seed[:cues[:debug_strength]] (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="the pipeline's seeds (default: 0)"
    )
    parser.add_argument(
        "--debug-sizes",
        nargs="+",
        type=int,
        default=[DEMO_SETTINGS["debug_size"]],
        help="images in the debug set (default: the demo's %(default)s)",
    )
    parser.add_argument(
        "--no-guard", action="store_true", help="no guard held out of the train split"
    )
    parser.add_argument(
        "--generators",
        nargs="+",
        default=["render"],
        choices=["render", "edit", "render-world"],
        help="the demo's generator: the renderer, the editor, or the renderer in the world's "
        "own style (an ablation) (default: %(default)s)",
    )
    parser.add_argument(
        "--sources",
        default=None,
        choices=SOURCE_SETS,
        help="what an editor edits (default: the Debugger's)",
    )
    parser.add_argument(
        "--uniform-prior",
        nargs="+",
        type=float,
        default=None,
        help="the Debugger's uniform_prior candidates (default: the Debugger's)",
    )
    parser.add_argument(
        "--select-by",
        default=_DEBUGGER_DEFAULTS["select_by"],
        choices=SCORES,
        help="what chooses among the candidates on the validation part's failures (default: "
        "the Debugger's, %(default)s)",
    )
    parser.add_argument(
        "--reals",
        nargs="+",
        default=[_DEBUGGER_DEFAULTS["real"]],
        choices=[*REAL_SETS, "none"],
        help="the debug set's own images every repair may refit on (default: the Debugger's, "
        "%(default)s)",
    )
    parser.add_argument("--ranks", nargs="+", default=[DEFAULT_RANK], choices=sorted(RANKINGS))
    parser.add_argument(
        "--allocation",
        default=_DEBUGGER_DEFAULTS["allocation"],
        choices=ALLOCATIONS,
        help="share each class's images among its modes evenly or by excess failures",
    )
    parser.add_argument(
        "--significant", action="store_true", help="keep only modes clearly above the base rate"
    )
    parser.add_argument(
        "--budgets", nargs="+", default=["grid"], help="images per mode: numbers, or 'grid'"
    )
    parser.add_argument(
        "--train-per-class",
        type=int,
        default=DEMO_SETTINGS["train_per_class"],
        help="training images per class the head is fitted on (default: the demo's %(default)s)",
    )
    args = parser.parse_args()
    DEMO_SETTINGS["train_per_class"] = args.train_per_class
    groups: dict[tuple, list[dict]] = {}
    runs = itertools.product(
        args.worlds,
        args.debug_sizes,
        args.reals,
        args.generators,
        args.ranks,
        args.budgets,
        args.seeds,
    )
    for spec, debug_size, real, generator, rank, budget, seed in runs:
        world = parse_world(spec)
        settings = {
            "generator": generator,
            **({} if args.sources is None else {"sources": args.sources}),
            "allocation": args.allocation,
            "significant": args.significant,
            "debug_size": debug_size,
            "real": None if real == "none" else real,
            "guard": not args.no_guard,
            "select_by": args.select_by,
            **({} if args.uniform_prior is None else {"uniform_prior": args.uniform_prior}),
        }
        row = one_run(spec, world, rank, budget, seed, **settings)
        print(json.dumps(row), flush=True)
        kind = "cues" if "cues" in world else world["attribute"]
        groups.setdefault((kind, debug_size, real, generator, rank, budget), []).append(row)
    for (kind, debug_size, real, generator, rank, budget), rows in groups.items():
        head = {
            "kind": kind,
            "debug_size": debug_size,
            "real": real,
            "generator": generator,
            "rank": rank,
            "allocation": args.allocation,
            "significant": args.significant,
            "select_by": args.select_by,
            "budget": budget,
            "train_per_class": args.train_per_class,
        }
        print(json.dumps({**head, **aggregate(rows), "ladder": ladder(rows)}))


if __name__ == "__main__":
    main()
