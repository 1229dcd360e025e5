"""Training for Seq2Seq: the `vocab` channel's two vocabularies, the `train` and `validation`
channels' records, Sockeye 1's training loop (model.py), the best checkpoint saved.

Lines printed (AWS publishes no Seq2Seq log format; these follow its first-party images):
    Checkpoint [3] Epoch=2 Updates=3000 Train-perplexity=4.1 Validation-perplexity=3.9 ... lr=0.0003
    #quality_metric: host=algo-1, epoch=2, train perplexity <loss>=4.1            (training_metric)
    #quality_metric: host=algo-1, epoch=2, validation perplexity <loss>=3.9       every checkpoint
    #quality_metric: host=algo-1, epoch=2, validation accuracy <score>=0.61
    #quality_metric: host=algo-1, epoch=2, validation bleu <score>=23.4           with bleu_sample_size
    #throughput_metric: host=algo-1, train throughput=850.2 records/second        (sentence pairs)
    #progress_metric: host=algo-1, completed 40 % of epochs        with max_num_epochs or max_num_batches
    Best checkpoint [2] (epoch 2, 2000 updates): ...      then its validation lines again, last
One host only (AWS trains Seq2Seq on one GPU instance, several GPUs at most). On CPU a line
says that SageMaker would need a GPU instance type; the job trains anyway.
"""

from __future__ import annotations

import time

from smalgos.errors import ClientError, InputError

from .data import read_pairs
from .declaration import VOCAB_SOURCE, VOCAB_TARGET
from .model import Checkpoint, Seq2Seq
from .vocab import Vocabulary

GPU_NOTE = ("Training on CPU: AWS's seq2seq trains on GPU instance types only (ml.p2, ml.p3, ml.g4dn, ml.g5); "
            "this image trains on CPU for local use, but on SageMaker this job would need a GPU instance type")


def vocabularies(job) -> tuple[Vocabulary, Vocabulary]:
    folder = job.paths.channel_dir("vocab")
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    out = []
    for name in (VOCAB_SOURCE, VOCAB_TARGET):
        path = folder / name
        if not path.is_file():
            raise ClientError(f"Channel 'vocab': {name} not found in {folder} (files there: "
                              f"{', '.join(found) or 'none'}); the channel holds {VOCAB_SOURCE} and {VOCAB_TARGET}")
        try:
            out.append(Vocabulary.from_json(path))
        except ClientError as exc:
            raise ClientError(f"Channel 'vocab': {exc.message}") from None
    return out[0], out[1]


def train(job) -> None:
    import torch

    from smalgos.maths.device import pick_device

    started = time.time()
    hp, log, metrics = job.hyperparameters, job.log, job.metrics
    job.require_one_host("Seq2Seq")
    device = pick_device()
    if device.type == "cpu":
        log.info(GPU_NOTE)
    else:
        log.info("Training on %s (%s)", device, torch.cuda.get_device_name(device))
    sv, tv = vocabularies(job)
    log.info("Vocabulary sizes: source %d, target %d", len(sv), len(tv))
    data = {}
    for name in ("train", "validation"):
        files = job.channel(name).files()
        if not files:
            raise ClientError(f"Channel '{name}': no files in {job.paths.channel_dir(name)}")
        pairs = read_pairs(files, name, len(sv), len(tv), hp["max_seq_len_source"], hp["max_seq_len_target"])
        if not len(pairs):
            raise ClientError(f"Channel '{name}': the records hold no sentence pairs (both sides non-empty)")
        log.info("Channel '%s': %d sentence pairs from %d file(s); %d truncated to max_seq_len_source=%d / "
                 "max_seq_len_target=%d; %d skipped (an empty side)", name, len(pairs), len(files), pairs.truncated,
                 hp["max_seq_len_source"], hp["max_seq_len_target"], pairs.skipped)
        data[name] = pairs

    est = Seq2Seq.from_hyperparameters(hp)

    def on_checkpoint(c: Checkpoint) -> None:
        held = " ".join(f"Validation-{k}={v:.4f}" for k, v in c.validation.items())
        log.info("Checkpoint [%d] Epoch=%d Updates=%d Train-%s=%.4f %s lr=%.3g%s", c.number, c.epoch, c.updates,
                 hp["training_metric"], c.train[hp["training_metric"]], held, c.learning_rate,
                 " (best so far)" if c.improved else "")
        metrics.quality("train", hp["training_metric"], c.train[hp["training_metric"]], epoch=c.epoch)
        for name, value in c.validation.items():
            metrics.quality("validation", name, value, epoch=c.epoch)
        seconds = max(c.seconds, 1e-9)
        metrics.throughput(c.sentences / seconds)
        log.info("Speed: %.1f sentence pairs/s, %.1f target tokens/s", c.sentences / seconds, c.tokens / seconds)
        bounds = [b for b in (est.batches_per_epoch_ * (hp["max_num_epochs"] or 0), hp["max_num_batches"]) if b > 0]
        if bounds:  # without max_num_epochs or max_num_batches the end is early stopping's: no percentage
            metrics.progress(min(100.0, 100.0 * c.updates / min(bounds)))

    try:
        est.fit(data["train"], data["validation"], sv, tv, callback=on_checkpoint, should_stop=job.should_stop)
    except InputError as exc:
        raise InputError(f"Channel 'train': {exc.message}") from None
    trained = time.time()
    number, epoch, updates, held = est.best_checkpoint_
    log.info("Training ended after %d epoch(s), %d updates; best checkpoint [%d] (epoch %d, %d updates) on %s",
             est.epochs_trained_, est.updates_, number, epoch, updates, hp["optimized_metric"])
    for name, value in held.items():
        metrics.quality("validation", name, value, epoch=epoch)
    log.info("Serializing model to %s", job.model_dir)
    est.save(job.model_dir)
    metrics.metrics_json("training", {
        "epochs": float(est.epochs_trained_), "updates": float(est.updates_),
        "update.time": 1e3 * (trained - started), "totaltime": 1e3 * (time.time() - started)}, start=started)
