"""Run ``failmodes demo`` on many worlds and check the goals of the ToyWorld demo.

Prints one JSON line per world (the summary's accuracies, the random/targeted ratio, seconds and
which goals hold) and a final line with the number of worlds that meet every goal.

    python benchmarks/demo_worlds.py                       # the default grid
    python benchmarks/demo_worlds.py --worlds background:0.95:0 color:0.85:3
"""

from __future__ import annotations

import argparse
import json
import time

from failmodes.toyworld.demo import run_demo

DEFAULT_WORLDS = [
    f"{attribute}:{strength}:{seed}"
    for attribute in ("background", "color")
    for strength, seeds in ((0.95, (0, 1, 2)), (0.85, (3,)), (0.97, (4,)))
    for seed in seeds
]

KEYS = (
    "test_acc_before",
    "test_acc_after",
    "heldout_acc_after",
    "random_heldout_acc_after",
    "uniform_heldout_acc_after",
    "refit_heldout_acc_after",
    "caption_accuracy",
    "n_failures",
)


def goals(s: dict) -> dict[str, bool]:
    """The demo's goals (issue 2), as measured on one world."""
    return {
        "heldout>=0.20": s["heldout_acc_after"] >= 0.20,
        "random<=half": s["random_heldout_acc_after"] <= 0.5 * s["heldout_acc_after"],
        "test>=before-0.01": s["test_acc_after"] >= s["test_acc_before"] - 0.01,
        "caption>=0.90": s["caption_accuracy"] >= 0.90,
        "under_180s": s["seconds"] < 180,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--worlds",
        nargs="+",
        default=DEFAULT_WORLDS,
        help="attribute:strength:world_seed (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the pipeline's seed")
    args = parser.parse_args()
    met = 0
    for spec in args.worlds:
        attribute, strength, world_seed = spec.split(":")
        started = time.perf_counter()
        result = run_demo(
            seed=args.seed,
            world_seed=int(world_seed),
            strength=float(strength),
            attribute=attribute,
        )
        result.seconds = time.perf_counter() - started
        s = result.summary()
        row = {
            "world": spec,
            **{k: s[k] for k in KEYS},
            "random_ratio": s["random_heldout_acc_after"] / max(s["heldout_acc_after"], 1e-9),
            "uniform_ratio": s["uniform_heldout_acc_after"] / max(s["heldout_acc_after"], 1e-9),
            "k": s["config"]["k"],
            "lam": s["config"]["lam"],
            "images_per_mode": s["config"]["images_per_mode"],
            "seconds": round(s["seconds"], 1),
        }
        row["goals"] = goals(s)
        met += all(row["goals"].values())
        print(json.dumps(row), flush=True)
    print(json.dumps({"worlds": len(args.worlds), "meet_every_goal": met}))


if __name__ == "__main__":
    main()
