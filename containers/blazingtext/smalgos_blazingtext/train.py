"""BlazingText's trainer: the `train` channel's text (File or Pipe mode, gzip, RecordIO-wrapped
objects: `ChannelInput.streams()`, checked as UTF-8 by `smalgos.formats.text.copy_text`) into one
scratch corpus file, Word2Vec on it (`word2vec.Word2VecCore`), the artifacts, and with
`evaluation=True` the WordSim-353 score (`eval.json`, `#mean_rho:`).

Log lines as AWS's image prints them: `Running single machine CPU BlazingText training using
skipgram mode.`, `##### Alpha: ...  Progress: ...%  Million Words/sec: ... #####` after each
epoch, `Training finished.`, `Average throughput in Million words/sec: ...`, `Total training time
in seconds: ...`, then `Evaluating word embeddings....`, `Vectors read from: .../vectors.txt`, the
evaluation's JSON and `#mean_rho: <rho>`. SIGTERM stops the job at the next epoch's end.

Supervised mode (`supervised.SupervisedCore`, torch, on the GPU when there is one): the `train`
and optional `validation` channels' labelled lines (`__label__` tokens, or the augmented
manifest's JSON Lines `{"source", "label"}`), `model.bin` in fastText's format, then AWS's lines:
`-------------- End of epoch: N`, with early stopping `Validation accuracy: ...` and `Validation
accuracy improved! Storing best weights...`, the Alpha/Progress line, `Training finished.`, the
throughput and time, `#train_accuracy: ...`, `Number of train examples: ...`,
`#validation_accuracy: ...`, `Number of validation examples: ...`.

batch_skipgram (`batch_skipgram.BatchSkipgramCore`, torch: negative samples shared by a batch of
words, so that the update is a matrix product; on the GPU when there is one): the same artifacts,
lines and evaluation as cbow and skipgram, on one instance or on several as one job (AWS's
`Running distributed CPU BlazingText training using batch_skipgram on N hosts.`): every host
holds the whole FullyReplicated corpus (ShardedByS3Key is refused: the vocabulary must be the
same everywhere) and trains on its share of the sentences, the hosts' changes to the matrices
are summed across hosts every few steps and at each epoch's end, and the master writes the
artifacts and evaluates them.

Modes here: cbow, skipgram (with or without subwords), batch_skipgram and supervised, on one
instance, as AWS runs them; batch_skipgram also on several instances (the only mode AWS runs on
several; the others refuse a job of more than one host with a ClientError).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from smalgos.channels import ChannelInput
from smalgos.distributed import joined
from smalgos.errors import ClientError, TrainingStopped
from smalgos.formats.media import JSONLINES
from smalgos.formats.text import TextStats, copy_text
from smalgos.maths.device import pick_device
from smalgos.training.job import TrainingJob

from .batch_skipgram import BatchSkipgramCore
from .declaration import (
    BATCH_SKIPGRAM, MEAN_RHO, SUPERVISED, TRAIN_ACCURACY, VALIDATION_ACCURACY, metric_line,
)
from .evaluation import EVAL_FILE, evaluate
from .fasttext_format import LABEL_PREFIX
from .supervised import SupervisedCore, tokenize
from .word2vec import VECTORS_TXT, EpochCallback, Word2VecCore, cpu_count, read_word2vec_text

log = logging.getLogger("smalgos")


def read_corpus(channel: ChannelInput, out_path: Path) -> TextStats:
    """Every text of `channel` (one pass: its files in order, or Pipe mode's FIFO) into `out_path`."""
    stats = TextStats()
    with open(out_path, "wb") as out:
        for source, stream in channel.streams():
            copy_text(stream, out, source, stats)
    if not stats.bytes or not _has_token(out_path):
        raise ClientError(f"Channel {channel.name!r}: no text found (expected one sentence per line, "
                          f"tokens separated by spaces, in {channel.paths.channel_dir(channel.name)}"
                          f"{' (Pipe mode)' if channel.is_pipe else ''})")
    return stats


def _has_token(path: Path) -> bool:
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            if chunk.split():
                return True
    return False


def _check_job(job: TrainingJob, mode: str) -> None:
    hosts = job.resources.hosts
    if mode != BATCH_SKIPGRAM:
        job.require_one_host(f"BlazingText mode {mode}", f"AWS runs only {BATCH_SKIPGRAM} on several")
    if len(hosts) > 1 and job.channel("train").config.distribution != "FullyReplicated":
        raise ClientError(f"Channel 'train': mode {BATCH_SKIPGRAM} on several hosts reads a FullyReplicated channel "
                          f"(every host holds the whole corpus, and the algorithm splits its sentences between "
                          f"the hosts), not {job.channel('train').config.distribution}")
    if mode == SUPERVISED:
        if job.hyperparameters["early_stopping"] and job.channel("validation") is None:
            raise ClientError("Hyperparameter early_stopping: early stopping needs a validation channel "
                              "(it stops when validation accuracy stops improving)")
        return
    if job.channel("train").content_type == JSONLINES:
        raise ClientError(f"Channel 'train': {JSONLINES} (an augmented manifest of labelled lines) is read in mode "
                          f"{SUPERVISED} only; mode {mode} reads text/plain")
    if job.channel("validation") is not None:
        raise ClientError(f"Channel 'validation' is read in mode {SUPERVISED} only; mode {mode} (Word2Vec) "
                          "takes the train channel alone")


def train(job: TrainingJob) -> None:
    hp = job.hyperparameters
    mode = hp["mode"]
    _check_job(job, mode)
    if mode == SUPERVISED:
        train_supervised(job)
        return
    if mode == BATCH_SKIPGRAM:
        train_batch_skipgram(job)
        return
    log.info("Running single machine CPU BlazingText training using %s mode.", mode)
    logging.getLogger("gensim").setLevel(logging.WARNING)  # AWS's log lines, not gensim's own
    core = Word2VecCore.from_hyperparameters(hp, workers=cpu_count())
    with tempfile.TemporaryDirectory(prefix="blazingtext-") as scratch:
        corpus = Path(scratch) / "corpus.txt"
        stats = read_corpus(job.channel("train"), corpus)
        log.info("Read %d lines (%d bytes) of training text", stats.lines, stats.bytes)
        core.fit(corpus, callbacks=[EpochCallback(_epoch_lines(job, hp["epochs"]))])
    vocabulary = len(core.vectors_)
    log.info("Number of words: %d, vocabulary: %d words (min_count=%d)", core.words_, vocabulary, hp["min_count"])
    log.info("Training finished.")
    log.info("Average throughput in Million words/sec: %.2f", core.words_per_second_ / 1e6)
    log.info("Total training time in seconds: %.2f", core.train_seconds_)
    core.save(job.model_dir)
    if hp["evaluation"]:
        evaluate_vectors(job, job.model_dir / VECTORS_TXT)


def train_batch_skipgram(job: TrainingJob) -> None:
    hp = job.hyperparameters
    device = pick_device(job.env.device)
    with joined(job.resources, want_cuda=device.type == "cuda") as cluster:
        kind = "GPU" if device.type == "cuda" else "CPU"
        if cluster.several:
            log.info("Running distributed %s BlazingText training using %s on %d hosts.", kind, BATCH_SKIPGRAM,
                     cluster.size)
        else:
            log.info("Running single machine %s BlazingText training using %s mode.", kind, BATCH_SKIPGRAM)
        logging.getLogger("gensim").setLevel(logging.WARNING)
        core = BatchSkipgramCore.from_hyperparameters(hp, device=device, cluster=cluster)
        with tempfile.TemporaryDirectory(prefix="blazingtext-") as scratch:
            corpus = Path(scratch) / "corpus.txt"
            stats = read_corpus(job.channel("train"), corpus)
            log.info("Read %d lines (%d bytes) of training text", stats.lines, stats.bytes)
            core.fit(corpus, on_epoch=_epoch_lines(job, hp["epochs"], stop=False), should_stop=job.should_stop)
        if core.stopped_:
            raise TrainingStopped(f"Stopped after epoch {core.epochs_run_} of {hp['epochs']}")
        log.info("Number of words: %d, vocabulary: %d words (min_count=%d)", core.words_, len(core.vectors_),
                 hp["min_count"])
        log.info("Training finished.")
        log.info("Average throughput in Million words/sec: %.2f", core.words_per_second_ / 1e6)
        log.info("Total training time in seconds: %.2f", core.train_seconds_)
        if not cluster.is_master:
            log.info("Host %s is not the master (%s): the model is written by the master only", cluster.host,
                     job.resources.master_host)
            return
        core.save(job.model_dir)
    if hp["evaluation"]:
        evaluate_vectors(job, job.model_dir / VECTORS_TXT)


def _epoch_lines(job: TrainingJob, epochs: int, stop: bool = True):
    """The per-epoch line's callback; with `stop`, SIGTERM ends the training after the epoch
    (raises TrainingStopped; batch_skipgram's hosts agree on stopping themselves)."""
    started = time.perf_counter()

    def on_epoch(epoch: int, model) -> None:
        seconds = max(time.perf_counter() - started, 1e-9)
        words = model.corpus_total_words * (epoch + 1)
        progress = (epoch + 1) / epochs  # the rate decays linearly from alpha to min_alpha
        alpha = model.alpha - (model.alpha - model.min_alpha) * progress
        log.info("##### Alpha: %.4f  Progress: %.2f%%  Million Words/sec: %.2f #####",
                 alpha, 100.0 * progress, words / seconds / 1e6)
        if stop and job.should_stop() and epoch + 1 < epochs:
            raise TrainingStopped(f"Stopped after epoch {epoch + 1} of {epochs}")

    return on_epoch


def evaluate_vectors(job: TrainingJob, vectors_file: Path) -> dict:
    """Score `vectors_file` (as written) on WordSim-353: eval.json beside it, the `#mean_rho:` line."""
    log.info("Evaluating word embeddings....")
    words, vectors = read_word2vec_text(vectors_file)
    log.info("Vectors read from: %s", vectors_file)
    result = evaluate(words, vectors)
    (vectors_file.parent / EVAL_FILE).write_text(json.dumps(result), encoding="utf-8")
    log.info("%s", json.dumps(result))
    if result["mean_rho"] is None:
        log.warning("No word-similarity score: fewer than two WordSim-353 pairs have both words in the "
                    "vocabulary, so train:mean_rho is not reported")
    else:
        _print_metric(job, MEAN_RHO, result["mean_rho"])
    return result


# -- supervised ---------------------------------------------------------------------------------

def read_labelled_lines(channel: ChannelInput) -> list[list[str]]:
    """The channel's lines as token lists: `text/plain` lines with `__label__` tokens, or the
    augmented manifest's JSON Lines `{"source": "...", "label": 3}` (or a list of labels), whose
    labels become `__label__3` tokens."""
    with tempfile.TemporaryDirectory(prefix="blazingtext-") as scratch:
        path = Path(scratch) / f"{channel.name}.txt"
        read_corpus(channel, path)
        with open(path, encoding="utf-8") as f:
            if channel.content_type == JSONLINES:
                return [_manifest_line(line, number, channel) for number, line in enumerate(f, start=1)
                        if line.strip()]
            return [tokenize(line) for line in f]


def _manifest_line(line: str, number: int, channel: ChannelInput) -> list[str]:
    where = f"Channel {channel.name!r}: line {number} of the augmented manifest"
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ClientError(f"{where} is not JSON: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("source"), str) or "label" not in record:
        raise ClientError(f'{where}: expected {{"source": "text", "label": 1}} (label an integer or a list of them)')
    labels = record["label"] if isinstance(record["label"], list) else [record["label"]]
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, (int, str)) or (isinstance(label, str) and
                                                                           not label.strip().isdigit()):
            raise ClientError(f"{where}: label {label!r} is not an integer")
    return [f"{LABEL_PREFIX}{int(label)}" for label in labels] + tokenize(record["source"])


def train_supervised(job: TrainingJob) -> None:
    hp = job.hyperparameters
    core = SupervisedCore.from_hyperparameters(hp, device=job.env.device)
    device = pick_device(job.env.device)
    log.info("Running single machine %s BlazingText training using supervised mode.",
             "GPU" if device.type == "cuda" else "CPU")
    train_lines = read_labelled_lines(job.channel("train"))
    validation = job.channel("validation")
    validation_lines = read_labelled_lines(validation) if validation is not None else None

    def on_epoch(epoch: int, info: dict) -> bool:
        log.info("-------------- End of epoch: %d", epoch + 1)
        if info["validation_accuracy"] is not None:
            log.info("Validation accuracy: %f", info["validation_accuracy"])
            if info["improved"]:
                log.info("Validation accuracy improved! Storing best weights...")
            else:
                log.info("Validation accuracy has not improved for this epoch.")
        log.info("##### Alpha: %.4f  Progress: %.2f%%  Million Words/sec: %.2f #####",
                 info["alpha"], 100.0 * info["progress"], info["words_per_second"] / 1e6)
        return job.should_stop()

    core.fit(train_lines, validation_lines, on_epoch=on_epoch)
    if core.epochs_run_ < hp["epochs"] and not job.should_stop():
        log.info("Reached patience. Stopping early: the best validation accuracy was at epoch %d",
                 core.best_epoch_ + 1)
    log.info("Training finished.")
    log.info("Average throughput in Million words/sec: %.2f",
             core.tokens_ * core.epochs_run_ / max(core.train_seconds_, 1e-9) / 1e6)
    log.info("Total training time in seconds: %.2f", core.train_seconds_)
    core.save(job.model_dir)
    _print_metric(job, TRAIN_ACCURACY, core.accuracy(train_lines))
    log.info("Number of train examples: %d", len(train_lines))
    if validation_lines is not None:
        _print_metric(job, VALIDATION_ACCURACY, core.accuracy(validation_lines))
        log.info("Number of validation examples: %d", len(validation_lines))


def _print_metric(job: TrainingJob, name: str, value: float) -> None:
    if value != value:  # NaN: no labelled line
        log.warning("%s not reported: no line of the channel has a label", name)
        return
    sys.stdout.write(metric_line(job.algorithm, name, value) + "\n")
    sys.stdout.flush()
