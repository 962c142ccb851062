"""Benchmark: the Ray engine's scheduling, and the demo on Ray against the local engine.

Prints one JSON line per case:

- ``scheduling``: a stand-in generator whose cost is a fixed wait per image (0.1 s, so that two
  cores measure scheduling, not compute) makes ``--images`` images (2,048 by default: 32 jobs
  of 64 images, which 1, 2, 4 and 8 workers divide evenly) through the generation step, with
  a fresh cache, on 1, 2, 4 and 8 workers. ``seconds`` are wall-clock; ``startup`` is the
  wall-clock of a map of one trivial job per worker on the same engine (the pipeline and actor
  start-up, measured right before), and ``throughput`` = images / (seconds − startup).
  ``efficiency_8`` = throughput at 8 / (8 × throughput at 1); goal ≥ 0.85.
- ``demo_ray_vs_local``: ``run_demo`` on the default world with a fresh cache, on a
  ``LocalEngine`` and on a ``RayEngine`` of 2 workers: seconds of each, their ratio, and
  whether the summaries are identical (apart from ``seconds`` and the engine and cache).

The Ray cluster is started here on loopback with 16 logical CPUs (more than the workers need).
Run by hand (not in CI)::

    python benchmarks/scale.py
    python benchmarks/scale.py --cases scheduling --images 1600
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
from PIL import Image

from failmodes import GenerationRequest, ImageGenerator
from failmodes.cache import Cache
from failmodes.engines import LocalEngine, RayEngine, using
from failmodes.steps import generate


class WaitingGenerator(ImageGenerator):
    """Waits ``seconds`` per image and returns a small image drawn from the image's seed."""

    def __init__(self, seconds: float = 0.1):
        self.seconds = seconds

    def cache_key(self):
        return {"waiting-generator": self.seconds}

    def generate(self, requests, *, progress=None):
        out = []
        for request in requests:
            images = []
            for i in range(request.count):
                time.sleep(self.seconds)
                rng = np.random.default_rng(request.image_seed(i))
                pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
                images.append(Image.fromarray(pixels, mode="RGB"))
            out.append(images)
        return out


def _requests(n_images: int, per_request: int = 8) -> list[GenerationRequest]:
    return [
        GenerationRequest(0, "fox", f"value {j}", f"a photo of a fox, value {j}", per_request, j)
        for j in range(n_images // per_request)
    ]


def scheduling(n_images: int, workers_list: list[int]) -> dict:
    requests = _requests(n_images)
    seconds, startup = {}, {}
    for workers in workers_list:
        engine = RayEngine(workers=workers)
        started = time.perf_counter()
        engine.map(lambda job: job, list(range(workers)))
        startup[workers] = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as folder, using(engine):
            started = time.perf_counter()
            made = generate(WaitingGenerator(), requests, class_names=["fox"], cache=Cache(folder))
            seconds[workers] = time.perf_counter() - started
        assert len(made) == len(requests) * requests[0].count
    throughput = {w: n_images / max(seconds[w] - startup[w], 1e-9) for w in workers_list}
    row = {
        "case": "scheduling",
        "images": n_images,
        "seconds": {w: round(s, 2) for w, s in seconds.items()},
        "startup": {w: round(s, 2) for w, s in startup.items()},
        "throughput": {w: round(t, 2) for w, t in throughput.items()},
        "ideal_seconds_1": round(n_images * 0.1, 1),
    }
    if 1 in throughput and 8 in throughput:
        row["efficiency_8"] = round(throughput[8] / (8 * throughput[1]), 3)
        row["efficiency_8_with_startup"] = round(seconds[1] / (8 * seconds[8]), 3)
    return row


def demo_ray_vs_local() -> dict:
    from failmodes.toyworld import run_demo

    summaries, seconds = {}, {}
    for name, engine in (("local", LocalEngine()), ("ray", RayEngine(workers=2))):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            result = run_demo(cache=folder, progress=False, engine=engine)
            seconds[name] = time.perf_counter() - started
        summary = result.summary()
        summary.pop("seconds")
        for key in ("cache", "engine"):
            summary["config"].pop(key, None)
        summaries[name] = summary
    return {
        "case": "demo_ray_vs_local",
        "local_s": round(seconds["local"], 1),
        "ray_s": round(seconds["ray"], 1),
        "ratio": round(seconds["ray"] / seconds["local"], 2),
        "identical": summaries["ray"] == summaries["local"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["scheduling", "demo_ray_vs_local"])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    ray.init(num_cpus=16, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    try:
        if "scheduling" in args.cases:
            print(json.dumps(scheduling(args.images, args.workers)), flush=True)
        if "demo_ray_vs_local" in args.cases:
            print(json.dumps(demo_ray_vs_local()), flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
