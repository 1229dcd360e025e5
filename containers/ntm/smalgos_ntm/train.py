"""Training for NTM: up to `epochs` passes over `train`, the `validation` loss after each, early
stopping (`tolerance`, `num_patience_epochs`) on it (else on the training loss), the best epoch's
weights saved, then the `test` channel's loss of that model.

Lines printed, in AWS's shapes (spec §6.4), epochs counted from 1:
    train Loss (name: value) total: 2.41, kld: 0.05, recons: 2.36, logppx: 2.42        every epoch
    #quality_metric: host=algo-1, epoch=3, train total_loss <loss>=2.41                 every epoch
    #quality_metric: host=algo-1, epoch=3, validation total_loss <loss>=2.40            every epoch
    #validation_score (3): 2.40
    patience losses:[...] min patience loss:... current loss:... absolute loss difference:...
    Bad epoch: loss has not improved (enough). Bad count:1
    Bad epochs exceeded patience. Stopping training early!
    Best model based on early stopping at epoch 9. Best loss: 2.39
    #quality_metric: host=algo-1, epoch=9, validation total_loss <loss>=2.39            the best epoch's, last
    Topics from epoch:final (num_topics:5) [wetc 0.43, tu 1.00]:   then the top words of each topic
                                                     (wetc: with vocab.txt; see coherence.py)
    #quality_metric: host=algo-1, test total_loss <loss>=...   and   #test_score (algo-1) : ('total_loss', ...)
    #progress_metric / #throughput_metric every epoch, and a `#metrics` timing line (Algorithm NTM).
Losses are per word (model.py). With `auxiliary/vocab.txt` topics print as words, else as word ids.

Several hosts train as one job (smalgos.distributed; AWS's image uses MXNet's parameter server):
each reads its part of `train` (FullyReplicated: every host-count-th record; ShardedByS3Key: its
own files), in step with the others, every step one step of all their mini-batches (model.py).
Every host evaluates the (replicated) validation data and prints the job's losses; the master
writes the model and scores the test channel.
"""

from __future__ import annotations

import time

import numpy as np

from smalgos.distributed import joined
from smalgos.errors import ClientError, InputError
from smalgos.maths.device import pick_device
from smalgos.training.streaming import checked_batches

from .coherence import WordVectorSample, topic_uniqueness, word_embedding_coherence
from .declaration import VOCABULARY_FILE
from .model import EpochReport, NeuralTopicModel

TOP_WORDS = 20


def vocabulary(job, feature_dim: int) -> list[str] | None:
    """The words of `auxiliary/vocab.txt` (one a line, line i = word i), or None without the channel."""
    if job.channel("auxiliary") is None:
        return None
    path = job.paths.channel_dir("auxiliary") / VOCABULARY_FILE
    if not path.is_file():
        raise ClientError(f"Channel 'auxiliary': {VOCABULARY_FILE} not found in {path.parent} (one word per line)")
    try:
        words = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ClientError(f"Channel 'auxiliary': {VOCABULARY_FILE} is not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start})") from None
    if len(words) != feature_dim:
        raise ClientError(f"Channel 'auxiliary': {VOCABULARY_FILE} holds {len(words)} word(s) but hyperparameter "
                          f"feature_dim is {feature_dim}: one word per line, one line per feature")
    return [w.strip() for w in words]


def train(job) -> None:
    est = NeuralTopicModel.from_hyperparameters(job.hyperparameters)
    with joined(job.resources, want_cuda=pick_device(est.device).type == "cuda") as cluster:
        est.cluster = cluster
        _train(job, est)


