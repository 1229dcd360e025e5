"""Judging the parallel models (steps 4 and 5 of the algorithm in `model.py`).

Every epoch each model gets a criterion value, "higher is better" (`Criterion`, `score_epoch`):
binary classifiers by `binary_classifier_model_selection_criteria` at the best threshold
(`evaluation.calibrate`) over up to `num_calibration_samples` records, other predictors by their
loss; on the validation channel, else on the training sample. `BestModels` keeps each model's best
epoch (ties go to the lower loss), decides early stopping, and picks the final model. On several
hosts each judges its records and the judgement is merged (`_judged`): the same on every host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import losses as L
from .evaluation import THRESHOLD_CRITERIA, calibrate, criterion_token
from .hosts import gathered, share, summed

if TYPE_CHECKING:
    from .model import EpochSource
    from .trainer import _Trainer

EVAL_BLOCK = 8192  # records scored at once when evaluating


class Criterion:
    """What the models are judged by, and the threshold calibration of binary classifiers."""

    def __init__(self, hp: dict):
        binary = hp["predictor_type"] == "binary_classifier"
        self.name = hp["binary_classifier_model_selection_criteria"] if binary else "loss_function"
        self.calibrated = self.name in THRESHOLD_CRITERIA  # judged at a calibrated threshold
        self.minimize = not self.calibrated  # as reported; values here are always "higher is better"
        self.token = criterion_token(self.name) if self.calibrated else L.objective_name(hp["loss"])
        self.logistic = hp["loss"] == "logistic"
        self.default_threshold = 0.5 if self.logistic else 0.0
        self.num_cal = int(hp["num_calibration_samples"])
        self.hp = hp

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """Binary scores per model as AWS reports them: probability for logistic, margin for hinge."""
        return torch.sigmoid(z) if self.logistic else z

    def judge(self, scores_list, labels_list, loss_mean):
        """Criterion values (higher is better) and thresholds from collected scores or the loss."""
        if self.calibrated and scores_list:
            scores = torch.cat(scores_list)
            labels = torch.cat(labels_list)
            hp = self.hp
            return calibrate(scores, labels, self.name, beta=float(hp["f_beta"]),
                             target_recall=float(hp["target_recall"]),
                             target_precision=float(hp["target_precision"]))
        return -loss_mean, np.full(loss_mean.shape, self.default_threshold)

    def reported(self, value):
        """A value in the criterion's own direction (a loss is reported as it is, not negated)."""
        return -value if self.minimize else value


@torch.no_grad()
def score_source(trainer: _Trainer, source: EpochSource):
    """(loss per model in label units, criterion values, thresholds) on a channel (this host's
    part of it); Nones if empty (on every host)."""
    crit = trainer.criterion
    loss_sum = torch.zeros(trainer.m, dtype=torch.float64, device=trainer.device)
    n = 0
    kept = 0
    quota = share(crit.num_cal, trainer.cluster)
    scores_list, labels_list = [], []
    for X, y, _ in trainer.batches(source, "validation data", max(trainer.batch_size, EVAL_BLOCK)):
        z, yt, losses = trainer.outputs(X, y)
        loss_sum += losses.double().sum(0)
        n += X.shape[0]
        if crit.calibrated and kept < quota:
            take = min(quota - kept, X.shape[0])
            scores_list.append(crit.scores(z[:take]))
            labels_list.append(yt[:take, 0])
            kept += take
    return _judged(trainer, loss_sum, n, scores_list, labels_list)


@torch.no_grad()
def score_sample(trainer: _Trainer):
    """(loss per model, criterion values, thresholds) on the training sample."""
    crit = trainer.criterion
    X, y = trainer.sample
    z, yt, losses = trainer.outputs(X, y)
    take = min(share(crit.num_cal, trainer.cluster), X.shape[0])
    scores_list, labels_list = ([crit.scores(z[:take])], [yt[:take, 0]]) if crit.calibrated else ([], [])
    return _judged(trainer, losses.double().sum(0), X.shape[0], scores_list, labels_list)


def _judged(trainer: _Trainer, loss_sum: torch.Tensor, n: int, scores_list, labels_list):
    """(mean loss, criterion values, thresholds) from every host's loss sums over its `n`
    records and its calibration scores; Nones when no host has a record."""
    cluster = trainer.cluster
    crit = trainer.criterion
    loss_sum, count = summed(cluster, loss_sum.cpu().numpy(), [n])
    if count[0] == 0:
        return None, None, None
    if crit.calibrated:
        scores_list = gathered(cluster, scores_list, (trainer.m,), trainer.device)
        labels_list = gathered(cluster, labels_list, (), trainer.device)
    loss_mean = loss_sum / count[0]
    values, thresholds = crit.judge(scores_list, labels_list, loss_mean)
    return loss_mean, values, thresholds


