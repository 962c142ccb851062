"""The ``failmodes`` command line.

Nothing heavy is imported before the arguments are checked and the first line is printed: a
mistyped flag or an unwritable folder is reported at once, in one line, and a first run says
what it is doing from the start.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from failmodes._cache_cli import add_cache_parser, run_cache
from failmodes._stores import is_url

if TYPE_CHECKING:
    from failmodes.results import RunResult

__all__ = ["main"]

SEED_MAX = 2**32 - 1


class _Parser(argparse.ArgumentParser):
    """argparse, with a user error reported in one line that names the flag."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """``--version``: the package is imported only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object):
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show the version and exit",
        )

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:
        from failmodes import __version__

        print(f"failmodes {__version__}")
        parser.exit(0)


class _DemoLimit:
    """The demo's bound on a flag (``DEMO_LIMITS``), read when a value or ``--help`` needs it.

    Reading it imports the demo, and torch with it: a command that does not give the flag still
    reports a mistake, and says what it does, at once.
    """

    def __init__(self, name: str):
        self.name = name

    def __int__(self) -> int:
        from failmodes.toyworld.demo import DEMO_LIMITS

        return DEMO_LIMITS[self.name]

    def __str__(self) -> str:
        return str(int(self))


def _integer(low: int, high: int | _DemoLimit | None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]`` (no upper bound for ``None``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > int(high)):
            bounds = f"in [{low}, {high}]" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def _folder(text: str) -> Path:
    """An argparse type: a folder's path; an empty one (the current folder, unseen) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a folder, got the empty path {text!r} (give '.' for the current folder)"
        )
    return Path(text)


_seed = _integer(0, SEED_MAX)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log each step (default: off)",
    )
    parser = _Parser(
        prog="failmodes",
        description="Find, describe, cover and repair an image classifier's failure modes.",
        parents=[verbose],
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser(
        "demo",
        parents=[verbose],
        help="run the whole method on the embedded ToyWorld (CPU, offline)",
        description="Run the whole method on the embedded ToyWorld: a classifier that learned "
        "a spurious cue, its failures, their captions, rendered images and the repaired head, "
        "beside the random and uniform baselines and a plain refit.",
    )
    _demo_arguments(demo)
    run = sub.add_parser(
        "run",
        parents=[verbose],
        help="run the whole method on your model and data, as a TOML file describes them",
        description="Run the whole method as CONFIG.toml describes it: the model, the datasets, "
        "the components and their settings, the engine. The whole file is checked before any "
        "work; relative paths in it are read from its folder.",
    )
    _run_arguments(run)
    add_cache_parser(sub, [verbose])
    return parser


def _run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "config",
        type=Path,
        metavar="CONFIG.toml",
        help="the run's file (see the guide 'Run from a config file')",
    )
    run.add_argument(
        "--out",
        type=_folder,
        default=Path("failmodes-run"),
        metavar="FOLDER",
        help="folder for summary.json, report.html and the saved run (run/), created if missing "
        "(default: %(default)s)",
    )
    _cache_arguments(
        run,
        "cache folder or fsspec URL, in place of the file's debugger.cache "
        "(default: the file's, else $FAILMODES_CACHE, else the user cache folder)",
    )
    run.add_argument(
        "--check",
        action="store_true",
        help="check the file and exit without running (default: off)",
    )


def _cache_arguments(parser: argparse.ArgumentParser, help_cache: str) -> None:
    """``--cache FOLDER|URL`` or ``--no-cache``, one of them."""
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--cache", type=str, default=None, metavar="FOLDER|URL", help=help_cache)
    cache.add_argument(
        "--no-cache", action="store_true", help="compute everything afresh (default: off)"
    )


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
    from failmodes.methods import REAL_SETS, SCORES
    from failmodes.ranking import DEFAULT_RANK, RANKINGS

    seeds = f"an integer in [0, {SEED_MAX}]"
    demo.add_argument(
        "--out",
        type=_folder,
        default=Path("failmodes-demo"),
        metavar="FOLDER",
        help="folder for summary.json, report.html and the saved run (run/), created if missing "
        "(default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="N",
        help=f"the pipeline's randomness (split, generation, solver): {seeds} "
        "(default: %(default)s)",
    )
    demo.add_argument(
        "--world-seed",
        type=_seed,
        default=0,
        metavar="N",
        help=f"the world's randomness (its common values and images): {seeds} "
        "(default: %(default)s)",
    )
    demo.add_argument(
        "--strength",
        type=_share,
        default=0.95,
        metavar="R",
        help="share of training images with their class's common value, in "
        "[0, 1] (default: %(default)s)",
    )
    demo.add_argument(
        "--attribute",
        choices=["background", "color"],
        default="background",
        help="the spurious attribute (default: %(default)s)",
    )
    demo.add_argument(
        "--cues",
        type=_integer(1, 10),
        default=None,
        metavar="N",
        help="a world where N values each predict one class (in the train split "
        "a cue value appears only with its class, with probability --strength), "
        "an integer in [1, 10] (default: none, every class has a common "
        "value)",
    )
    demo.add_argument(
        "--debug-strength",
        type=_share,
        default=0.0,
        metavar="R",
        help="share of debug and test images whose value is drawn as in the train "
        "split, in [0, 1] (default: %(default)s, balanced)",
    )
    _bounded(
        demo,
        "--images-per-mode",
        help="images generated per failure mode, an integer in [1, %(bound)s], the most "
        "ToyWorld holds on one machine (default: chosen among 20 and 40 on the validation part)",
    )
    _bounded(
        demo,
        "--debug-size",
        help="images in the debug set, an integer in [1, %(bound)s], the most ToyWorld holds on "
        "one machine; a few hundred leave a handful of failures per class, the paper's few-shot "
        "setting (default: 10000)",
    )
    demo.add_argument(
        "--real",
        choices=[*REAL_SETS, "none"],
        default=None,
        help="the debug set's own images every repair may also refit on: its debug_seed "
        "failures, those and a seeded half of its successes, or none (the paper's repair, "
        "generated images only) (default: the Debugger's)",
    )
    demo.add_argument(
        "--generator",
        choices=["render", "edit"],
        default="render",
        help="render images of the failure modes from their words (as text-to-image does), or "
        "edit the world's training images into them (as image-to-image does) "
        "(default: %(default)s)",
    )
    demo.add_argument(
        "--paper",
        action="store_true",
        help="the paper's repair: generated images only, on the modes alone, no guard held "
        "out of the train split (the settings of failmodes.settings.PAPER); --real or --guard "
        "given with it overrides the value it sets (default: off)",
    )
    demo.add_argument(
        "--guard",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="hold a share of the train split out of every refit as a guard: a repair that "
        "costs more than 0.01 there is refused (default: on, off with --paper)",
    )
    demo.add_argument(
        "--select-by",
        choices=list(SCORES),
        default=None,
        help="what chooses among the candidates on the validation part's failures: their loss "
        "or their accuracy (the former rule) (default: the Debugger's, loss; accuracy with "
        "--paper)",
    )
    demo.add_argument(
        "--rank",
        choices=list(RANKINGS),
        default=DEFAULT_RANK,
        help="how a class's values are ranked: by failures beyond its base rate "
        "(excess), by failure count (count), ... (default: %(default)s)",
    )
    _cache_arguments(
        demo,
        "cache folder or fsspec URL (s3://bucket/path, ...); a rerun with the "
        "same arguments reads every step back, a killed run resumes (default: "
        "$FAILMODES_CACHE, else the user cache folder)",
    )
    demo.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal)",
    )


def _bounded(demo: argparse.ArgumentParser, flag: str, help: str) -> None:
    """An integer flag of the demo, from 1 to its bound in ``DEMO_LIMITS`` (``%(bound)s``)."""
    limit = _DemoLimit(flag[2:].replace("-", "_"))
    action = demo.add_argument(flag, type=_integer(1, limit), default=None, metavar="N", help=help)
    action.bound = limit  # the help reads it only when shown


def _writable(folder: Path) -> str | None:
    """Why ``folder`` cannot be used as an output folder, or ``None`` when it can."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".failmodes-check-"):
            pass
    except OSError as err:
        return f"cannot write to {folder} ({err.strerror or err})"
    return None


