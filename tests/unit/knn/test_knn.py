"""k-NN end to end through the /opt/ml contract, plus the maths core against scikit-learn."""
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
from smalgos.environment import ServingEnv
from smalgos.serving.app import create_app
from smalgos.serving.server import load_model
from smalgos_knn.model import (INDEX_FILE, LABELS_FILE, META_FILE, PROJECTION_FILE, KNearestNeighbors,
                               ReservoirSampler, majority_vote)

ALGO = load_algorithm("knn")

# Labelled points on a line: label 0 at x = 0, 1, 2; label 1 at x = 10, 11; label 2 at x = 20.
X_TRAIN = np.array([[0, 0], [1, 0], [2, 0], [10, 0], [11, 0], [20, 0]], np.float32)
Y_TRAIN = np.array([0, 0, 0, 1, 1, 2], np.float32)


def sdk_hyperparameters(**kw):
    """The hyperparameters the SageMaker SDK's KNN estimator really sends."""
    return algo_helpers.sdk_hyperparameters("KNN", feature_dim=2, mini_batch_size=4, **kw)


train_job = functools.partial(algo_helpers.train_job, "knn")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    job, rc = train_job(tmp_path_factory.mktemp("knn"),
                        sdk_hyperparameters(k=3, sample_size=100, predictor_type="classifier"),
                        {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv"}},
                        {("train", "a.csv"): csv_bytes(X_TRAIN, Y_TRAIN), ("test", "t.csv"): csv_bytes(X_TRAIN, Y_TRAIN)})
    assert rc == 0, job.failure
    return job


@pytest.fixture(scope="module")
def client(trained):
    return serving_client(ALGO, trained.paths.model_dir)


# -- training ----------------------------------------------------------------------------------

def test_artifacts_are_aws_files_and_not_pickles(trained):
    d = trained.paths.model_dir
    assert sorted(p.name for p in d.iterdir()) == [INDEX_FILE, META_FILE, LABELS_FILE]
    np.testing.assert_array_equal(np.fromfile(d / LABELS_FILE, dtype="<f4"), Y_TRAIN)
    meta = json.loads((d / META_FILE).read_text())
    assert {k: meta[k] for k in ("k", "predictor_type", "dimension_reduction", "normalize", "version")} == {
        "k": 3, "predictor_type": "classifier", "dimension_reduction": None, "normalize": False, "version": "1.0"}
    assert (d / INDEX_FILE).read_bytes()[:4] == b"IxF2"  # faiss's own IndexFlatL2 header


def test_metric_lines(tmp_path, capfd):
    job, rc = train_job(tmp_path, {"feature_dim": 2, "k": 1, "sample_size": 10, "predictor_type": "regressor",
                                   "_faiss_index_nprobe": "5", "_kvstore": "dist_async", "force_dense": "True"},
                        {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv"}},
                        {("train", "a.csv"): csv_bytes(X_TRAIN, Y_TRAIN),
                         ("test", "t.csv"): csv_bytes(X_TRAIN + [0, 0.5], Y_TRAIN + 1)})
    assert rc == 0, job.failure
    out = capfd.readouterr().out
    m = ALGO.metric("test:mse")
    assert float(re.search(m.regex, out).group(1)) == 1.0
    assert "#test_score (algo-1) : ('mse', 1.0)" in out and '"Algorithm": "AWS/KNN"' in out
    assert re.search(ALGO.metric("train:throughput").regex, out)


@pytest.mark.parametrize("reduction", [None, "sign", "fjlt"])
def test_pipe_mode_sdk_recordio_with_dimension_reduction(tmp_path, capfd, reduction):
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 8)).astype(np.float32)
    y = np.repeat(np.arange(3), 30).astype(np.float32)
    x = centres[y.astype(int)] + rng.normal(0, 0.5, (90, 8)).astype(np.float32)
    hps = {"feature_dim": 8, "k": 5, "sample_size": 60, "predictor_type": "classifier", "mini_batch_size": 16}
    if reduction:
        hps.update(dimension_reduction_type=reduction, dimension_reduction_target=4)
    job, rc = train_job(tmp_path, hps,
                        {"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "Pipe"},
                         "test": {"ContentType": "application/x-recordio-protobuf"}},
                        {("test", "t.pbr"): recordio_bytes(sp.csr_matrix(x), y)},
                        pipe=("train", recordio_bytes(x, y)))
    assert rc == 0, job.failure
    assert float(re.search(ALGO.metric("test:accuracy").regex, capfd.readouterr().out).group(1)) == 1.0
    knn = KNearestNeighbors.load(job.paths.model_dir)
    assert knn.index_.ntotal == 60 and knn.index_.d == (4 if reduction else 8)  # sampled, then projected
    assert (job.paths.model_dir / PROJECTION_FILE).exists() == bool(reduction)


