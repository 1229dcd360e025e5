"""PCA end to end through the /opt/ml contract, plus the maths core against scikit-learn."""
import functools
import io
import json
import re

import numpy as np
import pytest
import scipy.sparse as sp

import algo_helpers
from algo_helpers import csv_bytes, recordio_bytes, serving_client
from smalgos.declaration import load_algorithm
from smalgos.errors import ClientError
from smalgos_pca.model import META_FILE, MODEL_FILE, StreamingPCA

ALGO = load_algorithm("pca")

# Points on the plane spanned by e1 (variance large) and e2 (variance small), mean (1, 1, 1):
# the model is exact, so response bodies can be compared byte for byte.
_a, _b = np.tile([-4.0, 4.0], 20), np.tile([-1.0, -1.0, 1.0, 1.0], 10)  # zero means, uncorrelated
POINTS = np.column_stack([1 + _a, 1 + _b, np.ones(40)]).astype(np.float32)


def sdk_hyperparameters(**kw):
    """The hyperparameters the SageMaker SDK's PCA estimator really sends."""
    return algo_helpers.sdk_hyperparameters("PCA", feature_dim=3, mini_batch_size=16, **kw)


train_job = functools.partial(algo_helpers.train_job, "pca")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    job, rc = train_job(tmp_path_factory.mktemp("pca"), sdk_hyperparameters(num_components=2),
                        {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv"}},
                        {("train", "a.csv"): csv_bytes(POINTS[:25]), ("train", "b.csv"): csv_bytes(POINTS[25:]),
                         ("test", "t.csv"): csv_bytes(POINTS)})
    assert rc == 0, job.failure
    return job


@pytest.fixture(scope="module")
def client(trained):
    return serving_client(ALGO, trained.paths.model_dir)


# -- training ----------------------------------------------------------------------------------

def test_model_has_aws_layout_in_safe_files(trained):
    from safetensors.numpy import load_file
    assert sorted(p.name for p in trained.paths.model_dir.iterdir()) == [META_FILE, MODEL_FILE]
    t = load_file(str(trained.paths.model_dir / MODEL_FILE))
    assert t["s"].shape == (2,) and t["v"].shape == (3, 2) and t["mean"].shape == (1, 3)
    np.testing.assert_allclose(t["s"], [np.sqrt(40.0), np.sqrt(640.0)], rtol=1e-5)  # ascending
    np.testing.assert_allclose(t["v"], [[0, 1], [1, 0], [0, 0]], atol=1e-6)       # most significant last
    np.testing.assert_allclose(t["mean"], [[1 + _a.mean(), 1 + _b.mean(), 1]], rtol=1e-5)
    assert json.loads((trained.paths.model_dir / META_FILE).read_text())["subtract_mean"] is True


@pytest.mark.parametrize("mode", ["regular", "randomized"])
@pytest.mark.parametrize("sparse", [False, True])
def test_pipe_mode_sdk_recordio(tmp_path, mode, sparse):
    x = sp.csr_matrix(POINTS) if sparse else POINTS
    job, rc = train_job(tmp_path, {"feature_dim": 3, "num_components": 2, "mini_batch_size": 16,
                                   "algorithm_mode": mode, "extra_components": 1},
                        {"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "Pipe"}},
                        {}, pipe=("train", recordio_bytes(x, np.zeros(40, np.float32))))
    assert rc == 0, job.failure
    pca = StreamingPCA.load(job.paths.model_dir)
    np.testing.assert_allclose(pca.singular_values_, [np.sqrt(40.0), np.sqrt(640.0)], rtol=1e-4)
    np.testing.assert_allclose(np.abs(pca.components_), [[0, 1], [1, 0], [0, 0]], atol=1e-4)


def test_default_conf_hidden_keys_are_accepted_and_others_refused():
    base = {"feature_dim": "3", "num_components": "1", "mini_batch_size": "16"}
    hidden = {"_kvstore": "dist_sync", "_num_kv_servers": "auto", "_num_gpus": "auto", "_log_level": "info"}
    hp = ALGO.hyperparameters.parse({**base, **hidden, "force_dense": "True", "epochs": "1"})
    assert not set(hidden) & set(hp)
    assert not {"force_dense", "epochs"} & set(StreamingPCA.from_hyperparameters(hp).get_params())
    with pytest.raises(ClientError, match="Unknown hyperparameter: _kvstorr "):
        ALGO.hyperparameters.parse({**base, "_kvstorr": "dist_sync"})


def test_log_lines(tmp_path, capfd, caplog):
    job, rc = train_job(tmp_path, {"feature_dim": 3, "num_components": 1, "mini_batch_size": 16, "_kvstore": "dist_sync",
                                   "force_dense": "True", "epochs": "1"},
                        {"train": {"ContentType": "text/csv;label_size=0"}, "test": {"ContentType": "text/csv"}},
                        {("train", "a.csv"): csv_bytes(POINTS), ("test", "t.csv"): csv_bytes(POINTS)})
    assert rc == 0, job.failure
    out = capfd.readouterr().out
    for m in ALGO.metrics:
        assert re.search(m.regex, out), m.name
    assert '"Algorithm": "PCA"' in out
    assert "3 feature(s) found in 'data'." in caplog.text
    assert re.search(r"mean squared reconstruction error 1\.0\b", caplog.text)  # the e2 variance left out


@pytest.mark.parametrize("hps, first_line", [
    ({"feature_dim": 3, "mini_batch_size": 10}, "ClientError: Missing required hyperparameter: num_components"),
    ({"feature_dim": 3, "num_components": 2}, "ClientError: Missing required hyperparameter: mini_batch_size"),
    ({"feature_dim": 3, "num_components": 4, "mini_batch_size": 10},
     "ClientError: Hyperparameter num_components (4) must not exceed feature_dim (3)"),
    ({"feature_dim": 4, "num_components": 2, "mini_batch_size": 10},
     "ClientError: Channel 'train': records have 3 features but hyperparameter feature_dim is 4"),
    ({"feature_dim": 3, "num_components": 2, "mini_batch_size": 10, "algorithm_mode": "fast"},
     "ClientError: Hyperparameter algorithm_mode: value 'fast' is not one of regular, randomized"),
    ({"feature_dim": 3, "num_components": 2, "mini_batch_size": 10, "extra_components": -2},
     "ClientError: Hyperparameter extra_components: value -2 is outside the range [-1, inf)"),
])
def test_user_errors_end_in_the_failure_file(tmp_path, hps, first_line):
    job, rc = train_job(tmp_path, hps, {"train": {"ContentType": "text/csv"}}, {("train", "a.csv"): csv_bytes(POINTS)})
    assert rc == 1 and job.failure.splitlines()[0].startswith(first_line), job.failure


# -- serving -----------------------------------------------------------------------------------

def projection_of(row):
    """What the trained model must answer: (x − mean)·v with v = [e2, e1]."""
    mean = np.array([1 + _a.mean(), 1 + _b.mean(), 1], np.float32)
    c = np.asarray(row, np.float32) - mean
    return [float(np.float32(c[1])), float(np.float32(c[0]))]


def test_json_root_key_is_projections_and_body_is_exact(client, trained):
    pca = StreamingPCA.load(trained.paths.model_dir)
    sign = np.sign(pca.components_[[1, 0], [0, 1]])  # columns' signs as fixed by the model
    r = client.post("/invocations", data=b"1,1,1\n5,2,1\n", content_type="text/csv")
    assert r.status_code == 200 and r.mimetype == "application/json"
    got = pca.transform(np.array([[1, 1, 1], [5, 2, 1]], np.float32))
    expected = [[float(v) for v in row] for row in got]
    np.testing.assert_allclose(np.array(expected) * sign, [projection_of([1, 1, 1]), projection_of([5, 2, 1])], atol=1e-6)
    assert r.data == json.dumps({"projections": [{"projection": e} for e in expected]}).encode()


def test_jsonlines_and_recordio_answers(client):
    from sagemaker.deserializers import RecordDeserializer
    r = client.post("/invocations", data=b'{"features": [1, 1, 1]}\n{"features": [5, 2, 1]}\n',
                    headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"})
    lines = [json.loads(l) for l in r.data.decode().splitlines()]
    assert r.status_code == 200 and [list(d) for d in lines] == [["projection"], ["projection"]]
    r2 = client.post("/invocations", data=recordio_bytes(np.array([[1, 1, 1], [5, 2, 1]], np.float32)),
                     headers={"Content-Type": "application/x-recordio-protobuf",
                              "Accept": "application/x-recordio-protobuf"})
    records = RecordDeserializer().deserialize(io.BytesIO(r2.data), r2.mimetype)
    assert [list(rec.label["projection"].float32_tensor.values) for rec in records] == [d["projection"] for d in lines]
    r3 = client.post("/invocations", data=b"1,1,1\n", headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    assert r3.status_code == 406


def test_feature_count_mismatch_is_400(client):
    r = client.post("/invocations", data=b"1,2\n", content_type="text/csv")
    assert r.status_code == 400 and "trained on 3 features" in r.get_json()["message"]


# -- the maths core ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    return load_digits().data.astype(np.float32)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regular_matches_scikit_learn_up_to_sign(digits, sparse, dtype):
    from sklearn.decomposition import PCA
    x = digits.astype(dtype)
    ref = PCA(10, svd_solver="full").fit(x)
    ours = StreamingPCA(10, mini_batch_size=500).fit(sp.csr_matrix(x) if sparse else x)
    z_ref = ref.transform(x)
    z = ours.transform(sp.csr_matrix(x) if sparse else x)[:, ::-1]  # AWS order: most significant last
    z *= np.sign((z * z_ref).sum(0))
    assert np.abs(z - z_ref).max() <= 1e-3 * np.abs(z_ref).max()
    np.testing.assert_allclose(ours.singular_values_[::-1], ref.singular_values_, rtol=1e-5)
    np.testing.assert_allclose(ours.mean_[0], ref.mean_, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sparse", [False, True])
def test_randomized_within_1_percent_explained_variance(digits, sparse):
    from sklearn.decomposition import PCA
    ref = PCA(10, svd_solver="full").fit(digits)
    ours = StreamingPCA(10, algorithm_mode="randomized", mini_batch_size=500).fit(
        sp.csr_matrix(digits) if sparse else digits)
    centred = digits.astype(np.float64) - digits.mean(0)
    captured = ((centred @ ours.components_) ** 2).sum() / (centred ** 2).sum()
    assert captured == pytest.approx(ref.explained_variance_ratio_.sum(), rel=0.01)
    np.testing.assert_allclose(ours.explained_variance_[::-1], ref.explained_variance_, rtol=0.01)


def test_subtract_mean_false_projects_raw_data(digits):
    ours = StreamingPCA(3, subtract_mean=False).fit(digits)
    assert not ours.mean_.any()
    np.testing.assert_allclose(ours.transform(digits), digits @ ours.components_, rtol=1e-4, atol=1e-3)
    _, s, vt = np.linalg.svd(digits.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(ours.singular_values_[::-1], s[:3], rtol=1e-5)
