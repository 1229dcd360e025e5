"""NTM: the declaration, the NVDM core against the true topics of AWS's LDA generator, early stopping,
a training job through the /opt/ml contract (train + validation + test + auxiliary, recordIO-protobuf
and CSV, Pipe mode), and the serving answers."""
import functools
import io
import json
import math
import re

import numpy as np
import pytest
import scipy.sparse as sp

import algo_helpers
from algo_helpers import csv_bytes, recordio_bytes, serving_client
from lda.data import griffiths_data, l1_errors, match_topics
from smalgos.declaration import load_algorithm
from smalgos.errors import ClientError
from smalgos.training.neural import EarlyStopping, optimizer_by_name
from smalgos_ntm.model import META_FILE, MODEL_FILE, NeuralTopicModel

ALGO = load_algorithm("ntm")
train_job = functools.partial(algo_helpers.train_job, "ntm")
HPS = {"num_topics": "5", "feature_dim": "25", "mini_batch_size": "50", "epochs": "4", "optimizer": "adam",
       "_kvstore": "auto_gpu", "_num_gpus": "auto", "_data_format": "record", "_num_kv_servers": "auto"}


# -- the declaration -----------------------------------------------------------------------------

def test_defaults_are_aws():
    hp = ALGO.hyperparameters.parse({"num_topics": "20", "feature_dim": "2000"})
    assert {k: hp[k] for k in ("mini_batch_size", "epochs", "encoder_layers", "encoder_layers_activation",
                               "optimizer", "learning_rate", "tolerance", "num_patience_epochs", "batch_norm",
                               "rescale_gradient", "clip_gradient", "weight_decay", "sub_sample")} == {
        "mini_batch_size": 256, "epochs": 50, "encoder_layers": "auto", "encoder_layers_activation": "sigmoid",
        "optimizer": "adadelta", "learning_rate": 0.01, "tolerance": 0.001, "num_patience_epochs": 3,
        "batch_norm": False, "rescale_gradient": 1.0, "clip_gradient": "inf", "weight_decay": 0.0,
        "sub_sample": 1.0}
    assert ALGO.hyperparameters.parse({**HPS, "clip_gradient": "Infinity", "encoder_layers": "30, 20"})[
        "encoder_layers"] == "30, 20"
    assert [m.name for m in ALGO.metrics if m.tunable] == ["validation:total_loss"]


@pytest.mark.parametrize("name, value, message", [
    ("num_topics", "1", "value 1 is outside the range [2, 1000]"),
    ("feature_dim", "0", "value 0 is outside the range [1, 1000000]"),
    ("mini_batch_size", "10001", "outside the range [1, 10000]"),
    ("learning_rate", "2", "outside the range [1e-06, 1]"),
    ("tolerance", "0.5", "outside the range [1e-06, 0.1]"),
    ("rescale_gradient", "0", "outside the range [0.001, 1]"),
    ("clip_gradient", "0.0001", "outside the range [0.001, inf)"),
    ("sub_sample", "0", "outside the range (0, 1]"),
    ("optimizer", "nag", "is not one of sgd, adam, adagrad, adadelta, rmsprop"),
    ("encoder_layers_activation", "gelu", "is not one of sigmoid, tanh, relu"),
    ("encoder_layers", "30,0", "is not a valid string"),
])
def test_bad_values_are_client_errors_naming_the_parameter(name, value, message):
    with pytest.raises(ClientError, match=f"Hyperparameter {name}: .*{re.escape(message)}"):
        ALGO.hyperparameters.parse({**HPS, name: value})


def test_required_and_unknown_names_end_in_the_failure_file(tmp_path):
    docs = griffiths_data(60, 40, 5, seed=1)[2]
    job, rc = train_job(tmp_path, {"feature_dim": "25"}, {"train": {"ContentType": "text/csv"}},
                        {("train", "a.csv"): csv_bytes(docs)})
    assert rc == 1 and job.failure.startswith("ClientError: Missing required hyperparameter: num_topics"), job.failure


# -- the maths -----------------------------------------------------------------------------------

def test_every_true_topic_is_matched():
    _, beta, docs, _ = griffiths_data(1200, 150, 5, seed=0)
    ntm = NeuralTopicModel(5, epochs=60, optimizer="adam", mini_batch_size=64, num_patience_epochs=60)
    ntm.fit(docs[:1000], validation=docs[1000:])
    topics = ntm.topics()
    match = match_topics(beta, topics)
    errors = l1_errors(beta, topics[match])
    # Measured: topic L1 mean 0.101, worst 0.221 (softmax(W + b); softmax(W) alone: 0.19 / 0.32).
    # Spectral LDA on the same 1,000 documents: 0.049 / 0.074. A topic on the wrong bar is ~1.6 away.
    assert errors.max() < 0.35 and errors.mean() < 0.15, errors
    assert sorted(map(sorted, np.argsort(-topics, 1)[:, :5])) == sorted(map(sorted, np.argsort(-beta, 1)[:, :5]))
    theta = ntm.transform(sp.csr_matrix(docs[1000:]))
    np.testing.assert_allclose(theta.sum(1), 1, rtol=1e-5)
    assert theta.shape == (200, 5) and theta.min() >= 0


