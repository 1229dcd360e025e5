"""xgboost, kmeans, pca and knn images driven by SageMaker Python SDK v2 local mode, as a user
would: `Estimator(image_uri=ours, instance_type="local")`, `fit` on file:// channels, `deploy`,
`predict`, with the answers checked against the model the job wrote.

One test per algorithm (CI has two cores): each builds its image once (through the build cache),
trains on a small data set, serves it and deletes its endpoint. Local mode exits 0 even when the
training container fails, so every test reads the artifacts first (helpers.model_artifact).
"""

from __future__ import annotations

import io
import re
import tarfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from .helpers import DATA, ROLE, load_split, model_artifact

pytestmark = pytest.mark.container

RECORDIO = "application/x-recordio-protobuf"


def recordio(x, labels=None) -> bytes:
    """recordIO-protobuf written by the SDK's own writer."""
    from sagemaker.amazon.common import write_numpy_to_dense_tensor

    buf = io.BytesIO()
    write_numpy_to_dense_tensor(buf, np.asarray(x, np.float32), None if labels is None else np.asarray(labels))
    return buf.getvalue()


def csv(x) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in np.atleast_2d(x)).encode()


def fit(session, root: Path, image: str, hyperparameters: dict, channels: dict):
    """Fit an Estimator on `channels`: {name: (content_type, {file name: bytes})}; check that the
    job really succeeded and return (estimator, local path of model.tar.gz)."""
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    name = image.split("/")[-1].split(":")[0]
    inputs = {}
    for channel, (content_type, files) in channels.items():
        folder = root / "data" / name / channel
        folder.mkdir(parents=True)
        for file_name, body in files.items():
            (folder / file_name).write_bytes(body)
        inputs[channel] = TrainingInput(f"file://{folder}", content_type=content_type)
    est = Estimator(image_uri=image, role=ROLE, instance_count=1, instance_type="local",
                    output_path=f"file://{root / 'output' / name}", sagemaker_session=session,
                    hyperparameters=hyperparameters)
    est.fit(inputs, wait=True, logs=False)
    return est, model_artifact(est)


@contextmanager
def deployed(estimator, serializer, deserializer):
    """A local endpoint on the estimator's model; deleted on the way out.

    wait=False: local mode's create_endpoint already waits for /ping to answer 200; waiting on top
    only adds the SDK's fixed 30 s poll (Session.wait_for_endpoint sleeps before its first look)."""
    predictor = estimator.deploy(initial_instance_count=1, instance_type="local", wait=False,
                                 serializer=serializer, deserializer=deserializer)
    try:
        yield predictor
    finally:
        predictor.delete_endpoint()


def extract(model_tar: Path, member: str, into: Path) -> Path:
    with tarfile.open(model_tar) as tar:
        tar.extract(member, into, filter="data")
    return into / member


