"""Factorization Machines: the maths core (gradients, optimizer, quality against a plain-torch FM
and on digits), then end to end through the /opt/ml contract (File and Pipe mode, metric lines,
errors) and serving (exact bodies in JSON, JSON Lines and recordIO-protobuf; refusals)."""
import functools
import io
import json
import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import algo_helpers
from algo_helpers import recordio_bytes, serving_client
from fm.reference import ReferenceFM, clicks
from smalgos.declaration import load_algorithm
from smalgos.errors import ClientError, InputError
from smalgos_factorization_machines.batches import make_batch
from smalgos_factorization_machines.model import META_FILE, MODEL_FILE, FactorizationMachines
from smalgos.maths.lazy_adam import Group, LazyAdam

ALGO = load_algorithm("factorization-machines")
RECORDIO = "application/x-recordio-protobuf"
train_job = functools.partial(algo_helpers.train_job, "factorization-machines")


def auc(y, s) -> float:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, s))


# -- the maths ---------------------------------------------------------------------------------

@pytest.mark.parametrize("sparse", [False, True])
def test_output_and_gradients_equal_autograd_on_the_naive_pairwise_sum(sparse):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 6)).astype(np.float32) * (rng.random((7, 6)) < 0.5)
    x[:, 4] = 0  # an untouched feature: no gradient row for it
    w = torch.tensor(rng.normal(size=6), dtype=torch.float32, requires_grad=True)
    v = torch.tensor(rng.normal(size=(6, 3)), dtype=torch.float32, requires_grad=True)
    r = torch.tensor(rng.normal(size=7), dtype=torch.float32)
    xt = torch.from_numpy(x)
    naive = xt @ w + sum((v[i] @ v[j]) * xt[:, i] * xt[:, j] for i in range(6) for j in range(i + 1, 6))
    (naive * r).sum().backward()
    batch = make_batch(sp.csr_matrix(x) if sparse else x, torch.device("cpu"), for_training=True)
    out = batch.forward(w.detach(), v.detach())
    rows, gw, gv = batch.gradients(r)
    torch.testing.assert_close(out, naive.detach(), rtol=1e-5, atol=1e-5)
    assert rows.tolist() == np.flatnonzero(x.any(0)).tolist() and 4 not in rows.tolist() and len(rows) >= 3
    torch.testing.assert_close(gw, w.grad[rows], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gv, v.grad[rows], rtol=1e-5, atol=1e-5)


def test_lazy_adam_is_mxnet_adam_on_the_touched_rows_only():
    """rescale_grad, then clip_gradient, then wd·w, then Adam with bias correction; untouched rows keep
    their values and moments. Checked against the update written out in numpy."""
    w = torch.tensor([[1.0, -2.0], [0.5, 0.25], [3.0, 1.0]])
    opt = LazyAdam({"factors": Group(w, lr=0.1, wd=0.01)}, eps=1e-6, clip_gradient=0.5, rescale_grad=0.25)
    expected, m, v = w.numpy().astype(np.float64).copy(), np.zeros((3, 2)), np.zeros((3, 2))
    steps = [(np.array([0, 2]), np.array([[4.0, -1.0], [0.4, 8.0]])), (np.array([2]), np.array([[-3.0, 0.2]]))]
    for t, (rows, grad) in enumerate(steps, 1):
        opt.step({"factors": (torch.from_numpy(rows), torch.tensor(grad, dtype=torch.float32))}, batch_records=99)
        g = np.clip(grad * 0.25, -0.5, 0.5) + 0.01 * expected[rows]
        m[rows] = 0.9 * m[rows] + 0.1 * g
        v[rows] = 0.999 * v[rows] + 0.001 * g * g
        lr_t = 0.1 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        expected[rows] -= lr_t * m[rows] / (np.sqrt(v[rows]) + 1e-6)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(w.numpy()[1], [0.5, 0.25])  # never touched