def _cache_writable(root: str) -> str | None:
    """Why a cache folder or URL cannot be written, or ``None`` when it can."""
    if not is_url(root):
        return _writable(Path(root).expanduser())
    from failmodes.cache import Cache

    try:
        Cache(root).check_writable()
    except OSError as err:
        return str(err)
    return None


def _check_folders(args: argparse.Namespace) -> str | None:
    """One line naming the flag (or $FAILMODES_CACHE) whose folder cannot be used."""
    problem = _writable(args.out)
    if problem:
        return f"--out: {problem}"
    if args.no_cache:
        return None
    if args.cache is not None:
        problem = _cache_writable(args.cache)
        return f"--cache: {problem}" if problem else None
    env = os.environ.get("FAILMODES_CACHE")
    if env:
        problem = _cache_writable(env)
        if problem:
            return f"$FAILMODES_CACHE: {problem} (set it to a writable folder, or pass --cache)"
    return None


def _table(result) -> str:
    from failmodes.methods import shown_splits

    frame = result.to_frame()
    cols = shown_splits(list(frame.columns))
    return frame[cols].rename_axis(None).to_string(float_format=lambda x: f"{x:.3f}")


@contextlib.contextmanager
def _stage_lines(args: argparse.Namespace) -> Iterator[None]:
    """Print each stage as it starts (the ``failmodes.stage`` logger) while a command runs.

    Not with ``--verbose``, whose log shows the stages. The logger is left as it was found, so
    that ``main()`` called in a notebook or a test changes nothing for the code after it.
    """
    if getattr(args, "verbose", False):
        yield
        return
    from failmodes.progress import STAGE_LOGGER

    stages = logging.getLogger(STAGE_LOGGER)
    handler, level, propagate = logging.StreamHandler(sys.stdout), stages.level, stages.propagate
    handler.setFormatter(logging.Formatter("  %(message)s"))
    stages.addHandler(handler)
    stages.setLevel(logging.INFO)
    stages.propagate = False  # printed here once, whatever a library does to the root logger
    try:
        yield
    finally:
        stages.removeHandler(handler)
        stages.setLevel(level)
        stages.propagate = propagate


