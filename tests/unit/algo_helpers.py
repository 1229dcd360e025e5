"""Helpers for the end-to-end tests of the recordIO-family algorithms (K-Means, PCA, k-NN): data
as the SageMaker SDK writes it, a LocalJob trained through the /opt/ml contract, a serving client.
Imported by name (tests/conftest.py puts tests/unit on sys.path); fixtures stay in the test modules."""

from __future__ import annotations

import importlib
import io
import os

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from smalgos.environment import ServingEnv  # noqa: E402
from smalgos.localjob import LocalJob, PipeFeeder  # noqa: E402
from smalgos.serving.app import create_app  # noqa: E402
from smalgos.serving.server import load_model  # noqa: E402
from smalgos.training.runner import run_training  # noqa: E402


def sdk_hyperparameters(estimator: str, feature_dim: int, mini_batch_size: int, **kw) -> dict:
    """The hyperparameters the SageMaker SDK's `estimator` (e.g. "KMeans") really sends."""
    from unittest import mock

    cls = getattr(importlib.import_module("sagemaker"), estimator)
    session = mock.MagicMock(boto_region_name="us-east-1", sagemaker_config=None, local_mode=False)
    est = cls(role="r", instance_count=1, instance_type="ml.c5.xlarge", sagemaker_session=session, **kw)
    est.feature_dim, est.mini_batch_size = feature_dim, mini_batch_size
    return est.hyperparameters()


def csv_bytes(x, y=None) -> bytes:
    """CSV lines of `x`, with `y` as the first column when given."""
    rows = x if y is None else np.column_stack([y, x])
    return "".join(",".join(repr(float(v)) for v in r) + "\n" for r in rows).encode()


def recordio_bytes(x, labels=None) -> bytes:
    """recordIO-protobuf made by the SDK's own writers (dense array or sparse matrix)."""
    from sagemaker.amazon.common import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor

    buf = io.BytesIO()
    (write_spmatrix_to_sparse_tensor if sp.issparse(x) else write_numpy_to_dense_tensor)(buf, x, labels)
    return buf.getvalue()


def train_job(algorithm: str, tmp_path, hps, channels, files, pipe=None):
    """Write the job's config and files, train; `pipe` = (channel, data[, epochs]) feeds Pipe mode."""
    job = LocalJob(tmp_path)
    job.write_config(hps, channels)
    for (ch, name), data in files.items():
        job.add_file(ch, name, data)
    if pipe:
        channel, data, *rest = pipe
        with PipeFeeder(job.paths, channel, data, epochs=rest[0] if rest else 1):
            rc = run_training(algorithm, job.paths, install_signal_handler=False)
    else:
        rc = run_training(algorithm, job.paths, install_signal_handler=False)
    return job, rc


def serving_client(algo, model_dir):
    """A Flask test client of the serving app over the model in `model_dir`."""
    return create_app(algo, load_model(algo, model_dir), ServingEnv.from_env({})).test_client()


def train_on_hosts(algorithm: str, tmp_path, hps: dict, parts: list[bytes], distribution: str,
                   extra: dict | None = None, env: dict | None = None,
                   content_type: str = "text/csv", suffix: str = "csv"):
    """Train `algorithm` as one job of len(parts) hosts (`LocalCluster`, two processes on loopback):
    host algo-N holds the bytes parts[N-1] as train/part.<suffix> (`content_type`, S3DistributionType
    `distribution`), and every host each {channel: bytes} of `extra` (the same type). Every host
    must exit 0 and only the master write a model. Returns ([each host's log], the master's model
    folder)."""
    from smalgos.localjob import LocalCluster

    cluster = LocalCluster(tmp_path, len(parts))
    channels = {"train": {"ContentType": content_type, "S3DistributionType": distribution}}
    channels.update({name: {"ContentType": content_type} for name in (extra or {})})
    for host, job, data in zip(cluster.names, cluster.jobs, parts):
        job.write_config(hps, channels, resources=cluster.resources(host))
        job.add_file("train", f"part.{suffix}", data)
        for name, blob in (extra or {}).items():
            job.add_file(name, f"{name}.{suffix}", blob)
    results = cluster.train(algorithm, timeout=300, env=env)
    for (code, log), job in zip(results, cluster.jobs):
        assert code == 0, (job.failure, log[-3000:])
    for job in cluster.jobs[1:]:
        assert not any(job.paths.model_dir.iterdir()), "a host other than the master wrote a model"
    return [log for _, log in results], cluster.jobs[0].paths.model_dir


def assert_image_request_errors(client, image: bytes, refused_accepts: tuple[str, ...] = (),
                                content_type: str = "application/x-image") -> None:
    """What every vision endpoint answers alike: a body that is not an image → 400 ClientError that
    names the request body; text/csv → 415; `image` asked for in each of `refused_accepts` → 406."""
    import json

    r = client.post("/invocations", data=b"not an image", content_type=content_type)
    body = json.loads(r.data)
    assert r.status_code == 400 and body["error"] == "ClientError", body
    assert body["message"].startswith(f"Request body ({content_type}, 12 bytes): the image cannot be decoded"), body
    assert client.post("/invocations", data=b"1,2", content_type="text/csv").status_code == 415
    for accept in refused_accepts:
        assert client.post("/invocations", data=image, content_type="image/jpeg",
                           headers={"Accept": accept}).status_code == 406, accept