def test_rescale_grad_defaults_to_one_over_the_batch():
    a, b = torch.ones(2), torch.ones(2)
    LazyAdam({"t": Group(a, lr=0.1, wd=0)}, None, None, None).step({"t": (None, torch.tensor([4.0, 0.0]))}, 4)
    LazyAdam({"t": Group(b, lr=0.1, wd=0)}, None, None, 0.25).step({"t": (None, torch.tensor([4.0, 0.0]))}, 1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a[1] == 1.0 and a[0] < 1.0


@pytest.mark.parametrize("method, extra, check", [
    ("constant", {"_init_value": 0.5}, lambda a: np.all(a == 0.5)),
    ("uniform", {"_init_scale": 0.2}, lambda a: np.abs(a).max() <= 0.2 and np.abs(a).max() > 0.15),
    ("normal", {"_init_sigma": 0.3}, lambda a: abs(a.std() - 0.3) < 0.03),
])
def test_init_methods_with_zero_learning_rates_keep_their_draws(method, extra, check):
    x = sp.random(50, 40, density=0.2, format="csr", random_state=0, dtype=np.float32)
    params = {"predictor_type": "regressor", "bias_lr": 0, "linear_lr": 0, "factors_lr": 0,
              "bias_wd": 0, "linear_wd": 0, "factors_wd": 0}
    for term in ("linear", "factors"):
        params[f"{term}_init_method"] = method
        params.update({term + k: v for k, v in extra.items()})
    fm = FactorizationMachines(8, **params).fit(x, np.ones(50))
    assert check(fm.w_) and check(fm.v_), (fm.w_[:4], fm.v_[:2])


def test_a_missing_init_value_or_scale_is_named():
    with pytest.raises(InputError, match="Hyperparameter factors_init_scale is required when factors_init_method is uniform"):
        FactorizationMachines(4, predictor_type="regressor", factors_init_method="uniform").fit(np.eye(3), np.ones(3))
    with pytest.raises(ClientError, match="Hyperparameter bias_init_value is required when bias_init_method is constant"):
        ALGO.hyperparameters.parse({"feature_dim": "3", "num_factors": "2", "predictor_type": "regressor",
                                    "bias_init_method": "constant"})


# -- quality -----------------------------------------------------------------------------------

CLICK_FIT = {"epochs": 6, "mini_batch_size": 256, "lr": 0.05}


@pytest.fixture(scope="module")
def click_data():
    x, y, p = clicks(12000, seed=0)
    return x[:10000], y[:10000], x[10000:], y[10000:], p[10000:]


def test_clicks_with_known_interactions_auc_matches_a_plain_torch_fm(click_data):
    x, y, xt, yt, pt = click_data
    lr, epochs, batch = CLICK_FIT["lr"], CLICK_FIT["epochs"], CLICK_FIT["mini_batch_size"]
    fm = FactorizationMachines(4, predictor_type="binary_classifier", epochs=epochs, mini_batch_size=batch,
                               bias_lr=lr, linear_lr=lr, factors_lr=lr, factors_init_sigma=0.01,
                               bias_wd=0, linear_wd=0, factors_wd=0).fit(x, y)
    ref = ReferenceFM(4, lr=lr).fit(x, y, epochs, batch)
    ours, theirs, bayes = auc(yt, fm.predict_scores(xt)), auc(yt, ref.predict_scores(xt)), auc(yt, pt)
    assert ours >= 0.8 and abs(ours - theirs) <= 0.01, (ours, theirs, bayes)
    # the interactions are learned: the same model without factors (num_factors=1, lr 0) is far worse
    linear = FactorizationMachines(1, predictor_type="binary_classifier", epochs=epochs, mini_batch_size=batch,
                                   bias_lr=lr, linear_lr=lr, factors_lr=0, factors_init_sigma=0).fit(x, y)
    assert auc(yt, linear.predict_scores(xt)) < ours - 0.05


def test_digits_is_it_a_zero_like_aws_mnist_example():
    """AWS's MNIST example (784 features, num_factors 10, mini_batch 200): 951 TP, 165 FP, 29 FN,
    recall 0.970, precision 0.852. Here scikit-learn's 8×8 digits, scaled to [0, 1] as MNIST is."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = (digits.target == 0).astype(np.float32)
    x, xt, y, yt = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    fm = FactorizationMachines(10, predictor_type="binary_classifier", epochs=20, mini_batch_size=200,
                               linear_lr=0.01, factors_lr=0.01).fit(x, y)
    predicted = fm.predict(xt) == 1
    tp, fp, fn = int((predicted & (yt == 1)).sum()), int((predicted & (yt == 0)).sum()), int((~predicted & (yt == 1)).sum())
    assert tp / (tp + fn) >= 0.95 and tp / (tp + fp) >= 0.9, (tp, fp, fn)


def test_regressor_recovers_a_known_fm_to_the_noise_level():
    rng = np.random.default_rng(3)
    x = sp.random(4000, 30, density=0.15, format="csr", random_state=3, dtype=np.float32)
    v, w = rng.normal(0, 0.7, (30, 3)), rng.normal(0, 1, 30)
    truth = 2.0 + x @ w + 0.5 * (((x @ v) ** 2).sum(1) - (x.multiply(x) @ (v ** 2)).sum(1))
    y = (truth + rng.normal(0, 0.1, 4000)).astype(np.float32)
    fm = FactorizationMachines(3, predictor_type="regressor", epochs=30, mini_batch_size=100, bias_lr=0.05,
                               linear_lr=0.05, factors_lr=0.05, factors_init_sigma=0.1,
                               bias_wd=0, linear_wd=0, factors_wd=0).fit(x[:3000], y[:3000])
    rmse = float(np.sqrt(np.mean((fm.predict(x[3000:]) - truth[3000:]) ** 2)))
    assert rmse < 0.25 * truth.std(), (rmse, truth.std())
    assert fm.training_metrics()["rmse"] < 0.25 * truth.std()


# -- training through /opt/ml ------------------------------------------------------------------

def sdk_hyperparameters(**kw):
    """The hyperparameters the SageMaker SDK's FactorizationMachines estimator really sends."""
    return algo_helpers.sdk_hyperparameters("FactorizationMachines", feature_dim=150, mini_batch_size=256, **kw)


FAST = {"epochs": 3, "bias_lr": 0.05, "linear_lr": 0.05, "factors_lr": 0.05, "factors_init_sigma": 0.01}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, click_data):
    x, y, xt, yt, _ = click_data
    job, rc = train_job(tmp_path_factory.mktemp("fm"),
                        sdk_hyperparameters(num_factors=4, predictor_type="binary_classifier", **FAST),
                        {"train": {"ContentType": RECORDIO}, "test": {"ContentType": RECORDIO}},
                        {("train", "a.pbr"): recordio_bytes(x[:6000], y[:6000]),
                         ("train", "b.pbr"): recordio_bytes(x[6000:], y[6000:]),
                         ("test", "t.pbr"): recordio_bytes(xt, yt)})
    assert rc == 0, job.failure
    return job


