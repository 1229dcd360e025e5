"""Linear Learner on two hosts as one job: two `smalgos.cli train` processes meeting on loopback
(`LocalCluster`), against one host on the same data, and on halves that differ."""

import re

import numpy as np
import pytest

from smalgos.localjob import LocalCluster, LocalJob
from smalgos.training.runner import run_training
from smalgos_linear_learner.model import LinearLearner

from .test_job import CSV, csv_bytes

SHARDED = {**CSV, "S3DistributionType": "ShardedByS3Key"}
HP = {"predictor_type": "binary_classifier", "mini_batch_size": 32, "epochs": 8, "num_models": 4}
FINAL = re.compile(r"#quality_metric: host=(algo-\d), (train|validation) (\S+) <\w+>=(\S+)")
EPOCH = re.compile(r"#quality_metric: host=(algo-\d), epoch=(\d+), (train|validation) (\S+) <\w+>=(\S+)")
STOPPING = re.compile(r"#early_stopping_criteria_metric: host=(algo-\d), (.*)")
SELECTED = re.compile(r"Best model found for hyperparameters: (.*)")
AGREED = re.compile(r"Selected model \d+; the largest difference between a host's model and the master's: (\S+)")


def accuracy(model_dir, X, y) -> float:
    return float(np.mean(LinearLearner.load(model_dir).predict(X) == y))


def two_hosts(tmp_path, channels: dict, data: list[dict]) -> tuple[LocalCluster, list[str]]:
    """Train on two hosts, host i's channel files `data[i]`; the hosts' logs (both succeeded)."""
    cluster = LocalCluster(tmp_path, 2)
    for host, job, files in zip(cluster.names, cluster.jobs, data):
        job.write_config(HP, channels, resources=cluster.resources(host))
        for channel, payload in files.items():
            job.add_file(channel, f"{channel}.csv", payload)
    # on CPU: two processes on one machine cannot both use its one GPU under NCCL
    results = cluster.train("linear-learner", timeout=300, env={"SMALGOS_DEVICE": "cpu"})
    for (code, out), job in zip(results, cluster.jobs):
        assert code == 0, (job.failure, out[-3000:])
    return cluster, [out for _, out in results]


def by_host(pattern: re.Pattern, logs: list[str]) -> list[list[tuple]]:
    """Each host's matches of `pattern`, without the host name, checking that each host printed its own."""
    found = []
    for host, out in zip(("algo-1", "algo-2"), logs):
        matches = [m.groups() for m in pattern.finditer(out)]
        assert matches and all(m[0] == host for m in matches), (host, out[-3000:])
        found.append([m[1:] for m in matches])
    return found


def assert_same_choices(logs: list[str]) -> None:
    """Both hosts print the same merged metrics every epoch, select the same model and hold the same
    weights; the final metrics are the master's lines alone."""
    for pattern in (EPOCH, STOPPING):
        first, second = by_host(pattern, logs)
        assert first == second
    assert FINAL.findall(logs[0]) and not FINAL.findall(logs[1])
    assert len(set(SELECTED.findall(logs[0]) + SELECTED.findall(logs[1]))) == 1
    assert [AGREED.findall(out) for out in logs] == [["0.0"], ["0.0"]]


@pytest.fixture(scope="module")
def one_host(tmp_path_factory, cancer):
    """The baseline: one host on the whole training set, the same hyperparameters."""
    Xtr, Xte, ytr, yte = cancer
    job = LocalJob(tmp_path_factory.mktemp("one-host"))
    job.write_config(HP, {"train": CSV, "validation": CSV})
    job.add_file("train", "train.csv", csv_bytes(Xtr, ytr))
    job.add_file("validation", "validation.csv", csv_bytes(Xte[:70], yte[:70]))
    assert run_training("linear-learner", job.paths, install_signal_handler=False) == 0, job.failure
    return job


def test_two_hosts_on_the_whole_data_match_one_host(tmp_path, cancer, one_host):
    Xtr, Xte, ytr, yte = cancer
    files = {"train": csv_bytes(Xtr, ytr), "validation": csv_bytes(Xte[:70], yte[:70]), "test": csv_bytes(Xte, yte)}
    cluster, logs = two_hosts(tmp_path, {"train": CSV, "validation": CSV, "test": CSV}, [files, files])
    master, other = (job.paths.model_dir for job in cluster.jobs)
    assert sorted(p.name for p in master.iterdir()) == ["model.json", "model.safetensors"]
    assert not any(other.iterdir())  # only the master saves
    # FullyReplicated: each host reads every other record, and together they train one model
    one = accuracy(one_host.paths.model_dir, Xte, yte)
    two = accuracy(master, Xte, yte)
    assert one > 0.93 and abs(two - one) <= 0.01, (one, two)
    assert_same_choices(logs)
    assert "#test_score (algo-1)" in logs[0] and "#test_score" not in logs[1]  # the master scores test


def halves(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two regions of one linear problem, label = [x_a, x_b] @ [a, b] > 0: half A varies only the
    first five features (the others 0), half B only the last five. A model of one half has learnt
    nothing of the other's features."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(7).normal(size=10)
    zeros = np.zeros((n, 5))
    Xa = np.hstack([rng.normal(size=(n, 5)), zeros]).astype(np.float32)
    Xb = np.hstack([zeros, rng.normal(size=(n, 5))]).astype(np.float32)
    return Xa, (Xa @ w > 0).astype(np.float32), Xb, (Xb @ w > 0).astype(np.float32)


def test_two_hosts_on_different_halves_learn_both(tmp_path):
    Xa, ya, Xb, yb = halves(0, 400)
    Xb, yb = Xb[:250], yb[:250]  # algo-2 runs out of batches first: it takes part with empty ones
    Xa_test, ya_test, Xb_test, yb_test = halves(1, 300)
    data = [{"train": csv_bytes(X, y), "validation": csv_bytes(Xv[:100], yv[:100])}
            for X, y, Xv, yv in ((Xa, ya, Xa_test, ya_test), (Xb, yb, Xb_test, yb_test))]
    cluster, logs = two_hosts(tmp_path, {"train": SHARDED, "validation": SHARDED}, data)
    model = cluster.jobs[0].paths.model_dir
    assert accuracy(model, Xa_test, ya_test) > 0.95 and accuracy(model, Xb_test, yb_test) > 0.95
    alone = LinearLearner(**HP).fit(Xa, ya)  # what host algo-1 would learn by itself
    assert np.mean(alone.predict(Xa_test) == ya_test) > 0.95
    assert np.mean(alone.predict(Xb_test) == yb_test) < 0.75
    assert_same_choices(logs)
