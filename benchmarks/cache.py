"""Benchmark: ``failmodes demo`` run twice with the same seed and cache.

The first run starts from an empty cache folder and computes everything; the second reads every
step back. The script checks that both write the same ``summary.json`` apart from ``seconds``,
and prints one JSON line::

    {"first_s": ..., "second_s": ..., "import_s": ..., "ratio": ..., "identical": true, ...}

``first_s`` and ``second_s`` are the wall-clock seconds of the two ``failmodes demo`` processes;
``import_s`` the seconds of a process that only imports what the demo imports (failmodes, its
ToyWorld, open_clip, torch, and matplotlib when installed, which the report's chart uses),
measured right before the second run. ``ratio = second_s /
first_s``. Goal: ``second_s <= max(0.10 * first_s, import_s + 2)``.

Run by hand (not in CI)::

    python benchmarks/cache.py
    python benchmarks/cache.py --args "--attribute color --world-seed 3"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORTS = (
    "import failmodes.cli, failmodes.debugger, failmodes.toyworld.demo, open_clip, torch\n"
    "try:\n"
    "    import matplotlib.figure, matplotlib.backends.backend_agg  # the report's chart\n"
    "except ImportError:\n"
    "    pass\n"
)


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def summary(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("seconds", None)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--args", default="", help="more arguments for failmodes demo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "FAILMODES_CACHE": str(root / "cache")}
        demo = [sys.executable, "-m", "failmodes", "demo", *shlex.split(args.args)]
        first_s = timed([*demo, "--out", str(root / "first")], env)
        import_s = timed([sys.executable, "-c", IMPORTS], env)
        second_s = timed([*demo, "--out", str(root / "second")], env)
        identical = summary(root / "first" / "summary.json") == summary(
            root / "second" / "summary.json"
        )
        size = sum(p.stat().st_size for p in (root / "cache").rglob("*") if p.is_file())
    goal = max(0.10 * first_s, import_s + 2.0)
    print(
        json.dumps(
            {
                "first_s": round(first_s, 2),
                "second_s": round(second_s, 2),
                "import_s": round(import_s, 2),
                "ratio": round(second_s / first_s, 4),
                "identical": identical,
                "goal_s": round(goal, 2),
                "goal_met": identical and second_s <= goal,
                "cache_mb": round(size / 2**20, 1),
                "args": args.args,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
