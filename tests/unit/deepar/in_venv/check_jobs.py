"""DeepAR jobs as separate `train` processes (LocalCluster): a job stopped by SIGTERM resumes from
its checkpoint; two hosts train as one DDP job. Needs gluonts: run in build/deepar-venv by
tests/unit/deepar/test_in_gluonts_venv.py."""
import json
import re
import signal
import time

import numpy as np
import pytest

from smalgos.localjob import LocalCluster
from smalgos_forecasting_deepar import checkpoints
from smalgos_forecasting_deepar.model import META_FILE, WEIGHTS_FILE

HPS = {"time_freq": "H", "context_length": "12", "prediction_length": "12", "epochs": "12",
       "mini_batch_size": "8", "num_cells": "8", "num_layers": "1", "learning_rate": "0.01",
       "num_eval_samples": "10"}
EPOCH_LINE = re.compile(r"#quality_metric: host=(algo-\d), epoch=(\d+), train loss <loss>=(\S+)")


def series_lines(n=20, length=72, seed=5) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    out = []
    for i in range(n):
        y = (2 + 5 * rng.random()) * (1 + 0.3 * np.sin(2 * np.pi * t / 24)) + 0.1 * rng.standard_normal(length)
        out.append(json.dumps({"start": "2021-03-01 00:00:00", "target": y.round(3).tolist(), "cat": [i % 2]}))
    return ("\n".join(out) + "\n").encode()


def epochs_of(log: str) -> list[int]:
    return [int(m.group(2)) for m in EPOCH_LINE.finditer(log)]


def test_sigterm_then_resume_from_the_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoints"
    runs = []
    for attempt in range(2):
        cluster = LocalCluster(tmp_path / f"attempt-{attempt}", 1)
        job = cluster.jobs[0]
        job.write_config(HPS, {"train": {}}, resources=cluster.resources("algo-1"),
                         checkpoint={"S3Uri": "s3://bucket/ckpt", "LocalPath": str(ckpt)})
        job.add_file("train", "train.json", series_lines())
        if attempt == 0:  # a spot interruption: SIGTERM once two epochs are done
            proc = cluster.start("forecasting-deepar")[0]
            deadline = time.monotonic() + 240
            while len(epochs_of(cluster.log_file("algo-1").read_text())) < 2:
                assert proc.poll() is None and time.monotonic() < deadline, cluster.log_file("algo-1").read_text()[-3000:]
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=240)
            log = cluster.log_file("algo-1").read_text()
        else:
            [(code, log)] = cluster.train("forecasting-deepar", timeout=300)
        # Stopped by SIGTERM: exit 143 and a "Stopped:" reason, as every smalgos job (runner.py).
        assert code == (143 if attempt == 0 else 0), (job.failure, log[-3000:])
        runs.append(log)
        meta = json.loads((ckpt / checkpoints.META).read_text())
        if attempt == 0:
            stopped_after = meta["epoch"]
            assert meta["finished"] is False and epochs_of(log)[-1] == stopped_after < 11, (meta, epochs_of(log))
            assert (job.paths.model_dir / WEIGHTS_FILE).exists()  # the best so far is saved on SIGTERM
    assert f"at epoch {stopped_after + 1}" in runs[1] and "Resuming from the checkpoint" in runs[1]
    assert epochs_of(runs[1]) == list(range(stopped_after + 1, 12))
    assert meta["finished"] is True and meta["epoch"] == 11
    assert {checkpoints.WEIGHTS, checkpoints.OPTIMIZER, checkpoints.META} <= {p.name for p in ckpt.iterdir()}


def test_a_finished_checkpoint_of_another_configuration_is_ignored(tmp_path):
    ckpt = tmp_path / "checkpoints"
    logs = []
    for epochs in ("2", "3"):
        cluster = LocalCluster(tmp_path / f"epochs-{epochs}", 1)
        job = cluster.jobs[0]
        job.write_config({**HPS, "epochs": epochs}, {"train": {}}, resources=cluster.resources("algo-1"),
                         checkpoint={"LocalPath": str(ckpt)})
        job.add_file("train", "train.json", series_lines())
        [(code, log)] = cluster.train("forecasting-deepar", timeout=300)
        assert code == 0, log[-3000:]
        logs.append(log)
    assert "belongs to another configuration" in logs[1] and epochs_of(logs[1]) == [0, 1, 2]


@pytest.mark.parametrize("distribution", ["FullyReplicated", "ShardedByS3Key"])
def test_two_hosts_train_one_network(tmp_path, distribution):
    data = series_lines(n=24)
    rows = data.decode().splitlines(keepends=True)
    cluster = LocalCluster(tmp_path, 2)
    for i, (host, job) in enumerate(zip(cluster.names, cluster.jobs)):
        job.write_config({**HPS, "epochs": "3"}, {"train": {"S3DistributionType": distribution}},
                         resources=cluster.resources(host))
        part = data if distribution == "FullyReplicated" else "".join(rows[i::2]).encode()
        job.add_file("train", "train.json", part)
    results = cluster.train("forecasting-deepar", timeout=300)
    for (code, log), job in zip(results, cluster.jobs):
        assert code == 0, (job.failure, log[-3000:])
    logs = [log for _, log in results]
    for host, log in zip(cluster.names, logs):
        assert f"Host {host} trains on 12 of the 24 series, as one job with 2 host(s) (DDP)" in log, log[-3000:]
        assert "number of time series: 24" in log and "The 2 hosts' networks agree" in log
    # The per-epoch loss is the hosts' mean: the same line on both hosts.
    assert [m.group(2, 3) for m in EPOCH_LINE.finditer(logs[0])] == [m.group(2, 3) for m in EPOCH_LINE.finditer(logs[1])]
    assert sorted(p.name for p in cluster.jobs[0].paths.model_dir.iterdir()) == sorted([WEIGHTS_FILE, META_FILE])
    assert not any(cluster.jobs[1].paths.model_dir.iterdir())
