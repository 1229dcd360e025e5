"""Update rules, applied to all parallel models at once (step 3 of the algorithm in `model.py`).

The weights of every model are the columns of one tensor W (d, M*k) and one bias b (M*k,); each
model's learning rate, `wd` and `l1` are per-column vectors. Rules: sgd (MXNet's momentum form),
adam (bias-corrected), rmsprop; L2 `wd` added to the gradient (MXNet's coupled weight decay, bias
`wd x bias_wd_mult`); bias learning rate `learning_rate x bias_lr_mult`; `l1` as a proximal
soft-threshold after every update; the learning rate decays by `lr_scheduler_factor` every
`lr_scheduler_step` updates, not below `lr_scheduler_minimum_lr`.
"""

from __future__ import annotations

import torch

ADAM_EPS = 1e-8
RMSPROP_DECAY = 0.95
RMSPROP_EPS = 1e-8

# lr_scheduler_step=auto: 100 during the first epoch, then a tenth of an epoch's batches.
AUTO_SCHEDULER_STEP = 100
AUTO_SCHEDULER_DECAYS_PER_EPOCH = 10


def paced_scheduler_step(batches_per_epoch: int) -> int:
    """lr_scheduler_step=auto after the first epoch: a tenth of an epoch (AWS's 100 for 1000
    batches an epoch, the same pace for any size)."""
    return max(1, round(batches_per_epoch / AUTO_SCHEDULER_DECAYS_PER_EPOCH))


def state_copies(optimizer: str, momentum: float) -> int:
    """How many tensors the size of W (and of b) `Optimizer.state` holds for a rule: adam 2 (mW,
    vW), rmsprop 1 (nW), sgd 1 with momentum (mW), else 0. Used to size a job before allocating."""
    if optimizer == "adam":
        return 2
    if optimizer == "rmsprop":
        return 1
    return 1 if float(momentum) > 0 else 0