def _train(job, est: NeuralTopicModel) -> None:
    started = time.time()
    hp, log, metrics, cluster = job.hyperparameters, job.log, job.metrics, est.cluster
    feature_dim, batch = hp["feature_dim"], hp["mini_batch_size"]
    words = vocabulary(job, feature_dim)
    # WETC needs the words (as AWS's: vocab.txt given); its word vectors come from the training documents.
    sample = WordVectorSample() if words and cluster.is_master else None

    def source(name):
        channel = job.channel(name)
        if channel is None:
            return None
        if name == "train":
            channel = channel.sliced(cluster.rank, cluster.size)

        def batches():
            for b in checked_batches(channel, batch, feature_dim):
                if name == "train" and sample is not None:
                    sample.add(b.features)
                yield b.features
        return batches

    def on_epoch(r: EpochReport) -> None:
        for name, losses in (("train", r.train), ("validation", r.validation)):
            if losses is None:
                continue
            log.info("%s Loss (name: value) total: %.4f, kld: %.4f, recons: %.4f, logppx: %.4f", name,
                     losses["total_loss"], losses["kld"], losses["recons"], losses["logppx"])
            metrics.quality(name, "total_loss", losses["total_loss"], epoch=r.epoch)
        if r.validation is not None:
            log.info("#validation_score (%d): %.4f", r.epoch, r.validation["total_loss"])
        s = r.stopper
        window = s.losses[-(s.patience + 1):]
        log.info("patience losses:%s min patience loss:%.4f current loss:%.4f absolute loss difference:%.4f",
                 [round(v, 4) for v in window], min(window), window[-1], abs(window[-1] - s.best))
        if s.bad:
            log.info("Bad epoch: loss has not improved (enough). Bad count:%d", s.bad)
        if s.stop:
            log.info("Bad epochs exceeded patience. Stopping training early!")
        metrics.progress(100.0 * r.epoch / hp["epochs"])
        metrics.throughput(r.records / max(r.seconds, 1e-9))

    est.begin(feature_dim)
    trained_from = time.time()
    est.run_epochs(source("train"), source("validation"), names=("Channel 'train'", "Channel 'validation'"),
                   callback=on_epoch, should_stop=job.should_stop)
    if job.should_stop():
        log.warning("Stopped after epoch %d of %d: keeping the best epoch so far", est.epochs_trained_, hp["epochs"])
    est.finalize()
    est.check_finite_model("Channel 'train'")
    trained = time.time()
    log.info("Best model based on early stopping at epoch %d. Best loss: %.4f", est.best_epoch_, est.best_loss_)
    if job.channel("validation") is not None:
        metrics.quality("validation", "total_loss", est.best_loss_, epoch=est.best_epoch_)

    tops = [list(np.argsort(-row, kind="stable")[:min(TOP_WORDS, feature_dim)]) for row in est.topics()]
    wetc = f"wetc {word_embedding_coherence(tops, sample.vectors()):.2f}, " if sample is not None else ""
    log.info("Topics from epoch:final (num_topics:%d) [%stu %.2f]:", est.num_topics, wetc, topic_uniqueness(tops))
    for top in tops:
        log.info("%s", " ".join(words[w] if words else str(w) for w in top))

    if not cluster.is_master:
        log.info("Host %s is not the master (%s): the model is written and tested by the master only",
                 cluster.host, cluster.hosts[0])
        return
    log.info("Serializing model to %s", job.model_dir / "model_algo-1")
    est.save(job.model_dir)
    saved = time.time()
    test = source("test")
    if test is None:
        log.info("Test data is not provided.")
    else:
        try:
            loss = est.evaluate(test(), "the test data")["total_loss"]
        except InputError as exc:
            raise InputError(f"Channel 'test': {exc.message}") from None
        metrics.quality("test", "total_loss", loss)
        metrics.score_summary("test", "total_loss", loss)
    metrics.metrics_json("training", {
        "epochs": float(est.epochs_trained_), "initialize.time": 1e3 * (trained_from - started),
        "update.time": 1e3 * (trained - trained_from), "model.serialize.time": 1e3 * (saved - trained),
        "totaltime": 1e3 * (time.time() - started)}, start=started)


train.estimator_class = NeuralTopicModel
