"""DeepAR's trainer: the `train` channel's series through GluonTS's DeepAREstimator, AWS's log and
metric lines, the artifact, and the optional `test` channel scored as AWS does (each series' last
prediction_length points forecast from the rest)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import SIGTERMException
import numpy as np
import torch

from smalgos.distributed import Cluster, joined
from smalgos.errors import ClientError, PlatformError
from smalgos.maths.device import pick_device
from smalgos.training.job import TrainingJob

from . import checkpoints
from .declaration import BETA, NEGATIVE_BINOMIAL
from .evaluation import score_forecasts
from .hosts import JoinedHosts
from .model import Network, batches_per_epoch, save
from .series import (
    Series, check_categories, check_enough_observations, observations, read_series, resolve_cardinality,
    resolve_num_dynamic_feat,
)

log = logging.getLogger("smalgos")


class Epochs(pl.Callback):
    """AWS's per-epoch `train loss` line (the hosts' mean), progress and throughput; the best
    epoch's weights; early stopping; SIGTERM on any host stops every host after the epoch; the
    checkpoint of the epoch before (written at the next epoch's start, once the learning-rate
    scheduler has stepped, and when training ends)."""

    def __init__(self, job: TrainingJob, cluster: Cluster, hp: dict, windows_per_epoch: int,
                 checkpoint_key: str | None, resume: checkpoints.Resume | None):
        self.job, self.cluster, self.epochs, self.windows = job, cluster, hp["epochs"], windows_per_epoch
        self.patience = hp["early_stopping_patience"]
        self.key, self.resume = checkpoint_key, resume
        self.first = 0 if resume is None else resume.next_epoch
        self.last_done: int | None = None
        self.best: tuple[float, int, dict] | None = None
        if resume is not None and resume.best_loss is not None and resume.best_weights is not None:
            self.best = (resume.best_loss, resume.best_epoch, resume.best_weights)
        self.early_stopped = False
        self._start = time.monotonic()

    def on_train_start(self, trainer, module) -> None:
        if self.resume is not None:
            trainer.optimizers[0].load_state_dict(self.resume.optimizer)
            if self.resume.scheduler is not None and trainer.lr_scheduler_configs:
                trainer.lr_scheduler_configs[0].scheduler.load_state_dict(self.resume.scheduler)

    def on_train_epoch_start(self, trainer, module) -> None:
        self._save(trainer, module)
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer, module) -> None:
        epoch = self.first + trainer.current_epoch
        local = float(trainer.callback_metrics["train_loss"])
        loss = float(self.cluster.sum(np.array([local]))[0][0]) / self.cluster.size
        self.job.metrics.quality("train", "loss", loss, epoch=epoch)
        self.job.metrics.progress(100.0 * (epoch + 1) / self.epochs)
        self.job.metrics.throughput(self.windows / max(time.monotonic() - self._start, 1e-9))
        if self.best is None or loss < self.best[0]:
            self.best = (loss, epoch, {k: v.detach().clone() for k, v in module.model.state_dict().items()})
        self.last_done = epoch
        if self.patience is not None and epoch - self.best[1] >= self.patience:
            log.info("Early stopping: no better train loss in the %d epochs since epoch %d", self.patience, self.best[1])
            self.early_stopped = True
        if self.early_stopped or self.cluster.any(self.job.should_stop()):
            trainer.should_stop = True

    def on_train_end(self, trainer, module) -> None:
        self._save(trainer, module)

    def _save(self, trainer, module) -> None:
        if self.key is None or self.last_done is None or not self.cluster.is_master:
            return
        finished = self.early_stopped or self.last_done + 1 >= self.epochs
        schedulers = trainer.lr_scheduler_configs
        checkpoints.save(self.job.checkpoint_dir, self.key, self.last_done, finished, module.model, self.best,
                         trainer.optimizers[0], schedulers[0].scheduler if schedulers else None)


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
    device = pick_device()
    series = _channel_series(job, "train")
    with joined(job.resources, want_cuda=device.type == "cuda") as cluster:
        sharded = job.channel("train").config.distribution != "FullyReplicated"
        if cluster.several and not sharded:  # every host holds every series: each trains on its share
            whole, series = series, series[cluster.rank::cluster.size]
        else:
            whole = series
        source = str(job.paths.channel_dir("train"))
        cardinality = _agreed(cluster, resolve_cardinality(whole, hp["cardinality"], source), "cat")
        num_dynamic_feat = _agreed(cluster, [resolve_num_dynamic_feat(whole, hp["num_dynamic_feat"], source)],
                                   "dynamic_feat", same=True)[0]
        observed = observations(whole)
        if sharded:
            observed = int(cluster.sum(np.array([observed]))[0][0])
        check_enough_observations(observed)
        _check_likelihood_domain(whole, hp["likelihood"])
        num_series = len(whole) if not sharded else int(cluster.sum(np.array([len(whole)]))[0][0])
        log.info("number of time series: %d", num_series)
        log.info("number of observations: %d", observed)
        if cluster.several:
            log.info("Host %s trains on %d of the %d series, as one job with %d host(s) (DDP)", cluster.host,
                     len(series), num_series, cluster.size)
        if not series:
            raise ClientError(f"Host {cluster.host} has no series of channel 'train' to train on: give every host "
                              "at least one (the job has more hosts than series, or a shard is empty)")

        network = Network.from_hyperparameters(hp, cardinality, num_dynamic_feat)
        # AWS's epoch: about one window per series, the hosts' batches together.
        batches = batches_per_epoch(num_series, hp["mini_batch_size"] * cluster.size)
        module, predictor = _fit(job, cluster, device, network, series, hp, batches)
        if not cluster.is_master:
            return
        save(job.model_dir, network, module)
        if job.channel("test") is None:
            log.info("Test data is not provided.")
            return
        _score_test(job, network, predictor, hp)


def _fit(job: TrainingJob, cluster: Cluster, device, network: Network, series: list[Series], hp: dict,
         batches: int):
    """GluonTS's training steps (its estimator's transformation, lightning module and data loader)
    under our own Lightning trainer: AWS's epochs, the best epoch's weights kept, checkpoints and
    resume, several hosts as one DDP job. (GluonTS's own `train` writes and unpickles its checkpoints
    and swallows a failure once one exists.)"""
    from gluonts.env import env

    estimator = network.estimator(learning_rate=hp["learning_rate"], batch_size=hp["mini_batch_size"],
                                  num_batches_per_epoch=batches, num_samples=hp["num_eval_samples"])
    transformation = estimator.create_transformation()
    module = estimator.create_lightning_module()
    entries = network.entries(series)
    with env._let(max_idle_transforms=max(len(entries), 100)):
        data = transformation.apply(entries, is_train=True)
        loader = estimator.create_training_data_loader(data, module)

    key = resume = None
    if job.checkpoint_configured:
        key = checkpoints.fingerprint(hp, asdict(network))
        resume = checkpoints.restore(job.checkpoint_dir, key)
        if cluster.several:  # every host resumes from the master's checkpoint, or none does
            found = cluster.broadcast(np.array([-1 if resume is None else resume.next_epoch]))[0]
            if (resume is None) != (found < 0):
                raise PlatformError(f"Host {cluster.host} sees another checkpoint than the master in "
                                    f"{job.checkpoint_dir}: every host needs the same checkpoint directory")
    if resume is not None:
        module.model.load_state_dict(resume.weights)
        log.info("Resuming from the checkpoint in %s at epoch %d", job.checkpoint_dir, resume.next_epoch)
    epochs = Epochs(job, cluster, hp, batches * hp["mini_batch_size"], key, resume)
    remaining = hp["epochs"] - epochs.first
    if resume is not None and resume.finished:
        remaining = 0
    if remaining > 0:
        # GluonTS's gradient clipping (its estimator's trainer default), as its own training applies it.
        trainer = pl.Trainer(max_epochs=remaining, callbacks=[epochs], logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False,
                             gradient_clip_val=estimator.trainer_kwargs["gradient_clip_val"],
                             **_placement(cluster, device))
        try:
            trainer.fit(module, train_dataloaders=loader)
        except SIGTERMException:  # Lightning's own SIGTERM handler, after the epoch: our stop request too
            epochs.on_train_end(trainer, module)
    if epochs.best is not None:
        loss, epoch, weights = epochs.best
        module.model.load_state_dict(weights)
        _check_hosts_agree(cluster, module.model)
        log.info("Final loss: %r (occurred at epoch %d)", loss, epoch)
        job.metrics.quality("train", "final_loss", loss)
    module.eval()
    return module, estimator.create_predictor(transformation, module.to("cpu"))


def _check_hosts_agree(cluster: Cluster, model) -> None:
    """DDP keeps every host's network the same: checked (the weights' sum and sum of squares), so
    that a job whose hosts drifted apart fails instead of saving one host's network."""
    if not cluster.several:
        return
    with torch.no_grad():
        mine = [float(sum(t.double().sum() for t in model.state_dict().values())),
                float(sum((t.double() ** 2).sum() for t in model.state_dict().values()))]
    high = [cluster.max(v) for v in mine]
    low = [-cluster.max(-v) for v in mine]
    if any(abs(h - lo) > 1e-9 * max(1.0, abs(h)) for h, lo in zip(high, low)):
        raise PlatformError(f"Host {cluster.host}: the hosts' networks differ after training (checksums "
                            f"{low} to {high}): the hosts did not train as one job")
    log.info("The %d hosts' networks agree (checksum %.12g)", cluster.size, mine[0])