def test_early_stopping_rule():
    s = EarlyStopping(tolerance=0.1, patience=2)
    assert [s.update(v) for v in (10.0, 8.0, 7.5, 7.4)] == [True, True, True, True]
    assert s.bad == 2 and s.stop and s.best_epoch == 4  # 7.5 and 7.4: better, but by less than 10 %
    s = EarlyStopping(tolerance=0.0, patience=1)
    assert [s.update(v) for v in (3.0, 4.0)] == [True, False] and s.stop and s.best == 3.0
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        optimizer_by_name("lbfgs", [], 0.1)


def test_early_stopping_stops_and_keeps_the_best_epoch():
    docs = griffiths_data(400, 60, 5, seed=2)[2]
    seen = []
    ntm = NeuralTopicModel(5, epochs=40, optimizer="adam", learning_rate=0.2, mini_batch_size=50,
                           tolerance=1e-6, num_patience_epochs=2)
    ntm.begin(25)
    ntm.run_epochs(lambda: iter([docs[:50], docs[50:100]]), lambda: iter([docs[300:]]),
                   callback=lambda r: seen.append(r.validation["total_loss"]))
    ntm.finalize()
    # Measured: stops after epoch 24, the best being epoch 22 (two worse epochs follow it).
    assert ntm.epochs_trained_ == len(seen) < 40 and ntm.best_epoch_ == ntm.epochs_trained_ - 2
    assert min(seen) == ntm.best_loss_ < seen[-1]
    assert ntm.score(docs[300:]) == pytest.approx(ntm.best_loss_, rel=1e-6)  # the best epoch's weights, not the last


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adagrad", "adadelta", "rmsprop"])
def test_every_optimizer_trains_and_batch_norm_serves_as_torch_evaluates(optimizer):
    import torch
    docs = griffiths_data(120, 40, 5, seed=4)[2]
    ntm = NeuralTopicModel(5, epochs=2, optimizer=optimizer, mini_batch_size=40, batch_norm=True, encoder_layers="8",
                           encoder_layers_activation="relu", clip_gradient=1.0, rescale_gradient=0.5,
                           weight_decay=0.01, sub_sample=0.7).fit(docs)
    assert ntm.epochs_trained_ == 2 and np.isfinite(ntm.best_loss_)
    net = ntm._net.eval()
    with torch.no_grad():
        h = torch.log1p(torch.tensor(docs, dtype=torch.float32))
        for linear, norm in zip(net.linears, net.norms):
            h = net.act(norm(linear(h)))
        expected = torch.softmax(net.mean(h), 1).numpy()
    np.testing.assert_allclose(ntm.transform(docs), expected, atol=1e-5)  # numpy serving = torch's network


# -- training through /opt/ml --------------------------------------------------------------------

DOCS = griffiths_data(500, 60, 5, seed=3)[2]
VOCAB = "".join(f"w{i}\n" for i in range(25)).encode()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    channels = {"train": {"ContentType": "application/x-recordio-protobuf"},
                "validation": {"ContentType": "text/csv"},
                "test": {"ContentType": "application/x-recordio-protobuf"},
                "auxiliary": {"ContentType": "text/plain"}}
    files = {("train", "a.rec"): recordio_bytes(sp.csr_matrix(DOCS[:250], dtype=np.float32)),
             ("train", "b.rec"): recordio_bytes(DOCS[250:400].astype(np.float32)),
             ("validation", "v.csv"): csv_bytes(DOCS[400:450]), ("test", "t.rec"): recordio_bytes(
                 DOCS[450:].astype(np.float32)), ("auxiliary", "vocab.txt"): VOCAB}
    import contextlib
    with contextlib.redirect_stdout(io.StringIO()) as out:
        job, rc = train_job(tmp_path_factory.mktemp("ntm"), HPS, channels, files)
    assert rc == 0, job.failure
    return job, out.getvalue()


def test_a_job_prints_aws_lines_and_saves_safe_files(trained, caplog):
    job, out = trained
    for m in ALGO.metrics:
        assert re.search(m.regex, out), m.name
    assert len(re.findall(r"epoch=\d+, train total_loss <loss>=", out)) == 4
    vals = re.findall(ALGO.metric("validation:total_loss").regex, out)
    assert float(vals[-1]) == pytest.approx(min(map(float, vals[:-1])))  # the last line is the best epoch's
    model = NeuralTopicModel.load(job.paths.model_dir)
    test_loss = float(re.search(ALGO.metric("test:total_loss").regex, out).group(1))
    assert test_loss == pytest.approx(model.score(DOCS[450:]), rel=1e-5)
    assert "#test_score (algo-1) : ('total_loss', " in out and '"Algorithm": "NTM"' in out
    assert sorted(p.name for p in job.paths.model_dir.iterdir()) == [META_FILE, MODEL_FILE]
    assert json.loads((job.paths.model_dir / META_FILE).read_text())["format"] == "smalgos-ntm"


