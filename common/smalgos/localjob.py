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

from .environment import ClusterEnv, Paths


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


class LocalCluster:
    """`hosts` training hosts on this machine, each with its own `/opt/ml` tree under `base/algo-N`,
    trained as one job by as many processes (`python -m smalgos.cli train`), which meet on loopback
    (`SMALGOS_DIST_MASTER_ADDR=127.0.0.1`, as their names `algo-N` resolve nowhere here).

        cluster = LocalCluster(tmp_path, 2)
        for host, job in zip(cluster.names, cluster.jobs):
            job.write_config(hps, channels, resources=cluster.resources(host))
            job.add_file("train", "part.csv", shard_of[host])
        results = cluster.train("kmeans", timeout=300)   # [(exit code, output), ...] by host
    """

    def __init__(self, base: Path, hosts: int):
        self.names = [f"algo-{i + 1}" for i in range(hosts)]
        self.jobs = [LocalJob(Path(base) / name) for name in self.names]

    def resources(self, host: str) -> dict:
        return {"current_host": host, "hosts": list(self.names), "network_interface_name": "lo",
                "current_instance_type": "local"}

    def log_file(self, host: str) -> Path:
        return self.jobs[self.names.index(host)].paths.base / "train.log"

    def start(self, algorithm: str, env: dict | None = None, port: int | None = None) -> list:
        """Start every host's training process, its output in `log_file(host)`; return the Popen
        objects (by host)."""
        import socket
        import subprocess
        import sys
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        inherited = ClusterEnv.from_env().inherited
        # The hosts share this machine: its cores, and its one GPU (NCCL refuses two ranks on one
        # device), unless `env` says otherwise.
        shared_machine = {"SMALGOS_DEVICE": "cpu",
                          "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // len(self.jobs)))}
        procs = []
        for name, job in zip(self.names, self.jobs):
            run_env = {**inherited, "SAGEMAKER_BASE_DIR": str(job.paths.base), "SMALGOS_ALGORITHM": algorithm,
                       "SMALGOS_DIST_MASTER_ADDR": "127.0.0.1", "SMALGOS_DIST_PORT": str(port),
                       **shared_machine, **(env or {})}
            with open(self.log_file(name), "w") as out:
                procs.append(subprocess.Popen([sys.executable, "-m", "smalgos.cli", "train"], env=run_env,
                                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        return procs

    def train(self, algorithm: str, timeout: float = 600, env: dict | None = None) -> list[tuple[int, str]]:
        """Run every host to its end: (exit code, output) by host. A host still running after
        `timeout` seconds is killed (its exit code is then negative)."""
        import subprocess
        import time
        procs = self.start(algorithm, env)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return [(proc.returncode, self.log_file(name).read_text()) for name, proc in zip(self.names, procs)]
