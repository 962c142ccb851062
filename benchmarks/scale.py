"""Benchmark: the Ray engine's scheduling, the demo on Ray against the local engine, and
proposals for many classes at once.

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
- ``proposals_concurrent``: a ``ChatGPTProposer`` asks about ``--classes`` classes (1,000 by
  default) through the real ``openai`` client against ``failmodes.testing.OpenAIServer``,
  which waits 0.05 s before each answer (a stand-in for a model's latency, so that two cores
  measure waiting, not compute); once with ``concurrency=1`` (one class after another) and
  once with ``concurrency=8``, each with a fresh proposer and server. ``seconds_1`` and
  ``seconds_8`` are wall-clock; ``speedup`` = seconds_1 / seconds_8, goal ≥ 4;
  ``max_in_flight`` is the most requests the server handled at once; ``identical`` whether
  both runs returned the same proposals. It needs no Ray.
- ``head_from_shards``: peak memory of fitting ``LinearHeadTrainer`` (default settings) from
  ``FeatureShards`` against fitting from the whole matrix in memory, on ``--head-rows``
  (200,000) × ``--head-dim`` (2,048) float32 features of ``--head-classes`` (100) Gaussian
  class clusters. The rows are made chunk by chunk from a fixed seed, so the shards (written
  first, ``--head-rows-per-shard`` rows each, to a temporary folder outside the repository; not
  counted) and the in-memory matrix (filled chunk by chunk in place: the ``(n, d)`` float32
  tensor the trainer takes, nothing more) hold the same rows. Each fit runs in a fresh process
  with one torch thread; its peak is that process's ``VmHWM`` in ``/proc/self/status``, the most
  resident memory since it started (not ``ru_maxrss``, which Linux carries over from the parent
  at ``exec``); ``idle_mb`` is the peak of a process that only imports. ``memory_ratio`` =
  shards / in memory, goal ≤ 0.5; held-out accuracy on 20,000 new rows of each and their
  difference, goal ≤ 0.001; seconds of each fit. It needs no Ray.

The Ray cluster is started here on loopback with 16 logical CPUs (more than the workers need),
only when a case needs it. Run by hand (not in CI)::

    python benchmarks/scale.py
    python benchmarks/scale.py --cases scheduling --images 1600
    python benchmarks/scale.py --cases proposals_concurrent
    python benchmarks/scale.py --cases head_from_shards
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def proposals_concurrent(n_classes: int, delay: float = 0.05, concurrency: int = 8) -> dict:
    from failmodes import ChatGPTProposer
    from failmodes.testing.openai_server import OpenAIServer

    def answer(body):
        number = re.search(r"class(\d+)", body["messages"][-1]["content"]).group(1)
        return json.dumps({"values": [f"in room {number}", "on a frozen lake"]})

    names = [f"class{i}" for i in range(n_classes)]
    seconds, proposals, in_flight = {}, {}, {}
    for workers in (1, concurrency):
        with OpenAIServer(answer, delay=delay) as server:
            proposer = ChatGPTProposer(
                "bench", base_url=server.base_url, api_key="bench", concurrency=workers
            )
            started = time.perf_counter()
            proposals[workers] = proposer.propose(names)
            seconds[workers] = time.perf_counter() - started
        in_flight[workers] = server.max_in_flight
        assert len(server.requests) == n_classes
    return {
        "case": "proposals_concurrent",
        "classes": n_classes,
        "delay_s": delay,
        "seconds_1": round(seconds[1], 2),
        f"seconds_{concurrency}": round(seconds[concurrency], 2),
        "ideal_seconds_1": round(n_classes * delay, 1),
        "max_in_flight": {w: n for w, n in in_flight.items()},
        "speedup": round(seconds[1] / seconds[concurrency], 2),
        "goal": 4,
        "identical": proposals[1] == proposals[concurrency],
    }


def _cluster_means(dim: int, classes: int, seed: int, spread: float):
    import torch

    return spread * torch.randn(classes, dim, generator=torch.Generator().manual_seed(seed))


def _cluster_chunk(means, index: int, rows: int, seed: int):
    """Rows of chunk ``index``: Gaussian class clusters, the same for the same arguments."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + 1 + index)
    y = torch.randint(len(means), (rows,), generator=g)
    return torch.randn(rows, means.shape[1], generator=g).add_(means[y]), y


def _chunk_rows(n: int, step: int) -> list[int]:
    return [min(step, n - start) for start in range(0, n, step)]


