"""One training run of Linear Learner (the algorithm as described at the top of `model.py`).

`_Trainer.prepare` does steps 1 and 2: reads the training sample, fits the scaler and class
weights, lays out the grid of parallel models and initialises their weights. `_Trainer.run` is
the epoch loop: for each epoch it trains one pass (step 3, update rules in `optimizers.py`),
scores every model and keeps best copies with early stopping (step 4, `selection.py`), reports
and checkpoints (`checkpoints.py`); then it selects the final model (step 5).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import scipy.sparse as sp
import torch

from smalgos.declaration import AUTO
from smalgos.distributed import SOLO
from smalgos.errors import InputError
from smalgos.maths.inputs import check_labels, check_width

from . import losses as L
from .checkpoints import restore_checkpoint, save_checkpoint
from .hosts import disagreement, merge_gradients_, pooled, pooled_variance, share, summed
from .inputs import LINEAR_LEARNER, TRAINING_DATA, _blocks, _read_first
from .optimizers import AUTO_SCHEDULER_STEP, Optimizer, paced_scheduler_step, state_copies
from .selection import BestModels, Criterion, EpochScores, score_epoch

if TYPE_CHECKING:
    from .model import EpochSource

log = logging.getLogger("smalgos.linear_learner")

MAX_AUTO_MODELS = 32
CALIBRATION_SAMPLE_CAP = 10_000  # training-sample rows kept for selection without validation
ABSENT_CLASS_WEIGHT = 1e6
# Sizing a job before allocating (`memory_estimate`): an update's temporaries the size of W (the
# forward pass's scaled weights, the gradient and its scaled and decayed copies, the l1 step; adam
# and rmsprop also build their denominator sqrt(v) + eps and the step before it is applied), counted
# from `_train_batch` and `Optimizer.update`; and the scaler's per-feature vectors (float64 mean,
# mean square, deviation and a temporary; float32 copies for the device). Calibrated on the peak
# resident memory (VmHWM) of CPU runs, 2,000 sparse records, feature_dim=400,000, num_models=32
# (51 MB a copy): growth over the process before fit 12.4 copies with adam (estimate 12.3), 11.4
# with rmsprop (11.3), 8.4 with sgd (8.3). Below ~32 MB a copy, glibc's heap keeps freed
# temporaries: up to ~150 MB more than estimated (feature_dim=200,000: 466 MB, estimate 315 MB).
# (Measured before `_train_batch` scaled and centred the gradient in place, which makes one copy
# fewer: the estimate errs on the safe side.)
BATCH_WORK_COPIES = {"sgd": 6, "adam": 8, "rmsprop": 8}
SCALER_BYTES_PER_FEATURE = {"cpu": 40, "device": 8}

# Grids searched for `auto` values; the first entry is model 0's.
AUTO_LEARNING_RATES = {
    "adam": (0.1, 0.01, 0.3, 0.03),
    "rmsprop": (0.01, 0.1, 0.001, 0.03),
    "sgd": (0.1, 1.0, 0.01, 0.3),
}
AUTO_WD = (0.0, 1e-4, 1e-3, 1e-2)
AUTO_L1 = (0.0, 1e-4)
AUTO_POSITIVE_WEIGHT = (1.0, "balanced")
CLOSE_LR = (1.0, 0.5, 2.0, 0.25)
CLOSE_REG = (1.0, 0.1, 10.0)


@dataclass
class EpochReport:
    """What one epoch did, handed to the `callback` of `fit_stream`."""

    epoch: int  # 0-based
    epochs: int
    objective: str  # e.g. "binary_classification_cross_entropy_objective"
    train_loss: np.ndarray  # (num_models,) mean objective over the epoch's batches
    validation_loss: np.ndarray | None  # (num_models,) or None without validation data
    criterion: str  # e.g. "sampled_accuracy", "mse_objective"
    criterion_values: np.ndarray  # (num_models,) in the criterion's own direction
    criterion_minimize: bool
    best_value: float  # best criterion over models this epoch
    improved: bool  # relative improvement above tolerance over the best so far
    stop: bool  # early stopping triggers after this epoch
    records: int
    seconds: float

    @property
    def best_train_loss(self) -> float:
        return float(np.min(self.train_loss))

    @property
    def best_validation_loss(self) -> float | None:
        return None if self.validation_loss is None else float(np.min(self.validation_loss))


@dataclass
class _Pass:
    """One epoch's pass over the training data."""

    train_loss: np.ndarray  # (M,) mean report-unit loss before each update
    records: int
    seconds: float


