"""A run killed with SIGKILL at random moments resumes to the uninterrupted run's result."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("open_clip")

from failmodes.cache import Cache  # noqa: E402

# a smaller demo (ToyWorld, ToyCLIP, the renderer), checkpointing often
CHILD = """
import json, sys
import torch
torch.set_num_threads(1)
from failmodes import Debugger
from failmodes.cache import Cache
from failmodes.toyworld import ToyWorld, demo_components
from failmodes.toyworld.demo import cached_split

cache = Cache(sys.argv[1])
world = ToyWorld(seed=4, attribute="color")
train = cached_split(world, "train", 50, cache)
debug = cached_split(world, "debug", 3000, cache)
test = cached_split(world, "test", 1000, cache)
dbg = Debugger(**demo_components(
    world, cache=cache, train=train, k=[2, 3], lam=[0.5, 1.0], images_per_mode=[10, 20],
    checkpoint_every=250,
))
summary = dbg.run(train, debug, test, seed=0).summary()
summary.pop("seconds")
open(sys.argv[2], "w").write(json.dumps(summary, sort_keys=True))
"""


def _start(cache: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(cache), str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(cache: Path, out: Path) -> float:
    started = time.perf_counter()
    proc = _start(cache, out)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err.decode()[-3000:]
    return time.perf_counter() - started


def _check_readable(cache: Cache) -> int:
    """Every committed file of the cache loads; returns how many there are."""
    from safetensors.torch import load_file

    count = 0
    for path in cache.files():
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".safetensors":
            load_file(str(path))
        elif path.suffix == ".png":
            with Image.open(path) as image:
                image.load()
        count += 1
    return count


@pytest.mark.slow
def test_kill_nine_at_random_moments_then_resume(tmp_path):
    reference_out = tmp_path / "reference.json"
    duration = _finish(tmp_path / "reference-cache", reference_out)

    cache_dir, out = tmp_path / "cache", tmp_path / "resumed.json"
    rng = random.Random(20261129)
    kills = 0
    for _ in range(4):
        proc = _start(cache_dir, out)
        time.sleep(rng.uniform(0.15, 0.6) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        if cache_dir.exists():
            _check_readable(Cache(cache_dir))  # nothing half-written, after every kill
    assert kills >= 2, "the run finished before it could be killed: the test checks nothing"
    _finish(cache_dir, out)
    resumed, reference = json.loads(out.read_text()), json.loads(reference_out.read_text())
    assert resumed["config"].pop("cache").endswith("/cache")  # the runs' caches differ
    assert reference["config"].pop("cache").endswith("/reference-cache")
    assert resumed == reference
    assert _check_readable(Cache(cache_dir)) > 0