def _placement(cluster: Cluster, device) -> dict:
    """The Lightning trainer's accelerator; with several hosts, DDP over the process group that
    `joined` already started (Lightning leaves an initialised group as it is)."""
    placement = {"accelerator": "gpu" if device.type == "cuda" else "cpu",
                 "devices": [device.index or 0] if device.type == "cuda" else 1}
    if cluster.several:
        from lightning.pytorch.strategies import DDPStrategy
        placement.update(strategy=DDPStrategy(cluster_environment=JoinedHosts(cluster),
                                              process_group_backend=cluster.backend),
                         num_nodes=cluster.size)
    return placement


def _agreed(cluster: Cluster, values: list[int], field: str, same: bool = False) -> list[int]:
    """`values` (per-field cardinalities, or a count) as every host has them: the largest of each,
    or, with `same`, refused unless every host has the same."""
    if not cluster.several:
        return values
    counts = {int(cluster.max(len(values))), -int(cluster.max(-len(values)))}
    if len(counts) > 1:
        raise ClientError(f"The hosts' series of channel 'train' have different numbers of '{field}' fields "
                          f"({', '.join(map(str, sorted(counts)))}): every record needs the same number")
    top = [int(cluster.max(v)) for v in values]
    if same and top != [-int(cluster.max(-v)) for v in values]:
        raise ClientError(f"The hosts' series of channel 'train' have different numbers of '{field}' series: "
                          "every record needs the same number")
    return top


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
