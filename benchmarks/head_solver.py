"""Benchmark: the fast head solver (L-BFGS) against the paper's 1000-epoch full-batch SGD.

Both solvers minimise the same convex objective (``LinearHeadTrainer``'s docstring) on the same
features, from the same initial head, with the same number of threads. The features are
SYNTHETIC Gaussian class clusters, not features of a real network: class means ~ N(0, I_d),
rows = mean + noise * N(0, I_d), with the noise set per case so that held-out accuracy is well
below 1 (about 0.75). The extra ("generated") set has n/10 rows drawn the same way plus one fixed
offset (a style gap) and weight lam = 0.5. Accuracy is measured on held-out rows drawn like the
training rows.

Run by hand (not in CI); it prints one JSON line per (case, seed) on stdout, progress on stderr::

    python benchmarks/head_solver.py --cases small --seeds 0,1,2
    python benchmarks/head_solver.py --cases big --seeds 0 --rows-2048 10000 --repeats 1

Fields: ``fast_s`` (median of ``--repeats`` runs) and ``sgd_s`` are wall-clock seconds,
``speedup = sgd_s / fast_s``; ``*_cpu_s`` and ``speedup_cpu`` the same in CPU seconds of this
process, which other jobs on a shared machine disturb less. ``acc_diff = acc_fast - acc_sgd``,
``objective_*`` the objective evaluated independently here in float64. Both solvers run with
one thread by default (``--threads``), so that neither gains from parallelism the other lacks
and other jobs' load does not make a multi-threaded run wait for its slowest thread.
``variants`` reruns the fast solver with other precisions and tolerances, to show how much its
answer depends on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from failmodes.heads import LinearHeadTrainer

LAM = 0.5
WEIGHT_DECAY = 5e-4
# name -> (n, d, classes, noise); the noise gives held-out accuracy of about 0.75
CASES = {
    "small": (30000, 512, 100, 6.0),
    "big": (10000, 2048, 1000, 5.5),
}
# other settings of the fast solver, to show how much its answer depends on them
VARIANTS = {
    "float64_tol1e-4": {"precision": "float64", "tol": 1e-4},
    "float64_tol1e-6": {"precision": "float64", "tol": 1e-6},
}


def make_data(n: int, d: int, classes: int, noise: float, seed: int, n_test: int):
    """Balanced Gaussian class clusters: train, extra (offset) and held-out test rows."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, d, generator=g)
    offset = 0.5 * torch.randn(d, generator=g)

    def draw(k: int, shift: float):
        y = (torch.arange(k) % classes)[torch.randperm(k, generator=g)]
        x = means[y] + noise * torch.randn(k, d, generator=g) + shift * offset
        return x, y

    return draw(n, 0.0), draw(n // 10, 1.0), draw(n_test, 0.0)


def objective(head: nn.Linear, x, y, xe, ye) -> float:
    """The stated objective, computed here in float64 independently of the library."""
    with torch.no_grad():
        w, b = head.weight.double(), head.bias.double()
        loss = F.cross_entropy(x.double() @ w.T + b, y)
        loss += LAM * F.cross_entropy(xe.double() @ w.T + b, ye)
        loss += WEIGHT_DECAY / 2 * (w.pow(2).sum() + b.pow(2).sum())
    return float(loss)


def accuracy(head: nn.Linear, x, y) -> float:
    with torch.no_grad():
        return float((head(x).argmax(1) == y).float().mean())


def timed_fit(trainer, train, extra, init, classes):
    """Fit and return the head, wall-clock seconds and CPU seconds of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    head = trainer.fit(
        *train,
        extra_features=extra[0],
        extra_labels=extra[1],
        lam=LAM,
        init=init,
        num_classes=classes,
    )
    return head, time.perf_counter() - wall, time.process_time() - cpu


def run_case(name: str, n: int, d: int, classes: int, noise: float, seed: int, args) -> dict:
    n_test = max(10000, 20 * classes)
    train, extra, test = make_data(n, d, classes, noise, seed, n_test)
    init = nn.Linear(d, classes)
    if args.init == "zeros":
        nn.init.zeros_(init.weight)
        nn.init.zeros_(init.bias)
    else:  # PyTorch's default initialisation of a fresh head, seeded
        torch.manual_seed(seed)
        init.reset_parameters()
    if args.init == "original":
        # The repair starts from the model's own head (``Debugger.repair``), fitted on the
        # original data alone; stand-in here: the minimiser of the objective with lam = 0.
        init = LinearHeadTrainer(weight_decay=WEIGHT_DECAY, tol=1e-6).fit(
            *train, lam=0.0, init=init, num_classes=classes
        )

    fast = LinearHeadTrainer(weight_decay=WEIGHT_DECAY, tol=args.tol, precision=args.precision)
    walls, cpus = [], []
    for _ in range(args.repeats):
        head_fast, wall, cpu = timed_fit(fast, train, extra, init, classes)
        walls.append(wall)
        cpus.append(cpu)
    fast_s, fast_cpu_s = statistics.median(walls), statistics.median(cpus)
    logging.info("%s seed %d: fast solver %.2f s (runs: %s)", name, seed, fast_s, walls)

    variants = {}
    for label, params in VARIANTS.items():
        trainer = LinearHeadTrainer(weight_decay=WEIGHT_DECAY, **params)
        head, wall, _ = timed_fit(trainer, train, extra, init, classes)
        variants[label] = {
            "s": round(wall, 3),
            "n_iter": trainer.n_iter_,
            "converged": trainer.converged_,
            "acc": accuracy(head, *test),
            "objective": objective(head, *train, *extra),
        }

    sgd = LinearHeadTrainer(
        solver="sgd",
        weight_decay=WEIGHT_DECAY,
        lr=0.2,
        momentum=0.9,
        epochs=args.epochs,
        progress=True,
    )
    head_sgd, sgd_s, sgd_cpu_s = timed_fit(sgd, train, extra, init, classes)
    acc_fast, acc_sgd = accuracy(head_fast, *test), accuracy(head_sgd, *test)
    return {
        "case": name,
        "data": "synthetic Gaussian class clusters (not real features)",
        "n": n,
        "d": d,
        "classes": classes,
        "seed": seed,
        "noise": noise,
        "n_extra": len(extra[1]),
        "lam": LAM,
        "n_test": n_test,
        "init": args.init,
        "threads": torch.get_num_threads(),
        "fast": f"lbfgs precision={args.precision} tol={args.tol}",
        "sgd": f"sgd lr=0.2 momentum=0.9 full batch, {args.epochs} epochs",
        "fast_s": round(fast_s, 3),
        "sgd_s": round(sgd_s, 3),
        "speedup": round(sgd_s / fast_s, 2),
        "fast_cpu_s": round(fast_cpu_s, 3),
        "sgd_cpu_s": round(sgd_cpu_s, 3),
        "speedup_cpu": round(sgd_cpu_s / fast_cpu_s, 2),
        "acc_fast": acc_fast,
        "acc_sgd": acc_sgd,
        "acc_diff": round(acc_fast - acc_sgd, 5),
        "objective_fast": objective(head_fast, *train, *extra),
        "objective_sgd": objective(head_sgd, *train, *extra),
        "fast_n_iter": fast.n_iter_,
        "fast_n_evals": fast.n_evals_,
        "fast_converged": fast.converged_,
        "variants": variants,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="small,big", help="comma-separated: small,big")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--rows-2048", type=int, default=CASES["big"][0], help="rows of 'big'")
    parser.add_argument("--epochs", type=int, default=1000, help="SGD epochs (paper: 1000)")
    parser.add_argument("--tol", type=float, default=1e-4, help="fast solver tolerance")
    parser.add_argument("--precision", default="mixed", choices=["mixed", "float32", "float64"])
    parser.add_argument(
        "--init",
        default="random",
        choices=["original", "random", "zeros"],
        help="start of both solvers: the original head (as in a repair), a "
        "random head or the zero head",
    )
    parser.add_argument("--repeats", type=int, default=3, help="fast solver runs (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    for name in args.cases.split(","):
        n, d, classes, noise = CASES[name]
        if name == "big":
            n = args.rows_2048
        for seed in (int(s) for s in args.seeds.split(",")):
            print(json.dumps(run_case(name, n, d, classes, noise, seed, args)), flush=True)


if __name__ == "__main__":
    main()