def blobs(centres, per_centre: int, scale: float, seed: int):
    """Points around each centre (tight, so the clusters/classes are separable), and their labels."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, np.float32)
    x = np.concatenate([c + scale * rng.standard_normal((per_centre, centres.shape[1])) for c in centres])
    y = np.repeat(np.arange(len(centres)), per_centre)
    order = rng.permutation(len(x))
    return x[order].astype(np.float32), y[order].astype(np.float32)


def test_xgboost_csv_and_libsvm_fit_then_csv_predictions_equal_the_booster(algo_image, session, sdk_env,
                                                                           tmp_path):
    import xgboost
    from sagemaker.deserializers import BytesDeserializer
    from sagemaker.serializers import CSVSerializer

    image = algo_image("xgboost")
    x_test, y_test = load_split("test")
    # Validation as LibSVM, columns numbered as the CSV's feature columns (0-based, as written).
    libsvm = "".join(f"{int(label)} " + " ".join(f"{j}:{v!r}" for j, v in enumerate(map(float, row))) + "\n"
                     for row, label in zip(x_test, y_test)).encode()
    est, model_tar = fit(session, sdk_env, image,
                         {"num_round": 10, "objective": "binary:logistic", "max_depth": 3, "eta": 0.3},
                         {"train": ("text/csv", {"train.csv": (DATA / "train.csv").read_bytes()}),
                          "validation": ("text/libsvm", {"test.libsvm": libsvm})})
    booster = xgboost.Booster()
    booster.load_model(str(extract(model_tar, "xgboost-model", tmp_path)))
    expected = booster.predict(xgboost.DMatrix(x_test))
    assert booster.num_boosted_rounds() == 10

    # BytesDeserializer sends Accept */*: the answer is the default, CSV.
    with deployed(est, CSVSerializer(), BytesDeserializer()) as predictor:
        body = predictor.predict(x_test).decode()
    got = np.array([float(v) for v in re.split(r"[,\s]+", body.strip())])
    assert got.shape == expected.shape, body[:500]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.mean((got > 0.5) == y_test) > 0.9


def test_kmeans_recordio_fit_then_recordio_clusters_match_the_centroids(algo_image, session, sdk_env, tmp_path):
    from safetensors.numpy import load_file
    from sagemaker.amazon.common import RecordDeserializer, RecordSerializer

    image = algo_image("kmeans")
    centres = [[0, 0, 0, 0], [10, 0, 0, 0], [0, 10, 0, 0]]
    x, y = blobs(centres, 60, 0.5, seed=0)
    # What the SDK's KMeans(k=3) sends, feature_dim and mini_batch_size set by its record_set().
    hps = {"k": 3, "feature_dim": 4, "mini_batch_size": 50, "force_dense": "True"}
    est, model_tar = fit(session, sdk_env, image, hps, {"train": (RECORDIO, {"train.pbr": recordio(x)})})
    centroids = load_file(str(extract(model_tar, "model_algo-1.safetensors", tmp_path)))["centroids"]
    assert centroids.shape == (3, 4)

    queries, truth = blobs(centres, 4, 0.5, seed=1)
    with deployed(est, RecordSerializer(), RecordDeserializer()) as predictor:
        records = predictor.predict(queries)
    cluster = np.array([r.label["closest_cluster"].float32_tensor.values[0] for r in records])
    distance = np.array([r.label["distance_to_cluster"].float32_tensor.values[0] for r in records])
    assert cluster.shape == (len(queries),) and set(cluster) <= {0.0, 1.0, 2.0}
    d = np.sqrt(((queries[:, None, :] - centroids[None]) ** 2).sum(-1))
    np.testing.assert_array_equal(cluster, d.argmin(1))
    np.testing.assert_allclose(distance, d.min(1), rtol=1e-4, atol=1e-4)
    # Each blob is one cluster, a different one per blob.
    mapping = {t: set(cluster[truth == t]) for t in set(truth)}
    assert all(len(c) == 1 for c in mapping.values()) and len(set.union(*mapping.values())) == 3, mapping


def test_pca_csv_fit_then_csv_to_json_projections(algo_image, session, sdk_env):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer

    image = algo_image("pca")
    rng = np.random.default_rng(2)
    # Variance along 5 axes 25, 4, 0.25, 0.01, 0.01, rotated: two clear principal components.
    basis, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    x = ((rng.standard_normal((300, 5)) * [5, 2, 0.5, 0.1, 0.1]) @ basis.T + 3).astype(np.float32)
    est, _ = fit(session, sdk_env, image, {"feature_dim": 5, "num_components": 2, "mini_batch_size": 100},
                 {"train": ("text/csv;label_size=0", {"train.csv": csv(x)})})

    queries = x[:8]
    with deployed(est, CSVSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict(queries)
    assert list(answer) == ["projections"] and len(answer["projections"]) == len(queries), answer
    got = np.array([p["projection"] for p in answer["projections"]])
    assert got.shape == (8, 2)
    # Against numpy's principal axes, up to each component's sign (the container subtracts the mean).
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    expected = (queries - x.mean(0)) @ vt[:2].T
    # As AWS's PCA, the last component is the most significant (singular values ascending).
    for g, e in zip(got[:, ::-1].T, expected.T):
        np.testing.assert_allclose(g * np.sign(g @ e), e, atol=1e-3 * np.abs(e).max())


def test_knn_labelled_recordio_fit_then_classifies_held_out_points(algo_image, session, sdk_env):
    from sagemaker.amazon.common import RecordSerializer
    from sagemaker.deserializers import JSONDeserializer

    image = algo_image("knn")
    centres = [[5, 5, 0], [-5, 5, 0], [0, -5, 5]]
    x, y = blobs(centres, 50, 1.0, seed=3)
    hps = {"feature_dim": 3, "k": 5, "predictor_type": "classifier", "sample_size": 150,
           "mini_batch_size": 50, "force_dense": "True"}
    est, _ = fit(session, sdk_env, image, hps, {"train": (RECORDIO, {"train.pbr": recordio(x, y)})})

    queries, truth = blobs(centres, 4, 1.0, seed=4)
    with deployed(est, RecordSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict(queries)
    labels = np.array([p["predicted_label"] for p in answer["predictions"]])
    assert labels.shape == truth.shape, answer
    np.testing.assert_array_equal(labels, truth)
