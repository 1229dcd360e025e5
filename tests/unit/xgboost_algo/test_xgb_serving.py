"""/invocations through the spine's app (Flask test client) with models trained through /opt/ml."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import xgboost as xgb

from xgb_helpers import FIXTURES, Job, make_data, to_csv, to_libsvm
from smalgos.environment import ServingEnv
from smalgos.formats.media import parse_media_type
from smalgos.serving.app import create_app

TASKS = {
    "regression": ({"objective": "reg:squarederror"}, "reg:squarederror"),
    "binary": ({"objective": "binary:logistic"}, "binary:logistic"),
    "multiclass": ({"objective": "multi:softprob", "num_class": 3}, "multi:softprob"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One model per task, trained through run_training, plus its training data."""
    out = {}
    for task, (params, objective) in TASKS.items():
        X, y = make_data(objective, n=200)
        job = Job(tmp_path_factory.mktemp(task))
        job.setup({"num_round": 6, "max_depth": 3, **params}, {"train": {"ContentType": "text/csv"}},
                  {("train", "a.csv"): to_csv(X, y)})
        assert job.run() == 0, job.failure
        out[task] = (job.paths.model_dir, X, job.booster())
    return out


def client(model_dir, **env):
    from smalgos_xgboost.declaration import ALGORITHM
    from smalgos_xgboost.serve import load_model

    serving_env = ServingEnv.from_env(env)
    model = load_model(model_dir, serving_env)
    return create_app(ALGORITHM, model, serving_env).test_client(), model


