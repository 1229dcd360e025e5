"""Lay out an `/opt/ml` tree the way SageMaker does, anywhere: for tests, notebooks and demos.

    job = LocalJob(tmp_path)
    job.write_config({"predictor_type": "regressor"}, {"train": {"ContentType": "text/csv"}})
    job.add_file("train", "part-0.csv", csv_bytes)
    run_training("linear-learner", job.paths)

`PipeFeeder` plays SageMaker's part in Pipe mode: for each epoch it creates the FIFO
`<channel>_<epoch>`, streams the data into it, and removes the previous one.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable

from .environment import Paths


class LocalJob:
    def __init__(self, base: Path):
        self.paths = Paths(Path(base))
        for d in (self.paths.config_dir, self.paths.data_dir, self.paths.model_dir, self.paths.output_dir):
            d.mkdir(parents=True, exist_ok=True)

    def write_config(self, hyperparameters: dict, channels: dict[str, dict],
                     resources: dict | None = None, checkpoint: dict | None = None) -> None:
        """Write the config files; hyperparameter values are stringified as SageMaker does."""
        hps = {k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, list) else str(v)
               for k, v in hyperparameters.items()}
        self.paths.hyperparameters_file.write_text(json.dumps(hps))
        channels = {name: {"TrainingInputMode": "File", **cfg} for name, cfg in channels.items()}
        self.paths.input_data_config_file.write_text(json.dumps(channels))
        self.paths.resource_config_file.write_text(json.dumps(
            resources or {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0",
                          "current_instance_type": "local"}))
        if checkpoint is not None:
            self.paths.checkpoint_config_file.write_text(json.dumps(checkpoint))

    def add_file(self, channel: str, name: str, data: bytes) -> Path:
        path = self.paths.channel_dir(channel) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    @property
    def failure(self) -> str | None:
        f = self.paths.failure_file
        return f.read_text() if f.exists() else None


class PipeFeeder:
    """Serve a channel in Pipe mode from a background thread, one FIFO per epoch.

    `data` is the bytes to stream each epoch, or a callable epoch -> bytes. Feeding stops after
    `epochs` FIFOs or when `stop()` is called; a reader that closes a FIFO early (it read only a
    sample) is fine: the writer sees EPIPE and moves on to the next epoch.
    """

    def __init__(self, paths: Paths, channel: str, data: bytes | Callable[[int], bytes], epochs: int,
                 chunk_size: int = 64 * 1024):
        self.paths, self.channel, self.epochs, self.chunk_size = paths, channel, epochs, chunk_size
        self._data = data if callable(data) else (lambda epoch: data)
        self._stopped = threading.Event()
        self.epochs_served = 0
        self._thread = threading.Thread(target=self._run, name=f"pipe-{channel}", daemon=True)

    def __enter__(self) -> "PipeFeeder":
        self.paths.data_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        # Unblock a writer waiting for a reader that will never come.
        for epoch in range(self.epochs):
            fifo = self.paths.channel_fifo(self.channel, epoch)
            if fifo.exists():
                try:
                    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                    os.close(fd)
                except OSError:
                    pass
        self._thread.join(timeout=10)

    def _run(self) -> None:
        for epoch in range(self.epochs):
            if self._stopped.is_set():
                return
            fifo = self.paths.channel_fifo(self.channel, epoch)
            os.mkfifo(fifo)
            if epoch > 0:
                self.paths.channel_fifo(self.channel, epoch - 1).unlink(missing_ok=True)
            try:
                with open(fifo, "wb") as out:  # blocks until the reader opens it
                    if self._stopped.is_set():
                        return
                    data = self._data(epoch)
                    for i in range(0, len(data), self.chunk_size):
                        out.write(data[i:i + self.chunk_size])
            except BrokenPipeError:
                pass  # the reader closed early
            self.epochs_served += 1