def test_log_lines_name_the_best_epoch_and_the_topics_as_words(tmp_path, caplog):
    job, rc = train_job(tmp_path, {**HPS, "epochs": "2"},
                        {"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"},
                         "auxiliary": {"ContentType": "text/plain"}},
                        {("auxiliary", "vocab.txt"): VOCAB}, pipe=("train", csv_bytes(DOCS[:200]), 2))
    assert rc == 0, job.failure
    text = caplog.text
    assert re.search(r"Best model based on early stopping at epoch [12]\. Best loss: ", text)
    assert re.search(r"Topics from epoch:final \(num_topics:5\) \[wetc 0\.\d\d, tu \d\.\d\d\]:", text)
    assert re.search(r"^.*w\d+ w\d+ w\d+", text, re.M) and "Test data is not provided." in text
    assert "train Loss (name: value) total: " in text and "patience losses:[" in text


def test_a_vocabulary_of_the_wrong_length_is_a_client_error(tmp_path):
    job, rc = train_job(tmp_path, HPS, {"train": {"ContentType": "text/csv"}, "auxiliary": {"ContentType": "text/plain"}},
                        {("train", "a.csv"): csv_bytes(DOCS[:50]), ("auxiliary", "vocab.txt"): b"a\nb\n"})
    assert rc == 1 and job.failure.splitlines()[0] == (
        "ClientError: Channel 'auxiliary': vocab.txt holds 2 word(s) but hyperparameter feature_dim is 25: one "
        "word per line, one line per feature"), job.failure


def test_an_error_in_the_validation_data_names_that_channel(tmp_path):
    channels = {"train": {"ContentType": "text/csv"}, "validation": {"ContentType": "text/csv"}}
    job, rc = train_job(tmp_path, {**HPS, "epochs": "1"}, channels,
                        {("train", "a.csv"): csv_bytes(DOCS[:50]), ("validation", "v.csv"): csv_bytes(0 * DOCS[:5])})
    assert rc == 1 and job.failure.splitlines()[0] == (
        "ClientError: Channel 'validation': the 5 record(s) hold no words"), job.failure


# -- serving -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(trained):
    return serving_client(ALGO, trained[0].paths.model_dir)


def test_json_jsonlines_and_recordio_answers_sum_to_one(client):
    from sagemaker.amazon.common import read_records
    r = client.post("/invocations", data=csv_bytes(DOCS[:3]), content_type="text/csv")
    assert r.status_code == 200 and r.mimetype == "application/json"
    weights = np.array([p["topic_weights"] for p in r.get_json()["predictions"]])
    assert weights.shape == (3, 5)
    np.testing.assert_allclose(weights.sum(1), 1, rtol=1e-5)
    sparse = {"instances": [{"data": {"features": {"keys": [2, 7], "shape": [25], "values": [3, 5]}}}]}
    r = client.post("/invocations", data=json.dumps(sparse), content_type="application/json")
    assert r.status_code == 200 and sum(r.get_json()["predictions"][0]["topic_weights"]) == pytest.approx(1, rel=1e-5)
    r = client.post("/invocations", data="".join(json.dumps({"features": list(d)}) + "\n" for d in DOCS[:2]),
                    headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"})
    lines = [json.loads(line)["topic_weights"] for line in r.data.decode().splitlines()]
    np.testing.assert_allclose(lines, weights[:2], rtol=1e-5)  # deterministic: the same answer each time
    r = client.post("/invocations", data=recordio_bytes(sp.csr_matrix(DOCS[:2], dtype=np.float32)),
                    headers={"Content-Type": "application/x-recordio-protobuf",
                             "Accept": "application/x-recordio-protobuf"})
    got = [list(rec.label["topic_weights"].float32_tensor.values) for rec in read_records(io.BytesIO(r.data))]
    np.testing.assert_allclose(got, weights[:2], rtol=1e-5)


@pytest.mark.parametrize("body, headers, status, message", [
    (b"1,2\n", {"Content-Type": "text/csv"}, 400, "trained on 25 features"),
    (b"1,-2" + b",0" * 23 + b"\n", {"Content-Type": "text/csv"}, 400, "negative word count"),
    (b"1" + b",0" * 24 + b"\n", {"Content-Type": "text/csv", "Accept": "text/csv"}, 406, "text/csv"),
])
def test_bad_requests_are_4xx_naming_the_problem(client, body, headers, status, message):
    r = client.post("/invocations", data=body, headers=headers)
    assert r.status_code == status and message in r.get_json()["message"], r.data


def test_a_model_that_is_not_finite_is_refused(trained, tmp_path):
    model = NeuralTopicModel.load(trained[0].paths.model_dir)
    model.arrays_["decoder.weight"][0, 0] = math.nan
    model.save(tmp_path)
    with pytest.raises(ClientError, match="Cannot load the NTM model in .*decoder.weight hold NaN"):
        serving_client(ALGO, tmp_path)