@pytest.mark.parametrize("hps, first_line", [
    ({"feature_dim": 2, "k": 1, "sample_size": 5}, "ClientError: Missing required hyperparameter: predictor_type"),
    ({"feature_dim": 2, "k": 1, "sample_size": 5, "predictor_type": "classifier", "dimension_reduction_type": "sign"},
     "ClientError: Hyperparameter dimension_reduction_target is required when dimension_reduction_type is set"),
    ({"feature_dim": 2, "k": 1, "sample_size": 5, "predictor_type": "classifier", "dimension_reduction_type": "fjlt",
      "dimension_reduction_target": 2},
     "ClientError: Hyperparameter dimension_reduction_target (2) must be smaller than feature_dim (2)"),
    ({"feature_dim": 2, "k": 1, "sample_size": 5, "predictor_type": "classifier", "index_type": "faiss.IVFPQ",
      "index_metric": "COSINE"}, "ClientError: Hyperparameter index_metric=COSINE is not supported with"),
    ({"feature_dim": 2, "k": 1, "sample_size": 5, "predictor_type": "classifier", "faiss_index_pq_m": 5},
     "ClientError: Hyperparameter faiss_index_pq_m: 5 is not one of 1, 2, 3, 4, 8"),
    ({"feature_dim": 3, "k": 1, "sample_size": 5, "predictor_type": "classifier"},
     "ClientError: Channel 'train': records have 2 features but hyperparameter feature_dim is 3"),
])
def test_user_errors_end_in_the_failure_file(tmp_path, hps, first_line):
    job, rc = train_job(tmp_path, hps, {"train": {"ContentType": "text/csv"}},
                        {("train", "a.csv"): csv_bytes(X_TRAIN, Y_TRAIN)})
    assert rc == 1 and job.failure.splitlines()[0].startswith(first_line), job.failure


def test_unlabelled_training_data_is_a_client_error(tmp_path):
    job, rc = train_job(tmp_path, {"feature_dim": 2, "k": 1, "sample_size": 5, "predictor_type": "classifier"},
                        {"train": {"ContentType": "application/x-recordio-protobuf"}},
                        {("train", "a.pbr"): recordio_bytes(X_TRAIN)})
    assert rc == 1 and job.failure.startswith("ClientError: Channel 'train' has no labels"), job.failure


# -- serving -----------------------------------------------------------------------------------

QUERY = b"0.5,0\n10.5,0\n19,0\n"


def test_json_body_is_exact(client):
    r = client.post("/invocations", data=QUERY, content_type="text/csv")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.data == (b'{"predictions": [{"predicted_label": 0.0}, {"predicted_label": 1.0}, '
                      b'{"predicted_label": 1.0}]}')


