"""Factorization Machines trained across two hosts (two processes on loopback, `LocalCluster`): each
host reads its part of `train`, and every step is one Adam step of both hosts' mini-batches (the
rows of w and V either touched, gradients summed), so both hosts hold the same parameters; the
master's is the model and the master scores `test`."""
import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from algo_helpers import recordio_bytes
from fm.reference import clicks
from smalgos.localjob import LocalCluster
from smalgos_factorization_machines.model import FactorizationMachines

RECORDIO = "application/x-recordio-protobuf"
RATES = {"bias_lr": 0.05, "linear_lr": 0.05, "factors_lr": 0.05, "bias_wd": 0, "linear_wd": 0, "factors_wd": 0}
CLICKS = {"num_factors": 4, "predictor_type": "binary_classifier", "epochs": 6, "factors_init_sigma": 0.01, **RATES}
TRAIN_LINE = re.compile(r"#quality_metric: host=algo-\d, epoch=(\d+), train (\S+) <\w+>=(\S+)")


def auc(y, s) -> float:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, s))


def two_hosts(tmp_path, hps, parts, distribution, feature_dim, mini_batch_size, test=None):
    """Train on two hosts, host i holding `parts[i]` = (x, y): the hosts' logs and the master's model."""
    cluster = LocalCluster(tmp_path, 2)
    channels = {"train": {"ContentType": RECORDIO, "S3DistributionType": distribution}}
    if test is not None:
        channels["test"] = {"ContentType": RECORDIO}
    for host, job, (x, y) in zip(cluster.names, cluster.jobs, parts):
        job.write_config({"feature_dim": feature_dim, "mini_batch_size": mini_batch_size, **hps}, channels,
                         resources=cluster.resources(host))
        job.add_file("train", "part.pbr", recordio_bytes(x, y))
        if test is not None:
            job.add_file("test", "test.pbr", recordio_bytes(*test))
    results = cluster.train("factorization-machines", timeout=300, env={"OMP_NUM_THREADS": "1"})
    for (rc, out), job in zip(results, cluster.jobs):
        assert rc == 0, (job.failure, out[-3000:])
    assert not any(cluster.jobs[1].paths.model_dir.iterdir())
    return [out for _, out in results], FactorizationMachines.load(cluster.jobs[0].paths.model_dir)


def test_two_hosts_on_the_full_data_fit_one_hosts_model(tmp_path):
    """Each host reads every other record of the same file (FullyReplicated) at mini_batch_size
    256: a step of the two is one host's step on the same 512 records, so the parameters are one
    host's at 512 but for the order of float32 sums, and the accuracy and AUC one host's at 256
    within 0.01 (one host: accuracy 0.751 at 256, 0.752 at 512; AUC 0.823 and 0.826)."""
    x, y, _ = clicks(12000, seed=0)
    x, y, xt, yt = x[:10000], y[:10000], x[10000:], y[10000:]
    logs, model = two_hosts(tmp_path, CLICKS, [(x, y)] * 2, "FullyReplicated", x.shape[1], 256)
    torch.set_num_threads(1)
    alone = FactorizationMachines(mini_batch_size=256, **CLICKS).fit(x, y)
    alone_at_twice = FactorizationMachines(mini_batch_size=512, **CLICKS).fit(x, y)
    for ours, theirs in ((model.w0_, alone_at_twice.w0_), (model.w_, alone_at_twice.w_), (model.v_, alone_at_twice.v_)):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)  # measured: 7.5e-7 at most
    accuracy = float((model.predict(xt) == yt).mean())
    assert accuracy == pytest.approx(float((alone.predict(xt) == yt).mean()), abs=0.01)
    assert auc(yt, model.predict_scores(xt)) == pytest.approx(auc(yt, alone.predict_scores(xt)), abs=0.01)
    # Every host prints the job's train metrics (both hosts' records), the same on both.
    master, other = (TRAIN_LINE.findall(out) for out in logs)
    assert len(master) == 3 * CLICKS["epochs"] and master == other  # accuracy, cross-entropy, F1 each epoch
    assert "model is written by the master only" in logs[1]


def regions(n: int, second: bool, seed: int) -> sp.csr_matrix:
    """`n` sparse records whose non-zeros lie in features 0-14 (first region) or 15-29 (second)."""
    x = sp.random(n, 15, density=0.3, format="csr", random_state=seed, dtype=np.float32)
    empty = sp.csr_matrix((n, 15), dtype=np.float32)
    return sp.hstack([empty, x] if second else [x, empty]).tocsr()


def test_hosts_holding_different_features_give_one_model_of_both(tmp_path):
    """A regressor of a known FM of 30 features. Host 1 holds 1500 records whose features lie in
    0-14, host 2 1000 records of features 15-29 (ShardedByS3Key: host 2 steps through empty
    mini-batches). The model predicts both regions to the noise level, and the master's test RMSE
    says so; a model of host 1's records alone knows nothing of the second region."""
    rng = np.random.default_rng(3)
    v, w = rng.normal(0, 0.7, (30, 3)), rng.normal(0, 1, 30)

    def truth(x):
        return 2.0 + x @ w + 0.5 * (((x @ v) ** 2).sum(1) - (x.multiply(x) @ (v ** 2)).sum(1))

    first, second = regions(1500, False, 1), regions(1000, True, 2)
    parts = [(x, (truth(x) + rng.normal(0, 0.1, x.shape[0])).astype(np.float32)) for x in (first, second)]
    tests = [regions(300, False, 3), regions(300, True, 4)]
    test = sp.vstack(tests).tocsr()
    hps = {"num_factors": 3, "predictor_type": "regressor", "epochs": 20, "factors_init_sigma": 0.1, **RATES}
    logs, model = two_hosts(tmp_path, hps, parts, "ShardedByS3Key", 30, 100,
                            test=(test, truth(test).astype(np.float32)))

    def rmse(m, x):
        return float(np.sqrt(np.mean((m.predict(x) - truth(x)) ** 2)))

    for x in tests:
        assert rmse(model, x) < 0.1 * truth(x).std(), (rmse(model, x), truth(x).std())
    reported = float(re.search(r"#test_score \(algo-1\) : \('rmse', ([0-9.e-]+)\)", logs[0]).group(1))
    assert reported == pytest.approx(rmse(model, test), rel=1e-3)
    assert "#test_score" not in logs[1]
    torch.set_num_threads(1)
    half = FactorizationMachines(mini_batch_size=100, **hps).fit(*parts[0])
    assert rmse(half, tests[1]) > 0.5 * truth(tests[1]).std()  # what host 1 alone would answer
