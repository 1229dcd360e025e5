"""Serving with the user's inference handlers (SAGEMAKER_PROGRAM), through the kit's app, with
XGBoost's defaults for the handlers the script leaves out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smalgos.declaration import load_algorithm
from smalgos.environment import ScriptModeEnv, ServingEnv
from smalgos.errors import ClientError
from smalgos.serving.app import create_app

from .scripts import INFERENCE, JSON_HANDLERS, TRANSFORM
from .test_script_training import breast_cancer

xgb = pytest.importorskip("xgboost")
from smalgos.scriptmode.serving import load_script_model  # noqa: E402
from smalgos_xgboost.serve import ScriptDefaults, load_model  # noqa: E402


@pytest.fixture(scope="module")
def booster():
    X, y = breast_cancer()
    return xgb.train({"max_depth": 3, "objective": "binary:logistic"}, xgb.DMatrix(X[:400], label=y[:400]), 20)


def served(tmp_path, booster, script: str | None, program="inference.py", submit=True, model_name="model.ubj"):
    """A test client of the xgboost app over /opt_ml/model, with the script in src/ (submit) or in
    model/code/ (as the SDK repacks it)."""
    model_dir = tmp_path / "opt_ml" / "model"
    model_dir.mkdir(parents=True)
    booster.save_model(str(model_dir / model_name))
    src = tmp_path / "src" if submit else model_dir / "code"
    src.mkdir(parents=True)
    if script is not None:
        (src / program).write_text(script)
    env = {"SAGEMAKER_PROGRAM": program, **({"SAGEMAKER_SUBMIT_DIRECTORY": f"file://{src}"} if submit else {})}
    model = load_script_model(model_dir, ScriptDefaults(), ScriptModeEnv.from_env(env))
    return create_app(load_algorithm("xgboost"), model, ServingEnv.from_env({})).test_client()


def csv_body(X) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in X).encode()


def test_model_fn_and_predict_fn_with_the_default_input_and_output(tmp_path, booster):
    X, y = breast_cancer()
    c = served(tmp_path, booster, INFERENCE)
    r = c.post("/invocations", data=csv_body(X[400:]), headers={"Content-Type": "text/csv",
                                                                "Accept": "application/json"})
    assert r.status_code == 200, r.data
    assert r.mimetype == "application/json"
    labels = np.array(json.loads(r.data))
    assert labels.shape == y[400:].shape and np.mean(labels == y[400:]) > 0.9
    expected = (booster.predict(xgb.DMatrix(X[400:])) > 0.5).astype(np.float32)
    assert np.array_equal(labels, expected)

    r = c.post("/invocations", data=csv_body(X[400:403]), headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.data.decode() == "".join(f"{v:.1f}\n" for v in expected[:3])


def test_every_handler_default_serves_the_booster_in_the_model_dir(tmp_path, booster):
    X, _ = breast_cancer()
    c = served(tmp_path, booster, "# no handlers\n", model_name="xgboost-model")
    libsvm = "\n".join("0 " + " ".join(f"{j}:{v!r}" for j, v in enumerate(map(float, row))) for row in X[:5]).encode()
    r = c.post("/invocations", data=libsvm, headers={"Content-Type": "text/libsvm", "Accept": "application/json"})
    assert r.status_code == 200, r.data
    np.testing.assert_allclose(json.loads(r.data), booster.predict(xgb.DMatrix(X[:5])), rtol=1e-6)


def test_the_scripts_input_fn_and_output_fn_with_its_content_type(tmp_path, booster):
    X, _ = breast_cancer()
    c = served(tmp_path, booster, JSON_HANDLERS, model_name="xgboost-model")
    r = c.post("/invocations", data=json.dumps({"rows": X[:2].tolist()}),
               headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert r.status_code == 200, r.data
    expected = [round(float(v), 3) for v in booster.predict(xgb.DMatrix(X[:2]))]
    assert r.get_json() == {"p": expected, "accept": "application/json"}


def test_transform_fn_replaces_the_three_handlers(tmp_path, booster):
    c = served(tmp_path, booster, TRANSFORM)
    r = c.post("/invocations", data=b"1,2,3", headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    assert r.status_code == 200, r.data
    assert r.data == b"a model|1,2,3|text/csv|text/csv" and r.mimetype == "text/csv"


def test_code_repacked_in_the_model_dir_is_found_without_a_submit_directory(tmp_path, booster):
    X, _ = breast_cancer()
    c = served(tmp_path, booster, INFERENCE, submit=False)
    r = c.post("/invocations", data=csv_body(X[:1]), headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    assert r.status_code == 200, r.data


def test_the_http_contract_still_holds_around_the_handlers(tmp_path, booster):
    c = served(tmp_path, booster, INFERENCE)
    r = c.post("/invocations", data=b"1,2", headers={"Content-Type": "image/png"})
    assert r.status_code == 415 and r.get_json()["error"] == "UnsupportedContentType"
    r = c.post("/invocations", data=b"1,2", headers={"Content-Type": "text/csv", "Accept": "image/png"})
    assert r.status_code == 406
    r = c.post("/invocations", data=b"1,2", headers={"Content-Type": "text/csv", "Accept": "application/x-recordio-protobuf"})
    assert r.status_code == 406 and "default output_fn" in r.get_json()["message"]


def test_a_missing_program_is_a_client_error_naming_it(tmp_path, booster):
    with pytest.raises(ClientError, match=r"SAGEMAKER_PROGRAM=inference.py: not in .*src \(files there: none\)"):
        served(tmp_path, booster, None)


def test_the_xgboost_loader_dispatches_on_sagemaker_program(tmp_path, booster, monkeypatch):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    booster.save_model(str(model_dir / "xgboost-model"))
    assert type(load_model(model_dir, ServingEnv.from_env({}))).__name__ == "XGBoostModel"
    (model_dir / "code").mkdir()
    (model_dir / "code" / "serve_me.py").write_text(TRANSFORM)
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "serve_me.py")
    assert type(load_model(model_dir, ServingEnv.from_env({}))).__name__ == "ScriptModel"


TEXT_HANDLERS = '''
import numpy as np
import xgboost as xgb

def input_fn(body, content_type):
    assert content_type == "text/plain", content_type
    return xgb.DMatrix(np.array([[float(v) for v in line.split()] for line in body.decode().splitlines()]))

def output_fn(prediction, accept):
    return " ".join(f"{p:.3f}" for p in prediction), "text/plain"
'''


def test_the_scripts_handlers_take_types_the_algorithm_does_not_declare(tmp_path, booster):
    # As AWS's framework containers: any Content-Type reaches input_fn, any named Accept output_fn.
    X, _ = breast_cancer()
    c = served(tmp_path, booster, TEXT_HANDLERS, model_name="xgboost-model")
    body = "\n".join(" ".join(repr(float(v)) for v in row) for row in X[:3]).encode()
    r = c.post("/invocations", data=body, headers={"Content-Type": "text/plain", "Accept": "text/plain"})
    assert r.status_code == 200, r.data
    assert r.mimetype == "text/plain"
    assert r.data.decode() == " ".join(f"{p:.3f}" for p in booster.predict(xgb.DMatrix(X[:3])))


def test_default_handlers_refuse_types_they_cannot_read_or_write(tmp_path, booster):
    X, _ = breast_cancer()
    c = served(tmp_path, booster, "# no handlers\n", model_name="xgboost-model")
    r = c.post("/invocations", data=b"1 2 3", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415, r.data
    r = c.post("/invocations", data=csv_body(X[:1]), headers={"Content-Type": "text/csv", "Accept": "text/plain"})
    assert r.status_code == 406, r.data
    r = c.post("/invocations", data=csv_body(X[:1]), headers={"Content-Type": "text/csv", "Accept": "*/*"})
    assert r.status_code == 200 and r.mimetype == "application/json"  # wildcards only: JSON, as AWS's script mode
