"""K-Means as SageMaker's `kmeans:1` computes it: web-scale mini-batch k-means, then a local
Lloyd's reduction. Usable from a notebook with numpy arrays or scipy CSR matrices:

    km = WebScaleKMeans(k=10, epochs=3).fit(X)
    labels, distances = km.closest(X)

1. Streaming (Sculley, "Web-scale k-means clustering", 2010, with mini-batch means): K = k ×
   `extra_center_factor` centres are drawn from the first mini-batch (`init_method`: random rows
   or k-means++). For each mini-batch, every point goes to its nearest centre; a centre c that had
   weight n_old and receives n_new points of mean m moves to c + p·(m − c) with
   p = n_new / (n_old + n_new). With `half_life_time_size` h > 0 the old weight is first multiplied
   by 0.5^(b/h) for a batch of b points, so a point's influence halves every h points.
2. Reduction: the K centres, weighted by the points they absorbed, are clustered into k with
   Lloyd's method seeded by k-means++ (`local_lloyd_init_method`); `local_lloyd_num_trials`
   restarts, the lowest weighted loss wins; a trial stops after `local_lloyd_max_iter` iterations
   or when the loss improves by less than `local_lloyd_tol` (relative). With `local_refine` (our
   addition, on by default) each trial's answer is then polished by Hartigan–Wong single-point
   moves and Lloyd's again: never worse, and on 1M-point data with many near-equivalent optima the
   best of 10 trials lands about 2 % lower than Lloyd's alone (bench/bench_kmeans.py).

The same torch code runs on CPU or CUDA (`device`). A fixed `random_state` gives the same model.

Across hosts (`self.cluster`, set by the training driver) every host holds the same centres at
every step: they are seeded from the hosts' first mini-batches gathered in host order (the same
seed everywhere), each mini-batch's per-centre counts and sums are summed over the hosts before
the update, which every host then applies alike, and the reduction to k runs on every host on the
same weighted centres (the master's answer is broadcast, so that the hosts agree to the bit).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from smalgos.declaration import AUTO
from smalgos.errors import InputError
from smalgos.estimator import StreamingEstimator
from smalgos.maths.device import as_dense, generator, pick_device, to_numpy
from smalgos.maths.distances import nearest, pairwise_sq_distances
from smalgos.maths.inputs import as_float32, conform_width

from .declaration import HYPERPARAMETERS

log = logging.getLogger("smalgos")

MODEL_FILE = "model_algo-1.safetensors"  # tensor "centroids": (k, feature_dim) float32
META_FILE = "model_algo-1.json"
DEFAULT_EXTRA_CENTER_FACTOR = 10  # what AWS's image resolved 'auto' to in a public job log (k=8)
DEFAULT_NUM_TRIALS = 10           # the number of local Lloyd attempts 'auto' ran in that log


def kmeans_plusplus(x: torch.Tensor, n_clusters: int, gen: torch.Generator,
                    weights: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of `n_clusters` rows of x chosen by greedy (weighted) k-means++ seeding.

    As in scikit-learn, each step draws 2 + ln(k) candidates with probability ∝ w·D² and keeps
    the one that lowers the potential most. Returns an int64 tensor on x's device.
    """
    n = x.shape[0]
    w = torch.ones(n, dtype=x.dtype, device=x.device) if weights is None else weights.to(x.dtype)
    trials = 2 + int(math.log(n_clusters)) if n_clusters > 1 else 1
    chosen = torch.empty(n_clusters, dtype=torch.int64, device=x.device)
    first = torch.multinomial(w.cpu().to(torch.float64), 1, generator=gen).to(x.device)
    chosen[0] = first[0]
    x_sq = (x * x).sum(1)
    closest = pairwise_sq_distances(x[first], x, y_sq=x_sq)[0]
    for c in range(1, n_clusters):
        weighted = w * closest
        pot = weighted.sum()
        if pot <= 0:  # every point coincides with a chosen centre: any remaining point will do
            cand = torch.multinomial((w > 0).cpu().to(torch.float64) + 1e-12, trials, replacement=True,
                                     generator=gen).to(x.device)
        else:
            r = torch.rand(trials, generator=gen, dtype=torch.float64).to(x.device) * pot.to(torch.float64)
            cum = torch.cumsum(weighted.to(torch.float64), 0)
            cand = torch.searchsorted(cum, r).clamp_(max=n - 1)
        d = pairwise_sq_distances(x[cand], x, y_sq=x_sq)
        torch.minimum(d, closest.unsqueeze(0), out=d)
        best = int(torch.argmin((d * w.unsqueeze(0)).sum(1)))
        chosen[c] = cand[best]
        closest = d[best]
    return chosen