def test_sparse_file_mode_job_saves_safe_files_of_a_good_model(trained, click_data):
    d = trained.paths.model_dir
    assert sorted(p.name for p in d.iterdir()) == [META_FILE, MODEL_FILE]
    meta = json.loads((d / META_FILE).read_text())
    assert {k: meta[k] for k in ("format", "predictor_type", "feature_dim", "num_factors")} == {
        "format": "smalgos-factorization-machines", "predictor_type": "binary_classifier",
        "feature_dim": 150, "num_factors": 4}
    fm = FactorizationMachines.load(d)
    _, _, xt, yt, _ = click_data
    assert auc(yt, fm.predict_scores(xt)) >= 0.8


def test_log_lines_match_every_declared_binary_metric(tmp_path, capfd, click_data):
    x, y, xt, yt, _ = click_data
    job, rc = train_job(tmp_path, {**sdk_hyperparameters(num_factors=2, predictor_type="binary_classifier", epochs=1),
                                   "_kvstore": "dist_sync", "_num_gpus": "auto"},
                        {"train": {"ContentType": RECORDIO}, "test": {"ContentType": RECORDIO}},
                        {("train", "a.pbr"): recordio_bytes(x[:500], y[:500]), ("test", "t.pbr"): recordio_bytes(xt[:300], yt[:300])})
    assert rc == 0, job.failure
    out = capfd.readouterr().out
    for m in ALGO.metrics:
        if "rmse" not in m.name:
            assert re.search(m.regex, out), m.name
    assert "#quality_metric: host=algo-1, test binary_f_1.000 <score>=" in out
    assert "#quality_metric: host=algo-1, epoch=0, train binary_classification_accuracy <score>=" in out
    assert "#test_score (algo-1) : ('binary_classification_cross_entropy', " in out
    assert "rmse" not in out


