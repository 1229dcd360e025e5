"""Shared machinery of the neural (torch) algorithms: optimisers by AWS's names, gradient
rescaling and clipping as MXNet's optimisers apply them, early stopping on a loss, and
learning-rate schedules (inverse time, inverse square root, reduce on plateau: Sockeye 1's).

    opt = optimizer_by_name("adam", net.parameters(), lr=0.01, weight_decay=0.0)
    opt = optimizer_by_name("sgd", decay_groups(net, 5e-4), lr=0.001, momentum=0.9)   # vision: no decay on biases
    stopper = EarlyStopping(tolerance=1e-3, patience=3)
    for epoch in range(epochs):
        ...                                  # loss.backward(); scale_gradients(params, 1.0, inf); opt.step()
        if stopper.update(validation_loss):  # a new best: keep these weights
            best = copy_state(net)
        if stopper.stop:
            break

AWS's built-in neural algorithms run on MXNet, whose optimisers (`mx.optimizer.*`) are matched
here by torch's: `sgd` (plain unless given momentum), `nag` (Nesterov momentum), `adam` (β 0.9 / 0.999, ε 1e-8), `adagrad`
(ε 1e-7), `rmsprop` (Tieleman & Hinton: ρ 0.9, ε 1e-8) and `adadelta` (ρ 0.9, ε 1e-5), which
in MXNet takes no learning rate: its steps are Δx itself (torch's lr=1.0), whatever
`learning_rate` says. `weight_decay` is MXNet's `wd`: λ·w added to the gradient (L2, not AdamW).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from smalgos.errors import ClientError

OPTIMIZERS = ("sgd", "nag", "adam", "adagrad", "adadelta", "rmsprop")


def optimizer_by_name(name: str, params: Iterable, lr: float, weight_decay: float = 0.0, *,
                      momentum: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                      eps: float | None = None, rho: float = 0.9):
    """The torch optimiser AWS's `optimizer` value `name` stands for (see the module docstring).

    `params`: parameters, or torch parameter groups (a group's own `weight_decay` wins, see
    `decay_groups`). `momentum`: sgd's and nag's (nag: Nesterov momentum, as MXNet's NAG).
    `betas`: adam's β1, β2. `eps`: None for MXNet's default of that optimiser. `rho`: rmsprop's
    and adadelta's decay of the squared gradients (MXNet's `gamma1` / `rho`).
    """
    import torch

    params = list(params)
    wd = float(weight_decay)
    if name in ("sgd", "nag"):
        return torch.optim.SGD(params, lr=lr, momentum=float(momentum), weight_decay=wd,
                               nesterov=name == "nag" and float(momentum) > 0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(map(float, betas)), eps=_eps(eps, 1e-8), weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=_eps(eps, 1e-7), weight_decay=wd)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=1.0, rho=float(rho), eps=_eps(eps, 1e-5), weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=float(rho), eps=_eps(eps, 1e-8), weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}: one of {', '.join(OPTIMIZERS)}")


def _eps(eps: float | None, default: float) -> float:
    return default if eps is None else float(eps)


def decay_groups(net, weight_decay: float) -> list[dict]:
    """Parameter groups where conv and dense weights and batch-norm scales (names ending in
    `.weight`) take `weight_decay` and biases and batch-norm shifts do not, as in MXNet's
    vision models."""
    named = list(net.named_parameters())
    return [{"params": [p for n, p in named if n.endswith(".weight")], "weight_decay": float(weight_decay)},
            {"params": [p for n, p in named if not n.endswith(".weight")], "weight_decay": 0.0}]


def scale_gradients(params: Iterable, rescale: float = 1.0, clip: float = math.inf) -> None:
    """MXNet's `rescale_grad` then `clip_gradient`: each gradient multiplied by `rescale`, then each
    of its components clipped to [-clip, clip] (no clipping when `clip` is infinite)."""
    for p in params:
        if p.grad is None:
            continue
        if rescale != 1.0:
            p.grad.mul_(rescale)
        if math.isfinite(clip):
            p.grad.clamp_(-clip, clip)


class EarlyStopping:
    """Stop once `patience` epochs in a row have not lowered the best loss by more than
    `tolerance` of it (relative); the best epoch is the one of the lowest loss.

    `update(loss)` records one epoch's loss and returns True when it is a new best (the caller keeps
    that epoch's weights); `stop` says that training should end. `bad` counts the epochs in a row
    that did not improve enough; `epoch` is the number of epochs seen, `best_epoch` (1-based) the
    best one's."""

    def __init__(self, tolerance: float, patience: int, absolute: bool = False):
        """`absolute=True`: an epoch must lower the best loss by more than `tolerance` itself
        (Object2Vec's `early_stopping_tolerance`), not by `tolerance` of it."""
        self.absolute = bool(absolute)
        if tolerance < 0 or patience < 1:
            raise ValueError(f"tolerance must be >= 0 and patience >= 1 (got {tolerance}, {patience})")
        self.tolerance, self.patience = float(tolerance), int(patience)
        self.best = math.inf
        self.best_epoch = 0
        self.epoch = 0
        self.bad = 0
        self.losses: list[float] = []

    @property
    def stop(self) -> bool:
        return self.bad >= self.patience

    def enough(self, loss: float) -> bool:
        """Whether `loss` beats the best so far by more than the relative tolerance."""
        if not math.isfinite(self.best):
            return math.isfinite(loss)
        return loss < self.best - self.tolerance * (1.0 if self.absolute else abs(self.best))

    def update(self, loss: float) -> bool:
        loss = float(loss)
        self.epoch += 1
        self.losses.append(loss)
        self.bad = 0 if self.enough(loss) else self.bad + 1
        if loss < self.best:
            self.best, self.best_epoch = loss, self.epoch
            return True
        return False