def weighted_lloyd(x: torch.Tensor, w: torch.Tensor, centers: torch.Tensor, max_iter: int,
                   tol: float) -> tuple[torch.Tensor, float, int]:
    """Weighted Lloyd iterations from `centers`. Returns (centers, weighted loss, iterations).

    Stops when the loss improves by no more than `tol` × loss. An emptied cluster is moved to the
    point that contributes most to the loss.
    """
    k = centers.shape[0]
    c = centers.clone()
    idx, d2 = nearest(x, c)
    loss = float((w * d2).sum())
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        sums = torch.zeros_like(c).index_add_(0, idx, x * w.unsqueeze(1))
        mass = torch.zeros(k, dtype=x.dtype, device=x.device).index_add_(0, idx, w)
        empty = torch.nonzero(mass <= 0).flatten()
        c = sums / mass.clamp_min(torch.finfo(x.dtype).tiny).unsqueeze(1)
        if len(empty):
            far = torch.argsort(w * d2, descending=True)[:len(empty)]
            c[empty[:len(far)]] = x[far]
        idx, d2 = nearest(x, c)
        new_loss = float((w * d2).sum())
        converged = loss - new_loss <= tol * loss
        loss = new_loss
        if converged and not len(empty):
            break
    return c, loss, n_iter


def hartigan_refine(x: torch.Tensor, w: torch.Tensor, centers: torch.Tensor,
                    max_moves: int | None = None) -> torch.Tensor:
    """Polish a weighted k-means solution with Hartigan–Wong single-point moves.

    A point of weight w leaves cluster a (weight W_a) for b (weight W_b) when that lowers the loss:
    W_b·w/(W_b + w)·|x − c_b|² < W_a·w/(W_a − w)·|x − c_a|². Every Lloyd's fixed point that such a
    move improves is left, so the answer is never worse than the input; moves are made one at a
    time (best first) with O(K·d) updates each. Clusters are never emptied.
    """
    k, n = centers.shape[0], x.shape[0]
    idx, _ = nearest(x, centers)
    mass = torch.zeros(k, dtype=x.dtype, device=x.device).index_add_(0, idx, w)
    sums = torch.zeros_like(centers).index_add_(0, idx, x * w.unsqueeze(1))
    c = torch.where(mass.unsqueeze(1) > 0, sums / mass.clamp_min(torch.finfo(x.dtype).tiny).unsqueeze(1), centers)
    d2 = pairwise_sq_distances(x, c)
    rows = torch.arange(n, device=x.device)
    for _ in range(max_moves if max_moves is not None else 10 * n):
        own_mass = mass[idx]
        own = d2[rows, idx]
        leave_gain = torch.where(own_mass > w, own_mass * w / (own_mass - w).clamp_min(torch.finfo(x.dtype).tiny) * own,
                                 torch.full_like(own, -math.inf))
        join_cost = mass.unsqueeze(0) * w.unsqueeze(1) / (mass.unsqueeze(0) + w.unsqueeze(1)) * d2
        join_cost[rows, idx] = math.inf
        delta = join_cost - leave_gain.unsqueeze(1)
        best = int(torch.argmin(delta))
        i, b = divmod(best, k)
        loss = float((w * own).sum())
        if not float(delta[i, b]) < -1e-12 * max(loss, 1e-300):
            break
        a = int(idx[i])
        for cl, sign in ((a, -1.0), (b, 1.0)):
            mass[cl] += sign * w[i]
            sums[cl] += sign * w[i] * x[i]
            c[cl] = sums[cl] / mass[cl]
            d2[:, cl] = ((x - c[cl]) ** 2).sum(1)
        idx[i] = b
    return c


