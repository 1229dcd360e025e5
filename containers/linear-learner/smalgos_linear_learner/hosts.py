"""Linear Learner on several hosts as one job: what the hosts merge (`smalgos.distributed`).

Every host trains the same parallel models on its slice of the train channel (AWS's distributed
SGD, synchronous): the same seed gives every host the same initial weights, and every update
applies the same merged gradient, so the weights stay the same everywhere.

- Step 1 (the sample): each host reads its `share` of the training sample; feature_dim, the
  scaler's and the label's moments and the class counts are merged (`pooled`), so every host has
  the same scaler, label scaling and class weights.
- Step 3 (updates): each mini-batch's gradient sums and record count are summed over the hosts in
  one exchange (`Cluster.sum_tensors_`) and divided: the mean gradient over the N hosts'
  mini-batches (each host reads `mini_batch_size` records a step, as AWS's workers do). Hosts
  step together (`Cluster.lockstep`); one whose records ran out takes part with empty batches.
- Step 4 (judging): loss sums and counts are summed and the calibration scores gathered in rank
  order (`gathered`), so every host computes the same criterion values and thresholds, and so
  makes the same choices: best epochs, early stopping, the selected model.
- At the end every host compares its model with the master's (`disagreement`, logged): 0 when
  the hosts trained as one.

On one host (`SOLO`) every function here returns its input.
"""

from __future__ import annotations

import numpy as np
import torch


def share(n: int, cluster) -> int:
    """How many of `n` records (a sample over all hosts) one host reads: n / hosts, rounded up.
    With FullyReplicated slicing (record i on host i mod N) the hosts' shares together are the
    first n records, the sample one host would read alone."""
    return -(-int(n) // cluster.size)


def pooled(cluster, n: int, *means) -> tuple[int, list]:
    """(records, means) over every host, from each host's record count `n` and its `means`
    (arrays or floats over its `n` records; anything when `n` is 0)."""
    if not cluster.several:
        return n, list(means)
    weighted = [np.asarray(m, dtype=np.float64) * n if n else np.zeros(np.shape(m)) for m in means]
    sums = cluster.sum(np.array([n], dtype=np.float64), *weighted)
    total = int(round(sums[0][0]))
    return total, [(s / max(total, 1)).reshape(np.shape(m)) for s, m in zip(sums[1:], means)]


def pooled_variance(cluster, n: int, mean: float, var: float) -> tuple[int, float, float]:
    """(records, mean, variance) over every host from each host's own (Chan's pairwise merge of
    the hosts' sums of squared deviations: no cancellation for labels far from 0)."""
    if not cluster.several:
        return n, mean, var
    parts = np.concatenate(cluster.gather(np.array([[n, mean, var]], dtype=np.float64)))
    counts, means, variances = parts.T
    total = counts.sum()
    if total == 0:
        return 0, 0.0, 0.0
    centre = float(counts @ means / total)
    return int(total), centre, float((counts @ variances + counts @ (means - centre) ** 2) / total)


def summed(cluster, *arrays) -> list[np.ndarray]:
    """Every host's arrays (counts, loss sums) summed; float64."""
    return list(cluster.sum(*[np.asarray(a, dtype=np.float64) for a in arrays]))


def gathered(cluster, parts: list[torch.Tensor], row_shape: tuple, device) -> list[torch.Tensor]:
    """Every host's rows (this host's `parts`, concatenated) in rank order, as one tensor in a
    list; `parts` as they are on one host."""
    if not cluster.several:
        return parts
    local = torch.cat(parts).cpu().numpy() if parts else np.zeros((0, *row_shape), dtype=np.float32)
    return [torch.from_numpy(np.concatenate(cluster.gather(local))).to(device)]


def merge_gradients_(cluster, n: int, *grads: torch.Tensor) -> None:
    """Turn each host's gradient sums over its `n` records into the mean gradient over every
    host's records, in place (one exchange)."""
    count = torch.tensor([float(n)], dtype=grads[0].dtype, device=grads[0].device)
    cluster.sum_tensors_([*grads, count])
    for g in grads:
        g /= count


def disagreement(cluster, *arrays) -> float:
    """The largest absolute difference, over every host, between its `arrays` and the master's
    (0 on one host)."""
    if not cluster.several:
        return 0.0
    gap = 0.0
    for a in map(np.asarray, arrays):
        gap = max(gap, float(np.max(np.abs(cluster.broadcast(a).astype(np.float64) - a), initial=0.0)))
    return cluster.max(gap)