# -- learning-rate schedules -----------------------------------------------------------------------
# Sockeye 1's (which AWS's Seq2Seq runs) and the MXNet vision algorithms' step schedule, usable by
# any torch trainer: `rate(...)` gives the learning rate to use now, and
# `set_learning_rate(optimizer, rate)` applies it.


def set_learning_rate(optimizer, rate: float) -> None:
    """Every parameter group of a torch optimiser at learning rate `rate`."""
    for group in optimizer.param_groups:
        group["lr"] = float(rate)


class InverseTimeDecay:
    """`fixed_rate_inv_t`: base / (1 + t / half_life), t in updates: halved after `half_life` updates
    (Sockeye 1's LearningRateSchedulerInvT, whose half-life is counted in checkpoints: pass
    half_life_checkpoints × updates_per_checkpoint)."""

    def __init__(self, base: float, half_life: float):
        if base <= 0 or half_life <= 0:
            raise ValueError(f"base rate and half-life must be > 0 (got {base}, {half_life})")
        self.base, self.factor = float(base), 1.0 / float(half_life)

    def rate(self, t: int) -> float:
        return self.base / (1.0 + self.factor * t)


class InverseSqrtTimeDecay(InverseTimeDecay):
    """`fixed_rate_inv_sqrt_t`: base / √(1 + 3 t / half_life): halved after `half_life` updates too
    (Sockeye 1's LearningRateSchedulerInvSqrtT)."""

    def __init__(self, base: float, half_life: float):
        super().__init__(base, half_life)
        self.factor = 3.0 / float(half_life)

    def rate(self, t: int) -> float:
        return self.base / math.sqrt(1.0 + self.factor * t)


class PlateauReduce:
    """`plateau_reduce`: the rate times `factor` once `patience` evaluations in a row have not
    improved (the count then starts again); `rate(improved)` takes each evaluation's outcome."""

    def __init__(self, base: float, factor: float, patience: int):
        if base <= 0 or not 0 < factor <= 1 or patience < 1:
            raise ValueError(f"need base > 0, 0 < factor <= 1, patience >= 1 (got {base}, {factor}, {patience})")
        self.current, self.factor, self.patience = float(base), float(factor), int(patience)
        self.bad = 0
        self.reductions = 0

    def rate(self, improved: bool) -> float:
        self.bad = 0 if improved else self.bad + 1
        if self.bad >= self.patience:
            self.current *= self.factor
            self.bad = 0
            self.reductions += 1
        return self.current


@dataclass(frozen=True)
class StepSchedule:
    """`lr_scheduler_step` / `lr_scheduler_factor` (the vision algorithms': MXNet's
    MultiFactorScheduler by epoch): the rate is multiplied by `factor` at each listed epoch.

        StepSchedule.parse("10, 20", 0.1, "lr_scheduler_step").rate(base, epoch)   # epoch from 0
    """

    steps: tuple[int, ...] = ()
    factor: float = 0.1

    @classmethod
    def parse(cls, text: str | None, factor: float, name: str = "lr_scheduler_step") -> "StepSchedule":
        """Comma-separated positive epochs in increasing order ("10, 20"); None or blank: no steps."""
        if text is None or not str(text).strip():
            return cls((), factor)
        steps = []
        for part in str(text).split(","):
            try:
                step = int(part.strip())
            except ValueError:
                raise ClientError(f"Hyperparameter {name}: {part.strip()!r} in {text!r} is not an epoch "
                                  "number (comma-separated positive integers, e.g. \"10, 20\")") from None
            if step < 1 or (steps and step <= steps[-1]):
                raise ClientError(f"Hyperparameter {name}: {text!r} must list positive epochs in increasing order")
            steps.append(step)
        return cls(tuple(steps), factor)

    def rate(self, base: float, epoch: int) -> float:
        """The rate for 0-based `epoch`: base × factor^(number of steps ≤ epoch)."""
        return base * self.factor ** sum(1 for s in self.steps if epoch >= s)
