"""Training for Object2Vec: the `train` channel's pairs (and `validation`'s, `test`'s) read whole
from their JSON Lines files, pretrained token embeddings from `auxiliary`, up to `epochs` passes
with early stopping on the validation loss (else the training loss), the best epoch's weights
saved, then the `test` channel's metrics of that model.

Lines printed, in AWS's shapes (spec §5.4), epochs counted from 1:
    #quality_metric: host=algo-1, epoch=3, train accuracy <score>=0.91            every epoch
    #quality_metric: host=algo-1, epoch=3, train cross_entropy <loss>=0.24
    #quality_metric: host=algo-1, epoch=3, validation accuracy <score>=0.90       every epoch
    #quality_metric: host=algo-1, epoch=3, validation cross_entropy <loss>=0.26
    #progress_metric / #throughput_metric                                          every epoch
    Best model based on early stopping at epoch 5. Best loss: 0.25
    #quality_metric: host=algo-1, epoch=5, validation ...                          the best epoch's, last
    #quality_metric: host=algo-1, test accuracy <score>=0.89                       and test cross_entropy
(mean_squared_error in place of accuracy and cross_entropy for output_layer=mean_squared_error),
and a `#metrics` timing line (Algorithm Object2Vec).

One host: AWS trains Object2Vec on a single instance (several GPUs at most); a job of several
hosts is a ClientError.
"""

from __future__ import annotations

import time

from smalgos.errors import ClientError

from .declaration import ignored_enc1_settings
from .model import EpochReport, Object2Vec
from .pretrained import pretrained_table
from .records import read_pairs


def channel_files(channel):
    """(source, bytes) of every file of a File-mode channel (gzip read transparently)."""
    for source, stream in channel.streams():
        yield source, stream.read()


def read_channel(job, name: str, est: Object2Vec):
    channel = job.channel(name)
    if channel is None:
        return None
    pairs = read_pairs(channel_files(channel), est.schema(), name)
    if pairs is None:
        raise ClientError(f"Channel {name!r}: its files hold no records")
    job.log.info("Channel %s: %d pairs", name, len(pairs))
    return pairs


def pretrained_tables(job, est: Object2Vec) -> dict:
    folder = job.paths.channel_dir("auxiliary") if job.channel("auxiliary") is not None else None
    tables = {}
    for side, spec in zip(("enc0", "enc1"), est.specs()):
        if side == "enc1" and est.tied_token_embedding_weight:
            if spec.pretrained_embedding_file:
                job.log.info("enc1 shares enc0's token embedding table (tied_token_embedding_weight): "
                             "enc1's pretrained file is not read")
            continue
        table = pretrained_table(spec, side, folder, job.log)
        if table is not None:
            tables[side] = table
    return tables


def train(job) -> None:
    started = time.time()
    hp, log, metrics = job.hyperparameters, job.log, job.metrics
    job.require_one_host("Object2Vec")
    est = Object2Vec.from_hyperparameters(hp)
    for name in ignored_enc1_settings(hp):
        log.warning("Hyperparameter %s is not used: enc1_network=enc0 gives enc1 enc0's settings", name)
    for side, spec in zip(("enc0", "enc1"), est.specs()):
        log.info("%s: %s", side, spec.describe())
    tables = pretrained_tables(job, est)
    train_pairs = read_channel(job, "train", est)
    validation = read_channel(job, "validation", est)
    test = read_channel(job, "test", est)

    best_validation: dict = {}  # the best epoch's validation metrics, printed again last (HPO reads the last)

    def on_epoch(r: EpochReport) -> None:
        if r.validation is not None and r.epoch == r.stopper.best_epoch:
            best_validation.update(r.validation)
        for channel, values in (("train", r.train), ("validation", r.validation)):
            for name, value in (values or {}).items():
                metrics.quality(channel, name, value, epoch=r.epoch)
        s = r.stopper
        if s.bad:
            log.info("Epoch %d did not lower the loss by more than %g. Bad count: %d", r.epoch, s.tolerance, s.bad)
        if s.stop:
            log.info("Bad epochs exceeded early_stopping_patience. Stopping training early!")
        metrics.progress(100.0 * r.epoch / hp["epochs"])
        metrics.throughput(r.records / max(r.seconds, 1e-9))

    trained_from = time.time()
    est.fit(train_pairs, validation=validation, pretrained=tables, callback=on_epoch, should_stop=job.should_stop)
    if job.should_stop():
        log.warning("Stopped after epoch %d of %d: keeping the best epoch so far", est.epochs_trained_, hp["epochs"])
    est.check_finite_model("Channel 'train'")
    trained = time.time()
    log.info("Best model based on early stopping at epoch %d. Best loss: %.6f", est.best_epoch_, est.best_loss_)
    for name, value in best_validation.items():
        metrics.quality("validation", name, value, epoch=est.best_epoch_)
    log.info("Serializing model to %s", job.model_dir / "model_algo-1")
    est.save(job.model_dir)
    saved = time.time()
    if test is None:
        log.info("Test data is not provided.")
    else:
        for name, value in est.evaluate(test).items():
            metrics.quality("test", name, value)
            metrics.score_summary("test", name, value)
    metrics.metrics_json("training", {
        "epochs": float(est.epochs_trained_), "initialize.time": 1e3 * (trained_from - started),
        "update.time": 1e3 * (trained - trained_from), "model.serialize.time": 1e3 * (saved - trained),
        "totaltime": 1e3 * (time.time() - started)}, start=started)


train.estimator_class = Object2Vec
