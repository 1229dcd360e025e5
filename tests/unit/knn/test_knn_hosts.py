"""k-NN trained across two hosts (two processes on loopback, `LocalCluster`): each host samples its
own records, the samples are gathered and every host builds the same index over them; the
master's is the model."""
import re

import numpy as np
import pytest

from algo_helpers import csv_bytes, sdk_hyperparameters
from smalgos.localjob import LocalCluster
from smalgos_knn.model import KNearestNeighbors

CENTRES = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0], [0, 0, 6]], np.float32)


def classes(labels, per_class: int, seed: int):
    """`per_class` records around each centre of `labels` (Gaussian, sd 1), shuffled."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.asarray(labels, np.float32), per_class)
    x = CENTRES[y.astype(int)] + rng.normal(0, 1, (y.size, CENTRES.shape[1]))
    order = rng.permutation(y.size)
    return x[order].astype(np.float32), y[order]


def two_hosts(tmp_path, hps, parts, distribution, test=None):
    """Train on two hosts, host i holding `parts[i]` = (x, y): [(exit code, log)] by host, and the
    master's model."""
    cluster = LocalCluster(tmp_path, 2)
    channels = {"train": {"ContentType": "text/csv", "S3DistributionType": distribution}}
    if test is not None:
        channels["test"] = {"ContentType": "text/csv"}
    for host, job, (x, y) in zip(cluster.names, cluster.jobs, parts):
        job.write_config(sdk_hyperparameters("KNN", feature_dim=3, mini_batch_size=50, **hps), channels,
                         resources=cluster.resources(host))
        job.add_file("train", "part.csv", csv_bytes(x, y))
        if test is not None:
            job.add_file("test", "test.csv", csv_bytes(*test))
    results = cluster.train("knn", timeout=300)
    for (rc, out), job in zip(results, cluster.jobs):
        assert rc == 0, (job.failure, out[-3000:])
    return results, cluster, KNearestNeighbors.load(cluster.jobs[0].paths.model_dir)


def test_two_hosts_predict_exactly_as_one_host_when_the_sample_holds_every_record(tmp_path):
    """Each host reads half the records and projects them as every host does (the projection is
    drawn from the seed): the index holds every record, as one host's."""
    x, y = classes([0, 1, 2, 3], 150, seed=1)
    test_x, test_y = classes([0, 1, 2, 3], 40, seed=2)
    test_x[:20] = (CENTRES[0] + CENTRES[1]) / 2 + np.random.default_rng(3).normal(0, 0.7, (20, 3))  # borderline
    hps = {"k": 7, "sample_size": 1000, "predictor_type": "classifier", "dimension_reduction_type": "sign",
           "dimension_reduction_target": 2}
    results, cluster, model = two_hosts(tmp_path, hps, [(x, y)] * 2, "FullyReplicated", test=(test_x, test_y))

    one = KNearestNeighbors(**hps).fit(x, y)
    np.testing.assert_array_equal(np.sort(model.labels_), np.sort(y))  # every record, once
    np.testing.assert_array_equal(model.predict(test_x), one.predict(test_x))
    np.testing.assert_allclose(model.kneighbors(test_x)[0], one.kneighbors(test_x)[0], rtol=1e-5, atol=1e-5)

    master, other = (out for _, out in results)
    accuracy = float(re.search(r"#test_score \(algo-1\) : \('accuracy', ([0-9.]+)\)", master).group(1))
    assert accuracy == pytest.approx(float((one.predict(test_x) == test_y).mean()))
    assert "#test_score" not in other and "model is written by the master only" in other
    assert not any(cluster.jobs[1].paths.model_dir.iterdir())
    for out in (master, other):  # every host built the same index over the 600 records
        assert "Built a faiss.Flat index (L2) over 600 sampled records of 600" in out


def test_hosts_holding_different_classes_give_one_model_of_all_of_them(tmp_path):
    """Host 1 holds classes 0 and 1 (600 records), host 2 classes 2 and 3 (200 records, so it
    steps through empty mini-batches): the 200 sampled records come from each host in proportion
    to its records (150 and 50 expected), and the model answers every class."""
    first, second = classes([0, 1], 300, seed=4), classes([2, 3], 100, seed=5)
    hps = {"k": 5, "sample_size": 200, "predictor_type": "classifier"}
    results, _, model = two_hosts(tmp_path, hps, [first, second], "ShardedByS3Key")

    assert model.labels_.size == 200
    from_first = int(np.isin(model.labels_, [0, 1]).sum())
    assert 125 <= from_first <= 175  # hypergeometric: mean 150, sd 5.3
    test_x, test_y = classes([0, 1, 2, 3], 50, seed=6)
    assert (model.predict(test_x) == test_y).mean() >= 0.97
    half = KNearestNeighbors(5, "classifier", sample_size=200).fit(*first)
    assert (half.predict(test_x) == test_y).mean() <= 0.5  # what one host alone would answer
    for _, out in results:
        assert "over 200 sampled records of 800" in out