def _world(args: argparse.Namespace) -> str:
    cues = "" if args.cues is None else f", {args.cues} cues"
    debug = f", debug strength {args.debug_strength}" if args.debug_strength else ""
    return (
        f"ToyWorld (world seed {args.world_seed}, {args.attribute}, strength {args.strength}"
        f"{cues}{debug})"
    )


def _demo_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``run_demo``'s ``guard`` and the Debugger settings of --paper and the flags beside it.

    --paper gives the settings of ``failmodes.settings.PAPER``; a flag given beside it
    overrides the value it sets: --real its ``real``, --select-by its ``select_by``, --guard its
    ``guard_fraction`` of 0 (the Debugger's own guard is then held out).
    """
    from failmodes.settings import PAPER

    settings: dict[str, Any] = dict(PAPER) if args.paper else {}
    if args.real is not None:
        settings["real"] = None if args.real == "none" else args.real
    if args.select_by is not None:
        settings["select_by"] = args.select_by
    if args.guard:  # --guard given
        settings.pop("guard_fraction", None)
    settings["guard"] = args.guard is not False
    return settings


def _demo(args: argparse.Namespace) -> int:
    print(f"failmodes demo: {_world(args)}, seed {args.seed}, writing to {args.out}", flush=True)
    started = time.perf_counter()
    from failmodes.errors import DataError
    from failmodes.toyworld.demo import run_demo

    with _stage_lines(args):
        try:
            result = _demo_result(args, run_demo)
        except DataError as err:  # the world drawn has no failure to debug, say: one line
            print(f"failmodes demo: error: {err}", file=sys.stderr)
            return 2
        result.seconds = time.perf_counter() - started
        _write(args, _world(args), result)
    return 0


def _demo_result(args: argparse.Namespace, run_demo: Callable) -> RunResult:
    """The demo run that ``args`` asks for."""
    return run_demo(
        seed=args.seed,
        world_seed=args.world_seed,
        strength=args.strength,
        attribute=args.attribute,
        cues=args.cues,
        debug_strength=args.debug_strength,
        images_per_mode=args.images_per_mode,
        debug_size=args.debug_size,
        generator=args.generator,
        rank=args.rank,
        **_demo_settings(args),
        progress=args.progress,
        cache=False if args.no_cache else (args.cache if args.cache is not None else True),
    )


def _run(args: argparse.Namespace) -> int:
    """``failmodes run``: the file checked whole, then built and run."""
    started = time.perf_counter()
    from failmodes.config import ConfigError, load_config
    from failmodes.errors import DataError

    try:
        config = load_config(args.config)
        config.check_runnable()
    except (ConfigError, ImportError) as err:
        print(f"failmodes run: error: {args.config}: {err}", file=sys.stderr)
        return 2
    title = f"{args.config} (seed {config.seed}, engine {config.engine})"
    if args.check:
        print(f"failmodes run: {title}: checked, nothing run")
        return 0
    problem = _check_folders(args)
    if problem:
        print(f"failmodes run: error: {problem}", file=sys.stderr)
        return 2
    print(f"failmodes run: {title}, writing to {args.out}", flush=True)
    with _stage_lines(args):
        try:
            result = config.run(cache=False if args.no_cache else args.cache)
        except (ConfigError, DataError) as err:
            print(f"failmodes run: error: {args.config}: {err}", file=sys.stderr)
            return 2
        result.seconds = time.perf_counter() - started
        _write(args, str(args.config), result)
    return 0


def _write(args: argparse.Namespace, title: str, result) -> None:
    summary_path = result.save_summary(args.out / "summary.json")
    report_path = result.report(args.out / "report.html")
    run_path = result.save(args.out / "run", images=False)  # the images are in report.html
    _print_result(title, result)
    print(
        f"\nwrote {summary_path}, {report_path} and the run in {run_path} "
        f"(RunResult.load reads it back) ({result.seconds:.0f} s)"
    )


def _print_result(title: str, result) -> None:
    summary, cfg = result.summary(), result.config
    print(
        f"\n{title}: {summary['n_failures']} failures, {summary['n_seed']} debug_seed, "
        f"{summary['n_heldout']} debug_heldout"
    )
    if summary["caption_accuracy"] is not None:
        print(f"caption accuracy: {summary['caption_accuracy']:.3f}")
    print("\nfailure modes (debug_seed):")
    for line in result.modes.describe():
        print(f"  {line}")
    chosen = "chosen on validation" if len(result.failures.validation) else "taken (no validation)"
    print(
        f"\n{chosen}: k={cfg['k']}, lam={cfg['lam']}, "
        f"images_per_mode={cfg['images_per_mode']}"
        + (f", lam_real={cfg['lam_real']}" if cfg.get("lam_real") is not None else "")
    )
    print("\naccuracy (before = original head; failmodes = targeted repair):")
    print(_table(result))
    if summary.get("ladder"):
        print(f"\n{summary['ladder']}")
    modes = result.mode_accuracy
    if modes is not None:
        print(
            f"\ndebug_heldout failures in the targeted modes (by true value): {modes.n_in} of "
            f"{modes.n_in + modes.n_out} ({modes.share:.0%})\nfixed inside / outside them:"
        )
        for method, sides in modes.accuracy.items():
            print(f"{method:9} {sides['in_modes']:.3f} / {sides['out_of_modes']:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``failmodes`` command.

    Args:
        argv: the command's arguments, without the program name (``["demo", "--out",
            "folder"]``, ``["run", "config.toml"]``); ``None`` reads ``sys.argv``.

    Returns:
        The exit status: 0 on success, 2 for a user error (reported in one line).

    Raises:
        SystemExit: on ``--help``, ``--version`` and invalid arguments (status 2), as
            ``argparse`` does.

    Examples:
        ```python
        from failmodes.cli import main

        main(["demo", "--out", "failmodes-demo"])  # as `failmodes demo` on the command line
        ```
    """
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except BrokenPipeError:  # the reader went away (`failmodes cache info | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(args: argparse.Namespace) -> int:
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.command == "demo":
        problem = _check_folders(args)
        if problem:
            print(f"failmodes demo: error: {problem}", file=sys.stderr)
            return 2
        return _demo(args)
    if args.command == "run":
        return _run(args)
    if args.command == "cache":
        return run_cache(args)
    return 2  # pragma: no cover - argparse enforces the commands


if __name__ == "__main__":
    sys.exit(main())
