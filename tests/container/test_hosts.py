"""Training across hosts in containers: two containers of one image on one network, `algo-1` and
`algo-2`, each with its own `/opt/ml` (its own resourceconfig.json and data), meet through
torch.distributed (`smalgos.distributed`) and train as one job.

SDK local mode hands every host all of the data (FullyReplicated only), so it cannot show that the
hosts synchronise; these tests give each container a different shard (ShardedByS3Key), as SageMaker
does, and check that the one model learnt both. Also: a host killed mid-training makes the other
fail with a clear reason within 60 s, and SDK v2 local mode with instance_count=2 trains.
"""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from .helpers import ROLE, model_artifact, unique

pytestmark = pytest.mark.container

HOSTS = ("algo-1", "algo-2")


class TwoHosts:
    """Two containers of `image` on a network of their own, one `/opt/ml` tree each."""

    def __init__(self, engine, image: str, base: Path, hyperparameters: dict, channels: dict):
        from smalgos.localjob import LocalJob

        self.engine, self.image = engine, image
        self.jobs = {host: LocalJob(base / host) for host in HOSTS}
        self.network = unique("net")
        self.names = {host: f"{self.network}-{host}" for host in HOSTS}
        for host, job in self.jobs.items():
            job.write_config(hyperparameters, channels, resources={
                "current_host": host, "hosts": list(HOSTS), "network_interface_name": "eth0",
                "current_instance_type": "local"})

    def start(self, env: dict | None = None) -> None:
        self.engine("network", "create", self.network)
        for host, job in self.jobs.items():
            args = ["run", "-d", "--name", self.names[host], "--network", self.network, "--network-alias", host,
                    "--hostname", host, "-v", f"{job.paths.base}:/opt/ml"]
            for k, v in (env or {}).items():
                args += ["-e", f"{k}={v}"]
            self.engine(*args, self.image, "train")

    def wait(self, host: str, timeout: float = 300) -> int:
        out = self.engine("wait", self.names[host], timeout=timeout)
        return int(out.stdout.strip().splitlines()[-1])

    def logs(self, host: str) -> str:
        return self.engine.logs(self.names[host])

    def remove(self) -> None:
        for name in self.names.values():
            self.engine("rm", "-f", name, check=False)
        self.engine("network", "rm", "-f", self.network, check=False)

    def run(self, timeout: float = 300) -> dict[str, int]:
        self.start()
        try:
            return {host: self.wait(host, timeout) for host in HOSTS}
        finally:
            self.logs_seen = {host: self.logs(host) for host in HOSTS}
            self.remove()


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(f"{v:.6g}" for v in r) for r in rows).encode() + b"\n"