class WebScaleKMeans(StreamingEstimator):
    """Mini-batch web-scale k-means with a Lloyd's reduction (SageMaker K-Means' algorithm).

    Parameters are the declared hyperparameters (AWS's names and defaults), plus `local_refine`,
    `random_state` and `device`. Fitted attributes: `cluster_centers_` (k, d)
    float32, `stream_centers_` (K, d) and `stream_weights_` (K,) from the streaming phase,
    `n_features_in_`, `n_samples_seen_` (records in the last epoch), `train_msd_` (mean squared
    distance of the last epoch's records to the final centres, bounded from per-centre sums
    without another pass over the data),
    `local_msd_` (the reduction's weighted mean squared distance) and `local_losses_` (per trial).
    """

    hyperparameters = HYPERPARAMETERS
    positional = ("k",)
    job_only = ("feature_dim", "force_dense")
    extra_parameters = {"local_refine": True}
    format_name = "smalgos-kmeans"
    fitted_attribute = "cluster_centers_"

    def passes(self) -> int:
        return int(self.epochs)

    # -- resolved parameters --------------------------------------------------------------------

    @property
    def center_factor_(self) -> int:
        f = self.extra_center_factor
        return DEFAULT_EXTRA_CENTER_FACTOR if f in (None, AUTO) else int(f)

    @property
    def num_trials_(self) -> int:
        t = self.local_lloyd_num_trials
        return DEFAULT_NUM_TRIALS if t in (None, AUTO) else int(t)

    @property
    def n_stream_centers(self) -> int:
        """K: the number of streaming centres (k × extra_center_factor, or fewer if the first batch is short)."""
        centers = getattr(self, "_centers", None)
        return self.k * self.center_factor_ if centers is None else int(centers.shape[0])

    # -- notebook API ---------------------------------------------------------------------------

    def closest(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(index of the closest centre (n,) int64, Euclidean distance to it (n,) float32)."""
        idx, d2 = self._nearest(X)
        return to_numpy(idx), to_numpy(d2.sqrt())

    def predict(self, X) -> np.ndarray:
        return self.closest(X)[0]

    def sum_squared_distances(self, X) -> tuple[float, int]:
        """(Σ squared distance to the closest centre, number of records): AWS's ssd; msd = ssd / n."""
        _, d2 = self._nearest(X)
        return float(d2.to(torch.float64).sum()), int(d2.shape[0])

    def _nearest(self, X):
        self.check_fitted()
        dev = pick_device(self.device)
        cached = getattr(self, "_serving_centers", None)
        if cached is None or cached[0] is not self.cluster_centers_ or cached[1].device != dev:
            cached = (self.cluster_centers_, torch.from_numpy(self.cluster_centers_).to(dev))
            self._serving_centers = cached
        return nearest(as_dense(as_float32(X), dev), cached[1])

    # -- artifacts ------------------------------------------------------------------------------

    def save(self, model_dir) -> list[Path]:
        """Write the centroids (safetensors) and their metadata (JSON); never pickle."""
        self.check_fitted()
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_file({"centroids": np.ascontiguousarray(self.cluster_centers_, dtype=np.float32)},
                  str(model_dir / MODEL_FILE))
        meta = self.write_metadata(model_dir / META_FILE, {
            "k": int(self.cluster_centers_.shape[0]), "feature_dim": int(self.cluster_centers_.shape[1]),
            "distance": "euclidean"})
        return [model_dir / MODEL_FILE, meta]

    @classmethod
    def load(cls, model_dir, device: str | None = None) -> "WebScaleKMeans":
        """A fitted estimator from `save()`'s files (ValueError if they are inconsistent)."""
        model_dir = Path(model_dir)
        meta = cls.read_metadata(model_dir / META_FILE)
        centroids = load_file(str(model_dir / MODEL_FILE)).get("centroids")
        if centroids is None or centroids.ndim != 2 or centroids.shape != (meta["k"], meta["feature_dim"]):
            raise ValueError(f"{MODEL_FILE}: centroids missing or not of shape (k, feature_dim) = "
                             f"({meta.get('k')}, {meta.get('feature_dim')})")
        est = cls(k=int(meta["k"]), device=device)
        est.cluster_centers_ = centroids.astype(np.float32, copy=False)
        est.n_features_in_ = int(meta["feature_dim"])
        return est

    # -- what the training driver reports -------------------------------------------------------

    def training_metrics(self) -> dict[str, float]:
        return {"msd": self.train_msd_}

    def model_arrays(self) -> dict:
        return {"centroids": self.cluster_centers_}

    def test_scorer(self) -> "_DistanceScorer":
        return _DistanceScorer(self)

    # -- streaming API --------------------------------------------------------------------------

    def begin(self, n_features: int) -> None:
        """Start a fit on records of `n_features` features."""
        self.validated_parameters(feature_dim=n_features)
        self._device = pick_device(self.device)
        self._gen = generator(self.random_state)
        self.n_features_in_ = int(n_features)
        self._centers: torch.Tensor | None = None
        self._weights: torch.Tensor | None = None
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        self._epoch_n = 0
        self._epoch_counts = self._epoch_sums = self._epoch_sq = None

    def _init_centers(self, x: torch.Tensor) -> None:
        wanted = self.k * self.center_factor_
        n = x.shape[0]
        K = min(wanted, n)
        if K < wanted:
            log.warning("Effective batch size used to initialize is %d: %d centers instead of %d", n, K, wanted)
        if K < self.k:
            raise InputError(f"only {n} records in the first mini-batch: fewer than k={self.k}")
        if self.init_method == "kmeans++":
            rows = kmeans_plusplus(x, K, self._gen)
        else:
            rows = torch.randperm(n, generator=self._gen)[:K].to(x.device)
        self._centers = x[rows].clone()
        self._weights = torch.zeros(K, dtype=torch.float64, device=x.device)

    def _summed(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """The tensors summed over the job's hosts (float64 kept), on this host's device."""
        return [torch.from_numpy(a).to(t.device) for a, t in zip(self.cluster.sum(*map(to_numpy, tensors)), tensors)]

    def partial_fit(self, xb) -> "WebScaleKMeans":
        """Fold one mini-batch into the K streaming centres (the first one also seeds them). Across
        hosts every host's mini-batch of this step counts (an empty one too: it takes part)."""
        x = as_dense(conform_width(as_float32(xb), self.n_features_in_, "the mini-batch"), self._device)
        n = x.shape[0]
        several = self.cluster.several
        if n == 0 and not several:
            return self
        if self._centers is None:
            first = torch.from_numpy(np.concatenate(self.cluster.gather(to_numpy(x)))).to(x.device) if several else x
            self._init_centers(first)
        K = self._centers.shape[0]
        idx, d2 = nearest(x, self._centers)
        own_counts = torch.bincount(idx, minlength=K).to(torch.float64)
        own_sums = torch.zeros_like(self._centers).index_add_(0, idx, x).to(torch.float64)
        counts, sums = self._summed(own_counts, own_sums) if several else (own_counts, own_sums)
        if self.half_life_time_size > 0:
            batch = int(counts.sum()) if several else n
            self._weights *= 0.5 ** (batch / self.half_life_time_size)
        total = self._weights + counts
        hit = counts > 0
        c_old = self._centers[hit].to(torch.float64)
        c_new = (c_old * self._weights[hit].unsqueeze(1) + sums[hit]) / total[hit].unsqueeze(1)
        self._centers[hit] = c_new.to(self._centers.dtype)
        self._weights = total
        # For the train msd estimate: per streaming centre, this epoch's count, Σx and Σ|x|².
        if self._epoch_counts is None:
            self._epoch_counts = torch.zeros(K, dtype=torch.float64, device=x.device)
            self._epoch_sums = torch.zeros((K, x.shape[1]), dtype=torch.float64, device=x.device)
            self._epoch_sq = torch.zeros(K, dtype=torch.float64, device=x.device)
        self._epoch_counts += own_counts
        self._epoch_sums += own_sums
        self._epoch_sq.index_add_(0, idx, (x.to(torch.float64) ** 2).sum(1))
        self._epoch_n += n
        return self

    def end_epoch(self) -> None:
        """Mark the end of a pass (the train msd estimate uses the last pass)."""
        self._last_epoch = (self._epoch_n, self._epoch_counts, self._epoch_sums, self._epoch_sq)
        self._reset_epoch()

    def finalize(self) -> "WebScaleKMeans":
        """Reduce the K streaming centres to k with weighted Lloyd's; sets `cluster_centers_`."""
        if self._centers is None:
            raise InputError("no records were seen")
        log.info("shrinking %d centers into %d", self.n_stream_centers, self.k)
        if self._epoch_n:  # partial_fit without end_epoch
            self.end_epoch()
        centers = self._centers.to(torch.float64)
        weights = self._weights
        self.stream_centers_ = to_numpy(self._centers)
        self.stream_weights_ = to_numpy(weights)
        live = weights > 0
        points, w = centers[live], weights[live]
        k = self.k
        if points.shape[0] <= k:
            # Fewer occupied centres than k: keep them all and pad with unoccupied ones.
            pad = centers[~live][: k - points.shape[0]]
            final = torch.cat([points, pad])
            self.local_losses_ = [0.0]
            best_loss = 0.0
        else:
            best, best_loss, self.local_losses_ = None, math.inf, []
            total_w = float(w.sum())
            for trial in range(self.num_trials_):
                if self.local_lloyd_init_method == "kmeans++":
                    seeds = kmeans_plusplus(points, k, self._gen, weights=w)
                else:
                    seeds = torch.multinomial(w.cpu(), k, replacement=False, generator=self._gen).to(points.device)
                c, loss, _ = weighted_lloyd(points, w, points[seeds], self.local_lloyd_max_iter, self.local_lloyd_tol)
                if self.local_refine:
                    c = hartigan_refine(points, w, c)
                    c, loss, _ = weighted_lloyd(points, w, c, self.local_lloyd_max_iter, self.local_lloyd_tol)
                log.info("local kmeans attempt #%d. Current mean square distance %f", trial, loss / total_w)
                self.local_losses_.append(loss)
                if loss < best_loss:
                    best, best_loss = c, loss
            final = best
        if self.cluster.several:
            final = torch.from_numpy(self.cluster.broadcast(to_numpy(final))).to(centers.device)
        self.cluster_centers_ = to_numpy(final, np.float32)
        total_w = float(w.sum()) if len(w) else 1.0
        self.local_msd_ = best_loss / total_w
        n, counts, sums, sq = self._last_epoch
        if self.cluster.several:  # the job's last epoch: every host's records
            n_all, counts, sums, sq = self._summed(torch.tensor([float(n)], dtype=torch.float64), counts, sums, sq)
            n = int(n_all[0])
        if n:
            # The last epoch's points, each scored against the final centre of the streaming centre
            # it joined: Σ|x - f|² = Σ|x|² - 2 f·Σx + n|f|² (an upper bound of the true ssd).
            f = final[nearest(centers, final)[0]]
            ssd = sq.sum() - 2 * (f * sums).sum() + (counts * (f * f).sum(1)).sum()
            self.train_msd_ = max(0.0, float(ssd) / n)
        else:
            self.train_msd_ = float("nan")
        self.n_samples_seen_ = n
        return self


class _DistanceScorer:
    """The test channel's msd and ssd (squared distances to the closest centre), those asked for
    by `eval_metrics`."""

    def __init__(self, km: WebScaleKMeans):
        self.km, self.ssd = km, 0.0

    def update(self, features, labels) -> None:
        self.ssd += self.km.sum_squared_distances(features)[0]

    def result(self, records: int) -> dict[str, float]:
        scores = {"msd": self.ssd / records, "ssd": self.ssd}
        return {name: scores[name] for name in self.km.eval_metrics}
