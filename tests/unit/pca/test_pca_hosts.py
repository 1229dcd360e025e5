"""PCA trained across two hosts (two processes on loopback) as one job."""
import numpy as np
from sklearn.datasets import load_digits

from algo_helpers import csv_bytes, train_on_hosts
from smalgos_pca.model import StreamingPCA


def train_hosts(tmp_path, hps, files, distribution):
    """Train on two hosts, host algo-N given files[N-1]: the master's model and both hosts' logs."""
    logs, model_dir = train_on_hosts("pca", tmp_path, hps, files, distribution)
    return StreamingPCA.load(model_dir), logs


def test_two_hosts_on_the_full_data_match_one_host(tmp_path):
    x = load_digits().data.astype(np.float32)
    hps = {"feature_dim": 64, "num_components": 5, "mini_batch_size": 100}
    both, logs = train_hosts(tmp_path, hps, [csv_bytes(x)] * 2, "FullyReplicated")
    one = StreamingPCA(5, mini_batch_size=100).fit(x)
    np.testing.assert_allclose(both.components_, one.components_, atol=1e-4)  # signs fixed alike
    np.testing.assert_allclose(both.singular_values_, one.singular_values_, rtol=1e-5)
    np.testing.assert_allclose(both.mean_, one.mean_, atol=1e-5)
    assert both.n_samples_seen_ == len(x)  # each record counted once: each host read its half
    singular = [line for line in logs[0].splitlines() if "Singular values" in line]
    assert singular and singular[0].split("Singular values")[1] in logs[1]  # both decomposed the same sums


def test_hosts_given_different_halves_learn_both(tmp_path):
    rng = np.random.default_rng(0)

    def half(axis, n):  # variance 25 along `axis`, 0.25 along the next, 0.01 elsewhere
        x = rng.normal(scale=0.1, size=(n, 20))
        x[:, axis] = rng.normal(scale=5.0, size=n)
        x[:, axis + 1] = rng.normal(scale=0.5, size=n)
        return x.astype(np.float32)

    halves = [half(0, 500), half(3, 300)]
    hps = {"feature_dim": 20, "num_components": 2, "mini_batch_size": 50, "algorithm_mode": "randomized",
           "extra_components": 3}  # a 5-row sketch: shrunk on each host and when merged
    both, _ = train_hosts(tmp_path, hps, [csv_bytes(h) for h in halves], "ShardedByS3Key")
    alone = StreamingPCA(2, mini_batch_size=50, algorithm_mode="randomized", extra_components=3).fit(halves[0])

    def weight_on(model, axis):  # how much of the components' span lies along `axis` (0 .. 1)
        return float(np.linalg.norm(model.components_[axis]))

    assert weight_on(both, 0) > 0.99 and weight_on(both, 3) > 0.99
    assert weight_on(alone, 3) < 0.1  # a model of one half misses the other half's direction