def _blobs(centres, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([c + 0.3 * rng.standard_normal((n, len(c))) for c in centres]).astype(np.float32)


SHARDED = {"ContentType": "text/csv", "S3DistributionType": "ShardedByS3Key"}


def test_two_kmeans_containers_on_different_shards_learn_every_cluster(engine, algo_image, tmp_path):
    """algo-1 holds two clusters, algo-2 two others: the one model has a centre at each of the four."""
    centres = np.array([[0, 0, 0], [8, 0, 0], [0, 8, 0], [0, 0, 8]], dtype=np.float32)
    hosts = TwoHosts(engine, algo_image("kmeans"), tmp_path,
                     {"k": 4, "feature_dim": 3, "mini_batch_size": 50, "epochs": 2},
                     {"train": SHARDED})
    hosts.jobs["algo-1"].add_file("train", "part-0.csv", _csv(_blobs(centres[:2], 200, 1)))
    hosts.jobs["algo-2"].add_file("train", "part-1.csv", _csv(_blobs(centres[2:], 200, 2)))
    codes = hosts.run()
    assert codes == {"algo-1": 0, "algo-2": 0}, hosts.logs_seen
    assert "joined 2 host(s)" in hosts.logs_seen["algo-1"]
    model = hosts.jobs["algo-1"].paths.model_dir
    assert any(model.iterdir()) and not any(hosts.jobs["algo-2"].paths.model_dir.iterdir())
    from smalgos_kmeans.model import WebScaleKMeans

    learnt = WebScaleKMeans.load(model).cluster_centers_
    nearest = np.linalg.norm(centres[:, None, :] - learnt[None, :, :], axis=2).min(axis=1)
    assert nearest.max() < 1.0, (learnt, hosts.logs_seen["algo-1"][-2000:])


def test_a_host_killed_mid_training_fails_the_other_within_60_s(engine, algo_image, tmp_path):
    """algo-2 dies (SIGKILL) after its first progress lines: algo-1 exits non-zero, its failure file
    naming the host it lost, well before any time-out of the engine's."""
    centres = np.array([[0, 0, 0, 0], [8, 0, 0, 0], [0, 8, 0, 0]], dtype=np.float32)
    hosts = TwoHosts(engine, algo_image("kmeans"), tmp_path,
                     {"k": 3, "feature_dim": 4, "mini_batch_size": 10, "epochs": 2000},
                     {"train": SHARDED})
    for i, host in enumerate(HOSTS):
        hosts.jobs[host].add_file("train", f"part-{i}.csv", _csv(_blobs(centres, 100, i)))
    hosts.start()
    try:
        deadline = time.monotonic() + 180
        while "#progress_metric" not in hosts.logs("algo-2"):
            assert time.monotonic() < deadline, hosts.logs("algo-2")[-3000:]
            time.sleep(0.5)
        engine("kill", hosts.names["algo-2"])
        killed = time.monotonic()
        code = hosts.wait("algo-1", timeout=120)
        took = time.monotonic() - killed
        logs = hosts.logs("algo-1")
    finally:
        hosts.remove()
    assert code != 0, logs[-3000:]
    assert took < 60, f"algo-1 took {took:.0f} s to notice"
    failure = (hosts.jobs["algo-1"].paths.failure_file).read_text()
    assert failure.startswith("PlatformError: Host algo-1 lost the other host(s) (algo-2)"), failure


def test_sdk_local_mode_trains_kmeans_on_two_instances(session, sdk_env, algo_image):
    """instance_count=2: local mode starts algo-1-xxxxx and algo-2-xxxxx with every channel on both;
    they join as one job (each reads its half of the records) and the master's model comes back."""
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    centres = np.array([[0, 0], [6, 6], [0, 6]], dtype=np.float32)
    data = sdk_env / "two-hosts" / "train"
    data.mkdir(parents=True)
    (data / "train.csv").write_bytes(_csv(_blobs(centres, 150, 3)))
    est = Estimator(image_uri=algo_image("kmeans"), role=ROLE, instance_count=2, instance_type="local",
                    output_path=f"file://{sdk_env / 'two-hosts-output'}", sagemaker_session=session,
                    hyperparameters={"k": 3, "feature_dim": 2, "mini_batch_size": 50})
    est.fit({"train": TrainingInput(f"file://{data}", content_type="text/csv")}, wait=True, logs=False)
    model_tar = model_artifact(est)
    out = sdk_env / "two-hosts-model"
    out.mkdir()
    with tarfile.open(model_tar) as tar:
        tar.extractall(out, filter="data")
    from smalgos_kmeans.model import WebScaleKMeans

    learnt = WebScaleKMeans.load(out).cluster_centers_
    nearest = np.linalg.norm(centres[:, None, :] - learnt[None, :, :], axis=2).min(axis=1)
    assert nearest.max() < 1.0, learnt


def _labelled(n: int, seed: int) -> np.ndarray:
    """label,x0,x1,x2 rows: the label is 1 where x0 + x1 > 0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return np.column_stack([(x[:, 0] + x[:, 1] > 0).astype(np.float32), x])


def _ipinsights_rows(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 20, n)
    return "".join(f"user-{u},10.{u}.{rng.integers(0, 4)}.{rng.integers(1, 255)}\n" for u in users).encode()


# algorithm → (hyperparameters, train ContentType, the bytes of one host's FullyReplicated file)
EVERY_OTHER = {
    "linear-learner": ({"predictor_type": "binary_classifier", "feature_dim": 3, "mini_batch_size": 50,
                        "epochs": 2, "num_models": 2}, "text/csv", lambda: _csv(_labelled(300, 5))),
    "pca": ({"feature_dim": 3, "num_components": 2, "mini_batch_size": 50}, "text/csv",
            lambda: _csv(_labelled(300, 6)[:, 1:])),
    "knn": ({"feature_dim": 3, "k": 3, "predictor_type": "classifier", "sample_size": 200, "mini_batch_size": 50},
            "text/csv", lambda: _csv(_labelled(300, 7))),
    "randomcutforest": ({"feature_dim": 3, "num_trees": 50, "num_samples_per_tree": 64, "mini_batch_size": 50},
                        "text/csv", lambda: _csv(_labelled(300, 8)[:, 1:])),
    "factorization-machines": ({"feature_dim": 3, "num_factors": 2, "predictor_type": "binary_classifier",
                                "mini_batch_size": 50, "epochs": 2}, "application/x-recordio-protobuf",
                               lambda: _recordio(_labelled(300, 9))),
    "ipinsights": ({"num_entity_vectors": 40, "vector_dim": 8, "mini_batch_size": 50, "epochs": 2}, "text/csv",
                   lambda: _ipinsights_rows(300, 10)),
    "ntm": ({"num_topics": 2, "feature_dim": 3, "mini_batch_size": 50, "epochs": 2}, "text/csv",
            lambda: _csv(np.round(np.abs(_labelled(300, 11)[:, 1:]) * 3))),  # word counts
}


def _recordio(rows: np.ndarray) -> bytes:
    from smalgos.formats.protobuf import dense_to_recordio

    return dense_to_recordio(rows[:, 1:], rows[:, 0])


@pytest.mark.parametrize("algo", sorted(EVERY_OTHER))
def test_two_containers_train_every_torch_algorithm_as_one_job(engine, algo_image, tmp_path, algo):
    """Both hosts join one job (each reads its half of a FullyReplicated channel), both succeed,
    and only the master writes the model."""
    hps, content_type, data = EVERY_OTHER[algo]
    hosts = TwoHosts(engine, algo_image(algo), tmp_path, hps, {"train": {"ContentType": content_type}})
    for job in hosts.jobs.values():
        job.add_file("train", "part-0", data())
    codes = hosts.run()
    assert codes == {"algo-1": 0, "algo-2": 0}, {h: log[-3000:] for h, log in hosts.logs_seen.items()}
    for host in HOSTS:
        assert "joined 2 host(s)" in hosts.logs_seen[host], hosts.logs_seen[host][-3000:]
    assert any(hosts.jobs["algo-1"].paths.model_dir.iterdir())
    assert not any(hosts.jobs["algo-2"].paths.model_dir.iterdir())


@pytest.mark.parametrize("algo", sorted(EVERY_OTHER))
def test_sdk_local_mode_trains_every_torch_algorithm_on_two_instances(session, sdk_env, algo_image, algo):
    """instance_count=2 under SDK v2 local mode: the two hosts join one job (a host that did not
    would fail it) and the master's model comes back in model.tar.gz."""
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    hps, content_type, data = EVERY_OTHER[algo]
    channel = sdk_env / f"two-hosts-{algo}" / "train"
    channel.mkdir(parents=True)
    (channel / "part-0").write_bytes(data())
    est = Estimator(image_uri=algo_image(algo), role=ROLE, instance_count=2, instance_type="local",
                    output_path=f"file://{sdk_env / f'two-hosts-{algo}-output'}", sagemaker_session=session,
                    hyperparameters=hps)
    est.fit({"train": TrainingInput(f"file://{channel}", content_type=content_type)}, wait=True, logs=False)
    with tarfile.open(model_artifact(est)) as tar:
        assert tar.getnames()