def csv_rows(X) -> bytes:
    return "\n".join(",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in X).encode()


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("ctype", ["text/csv", "text/libsvm", "application/x-recordio-protobuf",
                                   "application/json", "application/jsonlines"])
def test_every_request_type_predicts_what_xgboost_predicts(trained, to_protobuf, task, ctype):
    model_dir, X, booster = trained[task]
    X = X[:25]
    body = {"text/csv": lambda: csv_rows(X),
            "text/libsvm": lambda: to_libsvm(X, np.zeros(len(X), np.float32)),
            "application/x-recordio-protobuf": lambda: to_protobuf(X),
            "application/json": lambda: json.dumps({"instances": [{"features": r.tolist()} for r in X]}).encode(),
            "application/jsonlines": lambda: "\n".join(json.dumps({"features": r.tolist()}) for r in X).encode(),
            }[ctype]()
    c, _ = client(model_dir)
    r = c.post("/invocations", data=body, headers={"Content-Type": ctype, "Accept": "application/json"})
    assert r.status_code == 200, r.data
    got = np.array([p["score"] for p in r.get_json()["predictions"]], dtype=np.float32)
    dm = xgb.DMatrix(sp.csr_matrix(X) if ctype == "text/libsvm" else X)
    np.testing.assert_array_equal(got, booster.predict(dm))  # bit for bit


def test_accept_types_and_default(trained):
    model_dir, X, booster = trained["multiclass"]
    c, _ = client(model_dir)
    expected = booster.predict(xgb.DMatrix(X[:3]))
    # no Content-Type, no Accept: libsvm in, CSV out (AWS's image)
    r = c.post("/invocations", data=to_libsvm(X[:3], np.zeros(3, np.float32)))
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = [list(map(float, line.split(","))) for line in r.data.decode().strip().split("\n")]
    np.testing.assert_allclose(rows, booster.predict(xgb.DMatrix(sp.csr_matrix(X[:3]))), atol=1e-6)
    r = c.post("/invocations", data=csv_rows(X[:3]), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = [list(map(float, line.split(","))) for line in r.data.decode().strip().split("\n")]
    np.testing.assert_allclose(rows, expected, atol=1e-6)
    r = c.post("/invocations", data=csv_rows(X[:3]), headers={"Content-Type": "text/csv",
                                                               "Accept": "application/jsonlines"})
    got = [json.loads(line)["score"] for line in r.data.decode().splitlines()]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    r = c.post("/invocations", data=csv_rows(X[:3]), headers={"Content-Type": "text/csv", "Accept": "image/png"})
    assert r.status_code == 406


def test_a_request_without_content_type_is_read_as_libsvm(trained):
    # AWS's image: get_content_type(None) -> libsvm [XGB:data_utils.py; serve_utils.py] (audit XGB-13)
    from smalgos_xgboost.declaration import ALGORITHM

    assert ALGORITHM.serving.content_types[0] == "text/libsvm"
    model_dir, X, booster = trained["binary"]
    c, _ = client(model_dir)
    body = to_libsvm(X[:5], np.zeros(5, np.float32))
    want = booster.predict(xgb.DMatrix(sp.csr_matrix(X[:5])))
    for headers in ({}, {"Accept": "application/json"}):
        r = c.post("/invocations", data=body, headers=headers)
        assert r.status_code == 200, r.data
        got = (r.get_json()["predictions"] if headers else r.data.decode().split())
        got = np.array([p["score"] if headers else float(p) for p in got], np.float32)
        np.testing.assert_allclose(got, want, atol=1e-6)
    # the same body sent with its type is read the same; CSV without its type is not CSV
    r = c.post("/invocations", data=body, headers={"Content-Type": "text/libsvm"})
    np.testing.assert_allclose([float(v) for v in r.data.decode().split()], want, atol=1e-6)
    r = c.post("/invocations", data=csv_rows(X[:2]))
    assert 400 <= r.status_code < 500 and r.get_json()["message"].startswith("request body")


def test_csv_label_size_at_serving_is_as_aws_s(trained):
    # audit XGB-14: label_size absent or 1, else 415; the whole payload is features either way
    # [XGB: data_utils.get_content_type]
    model_dir, X, booster = trained["regression"]
    c, _ = client(model_dir)
    want = booster.predict(xgb.DMatrix(X[:3]))
    for ctype in ("text/csv; label_size=1", "text/csv;label_size=1; charset=utf-8", "text/csv"):
        r = c.post("/invocations", data=csv_rows(X[:3]), headers={"Content-Type": ctype})
        assert r.status_code == 200, (ctype, r.data)
        np.testing.assert_allclose([float(v) for v in r.data.decode().split()], want, atol=1e-6)
    for bad in ("0", "2", "x"):
        r = c.post("/invocations", data=csv_rows(X[:3]), headers={"Content-Type": f"text/csv; label_size={bad}"})
        assert r.status_code == 415, (bad, r.data)
        body = r.get_json()
        assert body["error"] == "UnsupportedContentType" and "label_size must be 1" in body["message"]
    # other parameters are still refused by name, as by the registry's decoder
    r = c.post("/invocations", data=csv_rows(X[:3]), headers={"Content-Type": "text/csv; header=present"})
    assert r.status_code == 415 and "'header'" in r.get_json()["message"]


def test_libsvm_request_indices_shift_as_aws_3_0_5(trained):
    # audit XGB-15: 3.0-5 shifts a request's indices down by one when its smallest index is >= 1
    # [XGB: serve_utils._get_sparse_matrix_from_libsvm]
    model_dir, X, booster = trained["regression"]
    c, _ = client(model_dir)

    def served(body: bytes) -> float:
        r = c.post("/invocations", data=body, headers={"Content-Type": "text/libsvm"})
        assert r.status_code == 200, r.data
        return float(r.data)

    def want(cols, vals) -> float:
        m = sp.csr_matrix((vals, ([0] * len(cols), cols)), shape=(1, 6))
        return float(booster.predict(xgb.DMatrix(m))[0])

    assert served(b"0 1:0.7 4:0.1\n") == pytest.approx(want([0, 3], [0.7, 0.1]), abs=1e-6)
    assert want([0, 3], [0.7, 0.1]) != pytest.approx(want([1, 4], [0.7, 0.1]), abs=1e-6)  # the shift shows
    # the smallest index of the whole request decides, not each line's
    lines = b"0 2:0.7 5:0.1\n0 1:-3.0\n"
    r = c.post("/invocations", data=lines, headers={"Content-Type": "text/libsvm", "Accept": "application/json"})
    got = [p["score"] for p in r.get_json()["predictions"]]
    assert got == pytest.approx([want([1, 4], [0.7, 0.1]), want([0], [-3.0])], abs=1e-6)
    # an index 0 anywhere: indices are kept as written
    assert served(b"0 0:0.2 2:0.7 5:0.1\n") == pytest.approx(want([0, 2, 5], [0.2, 0.7, 0.1]), abs=1e-6)
    # 1-based indices reach one past the 0-based width: 6 features are 1..6
    assert served(b"0 6:0.4\n") == pytest.approx(want([5], [0.4]), abs=1e-6)


def test_recordio_protobuf_answer_reads_back_with_the_sdk(trained, sdk):
    model_dir, X, booster = trained["binary"]
    c, _ = client(model_dir)
    r = c.post("/invocations", data=csv_rows(X[:4]),
               headers={"Content-Type": "text/csv", "Accept": "application/x-recordio-protobuf"})
    records = sdk.read_records(io.BytesIO(r.data))
    got = [rec.label["score"].float32_tensor.values[0] for rec in records]
    np.testing.assert_allclose(got, booster.predict(xgb.DMatrix(X[:4])), atol=1e-6)


def test_feature_count_mismatch_names_both_counts(trained):
    model_dir, X, _ = trained["regression"]
    c, _ = client(model_dir)
    r = c.post("/invocations", data=b"1,2,3\n", headers={"Content-Type": "text/csv"})
    assert r.status_code == 400
    msg = r.get_json()["message"]
    assert "trained on 6 features" in msg and "has 3" in msg
    with_label = np.hstack([np.zeros((2, 1), np.float32), X[:2]])
    r = c.post("/invocations", data=csv_rows(with_label), headers={"Content-Type": "text/csv"})
    assert r.status_code == 400 and "label column" in r.get_json()["message"]


def test_libsvm_request_index_past_the_model_width_is_a_400(trained):
    model_dir, X, booster = trained["regression"]
    c, _ = client(model_dir)
    r = c.post("/invocations", data=b"0 0:1.0 9:1.0\n", headers={"Content-Type": "text/libsvm"})
    assert r.status_code == 400 and "feature index 9" in r.get_json()["message"]
    r = c.post("/invocations", data=b"0 7:1.0\n", headers={"Content-Type": "text/libsvm"})  # 1-based: column 6
    assert r.status_code == 400 and "feature index 6" in r.get_json()["message"]


def test_empty_and_unsupported_requests(trained):
    model_dir, _, _ = trained["regression"]
    c, _ = client(model_dir)
    # The XGBoost declaration fixes an empty body (or one of blank lines: no records) as 204, as AWS.
    from smalgos_xgboost.declaration import ALGORITHM

    assert ALGORITHM.serving.empty_body_status == 204
    for empty in (b"", b"\n", b"\n\n"):
        r = c.post("/invocations", data=empty, headers={"Content-Type": "text/csv"})
        assert r.status_code == 204 and r.data == b"", (empty, r.status_code, r.data)
    r = c.post("/invocations", data=b"x", headers={"Content-Type": "application/x-parquet"})
    assert r.status_code == 415  # Parquet is a training format only, as at AWS


@pytest.mark.parametrize("task, keys, expect", [
    ("binary", "predicted_label,probability,probabilities,labels,raw_score,raw_scores",
     lambda p: {"predicted_label": float(p > 0.5), "probability": p, "probabilities": [1 - p, p],
                "labels": [0.0, 1.0], "raw_score": p, "raw_scores": [1 - p, p]}),
    ("multiclass", "predicted_label, probability,probabilities,labels",
     lambda p: {"predicted_label": float(np.argmax(p)), "probability": float(np.max(p)),
                "probabilities": list(p), "labels": [0.0, 1.0, 2.0]}),
    ("regression", "predicted_score,probability",
     lambda p: {"predicted_score": p, "probability": None}),
])
def test_selectable_inference_output(trained, task, keys, expect):
    model_dir, X, booster = trained[task]
    c, _ = client(model_dir, SAGEMAKER_INFERENCE_OUTPUT=keys)
    raw = booster.predict(xgb.DMatrix(X[:3]))
    r = c.post("/invocations", data=csv_rows(X[:3]), headers={"Content-Type": "text/csv",
                                                               "Accept": "application/json"})
    assert r.status_code == 200
    got = r.get_json()["predictions"]
    assert [list(g) for g in got] == [[k.strip() for k in keys.split(",")]] * 3  # in the order asked
    for g, p in zip(got, raw):
        for key, want in expect(p).items():
            if want is None:
                assert g[key] is None or np.isnan(g[key])  # incompatible key: NaN, as AWS
            else:
                assert np.asarray(g[key], dtype=float) == pytest.approx(np.asarray(want, dtype=float), abs=1e-6)


def test_selectable_output_csv_and_batch_encodings_are_aws_s(trained):
    model_dir, X, booster = trained["binary"]
    _, model = client(model_dir, SAGEMAKER_INFERENCE_OUTPUT="predicted_label,probabilities")
    from smalgos.formats.batch import Batch

    preds = model.predict(Batch(X[:2]))
    body, mimetype = model.encode(preds, parse_media_type("text/csv"))
    p = booster.predict(xgb.DMatrix(X[:2]))
    lines = body.decode().split("\n")
    assert len(lines) == 2 and not body.endswith(b"\n")  # AWS: no trailing newline in real time
    label, probs = lines[0].split(",", 1)
    assert label == str(int(p[0] > 0.5))
    assert probs.startswith('"[') and json.loads(probs.strip('"')) == pytest.approx([1 - p[0], p[0]], abs=1e-6)
    assert model.encode(preds, parse_media_type("application/json")) is None  # generic JSON encoder

    _, batch_model = client(trained["multiclass"][0], SAGEMAKER_BATCH="true")
    body, mimetype = batch_model.encode(batch_model.predict(Batch(X[:2])), parse_media_type("application/json"))
    lines = body.decode().splitlines()
    assert mimetype == "text/csv" and len(lines) == 2 and lines[0].startswith("[") and body.endswith(b"\n")


def _ensemble_dir(tmp_path, boosters) -> Path:
    """A model directory as a k-fold job leaves it: one file per booster (sorted as named), plus a
    leftover tarball that is not a model."""
    for i, b in enumerate(boosters):
        (tmp_path / f"xgboost-model-{i}").write_bytes(bytes(b.save_raw("ubj")))
    (tmp_path / "model.tar.gz").write_bytes(b"left by SDK local mode")
    return tmp_path


def _served_scores(model_dir, X, **env) -> np.ndarray:
    c, _ = client(model_dir, **env)
    r = c.post("/invocations", data=csv_rows(X), headers={"Content-Type": "text/csv", "Accept": "application/json"})
    assert r.status_code == 200, r.data
    return np.array([p["score"] for p in r.get_json()["predictions"]], dtype=np.float32)


def test_ensemble_of_model_files_averages(trained, tmp_path):
    from smalgos.formats.batch import Batch
    from smalgos_xgboost.serve import load_model

    model_dir, X, booster = trained["regression"]
    _, y = make_data("reg:squarederror", n=200)
    # A second, different booster: other rows, other depth, other rounds.
    other = xgb.train({"objective": "reg:squarederror", "max_depth": 2, "eta": 0.5, "seed": 7},
                      xgb.DMatrix(X[100:], y[100:]), num_boost_round=3)
    _ensemble_dir(tmp_path, [booster, other])
    model = load_model(tmp_path, ServingEnv.from_env({}))
    assert len(model.boosters) == 2

    dm = xgb.DMatrix(X[:25])
    each = np.stack([booster.predict(dm), other.predict(dm)]).astype(np.float64)
    assert np.all(np.abs(each[0] - each[1]) > 1e-3)  # the two models disagree on every record
    want = each.mean(axis=0)
    got = _served_scores(tmp_path, X[:25])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.raw_predict(Batch(X[:25])), want, rtol=1e-6, atol=1e-6)
    for alone in each:  # neither model alone is what is served
        assert np.all(np.abs(got - alone) > 1e-4)
    # SAGEMAKER_INFERENCE_ENSEMBLE=false: the first file (sorted) only.
    np.testing.assert_array_equal(_served_scores(tmp_path, X[:25], SAGEMAKER_INFERENCE_ENSEMBLE="false"),
                                  booster.predict(dm))


def _vote(labels: np.ndarray) -> np.ndarray:
    """Per record (column), the label most models predict; on a tie the smallest of the tied labels."""
    out = []
    for col in labels.T.astype(int).tolist():
        top = max(col.count(c) for c in col)
        out.append(min(c for c in col if col.count(c) == top))
    return np.array(out, dtype=np.float64)


@pytest.mark.parametrize("objective, extra, n_models, ties", [
    ("multi:softmax", {"num_class": 3}, 3, False),
    ("multi:softmax", {"num_class": 3}, 2, True),  # 1-1 ties: the smaller label
    ("binary:hinge", {}, 3, False),
    ("binary:hinge", {}, 4, True),                  # 2-2 ties: label 0
])
def test_ensemble_of_classifiers_is_a_majority_vote(tmp_path, objective, extra, n_models, ties):
    """For multi:softmax and binary:hinge the model files vote: each record gets the label most
    boosters predict (np.bincount(...).argmax(): ties go to the smallest label), not their mean."""
    X, y = make_data(objective, n=300)
    boosters = [xgb.train({"objective": objective, **extra, "max_depth": 1 + i % 3, "eta": 0.3 + 0.2 * i,
                           "seed": i}, xgb.DMatrix(X[i::n_models], y[i::n_models]), num_boost_round=2 + i)
                for i in range(n_models)]
    _ensemble_dir(tmp_path, boosters)
    dm = xgb.DMatrix(X)
    labels = np.stack([b.predict(dm) for b in boosters]).astype(np.float64)
    disagree = ~np.all(labels == labels[0], axis=0)
    assert disagree.sum() >= 5  # the boosters really disagree on some records
    want = _vote(labels)
    got = _served_scores(tmp_path, X)
    np.testing.assert_array_equal(got, want)
    assert np.all(got == np.round(got))  # labels, never an average of labels
    for alone in labels:  # no single model decides
        assert np.any(got != alone)
    assert np.any(got[disagree] != labels.mean(axis=0)[disagree])
    counts = np.stack([(labels == got).sum(axis=0), *[(labels == c).sum(axis=0) for c in np.unique(labels)]])
    assert np.all(counts[0] == counts[1:].max(axis=0))  # the served label is always among the most voted
    tied = (counts[1:] == counts[1:].max(axis=0)).sum(axis=0) > 1
    assert tied.any() == ties
    if ties:  # a tie goes to the smallest of the tied labels
        assert np.all(got[tied] == labels[:, tied].min(axis=0))


@pytest.mark.parametrize("case", ["reg", "binary", "logitraw", "softprob", "softmax", "poisson", "dart",
                                  "gblinear"])
def test_models_from_aws_17_image_binary_format_serve(case, tmp_path):
    """XGBoost 3 cannot read the old binary format; we convert it, predictions unchanged."""
    from smalgos.formats.batch import Batch
    from smalgos_xgboost.serve import load_model

    (tmp_path / "xgboost-model").write_bytes((FIXTURES / "legacy17" / f"{case}.bin").read_bytes())
    model = load_model(tmp_path, ServingEnv.from_env({}))
    X = np.load(FIXTURES / "legacy17" / "X.npy")
    want = np.load(FIXTURES / "legacy17" / f"{case}.pred.npy")  # XGBoost 1.7.4's own predictions
    np.testing.assert_allclose(model.raw_predict(Batch(X)).reshape(want.shape), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["binary.snapshot.pkl", "binary.raw.pkl"])
def test_pickled_boosters_are_read_without_unpickling(name, tmp_path, monkeypatch):
    from smalgos.formats.batch import Batch
    from smalgos_xgboost.serve import load_model

    def no_unpickling(*a, **k):
        raise AssertionError("pickle.loads called")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    (tmp_path / "xgboost-model").write_bytes((FIXTURES / "legacy17" / name).read_bytes())
    model = load_model(tmp_path, ServingEnv.from_env({}))
    X = np.load(FIXTURES / "legacy17" / "X.npy")
    np.testing.assert_allclose(model.raw_predict(Batch(X)), np.load(FIXTURES / "legacy17" / "binary.pred.npy"),
                               atol=1e-6)


class Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/smalgos-pwned",))


def test_foreign_pickle_is_refused_with_a_clear_message(tmp_path):
    from smalgos.errors import ClientError
    from smalgos_xgboost.serve import load_model

    (tmp_path / "xgboost-model").write_bytes(pickle.dumps(Boom(), protocol=4))
    with pytest.raises(ClientError, match="not of an XGBoost Booster.*save_model"):
        load_model(tmp_path, ServingEnv.from_env({}))
    (tmp_path / "xgboost-model").write_bytes(b"not a model at all")
    with pytest.raises(ClientError, match="XGBoost"):
        load_model(tmp_path, ServingEnv.from_env({}))


def test_a_model_dir_with_the_sdks_repacked_code_folder_serves_in_algorithm_mode(trained, tmp_path):
    # The SDK's Model(entry_point=...) repacks code/ into model.tar.gz; without SAGEMAKER_PROGRAM
    # the booster is served and code/ is not read as a model file.
    import shutil

    model_dir, X, booster = trained["regression"]
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "code").mkdir()
    (copy / "code" / "inference.py").write_text("def model_fn(model_dir):\n    raise RuntimeError\n")
    c, _ = client(copy)
    r = c.post("/invocations", data=csv_rows(X[:3]), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.data
    np.testing.assert_allclose([float(v) for v in r.data.decode().split()], booster.predict(xgb.DMatrix(X[:3])),
                               atol=1e-6)


def test_a_few_rows_predict_on_one_thread_with_the_same_answers(trained):
    """With several threads per worker, requests of up to FEW_ROWS rows go to one-thread copies of
    the boosters (waking OpenMP threads costs more than the trees); the answers are the same."""
    from smalgos.formats.batch import Batch
    from smalgos_xgboost.serve import FEW_ROWS, XGBoostModel

    model_dir, X, booster = trained["multiclass"]
    model = XGBoostModel([booster.copy()], ServingEnv.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}))
    if model.nthread > 1:  # one worker on several cores (the CI's 2)
        assert model.single_thread is not model.boosters
        assert json.loads(model.single_thread[0].save_config())["learner"]["generic_param"]["nthread"] == "1"
    X = np.asarray(X, np.float32)
    many = model.raw_predict(Batch(X[:FEW_ROWS + 1]))
    for i in (0, 5):
        np.testing.assert_array_equal(model.raw_predict(Batch(X[i:i + 1]))[0], many[i])


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("workers", ["1", "2"])
def test_predictions_equal_booster_predict_on_a_dmatrix_to_the_bit(trained, task, workers):
    """Every prediction path of `raw_predict` — the direct C call for dense requests of at most
    FEW_ROWS rows (a kept proxy DMatrix), `inplace_predict` for larger and sparse ones — gives
    exactly `Booster.predict(DMatrix(x, missing=nan))`: dense, with NaNs, CSR, early-stopped."""
    from smalgos.formats.batch import Batch
    from smalgos_xgboost.serve import FEW_ROWS, XGBoostModel, _DensePredictor

    _, X, booster = trained[task]
    X = np.asarray(X, np.float32).copy()
    X[np.random.default_rng(3).random(X.shape) < 0.2] = np.nan
    model = XGBoostModel([booster.copy()], ServingEnv.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": workers}))
    assert model.dense is not None
    for rows in (X[:1], X[7:8], X[:FEW_ROWS], X[:FEW_ROWS + 1], X):
        want = booster.predict(xgb.DMatrix(rows, missing=np.nan), validate_features=False)
        for features in (rows, sp.csr_matrix(np.nan_to_num(rows, nan=0.0))):
            got = model.raw_predict(Batch(features))
            exp = want if not sp.issparse(features) else booster.predict(xgb.DMatrix(features),
                                                                          validate_features=False)
            assert got.dtype == exp.dtype and got.shape == exp.shape
            np.testing.assert_array_equal(got, exp)
    # a concurrent call (the kept proxy busy) takes no proxy, as inplace_predict: the same answer
    dense = model.dense[0]
    assert isinstance(dense, _DensePredictor)
    with dense._proxy_lock:
        np.testing.assert_array_equal(dense.predict(X[:3]), booster.predict(xgb.DMatrix(X[:3]),
                                                                            validate_features=False))
    # an early-stopped model predicts with the trees up to best_iteration on every path
    early = booster.copy()
    early.set_attr(best_iteration="2")
    model = XGBoostModel([early], ServingEnv.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": workers}))
    want = early.predict(xgb.DMatrix(X[:5]), iteration_range=(0, 3))
    np.testing.assert_array_equal(model.raw_predict(Batch(X[:5])), want)
    assert not np.array_equal(want, early.predict(xgb.DMatrix(X[:5])))
