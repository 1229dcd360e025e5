"""Training for IP Insights: `epochs` passes of `train`'s `entity,ip` lines, each followed by the
`validation` channel's AUC against fresh negatives.

The kit's streaming driver reads numeric records; these are strings, so this trainer reads the
channel's byte streams (`ChannelInput.streams()`, File or Pipe mode, gzip) through `records`, and
keeps the driver's conventions: progress and throughput per epoch, a stop at the next batch on
SIGTERM, a model that is not finite never saved, the model written by the master host only, a
`#metrics` timing line. Across hosts it keeps the driver's as well (`smalgos.training.streaming`):
each host reads its slice of `train` (`ChannelInput.sliced`), in step with the others
(`Cluster.lockstep`: a host whose pairs ran out steps with 0 pairs), and every step is one Adam
step of every host's batch (`IPInsights.partial_fit`), so every host holds the same network.
Log lines follow AWS's image:

    Epoch[0] Batch [1000]	Speed: 137748.76 samples/sec	binary_classification_accuracy=0.98 ...
    #quality_metric: host=algo-1, epoch=0, batch=1000 train binary_classification_accuracy <score>=0.98
    #quality_metric: host=algo-1, epoch=0, train binary_classification_accuracy <score>=0.98
    #quality_metric: host=algo-1, epoch=0, validation discriminator_auc <score>=0.97

Samples are pairs with their negatives (a batch of B pairs is B × (1 + R + S) samples), as in
MXNet's Speedometer; the throughput line counts pairs (records).
"""

from __future__ import annotations

import time

import numpy as np

from smalgos.distributed import joined
from smalgos.errors import ClientError
from smalgos.maths.device import pick_device

from .declaration import AUC
from .model import IPInsights
from .records import Pairs, channel_pairs, no_pairs

VALIDATION_SEED = 1  # one set of validation negatives for every epoch, so that epochs compare


def _metrics_text(values: dict[str, float]) -> str:
    return "\t".join(f"{k}={v:.6f}" for k, v in values.items())


def _read_validation(job) -> Pairs | None:
    channel = job.channel("validation")
    if channel is None:
        job.log.info("Validation data is not provided.")
        return None
    pairs = Pairs.concat(channel_pairs(channel, 100_000))
    if len(pairs) == 0:
        raise ClientError("Channel 'validation' holds no records")
    return pairs


def _epoch(job, est: IPInsights, epoch: int, train) -> int:
    """One pass over this host's part of `train`, in step with the other hosts; returns the pairs seen here."""
    interval = int(est.batch_metrics_publish_interval)
    negatives = 1 + int(est.random_negative_sampling_rate) + int(est.shuffled_negative_sampling_rate)
    seen, batch, tick, since = 0, 0, time.perf_counter(), 0
    batches = channel_pairs(train, int(est.mini_batch_size))
    for pairs in est.cluster.lockstep(batches, empty=no_pairs, stop=job.should_stop):
        est.partial_fit(pairs)
        seen, since, batch = seen + len(pairs), since + len(pairs), batch + 1
        if batch % interval == 0:
            now = time.perf_counter()
            values = est.take_interval_metrics()
            job.log.info("Epoch[%d] Batch [%d]\tSpeed: %.2f samples/sec\t%s", epoch, batch,
                         since * negatives / max(now - tick, 1e-9), _metrics_text(values))
            for name, value in values.items():
                job.metrics.quality("train", name, value, epoch=epoch, batch=batch)
            tick, since = now, 0
    if int(est.cluster.sum(np.array([seen], np.int64))[0][0]) == 0:
        raise ClientError(f"Channel 'train' holds no records{' on any host' if est.cluster.several else ''}")
    return seen


def train(job) -> None:
    est = IPInsights.from_hyperparameters(job.hyperparameters)
    with joined(job.resources, want_cuda=pick_device(est.device).type == "cuda") as cluster:
        est.cluster = cluster
        _train(job, est, job.channel("train").sliced(cluster.rank, cluster.size))


def _train(job, est: IPInsights, train) -> None:
    started = time.time()
    validation = _read_validation(job)
    timings = {"initialize.time": 0.0, "update.time": 0.0, "validation.time": 0.0}
    t0 = time.perf_counter()
    est.begin()
    timings["initialize.time"] += 1e3 * (time.perf_counter() - t0)
    epochs = est.passes()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        seen = _epoch(job, est, epoch, train)
        est.end_epoch()
        elapsed = time.perf_counter() - t0
        timings["update.time"] += 1e3 * elapsed
        job.log.info("Epoch[%d] Train-%s", epoch, _metrics_text(est.epoch_metrics_).replace("\t", "\tTrain-"))
        job.log.info("Epoch[%d] Time cost=%.3f", epoch, elapsed)
        for name, value in est.epoch_metrics_.items():
            job.metrics.quality("train", name, value, epoch=epoch)
        if validation is not None:
            t0 = time.perf_counter()
            auc = est.discriminator_auc(validation, VALIDATION_SEED)
            timings["validation.time"] += 1e3 * (time.perf_counter() - t0)
            job.metrics.quality("validation", AUC, auc, epoch=epoch)
        job.metrics.progress(100.0 * (epoch + 1) / epochs)
        job.metrics.throughput(seen / max(elapsed, 1e-9))
        if est.cluster.any(job.should_stop()):
            job.log.warning("Stopping early after %d pair(s) of epoch %d of %d", seen, epoch + 1, epochs)
            break
    est.finalize()
    est.check_finite_model("Channel 'train'")
    if job.resources.is_master:
        t0 = time.perf_counter()
        est.save(job.model_dir)
        timings["model.serialize.time"] = 1e3 * (time.perf_counter() - t0)
    else:
        job.log.info("Host %s is not the master (%s): the model is written by the master only",
                     job.resources.current_host, job.resources.master_host)
    job.metrics.metrics_json("training", timings, start=started)