class Optimizer:
    """The optimiser state of all models: moment tensors (`state`), update count, schedule.

    `state` holds, per rule, adam: mW, vW, mb, vb; rmsprop: nW, nb; sgd with momentum: mW, mb.
    """

    def __init__(self, hp: dict, settings: list[dict], k: int, W: torch.Tensor, b: torch.Tensor,
                 scheduler_step: int):
        self.kind = hp["optimizer"]
        self.beta_1, self.beta_2 = float(hp["beta_1"]), float(hp["beta_2"])
        self.momentum = float(hp["momentum"])
        self.bias_lr_mult = float(hp["bias_lr_mult"])
        self.bias_wd_mult = float(hp["bias_wd_mult"])
        self.use_scheduler = bool(hp["use_lr_scheduler"])
        self.scheduler_factor = float(hp["lr_scheduler_factor"])
        self.scheduler_minimum_lr = float(hp["lr_scheduler_minimum_lr"])
        self.scheduler_step = scheduler_step
        self.steps = 0

        def column(name):
            v = torch.tensor([float(s.get(name, 0.0)) for s in settings], dtype=torch.float32, device=W.device)
            return v.repeat_interleave(k)  # one entry per output column

        self.lr, self.wd, self.l1 = column("learning_rate"), column("wd"), column("l1")
        self.any_l1 = any(float(s.get("l1", 0.0)) > 0 for s in settings)  # host-side flags: no device syncs
        self.any_wd = any(float(s.get("wd", 0.0)) > 0 for s in settings)
        self._rates_at: int | None = None  # the schedule's decays when `_rates_now` was computed
        self.state: dict[str, torch.Tensor] = {}
        if self.kind == "adam":
            self.state = {"mW": torch.zeros_like(W), "vW": torch.zeros_like(W),
                          "mb": torch.zeros_like(b), "vb": torch.zeros_like(b)}
        elif self.kind == "rmsprop":
            self.state = {"nW": torch.zeros_like(W), "nb": torch.zeros_like(b)}
        elif self.momentum > 0:
            self.state = {"mW": torch.zeros_like(W), "mb": torch.zeros_like(b)}

    def learning_rates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(learning rate, bias learning rate) per column after the updates so far, computed again
        only when the schedule has decayed since the last call (the tensors are small, but their
        four operations in every update were about a seventh of its time)."""
        decays = self.steps // self.scheduler_step if self.use_scheduler else 0
        if self._rates_at != decays:
            lr = self.lr
            if self.use_scheduler:
                floor = torch.clamp(self.lr, max=self.scheduler_minimum_lr)
                lr = torch.maximum(self.lr * self.scheduler_factor ** decays, floor)
            self._rates_at, self._rates_now = decays, (lr, lr * self.bias_lr_mult)
        return self._rates_now

    def update(self, W: torch.Tensor, b: torch.Tensor, gW: torch.Tensor, gb: torch.Tensor | None) -> torch.Tensor:
        """One update of every model from the loss gradients (`gb` None: no bias). Changes `b` in
        place; returns the new W (changed in place too, unless the l1 step replaces it)."""
        if self.any_wd:
            gW = gW + self.wd * W
        lr, bias_lr = self.learning_rates()
        self.steps += 1
        if gb is not None and self.bias_wd_mult > 0:
            gb = gb + self.wd * self.bias_wd_mult * b
        if self.kind == "adam":
            metric = self._adam(W, b, gW, gb, lr, bias_lr)
        elif self.kind == "rmsprop":
            metric = self._rmsprop(W, b, gW, gb, lr, bias_lr)
        else:
            metric = self._sgd(W, b, gW, gb, lr, bias_lr)
        if self.any_l1:  # proximal step for l1: soft-threshold in the optimizer's own metric
            shrink = lr * self.l1 if metric is None else lr * self.l1 / metric
            W = torch.sign(W) * torch.clamp(W.abs() - shrink, min=0.0)
        return W

    # Each rule updates W and b in place and returns the per-weight denominator of its gradient
    # step (None for sgd), which also scales the l1 step.

    def _adam(self, W, b, gW, gb, lr, bias_lr) -> torch.Tensor:
        st, t = self.state, self.steps
        b1, b2 = self.beta_1, self.beta_2
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        st["mW"].mul_(b1).add_(gW, alpha=1 - b1)
        st["vW"].mul_(b2).addcmul_(gW, gW, value=1 - b2)
        metric = torch.sqrt(st["vW"] / c2) + ADAM_EPS
        W -= (lr / c1) * st["mW"] / metric
        if gb is not None:
            st["mb"].mul_(b1).add_(gb, alpha=1 - b1)
            st["vb"].mul_(b2).addcmul_(gb, gb, value=1 - b2)
            b -= (bias_lr / c1) * st["mb"] / (torch.sqrt(st["vb"] / c2) + ADAM_EPS)
        return metric

    def _rmsprop(self, W, b, gW, gb, lr, bias_lr) -> torch.Tensor:
        st = self.state
        st["nW"].mul_(RMSPROP_DECAY).addcmul_(gW, gW, value=1 - RMSPROP_DECAY)
        metric = torch.sqrt(st["nW"]) + RMSPROP_EPS
        W -= lr * gW / metric
        if gb is not None:
            st["nb"].mul_(RMSPROP_DECAY).addcmul_(gb, gb, value=1 - RMSPROP_DECAY)
            b -= bias_lr * gb / (torch.sqrt(st["nb"]) + RMSPROP_EPS)
        return metric

    def _sgd(self, W, b, gW, gb, lr, bias_lr) -> None:
        """MXNet momentum form: mom = momentum * mom - lr * grad; w += mom."""
        st, mom = self.state, self.momentum
        if mom > 0:
            st["mW"].mul_(mom).sub_(lr * gW)
            W += st["mW"]
            if gb is not None:
                st["mb"].mul_(mom).sub_(bias_lr * gb)
                b += st["mb"]
        else:
            W -= lr * gW
            if gb is not None:
                b -= bias_lr * gb
        return None
