"""The XGBoost image as SageMaker runs it on a multi-model endpoint: `serve` with
SAGEMAKER_MULTI_MODEL=true, models under /opt/ml/models/<name>/model, the /models API over a
published port, two gunicorn workers (any call may land on either)."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import requests

from .helpers import free_port, unique

pytestmark = pytest.mark.container

FEATURES = 4


def train(base, objective: str, seed: int):
    """A tiny model trained in-process through the /opt/ml contract; its model dir and booster."""
    import xgboost as xgb

    from smalgos.localjob import LocalJob
    from smalgos.training.runner import run_training

    rng = np.random.default_rng(seed)
    X = rng.random((80, FEATURES)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 1).astype(np.float32) if objective.startswith("binary") else X @ [3.0, -1.0, 2.0, 0.5]
    job = LocalJob(base)
    job.write_config({"objective": objective, "num_round": 4, "max_depth": 2},
                     {"train": {"ContentType": "text/csv"}})
    job.add_file("train", "a.csv", "".join(f"{t:.6g}," + ",".join(f"{v:.6g}" for v in r) + "\n"
                                           for t, r in zip(y, X)).encode())
    assert run_training("xgboost", job.paths, install_signal_handler=False) == 0, job.failure
    booster = xgb.Booster()
    booster.load_model(bytearray((job.paths.model_dir / "xgboost-model").read_bytes()))
    return job.paths.model_dir, booster


def test_xgboost_image_serves_two_models_on_a_multi_model_endpoint(engine, algo_image, tmp_path):
    image = algo_image("xgboost")
    labels = json.loads(engine("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout)
    assert labels.get("com.amazonaws.sagemaker.capabilities.multi-models") == "true"

    store, boosters = tmp_path / "models", {}
    for name, objective, seed in (("churn", "binary:logistic", 1), ("price", "reg:squarederror", 2)):
        model_dir, boosters[name] = train(tmp_path / name, objective, seed)
        shutil.copytree(model_dir, store / name / "model")
    port, container = free_port(), unique("mme")
    engine("run", "-d", "--name", container, "-p", f"127.0.0.1:{port}:8080", "-v", f"{store}:/opt/ml/models:ro",
           "-e", "SAGEMAKER_MULTI_MODEL=true", "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=2", image, "serve")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # /ping answers 200 with no model loaded
            try:
                if requests.get(url + "/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, engine.logs(container)[-4000:]
            time.sleep(0.2)
        assert requests.get(url + "/models", timeout=10).json() == {"models": []}
        for name in boosters:
            r = requests.post(url + "/models", json={"model_name": name, "url": f"/opt/ml/models/{name}/model"},
                              timeout=30)
            assert r.status_code == 200, r.text
        r = requests.post(url + "/models", json={"model_name": "price", "url": "/opt/ml/models/price/model"},
                          timeout=30)
        assert r.status_code == 409
        listed = requests.get(url + "/models", timeout=10).json()["models"]
        assert [m["modelName"] for m in listed] == ["churn", "price"]

        import xgboost as xgb

        X = np.random.default_rng(9).random((6, FEATURES)).astype(np.float32)
        body = "\n".join(",".join(f"{v:.6g}" for v in row) for row in X)
        X = np.array([[float(f"{v:.6g}") for v in row] for row in X], np.float32)
        answers = {}
        for name, booster in boosters.items():
            want = booster.predict(xgb.DMatrix(X))
            for _ in range(4):  # either worker: the one that loaded it, or one loading it on first use
                r = requests.post(f"{url}/models/{name}/invoke", data=body, timeout=30,
                                  headers={"Content-Type": "text/csv", "Accept": "application/json",
                                           "X-Amzn-SageMaker-Target-Model": f"{name}.tar.gz"})
                assert r.status_code == 200, r.text
                got = np.array([p["score"] for p in r.json()["predictions"]], np.float32)
                np.testing.assert_allclose(got, want, atol=1e-6)
            answers[name] = got
        assert np.all((answers["churn"] >= 0) & (answers["churn"] <= 1))  # probabilities ...
        assert np.abs(answers["price"] - answers["churn"]).max() > 0.5  # ... not the regressor's prices

        assert requests.delete(url + "/models/churn", timeout=10).status_code == 200
        for _ in range(4):  # unloaded for every worker
            r = requests.post(url + "/models/churn/invoke", data=body, headers={"Content-Type": "text/csv"},
                              timeout=10)
            assert r.status_code == 404 and "not loaded" in r.json()["message"]
        assert requests.get(url + "/models", timeout=10).json() == {
            "models": [{"modelName": "price", "modelUrl": "/opt/ml/models/price/model"}]}
    finally:
        engine("rm", "-f", container, check=False)
