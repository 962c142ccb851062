"""Retrain a classifier's linear head on frozen features (the repair step).

The head is refit on ``mean CE(train) + lam * mean CE(generated)`` plus an L2 penalty, as in
Chegini & Feizi (arXiv 2312.05464). With the penalty the objective is strictly convex, so it
has one minimiser, whatever the start. The default solver (L-BFGS) reaches it to a stated
tolerance in a small fraction of the time of the paper's solver (1000 epochs of full-batch SGD),
which can stop measurably short of it: see ``benchmarks/head_solver.py`` and
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from failmodes._modules import replace_head
from failmodes.errors import SettingError
from failmodes.interfaces import HeadTrainer
from failmodes.progress import progress_bar
from failmodes.settings import MAX_WEIGHT
from failmodes.shards import FeatureShards

__all__ = ["LinearHeadTrainer", "patch_model"]

logger = logging.getLogger("failmodes")

_SOLVERS = ("lbfgs", "sgd")
# Rows per block when evaluating the loss, chosen so a block's logits hold at most this many
# numbers (bounds memory for ImageNet-sized problems; small problems are a single block).
_BLOCK_ELEMENTS = 1 << 24
# Numbers per piece when checking that features are finite (the check's temporaries stay small).
_CHECK_ELEMENTS = 1 << 20
_TOLERANCE_CHANGE = 1e-30
# precision -> the dtypes L-BFGS runs in, one after the other while the tolerance is not met
MAX_FEATURE = 1e15
"""The largest feature magnitude a fit takes: beyond it float32 sums overflow or lose every
digit of the gradient."""

_PRECISIONS = {
    "mixed": (torch.float32, torch.float64),
    "float32": (torch.float32,),
    "float64": (torch.float64,),
}


class LinearHeadTrainer(HeadTrainer):
    """Fits a linear head on frozen features by minimising one convex objective.

    ``fit`` minimises exactly:

    ```text
    mean_i CE(W x_i + b, y_i) + lam * mean_j CE(W e_j + b, t_j)
        + (weight_decay / 2) * (||W||^2 + ||b||^2)
    ```

    over the original features ``x`` and the extra (generated) features ``e``. The penalty is
    the one PyTorch's SGD applies with ``weight_decay`` (``wd * param`` added to every gradient,
    bias included), so both solvers below minimise the same function:

    - ``"lbfgs"`` (default): full-batch L-BFGS (``torch.optim.LBFGS``) with a strong-Wolfe
      line search, run until the largest absolute entry of the gradient is at most ``tol`` times
      the largest absolute entry of the gradient at the all-zero head (a scale fixed by the data
      alone, so the test does not depend on ``init``), or for ``max_iter`` iterations in all.
      With ``precision="mixed"`` (default) it runs in float32 (an evaluation costs about half
      as much as in float64 on a CPU, and much less on most GPUs) and, if float32 runs out of
      precision before ``tol`` is met (a step leaves the loss exactly unchanged), continues in
      float64 from where it stopped, with a fresh L-BFGS memory. float32 may need more
      iterations than float64; ``benchmarks/RESULTS.md`` compares the two. ``converged_``
      tells whether ``tol`` was met; a warning is logged when it was not.
    - ``"sgd"``: the paper's solver, ``torch.optim.SGD`` with ``lr``, ``momentum`` and
      ``weight_decay`` for ``epochs`` epochs, in float32. ``batch_size=None`` is full batch (the
      paper gives no batch size); with mini-batches the rows are shuffled every epoch with
      ``seed`` and each step follows an unbiased estimate of the full objective.

    Features too large for memory are given as
    [`FeatureShards`][failmodes.shards.FeatureShards]: the objective and the solvers are the
    same, and the full-batch loss and gradients are summed shard by shard, each shard read,
    cast to the solver's dtype and moved to ``device`` in turn, then freed (see [`fit`][fit]).

    The constructor only stores its arguments; they are checked in [`fit`][fit].

    Args:
        solver: ``"lbfgs"`` (fast, default) or ``"sgd"`` (the paper's).
        weight_decay: the L2 penalty coefficient (paper: 5e-4).
        lr: SGD learning rate (paper: 0.2).
        momentum: SGD momentum (paper: 0.9).
        epochs: SGD epochs (paper: 1000).
        batch_size: SGD rows per step; ``None`` for full batch.
        max_iter: L-BFGS iteration limit.
        tol: L-BFGS gradient tolerance, relative to the gradient at zero (see above).
        history_size: L-BFGS memory (number of past updates kept).
        precision: L-BFGS arithmetic: ``"mixed"`` (float32, then float64 if needed),
            ``"float32"`` or ``"float64"``.
        device: where to compute (``"cpu"``, ``"cuda"``, ...).
        progress: show a progress bar (function evaluations for L-BFGS, epochs for SGD).

    Attributes:
        head_: the fitted head (the same values [`fit`][fit] returned).
        loss_: the objective at the solution, evaluated in the solver's precision.
        grad_max_: the largest absolute gradient entry at the returned head.
        n_iter_: L-BFGS iterations or SGD epochs run.
        n_evals_: objective and gradient evaluations made.
        converged_: for L-BFGS, whether the tolerance was reached; ``None`` for SGD, which
            has no stopping test (compare ``grad_max_`` across runs instead).

    Examples:
        >>> import torch
        >>> from failmodes.heads import LinearHeadTrainer
        >>> x, y = torch.randn(60, 8), torch.arange(60) % 3
        >>> head = LinearHeadTrainer().fit(x, y, num_classes=3)
        >>> head.weight.shape
        torch.Size([3, 8])
    """

    def __init__(
        self,
        *,
        solver: str = "lbfgs",
        weight_decay: float = 5e-4,
        lr: float = 0.2,
        momentum: float = 0.9,
        epochs: int = 1000,
        batch_size: int | None = None,
        max_iter: int = 1000,
        tol: float = 1e-4,
        history_size: int = 10,
        precision: str = "mixed",
        device: str | torch.device = "cpu",
        progress: bool | None = None,
    ) -> None:
        self.solver = solver
        self.weight_decay = weight_decay
        self.lr = lr
        self.momentum = momentum
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.history_size = history_size
        self.precision = precision
        self.device = device
        self.progress = progress

    def fit(
        self,
        features: torch.Tensor | FeatureShards,
        labels: torch.Tensor | None = None,
        *,
        extra_features: torch.Tensor | None = None,
        extra_labels: torch.Tensor | None = None,
        lam: float = 0.5,
        extras: Sequence[tuple[Any, Any, float]] = (),
        init: nn.Linear | None = None,
        num_classes: int | None = None,
        seed: int = 0,
    ) -> nn.Linear:
        """Fit a head on ``mean CE(features) + lam * mean CE(extra_features)`` + the penalty.

        Each of ``extras``, ``(features, labels, weight)``, adds ``weight * mean CE`` of its
        rows, so that several sets (the debug set's own failures, generated images) each have
        their weight.

        From [`FeatureShards`][failmodes.shards.FeatureShards] the fit holds one shard at a
        time (plus the labels and the extra features, which stay in memory): every evaluation
        of the objective reads the shards in order, casts each to the solver's dtype, moves it
        to ``device``, adds its rows' loss and gradient (weight ``1/n`` each, as in memory) and
        frees it. The result equals an in-memory fit on the same rows to within floating-point
        rounding (sums are taken in another order). L-BFGS and full-batch SGD can read shards;
        mini-batch SGD cannot.

        ```python
        shards = FeatureShards.write("train-shards", features, labels)  # or FeatureShards.open
        head = LinearHeadTrainer(device="cuda").fit(shards, init=model.fc)
        ```

        Args:
            features: ``(n, d)`` features of the original training images, or
                [`FeatureShards`][failmodes.shards.FeatureShards] of them (with their labels).
            labels: ``(n,)`` integer labels in ``[0, num_classes)``; ``None`` with shards,
                which carry theirs.
            extra_features: ``(m, d)`` features of generated images, or ``None``. With ``m = 0``
                rows the extra term is dropped.
            extra_labels: ``(m,)`` their labels; required with ``extra_features``.
            lam: the weight (``>= 0``) of the extra images' mean loss (the paper's lambda).
            extras: more sets, ``(features, labels, weight)`` each, ``weight >= 0``; a set
                without rows or weight adds nothing.
            init: a head to start from, copied and never modified; its shape fixes the number
                of classes. ``None`` starts from all zeros.
            num_classes: the number of classes when ``init`` is ``None``; ``None`` infers it as
                the largest label plus one.
            seed: seed of the SGD mini-batch order (full-batch SGD and L-BFGS use no
                randomness). The same inputs and seed give a bit-identical head on CPU.

        Returns:
            A new float32 ``torch.nn.Linear`` on the CPU.

        Raises:
            ValueError: on an unknown ``solver``, a bad hyper-parameter, mismatched lengths or
                dimensions, labels out of range, negative ``lam``, non-finite features, or
                ``init`` of the wrong shape; with shards, on ``labels`` given too or mini-batch
                SGD.
            TypeError: if ``init`` is not an ``nn.Linear`` or labels are not integers.
        """
        self.check_params()
        if isinstance(features, FeatureShards):
            x, y = features, self._shard_labels(features, labels)
            d = features.dim
        else:
            x, y = _train_inputs(features, labels)
            d = x.shape[1]
        sets = _extra_sets(extra_features, extra_labels, lam, extras, d, y)
        num_classes = _num_classes(init, num_classes, d, y, sets)
        rows = _row_source(x, y, sets, torch.device(self.device))

        def make_objective(dtype: torch.dtype) -> _Objective:
            return _Objective(rows(dtype), float(self.weight_decay))

        w0, b0 = _start(init, num_classes, d)
        if self.solver == "lbfgs":
            weight, bias = self._fit_lbfgs(make_objective, w0, b0)
        else:
            weight, bias = self._fit_sgd(make_objective(torch.float32), w0, b0, seed)

        # Built on the meta device, so that no random initialisation touches the global RNG.
        head = nn.Linear(d, num_classes, device="meta").to_empty(device="cpu")
        with torch.no_grad():
            head.weight.copy_(weight.to(device="cpu", dtype=torch.float32))
            head.bias.copy_(bias.to(device="cpu", dtype=torch.float32))
        self.head_ = copy.deepcopy(head)
        return head

    def _shard_labels(self, shards: FeatureShards, labels: Any) -> torch.Tensor:
        """The labels of shards, refusing what cannot go with them."""
        if labels is not None:
            raise ValueError(
                "labels must be None when features are FeatureShards: the shards carry their labels"
            )
        if self.solver == "sgd" and self.batch_size is not None:
            raise ValueError(
                f"mini-batch SGD (batch_size={self.batch_size}) cannot fit from FeatureShards; "
                "use solver='lbfgs' or batch_size=None (full batch)"
            )
        if len(shards) == 0:
            raise ValueError("features is empty; at least one training row is needed")
        return shards.labels

    def check_params(self) -> None:
        """Check the settings, as [`fit`][fit] does first; nothing is computed.

        ``failmodes run --check`` asks it about a config file's ``[head_trainer]``.

        Raises:
            SettingError: a ``ValueError`` naming the first setting that cannot be used, and
                what it must be.

        Examples:
            >>> from failmodes.heads import LinearHeadTrainer
            >>> LinearHeadTrainer(weight_decay=-0.1).check_params()
            Traceback (most recent call last):
                ...
            failmodes.errors.SettingError: weight_decay must be a finite number >= 0, got -0.1
        """
        for name, choices in (("solver", _SOLVERS), ("precision", tuple(_PRECISIONS))):
            if getattr(self, name) not in choices:
                raise SettingError(name, f"must be one of {choices}, got {getattr(self, name)!r}")
        checks: dict[str, tuple[bool, str]] = {
            "weight_decay": (_is_real(self.weight_decay, 0), "a finite number >= 0"),
            "lr": (_is_real(self.lr, 0) and self.lr > 0, "a finite number > 0"),
            "momentum": (_is_real(self.momentum, 0) and self.momentum < 1, "a number in [0, 1)"),
            "epochs": (_is_int(self.epochs, 1), "an integer >= 1"),
            "batch_size": (
                self.batch_size is None or _is_int(self.batch_size, 1),
                "an integer >= 1 or None",
            ),
            "max_iter": (_is_int(self.max_iter, 1), "an integer >= 1"),
            "tol": (_is_real(self.tol, 0), "a finite number >= 0"),
            "history_size": (_is_int(self.history_size, 1), "an integer >= 1"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise SettingError(name, f"must be {expected}, got {getattr(self, name)!r}")

    def _fit_lbfgs(
        self,
        make_objective: Callable[[torch.dtype], _Objective],
        w0: torch.Tensor,
        b0: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        phases = _PRECISIONS[self.precision]
        weight, bias = w0, b0
        n_iter, n_evals, tolerance = 0, 0, 0.0
        for dtype in phases:
            objective = make_objective(dtype)
            weight = weight.to(device=objective.device, dtype=dtype)
            bias = bias.to(device=objective.device, dtype=dtype)
            if not tolerance:
                # The stopping scale: the gradient at the all-zero head, fixed by the data alone.
                _, gw, gb = objective(torch.zeros_like(weight), torch.zeros_like(bias))
                n_evals += 1
                scale = max(float(gw.abs().max()), float(gb.abs().max()))
                tolerance = max(self.tol * scale, torch.finfo(torch.float64).tiny)
            weight, bias, iters, evals = self._lbfgs_run(
                objective, weight, bias, tolerance, self.max_iter - n_iter
            )
            n_iter, n_evals = n_iter + iters, n_evals + evals
            loss, gw, gb = objective(weight, bias)
            n_evals += 1
            grad_max = max(float(gw.abs().max()), float(gb.abs().max()))
            if grad_max <= tolerance or n_iter >= self.max_iter:
                break
            if dtype != phases[-1]:
                logger.info(
                    "L-BFGS reached the limit of %s at max |gradient| %.3g > %.3g after %d "
                    "iterations; continuing in float64",
                    dtype,
                    grad_max,
                    tolerance,
                    n_iter,
                )
        self.n_iter_, self.n_evals_ = n_iter, n_evals
        self.loss_, self.grad_max_ = float(loss), grad_max
        self.converged_ = grad_max <= tolerance
        if not self.converged_:
            logger.warning(
                "L-BFGS stopped after %d iterations with max |gradient| %.3g > tol * scale = "
                "%.3g; raise max_iter or tol%s",
                n_iter,
                grad_max,
                tolerance,
                "" if phases[-1] == torch.float64 else ", or use precision='mixed'",
            )
        return weight, bias

    def _lbfgs_run(
        self,
        objective: _Objective,
        w0: torch.Tensor,
        b0: torch.Tensor,
        tolerance: float,
        max_iter: int,
    ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """One L-BFGS run; returns the solution, iterations and evaluations."""
        weight = w0.clone().requires_grad_(True)
        bias = b0.clone().requires_grad_(True)
        max_eval = 2 * max_iter
        bar = progress_bar(
            total=max_eval, progress=self.progress, desc="L-BFGS evaluations", leave=False
        )
        n_evals = 0

        def closure() -> torch.Tensor:
            nonlocal n_evals
            n_evals += 1
            bar.update()
            loss, grad_w, grad_b = objective(weight.detach(), bias.detach())
            weight.grad, bias.grad = grad_w, grad_b
            return loss

        optimizer = torch.optim.LBFGS(
            [weight, bias],
            lr=1.0,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance,
            # Besides the gradient test, stop only when a step leaves the loss exactly as it
            # was: the run has hit the limit of its precision.
            tolerance_change=_TOLERANCE_CHANGE,
            history_size=self.history_size,
            line_search_fn="strong_wolfe",
        )
        optimizer.step(closure)
        bar.close()
        n_iter = int(optimizer.state[weight].get("n_iter", 0))
        return weight.detach(), bias.detach(), n_iter, n_evals

    def _fit_sgd(
        self, objective: _Objective, w0: torch.Tensor, b0: torch.Tensor, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        weight = w0.to(device=objective.device, dtype=objective.dtype).requires_grad_(True)
        bias = b0.to(device=objective.device, dtype=objective.dtype).requires_grad_(True)
        # SGD's weight_decay adds wd * param to each gradient: the objective's penalty.
        optimizer = torch.optim.SGD(
            [weight, bias], lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        n = objective.n
        generator = torch.Generator().manual_seed(seed)
        batch = n if self.batch_size is None else min(self.batch_size, n)
        n_evals = 0
        epochs = progress_bar(
            range(self.epochs), progress=self.progress, desc="SGD epochs", leave=False
        )
        for _ in epochs:
            if batch == n:
                batches = [None]
            else:
                order = torch.randperm(n, generator=generator).to(objective.device)
                batches = list(order.split(batch))
            for rows in batches:
                _, grad_w, grad_b = objective(
                    weight.detach(), bias.detach(), rows=rows, penalty=False
                )
                weight.grad, bias.grad = grad_w, grad_b
                optimizer.step()
                n_evals += 1
        weight, bias = weight.detach(), bias.detach()
        loss, gw, gb = objective(weight, bias)
        self.n_iter_ = self.epochs
        self.n_evals_ = n_evals + 1
        self.loss_ = float(loss)
        self.grad_max_ = max(float(gw.abs().max()), float(gb.abs().max()))
        self.converged_ = None
        return weight, bias


class _Rows:
    """Rows held in memory, in one piece: ``(x, y, w)`` on the device, in the solver's dtype."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> None:
        self.x, self.y, self.weights = x, y, weights
        self.n, self.device, self.dtype = len(x), x.device, x.dtype

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        yield self.x, self.y, self.weights

    def take(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Those rows, weighted by ``n / len(rows)``: an unbiased estimate of the whole sum."""
        return self.x[rows], self.y[rows], self.weights[rows] * (self.n / len(rows))


class _ShardRows:
    """The rows of shards, read one shard at a time, then the extra rows held in memory.

    Each shard is cast to ``dtype`` and moved to ``device`` as it is read; its rows weigh
    ``1/n`` each, ``n`` the rows of all shards. Nothing here keeps a shard once it is handed
    over. The first full pass checks that the features are finite.
    """

    def __init__(
        self,
        shards: FeatureShards,
        extra: _Rows | None,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.shards, self.extra, self.device, self.dtype = shards, extra, device, dtype
        self.n = len(shards) + (0 if extra is None else extra.n)
        self.checked = False

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for index in range(self.shards.num_shards):
            yield self._shard(index)
        if self.extra is not None:
            yield from self.extra
        self.checked = True

    def _shard(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = self.shards.load(index)
        x = x.to(device=self.device, dtype=self.dtype)
        if not self.checked and not _all_finite(x):
            raise ValueError(f"shard {index} of the features contains NaN or infinite values")
        weights = torch.full((len(x),), 1.0 / len(self.shards), dtype=torch.float64)
        return x, y.to(self.device), weights.to(device=self.device, dtype=self.dtype)


def _row_source(
    x: torch.Tensor | FeatureShards,
    y: torch.Tensor,
    sets: list[_Extra],
    device: torch.device,
) -> Callable[[torch.dtype], _Rows | _ShardRows]:
    """The rows the objective sums over, in a given dtype: in memory, or shards then extras."""
    if isinstance(x, FeatureShards):
        extra = _extra_rows(sets)

        def from_shards(dtype: torch.dtype) -> _ShardRows:
            moved = None if extra is None else _moved(*extra, device, dtype)
            return _ShardRows(x, moved, device, dtype)

        return from_shards
    data, target, weights = _weighted_rows(x, y, sets)
    return lambda dtype: _moved(data, target, weights, device, dtype)


def _moved(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, device: torch.device, dtype: torch.dtype
) -> _Rows:
    return _Rows(x.to(device=device, dtype=dtype), y.to(device), w.to(device=device, dtype=dtype))


class _Objective:
    """``sum_i w_i CE(W x_i + b, y_i) + (wd / 2) (||W||^2 + ||b||^2)`` and its gradient.

    The rows come from a source that hands them over in pieces (``_Rows``: all at once;
    ``_ShardRows``: shard by shard). The gradient is computed in closed form (softmax minus
    one-hot), in blocks of rows to bound memory, with care for confident rows, which dominate
    once the fit is good:

    - with ``r`` the sum of the other classes' ``exp(z_j - z_max)``, a row's loss is
      ``log1p(r) - (z_y - z_max)`` and, when the label is the top class, its gradient entry
      ``p_y - 1`` is computed as ``-r / (1 + r)``; forming ``1 + r`` first would round ``r``
      away in float32 (and the gradient with it) as soon as ``r`` falls below about 1e-7;
    - losses are summed in float64;
    - probabilities below ``exp(log(eps) - 20)`` of the top one are set to exactly 0: their
      effect on any sum is far below rounding, and it keeps subnormal numbers (which slow CPUs
      down by orders of magnitude) out of the arithmetic.
    """

    def __init__(self, rows: _Rows | _ShardRows, weight_decay: float) -> None:
        self.rows, self.weight_decay = rows, weight_decay
        self.n, self.device, self.dtype = rows.n, rows.device, rows.dtype
        self.cutoff = math.log(torch.finfo(self.dtype).eps) - 20.0

    def __call__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        *,
        rows: torch.Tensor | None = None,
        penalty: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss and gradients at ``(weight, bias)``.

        With ``rows`` (rows held in memory only), an unbiased estimate over those rows
        (weights scaled by n / len(rows)). With ``penalty=False``, the penalty is left out of
        the loss and the gradients.
        """
        loss = torch.zeros((), dtype=torch.float64, device=self.device)
        grad_w = torch.zeros_like(weight)
        grad_b = torch.zeros_like(bias)
        pieces = self.rows if rows is None else [self.rows.take(rows)]
        for piece in pieces:
            self._add(*piece, weight, bias, (loss, grad_w, grad_b))
            del piece  # let a shard go before the next one is read
        if penalty:
            wd = self.weight_decay
            loss += 0.5 * wd * (weight.double().pow(2).sum() + bias.double().pow(2).sum())
            grad_w.add_(weight, alpha=wd)
            grad_b.add_(bias, alpha=wd)
        return loss, grad_w, grad_b

    def _add(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        sums: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> None:
        """Add the loss and gradients of rows ``x`` to ``sums``, in place, block by block."""
        loss, grad_w, grad_b = sums
        block = max(1, _BLOCK_ELEMENTS // weight.shape[0])
        for start in range(0, len(x), block):
            rows_b = slice(start, start + block)
            xb, yb, wb = x[rows_b], y[rows_b], w[rows_b]
            z = torch.addmm(bias, xb, weight.T)
            z_max, top = z.max(dim=1)
            z -= z_max[:, None]
            z_true = z.gather(1, yb[:, None]).squeeze(1)
            z.masked_fill_(z < self.cutoff, -math.inf)
            g = z.exp_()
            g.scatter_(1, top[:, None], 0.0)  # the top class's exp(0) = 1 is kept apart
            rest = g.sum(dim=1)
            loss += torch.dot(wb.double(), (torch.log1p(rest) - z_true).double())
            # g becomes w * (softmax - one-hot), the gradient with respect to the logits.
            scale = wb / (1.0 + rest)
            g *= scale[:, None]
            hit = top == yb
            g.scatter_(1, top[:, None], torch.where(hit, -scale * rest, scale)[:, None])
            g[torch.arange(len(yb), device=g.device), yb] -= torch.where(hit, 0.0, wb)
            grad_w.addmm_(g.T, xb)
            grad_b += g.sum(dim=0)


def patch_model(model: nn.Module, head: nn.Linear, *, name: str | None = None) -> nn.Module:
    """A copy of ``model`` with its linear head replaced by (a copy of) ``head``.

    Args:
        model: the classifier; it is not modified.
        head: the new head, e.g. from ``LinearHeadTrainer.fit``.
        name: the qualified name of the head module; ``None`` picks the last ``nn.Linear``.

    Returns:
        A deep copy of ``model`` whose head is ``head``, on the device of the old head.

    Raises:
        TypeError: if ``model`` has no ``nn.Linear`` (and ``name`` is not given).
        ValueError: if ``head``'s shape differs from the head it replaces.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from failmodes.heads import patch_model
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> head = nn.Linear(8, 3)
        >>> patched = patch_model(model, head)
        >>> x = torch.rand(2, 4)
        >>> torch.equal(patched(x), head(model[:2](x))), patched[2] is head, model[2] is head
        (True, False, False)
    """
    return replace_head(model, head, name=name)


def _is_real(value: Any, low: float) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= low
    )


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def _as_features(name: str, value: Any) -> torch.Tensor:
    x = torch.as_tensor(value).detach()
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows, dim) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    if not _all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values")
    peak = float(x.abs().max()) if x.numel() else 0.0
    if peak > MAX_FEATURE:
        raise ValueError(
            f"{name} reach {peak:.0e} in magnitude, beyond what the solver's sums hold "
            f"({MAX_FEATURE:.0e}): standardise them (subtract their mean, divide by their scale) "
            "before fitting a head on them"
        )
    return x


def _all_finite(x: torch.Tensor) -> bool:
    """Whether every entry of the 2-D ``x`` is finite, checked a few rows at a time.

    ``torch.isfinite`` of the whole matrix would allocate temporaries larger than the matrix.
    """
    rows = max(1, _CHECK_ELEMENTS // max(1, x.shape[1]))
    return all(bool(torch.isfinite(part).all()) for part in x.split(rows))


def _as_labels(name: str, value: Any) -> torch.Tensor:
    y = torch.as_tensor(value).detach()
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D tensor of class indices, got shape {tuple(y.shape)}"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    return y.long()


def _train_inputs(features: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The train rows, checked."""
    if labels is None:
        raise ValueError("labels are required with a tensor of features (only shards carry theirs)")
    x, y = _as_features("features", features), _as_labels("labels", labels)
    if len(x) != len(y):
        raise ValueError(f"features has {len(x)} rows but labels has {len(y)}; they must match")
    if len(x) == 0:
        raise ValueError("features is empty; at least one training row is needed")
    return x, y


_Extra = tuple[torch.Tensor, torch.Tensor, float, str]  # rows, labels, weight, labels' name


def _extra_sets(
    extra_features: Any, extra_labels: Any, lam: Any, extras: Any, d: int, y: torch.Tensor
) -> list[_Extra]:
    """Every extra set checked against the train rows, ``extra_features`` first.

    A set without rows or weight is kept; it adds nothing to the objective.
    """
    if (extra_features is None) != (extra_labels is None):
        given = "extra_features" if extra_labels is None else "extra_labels"
        missing = "extra_labels" if extra_labels is None else "extra_features"
        raise ValueError(f"{given} was given without {missing}; pass both or neither")
    if isinstance(extras, str | bytes) or not isinstance(extras, Sequence):
        raise TypeError(f"extras must be a list of (features, labels, weight), got {extras!r:.60}")
    named = [("extra_features", "extra_labels", "lam", extra_features, extra_labels, lam)]
    for i, item in enumerate(extras):
        if not isinstance(item, tuple | list) or len(item) != 3:
            raise TypeError(f"extras[{i}] must be (features, labels, weight), got {item!r:.60}")
        named.append((f"extras[{i}] features", f"extras[{i}] labels", f"extras[{i}] weight", *item))
    sets = []
    for f_name, l_name, w_name, features, labels, weight in named:
        if not _is_real(weight, 0) or weight > MAX_WEIGHT:
            raise ValueError(
                f"{w_name} must be a finite number >= 0 and <= {MAX_WEIGHT:.0e}, got {weight!r}"
            )
        if features is None:
            continue
        xe, ye = _as_features(f_name, features), _as_labels(l_name, labels)
        if len(xe) != len(ye):
            raise ValueError(
                f"{f_name} has {len(xe)} rows but {l_name} has {len(ye)}; they must match"
            )
        if xe.shape[1] != d:
            raise ValueError(f"{f_name} has dimension {xe.shape[1]} but features has {d}")
        sets.append((xe, ye.to(y.dtype), float(weight), l_name))
    return sets


def _num_classes(
    init: nn.Linear | None, num_classes: int | None, d: int, y: torch.Tensor, sets: list[_Extra]
) -> int:
    """The number of classes: the start head's, else given, else the largest label plus one."""
    if init is not None:
        if not isinstance(init, nn.Linear):
            raise TypeError(f"init must be a torch.nn.Linear, got {type(init).__name__}")
        if init.in_features != d:
            raise ValueError(
                f"init has in_features={init.in_features} but features has dimension {d}"
            )
        if num_classes is not None and num_classes != init.out_features:
            raise ValueError(
                f"num_classes={num_classes} but init has out_features={init.out_features}"
            )
        num_classes = init.out_features
    elif num_classes is None:
        num_classes = int(max([y.max(), *(ye.max() for _, ye, _, _ in sets if len(ye))])) + 1
    if not _is_int(num_classes, 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    num_classes = int(num_classes)
    for name, lab in [("labels", y)] + [(name, ye) for _, ye, _, name in sets]:
        if len(lab) and (int(lab.min()) < 0 or int(lab.max()) >= num_classes):
            raise ValueError(
                f"{name} must lie in [0, {num_classes}) (num_classes={num_classes}), got "
                f"values from {int(lab.min())} to {int(lab.max())}"
            )
    return num_classes


def _start(init: nn.Linear | None, num_classes: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The float64 start: ``init``'s weight and bias (a zero bias if it has none), or zeros."""
    w0 = torch.zeros(num_classes, d, dtype=torch.float64)
    b0 = torch.zeros(num_classes, dtype=torch.float64)
    if init is not None:
        w0 = init.weight.detach().to(device="cpu", dtype=torch.float64, copy=True)
        if init.bias is not None:
            b0 = init.bias.detach().to(device="cpu", dtype=torch.float64, copy=True)
    return w0, b0


def _extra_rows(sets: list[_Extra]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The extra sets' rows with their weights, ``weight/m`` each; ``None`` when none weighs."""
    kept = [(xe, ye, w) for xe, ye, w, _ in sets if len(xe) > 0 and w > 0]
    if not kept:
        return None
    weights = [torch.full((len(xe),), w / len(xe), dtype=torch.float64) for xe, _, w in kept]
    if len(kept) == 1:
        return kept[0][0], kept[0][1], weights[0]
    xs = [xe.to(kept[0][0].dtype) for xe, _, _ in kept]
    return torch.cat(xs), torch.cat([ye for _, ye, _ in kept]), torch.cat(weights)


def _weighted_rows(
    x: torch.Tensor, y: torch.Tensor, sets: list[_Extra]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All rows in one piece, one weight each: ``1/n`` on train rows, ``weight/m`` on a set's."""
    weights = torch.full((len(x),), 1.0 / len(x), dtype=torch.float64)
    extra = _extra_rows(sets)
    if extra is None:
        return x, y, weights
    return (
        torch.cat([x, extra[0].to(x.dtype)]),
        torch.cat([y, extra[1]]),
        torch.cat([weights, extra[2]]),
    )
