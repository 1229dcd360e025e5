"""The streaming training driver: what every recordIO-family trainer does around its maths.

`streaming_trainer(EstimatorClass, timings=...)` is an algorithm's whole `train`:

    train = streaming_trainer(WebScaleKMeans, timings={"update.time": ("update",), ...})

For a job it builds the estimator from the job's hyperparameters
(`StreamingEstimator.from_hyperparameters`), then

1. joins the job's other hosts (`smalgos.distributed.joined`; `SOLO` on one host) and hands the
   `Cluster` to the estimator (`estimator.cluster`), which merges its state across hosts itself;
2. passes over `train` (`estimator.passes()` of them) in mini-batches of `mini_batch_size`, each
   batch checked against `feature_dim` (and its labels, for a supervised core) and fed to
   `partial_fit`; after each pass `end_epoch`, its `epoch_metrics()` as per-epoch `train` lines,
   the progress and throughput lines, and a stop when SageMaker asked (SIGTERM);
3. `finalize` (a model that is not finite is a ClientError, never saved), the `train` channel's
   metrics (`training_metrics()`), `save` to the model dir (on the master host only: the first of
   resourceconfig.json's hosts);
4. the optional `test` channel through `test_scorer()` (with its labels when the core's
   `test_uses_labels`, default `uses_labels`, says so), on the master only: its quality lines,
   then AWS's `#test_score` summaries (or AWS's "Test data is not provided." line);
5. the `#metrics` timing line. The driver times its phases (`initialize`: the first mini-batch;
   `update`: the others; `finalize`; `save`; `test`); `timings` names the sums AWS's image prints,
   each the milliseconds of one or more phases.

Across hosts every host reads its slice of `train` (`ChannelInput.sliced`: its share of the
records when FullyReplicated, its own files when ShardedByS3Key) and the mini-batches go through
`Cluster.lockstep`: every host calls `partial_fit` as many times per pass as the others, a host
whose records ran out with an empty batch (0 rows of `feature_dim` dense float32 features, and 0
labels for a supervised core), so that its collectives meet the others'. `end_epoch`, `finalize`
and the metrics run on every host; a stop asked of any host stops all of them after the same pass.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Mapping, Sequence

import numpy as np

from ..distributed import joined
from ..errors import ClientError, InputError
from ..formats.batch import Batch
from ..maths.inputs import check_finite, check_labels, check_width

PHASES = ("initialize", "update", "finalize", "save", "test")


def checked_batches(channel, batch_size: int, feature_dim: int):
    """The mini-batches of `channel`, each checked: finite as the channel decodes them (the message
    names the file or FIFO and the line or record), then against `feature_dim`."""
    for batch in channel.batches(batch_size, check=check_finite):
        check_width(batch.features, feature_dim, f"Channel '{channel.name}'")
        yield batch


def stream(channel, batch_size: int, feature_dim: int, consume: Callable[[Batch], None]) -> int:
    """Feed every mini-batch of `channel` (`checked_batches`) to `consume`; return the number of
    records seen. A channel without records is a ClientError."""
    seen = 0
    for batch in checked_batches(channel, batch_size, feature_dim):
        consume(batch)
        seen += len(batch)
    if seen == 0:
        raise ClientError(f"Channel '{channel.name}' holds no records")
    return seen


class _Clock:
    """Milliseconds spent in each phase of the driver."""

    def __init__(self):
        self.ms: dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] += 1e3 * (time.perf_counter() - t0)

    def named(self, timings: Mapping[str, Sequence[str]]) -> dict[str, float]:
        return {name: sum(self.ms[p] for p in phases) for name, phases in timings.items()}


def streaming_trainer(estimator_class, timings: Mapping[str, Sequence[str]] | None = None):
    """The `train(job)` function of a streaming estimator. See the module docstring."""
    unknown = {p for phases in (timings or {}).values() for p in phases} - set(PHASES)
    if unknown:
        raise ValueError(f"unknown driver phases {sorted(unknown)}: the phases are {', '.join(PHASES)}")
    timings = dict(timings or {"update.time": ("initialize", "update"), "finalize.time": ("finalize",),
                               "model.serialize.time": ("save",)})

    def train(job) -> None:
        StreamingJob(job, estimator_class).run(timings)

    train.estimator_class = estimator_class
    return train


class StreamingJob:
    """One run of the driver: the job, its estimator and the clock."""

    def __init__(self, job, estimator_class):
        self.job = job
        self.hp = job.hyperparameters
        self.estimator = estimator_class.from_hyperparameters(self.hp)
        self.feature_dim = self.hp["feature_dim"]
        self.batch_size = self.hp["mini_batch_size"]
        self.clock = _Clock()
        self._first = True

    def _labels(self, batch: Batch, channel: str):
        return check_labels(batch.labels, f"Channel '{channel}'", needed_by=self.job.algorithm.name)

    def _fit(self, batch: Batch) -> None:
        phase, self._first = ("initialize" if self._first else "update"), False
        if not self.estimator.uses_labels:
            args = (batch.features,)
        elif len(batch):
            args = (batch.features, self._labels(batch, "train"))
        else:  # another host's step: this host has no records left
            args = (batch.features, batch.labels)
        with self.clock.phase(phase):
            try:
                self.estimator.partial_fit(*args)
            except InputError as exc:  # the estimator knows no channel: say which one
                raise InputError(f"Channel 'train': {exc.message}") from None

    def _empty(self) -> Batch:
        """The mini-batch of a host whose records have run out while others still have some."""
        labels = np.zeros(0, dtype=np.float32) if self.estimator.uses_labels else None
        return Batch(np.zeros((0, self.feature_dim), dtype=np.float32), labels)

    def _wants_cuda(self) -> bool:
        """Whether this host's estimator will compute on CUDA (asked only of a job across hosts)."""
        if self.job.resources.num_hosts == 1:
            return False
        from ..maths.device import pick_device  # torch: only for a job across hosts
        return pick_device(getattr(self.estimator, "device", None)).type == "cuda"

    def run(self, timings: Mapping[str, Sequence[str]]) -> None:
        with joined(self.job.resources, want_cuda=self._wants_cuda()) as cluster:
            self.estimator.cluster = cluster
            self._run(cluster, timings)

    def _pass(self, cluster, train) -> int:
        """One pass over this host's `train` records, in step with the other hosts: the records seen here."""
        seen = 0
        batches = checked_batches(train, self.batch_size, self.feature_dim)
        for batch in cluster.lockstep(batches, empty=self._empty, stop=self.job.should_stop):
            self._fit(batch)
            seen += len(batch)
        if int(cluster.sum(np.array([seen], dtype=np.int64))[0][0]) == 0:
            raise ClientError(f"Channel '{train.name}' holds no records{' on any host' if cluster.several else ''}")
        return seen

    def _run(self, cluster, timings: Mapping[str, Sequence[str]]) -> None:
        job, est, log = self.job, self.estimator, self.job.log
        started = time.time()
        passes = est.passes()
        if self.hp.get("epochs", passes) > passes:
            log.info("%s needs %d pass(es) over the data: epochs=%d is accepted, %d pass(es) are made",
                     job.algorithm.name, passes, self.hp["epochs"], passes)
        est.begin(self.feature_dim)
        train = job.channel("train").sliced(cluster.rank, cluster.size)
        for epoch in range(passes):
            pass_started = time.time()
            seen = self._pass(cluster, train)
            est.end_epoch()
            for name, value in est.epoch_metrics().items():
                job.metrics.quality("train", name, value, epoch=epoch)
            job.metrics.progress(100.0 * (epoch + 1) / passes)
            job.metrics.throughput(seen / max(time.time() - pass_started, 1e-9))
            if cluster.any(job.should_stop()):
                log.warning("Stopping early after %d record(s) of pass %d of %d", seen, epoch + 1, passes)
                break
        with self.clock.phase("finalize"):
            est.finalize()
        est.check_finite_model("Channel 'train'")
        final = est.training_metrics()  # on every host: a core may merge its sums across hosts here
        if job.resources.is_master:  # the job's final metrics are the master's lines
            for name, value in final.items():
                job.metrics.quality("train", name, value)
        if job.resources.is_master:
            with self.clock.phase("save"):
                est.save(job.model_dir)
            with self.clock.phase("test"):
                self._score_test()
        else:  # every host fits the same model; the job's model and test scores are the master's
            log.info("Host %s is not the master (%s): the model is written by the master only",
                     job.resources.current_host, job.resources.master_host)
            if job.channel("test") is not None:
                log.info("Host %s leaves the test channel to the master (%s), which scores it",
                         job.resources.current_host, job.resources.master_host)
        job.metrics.metrics_json("training", self.clock.named(timings), start=started)

    def _score_test(self) -> None:
        job = self.job
        test = job.channel("test")
        if test is None:
            job.log.info("Test data is not provided.")
            return
        scorer = self.estimator.test_scorer()
        if scorer is None:
            return
        labelled = self.estimator.test_uses_labels
        if labelled if labelled is not None else self.estimator.uses_labels:
            update = lambda batch: scorer.update(batch.features, self._labels(batch, "test"))  # noqa: E731
        else:
            update = lambda batch: scorer.update(batch.features, None)  # noqa: E731
        records = stream(test, self.batch_size, self.feature_dim, update)
        results = scorer.result(records)
        for name, value in results.items():
            job.metrics.quality("test", name, value)
        for name, value in results.items():
            job.metrics.score_summary("test", name, value)
