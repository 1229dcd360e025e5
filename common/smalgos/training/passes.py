"""Streamed passes over a channel, as the recordIO-family trainers (K-Means, PCA, k-NN) make them."""

from __future__ import annotations

import time
from typing import Callable

from ..errors import ClientError
from ..formats.batch import Batch
from ..maths.inputs import check_features


def stream(channel, batch_size: int, feature_dim: int, consume: Callable[[Batch], None],
           stop: Callable[[int], bool] | None = None) -> int:
    """Feed every mini-batch of `channel` to `consume`; return the number of records seen.

    Each batch's features are checked against `feature_dim` first. After each batch,
    `stop(records_seen_so_far)` may end the pass early. A channel without records is a ClientError.
    """
    seen = 0
    for batch in channel.batches(batch_size):
        check_features(batch.features, feature_dim, f"Channel '{channel.name}'")
        consume(batch)
        seen += len(batch)
        if stop is not None and stop(seen):
            break
    if seen == 0:
        raise ClientError(f"Channel '{channel.name}' holds no records")
    return seen


def one_pass(job, channel_name: str, batch_size: int, feature_dim: int,
             consume: Callable[[Batch], None]) -> int:
    """The single pass of a one-epoch trainer: `stream` over the channel, stopping early (with a
    warning) when the job is asked to stop, then the 100 % progress line and the pass's throughput
    line. Returns the number of records seen."""

    def stop(seen: int) -> bool:
        if job.should_stop():
            job.log.warning("Stopping early after %d records", seen)
            return True
        return False

    started = time.time()
    seen = stream(job.channel(channel_name), batch_size, feature_dim, consume, stop)
    job.metrics.progress(100.0)
    job.metrics.throughput(seen / max(time.time() - started, 1e-9))
    return seen


def score_test_channel(job, batch_size: int, feature_dim: int, consume: Callable[[Batch], None]) -> int | None:
    """`stream` the optional `test` channel through `consume`; the number of records scored, or None
    (after AWS's "Test data is not provided." line) when the job has no test channel."""
    test = job.channel("test")
    if test is None:
        job.log.info("Test data is not provided.")
        return None
    return stream(test, batch_size, feature_dim, consume)