def _peak_mb() -> float:
    """The most resident memory of this process since it started (Linux's VmHWM), in MB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _head_child(spec: dict) -> dict:
    """One fit in this fresh process: from the shards, or from the whole matrix in memory."""
    import logging

    import torch
    from safetensors.torch import save_file

    from failmodes.heads import LinearHeadTrainer
    from failmodes.shards import FeatureShards

    torch.set_num_threads(1)
    n, dim, classes, step, seed = (spec[k] for k in ("n", "dim", "classes", "step", "seed"))
    means = _cluster_means(dim, classes, seed, spec["spread"])
    if spec["mode"] == "idle":  # the process alone: its imports and the means
        return {"peak_mb": _peak_mb()}

    class Messages(logging.Handler):  # to tell whether L-BFGS went on in float64
        def __init__(self):
            super().__init__(logging.INFO)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    log = Messages()
    logging.getLogger("failmodes").addHandler(log)
    logging.getLogger("failmodes").setLevel(logging.INFO)
    trainer = LinearHeadTrainer(progress=False)
    if spec["mode"] == "shards":
        started = time.perf_counter()
        head = trainer.fit(FeatureShards.open(spec["shards"]), num_classes=classes)
    else:  # the matrix as the trainer takes it (n x d float32), filled chunk by chunk in place
        x, y = torch.empty(n, dim), torch.empty(n, dtype=torch.long)
        for index, rows in enumerate(_chunk_rows(n, step)):
            part = slice(index * step, index * step + rows)
            x[part], y[part] = _cluster_chunk(means, index, rows, seed)
        started = time.perf_counter()
        head = trainer.fit(x, y, num_classes=classes)
        del x, y
    seconds = time.perf_counter() - started
    correct = 0
    with torch.no_grad():
        for index, rows in enumerate(_chunk_rows(spec["heldout"], 1024)):  # small: not the peak
            x, y = _cluster_chunk(means, 1_000_000 + index, rows, seed)
            correct += int((head(x).argmax(1) == y).sum())
    save_file(dict(head.state_dict()), f"{spec['out']}/head-{spec['mode']}.safetensors")
    return {
        "peak_mb": _peak_mb(),
        "fit_s": seconds,
        "accuracy": correct / spec["heldout"],
        "n_evals": trainer.n_evals_,
        "converged": trainer.converged_,
        "float64_phase": any("continuing in float64" in m for m in log.messages),
    }


def head_from_shards(n: int, dim: int, classes: int, step: int, heldout: int = 20_000) -> dict:
    import subprocess
    import sys

    from safetensors.torch import load_file

    from failmodes.shards import FeatureShards

    seed, spread = 0, 0.08
    runs = {}
    with tempfile.TemporaryDirectory(prefix="head-shards-") as out:
        means = _cluster_means(dim, classes, seed, spread)
        started = time.perf_counter()
        chunks = (
            _cluster_chunk(means, index, rows, seed)
            for index, rows in enumerate(_chunk_rows(n, step))
        )
        FeatureShards.write(f"{out}/shards", chunks, rows_per_shard=step)
        write_s = time.perf_counter() - started
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        for mode in ("idle", "memory", "shards"):
            spec = {
                "mode": mode,
                "n": n,
                "dim": dim,
                "classes": classes,
                "step": step,
                "seed": seed,
                "spread": spread,
                "heldout": heldout,
                "out": out,
                "shards": f"{out}/shards",
            }
            done = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        heads = {m: load_file(f"{out}/head-{m}.safetensors") for m in ("memory", "shards")}
    memory, shards = runs["memory"], runs["shards"]
    both = {"in_memory": memory, "shards": shards}
    return {
        "case": "head_from_shards",
        "n": n,
        "dim": dim,
        "classes": classes,
        "rows_per_shard": step,
        "heldout": heldout,
        "torch_threads": 1,
        "write_s": round(write_s, 1),
        "idle_mb": round(runs["idle"]["peak_mb"]),
        "in_memory_mb": round(memory["peak_mb"]),
        "shards_mb": round(shards["peak_mb"]),
        "memory_ratio": round(shards["peak_mb"] / memory["peak_mb"], 3),
        "accuracy_in_memory": memory["accuracy"],
        "accuracy_shards": shards["accuracy"],
        "accuracy_diff": round(abs(memory["accuracy"] - shards["accuracy"]), 5),
        "max_weight_diff": float(
            (heads["memory"]["weight"] - heads["shards"]["weight"]).abs().max()
        ),
        "in_memory_s": round(memory["fit_s"], 1),
        "shards_s": round(shards["fit_s"], 1),
        **{
            key: {k: r[key] for k, r in both.items()}
            for key in ("n_evals", "converged", "float64_phase")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["scheduling", "demo_ray_vs_local", "proposals_concurrent", "head_from_shards"],
    )
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--head-rows", type=int, default=200_000)
    parser.add_argument("--head-dim", type=int, default=2048)
    parser.add_argument("--head-classes", type=int, default=100)
    parser.add_argument("--head-rows-per-shard", type=int, default=8192)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one fit of head_from_shards
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_head_child(json.loads(args.child))), flush=True)
        return
    if "head_from_shards" in args.cases:
        sizes = (args.head_rows, args.head_dim, args.head_classes, args.head_rows_per_shard)
        print(json.dumps(head_from_shards(*sizes)), flush=True)
    if "proposals_concurrent" in args.cases:
        print(json.dumps(proposals_concurrent(args.classes)), flush=True)
    if not {"scheduling", "demo_ray_vs_local"} & set(args.cases):
        return
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