class _Trainer:
    """Holds the tensors of one training run: parameters of all models (`W`, `b`), the optimiser
    state (`optimizer`), best copies (`best`); `cluster` the hosts it trains with (`hosts.py`)."""

    def __init__(self, hp: dict, device: torch.device, seed: int, cluster=SOLO):
        self.hp = hp
        self.cluster = cluster
        self.device = device
        self.seed = seed
        self.predictor = hp["predictor_type"]
        self.loss_name = hp["loss"]
        self.loss_fn = L.LOSS_FUNCTIONS[self.loss_name]
        self.loss_grad = L.GRADIENTS[self.loss_name]
        self.objective = L.objective_name(self.loss_name)
        self.multiclass = self.predictor == "multiclass_classifier"
        self.binary = self.predictor == "binary_classifier"
        self.k = int(hp["num_classes"]) if self.multiclass else 1
        self.num_classes = self.k if self.multiclass else None
        self.batch_size = int(hp["mini_batch_size"])
        self.criterion = Criterion(hp)
        self.history: list[EpochReport] = []

    # -- preparation -----------------------------------------------------------------------------

    def prepare(self, train: EpochSource) -> None:
        hp = self.hp
        cluster = self.cluster
        n_scaler = share(hp["num_point_for_scaler"], cluster)
        n_sample = max(n_scaler, share(min(self.criterion.num_cal, CALIBRATION_SAMPLE_CAP), cluster))
        fd = hp["feature_dim"]
        self.d = None if fd == AUTO else int(fd)
        sample = _read_first(train, n_sample, self.d)
        rows, width = (0, 0) if sample is None else (sample[0].shape[0], sample[0].shape[1])
        if self.d is None:  # one host: its first batch's width; several: the widest host's
            self.d = int(cluster.max(width))
        if int(summed(cluster, [rows])[0][0]) == 0:
            raise InputError("The train channel holds no records" + (" on any host" if cluster.several else ""))
        if sample is None:  # this host has no records: it takes part with none
            sample = (np.zeros((0, self.d), dtype=np.float32), np.zeros(0, dtype=np.float32))
        X, y = sample
        X = check_width(X, self.d, TRAINING_DATA, widen_sparse=True)  # values checked as read
        self._check_memory()
        y = check_labels(y, TRAINING_DATA, predictor=self.predictor, num_classes=self.num_classes,
                         needed_by=LINEAR_LEARNER)
        self.sample = (X, y)
        self._fit_scaler(X[:n_scaler], y[:n_scaler])
        self._class_weights(y)
        self._build_models()
        self._init_parameters()
        self.batch_work = self.batch_size * self.d * self.m * self.k

    def _fit_scaler(self, X, y) -> None:
        hp = self.hp
        d = self.d
        if X.shape[0] == 0:
            mean = sq = np.zeros(d)
        elif sp.issparse(X):
            mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
            sq = np.asarray(X.multiply(X).mean(axis=0), dtype=np.float64).ravel()
        else:
            X64 = np.asarray(X, dtype=np.float64)
            mean = X64.mean(axis=0)
            sq = (X64 * X64).mean(axis=0)
        n, (mean, sq) = pooled(self.cluster, X.shape[0], mean, sq)
        std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
        std[~(std > 1e-12)] = 1.0
        self.scaler_std = std if hp["normalize_data"] else np.ones(d)
        self.scaler_mean = mean if hp["unbias_data"] else np.zeros(d)
        y64 = y.astype(np.float64)
        lmean, lvar = (float(y64.mean()), float(y64.var())) if len(y64) else (0.0, 0.0)
        _, lmean, lvar = pooled_variance(self.cluster, len(y64), lmean, lvar)
        lstd = float(np.sqrt(lvar)) if n else 1.0
        if not lstd > 1e-12:
            lstd = 1.0
        self.label_mean = lmean if hp["unbias_label"] else 0.0
        self.label_std = lstd if hp["normalize_label"] else 1.0
        regressor = self.predictor == "regressor"
        log.info("Scaling model computed with parameters: %s", json.dumps({
            "num_points": int(n), "normalize_data": bool(hp["normalize_data"]),
            "unbias_data": bool(hp["unbias_data"]), "mean_label": self.label_mean if regressor else None,
            "stdev_label": self.label_std if regressor else None}))
        # loss parameters in training (normalised label) units and in label units for reports
        self.report_loss_kwargs = {"margin": float(hp["margin"]), "quantile": float(hp["quantile"]),
                                   "eps": float(hp["loss_insensitivity"]), "delta": float(hp["huber_delta"])}
        self.train_loss_kwargs = dict(self.report_loss_kwargs)
        self.train_loss_kwargs["eps"] /= self.label_std
        self.train_loss_kwargs["delta"] /= self.label_std

    def _class_weights(self, y) -> None:
        hp = self.hp
        self.balanced_weight = 1.0
        if self.binary:
            pos, n = (float(v[0]) for v in summed(self.cluster, [np.sum(y > 0.5)], [len(y)]))
            neg = n - pos
            self.balanced_weight = neg / pos if pos > 0 and neg > 0 else 1.0
        self.class_weight = None
        if self.multiclass and hp["balance_multiclass_weights"]:
            counts = summed(self.cluster, np.bincount(y.astype(np.int64), minlength=self.k))[0]
            w = np.where(counts > 0, counts.sum() / (self.k * np.maximum(counts, 1)), ABSENT_CLASS_WEIGHT)
            self.class_weight = torch.tensor(w, dtype=torch.float32, device=self.device)

    def _check_memory(self) -> None:
        """Refuse, before any of it is allocated, a model state larger than the memory available."""
        hp = self.hp
        m = self._model_count(self._grid())
        parts = memory_estimate(self.d, m, self.k, hp["optimizer"], hp["momentum"], self.device)
        need = sum(parts.values())
        available = available_memory(self.device)
        log.info("Model state: about %s for feature_dim=%d x num_models=%d x %d output(s) (%s); %s available",
                 _gb(need), self.d, m, self.k, ", ".join(f"{k} {_gb(v)}" for k, v in parts.items()),
                 "unknown" if available is None else _gb(available))
        if available is None or need <= available:
            return
        one = sum(memory_estimate(self.d, 1, self.k, hp["optimizer"], hp["momentum"], self.device).values())
        where = "GPU memory" if self.device.type == "cuda" else "memory"
        smaller = (f"lower num_models (num_models=1 needs about {_gb(one)}"
                   + ("" if one <= available else ", still more than available") + ")")
        raise InputError(
            f"Linear Learner needs about {_gb(need)} for its model state but only {_gb(available)} of {where} is "
            f"available: feature_dim={self.d} x num_models={m} x {self.k} output(s) in float32 = "
            f"{_gb(parts['weights'])} per copy, held as {', '.join(f'{k} {_gb(v)}' for k, v in parts.items())}. To fit: {smaller}; use an "
            f"instance with more {where}; or reduce feature_dim (fewer or hashed features)"
            + ("; or use optimizer=sgd with momentum=0, which keeps no optimiser state"
               if state_copies(hp["optimizer"], hp["momentum"]) else ""))

    def _grid(self) -> list[dict]:
        hp = self.hp
        axes: list[tuple[str, tuple]] = []
        lr = hp["learning_rate"]
        axes.append(("learning_rate", AUTO_LEARNING_RATES[hp["optimizer"]] if lr == AUTO
                     else tuple(lr * m for m in CLOSE_LR)))
        for name, auto_grid in (("wd", AUTO_WD), ("l1", AUTO_L1)):
            v = hp[name]
            axes.append((name, auto_grid if v == AUTO else ((0.0,) if v == 0 else tuple(v * m for m in CLOSE_REG))))
        pw = hp["positive_example_weight_mult"]
        axes.append(("positive_example_weight_mult", AUTO_POSITIVE_WEIGHT if pw == AUTO else (pw,)))
        combos = sorted(itertools.product(*[range(len(vals)) for _, vals in axes]),
                        key=lambda idx: (sum(idx), idx))
        return [{name: vals[i] for (name, vals), i in zip(axes, idx)} for idx in combos]

    def _model_count(self, grid: list[dict]) -> int:
        nm = self.hp["num_models"]
        return min(MAX_AUTO_MODELS, len(grid)) if nm == AUTO else int(nm)

    def _build_models(self) -> None:
        hp = self.hp
        grid = self._grid()
        m = self._model_count(grid)
        settings = []
        for i in range(m):
            s = dict(grid[i % len(grid)])
            if s["positive_example_weight_mult"] == "balanced":
                s["positive_example_weight_mult"] = self.balanced_weight
            s["optimizer"] = hp["optimizer"]
            if hp["use_lr_scheduler"]:
                s["lr_scheduler_step"] = hp["lr_scheduler_step"]
                s["lr_scheduler_factor"] = hp["lr_scheduler_factor"]
                s["lr_scheduler_minimum_lr"] = hp["lr_scheduler_minimum_lr"]
            settings.append(s)
        if not self.binary:
            for s in settings:
                s.pop("positive_example_weight_mult")
        self.settings = settings
        self.m = m
        self.pos_weight = torch.tensor([float(s.get("positive_example_weight_mult", 1.0)) for s in settings],
                                       dtype=torch.float32, device=self.device)
        self.weighted_positives = self.binary and any(
            float(s.get("positive_example_weight_mult", 1.0)) != 1.0 for s in settings)

    def _init_parameters(self) -> None:
        hp = self.hp
        gen = torch.Generator().manual_seed(int(self.seed))
        shape = (self.d, self.m * self.k)
        if hp["init_method"] == "normal":
            W = torch.randn(shape, generator=gen) * float(hp["init_sigma"])
        else:
            s = float(hp["init_scale"])
            W = (torch.rand(shape, generator=gen) * 2.0 - 1.0) * s
        dev = self.device
        self.W = W.to(dev)
        self.b = torch.full((self.m * self.k,), float(hp["init_bias"]) if hp["use_bias"] else 0.0, device=dev)
        self.inv_s = torch.tensor(1.0 / self.scaler_std, dtype=torch.float32, device=dev).view(-1, 1)  # (d, 1)
        self.mu = torch.tensor(self.scaler_mean, dtype=torch.float32, device=dev)
        self.centred = bool(np.any(self.scaler_mean != 0))
        step = AUTO_SCHEDULER_STEP if hp["lr_scheduler_step"] == AUTO else int(hp["lr_scheduler_step"])
        self.optimizer = Optimizer(hp, self.settings, self.k, self.W, self.b, step)
        self.best = BestModels(self.W, self.b, self.k, self.criterion.default_threshold,
                               int(hp["early_stopping_patience"]), float(hp["early_stopping_tolerance"]))

    def set_scheduler_step(self, step: int) -> None:
        """The learning-rate schedule's pace, in the optimiser and in each model's settings."""
        self.optimizer.scheduler_step = step
        for s in self.settings:
            if "lr_scheduler_step" in s:
                s["lr_scheduler_step"] = step

    # -- per-batch computation -------------------------------------------------------------------

    def _to_tensor(self, X):
        """Device tensors for a mini-batch: (X, X transposed) — CSR for sparse input."""
        dev = self.device
        if sp.issparse(X):
            X = X.tocsr()
            Xt = X.T.tocsr()
            return _torch_csr(X, dev), _torch_csr(Xt, dev)
        t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(dev)
        return t, None

    def _forward(self, Xd) -> torch.Tensor:
        A = self.W * self.inv_s
        shift = self.b - self.mu @ A if self.centred else self.b  # (M*k,): bias and centring in one
        if Xd.layout == torch.strided:
            return torch.addmm(shift, Xd, A)
        return Xd @ A + shift

    def _labels_tensor(self, y: np.ndarray):
        dev = self.device
        if self.multiclass:
            return torch.from_numpy(y.astype(np.int64)).to(dev)
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(dev).view(-1, 1)
        return yt

    def _training_terms(self, z: torch.Tensor, yt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """The loss's arguments in training units (labels normalised): z shaped for the loss, labels, keywords."""
        if self.multiclass:
            return z.view(z.shape[0], self.m, self.k), yt, {}
        if self.predictor == "regressor":
            yt = (yt - self.label_mean) / self.label_std
        return z, yt, self.train_loss_kwargs

    def _losses(self, z: torch.Tensor, yt: torch.Tensor) -> torch.Tensor:
        """Per-record per-model losses (n, M) in label (report) units."""
        if self.multiclass:
            return self.loss_fn(z.view(z.shape[0], self.m, self.k), yt)
        if self.predictor == "regressor":
            z = z * self.label_std + self.label_mean
        return self.loss_fn(z, yt, **self.report_loss_kwargs)

    def _record_weights(self, yt: torch.Tensor, w: np.ndarray | None) -> torch.Tensor | None:
        weight = None
        if self.weighted_positives:
            weight = torch.where(yt > 0.5, self.pos_weight.view(1, -1), torch.ones(1, device=self.device))
        elif self.class_weight is not None:
            weight = self.class_weight[yt].view(-1, 1)
        if w is not None:
            wt = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)).to(self.device).view(-1, 1)
            weight = wt if weight is None else weight * wt
        return weight

    @torch.no_grad()
    def _train_batch(self, X, y: np.ndarray, w: np.ndarray | None) -> torch.Tensor:
        """One update of every model; returns the pre-update report-unit loss sums (M,).

        The gradient of the mean weighted loss in z is the loss's closed-form derivative
        (`losses.GRADIENTS`) times the record weights over n; W's is X^T of it, through the
        scaler folded into the weights."""
        n = X.shape[0]
        Xd, Xt = self._to_tensor(X)
        yt = self._labels_tensor(y)
        z = self._forward(Xd)
        zl, yl, kw = self._training_terms(z, yt)
        G = self.loss_grad(zl, yl, **kw).view(z.shape)  # (n, M*k)
        weight = self._record_weights(yt, w)
        if weight is not None:
            G.mul_(weight)
        several = self.cluster.several  # several hosts: sums here, the mean over all hosts below
        if not several:
            G.div_(n)
        # losses in label units for the report (they differ from training units only for scaled labels)
        scaled = self.predictor == "regressor" and (self.label_std != 1.0 or self.label_mean != 0.0)
        report = self._losses(z, yt) if scaled else self.loss_fn(zl, yl, **kw)
        report_sum = report.sum(0)
        gW = (Xt @ G) if Xt is not None else Xd.t() @ G
        gsum = G.sum(0)
        if self.centred:
            gW.addr_(self.mu, gsum, alpha=-1.0)
        gW.mul_(self.inv_s)
        if several:
            merge_gradients_(self.cluster, n, gW, gsum)
        self.W = self.optimizer.update(self.W, self.b, gW, gsum if self.hp["use_bias"] else None)
        return report_sum

    @torch.no_grad()
    def outputs(self, X, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For scoring: linear outputs z (n, M*k), the labels as a tensor, report-unit losses (n, M)."""
        Xd, _ = self._to_tensor(X)
        yt = self._labels_tensor(y)
        z = self._forward(Xd)
        return z, yt, self._losses(z, yt)

    def batches(self, source: EpochSource, what: str, size: int | None = None) -> Iterator[tuple]:
        """Blocks of at most `size` (default `mini_batch_size`) records, validated."""
        return _blocks(source, what, size or self.batch_size, self.d, self.predictor, self.num_classes)

    # -- epochs ----------------------------------------------------------------------------------

    def run(self, train: EpochSource, validation: EpochSource | None, *, callback, should_stop,
            checkpoint_dir: Path | None = None) -> None:
        """The epochs, then the final model (`selected`, `final_weight`, `final_bias`, `final_threshold`)."""
        self.first_epoch = 0 if checkpoint_dir is None else self._restore(checkpoint_dir)
        for epoch in range(self.first_epoch, int(self.hp["epochs"])):
            trained = self._train_epoch(epoch, train, should_stop)
            if trained is None:  # should_stop() during the pass
                break
            scores = score_epoch(self, validation)
            improved, stop = self.best.update(epoch, scores, self.W, self.b)
            report = self._report(epoch, trained, scores, improved, stop)
            self.history.append(report)
            if checkpoint_dir is not None and self.cluster.is_master:  # the hosts' states are the same
                save_checkpoint(self, checkpoint_dir, epoch, stop)
            if callback is not None:
                callback(report)
            if stop or self.cluster.any(should_stop()):
                break
        self.selected = self.best.select(self)
        self.final_weight, self.final_bias, self.final_threshold = self.best.weights(self.selected)
        if self.cluster.several:
            gap = disagreement(self.cluster, self.final_weight, self.final_bias,
                               np.array([self.final_threshold, self.selected, self.first_epoch + len(self.history)]))
            (log.info if gap == 0 else log.warning)(
                "Selected model %d; the largest difference between a host's model and the master's: %r",
                self.selected, gap)

    def _restore(self, checkpoint_dir: Path) -> int:
        """The first epoch to run, from this host's copy of the master's checkpoint (SageMaker
        gives every host the checkpoint's files): the same on every host, or an InputError."""
        first = restore_checkpoint(self, checkpoint_dir)
        cluster = self.cluster
        if cluster.several and cluster.any(first != int(cluster.broadcast(np.array([first]))[0])):
            raise InputError(f"The hosts' checkpoints differ (host {cluster.host} resumes at epoch {first}): every "
                             "host needs the same copy of the checkpoint the master wrote in its checkpoint "
                             "directory")
        return first

    def _empty_block(self) -> tuple:
        """The mini-batch of a host whose records have run out while another's have not."""
        return np.zeros((0, self.d), dtype=np.float32), np.zeros(0, dtype=np.float32), None

    def _train_epoch(self, epoch: int, train: EpochSource, should_stop) -> _Pass | None:
        """One pass of updates over the training data, in step with the other hosts; None when
        `should_stop()` (on any host) interrupts it."""
        t0 = time.perf_counter()
        loss_sum = torch.zeros(self.m, dtype=torch.float64, device=self.device)
        records = batches = 0
        asked = False

        def blocks():  # should_stop() is polled before each of this host's batches
            nonlocal asked
            for block in self.batches(train, "training data"):
                if should_stop():
                    asked = True
                    return
                yield block

        for X, y, w in self.cluster.lockstep(blocks(), empty=self._empty_block, stop=lambda: asked):
            loss_sum += self._train_batch(X, y, w).double()
            records += X.shape[0]
            batches += 1
        if self.cluster.any(asked):
            return None
        seconds = time.perf_counter() - t0
        loss_sum, total = summed(self.cluster, loss_sum.cpu().numpy(), [records])
        if total[0] == 0:
            raise InputError(f"Epoch {epoch}: the train channel yielded no records")
        train_loss = loss_sum / total[0]
        if epoch == 0 and self.hp["lr_scheduler_step"] == AUTO:
            self.set_scheduler_step(paced_scheduler_step(batches))
        return _Pass(train_loss, records, seconds)

    def _report(self, epoch: int, trained: _Pass, scores: EpochScores, improved: bool, stop: bool) -> EpochReport:
        crit = self.criterion
        return EpochReport(
            epoch=epoch, epochs=int(self.hp["epochs"]), objective=self.objective, train_loss=trained.train_loss,
            validation_loss=scores.validation_loss, criterion=crit.token,
            criterion_values=crit.reported(scores.values), criterion_minimize=crit.minimize,
            best_value=crit.reported(scores.best), improved=improved, stop=stop,
            records=trained.records, seconds=trained.seconds)


# =============================================================================================
# Helpers
# =============================================================================================


def _pick_device(device) -> torch.device:
    """`device` if given, else $SMALGOS_DEVICE, else CUDA when available, else CPU (spine rule)."""
    from smalgos.maths.device import pick_device

    return pick_device(device)


def memory_estimate(d: int, m: int, k: int, optimizer: str, momentum: float, device: torch.device) -> dict[str, int]:
    """Bytes the training state of `m` models over `d` features with `k` outputs each needs, by
    part: the weights (d, m*k) float32 and bias, the optimiser's state, the best copies, one
    update's temporaries, the scaler."""
    copy = 4 * (d * m * k + m * k)
    parts = {"weights": copy}
    n_state = state_copies(optimizer, momentum)
    if n_state:
        parts[f"{optimizer} state"] = n_state * copy
    parts["best copies"] = copy
    parts["per-batch work"] = BATCH_WORK_COPIES[optimizer] * copy
    parts["scaler"] = SCALER_BYTES_PER_FEATURE["cpu" if device.type == "cpu" else "device"] * d
    return parts


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on `device`: CUDA's free memory, else Linux's MemAvailable
    (None where neither can be read: no check)."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        if device.type != "cpu":
            return None
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, RuntimeError, ValueError, IndexError):
        return None
    return None


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n < 1e10 else f"{n / 1e9:.1f} GB"


def _torch_csr(X: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(np.int64)), torch.from_numpy(X.indices.astype(np.int64)),
            torch.from_numpy(np.ascontiguousarray(X.data, dtype=np.float32)), size=X.shape,
            check_invariants=False).to(device)