@dataclass
class EpochScores:
    """One judgement of every model; a non-finite value or loss (a diverged model) counts as worst."""

    validation_loss: np.ndarray | None  # (M,) None without (or with an empty) validation channel
    values: np.ndarray  # (M,) criterion, higher is better
    tie_loss: np.ndarray  # (M,) the loss that breaks ties on a coarse criterion
    thresholds: np.ndarray  # (M,)

    @classmethod
    def of(cls, validation_loss, loss, values, thresholds) -> "EpochScores":
        values = np.where(np.isfinite(values), values, -np.inf)  # a diverged model never wins
        loss = np.where(np.isfinite(loss), loss, np.inf)
        return cls(validation_loss, values, loss, thresholds)

    @property
    def best(self) -> float:
        return float(np.max(self.values))


def score_epoch(trainer: _Trainer, validation: EpochSource | None) -> EpochScores:
    """Every model on the validation channel, or on the training sample without (or with an empty) one."""
    val_loss = values = None
    if validation is not None:
        val_loss, values, thresholds = score_source(trainer, validation)
        tie_loss = val_loss
    if values is None:  # no (or an empty) validation channel: judge on the training sample
        tie_loss, values, thresholds = score_sample(trainer)
    return EpochScores.of(val_loss, tie_loss, values, thresholds)


class BestModels:
    """Each model's best epoch so far (weights, value, tie loss, threshold) and early stopping."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor, k: int, default_threshold: float,
                 patience: int, tolerance: float):
        m = b.shape[0] // k
        self.k = k
        self.patience = patience
        self.tolerance = tolerance
        self.W = W.clone()
        self.b = b.clone()
        self.value = np.full(m, -np.inf)
        self.loss = np.full(m, np.inf)
        self.threshold = np.full(m, default_threshold)
        self.epoch = np.full(m, -1)
        self.global_best = -np.inf  # best value over all models and epochs
        self.bad_epochs = 0  # epochs since it last improved by more than the tolerance

    def update(self, epoch: int, scores: EpochScores, W: torch.Tensor, b: torch.Tensor) -> tuple[bool, bool]:
        """Keep the models that did better this epoch; returns (improved, stop): whether the best
        value over all models improved by more than the (relative) tolerance, and whether it has
        not for `early_stopping_patience` epochs."""
        values = scores.values
        # ties on a coarse criterion (accuracy on a small set) go to the lower loss
        better = (values > self.value) | ((values == self.value) & (scores.tie_loss < self.loss))
        if better.any():
            idx = torch.from_numpy(np.repeat(better, self.k)).to(W.device)
            self.W[:, idx] = W[:, idx]
            self.b[idx] = b[idx]
            self.value = np.where(better, values, self.value)
            self.loss = np.where(better, scores.tie_loss, self.loss)
            self.threshold = np.where(better, scores.thresholds, self.threshold)
            self.epoch = np.where(better, epoch, self.epoch)
        epoch_best = scores.best
        if not np.isfinite(self.global_best):
            improved = np.isfinite(epoch_best)
        else:
            improved = (epoch_best - self.global_best) / max(abs(self.global_best), 1e-12) > self.tolerance
        if epoch_best > self.global_best:
            self.global_best = epoch_best
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        return bool(improved), self.bad_epochs >= self.patience

    def select(self, trainer: _Trainer) -> int:
        """The final model: best value, then lowest loss, then lowest index."""
        if not np.isfinite(self.value).any():
            # no completed epoch (stopped at once) or every model diverged: judge the current weights
            self.W, self.b = trainer.W.clone(), trainer.b.clone()
            scores = EpochScores.of(None, *score_sample(trainer))
            self.value, self.loss, self.threshold = scores.values, scores.tie_loss, scores.thresholds
            self.epoch = np.full(self.value.shape[0], -1)
        return int(np.lexsort((self.loss, -self.value))[0])

    def weights(self, model: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(weight (d, k), bias (k,), threshold) of one model's best epoch, in normalised space."""
        cols = slice(model * self.k, (model + 1) * self.k)
        return self.W[:, cols].cpu().numpy(), self.b[cols].cpu().numpy(), float(self.threshold[model])
