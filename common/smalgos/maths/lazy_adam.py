"""Adam with per-parameter learning rates and weight decays, updating only the rows a step touches
(MXNet's `lazy_update` for row-sparse gradients), in MXNet's order: rescale, clip, weight decay.
Factorization Machines (one group per term) and IP Insights (the embedding rows of a batch) use it.

For one parameter and the rows `r` a step touched (an FM: the features non-zero in its mini-batch):

    g = clip(rescale_grad * grad[r], -clip_gradient, +clip_gradient) + wd * w[r]
    m[r] = b1 m[r] + (1 - b1) g;   v[r] = b2 v[r] + (1 - b2) g²
    w[r] -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m[r] / (sqrt(v[r]) + eps)

with t the step count. Rows a step does not touch keep their values and moments, so a step costs
O(touched rows × row width), not O(rows × row width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .device import to_numpy

BETA1, BETA2 = 0.9, 0.999
DEFAULT_EPS = 1e-8


@dataclass
class Group:
    """One term's parameter with its learning rate, weight decay and Adam moments."""

    param: torch.Tensor
    lr: float
    wd: float

    def __post_init__(self):
        self.m = torch.zeros_like(self.param)
        self.v = torch.zeros_like(self.param)


class LazyAdam:
    """See the module docstring. `step({name: (rows or None, grad)})`: rows None means every row."""

    def __init__(self, groups: dict[str, Group], eps: float | None, clip_gradient: float | None,
                 rescale_grad: float | None):
        self.groups = groups
        self.eps = DEFAULT_EPS if eps is None else float(eps)
        self.clip = clip_gradient if clip_gradient is not None and clip_gradient > 0 else None
        self.rescale = rescale_grad
        self.t = 0

    @torch.no_grad()
    def step(self, grads: dict[str, tuple[torch.Tensor | None, torch.Tensor]], batch_records: int) -> None:
        self.t += 1
        rescale = self.rescale if self.rescale is not None else 1.0 / max(1, batch_records)
        correction = math.sqrt(1.0 - BETA2 ** self.t) / (1.0 - BETA1 ** self.t)
        for name, (rows, grad) in grads.items():
            group = self.groups[name]
            w = group.param if rows is None else group.param[rows]
            g = grad * rescale
            if self.clip is not None:
                g = g.clamp(-self.clip, self.clip)
            if group.wd:
                g = g + group.wd * w
            m = (group.m if rows is None else group.m[rows]).mul_(BETA1).add_(g, alpha=1 - BETA1)
            v = (group.v if rows is None else group.v[rows]).mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
            w = w - (group.lr * correction) * m / (v.sqrt() + self.eps)
            if rows is None:  # m and v were updated in place
                group.param.copy_(w)
            else:
                group.m[rows], group.v[rows], group.param[rows] = m, v, w


def summed_across_hosts(cluster, grads: dict[str, tuple[torch.Tensor | None, torch.Tensor]], records: int
                        ) -> tuple[dict[str, tuple[torch.Tensor | None, torch.Tensor]], int]:
    """`LazyAdam.step`'s gradients summed over every host, with every host's `records`: a table's
    rows become the union of the rows every host touched (sorted: the same on every host), each
    host's gradient rows added at their place in it; a dense gradient (rows None) is summed whole.
    Two exchanges: the rows (one gather for every table), then the gradients (one flat sum)."""
    names = [name for name, (rows, _) in grads.items() if rows is not None]
    tagged = np.concatenate([np.zeros((0, 2), np.int64)] + [
        np.stack([np.full(len(grads[name][0]), i, np.int64), to_numpy(grads[name][0]).astype(np.int64)], 1)
        for i, name in enumerate(names)])
    everyone = np.concatenate(cluster.gather(tagged))
    summed = dict(grads)
    for i, name in enumerate(names):
        rows, grad = grads[name]
        union = torch.from_numpy(np.unique(everyone[everyone[:, 0] == i, 1])).to(grad.device)
        full = torch.zeros((len(union),) + tuple(grad.shape[1:]), dtype=grad.dtype, device=grad.device)
        summed[name] = (union, full.index_add_(0, torch.searchsorted(union, rows), grad))
    count = torch.tensor([float(records)])
    cluster.sum_tensors_([grad for _, grad in summed.values()] + [count])
    return summed, int(round(float(count[0])))
