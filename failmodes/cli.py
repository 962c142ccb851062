"""The ``failmodes`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _strength(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"--strength must be in [0, 1], got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="failmodes",
        description="Find, describe, cover and repair an image classifier's failure modes.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="run the whole method on the embedded ToyWorld (CPU, offline)",
        description="Run the whole method on the embedded ToyWorld: a classifier that learned "
        "a spurious cue, its failures, their captions, rendered images and the repaired head, "
        "beside the random and uniform baselines and a plain refit.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("failmodes-demo"),
        help="folder for summary.json and report.html (default: %(default)s)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="the pipeline's randomness: split, generation, solver"
    )
    demo.add_argument("--world-seed", type=int, default=0, help="the world's randomness")
    demo.add_argument(
        "--strength",
        type=_strength,
        default=0.95,
        help="share of training images with their class's common value",
    )
    demo.add_argument(
        "--attribute",
        choices=["background", "color"],
        default="background",
        help="the spurious attribute",
    )
    cache = demo.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache folder (default: $FAILMODES_CACHE, else the user cache folder); a rerun "
        "with the same arguments reads every step back, a killed run resumes",
    )
    cache.add_argument("--no-cache", action="store_true", help="compute everything afresh")
    demo.add_argument("--progress", action="store_true", help="show progress bars")
    return parser


def _table(result) -> str:
    frame = result.to_frame()
    cols = [
        c for c in ("test", "debug_seed", "debug_heldout", "worst_group_test") if c in frame.columns
    ]
    return frame[cols].to_string(float_format=lambda x: f"{x:.3f}")


def _demo(args: argparse.Namespace) -> int:
    from failmodes.toyworld.demo import run_demo

    started = time.perf_counter()
    result = run_demo(
        seed=args.seed,
        world_seed=args.world_seed,
        strength=args.strength,
        attribute=args.attribute,
        progress=args.progress,
        cache=False if args.no_cache else (args.cache if args.cache is not None else True),
    )
    result.seconds = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    summary_path = result.save_summary(args.out / "summary.json")
    report_path = result.report(args.out / "report.html")
    summary = result.summary()
    cfg = result.config
    print(
        f"ToyWorld (world seed {args.world_seed}, {args.attribute}, strength "
        f"{args.strength}): {summary['n_failures']} failures, {summary['n_seed']} debug_seed, "
        f"{summary['n_heldout']} debug_heldout"
    )
    print(f"caption accuracy: {summary['caption_accuracy']:.3f}")
    print("\nfailure modes (debug_seed):")
    for line in result.modes.describe():
        print(f"  {line}")
    print(
        f"\nchosen on validation: k={cfg['k']}, lam={cfg['lam']}, "
        f"images_per_mode={cfg['images_per_mode']}"
    )
    print("\naccuracy (before = original head; failmodes = targeted repair):")
    print(_table(result))
    print(f"\nwrote {summary_path} and {report_path} ({result.seconds:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``failmodes`` command.

    Args:
        argv: the command's arguments, without the program name (``["demo", "--out",
            "folder"]``); ``None`` reads ``sys.argv``.

    Returns:
        The exit status: 0 on success.

    Raises:
        SystemExit: on ``--help`` and on invalid arguments (status 2), as ``argparse`` does.

    Examples:
        ```python
        from failmodes.cli import main

        main(["demo", "--out", "failmodes-demo"])  # as `failmodes demo` on the command line
        ```
    """
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.command == "demo":
        return _demo(args)
    return 2  # pragma: no cover - argparse enforces the commands


if __name__ == "__main__":
    sys.exit(main())