def test_verbose_json_and_jsonlines_bodies_are_exact(client):
    r = client.post("/invocations", data=QUERY, headers={"Content-Type": "text/csv",
                                                         "Accept": "application/json; verbose=true"})
    assert r.status_code == 200
    assert r.get_json() == {"predictions": [
        {"predicted_label": 0.0, "distances": [0.25, 0.25, 2.25], "labels": [0.0, 0.0, 0.0]},
        {"predicted_label": 1.0, "distances": [0.25, 0.25, 72.25], "labels": [1.0, 1.0, 0.0]},
        {"predicted_label": 1.0, "distances": [1.0, 64.0, 81.0], "labels": [2.0, 1.0, 1.0]}]}
    assert r.data.startswith(b'{"predictions": [{"predicted_label": 0.0, "distances": [0.25, 0.25, 2.25], '
                             b'"labels": [0.0, 0.0, 0.0]}')
    r = client.post("/invocations", data=b'{"features": [19, 0]}\n',
                    headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines;verbose=true"})
    assert r.data == b'{"predicted_label": 1.0, "distances": [1.0, 64.0, 81.0], "labels": [2.0, 1.0, 1.0]}\n'
    r = client.post("/invocations", data=b'{"features": [19, 0]}\n',
                    headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"})
    assert r.data == b'{"predicted_label": 1.0}\n'


def test_verbose_recordio_with_the_sdk(client):
    from sagemaker.deserializers import RecordDeserializer
    r = client.post("/invocations", data=recordio_bytes(np.array([[19, 0]], np.float32)), headers={
        "Content-Type": "application/x-recordio-protobuf", "Accept": "application/x-recordio-protobuf; verbose=true"})
    assert r.status_code == 200
    (rec,) = RecordDeserializer().deserialize(io.BytesIO(r.data), r.mimetype)
    assert list(rec.label["predicted_label"].float32_tensor.values) == [1.0]
    assert list(rec.label["distances"].float32_tensor.values) == [1.0, 64.0, 81.0]
    assert list(rec.label["labels"].float32_tensor.values) == [2.0, 1.0, 1.0]


def test_bad_verbose_value_is_400(client):
    r = client.post("/invocations", data=QUERY, headers={"Content-Type": "text/csv",
                                                         "Accept": "application/json; verbose=maybe"})
    assert r.status_code == 400 and "verbose" in r.get_json()["message"]


def test_editing_k_and_predictor_type_in_the_json_changes_inference(trained, tmp_path):
    import shutil
    d = tmp_path / "model"
    shutil.copytree(trained.paths.model_dir, d)
    meta = json.loads((d / META_FILE).read_text())
    meta.update(k=1, predictor_type="regressor")
    (d / META_FILE).write_text(json.dumps(meta))
    c = create_app(ALGO, load_model(ALGO, d), ServingEnv.from_env({})).test_client()
    r = c.post("/invocations", data=b"19,0\n", content_type="text/csv")
    assert r.get_json() == {"predictions": [{"predicted_label": 2.0}]}


# -- the maths core ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    x, y = load_digits(return_X_y=True)
    return train_test_split(x.astype(np.float32), y.astype(np.float32), test_size=0.3, random_state=0)


@pytest.mark.parametrize("k", [1, 5, 10])
@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_flat_accuracy_matches_scikit_learn(digits_split, k, backend):
    from sklearn.neighbors import KNeighborsClassifier
    xtr, xte, ytr, yte = digits_split
    theirs = KNeighborsClassifier(k).fit(xtr, ytr).score(xte, yte)
    ours = KNearestNeighbors(k, "classifier", sample_size=10_000, backend=backend).fit(xtr, ytr)
    assert abs((ours.predict(xte) == yte).mean() - theirs) <= 0.01


@pytest.mark.parametrize("kw", [
    dict(index_type="faiss.IVFFlat"), dict(index_type="faiss.IVFFlat", index_metric="COSINE"),
    dict(index_type="faiss.IVFPQ", faiss_index_pq_m=16), dict(index_type="faiss.IVFPQ", faiss_index_pq_m=48),
    dict(dimension_reduction_type="fjlt", dimension_reduction_target=40), dict(index_metric="COSINE"),
])
def test_approximate_settings_stay_accurate(digits_split, kw):
    xtr, xte, ytr, yte = digits_split
    ours = KNearestNeighbors(5, "classifier", sample_size=10_000, **kw).fit(sp.csr_matrix(xtr), ytr)
    assert (ours.predict(xte) == yte).mean() > 0.95


def test_inner_product_distances_are_descending_similarities():
    knn = KNearestNeighbors(2, "regressor", index_metric="INNER_PRODUCT").fit(X_TRAIN, Y_TRAIN)
    dist, labels = knn.kneighbors(np.array([[1, 0]], np.float32))
    np.testing.assert_array_equal(dist, [[20.0, 11.0]])
    np.testing.assert_array_equal(labels, [[2.0, 1.0]])
    assert knn.predict(np.array([[1, 0]], np.float32))[0] == 1.5


def test_save_load_round_trip_with_projection(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 12)).astype(np.float32), rng.integers(0, 3, 50).astype(np.float32)
    knn = KNearestNeighbors(4, sample_size=30, dimension_reduction_type="sign", dimension_reduction_target=5).fit(x, y)
    knn.save(tmp_path)
    again = KNearestNeighbors.load(tmp_path)
    for a, b in zip(knn.predict_neighbors(x), again.predict_neighbors(x)):
        np.testing.assert_array_equal(a, b)


def test_default_conf_hidden_keys_are_accepted_and_others_refused():
    base = {"feature_dim": "2", "k": "1", "sample_size": "5", "predictor_type": "classifier"}
    hidden = {"_kvstore": "dist_async", "_log_level": "info", "_num_gpus": "auto", "_num_kv_servers": "1",
              "_tuning_objective_metric": "", "_enable_profiler": "false", "force_dense": "True"}
    hp = ALGO.hyperparameters.parse({**base, **hidden, "_faiss_index_nprobe": "7", "epochs": "1"})
    assert not set(hidden) & set(hp)
    assert KNearestNeighbors.from_hyperparameters(hp).faiss_index_nprobe == 7
    with pytest.raises(ClientError, match="Unknown hyperparameter: _faiss_index_nprob "):
        ALGO.hyperparameters.parse({**base, "_faiss_index_nprob": "7"})


def _nlist(knn):
    import faiss
    return faiss.extract_index_ivf(knn.index_).nlist


def test_auto_nlists_is_the_square_root_of_sample_size():
    # AWS: faiss_index_ivf_nlists=auto "resolves to sqrt(sample_size)", not sqrt(records sampled).
    x = np.random.default_rng(0).normal(size=(400, 4)).astype(np.float32)
    y = np.zeros(400, np.float32)
    assert _nlist(KNearestNeighbors(1, sample_size=10_000, index_type="faiss.IVFFlat").fit(x, y)) == 100
    assert _nlist(KNearestNeighbors(1, sample_size=100, index_type="faiss.IVFFlat").fit(x, y)) == 10
    assert _nlist(KNearestNeighbors(1, index_type="faiss.IVFFlat").fit(x, y)) == 20  # notebook: every record
    assert _nlist(KNearestNeighbors(1, sample_size=10**6, index_type="faiss.IVFFlat").fit(x, y)) == 400  # <= records
    assert _nlist(KNearestNeighbors(1, sample_size=10_000, index_type="faiss.IVFFlat",
                                    faiss_index_ivf_nlists=7).fit(x, y)) == 7


def test_pq_m_not_dividing_the_reduced_dimension_raises_the_target(tmp_path):
    # AWS: "If dimension reduction is applied, the algorithm increases the value of the
    # dimension_reduction_target"; without reduction the data are zero-padded.
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 30)).astype(np.float32), rng.integers(0, 3, 300).astype(np.float32)
    knn = KNearestNeighbors(3, sample_size=300, index_type="faiss.IVFPQ", faiss_index_pq_m=8,
                            dimension_reduction_type="sign", dimension_reduction_target=10).fit(x, y)
    assert knn.projection_.target_dim == 16 and knn.index_.d == 16 and knn.padded_dim_ == 16
    assert knn.dimension_reduction_target == 10  # the parameter itself is left as given
    knn.save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["dimension_reduction"]["target_dim"] == 16 and meta["index_dim"] == 16
    again = KNearestNeighbors.load(tmp_path)
    for a, b in zip(knn.predict_neighbors(x), again.predict_neighbors(x)):
        np.testing.assert_array_equal(a, b)
    flat = KNearestNeighbors(3, sample_size=300, index_type="faiss.IVFPQ", faiss_index_pq_m=8).fit(x, y)
    assert flat.index_.d == 32 and flat.padded_dim_ == 32 and flat.index_dim_ == 30  # no reduction: padded


