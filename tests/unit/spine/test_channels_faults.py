"""Faults of a channel's bytes: Pipe mode FIFOs nobody writes or whose writer stalls, a stop request
while waiting, and corrupt or truncated gzip files. Every wait is bounded; the user's data is named."""

import contextlib
import gzip
import os
import threading
import time
from pathlib import Path

import pytest

from smalgos.channels import ChannelInput
from smalgos.config import ChannelConfig
from smalgos.declaration import Channel
from smalgos.errors import ClientError, PlatformError, TrainingStopped
from smalgos.localjob import LocalJob
from smalgos.training import runner
from smalgos.training.runner import run_training

TRAIN_CSV = b"0,0,0\n1,5,5\n0,1,0\n1,4,5\n"
PIPE = {"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}}


def make_job(tmp_path, channels=None, files=None):
    job = LocalJob(tmp_path)
    job.write_config({"num_classes": 2}, channels or {"train": {"ContentType": "text/csv"}})
    for (ch, name), data in (files or {}).items():
        job.add_file(ch, name, data)
    return job


def run(job):
    return run_training("test-centroid", job.paths, install_signal_handler=False)


class StallingWriter:
    """Opens the FIFO for writing, writes `data`, then holds it open without writing until released."""

    def __init__(self, fifo: Path, data: bytes):
        self.fifo, self.data = fifo, data
        self.release = threading.Event()
        os.mkfifo(fifo)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            with open(self.fifo, "wb", buffering=0) as out:  # blocks until the reader opens
                out.write(self.data)
                self.release.wait(30)
        except BrokenPipeError:
            pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        try:  # a writer still waiting for a reader that never came
            os.close(os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            pass
        self.thread.join(10)


def test_pipe_fifo_nobody_writes_fails_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SMALGOS_PIPE_WAIT_SECONDS", "1")
    job = make_job(tmp_path, PIPE)
    fifo = job.paths.channel_fifo("train", 0)
    os.mkfifo(fifo)
    started = time.monotonic()
    assert run(job) == 1
    assert time.monotonic() - started < 5
    first = job.failure.splitlines()[0]
    assert first.startswith("PlatformError: Channel 'train': ")
    assert str(fifo) in first and "SMALGOS_PIPE_WAIT_SECONDS" in first


def test_pipe_writer_that_stalls_mid_record_fails_naming_the_fifo(tmp_path, monkeypatch):
    monkeypatch.setenv("SMALGOS_PIPE_WAIT_SECONDS", "1")
    job = make_job(tmp_path, PIPE)
    fifo = job.paths.channel_fifo("train", 0)
    started = time.monotonic()
    with StallingWriter(fifo, b"0,0,0\n1,5"):  # one record and a half, then nothing
        assert run(job) == 1
    assert time.monotonic() - started < 5
    first = job.failure.splitlines()[0]
    assert str(fifo) in first and "stalled" in first and "SMALGOS_PIPE_WAIT_SECONDS" in first


@pytest.mark.parametrize("writer", ["none", "stalled"])
def test_stop_request_while_waiting_on_a_pipe_exits_143(tmp_path, monkeypatch, writer):
    monkeypatch.setenv("SMALGOS_PIPE_WAIT_SECONDS", "60")
    events = []
    from_config = runner.TrainingJob.from_config

    def capture(*args, **kwargs):  # the runner's stop event is what SIGTERM sets
        job = from_config(*args, **kwargs)
        events.append(job.stop_event)
        return job

    monkeypatch.setattr(runner.TrainingJob, "from_config", capture)
    job = make_job(tmp_path, PIPE)
    fifo = job.paths.channel_fifo("train", 0)
    stopped_at = []

    def stop_soon():
        time.sleep(0.5)
        stopped_at.append(time.monotonic())
        events[0].set()

    if writer == "stalled":
        waiting = StallingWriter(fifo, b"0,0,0\n1,5")
    else:
        os.mkfifo(fifo)
        waiting = contextlib.nullcontext()
    with waiting:
        threading.Thread(target=stop_soon, daemon=True).start()
        assert run(job) == 143
        assert time.monotonic() - stopped_at[0] < 2
    assert job.failure.startswith("Stopped: the job received SIGTERM")


def _pipe_channel(tmp_path, wait, should_stop=lambda: False):
    job = make_job(tmp_path, PIPE)
    ch = ChannelInput(Channel("train"), ChannelConfig("train", "Pipe", "text/csv"), job.paths, 1,
                      should_stop=should_stop, pipe_wait_seconds=wait)
    return job, ch


def test_channel_input_honours_should_stop_while_waiting_for_a_writer(tmp_path):
    stop = threading.Event()
    job, ch = _pipe_channel(tmp_path, 60, stop.is_set)
    os.mkfifo(job.paths.channel_fifo("train", 0))
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(TrainingStopped):
        list(ch.batches(10))
    assert time.monotonic() - started < 2


def test_pipe_writer_that_closes_without_data_ends_the_pass(tmp_path):
    """EOF still ends a pass, also when the writer sends nothing at all."""
    job, ch = _pipe_channel(tmp_path, 5)
    fifo = job.paths.channel_fifo("train", 0)
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "wb"):
            pass

    threading.Thread(target=writer, daemon=True).start()
    started = time.monotonic()
    assert [s.read() for _, s in ch.streams()] == [b""]
    assert time.monotonic() - started < 2


def test_pipe_stream_reads_everything_until_eof(tmp_path):
    job, ch = _pipe_channel(tmp_path, 5)
    fifo = job.paths.channel_fifo("train", 0)
    os.mkfifo(fifo)
    data = os.urandom(3 << 20)

    def writer():
        with open(fifo, "wb") as out:
            for i in range(0, len(data), 100_000):
                out.write(data[i:i + 100_000])
                if i == 1_000_000:
                    out.flush()
                    time.sleep(0.3)  # a pause shorter than the wait is fine

    threading.Thread(target=writer, daemon=True).start()
    (source, stream), = list((s, st.read()) for s, st in ch.streams())
    assert source == str(fifo) and stream == data


def test_pipe_wait_error_is_a_platform_error(tmp_path):
    job, ch = _pipe_channel(tmp_path, 0.3)
    os.mkfifo(job.paths.channel_fifo("train", 0))
    with pytest.raises(PlatformError, match="SMALGOS_PIPE_WAIT_SECONDS"):
        list(ch.batches(10))


GZ = gzip.compress(TRAIN_CSV * 500)


@pytest.mark.parametrize("data", [GZ[:len(GZ) // 2],  # truncated: EOFError from gzip
                                  b"\x1f\x8b" + b"garbage, not deflate" * 10,  # BadGzipFile
                                  GZ[:10] + b"\xff" * 200],  # valid header, corrupt deflate: zlib.error
                         ids=["truncated", "magic-then-garbage", "corrupt-deflate"])
def test_corrupt_gzip_file_is_a_client_error_naming_it(tmp_path, data):
    job = make_job(tmp_path, files={("train", "a.csv"): TRAIN_CSV, ("train", "b/part-1.csv.gz"): data})
    path = job.paths.channel_dir("train") / "b/part-1.csv.gz"
    assert run(job) == 1
    first = job.failure.splitlines()[0]
    assert first.startswith(f"ClientError: Channel 'train': {path}: "), first
    assert "gzip" in first
    assert "Traceback" not in job.failure


def test_corrupt_gzip_in_pipe_mode_names_the_fifo(tmp_path):
    job, ch = _pipe_channel(tmp_path, 5)
    fifo = job.paths.channel_fifo("train", 0)
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "wb") as out:
            out.write(GZ[:len(GZ) // 2])

    threading.Thread(target=writer, daemon=True).start()
    with pytest.raises(ClientError, match=f"^Channel 'train': {fifo}: corrupt or truncated gzip"):
        list(ch.batches(100))
