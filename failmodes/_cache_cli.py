"""``failmodes cache info | verify | prune``: look after a cache folder from the command line.

Each refuses a folder that is not a failmodes cache (it has no ``CACHEDIR.TAG``; see
[`Cache.check_is_cache`][failmodes.cache.Cache.check_is_cache]) before it lists or removes
anything.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

__all__ = ["add_cache_parser", "run_cache"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _size(text: str) -> int:
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a size such as 500M or 20G, got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {text!r}") from None
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def add_cache_parser(sub: Any, parents: list) -> None:
    """Add ``cache`` and its three actions to the command's subparsers."""
    cache = sub.add_parser(
        "cache",
        parents=parents,
        help="show, verify or prune a cache folder",
        description="Look after a cache folder. Entries are verified against the checksums "
        "they were written with; a damaged one is recomputed when a run needs it.",
    )
    actions = cache.add_subparsers(dest="action", required=True, parser_class=type(cache))
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--cache",
        type=str,
        default=None,
        metavar="FOLDER|URL",
        help="the cache folder or fsspec URL (default: $FAILMODES_CACHE, else "
        "the user cache folder)",
    )
    actions.add_parser("info", parents=[where], help="entries and bytes per kind, last uses")
    verify = actions.add_parser(
        "verify", parents=[where], help="check every entry against its checksums"
    )
    verify.add_argument(
        "--repair",
        action="store_true",
        help="remove the damaged entries; safe while a run uses the cache (default: off)",
    )
    prune = actions.add_parser(
        "prune", parents=[where], help="remove entries by last use (age or total size)"
    )
    prune.add_argument(
        "--older-than",
        type=_days,
        default=None,
        metavar="DAYS",
        help="remove entries unused for more than DAYS days, a number >= 0 (default: no age limit)",
    )
    prune.add_argument(
        "--max-size",
        type=_size,
        default=None,
        metavar="SIZE",
        help="then remove the least recently used entries until the cache holds "
        "at most SIZE, e.g. 500M or 20G (default: no size limit)",
    )
    prune.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be removed, and remove nothing (default: off)",
    )


def run_cache(args: argparse.Namespace) -> int:
    """Run ``failmodes cache <action>``; returns the exit status."""
    cache, problem = _opened(args.cache)
    if problem is not None:
        print(f"failmodes cache: error: --cache: {problem}", file=sys.stderr)
        return 2
    try:
        return _act(cache, args)
    except OSError as err:  # a read-only cache: what could not be removed, in one line
        print(f"failmodes cache {args.action}: error: {err}", file=sys.stderr)
        return 1


def _opened(root: str | None) -> tuple[Any, str | None]:
    """The cache at ``root``, and why the command cannot look after it (``None`` when it can)."""
    from failmodes.cache import Cache

    try:
        cache = Cache(root)
        if not cache.exists():
            return cache, f"no cache at {cache.location}"
        cache.check_is_cache()
    except (ValueError, ImportError, OSError) as err:  # not a cache, a broken URL, a file, ...
        # the library's messages name its argument ("cache: ..."); here the flag is named
        return None, str(err).removeprefix("cache: ")
    return cache, None


def _act(cache: Any, args: argparse.Namespace) -> int:
    if args.action == "info":
        _print_info(cache.info())
        return 0
    if args.action == "verify":
        damaged = cache.verify(repair=args.repair)
        for entry, reason in damaged:
            print(f"{entry.kind}/{str(entry.path).rsplit('/', 1)[-1]}: {reason}")
        done = "removed" if args.repair else "damaged"
        print(f"{_entries(len(damaged), done)} in {cache.location}")
        return 1 if damaged and not args.repair else 0
    if args.older_than is None and args.max_size is None:
        print(
            "failmodes cache prune: error: give --older-than DAYS, --max-size SIZE or both",
            file=sys.stderr,
        )
        return 2
    older = None if args.older_than is None else args.older_than * 86400
    removed = cache.prune(older_than=older, max_bytes=args.max_size, dry_run=args.dry_run)
    freed = sum(entry.size for entry in removed)
    done = "would remove" if args.dry_run else "removed"
    print(f"{done} {_entries(len(removed))} ({_human(freed)}) from {cache.location}")
    return 0


def _print_info(info: dict) -> None:
    print(f"{info['path']}: {_entries(info['entries'])}, {_human(info['bytes'])}")
    for kind, row in info["kinds"].items():
        print(f"  {kind}: {_entries(row['entries'])}, {_human(row['bytes'])}")
    if info["oldest_use"] is not None:
        fmt = "%Y-%m-%d %H:%M"
        oldest = time.strftime(fmt, time.localtime(info["oldest_use"]))
        newest = time.strftime(fmt, time.localtime(info["newest_use"]))
        print(f"last used: {oldest} (oldest entry) to {newest} (newest)")


def _entries(n: int, adjective: str = "") -> str:
    noun = "entry" if n == 1 else "entries"
    return f"{n} {adjective} {noun}" if adjective else f"{n} {noun}"


def _human(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"
