"""K-Means trained across two hosts (two processes on loopback) as one job."""
import numpy as np
from algo_helpers import csv_bytes, train_job, train_on_hosts
from smalgos_kmeans.model import WebScaleKMeans

HPS = {"k": 8, "feature_dim": 3, "mini_batch_size": 200, "epochs": 2}
CENTRES = np.array([[x, y, z] for x in (0.0, 10.0) for y in (0.0, 10.0) for z in (0.0, 10.0)])


def blobs(centres, per_centre, seed):
    rng = np.random.default_rng(seed)
    return (np.repeat(centres, per_centre, axis=0) + rng.normal(size=(len(centres) * per_centre, 3))).astype(np.float32)


def wcss(model_dir, x) -> float:
    return WebScaleKMeans.load(model_dir).sum_squared_distances(x)[0]


def train_hosts(tmp_path, files, distribution, test=None):
    """Train on two hosts, host algo-N given files[N-1]: both hosts' logs, the master's model folder."""
    return train_on_hosts("kmeans", tmp_path, HPS, files, distribution, extra=None if test is None else {"test": test})


def msd_line(log, channel):
    return next(line.split("host=")[1].split(",", 1)[1] for line in log.splitlines()
                if f" {channel} msd " in line and line.startswith("#quality_metric"))


def test_two_hosts_on_the_full_data_match_one_host(tmp_path):
    x = blobs(CENTRES, 300, seed=1)[np.random.default_rng(2).permutation(2400)]
    data = csv_bytes(x)
    one, rc = train_job("kmeans", tmp_path / "one", HPS, {"train": {"ContentType": "text/csv"}},
                        {("train", "part.csv"): data})
    assert rc == 0
    (first, second), model = train_hosts(tmp_path / "two", [data, data], "FullyReplicated", test=data)
    single, double = wcss(one.paths.model_dir, x), wcss(model, x)
    assert abs(double - single) <= 0.01 * single, (single, double)
    assert double / len(x) < 3.5  # the 8 true clusters (unit variance in 3 dimensions): not a merged pair
    # one job: every host reduces the same centres alike (the same local Lloyd attempts); the final
    # train msd, the model and the test scores are the master's alone
    attempts = [[line.split("]", 1)[-1] for line in log.splitlines() if "local kmeans attempt" in line]
                for log in (first, second)]
    assert attempts[0] and attempts[0] == attempts[1]
    assert msd_line(first, "train") and "train msd" not in second
    assert "#quality_metric: host=algo-1, test msd" in first and "test msd" not in second
    assert "leaves the test channel to the master (algo-1)" in second
    assert "Host algo-2 is not the master (algo-1): the model is written by the master only" in second
    assert "trains on each host alone" not in first + second


def test_hosts_given_different_halves_learn_both(tmp_path):
    left, right = CENTRES[CENTRES[:, 0] == 0], CENTRES[CENTRES[:, 0] == 10]
    halves = [blobs(left, 300, seed=3), blobs(right, 150, seed=4)]  # unequal: algo-2 runs out first
    _, model = train_hosts(tmp_path / "two", [csv_bytes(h) for h in halves], "ShardedByS3Key")
    alone, rc = train_job("kmeans", tmp_path / "alone", HPS, {"train": {"ContentType": "text/csv"}},
                          {("train", "part.csv"): csv_bytes(halves[0])})
    assert rc == 0

    def worst_miss(model_dir):  # the largest distance from a true centre to the model's nearest
        centres = WebScaleKMeans.load(model_dir).cluster_centers_
        return float(np.max(np.min(np.linalg.norm(CENTRES[:, None] - centres[None], axis=2), axis=1)))

    assert worst_miss(model) < 1.5  # each of the 8 clusters found
    assert worst_miss(alone.paths.model_dir) > 5  # one half alone misses the other half's clusters


def test_a_host_with_no_records_takes_part(tmp_path):
    x = blobs(CENTRES, 40, seed=5)
    files = [csv_bytes(x), b""]
    _, model = train_hosts(tmp_path, files, "ShardedByS3Key")
    assert wcss(model, x) / len(x) < 3.5
