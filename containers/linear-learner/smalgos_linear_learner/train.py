"""Glue between the training spine (`smalgos.training.TrainingJob`) and the maths in `model.py`.

Reads the channels as epoch sources (one call of `ChannelInput.batches` per pass, so File mode
re-reads the files and Pipe mode opens the next FIFO), trains, prints AWS's metric lines, writes
the model (master host only) and scores the validation and test channels with the final model.

Lines printed, in AWS's shapes (spec §1.3, §2.4):
    #quality_metric: host=algo-1, epoch=0, train mse_objective <loss>=...        every epoch
    #quality_metric: host=algo-1, epoch=0, validation mse_objective <loss>=...   every epoch
    #early_stopping_criteria_metric: host=algo-1, epoch=0, criteria=sampled_accuracy, value=...
    #progress_metric / #throughput_metric                                        every epoch
    #quality_metric: host=algo-1, train|validation|test <metric> <loss|score>=... final model
    #validation_score (algo-1) : ('<metric>', v)   /   #test_score (algo-1) : ('<metric>', v)
Per-epoch values are those of the best of the parallel models.

On several hosts (`smalgos.distributed.joined`) the hosts train as one job (what they merge:
`hosts.py`): each reads its slice of the train and validation channels (`ChannelInput.sliced`),
every host prints its own lines (`host=algo-N`) with the values of the whole channels, merged
(the same on every host, as the model is), and the master alone saves the model and scores `test`.
"""

from __future__ import annotations

import time

from smalgos.distributed import SOLO, joined
from smalgos.maths.inputs import check_finite

from .inputs import prechecked
from .model import EVAL_BLOCK, EpochReport, LinearLearner
from .trainer import _pick_device


def train(job) -> None:
    started = time.time()
    hp = dict(job.hyperparameters)
    log = job.log
    if hp.get("_tuning_objective_metric"):
        log.info("Automatic model tuning (objective %s): training one model (num_models=1)",
                 hp["_tuning_objective_metric"])
        hp["num_models"] = 1
    estimator = LinearLearner.from_hyperparameters(hp)
    several = job.resources.num_hosts > 1
    with joined(job.resources, want_cuda=several and _pick_device(estimator.device).type == "cuda") as cluster:
        estimator.cluster = cluster
        _train(job, hp, estimator, started)


def _train(job, hp: dict, estimator: LinearLearner, started: float) -> None:
    log, cluster = job.log, estimator.cluster
    mini_batch = int(hp["mini_batch_size"])
    block = max(mini_batch, EVAL_BLOCK)
    train_ch = job.channels["train"].sliced(cluster.rank, cluster.size)
    val_ch = job.channels.get("validation")
    test_ch = job.channels.get("test")
    # Features are checked finite as each channel decodes them, so that a message names the file
    # (or FIFO) and the line (or record); the estimator's own checks name no file, and are skipped.
    train_source = prechecked(lambda: train_ch.batches(mini_batch, check=check_finite))
    val_source = None
    if val_ch is not None:
        val_ch = val_ch.sliced(cluster.rank, cluster.size)
        val_source = prechecked(lambda: val_ch.batches(block, check=check_finite))

    metrics = job.metrics
    host = metrics.host

    def on_epoch(r: EpochReport) -> None:
        metrics.quality("train", r.objective, r.best_train_loss, epoch=r.epoch)
        if r.validation_loss is not None:
            metrics.quality("validation", r.objective, r.best_validation_loss, epoch=r.epoch)
        log.info("#early_stopping_criteria_metric: host=%s, epoch=%d, criteria=%s, value=%r",
                 host, r.epoch, r.criterion, r.best_value)
        if r.improved:
            log.info("Epoch %d: Loss improved. Updating best model", r.epoch)
        else:
            log.info("Epoch %d: Loss has not improved by more than the tolerance", r.epoch)
        metrics.progress(100.0 * (r.epoch + 1) / r.epochs)
        if r.seconds > 0:
            metrics.throughput(r.records / r.seconds)
        if r.stop:
            log.info("Early stop condition met. Stopping training.")

    # Checkpoints only when the job asked for them (checkpointconfig.json): a run on a reused
    # /opt/ml must not silently resume from an earlier job's /opt/ml/checkpoints.
    checkpoint_dir = job.checkpoint_dir if getattr(job, "checkpoint_configured", False) else None
    if checkpoint_dir is not None:
        log.info("Checkpointing every epoch to %s", checkpoint_dir)
    estimator.fit_stream(train_source, val_source, callback=on_epoch, should_stop=job.should_stop,
                         checkpoint_dir=checkpoint_dir)
    trained = time.time()
    if job.should_stop():
        log.warning("Stopped before the last epoch: saving the best model so far")

    if cluster.is_master:
        estimator.save(job.model_dir)
        log.info("Saved the model to %s", job.model_dir)
    else:
        log.info("Host %s is not the master (%s): the model is written by the master only", cluster.host,
                 cluster.hosts[0])
    if job.should_stop():
        return

    # Every host scores its slice (the sums are merged); the job's final metrics are the master's lines.
    printer = metrics if cluster.is_master else None
    _report(estimator, "train", lambda: train_ch.batches(block, check=check_finite), printer, summary=False)
    if val_source is not None:
        _report(estimator, "validation", val_source, printer, summary=True)
    if test_ch is None:
        log.info("Test data is not provided.")
    elif cluster.is_master:
        _report(estimator, "test", lambda: test_ch.batches(block, check=check_finite), metrics, summary=True,
                hosts=SOLO)
    else:
        log.info("Host %s leaves the test channel to the master (%s), which scores it", cluster.host,
                 cluster.hosts[0])
    metrics.metrics_json("training", {
        "epochs": float(estimator.epochs_trained_),
        "update.time": 1e3 * (trained - started),
        "totaltime": 1e3 * (time.time() - started),
    }, start=started)


def _report(estimator: LinearLearner, channel: str, source, metrics, summary: bool, hosts=None) -> None:
    """Score `channel` with the final model and print its lines; `metrics` None: score only (a host
    other than the master takes part in the merged sums, and prints nothing)."""
    results = estimator.evaluate(source, hosts)
    if metrics is None:
        return
    if summary:
        for name, value in results.items():
            metrics.score_summary(channel, name, value)
    for name, value in results.items():
        metrics.quality(channel, name, value)
