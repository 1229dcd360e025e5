"""DeepAR trained through the /opt/ml contract (LocalJob): AWS's log and metric lines, the artifact,
the test channel's scores, and bad data as a ClientError in the failure file.
Needs gluonts: run in build/deepar-venv by tests/unit/deepar/test_in_gluonts_venv.py."""
import json
import re

import numpy as np
import pytest

import torch  # noqa: E402,F401 - conftest.one_thread limits its threads in this module

import algo_helpers  # noqa: E402
from smalgos.declaration import load_algorithm  # noqa: E402
from smalgos_forecasting_deepar.model import META_FILE, WEIGHTS_FILE, load  # noqa: E402

ALGO = load_algorithm("forecasting-deepar")
P = 12
HPS = {"time_freq": "H", "context_length": str(P), "prediction_length": str(P), "epochs": "2",
       "mini_batch_size": "16", "num_cells": "10", "num_layers": "1", "learning_rate": "0.01",
       "num_eval_samples": "20", "test_quantiles": "[0.1, 0.5, 0.9]"}




def lines(n=20, length=96, seed=3, cut=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level = 1 + 10 * rng.random()
        t = np.arange(length)
        y = level * (1 + 0.3 * np.sin(2 * np.pi * t / 24)) + 0.05 * level * rng.standard_normal(length)
        record = {"start": "2021-03-01 00:00:00", "target": y[:length - cut].round(3).tolist(), "cat": [i % 3],
                  "dynamic_feat": [(t % 24 == 0).astype(float).tolist()[:length - cut]]}
        out.append(json.dumps(record))
    return ("\n".join(out) + "\n").encode()


def test_train_and_score_through_opt_ml(tmp_path, capfd):
    job, rc = algo_helpers.train_job("forecasting-deepar", tmp_path, HPS, {"train": {}, "test": {}},
                                     {("train", "train.json"): lines(cut=P), ("test", "test.json"): lines()})
    out = capfd.readouterr()
    text = out.out + out.err
    assert rc == 0, (tmp_path / "output" / "failure").read_text() if (tmp_path / "output" / "failure").exists() else text
    for metric in ALGO.metrics:
        if metric.name != "train:loss:batch":
            assert re.search(metric.regex, text), metric.name
    assert "number of time series: 20" in text and "number of observations: 1680" in text
    assert re.search(r"#test_score \(algo-1, wQuantileLoss\[0\.9\]\): \S+", text)
    assert re.search(r"Final loss: \S+ \(occurred at epoch \d\)", text)
    rmse = float(re.search(ALGO.metric("test:RMSE").regex, text).group(1))
    assert np.isfinite(rmse)
    model_dir = tmp_path / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == sorted([WEIGHTS_FILE, META_FILE])
    network, _ = load(model_dir)
    assert network.cardinality == (3,) and network.num_dynamic_feat == 1 and network.time_freq == "H"


def test_bad_record_is_a_client_error_naming_file_and_line(tmp_path):
    data = lines(n=4, cut=P) + b'{"start": "2021-03-01", "target": [1, 2], "cat": [0], "dynamic_feat": [[1]]}\n'
    job, rc = algo_helpers.train_job("forecasting-deepar", tmp_path, HPS, {"train": {}},
                                     {("train", "part.json"): data})
    failure = (tmp_path / "output" / "failure").read_text().splitlines()[0]
    assert rc != 0
    assert re.fullmatch(r"ClientError: Channel 'train': .*/train/part.json: line 5: field 'dynamic_feat' series 0 "
                        r"has 1 values but needs at least 2.*", failure), failure


def test_too_few_observations(tmp_path):
    job, rc = algo_helpers.train_job("forecasting-deepar", tmp_path, HPS, {"train": {}},
                                     {("train", "a.json"): lines(n=2, length=100)})
    failure = (tmp_path / "output" / "failure").read_text().splitlines()[0]
    assert failure == "ClientError: Channel 'train': the series hold 200 observations in all; DeepAR needs at least 300"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deepar-serve")
    _, rc = algo_helpers.train_job("forecasting-deepar", tmp, {**HPS, "epochs": "1"}, {"train": {}},
                                   {("train", "train.json"): lines(cut=P)})
    assert rc == 0
    return tmp / "model"


@pytest.fixture(scope="module")
def client(model_dir):
    return algo_helpers.serving_client(ALGO, model_dir)


def instance(length=48, cat=(1,), future=P):
    t = np.arange(length + future)
    return {"start": "2021-03-01 00:00:00", "target": (5 + np.sin(2 * np.pi * t[:length] / 24)).tolist(),
            "cat": list(cat), "dynamic_feat": [(t % 24 == 0).astype(float).tolist()]}


def test_json_request_and_response(client):
    body = {"instances": [instance(), {**instance(30), "target": [1.0, "NaN", None] + [2.0] * 27}],
            "configuration": {"num_samples": 30, "output_types": ["mean", "quantiles", "samples"],
                              "quantiles": ["0.5", "0.9"]}}
    r = client.post("/invocations", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200, r.data
    predictions = r.get_json()["predictions"]
    assert len(predictions) == 2
    for p in predictions:
        assert sorted(p) == ["mean", "quantiles", "samples"] and sorted(p["quantiles"]) == ["0.5", "0.9"]
        assert len(p["mean"]) == P and len(p["quantiles"]["0.9"]) == P
        assert np.asarray(p["samples"]).shape == (30, P)
        assert (np.asarray(p["quantiles"]["0.9"]) >= np.asarray(p["quantiles"]["0.5"])).all()


def test_default_configuration(client):
    r = client.post("/invocations", data=json.dumps({"instances": [instance()]}), content_type="application/json")
    (p,) = r.get_json()["predictions"]
    assert sorted(p) == ["mean", "quantiles"]
    assert list(p["quantiles"]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]


def test_batch_transform_lines(model_dir):
    from smalgos_forecasting_deepar.serve import load_model
    model = load_model(model_dir, json.dumps({"num_samples": 10, "output_types": ["quantiles"], "quantiles": ["0.5"]}))
    body = ("\n".join(json.dumps(instance(n)) for n in (30, 40, 50)) + "\n").encode()
    from smalgos.formats.media import parse_media_type
    out, mimetype = model.encode(model.predict(model.decode(body, parse_media_type("application/jsonlines"))),
                                 parse_media_type("application/jsonlines"))
    rows = [json.loads(line) for line in out.decode().splitlines()]
    assert mimetype == "application/jsonlines" and len(rows) == 3
    assert all(list(r) == ["quantiles"] and len(r["quantiles"]["0.5"]) == P for r in rows)


@pytest.mark.parametrize("change,message", [
    ({"dynamic_feat": [[0.0] * (48 + P - 1)]}, r"instance 0: field 'dynamic_feat' series 0 has 59 values but needs "
                                               r"at least 60"),
    ({"cat": [3]}, r"instance 0: field 'cat' value 0 is 3, a category the model does not know"),
    ({"cat": None}, r"instance 0: field 'cat' has 0 value\(s\) but the model was trained with 1"),
    ({"dynamic_feat": None}, r"instance 0: field 'dynamic_feat' has 0 series but the model was trained with 1"),
    ({"start": "not a date"}, r"instance 0: field 'start' 'not a date' is not a timestamp"),
])
def test_bad_instances_are_400_naming_the_field(client, change, message):
    body = {"instances": [{**instance(), **change}]}
    body["instances"][0] = {k: v for k, v in body["instances"][0].items() if v is not None}
    r = client.post("/invocations", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 400 and re.search(message, r.get_json()["message"]), r.get_json()


@pytest.mark.parametrize("configuration,message", [
    ({"num_samples": 0}, "configuration.num_samples 0 is not a positive integer"),
    ({"output_types": ["median"]}, "configuration.output_types"),
    ({"quantiles": ["1.5"]}, r"configuration.quantiles: '1.5' is not a number in \(0, 1\)"),
])
def test_bad_configuration_is_400(client, configuration, message):
    body = {"instances": [instance()], "configuration": configuration}
    r = client.post("/invocations", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 400 and re.search(message, r.get_json()["message"]), r.get_json()


def test_bad_bodies(client):
    r = client.post("/invocations", data=b"{not json", content_type="application/json")
    assert r.status_code == 400 and "not valid JSON" in r.get_json()["message"]
    r = client.post("/invocations", data=b'{"instances": []}', content_type="application/json")
    assert r.status_code == 400
    r = client.post("/invocations", data=b"1,2", content_type="text/csv")
    assert r.status_code == 415


@pytest.mark.parametrize("likelihood,value,words", [("beta", 1.5, "in [0, 1]"), ("negative-binomial", -2.0, ">= 0")])
def test_likelihood_domain(tmp_path, likelihood, value, words):
    bad = json.dumps({"start": "2021-03-01", "target": [0.5] * 50 + [value], "cat": [0], "dynamic_feat": [[0] * 51]})
    data = b"".join(json.dumps({"start": "2021-03-01", "target": [0.5] * 100, "cat": [0],
                                "dynamic_feat": [[0] * 100]}).encode() + b"\n" for _ in range(4)) + bad.encode() + b"\n"
    _, rc = algo_helpers.train_job("forecasting-deepar", tmp_path, {**HPS, "likelihood": likelihood}, {"train": {}},
                                   {("train", "a.json"): data})
    failure = (tmp_path / "output" / "failure").read_text().splitlines()[0]
    assert rc != 0 and failure.startswith("ClientError: Channel 'train': ") and failure.endswith(
        f"a.json: line 5: field 'target' holds {value!r}, but likelihood={likelihood} needs every value {words}"), failure