def test_pipe_mode_dense_regressor_with_test_rmse(tmp_path, capfd):
    rng = np.random.default_rng(5)
    x = rng.random((600, 5)).astype(np.float32)
    y = (1 + x @ np.arange(5) + 2 * x[:, 0] * x[:, 1]).astype(np.float32)
    job, rc = train_job(tmp_path, {"feature_dim": 5, "num_factors": 2, "predictor_type": "regressor", "epochs": 3,
                                   "mini_batch_size": 50, "bias_lr": 0.1, "linear_lr": 0.1, "factors_lr": 0.05},
                        {"train": {"ContentType": RECORDIO, "TrainingInputMode": "Pipe"},
                         "test": {"ContentType": RECORDIO}},
                        {("test", "t.pbr"): recordio_bytes(x[:100], y[:100])},
                        pipe=("train", recordio_bytes(x, y), 3))
    assert rc == 0, job.failure
    out = capfd.readouterr().out
    test_rmse = float(re.search(ALGO.metric("test:rmse").regex, out).group(1))
    train_rmse = float(re.search(ALGO.metric("train:rmse").regex, out).group(1))
    assert test_rmse < 0.5 * y.std() and train_rmse < 0.5 * y.std(), (test_rmse, train_rmse, y.std())
    assert out.count("#progress_metric") == 3 and "binary_classification" not in out


@pytest.mark.parametrize("hps, channels, first_line", [
    ({"feature_dim": 150, "predictor_type": "binary_classifier"}, None,
     "ClientError: Missing required hyperparameter: num_factors"),
    ({"feature_dim": 150, "num_factors": 2, "predictor_type": "multiclass_classifier"}, None,
     "ClientError: Hyperparameter predictor_type: value 'multiclass_classifier' is not one of binary_classifier, regressor"),
    ({"feature_dim": 150, "num_factors": 2, "predictor_type": "regressor", "linear_init_method": "uniform"}, None,
     "ClientError: Hyperparameter linear_init_scale is required when linear_init_method is uniform"),
    ({"feature_dim": 150, "num_factors": 2, "predictor_type": "regressor", "factors_lr": "-1"}, None,
     "ClientError: Hyperparameter factors_lr: value -1 is outside the range [0, inf)"),
    ({"feature_dim": 150, "num_factors": 2, "predictor_type": "regressor", "eps": "0"}, None,
     "ClientError: Hyperparameter eps: value 0 is outside the range (0, inf)"),
    ({"feature_dim": 151, "num_factors": 2, "predictor_type": "regressor"}, None,
     "ClientError: Channel 'train': records have 150 features but hyperparameter feature_dim is 151"),
    ({"feature_dim": 150, "num_factors": 2, "predictor_type": "regressor", "_kvstorr": "local"}, None,
     "ClientError: Unknown hyperparameter: _kvstorr"),
    ({"feature_dim": 150, "num_factors": 2, "predictor_type": "regressor"}, {"train": {"ContentType": "text/csv"}},
     "ClientError: Channel 'train'"),
])
def test_user_errors_end_in_the_failure_file(tmp_path, click_data, hps, channels, first_line):
    x, y, *_ = click_data
    job, rc = train_job(tmp_path, hps, channels or {"train": {"ContentType": RECORDIO}},
                        {("train", "a.pbr"): recordio_bytes(x[:100], y[:100])})
    assert rc == 1 and job.failure.splitlines()[0].startswith(first_line), job.failure


