"""Random bytes flipped in a finished run's cache never change the figures of a rerun.

For 20 seeds: copy the cache of a finished run on a small ToyWorld, flip one byte in a random
file of each of three random kinds of entry, and run again. Every rerun ends with the clean
run's summary (a damaged entry it reads is a miss, recomputed); ``Cache.verify`` then lists
exactly the damaged entries the rerun did not read, and none after a repair. Whether a flip
damaged an entry is judged here on its own, by parsing the file before and after (a flip in a
JSON file's whitespace changes nothing).
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

pytest.importorskip("open_clip")

from failmodes import Debugger  # noqa: E402
from failmodes.cache import Cache, CacheWarning  # noqa: E402
from failmodes.toyworld import ToyWorld, demo_components  # noqa: E402

WORLD = ToyWorld(seed=7)


def _run(cache_dir, splits) -> dict:
    train, debug, test = splits
    settings = demo_components(
        WORLD, cache=cache_dir, train=train, k=[1, 2], lam=[0.5, 1.0], images_per_mode=[5]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        summary = Debugger(**settings).run(train, debug, test, seed=0).summary()
    summary.pop("seconds")
    summary["config"].pop("cache")
    return summary


def _parsed(path, blob: bytes):
    """What a file means, or ``None`` when it cannot be parsed."""
    try:
        if path.suffix == ".json":
            return json.loads(blob)
        if path.suffix == ".safetensors":
            from safetensors.numpy import load

            size = int.from_bytes(blob[:8], "little")
            tensors = {k: v.tobytes() for k, v in load(blob).items()}
            return json.loads(blob[8 : 8 + size]), tensors
    except Exception:
        return None
    return blob  # a PNG: every byte counts (its checksum is of the file)


def _entry(cache: Cache, path):
    """The entry a file belongs to: itself (``kind/xx/key.json``), or its image folder."""
    return path.parent if len(path.relative_to(cache.path).parts) == 4 else path


@pytest.mark.slow
def test_flipped_bytes_never_change_a_reruns_figures(tmp_path):
    splits = (WORLD.train(20), WORLD.debug(600), WORLD.test(300))
    clean_dir = tmp_path / "clean"
    clean = _run(clean_dir, splits)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        work = tmp_path / f"run{seed}"
        shutil.copytree(clean_dir, work)
        cache = Cache(work)
        by_kind: dict[str, list] = {}
        for path in cache.files():  # three kinds at random, one file of each
            by_kind.setdefault(path.relative_to(work).parts[0], []).append(path)
        kinds = sorted(by_kind)
        damaged = {}
        for k in rng.choice(len(kinds), size=3, replace=False):
            files = by_kind[kinds[int(k)]]
            path = files[int(rng.integers(len(files)))]
            before = path.read_bytes()
            blob = bytearray(before)
            blob[int(rng.integers(len(blob)))] ^= int(rng.integers(1, 256))
            path.write_bytes(bytes(blob))
            if _parsed(path, before) != _parsed(path, bytes(blob)):
                damaged[path] = bytes(blob)
        assert _run(work, splits) == clean, f"seed {seed}"
        unread = {
            _entry(cache, path)
            for path, blob in damaged.items()
            if path.exists() and path.read_bytes() == blob
        }
        assert {entry.path for entry, _ in cache.verify()} == unread, f"seed {seed}"
        cache.verify(repair=True)
        assert cache.verify() == []
        shutil.rmtree(work)
