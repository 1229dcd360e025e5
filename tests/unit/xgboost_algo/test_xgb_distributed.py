"""Training across hosts: two `train` processes, each with its own /opt/ml tree and its shard of
the data, form one XGBoost cluster (the master runs the tracker) and build one model."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import numpy as np
import xgboost as xgb

from xgb_helpers import ROOT, make_data, to_csv
from smalgos.localjob import LocalJob

HOSTS = ["127.0.0.1", "127.0.0.2"]  # loopback addresses stand in for algo-1 and algo-2's names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cluster(tmp_path, shards, hps, validation=None):
    port = free_port()
    procs, jobs = [], []
    for host, shard in zip(HOSTS, shards):
        job = LocalJob(tmp_path / host)
        channels = {"train": {"ContentType": "text/csv"}}
        if validation is not None:
            channels["validation"] = {"ContentType": "text/csv"}
            job.add_file("validation", "v.csv", validation)
        job.write_config(hps, channels, resources={"current_host": host, "hosts": HOSTS})
        job.paths.channel_dir("train").mkdir(parents=True, exist_ok=True)
        if shard:
            job.add_file("train", "part.csv", shard)
        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(job.paths.base), "SMALGOS_XGBOOST_TRACKER_PORT": str(port),
               "SMALGOS_XGBOOST_CONNECT_SECONDS": "60", "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT / "common"), str(ROOT / "containers" / "xgboost")])}
        procs.append(subprocess.Popen([sys.executable, "-m", "smalgos.cli", "train"], env={**env, "SMALGOS_ALGORITHM": "xgboost"},
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        jobs.append(job)
    outs = [p.communicate(timeout=120)[0] for p in procs]
    return jobs, [p.returncode for p in procs], outs


def metric_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"^\[\d+\]\t", line)]


def test_two_hosts_train_one_model_on_both_shards(tmp_path):
    X, y = make_data("binary:logistic", n=2000, seed=4)
    Xv, yv = make_data("binary:logistic", n=300, seed=5)
    shards = [to_csv(X[:1000], y[:1000]), to_csv(X[1000:], y[1000:])]
    hps = {"num_round": 6, "objective": "binary:logistic", "max_depth": 3, "eval_metric": "logloss"}
    jobs, codes, outs = run_cluster(tmp_path, shards, hps, validation=to_csv(Xv, yv))
    assert codes == [0, 0], outs
    assert (jobs[0].paths.model_dir / "xgboost-model").exists()
    assert not any(jobs[1].paths.model_dir.iterdir())  # only the master writes the model
    lines = [metric_lines(o) for o in outs]
    assert len(lines[0]) == 6 and lines[0] == lines[1]  # both hosts print the cluster's metrics
    booster = xgb.Booster()
    booster.load_model(bytearray((jobs[0].paths.model_dir / "xgboost-model").read_bytes()))
    # The printed train metric is over both shards: the model's logloss on all 2000 rows.
    p = np.clip(booster.predict(xgb.DMatrix(X)), 1e-16, 1 - 1e-16)
    logloss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    printed = float(re.search(r"train-logloss:([0-9.]+)", lines[0][-1]).group(1))
    assert abs(printed - logloss) < 1e-4, (printed, logloss)
    # ... and one shard alone would not give that model
    alone = xgb.train({k: v for k, v in hps.items() if k != "num_round"}, xgb.DMatrix(X[:1000], label=y[:1000]), 6)
    assert not np.allclose(alone.predict(xgb.DMatrix(X)), booster.predict(xgb.DMatrix(X)))


def test_a_host_without_records_joins_with_none(tmp_path):
    X, y = make_data("reg:squarederror", n=500)
    jobs, codes, outs = run_cluster(tmp_path, [to_csv(X, y), b""], {"num_round": 3})
    assert codes == [0, 0], outs
    assert "was given no training records" in outs[1]
    booster = xgb.Booster()
    booster.load_model(bytearray((jobs[0].paths.model_dir / "xgboost-model").read_bytes()))
    assert booster.num_features() == X.shape[1]


def first_line(job) -> str:
    return (job.failure or "").splitlines()[0] if job.failure else ""


def test_shards_of_different_widths_fail_on_every_host(tmp_path):
    X, y = make_data("reg:squarederror", n=200)
    jobs, codes, outs = run_cluster(tmp_path, [to_csv(X, y), to_csv(X[:, :5], y)], {"num_round": 2})
    assert codes == [1, 1], outs
    for job in jobs:
        assert first_line(job) == ("ClientError: Channel 'train': the hosts' files have from 5 to 6 feature columns: "
                                   "every host's data needs the same columns")


def test_no_records_on_any_host_is_a_client_error(tmp_path):
    jobs, codes, outs = run_cluster(tmp_path, [b"", b""], {"num_round": 2})
    assert codes == [1, 1], outs
    assert all(first_line(j) == "ClientError: Channel 'train': no host was given any records" for j in jobs)


def test_bad_data_on_one_host_stops_both_promptly(tmp_path):
    """The host with the bad file names it; the other says another host failed (neither waits)."""
    X, y = make_data("reg:squarederror", n=200)
    jobs, codes, outs = run_cluster(tmp_path, [to_csv(X, y), b"1,2,3\n4,5\n"], {"num_round": 2})
    assert codes == [1, 1], outs
    assert first_line(jobs[1]).startswith("ClientError:") and "part.csv" in first_line(jobs[1])
    assert first_line(jobs[0]) == "ClientError: Another host failed while reading its data: its failure reason says why"
