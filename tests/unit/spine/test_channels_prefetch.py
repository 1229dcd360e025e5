"""`channels.prefetched`: a channel's blocks are read and decoded by a thread ahead of the training
loop; the loop sees the same blocks in the same order, meets an error where it would have without
the thread, and a loop that stops early stops the reading (the source is closed)."""
import threading
import time

import numpy as np
import pytest

from smalgos.channels import prefetched
from smalgos.errors import ClientError
from smalgos.formats.batch import Batch


def blocks(n, fail_at=None, log=None):
    try:
        for i in range(n):
            if i == fail_at:
                raise ClientError(f"record {i} is bad")
            if log is not None:
                log.append((i, threading.current_thread().name))
            yield Batch(np.full((2, 1), i, np.float32))
    finally:
        if log is not None:
            log.append(("closed", threading.current_thread().name))


def test_same_blocks_in_the_same_order_read_by_another_thread():
    log = []
    got = [int(b.features[0, 0]) for b in prefetched(blocks(50, log=log))]
    assert got == list(range(50))
    assert {name for _, name in log} == {"channel-reader"}


def test_an_error_arrives_after_the_blocks_before_it():
    seen = []
    with pytest.raises(ClientError, match="record 3 is bad"):
        for b in prefetched(blocks(10, fail_at=3)):
            seen.append(int(b.features[0, 0]))
    assert seen == [0, 1, 2]


def test_stopping_early_stops_the_reader_and_closes_the_source():
    log = []
    it = prefetched(blocks(10_000, log=log), depth=2)
    assert int(next(it).features[0, 0]) == 0
    it.close()
    deadline = time.monotonic() + 5
    while ("closed", "channel-reader") not in log and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ("closed", "channel-reader") in log
    assert len(log) < 10  # at most a few blocks read ahead, not the rest of the source
