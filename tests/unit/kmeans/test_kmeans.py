"""K-Means end to end through the /opt/ml contract, plus the maths core against scikit-learn."""
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
from smalgos_kmeans.model import META_FILE, MODEL_FILE, WebScaleKMeans

ALGO = load_algorithm("kmeans")

# Three tight clusters; every point sits exactly on (0, 0), (10, 0) or (0, 10), so the model's
# centroids are exact and response bodies can be compared byte for byte.
CORNERS = np.array([[0, 0], [10, 0], [0, 10]], np.float32)
POINTS = np.repeat(CORNERS, 20, axis=0)[np.random.default_rng(0).permutation(60)]  # streamed shuffled


def sdk_hyperparameters(**kw):
    """The hyperparameters the SageMaker SDK's KMeans estimator really sends."""
    return algo_helpers.sdk_hyperparameters("KMeans", feature_dim=2, mini_batch_size=25, **kw)


train_job = functools.partial(algo_helpers.train_job, "kmeans")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    job, rc = train_job(tmp_path_factory.mktemp("km"), sdk_hyperparameters(k=3, eval_metrics=["msd", "ssd"]),
                        {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv"}},
                        {("train", "part-0.csv"): csv_bytes(POINTS), ("test", "t.csv"): csv_bytes(POINTS + [3, 4])})
    assert rc == 0, job.failure
    return job


@pytest.fixture(scope="module")
def client(trained):
    return serving_client(ALGO, trained.paths.model_dir)


def cluster_of(trained, corner):
    centroids = WebScaleKMeans.load(trained.paths.model_dir).cluster_centers_
    return float(np.argmin(((centroids - corner) ** 2).sum(1)))


# -- training ----------------------------------------------------------------------------------

def test_sdk_hyperparameters_train_and_the_model_is_safe_files(trained):
    files = sorted(p.name for p in trained.paths.model_dir.iterdir())
    assert files == [META_FILE, MODEL_FILE]
    from safetensors.numpy import load_file
    centroids = load_file(str(trained.paths.model_dir / MODEL_FILE))["centroids"]
    assert centroids.dtype == np.float32 and centroids.shape == (3, 2)
    np.testing.assert_allclose(np.sort(centroids, axis=0), np.sort(CORNERS, axis=0), atol=1e-5)
    assert json.loads((trained.paths.model_dir / META_FILE).read_text())["k"] == 3


def test_metric_lines_match_the_declared_regexes(tmp_path, capfd, caplog):
    job, rc = train_job(tmp_path, {"k": 3, "feature_dim": 2, "eval_metrics": '["msd", "ssd"]', "epochs": 2,
                                   "mini_batch_size": 25},
                        {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv"}},
                        {("train", "a.csv"): csv_bytes(POINTS), ("test", "t.csv"): csv_bytes(POINTS + [3, 4])})
    assert rc == 0, job.failure
    out = capfd.readouterr().out
    values = {}
    for m in ALGO.metrics:
        found = re.findall(m.regex, out)
        assert found, f"no line for {m.name}"
        values[m.name] = float(found[-1])
    assert values["test:msd"] == pytest.approx(25.0, rel=1e-6)   # every test point is (3, 4) away
    assert values["test:ssd"] == pytest.approx(25.0 * 60, rel=1e-6)
    assert values["train:msd"] == pytest.approx(0.0, abs=1e-6)
    assert "#test_score (algo-1) : ('msd', 25.0)" in out
    # The first mini-batch (25 records) is smaller than K = 3 x 10: AWS's warning, then 25 centres.
    assert "Effective batch size used to initialize is 25" in caplog.text
    assert "shrinking 25 centers into 3" in caplog.text
    assert '"Algorithm": "AWS/KMeansWebscale"' in out


@pytest.mark.parametrize("sparse", [False, True])
def test_pipe_mode_sdk_recordio_two_epochs(tmp_path, sparse):
    x = sp.csr_matrix(POINTS) if sparse else POINTS
    data = recordio_bytes(x, labels=np.zeros(len(POINTS), np.float32))  # labels are ignored
    job, rc = train_job(tmp_path, {"k": 3, "feature_dim": 2, "epochs": 2, "mini_batch_size": 25},
                        {"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "Pipe"}},
                        {}, pipe=("train", data, 2))
    assert rc == 0, job.failure
    centroids = WebScaleKMeans.load(job.paths.model_dir).cluster_centers_
    np.testing.assert_allclose(np.sort(centroids, axis=0), np.sort(CORNERS, axis=0), atol=1e-5)


@pytest.mark.parametrize("hps, files, first_line", [
    ({"k": 3, "feature_dim": 3}, {("train", "a.csv"): csv_bytes(POINTS)},
     "ClientError: Channel 'train': records have 2 features but hyperparameter feature_dim is 3"),
    ({"k": 100, "feature_dim": 2}, {("train", "a.csv"): csv_bytes(POINTS)},
     "ClientError: Channel 'train': only 60 records in the first mini-batch: fewer than k=100"),
    ({"k": 10, "feature_dim": 2, "mini_batch_size": 5}, {("train", "a.csv"): csv_bytes(POINTS)},
     "ClientError: Hyperparameter mini_batch_size (5) must be at least k (10): the first mini-batch seeds"),
    ({"k": 3, "feature_dim": 2, "eval_metrics": '["mse"]'}, {("train", "a.csv"): csv_bytes(POINTS)},
     "ClientError: Hyperparameter eval_metrics: 'mse' not among msd, ssd"),
    ({"k": 3, "feature_dim": 2, "init_method": "k-means"}, {("train", "a.csv"): csv_bytes(POINTS)},
     "ClientError: Hyperparameter init_method: value 'k-means' is not one of random, kmeans++"),
    ({"k": 3}, {("train", "a.csv"): csv_bytes(POINTS)}, "ClientError: Missing required hyperparameter: feature_dim"),
    ({"k": 3, "feature_dim": 2}, {("train", "a.csv"): b"1,2\nnan,3\n"},
     "ClientError: Channel 'train': 1 feature value(s) are NaN or infinite"),
    ({"k": 3, "feature_dim": 2}, {("train", "a.csv"): b""}, "ClientError: Channel 'train' holds no records"),
])
def test_user_errors_end_in_the_failure_file(tmp_path, hps, files, first_line):
    job, rc = train_job(tmp_path, hps, {"train": {"ContentType": "text/csv"}}, files)
    assert rc == 1
    assert job.failure.splitlines()[0].startswith(first_line), job.failure


def test_mini_batch_smaller_than_k_is_a_hyperparameter_error():
    with pytest.raises(ClientError, match=r"Hyperparameter mini_batch_size \(5\) must be at least k \(10\)"):
        ALGO.hyperparameters.parse({"k": "10", "feature_dim": "2", "mini_batch_size": "5"})
    with pytest.raises(ClientError, match=r"mini_batch_size \(5\) must be at least k \(10\)"):
        WebScaleKMeans(10, mini_batch_size=5).fit(POINTS)
    assert ALGO.hyperparameters.parse({"k": "10", "feature_dim": "2", "mini_batch_size": "10"})["mini_batch_size"] == 10


def test_undeclared_hidden_key_is_refused():
    with pytest.raises(ClientError, match=r"Unknown hyperparameter: _kvstorr\b"):
        ALGO.hyperparameters.parse({"k": "3", "feature_dim": "2", "_kvstorr": "auto"})


def test_default_input_hidden_keys_are_accepted_and_dropped():
    # Every hidden key of AWS's default-input.json (spec §4.1) and HPO's _tuning_objective_metric.
    hidden = {"_disable_wait_to_read": "false", "_enable_profiler": "false", "_kvstore": "auto", "_log_level": "info",
              "_num_gpus": "auto", "_num_kv_servers": "1", "_num_slices": "1", "_tuning_objective_metric": "test:msd",
              "sagemaker_region": '"us-east-1"'}
    hp = ALGO.hyperparameters.parse({"k": "3", "feature_dim": "2", "force_dense": "True", **hidden})
    assert not set(hidden) & set(hp)
    assert "force_dense" not in WebScaleKMeans.from_hyperparameters(hp).get_params()


def test_hidden_and_tuning_keys_are_accepted(tmp_path):
    hps = {"k": 3, "feature_dim": 2, "force_dense": "True", "_kvstore": "auto", "_num_gpus": "auto",
           "_tuning_objective_metric": "test:msd", "extra_center_factor": "2", "local_lloyd_num_trials": "auto",
           "init_method": "kmeans++", "local_lloyd_init_method": "random", "half_life_time_size": "30"}
    job, rc = train_job(tmp_path, hps, {"train": {"ContentType": "text/csv;label_size=0"}},
                        {("train", "a.csv"): csv_bytes(POINTS)})
    assert rc == 0, job.failure


# -- serving -----------------------------------------------------------------------------------

def test_json_response_body_is_exact(client, trained):
    r = client.post("/invocations", data=b"0,3\n13,4\n", content_type="text/csv")
    assert r.status_code == 200 and r.mimetype == "application/json"
    a, b = cluster_of(trained, [0, 0]), cluster_of(trained, [10, 0])
    assert r.data == (f'{{"predictions": [{{"closest_cluster": {a}, "distance_to_cluster": 3.0}}, '
                      f'{{"closest_cluster": {b}, "distance_to_cluster": 5.0}}]}}').encode()


def test_jsonlines_and_csv_response_bodies_are_exact(client, trained):
    body = b'{"features": [0, 3]}\n{"data": {"features": {"values": [13, 4]}}}\n'
    a, b = cluster_of(trained, [0, 0]), cluster_of(trained, [10, 0])
    r = client.post("/invocations", data=body, headers={"Content-Type": "application/jsonlines",
                                                        "Accept": "application/jsonlines"})
    assert r.status_code == 200
    assert r.data == (f'{{"closest_cluster": {a}, "distance_to_cluster": 3.0}}\n'
                      f'{{"closest_cluster": {b}, "distance_to_cluster": 5.0}}\n').encode()
    r = client.post("/invocations", data=b'{"instances": [{"features": [0, 3]}, {"features": [13, 4]}]}',
                    headers={"Content-Type": "application/json", "Accept": "text/csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.data == f"{a},3.0\n{b},5.0\n".encode()


def test_recordio_protobuf_both_ways_with_the_sdk(client, trained):
    from sagemaker.deserializers import RecordDeserializer
    r = client.post("/invocations", data=recordio_bytes(np.array([[0, 3], [13, 4]], np.float32)), headers={
        "Content-Type": "application/x-recordio-protobuf", "Accept": "application/x-recordio-protobuf"})
    assert r.status_code == 200
    records = RecordDeserializer().deserialize(io.BytesIO(r.data), r.mimetype)
    assert len(records) == 2 and all(len(rec.features) == 0 for rec in records)
    got = [(rec.label["closest_cluster"].float32_tensor.values[0], rec.label["distance_to_cluster"].float32_tensor.values[0])
           for rec in records]
    assert got == [(cluster_of(trained, [0, 0]), 3.0), (cluster_of(trained, [10, 0]), 5.0)]


def test_sparse_recordio_request(client, trained):
    r = client.post("/invocations", data=recordio_bytes(sp.csr_matrix(np.array([[0, 3]], np.float32))),
                    headers={"Content-Type": "application/x-recordio-protobuf"})
    assert r.status_code == 200
    assert r.get_json() == {"predictions": [{"closest_cluster": cluster_of(trained, [0, 0]), "distance_to_cluster": 3.0}]}


@pytest.mark.parametrize("body, fragment", [
    (b"1,2,3\n", "Feature count mismatch: the model was trained on 2 features but the request has 3"),
    (b"1,nan\n", "NaN or infinite"),
])
def test_bad_requests_are_400(client, body, fragment):
    r = client.post("/invocations", data=body, content_type="text/csv")
    assert r.status_code == 400 and fragment in r.get_json()["message"]


# -- the maths core ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True])
def test_core_dense_and_sparse_give_the_same_model(dtype, sparse):
    rng = np.random.default_rng(1)
    x = (np.repeat(CORNERS, 50, axis=0) + rng.normal(0, 0.5, (150, 2))).astype(dtype)
    ref = WebScaleKMeans(3, mini_batch_size=40, epochs=2).fit(x)
    got = WebScaleKMeans(3, mini_batch_size=40, epochs=2).fit(sp.csr_matrix(x) if sparse else x)
    np.testing.assert_allclose(got.cluster_centers_, ref.cluster_centers_, rtol=1e-5, atol=1e-5)
    assert got.cluster_centers_.dtype == np.float32
    labels, dist = got.closest(x)
    assert labels.dtype == np.int64 and dist.dtype == np.float32 and dist.max() < 3


def test_core_within_2_percent_of_scikit_learn_on_digits(caplog):
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits
    x = load_digits().data.astype(np.float32)
    ours = WebScaleKMeans(10, local_lloyd_num_trials=10).fit(x)  # AWS's defaults otherwise
    ssd, n = ours.sum_squared_distances(x)
    theirs = KMeans(10, n_init=10, random_state=0).fit(x).inertia_
    assert n == len(x) and ssd <= 1.02 * theirs, (ssd, theirs)
    assert ours.train_msd_ == pytest.approx(ssd / n, rel=0.05)  # estimated without another pass
    assert "local kmeans attempt #9. Current mean square distance" in caplog.text


def test_core_half_life_forgets_old_points():
    old = np.zeros((200, 1), np.float32)
    new = np.full((200, 1), 10.0, np.float32)
    x = np.concatenate([old, new])
    plain = WebScaleKMeans(1, extra_center_factor=1, mini_batch_size=20).fit(x)
    decayed = WebScaleKMeans(1, extra_center_factor=1, mini_batch_size=20, half_life_time_size=20).fit(x)
    assert plain.cluster_centers_[0, 0] == pytest.approx(5.0, abs=1e-4)
    assert decayed.cluster_centers_[0, 0] > 9.9
