"""DeepAR's trainer: the `train` channel's series through GluonTS's DeepAREstimator, AWS's log and
metric lines, the artifact, and the optional `test` channel scored as AWS does (each series' last
prediction_length points forecast from the rest)."""

from __future__ import annotations

import logging
import tempfile
import time

import lightning.pytorch as pl
import numpy as np

from smalgos.errors import ClientError
from smalgos.training.job import TrainingJob

from .declaration import BETA, NEGATIVE_BINOMIAL
from .evaluation import score_forecasts
from .model import Network, batches_per_epoch, save
from .series import (
    Series, check_categories, check_enough_observations, read_series, resolve_cardinality,
    resolve_num_dynamic_feat,
)

log = logging.getLogger("smalgos")


class EpochLines(pl.Callback):
    """AWS's per-epoch `train loss` line, progress and throughput; the best epoch; stop on SIGTERM."""

    def __init__(self, job: TrainingJob, epochs: int, windows_per_epoch: int):
        self.job, self.epochs, self.windows = job, epochs, windows_per_epoch
        self.best: tuple[float, int] | None = None
        self._start = time.monotonic()

    def on_train_epoch_start(self, trainer, module) -> None:
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer, module) -> None:
        epoch = trainer.current_epoch
        loss = float(trainer.callback_metrics["train_loss"])
        self.job.metrics.quality("train", "loss", loss, epoch=epoch)
        self.job.metrics.progress(100.0 * (epoch + 1) / self.epochs)
        self.job.metrics.throughput(self.windows / max(time.monotonic() - self._start, 1e-9))
        if self.best is None or loss < self.best[0]:
            self.best = (loss, epoch)
        if self.job.should_stop():
            trainer.should_stop = True


def _channel_series(job: TrainingJob, name: str) -> list[Series]:
    channel = job.channel(name)
    explicit = channel.content_type if channel.config.content_type else None  # else: by file extension
    return read_series(job.paths.channel_dir(name), name, explicit)


def _check_likelihood_domain(series: list[Series], likelihood: str) -> None:
    """Beta models values in [0, 1], the negative binomial counts >= 0 (AWS's likelihood table)."""
    rules = {BETA: (lambda y: (y >= 0) & (y <= 1), "in [0, 1]"), NEGATIVE_BINOMIAL: (lambda y: y >= 0, ">= 0")}
    if likelihood not in rules:
        return
    ok, words = rules[likelihood]
    for s in series:
        y = s.target[~np.isnan(s.target)]
        if not ok(y).all():
            raise ClientError(f"{s.where}: field 'target' holds {float(y[~ok(y)][0])!r}, but "
                              f"likelihood={likelihood} needs every value {words}")


def train(job: TrainingJob) -> None:
    hp = job.hyperparameters
    series = _channel_series(job, "train")
    source = str(job.paths.channel_dir("train"))
    cardinality = resolve_cardinality(series, hp["cardinality"], source)
    num_dynamic_feat = resolve_num_dynamic_feat(series, hp["num_dynamic_feat"], source)
    check_enough_observations(series)
    _check_likelihood_domain(series, hp["likelihood"])
    log.info("number of time series: %d", len(series))
    log.info("number of observations: %d", sum(s.observations for s in series))

    network = Network.from_hyperparameters(hp, cardinality, num_dynamic_feat)
    batches = batches_per_epoch(len(series), hp["mini_batch_size"])
    lines = EpochLines(job, hp["epochs"], batches * hp["mini_batch_size"])
    callbacks: list[pl.Callback] = [lines]
    if hp["early_stopping_patience"] is not None:
        callbacks.append(pl.callbacks.EarlyStopping(monitor="train_loss", mode="min",
                                                    patience=hp["early_stopping_patience"]))
    with tempfile.TemporaryDirectory(prefix="deepar-") as scratch:  # GluonTS's best-epoch checkpoints
        estimator = network.estimator(
            learning_rate=hp["learning_rate"], batch_size=hp["mini_batch_size"], num_batches_per_epoch=batches,
            num_samples=hp["num_eval_samples"],
            trainer_kwargs={"max_epochs": hp["epochs"], "callbacks": callbacks, "default_root_dir": scratch,
                            "logger": False, "enable_progress_bar": False, "enable_model_summary": False})
        predictor = estimator.train(network.entries(series))
    if lines.best is not None:
        loss, epoch = lines.best
        log.info("Final loss: %r (occurred at epoch %d)", loss, epoch)
        job.metrics.quality("train", "final_loss", loss)
    save(job.model_dir, network, predictor.prediction_net)

    if job.channel("test") is None:
        log.info("Test data is not provided.")
        return
    _score_test(job, network, predictor, hp)


def _score_test(job: TrainingJob, network: Network, predictor, hp: dict) -> None:
    P = network.prediction_length
    series = _channel_series(job, "test")
    history, held_out = [], []
    for s in series:
        if len(s.target) <= P:
            raise ClientError(f"{s.where}: field 'target' has {len(s.target)} values; a test series needs more "
                              f"than prediction_length ({P}): its last {P} are held out and forecast")
        if network.cardinality:
            check_categories(s, network.cardinality)
        feats = 0 if s.dynamic_feat is None else s.dynamic_feat.shape[0]
        if network.num_dynamic_feat and feats != network.num_dynamic_feat:
            raise ClientError(f"{s.where}: field 'dynamic_feat' has {feats} series but the model was trained "
                              f"with {network.num_dynamic_feat}")
        history.append(Series(s.start, s.target[:-P], s.cat, s.dynamic_feat, s.where))
        held_out.append(s.target[-P:])
    log.info("Evaluating model accuracy on testset using %d samples", hp["num_eval_samples"])
    samples = [f.samples for f in predictor.predict(network.entries(history), num_samples=hp["num_eval_samples"])]
    scores = score_forecasts(held_out, samples, hp["test_quantiles"])
    for name, value in scores.items():
        if not name.startswith("coverage"):
            log.info("#test_score (%s, %s): %r", job.metrics.host, name, value)
    job.metrics.quality("test", "RMSE", scores["RMSE"])
    job.metrics.quality("test", "mean_wQuantileLoss", scores["mean_wQuantileLoss"])