def test_padded_models_still_load(tmp_path):
    # Models whose reduced records were zero-padded (index_dim > target_dim), as this project saved them
    # before the target was raised, and as it still does when the raised target would not reduce.
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(300, 12)).astype(np.float32), rng.integers(0, 3, 300).astype(np.float32)
    knn = KNearestNeighbors(3, sample_size=300, index_type="faiss.IVFPQ", faiss_index_pq_m=4,
                            dimension_reduction_type="fjlt", dimension_reduction_target=10).fit(x, y)
    assert knn.projection_.target_dim == 10 and knn.padded_dim_ == 12  # 12 would not reduce 12 features
    knn.save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["dimension_reduction"]["target_dim"] == 10 and meta["index_dim"] == 12
    again = KNearestNeighbors.load(tmp_path)
    assert again.padded_dim_ == 12 and again.index_dim_ == 10
    for a, b in zip(knn.predict_neighbors(x), again.predict_neighbors(x)):
        np.testing.assert_array_equal(a, b)


def test_reservoir_sample_is_uniform_and_bounded():
    counts = np.zeros(100)
    for seed in range(200):
        s = ReservoirSampler(10, seed=seed)
        for start in range(0, 100, 7):
            ids = np.arange(start, min(100, start + 7), dtype=np.float32)
            s.add(ids[:, None], ids)
        x, y = s.sample()
        assert x.shape == (10, 1) and len(set(y)) == 10
        counts[y.astype(int)] += 1
    assert counts.min() > 5 and counts.max() < 40  # expectation 20 per record


def test_majority_vote_ties_go_to_the_smallest_label():
    votes = np.array([[2, 1, 1, 2], [3, 3, 1, 0], [5, 4, 7, 6]], np.float32)
    np.testing.assert_array_equal(majority_vote(votes), [1, 3, 4])