def test_binary_labels_other_than_0_and_1_are_named(tmp_path, click_data):
    x, y, *_ = click_data
    job, rc = train_job(tmp_path, {"feature_dim": 150, "num_factors": 2, "predictor_type": "binary_classifier"},
                        {"train": {"ContentType": RECORDIO}}, {("train", "a.pbr"): recordio_bytes(x[:100], 2 * y[:100])})
    assert rc == 1
    assert job.failure.splitlines()[0] == ("ClientError: Channel 'train': the mini-batch: binary_classifier labels must "
                                           "be 0 or 1; found 2.0"), job.failure


# -- serving -----------------------------------------------------------------------------------

def hand_model(tmp_path, predictor_type):
    """A saved FM with chosen parameters: ŷ = 1 + x0 − 2·x1 + ⟨v0, v1⟩x0x1 with ⟨v0, v1⟩ = 3."""
    fm = FactorizationMachines(2, predictor_type=predictor_type)
    fm.w0_ = np.array([1.0], np.float32)
    fm.w_ = np.array([1.0, -2.0, 0.0], np.float32)
    fm.v_ = np.array([[1.0, 1.0], [1.0, 2.0], [0.0, 0.0]], np.float32)
    fm.n_features_in_ = 3
    fm.save(tmp_path)
    return serving_client(ALGO, tmp_path)


def test_regressor_json_body_is_exact(tmp_path):
    client = hand_model(tmp_path, "regressor")
    body = {"instances": [{"features": [1, 1, 0]}, {"data": {"features": {"keys": [0], "shape": [3], "values": [2.0]}}}]}
    r = client.post("/invocations", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.data == b'{"predictions": [{"score": 3.0}, {"score": 3.0}]}'  # 1+1-2+3 ; 1+2


def test_binary_json_jsonlines_and_recordio_answers(tmp_path):
    from sagemaker.deserializers import RecordDeserializer
    client = hand_model(tmp_path, "binary_classifier")
    x = np.array([[0, 0.5, 0], [1, 1, 0], [0, 0, 0]], np.float32)  # ŷ = 0, 3, 1
    expected = 1 / (1 + np.exp(-np.array([0.0, 3.0, 1.0], np.float32)))
    r = client.post("/invocations", data=json.dumps({"instances": [{"features": row.tolist()} for row in x]}),
                    content_type="application/json")
    got = r.get_json()["predictions"]
    assert [list(p) for p in got] == [["score", "predicted_label"]] * 3
    assert got[0] == {"score": 0.5, "predicted_label": 1.0}  # the threshold itself is positive
    np.testing.assert_allclose([p["score"] for p in got], expected, rtol=1e-6)
    r2 = client.post("/invocations", data=b'{"features": [0, 0.5, 0]}\n{"features": [1, 1, 0]}\n',
                     headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"})
    assert r2.status_code == 200 and [json.loads(l) for l in r2.data.decode().splitlines()] == got[:2]
    r3 = client.post("/invocations", data=recordio_bytes(sp.csr_matrix(x)),
                     headers={"Content-Type": RECORDIO, "Accept": RECORDIO})
    records = RecordDeserializer().deserialize(io.BytesIO(r3.data), r3.mimetype)
    assert [(rec.label["score"].float32_tensor.values[0], rec.label["predicted_label"].float32_tensor.values[0])
            for rec in records] == [(np.float32(p["score"]), p["predicted_label"]) for p in got]


def test_csv_requests_and_accepts_are_refused_and_widths_checked(tmp_path):
    client = hand_model(tmp_path, "regressor")
    r = client.post("/invocations", data=b"1,1,0\n", content_type="text/csv")
    assert r.status_code == 415 and "text/csv" in r.get_json()["message"]
    r = client.post("/invocations", data=b'{"features": [1, 1, 0]}', headers={"Content-Type": "application/json",
                                                                           "Accept": "text/csv"})
    assert r.status_code == 406
    r = client.post("/invocations", data=b'{"features": [1, 1]}', content_type="application/json")
    assert r.status_code == 400 and "trained on 3 features" in r.get_json()["message"]
    r = client.post("/invocations", data=json.dumps({"data": {"features": {"keys": [7], "shape": [8], "values": [1.0]}}}),
                    content_type="application/json")
    assert r.status_code == 400 and "feature index 7" in r.get_json()["message"]
